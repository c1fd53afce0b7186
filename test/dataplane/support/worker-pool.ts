// Two real worker threads (cmd/workers.ts's WorkerPool) for the pool's tests: their own registry
// and captured primary logs.
import { VersionLate, WorkerMetricsRegistry, WorkerPool, type WorkerPoolOptions } from '../../../cmd/workers.ts';
import type { ApplyResult } from '../../../dataplane/dataplane.ts';
import type { Flow } from '../../../ir/flow.ts';
import type { HttpIR } from '../../../ir/types.ts';
import { waitFor } from '../../support/wait.ts';
import { DEFAULT_FRONT_DOOR_LIMITS, type FrontDoorLimits } from '../../../dataplane/front-door.ts';
import { capturingLogger } from './harness.ts';

/** Flows the workers relay go to `flows`; `bounds`: the pool's waits and its onTakenBack (WorkerPoolOptions). */
export function twoWorkers(flows: Flow[] = [], frontDoor: FrontDoorLimits = DEFAULT_FRONT_DOOR_LIMITS, bounds: Pick<WorkerPoolOptions, 'timeoutMs' | 'watchdogMs' | 'onTakenBack'> = {}) {
  const registry = new WorkerMetricsRegistry();
  const { logger, logs } = capturingLogger();
  const pool = new WorkerPool({
    count: 2,
    logger,
    registry,
    onFlows: (batch) => flows.push(...batch),
    ...bounds,
    init: {
      logLevel: 'warn',
      portOffset: 0,
      redirectPortOffset: 0,
      frontDoor,
      flows: { sampleRate: 1, bufferSize: 4096 },
      rateLimit: { redisTimeoutMs: 50, replicas: 1, maxLocalKeys: 1000 },
    },
  });
  return { pool, registry, logs };
}

/** A metric of the pool's registry as {labels joined by ',': value} (the workers' summed). */
export async function counted(registry: WorkerMetricsRegistry, name: string): Promise<Record<string, number>> {
  return Object.fromEntries((await registry.getSingleMetric(name)!.get()).values.map((v) => [Object.values(v.labels).join(','), v.value]));
}

/** What an apply ends with: its result, or when it came back late (VersionLate) what its late wait settles with (null: not served). */
export function appliedOrLate(applying: Promise<ApplyResult>): Promise<ApplyResult | null> {
  return applying.catch((error: unknown) => (error instanceof VersionLate ? error.late : Promise.reject(error)));
}

/** The pool's own counters, as startedOn() leaves them for countedSince(). */
const POOL_COUNTERS = ['sluice_worker_restarts_total', 'sluice_worker_apply_failures_total', 'sluice_worker_versions_rejected_total', 'sluice_config_applies_total'] as const;
export type PoolCounts = Record<(typeof POOL_COUNTERS)[number], Record<string, number>>;

/**
 * `version` in both of the pool's fresh workers however long they take to start, and what the pool
 * counted by then. A thread loads the dataplane before it answers (~1 s at load 8 on 2 cores, 2-3 s
 * with nice 5 on top), past the 1-2 s waits tests set for stuck workers: the first version may come
 * back late or a slow worker be timed out and replaced. Tests count theirs from here (countedSince).
 */
export async function startedOn(pool: WorkerPool, registry: WorkerMetricsRegistry, version: string, http: HttpIR): Promise<PoolCounts> {
  await appliedOrLate(pool.apply(version, http));
  const serving = () => pool.threadIds().length === pool.size && pool.version === version && pool.workerVersions().every((w) => w.version === version);
  await waitFor(`every worker serving ${version}`, () => (serving() ? true : undefined), 30_000);
  return Object.fromEntries(await Promise.all(POOL_COUNTERS.map(async (name) => [name, await counted(registry, name)] as const))) as PoolCounts;
}

/** A counter as counted() gives it, less what it was at `before` (startedOn's); the labels it did not change left out. */
export async function countedSince(registry: WorkerMetricsRegistry, name: keyof PoolCounts, before: PoolCounts): Promise<Record<string, number>> {
  const changed = Object.entries(await counted(registry, name)).map(([labels, value]) => [labels, value - (before[name][labels] ?? 0)] as const);
  return Object.fromEntries(changed.filter(([, added]) => added !== 0));
}
