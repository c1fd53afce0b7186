// Review of the pool's all-or-nothing versions (cmd/workers.ts), with real worker threads. Workers
// that do not answer a version within the wait, while another applies it, are ended by apply()
// itself (apply_timeout). Each of those ends counted as a death of the version: with three of four
// workers stuck, the third end rejected a good version (SLU_VERSION_CRASHED) — what a machine stalled
// past the wait, or a loaded CI box, met — and took it back from the worker that applied it. A slow
// apply is no crash: another worker applied the version, so the slow ones are replaced on it and
// it is served. What apply() reports, pool.version and what the workers serve agree.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { VersionLate, WorkerMetricsRegistry, WorkerPool } from '../../cmd/workers.ts';
import { DEFAULT_FRONT_DOOR_LIMITS } from '../../dataplane/front-door.ts';
import { capturingLogger } from './support/harness.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';
import { inspectThread, type InspectedThread } from '../support/thread-inspector.ts';
import { waitFor } from '../support/wait.ts';
import { counted } from './support/worker-pool.ts';

describe('review: worker pool versions when apply() ends the workers that did not answer', () => {
  let a: EchoServer;
  beforeAll(async () => {
    a = await startEchoServer('a');
  });
  afterAll(async () => {
    await a.close();
  });

  it('three of four workers stuck past the wait: they are replaced on the version, not counted against it; what apply() reports, pool.version and every worker agree on it', async () => {
    const port = await freePort();
    const irFor = (path: string) => singleHostIR(port, [route('one', { path: prefix(path) }, forwardTo('svc/x'))], [backend('svc/x', [a.endpoint])]);
    const { logger, logs } = capturingLogger();
    const registry = new WorkerMetricsRegistry();
    const pool = new WorkerPool({
      count: 4,
      logger,
      registry,
      onFlows: () => undefined,
      // The wait covers the first apply's thread start-up too: 1 s was too short on a loaded CI box
      // (three of four fresh workers not booted in time rejected v1 itself).
      timeoutMs: 5_000,
      watchdogMs: 600_000,
      init: { logLevel: 'warn', portOffset: 0, redirectPortOffset: 0, frontDoor: DEFAULT_FRONT_DOOR_LIMITS, flows: { sampleRate: 1, bufferSize: 4096 }, rateLimit: { redisTimeoutMs: 50, replicas: 1, maxLocalKeys: 1000 } },
    });
    let threads: InspectedThread[] = [];
    try {
      await pool.apply('v1', irFor('/')).catch((error: unknown) => (error instanceof VersionLate ? error.late : Promise.reject(error)));
      await waitFor('every worker on v1', () => pool.workerVersions().every((w) => w.version === 'v1') || undefined, 15_000);
      // On a loaded box v1's own apply can end fresh workers slow to boot (apply_timeout): only v2's are asked about.
      const restartsBefore = await counted(registry, 'sluice_worker_restarts_total');
      // Workers 1-3 stuck for longer than the pool's 5 s wait; worker 0 answers.
      threads = await Promise.all(pool.threadIds().slice(1).map((id) => inspectThread(id)));
      await Promise.all(threads.map((t) => t.block(6_500)));
      const reported = await pool.apply('v2', irFor('/v2')).then((r) => r.version, (error: unknown) => `refused: ${(error as Error).message.split(' ')[0]}`);
      // Let replacements start and any take-back finish.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      await waitFor('every worker answering', () => pool.workerVersions().length === 4 && pool.workerVersions().every((w) => w.version !== null) || undefined, 15_000);
      const serving = [...new Set(pool.workerVersions().map((w) => w.version))];
      expect({ reported, poolVersion: pool.version, serving }).toEqual({ reported: 'v2', poolVersion: 'v2', serving: ['v2'] });
      expect(logs.filter((l) => String(l.code).startsWith('SLU_VERSION'))).toEqual([]);
      const restarts = await counted(registry, 'sluice_worker_restarts_total');
      expect(Object.fromEntries(Object.entries(restarts).map(([reason, n]) => [reason, n - (restartsBefore[reason] ?? 0)]).filter(([, n]) => n !== 0))).toEqual({ apply_timeout: 3 });
      expect(await counted(registry, 'sluice_worker_versions_rejected_total')).toEqual({});
    } finally {
      for (const t of threads) await t.detach().catch(() => undefined);
      await pool.close();
    }
  }, 60_000);
});
