// A bad version never replaces the last good one across workers, with real worker threads on real
// sockets. Refused: an IR every worker's compile throws on (a route without its match: what a
// controller with a bug, or of another release, could send) — no fake needed. Crashing: every
// worker thread, replacements included, made to exit while it reads that one version (Node's
// inspector runs the hook in each thread before its own code: test/support/thread-inspector.ts);
// the pool under test is the real one.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { VersionLate, VersionRejected, WORKER_CRASH_LIMIT } from '../../cmd/workers.ts';
import { applyProblem } from '../../cmd/node.ts';
import { problemLine } from '../../controller/problems.ts';
import { DEFAULT_FRONT_DOOR_LIMITS } from '../../dataplane/front-door.ts';
import { counted, countedSince, startedOn, twoWorkers } from './support/worker-pool.ts';
import { podCounts, request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';
import { exitOnReading, hookWorkers, inspectThread, type InspectedThread } from '../support/thread-inspector.ts';
import { waitFor } from '../support/wait.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const until = (what: string, done: () => boolean) => waitFor(what, () => done() || undefined, 15_000);


describe('worker pool: a version that is refused or crashes its workers', () => {
  let a: EchoServer;
  let b: EchoServer;
  let port: number;
  beforeAll(async () => {
    [a, b] = await Promise.all([startEchoServer('a'), startEchoServer('b')]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
  });
  const irFor = (path: string, to: EchoServer = a) => singleHostIR(port, [route('one', { path: prefix(path) }, forwardTo('svc/x'))], [backend('svc/x', [to.endpoint])]);
  /** 20 requests, each on a connection of its own (the kernel spreads them over both workers): by which backend. */
  const answers = (path: string) => podCounts(port, path, 20);

  it('a version every worker refuses (a compile error) is rejected with SLU_VERSION_REJECTED: the last good one stays the version served, by every worker and by replacements; a newer version is applied', async () => {
    port = await freePort();
    const { pool, registry, logs } = twoWorkers();
    try {
      await pool.apply('v1', irFor('/', a));
      const broken = irFor('/', b);
      (broken.listeners[0]!.scopes[0]!.virtualHosts[0]!.routes[0] as { match: unknown }).match = null;
      const refused = await pool.apply('v2', broken).then(() => null, (error: unknown) => error);
      expect(refused).toBeInstanceOf(VersionRejected);
      expect((refused as VersionRejected).code).toBe('SLU_VERSION_REJECTED');
      expect((refused as Error).message).toMatch(/^SLU_VERSION_REJECTED no worker applied version v2: worker 0: configuration rejected: .+; still serving v1$/);
      // Nothing of v2 is reported as served: the pool's version, each worker's, and the answers.
      expect(pool.version).toBe('v1');
      expect(pool.workerVersions()).toEqual([{ worker: 0, version: 'v1' }, { worker: 1, version: 'v1' }]);
      expect(await answers('/r')).toEqual({ a: 20 });
      expect(logs.find((l) => l.code === 'SLU_VERSION_REJECTED')?.msg).toMatch(/^SLU_VERSION_REJECTED version v2 was not applied by any worker \(configuration rejected: .+\): rejected; replacements start on v1, the version served$/);
      expect(await counted(registry, 'sluice_worker_versions_rejected_total')).toEqual({ rejected: 1 });
      expect(await counted(registry, 'sluice_worker_apply_failures_total')).toEqual({ '0,rejected': 1, '1,rejected': 1 });
      // Once per version, not once per worker that applied or refused it.
      expect(await counted(registry, 'sluice_config_applies_total')).toEqual({ applied: 1, rejected: 1 });
      // Refused, not broken: no worker was ended for it.
      expect(await counted(registry, 'sluice_worker_restarts_total')).toEqual({});

      // A worker that dies now is replaced on v1, the last good version (not on v2, which it would refuse too).
      const before = pool.threadIds();
      await pool.terminate(0);
      await until('worker 0 replaced and serving v1', () => pool.threadIds().length === 2 && !pool.threadIds().includes(before[0]!) && pool.workerVersions()[0]!.version === 'v1');
      expect(await answers('/r')).toEqual({ a: 20 });

      // A newer version is applied (its delta is against v2, which the workers decoded, and v1).
      expect((await pool.apply('v3', irFor('/', b))).version).toBe('v3');
      expect(pool.workerVersions()).toEqual([{ worker: 0, version: 'v3' }, { worker: 1, version: 'v3' }]);
      expect(await answers('/r')).toEqual({ b: 20 });
      // The replacement's own apply of v1 is no version applied.
      expect(await counted(registry, 'sluice_config_applies_total')).toEqual({ applied: 2, rejected: 1 });
    } finally {
      await pool.close();
    }
  }, 60_000);

  it(`a version that ends its workers ${WORKER_CRASH_LIMIT} times is rejected with SLU_VERSION_CRASHED: replacements start on the last good version, it is not sent again, and a newer version is applied`, async () => {
    port = await freePort();
    const { pool, registry, logs } = twoWorkers();
    // Every worker thread, now and started later, exits (code 70) when it reads a version holding "/crash-me".
    const hook = await hookWorkers(exitOnReading('/crash-me'));
    try {
      await pool.apply('v1', irFor('/', a));
      const failed = await pool.apply('v2', irFor('/crash-me', b)).then(() => null, (error: unknown) => error);
      // Both workers ended at once: the version may yet be served by their replacements (late);
      // the first replacement that dies on it too makes it rejected, and the late wait gives up.
      if (failed instanceof VersionLate) {
        const settled = await failed.settled;
        expect(settled).toBeInstanceOf(VersionRejected);
        expect((settled as VersionRejected).code).toBe('SLU_VERSION_CRASHED');
        expect((settled as VersionRejected).detail).toMatch(new RegExp(`^version v2 ended its workers ${WORKER_CRASH_LIMIT} times \\(within 120 s\\) while they applied it; still serving v1$`));
        expect(await failed.late).toBeNull();
      } else {
        expect((failed as VersionRejected).code).toBe('SLU_VERSION_CRASHED');
      }
      await until('both workers serving v1 again', () => pool.workerVersions().every((w) => w.version === 'v1'));
      expect(pool.version).toBe('v1');
      expect(await answers('/r')).toEqual({ a: 20 });
      expect((await request(port, '/crash-me')).echo?.pod).toBe('a'); // v1's route, to a: v2 is not served
      const line = logs.find((l) => l.code === 'SLU_VERSION_CRASHED');
      expect(line?.msg).toMatch(new RegExp(`^SLU_VERSION_CRASHED version v2 ended its workers ${WORKER_CRASH_LIMIT} times \\(within 120 s\\) while they applied it: rejected; replacements start on v1, the version served$`));
      expect(await counted(registry, 'sluice_worker_versions_rejected_total')).toEqual({ crashed: 1 });
      expect(await counted(registry, 'sluice_config_applies_total')).toEqual({ applied: 1, rejected: 1 });
      // The two first workers, and replacements that had v2 in hand (the first of them made it the third death).
      const exits = (await counted(registry, 'sluice_worker_restarts_total')).exit ?? 0;
      expect(exits).toBeGreaterThanOrEqual(WORKER_CRASH_LIMIT);
      expect(exits).toBeLessThanOrEqual(4);
      // The replacements stay up: no restart loop on it.
      await sleep(1_500);
      expect((await counted(registry, 'sluice_worker_restarts_total')).exit).toBe(exits);

      // Sent again (a controller re-sending it, a reconnect): refused at once, no worker ended.
      expect(pool.refuses('v2')).toBe(true);
      const again = await pool.apply('v2', irFor('/crash-me', b)).then(() => null, (error: unknown) => error);
      expect((again as VersionRejected).code).toBe('SLU_VERSION_CRASHED');
      expect((await counted(registry, 'sluice_worker_restarts_total')).exit).toBe(exits);

      // A newer version is tried, and served.
      expect((await pool.apply('v3', irFor('/', b))).version).toBe('v3');
      expect(pool.workerVersions()).toEqual([{ worker: 0, version: 'v3' }, { worker: 1, version: 'v3' }]);
      expect(await answers('/r')).toEqual({ b: 20 });
      // Each refusal of v2 once, whatever the worker count and the replacements.
      expect(await counted(registry, 'sluice_config_applies_total')).toEqual({ applied: 2, rejected: 2 });
    } finally {
      await hook.stop();
      await pool.close();
    }
  }, 60_000);

  it(`a version that ends only worker 1 (${WORKER_CRASH_LIMIT} times: it and its replacements) while worker 0 serves it is taken back from every worker: all serve the last good version, worker 0 without a failed request or a restart`, async () => {
    port = await freePort();
    const takenBack: { code: string; detail: string; serving: string | null }[] = [];
    const { pool, registry, logs } = twoWorkers([], DEFAULT_FRONT_DOOR_LIMITS, { onTakenBack: (rejected, serving) => takenBack.push({ code: rejected.code, detail: rejected.detail, serving }) });
    // Worker 1's threads only (the one running and each replacement) exit when they read a version holding "/crash-one".
    const hook = await hookWorkers(exitOnReading('/crash-one', 1));
    try {
      await pool.apply('v1', irFor('/', a));
      const [healthy] = pool.threadIds();
      // Worker 0 applied it, worker 1 died on it: applied (the dead one's replacement starts on it).
      expect((await pool.apply('v2', irFor('/crash-one', b))).version).toBe('v2');
      expect(pool.version).toBe('v2');
      // From here only worker 0 listens (worker 1's replacements die before they bind) until worker
      // 1 serves again: every request is answered, by v2 (b) and then by v1 (a) again (/crash-one/
      // is routed by both versions).
      const seen: string[] = [];
      const failures: string[] = [];
      await waitFor('every worker back on v1', async () => {
        // Not `instanceof Error`: an error made by Node's core is of another realm than jest's test code.
        const r = await request(port, '/crash-one/r', { timeoutMs: 5_000 }).then((response) => response, (error: Error) => ({ failed: error.message }));
        if ('failed' in r) failures.push(r.failed);
        else seen.push(r.echo?.pod ?? `status ${r.status}`);
        return (pool.workerVersions().every((w) => w.version === 'v1') && pool.version === 'v1') || undefined;
      }, 15_000);
      expect(failures).toEqual([]);
      expect(seen[0]).toBe('b');
      expect(seen.at(-1)).toBe('a');
      // Each answer is one version's: b until the take-back, a from then on.
      expect(seen.join('')).toMatch(/^b+a+$/);
      expect(await answers('/r')).toEqual({ a: 20 });
      expect((await request(port, '/crash-one')).echo?.pod).toBe('a');
      expect(pool.threadIds()).toContain(healthy);
      expect(takenBack).toEqual([{ code: 'SLU_VERSION_CRASHED', detail: `version v2 ended its workers ${WORKER_CRASH_LIMIT} times (within 120 s) while they applied it; still serving v1`, serving: 'v1' }]);
      expect(logs.find((l) => l.code === 'SLU_VERSION_CRASHED')?.msg).toBe(`SLU_VERSION_CRASHED version v2 ended its workers ${WORKER_CRASH_LIMIT} times (within 120 s) while they applied it: rejected; every worker goes back to v1, the version served before it`);
      expect(await counted(registry, 'sluice_worker_versions_rejected_total')).toEqual({ crashed: 1 });
      // Worker 1 three times; worker 0 never.
      expect(await counted(registry, 'sluice_worker_restarts_total')).toEqual({ exit: WORKER_CRASH_LIMIT });
      const version = await registry.getSingleMetric('sluice_config_version_info')!.get();
      expect(version.values.filter((v) => v.value === 1).map((v) => v.labels.version)).toEqual(['v1']);

      // Sent again: refused at once; a newer version is applied by both.
      const again = await pool.apply('v2', irFor('/crash-one', b)).then(() => null, (error: unknown) => error);
      expect((again as VersionRejected).code).toBe('SLU_VERSION_CRASHED');
      expect((await pool.apply('v3', irFor('/', b))).version).toBe('v3');
      expect(pool.workerVersions()).toEqual([{ worker: 0, version: 'v3' }, { worker: 1, version: 'v3' }]);
      expect(await answers('/r')).toEqual({ b: 20 });
      expect(await counted(registry, 'sluice_worker_restarts_total')).toEqual({ exit: WORKER_CRASH_LIMIT });
    } finally {
      await hook.stop();
      await pool.close();
    }
  }, 60_000);

  it('a served version sent again that then ends its workers goes back to the version served before it, never to itself', async () => {
    port = await freePort();
    const takenBack: { code: string; serving: string | null }[] = [];
    const { pool, registry, logs } = twoWorkers([], DEFAULT_FRONT_DOOR_LIMITS, { onTakenBack: (rejected, serving) => takenBack.push({ code: rejected.code, serving }) });
    let hook: Awaited<ReturnType<typeof hookWorkers>> | null = null;
    try {
      await pool.apply('v0', irFor('/', a));
      expect((await pool.apply('v1', irFor('/again', b))).version).toBe('v1');
      // Sent again (a controller reconnecting re-sends what it published): served as it was.
      expect((await pool.apply('v1', irFor('/again', b))).version).toBe('v1');
      // From now on worker 1's threads exit when they read v1 in full (a replacement's start): the
      // served version ends its workers — worker 1 dies for another cause first (its replacement
      // starts on v1, the current version).
      hook = await hookWorkers(exitOnReading('/again', 1));
      await pool.terminate(1);
      await until('every worker back on v0', () => pool.version === 'v0' && pool.workerVersions().every((w) => w.version === 'v0'));
      expect(takenBack).toEqual([{ code: 'SLU_VERSION_CRASHED', serving: 'v0' }]);
      expect(logs.find((l) => l.code === 'SLU_VERSION_CRASHED')?.msg).toMatch(/^SLU_VERSION_CRASHED version v1 ended its workers 3 times .*: rejected; every worker goes back to v0, the version served before it$/);
      expect(await answers('/again/r')).toEqual({ a: 20 });
      // v0 stays: no restart loop on v1.
      const restarts = await counted(registry, 'sluice_worker_restarts_total');
      await sleep(1_500);
      expect(await counted(registry, 'sluice_worker_restarts_total')).toEqual(restarts);
      expect(pool.workerVersions()).toEqual([{ worker: 0, version: 'v0' }, { worker: 1, version: 'v0' }]);
    } finally {
      await hook?.stop();
      await pool.close();
    }
  }, 60_000);

  /** Both workers stuck (blocked through the inspector) for `ms`, longer than the pool's 1 s wait: the version's answers come after it. */
  const blockBoth = async (pool: ReturnType<typeof twoWorkers>['pool'], ms: number): Promise<InspectedThread[]> => {
    const threads = await Promise.all(pool.threadIds().map((id) => inspectThread(id)));
    await Promise.all(threads.map((t) => t.block(ms)));
    return threads;
  };

  it('a version every worker refuses after the wait for it gave up (late) is rejected then (SLU_VERSION_REJECTED): the late apply settles, every worker stays on the last good version', async () => {
    port = await freePort();
    // (The watchdog, which would end the stuck workers, is kept out of this one.)
    const { pool, registry, logs } = twoWorkers([], DEFAULT_FRONT_DOOR_LIMITS, { timeoutMs: 1_000, watchdogMs: 600_000 });
    let threads: InspectedThread[] = [];
    try {
      const started = await startedOn(pool, registry, 'v1', irFor('/', a));
      const broken = irFor('/', b);
      (broken.listeners[0]!.scopes[0]!.virtualHosts[0]!.routes[0] as { match: unknown }).match = null;
      threads = await blockBoth(pool, 2_500);
      const late = await pool.apply('v2', broken).then(() => null, (error: unknown) => error);
      expect(late).toBeInstanceOf(VersionLate);
      expect((late as VersionLate).message).toMatch(/^SLU_VERSION_LATE no worker applied version v2: worker 0: no answer within 1000 ms; worker 1: no answer within 1000 ms; still serving v1 until every worker serves it$/);
      // Both refuse it once unblocked: settled as refused (before, those answers were dropped and it never settled).
      const settled = await (late as VersionLate).settled;
      expect(settled).toBeInstanceOf(VersionRejected);
      expect((settled as VersionRejected).code).toBe('SLU_VERSION_REJECTED');
      expect((settled as VersionRejected).detail).toMatch(/^version v2 was not applied by any worker \(configuration rejected: .+\); still serving v1$/);
      expect(pool.version).toBe('v1');
      expect(pool.workerVersions()).toEqual([{ worker: 0, version: 'v1' }, { worker: 1, version: 'v1' }]);
      expect(await answers('/r')).toEqual({ a: 20 });
      expect(logs.filter((l) => /^worker [01] did not apply version v2 \(after the wait for it\): configuration rejected: /.test(String(l.msg)))).toHaveLength(2);
      expect(await countedSince(registry, 'sluice_worker_apply_failures_total', started)).toEqual({ '0,timeout': 1, '1,timeout': 1, '0,rejected': 1, '1,rejected': 1 });
      expect(await countedSince(registry, 'sluice_worker_versions_rejected_total', started)).toEqual({ rejected: 1 });
      expect(await countedSince(registry, 'sluice_config_applies_total', started)).toEqual({ rejected: 1 });
      expect(await countedSince(registry, 'sluice_worker_restarts_total', started)).toEqual({});
    } finally {
      for (const t of threads) await t.detach();
      await pool.close();
    }
  }, 60_000);

  it('a version one worker fails after the wait while the other applies it late: that worker is ended and its replacement starts on it, then every worker serves it and the late apply settles as served', async () => {
    port = await freePort();
    const { pool, registry, logs } = twoWorkers([], DEFAULT_FRONT_DOOR_LIMITS, { timeoutMs: 1_000, watchdogMs: 600_000 });
    // Worker 1's threads cannot decode a delta holding "/late-one" (a full version they can): a real failed answer, of that worker only.
    const hook = await hookWorkers(`{ const parse = JSON.parse; JSON.parse = function (text, ...rest) { if (typeof text === 'string' && text.includes('/late-one') && text.includes('"full":false') && process.getBuiltinModule('node:worker_threads').workerData?.index === 1) throw new Error('hooked: cannot decode'); return parse.call(this, text, ...rest); }; }`);
    let threads: InspectedThread[] = [];
    try {
      const started = await startedOn(pool, registry, 'v1', irFor('/', a));
      const [first] = pool.threadIds();
      threads = await blockBoth(pool, 2_500);
      const late = await pool.apply('v2', irFor('/late-one', b)).then(() => null, (error: unknown) => error);
      expect(late).toBeInstanceOf(VersionLate);
      const settled = await (late as VersionLate).settled;
      expect(settled).toEqual({ version: 'v2', listeners: [{ name: `127.0.0.1:${port}`, ok: true }] });
      expect(pool.version).toBe('v2');
      expect(pool.workerVersions()).toEqual([{ worker: 0, version: 'v2' }, { worker: 1, version: 'v2' }]);
      expect(pool.threadIds()[0]).toBe(first);
      expect(await answers('/late-one/r')).toEqual({ b: 20 });
      expect(logs.some((l) => /^worker 1 did not apply version v2 \(after the wait for it\): hooked: cannot decode/.test(String(l.msg)))).toBe(true);
      expect(await countedSince(registry, 'sluice_worker_apply_failures_total', started)).toEqual({ '0,timeout': 1, '1,timeout': 1, '1,error': 1 });
      expect(await countedSince(registry, 'sluice_worker_restarts_total', started)).toEqual({ apply_failed: 1 });
      expect(await countedSince(registry, 'sluice_config_applies_total', started)).toEqual({ applied: 1 });
    } finally {
      for (const t of threads) await t.detach();
      await hook.stop();
      await pool.close();
    }
  }, 60_000);
});


describe('applyProblem: what sluice run lists and sluice dataplane acknowledges for a version not served', () => {
  it('names a stable code first: the refusal\'s, the late apply\'s, else SLU_APPLY_FAILED with the version served', () => {
    const late = new VersionLate('no worker applied version v2: worker 0: no answer within 30000 ms; still serving v1 until every worker serves it', new Promise(() => undefined));
    expect(problemLine(applyProblem(late, 'v2', 'v1'))).toBe(late.message);
    expect(late.message).toMatch(/^SLU_VERSION_LATE no worker applied version v2: /);
    const crashed = new VersionRejected('SLU_VERSION_CRASHED', 'version v2 ended its workers 3 times before: not sent again; still serving v1');
    expect(applyProblem(crashed, 'v2', 'v1')).toEqual({ code: 'SLU_VERSION_CRASHED', message: crashed.detail });
    // Anything else (the eBPF maps could not be written, test/bpf/standalone-apply-failed.e2e.test.ts): SLU_APPLY_FAILED.
    expect(problemLine(applyProblem(new Error('bpf_map_update_elem: ENOMEM'), 'v2', null))).toBe('SLU_APPLY_FAILED version v2 could not be applied (bpf_map_update_elem: ENOMEM); still serving nothing');
  });
});
