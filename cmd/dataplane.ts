// Kubernetes mode, one dataplane replica (`sluice dataplane`): subscribes to
// the controller's versioned snapshots, applies each to its DataplaneNode
// (proxy, rate limits, BPF agent) and acknowledges it. When the controller or
// the API server is away it keeps serving the last version it applied.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { processRegistry, startAdminServer, type Running } from './admin.ts';
import type { IR } from '../ir/types.ts';
import type { ApplyResult } from '../dataplane/dataplane.ts';
import { SnapshotSubscriber, type ApplyOutcome } from '../dataplane/config/subscriber.ts';
import type { FrontDoorLimits } from '../dataplane/front-door.ts';
import { applyProblem, startNode, type BpfOptions, type NodeFlowOptions, type NodeRateLimitOptions } from './node.ts';
import { problemLine } from '../controller/problems.ts';
import type { RedisSettings } from '../dataplane/ratelimit/limiter.ts';
import { releaseStartupMemory } from './memory.ts';
import { VersionLate, VersionRejected } from './workers.ts';

export interface DataplaneProcessOptions {
  /** The controller's snapshot endpoint, e.g. http://sluice-controller.sluice-system.svc:18000. */
  controllerUrl: string;
  snapshotToken?: string;
  /** This replica's name in acknowledgements (default: the host name, which is the pod name). */
  name?: string;
  adminAddress: string;
  portOffset: number;
  rateLimit: NodeRateLimitOptions;
  redis: RedisSettings | null;
  bpf?: BpfOptions;
  /** Flow records and the access log (--flow-*, --request-flows, --access-log*); defaults when absent. */
  flows?: NodeFlowOptions;
  /** Client timeouts and connection limits; defaults when absent. */
  frontDoor?: FrontDoorLimits;
  /** Worker threads serving the listeners (--workers); absent: 1, this thread. */
  workers?: number;
  /** --session-key-file; absent: a random key of this process. */
  sessionKey?: Buffer;
  logger: Logger;
}

export async function runDataplane(options: DataplaneProcessOptions): Promise<Running> {
  const { logger } = options;
  const registry = processRegistry();
  const node = startNode({
    portOffset: options.portOffset,
    logger,
    registry,
    rateLimit: options.rateLimit,
    ...(options.bpf ? { bpf: options.bpf } : {}),
    ...(options.frontDoor ? { frontDoor: options.frontDoor } : {}),
    ...(options.flows ? { flows: options.flows } : {}),
    ...(options.workers ? { workers: options.workers } : {}),
    ...(options.sessionKey ? { sessionKey: options.sessionKey } : {}),
  });
  node.rateLimits.setRedis(options.redis);
  let applied: IR | null = null;
  /** Settles what the subscriber awaits of the version last served: taken back (an outcome), or nothing more (null, at the next apply). */
  let takeBack: ((outcome: ApplyOutcome | null) => void) | null = null;
  /** The promise the subscriber awaits for a version just served (ApplyOutcome.late). */
  const whileServed = (): Promise<ApplyOutcome | null> => new Promise((settle) => (takeBack = settle));
  // With --workers: a version served and then taken back (it ended some workers 3 times) is
  // acknowledged again, ok:false with SLU_VERSION_CRASHED, serving the one before it.
  node.onTakenBack((rejected, serving) => {
    applied = serving;
    const settle = takeBack;
    takeBack = null;
    settle?.({ ok: false, listeners: [], error: rejected.message, serving: serving?.version ?? null });
  });
  const name = options.name ?? hostname();
  const subscriber = new SnapshotSubscriber({
    url: options.controllerUrl,
    ...(options.snapshotToken ? { token: options.snapshotToken } : {}),
    name,
    logger: logger.child({ component: 'subscriber' }),
    apply: async (version, ir) => {
      takeBack?.(null);
      takeBack = null;
      try {
        const outcome = await node.apply(ir);
        if (applied === null) releaseStartupMemory();
        applied = ir;
        return { ok: true, listeners: outcome.listeners, late: whileServed() };
      } catch (err) {
        logger.error({ err, version }, 'the configuration could not be applied; keeping the last good one');
        // With --workers: served after all once the workers apply it late (or their replacements do),
        // or rejected for good (it ended them 3 times: SLU_VERSION_CRASHED) — acknowledged again either way.
        const lateOutcome = (settled: ApplyResult | VersionRejected | null): ApplyOutcome | null => {
          if (settled === null) return null;
          if (settled instanceof VersionRejected) return { ok: false, listeners: [], error: settled.message };
          applied = ir;
          return { ok: true, listeners: settled.listeners, late: whileServed() };
        };
        const late = err instanceof VersionLate ? { late: err.settled.then(lateOutcome) } : {};
        // Every failed ack names its stable code first (the controller's Programmed message shows it).
        return { ok: false, listeners: [], error: problemLine(applyProblem(err, version, applied?.version ?? null)), ...late };
      }
    },
  });
  const admin = await startAdminServer(
    options.adminAddress,
    { ready: () => applied !== null, ir: () => applied, workers: () => node.workers(), objects: () => [], ui: { mode: 'dataplane' }, flows: node.flows },
    registry,
  );
  subscriber.start();
  logger.info({ controller: options.controllerUrl, name, admin: options.adminAddress }, 'sluice dataplane is running');
  return {
    async close() {
      await subscriber.stop();
      await admin.close();
      await node.close();
    },
  };
}
