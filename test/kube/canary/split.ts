// A canary split served by a real `sluice run`: a stable backend that answers at once, a canary
// that answers after `canaryDelayMs` and with 500 to every other request when `canaryFails`, both
// reporting their name, behind one HTTPRoute whose weights a test rewrites.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSluice, type SluiceProcess } from '../../support/sluice-process.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from '../../e2e/backends.ts';

export interface SplitOptions {
  /** The HTTPRoute's name, in namespace `default`. */
  route: string;
  stable: string;
  canary: string;
  canaryDelayMs: number;
  canaryFails: boolean;
}

export interface SplitFixture {
  sluice: SluiceProcess;
  /** The gateway's HTTP port on 127.0.0.1. */
  port: number;
  /** Rewrites the route: the split rule (named `split`) with these weights, plus `/direct` → stable only. */
  setWeights(stable: number, canary: number): void;
  stop(): Promise<void>;
}

export function routeYaml(o: SplitOptions, stable: number, canary: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${o.route}, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - name: split
    backendRefs:
    - {name: ${o.stable}, port: 80, weight: ${stable}}
${canary > 0 ? `    - {name: ${o.canary}, port: 80, weight: ${canary}}\n` : ''}  - matches: [{path: {type: PathPrefix, value: /direct}}]
    backendRefs: [{name: ${o.stable}, port: 80}]
`;
}

export async function startSplit(o: SplitOptions, stableWeight: number, canaryWeight: number): Promise<SplitFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-canary-split-'));
  const stable: NamedBackend = await startNamedBackend(o.stable);
  let served = 0;
  const canary: Server = createServer((req, res) => {
    req.resume();
    const status = o.canaryFails && served++ % 2 === 1 ? 500 : 200;
    setTimeout(() => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ backend: o.canary })), o.canaryDelayMs);
  });
  await new Promise<void>((resolve) => canary.listen(0, '127.0.0.1', resolve));
  const canaryPort = (canary.address() as { port: number }).port;
  writeFileSync(join(dir, 'gateway.yaml'), `${GATEWAY_YAML}---\n${serviceYaml(o.stable, stable)}---\n${serviceYaml(o.canary, { port: canaryPort })}`);
  writeFileSync(join(dir, 'route.yaml'), routeYaml(o, stableWeight, canaryWeight));
  const port = await freePort();
  const sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
  return {
    sluice,
    port,
    setWeights: (s, c) => writeFileSync(join(dir, 'route.yaml'), routeYaml(o, s, c)),
    async stop() {
      await sluice.stop();
      await stable.close();
      canary.closeAllConnections();
      await new Promise((resolve) => canary.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Samples of one metric family in the Prometheus text format: labels and value per line. */
export function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of m[2]!.matchAll(/(\w+)="([^"]*)"/g)) labels[k!] = v!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples whose labels include `match`. */
export function sumOf(rows: ReturnType<typeof samples>, match: Record<string, string>): number {
  return rows.filter((r) => Object.entries(match).every(([k, v]) => r.labels[k] === v)).reduce((a, r) => a + r.value, 0);
}
