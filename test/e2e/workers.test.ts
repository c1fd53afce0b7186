// `sluice run --workers 2`, a real process: both worker threads accept on the one port
// (SO_REUSEPORT), every request is served across a storm of configuration changes, a local rate
// limit is one limit across the workers (shared memory), and /metrics sums what each worker counted.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { versionedRouteYaml } from '../e2e/backends.ts';
import type { SluiceProcess } from '../support/sluice-process.ts';
import { startWorkersRun, type WorkersRun } from './workers-run.ts';
import { request, type Response } from '../dataplane/support/client.ts';

type Reply = Response;

/** One request on a connection of its own (agent: false), so the kernel picks a worker for each. */
const get = (port: number, path: string, headers: Record<string, string> = {}, agent: http.Agent | false = false): Promise<Reply> => request(port, path, { headers, agent });

const POLICY_YAML = `apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: hundred, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  local:
    rules:
    - clientSelectors: [{headers: [{name: x-client-id, type: Distinct}]}]
      limit: {requests: 100, unit: Minute}
`;

/** The sum of a metric's samples in a Prometheus text exposition, optionally by one label's value. */
function samples(text: string, name: string): { labels: string; value: number }[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .map((line) => {
      const space = line.lastIndexOf(' ');
      return { labels: line.slice(name.length, space), value: Number(line.slice(space + 1)) };
    });
}

describe('sluice run --workers 2', () => {
  let run: WorkersRun;
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  /** Every response this file received from the gateway: what /metrics must add up to. */
  let answered = 0;
  const send = async (path: string, headers: Record<string, string> = {}, agent: http.Agent | false = false): Promise<Reply> => {
    const reply = await get(port, path, headers, agent);
    answered++;
    return reply;
  };

  beforeAll(async () => {
    run = await startWorkersRun('workers', 0);
    ({ dir, sluice, port } = run);
  }, 90_000);

  afterAll(async () => {
    await run?.stop();
  });

  it('serves every request across 15 configuration changes (new connections and keep-alive alike), then the last version from both workers', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const failures: string[] = [];
    let served = 0;
    let running = true;
    const client = async (keepAlive: boolean): Promise<void> => {
      while (running) {
        try {
          const reply = await send('/storm', {}, keepAlive ? agent : false);
          if (reply.status === 200) served++;
          else failures.push(`status ${reply.status}`);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    };
    const clients = [client(false), client(false), client(true), client(true)];
    for (let version = 1; version <= 15; version++) {
      writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(version));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    // Until both workers serve the last version: each new connection lands on either.
    const deadline = Date.now() + 15_000;
    let lastVersion = 0;
    while (Date.now() < deadline) {
      const replies = await Promise.all(Array.from({ length: 20 }, () => send('/probe')));
      lastVersion = replies.filter((r) => r.headers['x-version'] === 'v15').length;
      if (lastVersion === 20) break;
    }
    running = false;
    await Promise.all(clients);
    agent.destroy();
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(50);
    expect(lastVersion).toBe(20);
    // The admin API says which version each worker serves: both the one shown, and /readyz agrees.
    const config = (await (await fetch(`${sluice.admin}/api/config`)).json()) as { version: string; workers: unknown };
    expect(config.workers).toEqual([{ worker: 0, version: config.version }, { worker: 1, version: config.version }]);
    expect(await (await fetch(`${sluice.admin}/readyz`)).text()).toBe('ready\n');
  }, 60_000);

  it('a local limit of 100 per minute admits 100 across both workers (± the tokens refilled while the requests ran)', async () => {
    writeFileSync(join(dir, 'policy.yaml'), POLICY_YAML);
    // Programmed when a request with another client id gets the policy's headers.
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && (await send('/', { 'x-client-id': 'probe' })).headers['ratelimit-policy'] === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const before = await (await fetch(`${sluice.admin}/metrics`)).text();
    const started = performance.now();
    const replies: Reply[] = [];
    // 150 requests, 10 at a time, each on its own connection.
    for (let i = 0; i < 15; i++) replies.push(...(await Promise.all(Array.from({ length: 10 }, () => send('/', { 'x-client-id': 'hundred' })))));
    const elapsedMs = performance.now() - started;
    const admitted = replies.filter((r) => r.status === 200).length;
    expect(replies.filter((r) => r.status !== 200 && r.status !== 429)).toEqual([]);
    // 100 per minute refills one token per 600 ms.
    const refilled = Math.floor(elapsedMs / 600);
    process.stderr.write(`workers: 100/minute admitted ${admitted} of 150 in ${Math.round(elapsedMs)} ms (${refilled} tokens refilled meanwhile)\n`);
    expect(admitted).toBeGreaterThanOrEqual(100);
    expect(admitted).toBeLessThanOrEqual(100 + refilled + 1);
    // Both workers decided some of them: the limit was shared, not one worker's alone.
    const after = await (await fetch(`${sluice.admin}/metrics`)).text();
    const perWorker = (text: string) => new Map(samples(text, 'sluice_worker_http_requests_total').map((s) => [s.labels, s.value]));
    const [b, a] = [perWorker(before), perWorker(after)];
    expect(a.size).toBe(2);
    for (const [labels, value] of a) expect(value - (b.get(labels) ?? 0)).toBeGreaterThan(0);
  }, 60_000);

  it('/metrics sums what the workers counted: every answered request once, split over both workers', async () => {
    const text = await (await fetch(`${sluice.admin}/metrics`)).text();
    expect(samples(text, 'sluice_workers')).toEqual([{ labels: '', value: 2 }]);
    const total = samples(text, 'sluice_http_requests_total').reduce((sum, s) => sum + s.value, 0);
    expect(total).toBe(answered);
    const perWorker = samples(text, 'sluice_worker_http_requests_total');
    expect(perWorker.map((s) => s.labels).sort()).toEqual(['{worker="0"}', '{worker="1"}']);
    expect(perWorker.reduce((sum, s) => sum + s.value, 0)).toBe(answered);
    for (const s of perWorker) expect(s.value).toBeGreaterThan(answered / 10);
    // A listener is up when every worker bound it; the version is one, not one per worker.
    expect(samples(text, 'sluice_listener_up')).toEqual([{ labels: '{listener="127.0.0.1:80"}', value: 1 }]);
    expect(samples(text, 'sluice_config_version_info').map((s) => s.value)).toEqual([1]);
    // Flow metrics: the workers count their forwarded requests, the primary the rest; one family each.
    expect(text.match(/^# TYPE sluice_flow_http_requests_total /gm)).toHaveLength(1);
    // (The rate-limited requests' flows are drops, sent to the primary in batches every 20 ms.)
    const flowRequests = async () => samples(await (await fetch(`${sluice.admin}/metrics`)).text(), 'sluice_flow_http_requests_total').reduce((sum, s) => sum + s.value, 0);
    const deadline = Date.now() + 5_000;
    while ((await flowRequests()) !== answered && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await flowRequests()).toBe(answered);
  });

  it('request flows: the latest of both workers merged in time order (observe --last), and followed as they come (observe -f)', async () => {
    // Each worker keeps its own: 20 requests on new connections land on both.
    for (let i = 0; i < 20; i++) await send(`/flows/${i}`);
    const flows = (await (await fetch(`${sluice.admin}/api/flows?type=l7&last=20`)).text()).trim().split('\n').map((line) => JSON.parse(line) as { time: string; l7: { path: string } });
    // (Two workers' flows of one millisecond keep ring order, not request order: compared as a set.)
    expect(flows.map((f) => f.l7.path).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `/flows/${i}`).sort());
    expect(flows.map((f) => f.time)).toEqual(flows.map((f) => f.time).sort());

    // A follower gets each new request's flow, whichever worker served it (they relay while followed).
    const controller = new AbortController();
    const followed = await fetch(`${sluice.admin}/api/flows?type=l7&last=0&follow=true&http-path=/followed/.*`, { signal: controller.signal });
    const reader = followed.body!.getReader();
    const seen: string[] = [];
    let buffered = '';
    const FOLLOWED = 10;
    const followedPaths = () => seen.filter((path) => path !== '/followed/probe');
    const reading = (async () => {
      while (followedPaths().length < FOLLOWED) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += Buffer.from(value).toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const line of lines) if (line !== '') seen.push((JSON.parse(line) as { l7: { path: string } }).l7.path);
      }
    })();
    // The relay is switched on by a message to each worker: wait until a request's flow arrives.
    const deadline = Date.now() + 10_000;
    while (seen.length === 0 && Date.now() < deadline) {
      await send('/followed/probe');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(seen.length).toBeGreaterThan(0);
    for (let i = 0; i < FOLLOWED; i++) await send(`/followed/${i}`);
    await Promise.race([reading, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    controller.abort();
    expect(followedPaths().sort()).toEqual(Array.from({ length: FOLLOWED }, (_, i) => `/followed/${i}`).sort());
  }, 30_000);
});
