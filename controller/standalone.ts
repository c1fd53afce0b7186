// Standalone mode: a manifest folder → translate → the in-process dataplane,
// with statuses served by the admin API. Changes to the folder are applied
// after a short debounce (100 ms after the last change, at most 1 s after the first).
import type { Logger } from 'pino';
import { DataplaneNode, type BpfOptions } from '../dataplane/node.ts';
import { processRegistry, startAdminServer } from './admin.ts';
import { DemoBackends } from './demo/demo-backends.ts';
import type { IR } from './ir/types.ts';
import { withImplicitGatewayClasses } from './sources/implicit-classes.ts';
import { ManifestFolder } from './sources/manifest-folder.ts';
import { SNAPSHOT_FIELD_BY_KIND, type InputSnapshot, type KubeObject } from './sources/objects.ts';
import type { Condition, ObjectStatus } from './status/conditions.ts';
import { foldDataplaneResult, type SocketFailure } from './status/dataplane-result.ts';
import { StatusStore } from './status/store.ts';
import type { IngressOptions } from './translate/ingress.ts';
import type { PolicyOptions } from './translate/networkpolicy.ts';
import { resolveRedisSettings, type RedisSources } from './translate/ratelimit-redis.ts';
import { translate } from './translate/translate.ts';
import { serialDebouncer } from './debounce.ts';

export interface StandaloneOptions {
  manifests: string;
  bindAddress: string;
  portOffset: number;
  adminAddress: string;
  controllerName: string;
  /** GatewayClass names served even without a GatewayClass object or with another controllerName. */
  gatewayClasses: string[];
  ingress: IngressOptions;
  /** Who the gateway is, for network policy translation. */
  policy?: PolicyOptions;
  demoBackends: boolean;
  /** Rate limiting: where Redis is, and the dataplane-side knobs. Absent: defaults, no Redis. */
  rateLimit?: RateLimitOptions;
  /** eBPF socket load balancing and policy. Absent: off. */
  bpf?: BpfOptions;
  logger: Logger;
}


export interface RateLimitOptions {
  redis: RedisSources;
  redisTimeoutMs: number;
  replicas: number;
  maxLocalKeys: number;
}

export interface StandaloneHandle {
  close(): Promise<void>;
}

export async function runStandalone(options: StandaloneOptions): Promise<StandaloneHandle> {
  const { logger } = options;
  const registry = processRegistry();
  const folder = new ManifestFolder(options.manifests);
  const rateLimitOptions = options.rateLimit ?? { redis: {}, redisTimeoutMs: 50, replicas: 1, maxLocalKeys: 10_000 };
  const node = new DataplaneNode({ portOffset: options.portOffset, logger, registry, rateLimit: rateLimitOptions, ...(options.bpf ? { bpf: options.bpf } : {}) });
  const demo = options.demoBackends ? new DemoBackends(options.manifests, logger) : null;
  const store = new StatusStore();
  let applied: IR | null = null;
  let socketFailures: SocketFailure[] = [];
  let snapshot: InputSnapshot | null = null;
  let reportedProblems = new Set<string>();

  const reconcile = async (): Promise<void> => {
    // (recursive once at most: demo files are written only when missing)
    const load = folder.load();
    if (!load.changed && applied) return;
    const problems = new Set(load.problems.map((p) => `${p.file}: ${p.message}`));
    if (demo && (await demo.sync(load.snapshot))) return reconcile(); // it wrote files: read them now
    snapshot = withImplicitGatewayClasses(load.snapshot, options.gatewayClasses, options.controllerName);
    const result = translate(snapshot, {
      controllerName: options.controllerName,
      bindAddress: options.bindAddress,
      servedClassNames: options.gatewayClasses,
      ingress: options.ingress,
      ...(options.policy ? { policy: options.policy } : {}),
    });
    for (const p of result.problems) problems.add(p);
    // Redis for global rate limits may come from a Secret among the manifests: re-read each time.
    const redis = resolveRedisSettings(rateLimitOptions.redis, process.env, snapshot);
    if (redis.problem) problems.add(redis.problem);
    node.rateLimits.setRedis(redis.settings);
    for (const p of problems) if (!reportedProblems.has(p)) logger.warn({ problem: p }, p);
    reportedProblems = problems;
    if (result.ir.version !== applied?.version) {
      try {
        const outcome = await node.apply(result.ir);
        socketFailures = outcome.listeners.filter((l) => !l.ok).map((l) => ({ name: l.name, error: l.error ?? 'failed' }));
        applied = result.ir;
      } catch (err) {
        // The dataplane keeps serving the last good version.
        logger.error({ err, version: result.ir.version }, 'the configuration could not be applied; keeping the last good one');
        return;
      }
    }
    const statuses = foldDataplaneResult(result.statuses, result.ir, socketFailures);
    const changed = new Set(store.update(statuses, new Date()));
    for (const s of statuses) logStatusProblems(s, changed, logger);
  };

  const scheduler = serialDebouncer(reconcile, (err) => logger.error({ err }, 'reconcile failed'));
  await scheduler.runNow();
  const stopWatching = folder.watch(() => scheduler.schedule());
  const admin = await startAdminServer(
    options.adminAddress,
    {
      ready: () => applied !== null,
      ir: () => applied,
      objects: () => (snapshot ? store.withStatus(allObjects(snapshot)) : []),
      ...(node.agent ? { flows: node.agent } : {}),
    },
    registry,
  );
  logger.info({ manifests: options.manifests, admin: options.adminAddress }, 'sluice standalone is running');

  return {
    async close() {
      stopWatching();
      scheduler.stop();
      await admin.close();
      await node.close();
      await demo?.close();
    },
  };
}

function allObjects(snapshot: InputSnapshot): KubeObject[] {
  return Object.values(SNAPSHOT_FIELD_BY_KIND).flatMap((field) => snapshot[field]);
}

/** Logs each object whose status changed and now carries a False condition (route, listener or own). */
function logStatusProblems(s: ObjectStatus, changed: Set<string>, logger: Logger): void {
  const key = s.namespace ? `${s.kind}/${s.namespace}/${s.name}` : `${s.kind}/${s.name}`;
  if (!changed.has(key)) return;
  const falses: string[] = [];
  const collect = (where: string, conditions: Condition[] | undefined) => {
    for (const c of conditions ?? []) {
      if (c.status === 'False' && c.type !== 'Conflicted') falses.push(`${where}${c.type}=False ${c.reason}: ${c.message}`);
    }
  };
  const status = s.status as { conditions?: Condition[]; listeners?: { name: string; conditions: Condition[] }[]; parents?: { parentRef: { name: string }; conditions: Condition[] }[] };
  collect('', status.conditions);
  for (const l of status.listeners ?? []) collect(`listener ${l.name}: `, l.conditions);
  for (const p of status.parents ?? []) collect(`parent ${p.parentRef.name}: `, p.conditions);
  if (falses.length > 0) logger.warn({ object: key, conditions: falses }, `${key}: ${falses.join('; ')}`);
}
