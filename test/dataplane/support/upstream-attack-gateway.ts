// The gateway the upstream attack tests aim at: a real `sluice run` with one HTTP listener in front
// of a hostile backend (scripted-backend.ts) and an honest one. Routes: `/timed` (PathPrefix) to the
// hostile backend with `timeouts.request` 1 s and `backendRequest` 1 s, `/patient` to it with
// `timeouts.request` 10 s, `/h2` to a hostile HTTP/2 backend (raw-h2-backend.ts), `/mirrored` to the
// honest backend with a RequestMirror copy to the hostile one, `/other` to the honest
// backend (another route, another endpoint: what a hostile backend must never disturb), everything
// else to the hostile backend without timeouts.

import { afterAll, beforeAll, expect } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGatewayYaml, serviceYaml } from '../../e2e/backends.ts';
import { freePortOffset } from '../../support/ports.ts';
import { startSluice, type SluiceProcess } from '../../support/sluice-process.ts';
import { metricSum } from './attack-gateway.ts';
import type net from 'node:net';
import { RawConnection } from './raw-http.ts';
import { startRawH2Backend, type RawH2Backend } from './raw-h2-backend.ts';
import { startScriptedBackend, type ScriptedBackend } from './scripted-backend.ts';

export interface UpstreamAttackGateway {
  sluice: SluiceProcess;
  port: number;
  hostile: ScriptedBackend;
  honest: ScriptedBackend;
  /** An HTTP/2 cleartext backend (Service appProtocol kubernetes.io/h2c), behind `/h2`. */
  h2: RawH2Backend;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

const routesYaml = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hostile, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: hostile, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /timed}}]
    timeouts: {request: 1s, backendRequest: 1s}
    backendRefs: [{name: hostile, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /patient}}]
    timeouts: {request: 10s}
    backendRefs: [{name: hostile, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: honest, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /other}}]
    backendRefs: [{name: honest, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /mirrored}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: hostile, port: 80}}}]
    backendRefs: [{name: honest, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h2, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /h2}}], backendRefs: [{name: h2, port: 80}]}]
`;

/** The gateway of a describe block (started before its tests, stopped after); `extraArgs`: more `sluice run` flags. */
export function useUpstreamAttackGateway(extraArgs: string[] = []): UpstreamAttackGateway {
  let started: (UpstreamAttackGateway & { dir: string }) | undefined;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-upattack-'));
    const hostile = await startScriptedBackend();
    const honest = await startScriptedBackend();
    const h2 = await startRawH2Backend();
    const h2Service = serviceYaml('h2', h2).replace('ports: [{name: http, port: 80}]', 'ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]');
    writeFileSync(join(dir, 'gateway.yaml'), [httpGatewayYaml(80), serviceYaml('hostile', hostile), serviceYaml('honest', honest), h2Service, routesYaml].join('---\n'));
    const offset = await freePortOffset([80]);
    const sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), ...extraArgs]);
    const port = 80 + offset;
    for (let tries = 0; ; tries++) {
      const served = await fetch(`http://127.0.0.1:${port}/other/ready`).then((r) => r.status, () => 0);
      if (served === 200) break;
      if (tries > 200) throw new Error(`routes not served: ${served}\n${sluice.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    started = { dir, sluice, port, hostile, honest, h2, metric: (name, labels) => metricSum(sluice, name, labels) };
  }, 60_000);
  afterAll(async () => {
    if (started === undefined) return;
    await started.sluice.stop();
    await started.hostile.close();
    await started.honest.close();
    await started.h2.close();
    rmSync(started.dir, { recursive: true, force: true });
  });
  const running = (): UpstreamAttackGateway => {
    if (started === undefined) throw new Error('the upstream attack gateway is not running (used outside a test?)');
    return started;
  };
  return {
    get sluice() { return running().sluice; },
    get port() { return running().port; },
    get hostile() { return running().hostile; },
    get honest() { return running().honest; },
    get h2() { return running().h2; },
    metric: (name, labels) => running().metric(name, labels),
  };
}

export const head = (...lines: string[]): string => `${lines.join('\r\n')}\r\n\r\n`;
/** A fake response smuggled after a real one: its bytes must reach no client. */
export const EVIL = 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nEVIL';

export interface Answer {
  text: string;
  status: number;
  /** What follows the head (chunked framing as sent to the client). */
  body: string;
  /** Whether the gateway closed the client connection. */
  closed: boolean;
}

/** Whether `text` holds one whole response (Content-Length or chunked framing). */
export function complete(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const headText = text.slice(0, end);
  const length = /\r\ncontent-length: *(\d+)/i.exec(headText);
  if (length !== null) return text.length >= end + 4 + Number(length[1]);
  if (/\r\ntransfer-encoding: *chunked/i.test(headText)) return /(^|\r\n)0\r\n([^\r\n]+\r\n)*\r\n$/.test(text.slice(end + 4));
  return /^HTTP\/1\.1 (1\d\d|204|304) /.test(text);
}

/** One GET on a fresh client connection: what came back once the response is whole or the connection closed. */
export async function ask(port: number, path: string, headers = ''): Promise<Answer> {
  const connection = await RawConnection.open(port);
  try {
    connection.send(`GET ${path} HTTP/1.1\r\nHost: attack.example.com\r\n${headers}\r\n`);
    const text = await connection.until((received, closed) => closed || complete(received), 5_000);
    // Bytes after the response, had any been relayed, would show here.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const all = connection.text;
    expect(all).toBe(text);
    const end = text.indexOf('\r\n\r\n');
    return { text, status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0), body: end < 0 ? '' : text.slice(end + 4), closed: connection.isClosed };
  } finally {
    connection.close();
  }
}

/** `write` answers the requests to `/s/<name>`. */
export function script(gateway: UpstreamAttackGateway, name: string, write: (socket: net.Socket) => void): void {
  gateway.hostile.scripts.set(name, (socket) => write(socket));
}

/** The upstream connection the last request to `/s/<name>` came on. */
export function connectionOf(gateway: UpstreamAttackGateway, name: string): number {
  const request = gateway.hostile.requests.findLast((r) => r.target.includes(`/s/${name}`));
  if (request === undefined) throw new Error(`no request for ${name} reached the backend`);
  return request.connection;
}

export async function untilClosed(gateway: UpstreamAttackGateway, connection: number): Promise<void> {
  for (let i = 0; i < 100 && !gateway.hostile.closed(connection); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(gateway.hostile.closed(connection)).toBe(true);
}

/** The gateway still serves: an honest answer from the hostile backend (on a new connection when `not` is given) and from another route. */
export async function stillServes(gateway: UpstreamAttackGateway, not?: number): Promise<void> {
  const again = await ask(gateway.port, '/plain');
  expect(again.status).toBe(200);
  const on = Number(/conn=(\d+)/.exec(again.body)?.[1]);
  expect(again.body).toBe(`/plain conn=${on}\n`);
  if (not !== undefined) expect(on).not.toBe(not);
  const other = await ask(gateway.port, '/other/x');
  expect(other.status).toBe(200);
  expect(other.body).toMatch(/^\/other\/x conn=\d+\n$/);
}

/** A 502 the gateway wrote itself: whole, the client connection kept (it did nothing wrong). */
export function expectBadGateway(answer: Answer): void {
  expect(answer.status).toBe(502);
  expect(answer.body).toBe('Bad Gateway\n');
  expect(answer.closed).toBe(false);
  expect(answer.text).not.toContain('EVIL');
}
