// The gateway the attack tests aim at: a real `sluice run` with one HTTP listener and two raw
// backends (see raw-backend.ts). Routes: `/admin` (PathPrefix) and host `admin.example.com` go to
// the `admin` backend, `/redirect` answers a 302 of the gateway's own, everything else goes to
// `public`. An attack that makes the router and a backend disagree shows as a request for an
// admin path arriving at `public`.

import { afterAll, beforeAll } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGatewayYaml, serviceYaml } from '../../e2e/backends.ts';
import { freePortOffset } from '../../support/ports.ts';
import { startSluice, type SluiceProcess } from '../../support/sluice-process.ts';
import { startRawBackend, type RawBackend } from './raw-backend.ts';

export const ADMIN_HOST = 'admin.example.com';

export interface AttackGateway {
  sluice: SluiceProcess;
  /** The HTTP listener's port. */
  port: number;
  admin: RawBackend;
  public: RawBackend;
  /** Requests both backends have read so far. */
  seen(): number;
  /** A counter of the gateway's /metrics (summed over the series whose labels include `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

const routesYaml = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /admin}}], backendRefs: [{name: admin, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin-host, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [${ADMIN_HOST}]
  rules: [{backendRefs: [{name: admin, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: public, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /redirect}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}, statusCode: 302}}]
`;

/** A counter of a running gateway's /metrics, summed over the series whose labels include `labels`. */
export async function metricSum(sluice: SluiceProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${sluice.admin}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** `extraArgs`: more flags for `sluice run` (timeouts, say). */
export async function startAttackGateway(extraArgs: string[] = []): Promise<AttackGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-attack-'));
  const admin = await startRawBackend('admin');
  const pub = await startRawBackend('public');
  writeFileSync(join(dir, 'gateway.yaml'), [httpGatewayYaml(80), serviceYaml('admin', admin), serviceYaml('public', pub), routesYaml].join('---\n'));
  const offset = await freePortOffset([80]);
  const sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), ...extraArgs]);
  const port = 80 + offset;
  // Ready once the routes serve (the admin API is ready before the manifests are applied).
  for (let tries = 0; ; tries++) {
    const served = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status, () => 0);
    if (served === 200) break;
    if (tries > 200) throw new Error(`routes not served: ${served}\n${sluice.logs()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  pub.requests.length = 0;
  return {
    sluice,
    port,
    admin,
    public: pub,
    seen: () => admin.requests.length + pub.requests.length,
    metric: (name, labels) => metricSum(sluice, name, labels),
    close: async () => {
      await sluice.stop();
      await admin.close();
      await pub.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The gateway of a describe block: started before its tests, stopped after them. Its fields read
 * the running one (a test sees them only once beforeAll has run).
 */
export function useAttackGateway(extraArgs: string[] = []): AttackGateway {
  let started: AttackGateway | undefined;
  beforeAll(async () => {
    started = await startAttackGateway(extraArgs);
  }, 60_000);
  afterAll(async () => {
    await started?.close();
  });
  const running = (): AttackGateway => {
    if (started === undefined) throw new Error('the attack gateway is not running (used outside a test?)');
    return started;
  };
  return {
    get sluice() { return running().sluice; },
    get port() { return running().port; },
    get admin() { return running().admin; },
    get public() { return running().public; },
    seen: () => running().seen(),
    metric: (name, labels) => running().metric(name, labels),
    close: () => running().close(),
  };
}
