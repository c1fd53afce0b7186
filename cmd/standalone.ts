// Standalone mode: a manifest folder → translate → the in-process dataplane,
// with statuses served by the admin API. Changes to the folder are applied
// after a short debounce (100 ms after the last change, at most 1 s after the first).
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { applyProblem, startNode, type BpfOptions, type NodeFlowOptions } from './node.ts';
import { VersionLate, VersionRejected } from './workers.ts';
import type { FrontDoorLimits } from '../dataplane/front-door.ts';
import { parseHostPort } from '../ir/host-port.ts';
import { processRegistry, startAdminServer, type Running } from './admin.ts';
import type { IR } from '../ir/types.ts';
import { withImplicitGatewayClasses } from '../controller/sources/implicit-classes.ts';
import { ProblemLog, type Problem } from '../controller/problems.ts';
import { LOSS_SETTLE_MS, ManifestFolder, leftOutLine, type ReadError } from '../controller/sources/manifest-folder.ts';
import { StartupCheckFailed, checkFolder, checkPorts, pathProblem, unwritableFolder, type PortClaim } from './startup-checks.ts';
import { SNAPSHOT_FIELD_BY_KIND, type InputSnapshot, type KubeObject } from '../controller/sources/objects.ts';
import type { Condition, ObjectStatus } from '../controller/status/conditions.ts';
import { assembleStatuses } from '../controller/status/assemble.ts';
import { socketFailure, type SocketFailure } from '../controller/status/dataplane-result.ts';
import { StatusStore } from '../controller/status/store.ts';
import type { IngressOptions } from '../controller/translate/options.ts';
import type { PolicyOptions } from '../controller/translate/networkpolicy.ts';
import { resolveRedisSettings, type RedisSources } from './redis-settings.ts';
import { Translator } from '../controller/translate/translate.ts';
import { rehearseEdits } from '../controller/translate/rehearse.ts';
import { isPlannedAddress } from '../controller/translate/addresses.ts';
import { serialDebouncer } from '../controller/debounce.ts';
import { releaseStartupMemory } from './memory.ts';
import { nothingServed } from './nothing-served.ts';

/**
 * The demo backends are test doubles (test/support/demo/), left out of the container image: loaded
 * only for --demo-backends, by this one dynamic import (the layer rule allows no other way in).
 */
const demoModule = (): Promise<typeof import('../test/support/demo/demo-backends.ts')> => import('../test/support/demo/demo-backends.ts');

/** False where test/ is absent (the image): --demo-backends then needs a source checkout. */
export const demoBackendsAvailable = (): Promise<boolean> => demoModule().then(() => true, () => false);

export interface StandaloneOptions {
  manifests: string;
  bindAddress: string;
  portOffset: number;
  /** Added to the ports of redirects Sluice derives (clients connect to the bound ports): portOffset when absent. */
  redirectPortOffset?: number;
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
  /** Flow records and the access log (--flow-*, --request-flows, --access-log*); defaults when absent. */
  flows?: NodeFlowOptions;
  /** Client timeouts and connection limits. Absent: defaults. */
  frontDoor?: FrontDoorLimits;
  /** Worker threads serving the listeners (--workers); absent: 1, this thread. */
  workers?: number;
  /** --session-key-file; absent: a random key of this process. */
  sessionKey?: Buffer;
  logger: Logger;
}


export interface RateLimitOptions {
  redis: RedisSources;
  redisTimeoutMs: number;
  replicas: number;
  maxLocalKeys: number;
}

export async function runStandalone(options: StandaloneOptions): Promise<Running> {
  const { logger } = options;
  const folder = new ManifestFolder(options.manifests);
  // One translator for the process: each change costs what it touches, and unchanged IR parts keep
  // their identity for the dataplane (controller/translate/memo.ts).
  const translator = new Translator();
  // The last translation, by the folder's snapshot it was made of (the folder hands the same one
  // back while nothing changed): the start-up check's translation is the first reconcile's, not
  // made twice (~0.5 s at 10 000 routes). The options are the process's, the same every time.
  let last: { loaded: InputSnapshot; snapshot: InputSnapshot; result: ReturnType<Translator['translate']> } | null = null;
  // The options carry what translation reads (controllerName, bindAddress, ingress, policy) under the same names.
  const translateOptions = { ...options, servedClassNames: options.gatewayClasses, standalone: true };
  const translateOnce = (loaded: InputSnapshot) => {
    if (last?.loaded === loaded) return last;
    const snapshot = withImplicitGatewayClasses(loaded, options.gatewayClasses, options.controllerName);
    const result = translator.translate(snapshot, translateOptions);
    last = { loaded, snapshot, result };
    return last;
  };
  // Nothing is started or written before this: demo backends, certificates, eBPF, sockets.
  await checkStartup(options, folder, (loaded) => translateOnce(loaded).result.ir);

  const registry = processRegistry();
  const sourceMetrics = sourceReadMetrics(registry);
  const rateLimitOptions = options.rateLimit ?? { redis: {}, redisTimeoutMs: 50, replicas: 1, maxLocalKeys: 10_000 };
  // eBPF attaches to the cgroup --bpf-cgroup names, else to one Sluice makes for itself: never unasked to one it shares.
  const bpf = options.bpf ? { bpf: { ...options.bpf, dedicatedCgroup: true } } : {};
  const node = startNode({ portOffset: options.portOffset, redirectPortOffset: options.redirectPortOffset ?? options.portOffset, logger, registry, rateLimit: rateLimitOptions, ...bpf, ...(options.frontDoor ? { frontDoor: options.frontDoor } : {}), ...(options.flows ? { flows: options.flows } : {}), ...(options.workers ? { workers: options.workers } : {}), ...(options.sessionKey ? { sessionKey: options.sessionKey } : {}) });
  const demo = options.demoBackends ? new (await demoModule()).DemoBackends(options.manifests, logger) : null;
  const store = new StatusStore();
  const problemLog = new ProblemLog(logger);
  let applied: IR | null = null;
  let socketFailures: SocketFailure[] = [];
  let snapshot: InputSnapshot | null = null;
  /** A version the workers applied late (VersionLate): taken by the next reconcile, as if the folder had changed. */
  let retryApply = false;

  /** Folders under --manifests not read (dependency and hidden ones): one info line whenever they change. */
  let leftOutSaid = '';
  const sayLeftOut = (leftOut: string[]): void => {
    const key = leftOut.join('\n');
    if (key === leftOutSaid) return;
    leftOutSaid = key;
    const line = leftOutLine(options.manifests, leftOut);
    if (line !== null) logger.info({ manifests: options.manifests, leftOut }, line);
  };
  /** False when the folder had not changed (the debouncer then starts no burst). */
  /** Reconciles started, and whether the folder changed since start: the rehearsal below stops at either. */
  let reconciles = 0;
  let edited = false;
  const reconcile = async (): Promise<boolean> => {
    reconciles++;
    // (recursive once at most: demo files are written only when missing)
    const load = folder.load();
    sourceMetrics.observe(load.readErrors);
    sayLeftOut(load.leftOut);
    if (load.settling.length > 0) scheduler.schedule(LOSS_SETTLE_MS); // read those files again: a loss that stands is taken
    if (!load.changed && applied && !retryApply) return false;
    retryApply = false;
    const problems: Problem[] = [...load.problems, ...nothingServed(load.snapshot, options.manifests, true)];
    if (demo && (await demo.sync(load.snapshot))) return reconcile(); // it wrote files: read them now
    const translated = translateOnce(load.snapshot);
    snapshot = translated.snapshot;
    const { result } = translated;
    problems.push(...result.problems);
    // Redis for global rate limits may come from a Secret among the manifests: re-read each time.
    // Settings made unusable (the Secret edited to a bad type or URL) keep the Redis in use.
    const redis = resolveRedisSettings(rateLimitOptions.redis, process.env, snapshot);
    if (redis.problem) problems.push({ code: 'SLU_REDIS_SETTINGS', message: redis.invalid ? `${redis.problem}; the Redis settings in use are kept` : redis.problem });
    if (!redis.invalid) node.rateLimits.setRedis(redis.settings);
    problemLog.update(problems);
    if (result.ir.version !== applied?.version) {
      try {
        const outcome = await node.apply(result.ir);
        socketFailures = outcome.listeners.filter((l) => !l.ok).map((l) => socketFailure(l));
        applied = result.ir;
      } catch (err) {
        // The dataplane keeps serving the last good version.
        logger.error({ err, version: result.ir.version }, 'the configuration could not be applied; keeping the last good one');
        // Refused by the dataplane, late (until every worker serves it), or failed otherwise (e.g. the
        // eBPF maps could not be written: the agent put them back): listed (`/api/status`) with its
        // stable code until a version is applied.
        problemLog.update([...problems, applyProblem(err, result.ir.version, applied?.version ?? null)]);
        // With --workers, one the workers apply after the wait (or their replacements do) is served
        // after all: reconcile again then to take it (its statuses, /api/config, /readyz).
        if (err instanceof VersionLate) void err.settled.then((late) => {
          if (late === null) return;
          // Rejected after all (it ended the replacements too): listed as a refusal at once is.
          if (late instanceof VersionRejected) return problemLog.update([...problems, { code: late.code, message: late.detail }]);
          retryApply = true;
          scheduler.schedule();
        });
        return true;
      }
    }
    // The version is served: requests waiting for it are answered before the statuses are made.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const statuses = assembleStatuses(result, { socketFailures });
    const changed = new Set(store.update(statuses, new Date()));
    // Only the changed ones (one route edited among 10 000: one status, not a walk over all).
    for (const key of changed) {
      const s = store.get(key);
      if (s) logStatusProblems(s, changed, logger);
    }
    return true;
  };

  const scheduler = serialDebouncer(reconcile, (err) => logger.error({ err }, 'reconcile failed'));
  // With --workers, a version served and then taken back (it ended some workers 3 times): the one
  // before is served again; the reconcile this starts finds the version refused and lists it.
  node.onTakenBack((_rejected, serving) => {
    applied = serving;
    retryApply = true;
    scheduler.schedule();
  });
  await scheduler.runNow();
  const stopWatching = folder.watch(() => {
    edited = true;
    scheduler.schedule();
  });
  const admin = await startAdminServer(
    options.adminAddress,
    {
      ready: () => applied !== null,
      ir: () => applied,
      workers: () => node.workers(),
      objects: () => (snapshot ? store.withStatus(allObjects(snapshot)) : []),
      problems: () => problemLog.list(),
      ui: { mode: 'run', controllerName: options.controllerName },
      flows: node.flows,
    },
    registry,
  );
  logger.info({ manifests: options.manifests, admin: options.adminAddress }, 'sluice standalone is running');
  // The translator's edit path rehearsed while idle, so a user's first edit runs warm code
  // (controller/translate/rehearse.ts); it stops at the first change or reconcile. Then the
  // start-up GC, which gives back what start-up and the rehearsal grew (its young generation too).
  if (last !== null) {
    const started = reconciles;
    const { snapshot: rehearsed } = last;
    void rehearseEdits(translator, rehearsed, translateOptions, () => edited || reconciles !== started || last?.snapshot !== rehearsed)
      .done.catch((err: unknown) => logger.warn({ err }, 'the translator rehearsal after start failed; nothing served depends on it'))
      .finally(releaseStartupMemory);
  } else releaseStartupMemory();

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

/**
 * Every path and port `sluice run` needs, before it starts anything: the manifest folder and its
 * files, the admin address, each listener the manifests ask for (after the offset), and the demo
 * backends' addresses. Throws StartupCheckFailed with one problem per path or port.
 */
async function checkStartup(options: StandaloneOptions, folder: ManifestFolder, irOf: (snapshot: InputSnapshot) => IR): Promise<void> {
  const folderProblems = checkFolder(options.manifests, '--manifests');
  if (folderProblems.length > 0) throw new StartupCheckFailed(folderProblems);
  // Reading the folder is no side effect; the first reconcile reads it again, unchanged files cheaply.
  const load = folder.load();
  const problems: Problem[] = load.readErrors.map((e) =>
    pathProblem(join(options.manifests, e.file), `cannot be read (${e.cause}); fix its permissions or check --manifests`),
  );
  // The HTTPS listeners --demo-backends will give a certificate are bound too: check them now.
  const planned = options.demoBackends ? await (await demoModule()).withPlannedCertificates(load.snapshot) : load.snapshot;
  const ir = irOf(planned);
  // --demo-backends writes certificates (and BackendTLSPolicies' CA files) into the folder.
  const unwritable = options.demoBackends && (planned !== load.snapshot || load.snapshot.backendTlsPolicies.length > 0) ? unwritableFolder(options.manifests) : undefined;
  if (unwritable) {
    problems.push(pathProblem(options.manifests, `--demo-backends writes self-signed certificates here (generated-*.yaml) but cannot: ${unwritable}; run as the folder's owner, or copy the folder somewhere writable`));
  }
  const admin = parseHostPort(options.adminAddress);
  const claims: PortClaim[] = [{ ...admin, what: 'the admin API', remedy: 'choose another with --admin-address' }];
  const offset = options.portOffset;
  // UDP sockets are not checked: checkPorts probes TCP ports.
  for (const l of [...ir.http.listeners, ...(ir.http.passthrough ?? []), ...(ir.http.tcp ?? [])]) {
    const what = offset ? `listener port ${l.port} + --listener-port-offset ${offset}` : `listener port ${l.port}`;
    if (l.port + offset > 65535) {
      problems.push({ code: 'SLU_STARTUP_PORT', message: `${what} is beyond 65535; lower --listener-port-offset` });
      continue;
    }
    // A Gateway's own spec.addresses are not the process's to check: their bind result is the Gateway's status (AddressNotUsable).
    if (!isPlannedAddress(options.bindAddress, l.address)) continue;
    claims.push({
      host: l.address,
      port: l.port + offset,
      what,
      remedy: 'choose another offset with --listener-port-offset (or another --bind-address)',
      addressRemedy: 'choose another --bind-address',
      privilegedRemedy: `run as root, or lift it above 1023 with --listener-port-offset (e.g. --listener-port-offset ${offset + 8000} serves port ${l.port} on ${l.port + offset + 8000})`,
    });
  }
  if (options.demoBackends) {
    for (const e of (await demoModule()).demoEndpoints(load.snapshot)) {
      claims.push({ host: e.address, port: e.port, what: `demo backend ${e.pod}`, remedy: 'stop what listens there, or change that EndpointSlice endpoint (--demo-backends starts an echo server there)' });
    }
  }
  // Redis settings made unusable by the flags, the environment or the --redis-secret Secret: refused at start.
  const redis = resolveRedisSettings(options.rateLimit?.redis ?? {}, process.env, load.snapshot);
  if (redis.invalid) problems.push({ code: 'SLU_REDIS_SETTINGS', message: redis.problem! });
  problems.push(...(await checkPorts(claims)));
  if (problems.length > 0) throw new StartupCheckFailed(problems);
}

/** `sluice_source_read_errors_total{cause}` (every failed read) and `sluice_source_read_errors` (failing now). */
function sourceReadMetrics(registry: Registry): { observe(errors: ReadError[]): void } {
  const total = new Counter({
    name: 'sluice_source_read_errors_total',
    help: 'Failed reads of the manifest folder (a file or a folder listing), by errno code',
    labelNames: ['cause'],
    registers: [registry],
  });
  const current = new Gauge({ name: 'sluice_source_read_errors', help: 'Manifest files and folders that cannot be read now (their last good objects are kept)', registers: [registry] });
  return {
    observe(errors) {
      for (const e of errors) total.inc({ cause: e.cause });
      current.set(errors.length);
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
