// Two real worker threads (cmd/workers.ts's WorkerPool) for the pool's tests: their own registry
// and captured primary logs.
import { WorkerMetricsRegistry, WorkerPool, type WorkerPoolOptions } from '../../../cmd/workers.ts';
import type { Flow } from '../../../ir/flow.ts';
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
