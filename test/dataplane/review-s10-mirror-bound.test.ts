// Review (session 10): RequestMirror copies to a mirror that accepts and never answers. A copy
// has no client to leave and lived up to --backend-idle-timeout (5 min by default); copies were not
// counted, so each mirrored request held one more upstream connection (1 324 mirrored requests left
// 1 350 connections open at the mirror: sustained, the gateway runs out of descriptors). Through a
// real `sluice run`: the copies in flight to one mirror stop at MIRROR_IN_FLIGHT_LIMIT, the real
// requests all answer, the copies over it are dropped and counted, and once the silent copies reach
// their deadline (the route's request timeout, else MIRROR_COPY_TIMEOUT_MS) copies flow again.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGatewayYaml, serviceYaml } from '../e2e/backends.ts';
import { runServing, type SluiceProcess } from '../support/sluice-process.ts';
import { honestAnswer, startScriptedBackend, type ScriptedBackend } from './support/scripted-backend.ts';
import { MIRROR_COPY_TIMEOUT_MS, MIRROR_IN_FLIGHT_LIMIT } from '../../dataplane/upstream/mirror.ts';

const COPIES = MIRROR_IN_FLIGHT_LIMIT + 300;

describe('mirror copies to a mirror that never answers are bounded (sluice run)', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  let hostile: ScriptedBackend;
  let honest: ScriptedBackend;
  let agent: http.Agent;
  let silent = true;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-review-s10-mirror-'));
    hostile = await startScriptedBackend();
    honest = await startScriptedBackend();
    hostile.scripts.set('silent', () => undefined);
    // Silent until the test lets the mirror answer again.
    hostile.scripts.set('mirror', (socket, request) => {
      if (!silent) honestAnswer(socket, request);
    });
    const routes = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /mirrored}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: hostile, port: 80}}}]
    backendRefs: [{name: honest, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /timed}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: hostile, port: 80}}}]
    backendRefs: [{name: honest, port: 80}]
    timeouts: {request: 2s}
  - backendRefs: [{name: honest, port: 80}]
`;
    writeFileSync(join(dir, 'all.yaml'), [httpGatewayYaml(80), serviceYaml('hostile', hostile), serviceYaml('honest', honest), routes].join('---\n'));
    ({ sluice, port } = await runServing(dir));
    agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  }, 60_000);

  afterAll(async () => {
    agent?.destroy();
    await sluice?.stop();
    await hostile?.close();
    await honest?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string) =>
    new Promise<number>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
    });
  const getMany = async (path: string, count: number) => {
    const statuses: number[] = [];
    for (let sent = 0; sent < count; sent += 50) statuses.push(...(await Promise.all(Array.from({ length: Math.min(50, count - sent) }, () => get(path)))));
    return statuses;
  };
  const openAtMirror = () => {
    let open = 0;
    for (let i = 0; i < hostile.connections(); i++) if (!hostile.closed(i)) open++;
    return open;
  };
  const dropped = async () => {
    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    const line = /^sluice_mirror_copies_dropped_total\{([^}]*)\} (\d+)$/m.exec(metrics);
    return line === null ? { labels: '', count: 0 } : { labels: line[1]!, count: Number(line[2]) };
  };

  it("a copy lasts at most its route's request timeout (Envoy's shadow requests), here 2 s", async () => {
    const statuses = await getMany('/timed/s/silent', 10);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    for (const until = Date.now() + 1000; hostile.requests.length < 10 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50));
    expect(hostile.requests).toHaveLength(10);
    expect(openAtMirror()).toBe(10);
    // Well before MIRROR_COPY_TIMEOUT_MS (15 s): the route's 2 s, with slack for a loaded box.
    for (const until = Date.now() + 8000; openAtMirror() > 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
    expect(openAtMirror()).toBe(0);
  }, 30_000);

  it(`${COPIES} mirrored requests: every real one answered, ${MIRROR_IN_FLIGHT_LIMIT} copies held at the mirror, the rest dropped and counted`, async () => {
    const statuses = await getMany('/mirrored/s/mirror', COPIES);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(honest.requests.filter((r) => r.target === '/mirrored/s/mirror')).toHaveLength(COPIES);
    await new Promise((r) => setTimeout(r, 500));
    // Every copy sent holds its connection (the mirror never answers): exactly the bound.
    expect(openAtMirror()).toBe(MIRROR_IN_FLIGHT_LIMIT);
    expect(hostile.requests.filter((r) => r.target === '/mirrored/s/mirror')).toHaveLength(MIRROR_IN_FLIGHT_LIMIT);
    const { labels, count } = await dropped();
    expect(count).toBe(COPIES - MIRROR_IN_FLIGHT_LIMIT);
    // The route and backend as sluice_http_requests_total names them.
    expect(labels).toBe('route="httproute/default/app/rule/0/match/0",backend="service/default/hostile/port/80"');
    expect(await get('/other')).toBe(200);
  }, 120_000);

  it('the silent copies end at their deadline (not the 5 min idle bound), and copies to the answering mirror flow again', async () => {
    // Bounded wait: the deadline plus slack for a loaded box.
    for (const until = Date.now() + MIRROR_COPY_TIMEOUT_MS + 20_000; openAtMirror() > 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 200));
    expect(openAtMirror()).toBe(0);
    silent = false;
    const before = (await dropped()).count;
    const seen = hostile.requests.length;
    const statuses = await getMany('/mirrored/s/mirror', 100);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    for (const until = Date.now() + 10_000; hostile.requests.length < seen + 100 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50));
    expect(hostile.requests.length - seen).toBe(100);
    expect((await dropped()).count).toBe(before);
  }, 120_000);
});
