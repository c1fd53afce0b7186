// The worker pool's trust in its workers and its bounded applies, with real worker threads on
// real sockets. A worker's thread is reached through Node's inspector (test/support/thread-inspector.ts):
// a malformed message is posted from inside the real worker, over its real port (no product code
// sends one: that is the failure), and a stuck worker is one whose thread really waits.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { VersionLate, type WorkerMetricsRegistry, type WorkerPool } from '../../cmd/workers.ts';
import { appliedOrLate, countedSince, startedOn, twoWorkers } from './support/worker-pool.ts';
import { DEFAULT_FRONT_DOOR_LIMITS } from '../../dataplane/front-door.ts';
import type { ApplyResult } from '../../dataplane/dataplane.ts';
import { request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';
import { inspectThread, type InspectedThread } from '../support/thread-inspector.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

const restarts = async (registry: WorkerMetricsRegistry) => (await registry.getSingleMetric('sluice_worker_restarts_total')!.get()).values.map((v) => [v.labels.reason, v.value]);

describe('worker pool: what workers send, and versions applied late', () => {
  let echo: EchoServer;
  let port: number;
  const inspected: InspectedThread[] = [];
  beforeAll(async () => {
    echo = await startEchoServer('a');
  });
  afterAll(async () => {
    await echo.close();
  });
  const irFor = (path: string) => singleHostIR(port, [route('one', { path: prefix(path) }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]);
  const inspect = async (threadId: number) => {
    const thread = await inspectThread(threadId);
    inspected.push(thread);
    return thread;
  };
  const cleanUp = async (pool: WorkerPool) => {
    for (const thread of inspected.splice(0)) await thread.detach();
    await pool.close();
  };

  // What each malformed message would have done unchecked is in its name.
  const peer = "{ ip: '10.0.0.1', port: 1, identity: 2, labels: [] }";
  const malformed: [string, string][] = [
    ['not an object', "'hello'"],
    ['a type the protocol does not have', "{ type: 'owned', id: 1 }"],
    ['an acknowledgement of a version it was never sent (would be shown as served)', "{ type: 'applied', id: 1, result: { version: 'forged', listeners: [] } }"],
    ['an answer to a request never sent', "{ type: 'done', id: 1e12 }"],
    ['a counter whose value is not a number (every later total wrong)', "{ type: 'metrics', id: 2, metrics: [{ name: 'sluice_http_requests_total', help: 'h', type: 'counter', values: [{ value: 'lots', labels: {} }] }] }"],
    ['a metric with an aggregator prom-client does not know (its sum throws)', "{ type: 'metrics', id: 2, metrics: [{ name: 'x_total', help: 'h', type: 'counter', aggregator: 'boom', values: [{ value: 1, labels: {} }] }] }"],
    ['a flow with a verdict that does not exist', `{ type: 'flows', flows: [{ time: '2026-12-05T00:00:00.000Z', verdict: 'ALLOWED', direction: 'ingress', protocol: 'TCP', source: ${peer}, destination: ${peer} }] }`],
    ['a flow without its peers', "{ type: 'flows', flows: [{ time: '2026-12-05T00:00:00.000Z', verdict: 'DROPPED', direction: 'ingress', protocol: 'TCP' }] }"],
  ];

  it('a worker that sends a malformed message is logged with SLU_WORKER_MESSAGE, ended and replaced; nothing of it is used, the primary and the other worker carry on', async () => {
    port = await freePort();
    const { pool, registry, logs } = twoWorkers();
    try {
      await pool.apply('v1', irFor('/v1'));
      for (const [i, [what, message]] of malformed.entries()) {
        const index = i % 2;
        const before = pool.threadIds();
        const other = before[1 - index];
        const thread = await inspect(before[index]!);
        await thread.evaluate(`process.getBuiltinModule('node:worker_threads').parentPort.postMessage(${message}), 'sent'`);
        await until(`${what}: worker ${index} replaced and serving v1`, () => pool.threadIds().length === 2 && !pool.threadIds().includes(before[index]!) && pool.workerVersions().every((w) => w.version === 'v1'));
        // The other worker was left alone.
        expect(pool.threadIds()).toContain(other);
        const line = logs.find((l) => l.code === 'SLU_WORKER_MESSAGE' && l.worker === index && !('seen' in l));
        expect(line?.msg).toMatch(new RegExp(`^SLU_WORKER_MESSAGE worker ${index} sent .+: ending it; a new one starts$`));
        if (line) Object.assign(line, { seen: true });
        await thread.detach();
      }
      expect(logs.filter((l) => l.code === 'SLU_WORKER_MESSAGE')).toHaveLength(malformed.length);
      expect(await restarts(registry)).toEqual([['malformed_message', malformed.length]]);
      // The version and the metrics are the workers' true ones.
      expect(pool.version).toBe('v1');
      const text = await registry.metrics();
      expect(text).not.toMatch(/forged|NaN|x_total/);
      expect(text).toMatch(/^sluice_config_version_info\{version="v1"\} 1$/m);
      expect(await Promise.all(Array.from({ length: 10 }, async () => (await request(port, '/v1')).status))).toEqual(Array(10).fill(200));
    } finally {
      await cleanUp(pool);
    }
  }, 120_000);

  it('a version no worker acknowledges in time fails as late (the last one stays the version); once the workers apply it, it is the version served, and a newer version supersedes a late one', async () => {
    port = await freePort();
    const { pool, registry } = twoWorkers([], DEFAULT_FRONT_DOOR_LIMITS, { timeoutMs: 2_000, watchdogMs: 600_000 });
    try {
      const started = await startedOn(pool, registry, 'v1', irFor('/v1'));
      const threads = await Promise.all(pool.threadIds().map((id) => inspect(id)));
      // Both stuck for longer than the bound, then free again: a slow version, not a broken worker.
      await Promise.all(threads.map((t) => t.block(3_000)));
      const late = await pool.apply('v2', irFor('/v2')).then(() => null, (error: unknown) => error);
      expect(late).toBeInstanceOf(VersionLate);
      expect(pool.version).toBe('v1');
      const result = await (late as VersionLate).late;
      expect(result).toEqual({ version: 'v2', listeners: [{ name: `127.0.0.1:${port}`, ok: true }] } satisfies ApplyResult);
      expect(pool.version).toBe('v2');
      expect(pool.workerVersions()).toEqual([{ worker: 0, version: 'v2' }, { worker: 1, version: 'v2' }]);
      expect((await request(port, '/v2')).status).toBe(200);
      // None was ended for it: the version itself was slow.
      expect(await countedSince(registry, 'sluice_worker_restarts_total', started)).toEqual({});

      // Late again, and then a newer version: the late one is not taken after it.
      await Promise.all(threads.map((t) => t.block(3_000)));
      const v3 = await pool.apply('v3', irFor('/v3')).then(() => null, (error: unknown) => error);
      expect(v3).toBeInstanceOf(VersionLate);
      // (v4 reaches the workers while they are still stuck in v3's block: late too on a loaded machine.)
      const v4 = appliedOrLate(pool.apply('v4', irFor('/v4')));
      expect(await (v3 as VersionLate).late).toBeNull();
      expect(await v4).toMatchObject({ version: 'v4' });
      expect(pool.version).toBe('v4');
    } finally {
      await cleanUp(pool);
    }
  }, 60_000);

  it.each([
    // The watchdog bound is also the time a replacement has to boot and apply (~1 s at load 8, 2-3 s
    // at load 8 and nice 5: with a 2-3 s watchdog each replacement was ended in turn and v2 rejected).
    ['the wait for the version ends first', { timeoutMs: 1_500, watchdogMs: 5_000 }],
    ['the watchdog ends them while the version is awaited', { timeoutMs: 12_000, watchdogMs: 5_000 }],
  ])('a version late because every worker is stuck is served once the watchdog has replaced them (the replacements start on it): %s', async (_, bounds) => {
    port = await freePort();
    const { pool, registry } = twoWorkers([], DEFAULT_FRONT_DOOR_LIMITS, bounds);
    try {
      // (v1 on fresh workers may outlast the short waits: startedOn.)
      const started = await startedOn(pool, registry, 'v1', irFor('/v1'));
      const stuck = pool.threadIds();
      const threads = await Promise.all(stuck.map((id) => inspect(id)));
      await Promise.all(threads.map((t) => t.block(600_000)));
      const late = await pool.apply('v2', irFor('/v2')).then(() => null, (error: unknown) => error);
      expect(late).toBeInstanceOf(VersionLate);
      expect(pool.version).toBe('v1');
      expect(await (late as VersionLate).late).toEqual({ version: 'v2', listeners: [{ name: `127.0.0.1:${port}`, ok: true }] });
      expect(pool.version).toBe('v2');
      // Both stuck ones ended by the watchdog (unresponsive), none blamed on the version. A
      // replacement slower to boot than the watchdog bound (a loaded machine) is ended too.
      expect(pool.threadIds().filter((id) => stuck.includes(id))).toEqual([]);
      const ended = await countedSince(registry, 'sluice_worker_restarts_total', started);
      expect(Object.keys(ended)).toEqual(['unresponsive']);
      expect(ended.unresponsive).toBeGreaterThanOrEqual(2);
      expect((await request(port, '/v2')).status).toBe(200);
    } finally {
      await cleanUp(pool);
    }
  }, 60_000);
});
