// Kubernetes source: one informer (client-node's ListWatch) per kind Sluice reads, feeding the same
// InputSnapshot the manifest folder produces, so translate() cannot tell them apart.
//
// Lifecycle
//   start()   discovery picks each kind's served version (kinds.ts). A required kind that is not
//             served fails start(); optional ones are absent (empty) and looked for again every
//             `rediscoverMs`. Then every informer lists and watches; start() resolves once EVERY
//             present kind has listed (the synced gate): before that, nothing may be published,
//             and onChange() is never called.
//   pages     lists are paginated; a continue token expired (410) falls back to one unpaginated
//             list, as client-go's pager does.
//   errors    client-node's ListWatch relists by itself after 410 Gone (resourceVersion expired)
//             and reconnects after watch timeouts, but stops on any other error (API server away,
//             403, 5xx): we restart it after a backoff (1 s doubling to 30 s, equal jitter: ir/backoff.ts). A
//             restart resumes the watch from the last resourceVersion; if that expired meanwhile,
//             the API server answers 410 and the informer relists, diffing against its cache
//             (deletes included). Watches ask for bookmarks, so quiet kinds keep a fresh
//             resourceVersion and 410s stay rare.
//   403       an optional kind this identity may not list or watch (RBAC) does not hold the synced
//             gate: it is served as absent, named once in a warning, and retried; its objects are
//             news once a list succeeds. A required kind keeps holding the gate (nothing is
//             published from a partial view). After sync, a 403 keeps the last cache (retried).
//   404       a kind whose API went away while watched (its CRD deleted, or the version dropped by
//             a CRD upgrade) is looked up again: served at another version, it is watched there;
//             not served, it becomes absent (its cached objects removed, which is what the API
//             server did to them) and is looked for again every `rediscoverMs`.
//   unread    once synced, and every `rediscoverMs`, the Gateway API family's kinds Sluice does not
//             read (x-k8s.io, the Inference Extension) are looked up and their objects listed, to be
//             named as the manifest folder names them (kube-ignored.ts).
//   stop()    stops every informer and aborts requests in flight.
//
// What is cached, and what counts as a change
//   - Objects are the wire JSON (timestamps stay RFC 3339 strings exactly as the API server wrote
//     them, fields unknown to client-node's generated models survive) with apiVersion and kind set
//     (list items lack them) and metadata.managedFields and the
//     `kubectl.kubernetes.io/last-applied-configuration` annotation removed (noise; for a Secret
//     that annotation even holds its data in clear). Lists therefore go through our own small
//     request (client-node's auth and TLS settings via KubeConfig.applyToHTTPSOptions) rather
//     than its typed APIs, whose deserialisers turn timestamps into Date objects: mixed with the
//     watch's strings, creationTimestamp ordering would break.
//   - snapshot() hands translate() objects without `status`, except for STATUS_INPUT_KINDS (a
//     Pod's IPs, a Service's load-balancer addresses): like the manifest folder. get() returns the
//     whole cached object, status and current resourceVersion included, for the status writer.
//   - An update is relevant only if the snapshot form changed, ignoring metadata.resourceVersion.
//     So status-only updates of the kinds Sluice writes status on (Gateway, HTTPRoute, ...) never
//     call onChange(): no retranslation loop through our own status writes.
//   - Pods are trimmed to what network policy translation reads (kinds.ts trimPod): their
//     frequent condition and container-status updates cost nothing.
//   - Secrets: the API server leaves out the types Sluice never reads (field selector), and only
//     kubernetes.io/tls and Opaque are cached. All of those are cached with their data, referenced
//     or not: deciding "referenced" would mean repeating translation's reference rules (Gateway
//     and ListenerSet certificateRefs, Ingress tls, the Redis Secret, CA references) here, and a
//     rule missed would be a silent outage. Unrelated Secret changes retranslate to the same IR
//     version, which publishes nothing.
//   - Cached objects are the parsed JSON the informer also keeps (normalised in place, so there is
//     one copy): treat everything snapshot() and get() return as read-only.
import type { RequestOptions as HttpsRequestOptions } from 'node:https';
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { backoffDelay, type Backoff } from '../../ir/backoff.ts';
import type { Problem } from '../problems.ts';
import { NamedUnreadObjects } from './kube-ignored.ts';
import { KIND_APIS, apiVersionOf, collectionPath, groupVersionPath, type KindApi } from './kinds.ts';
import { SNAPSHOT_FIELD_BY_KIND, STATUS_INPUT_KINDS, emptySnapshot, snapshotArrays, type InputSnapshot, type KubeObject } from './objects.ts';

export interface SourceChange {
  kind: string;
  namespace?: string;
  name: string;
}

export interface KubernetesSourceOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /**
   * Called after any relevant change once synced (the caller debounces). `change` names the object;
   * it is absent when a whole kind appeared (rediscovery).
   */
  onChange(change?: SourceChange): void;
  /** Restart delays after errors (ir/backoff.ts): from initialMs, doubling, up to maxMs. Default 1 s → 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How often absent optional kinds are looked for again, in ms (default 60 s; 0: never). */
  rediscoverMs?: number;
  /** Items per list page (default 500). */
  pageSize?: number;
  /**
   * Bound on each wait for the API server, in ms (default 30 s, client-node's watch default): to
   * connect, for an answer's headers, between two chunks of a list or discovery answer, and between
   * two events of a watch (bookmarks included). A black-holed connection fails and is retried.
   */
  requestTimeoutMs?: number;
}

export interface KindStats {
  /** apiVersion in use; null while absent. */
  apiVersion: string | null;
  /** forbidden: an optional kind this identity may not list/watch (403) before it ever synced; served as absent, retried. */
  state: 'absent' | 'forbidden' | 'syncing' | 'synced';
  objects: number;
  /** Full lists done (1 after the first sync; more after 410 Gone or failed lists). */
  lists: number;
  /** Of those, lists that fell back to one unpaginated request after a continue token expired (410). */
  unpaginatedLists: number;
  /** Errors reported by list or watch. */
  errors: number;
  /** Adds, relevant updates and deletes. */
  changes: number;
  /** Updates dropped as irrelevant (status-only, resourceVersion-only, trimmed fields only). */
  ignored: number;
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

interface Entry {
  /** The cached object (status included): what get() returns. */
  full: KubeObject;
  /** What snapshot() returns: `full` without status unless the kind's status is input. */
  input: KubeObject;
}

interface KindState {
  api: KindApi;
  /** Served version in use; null while absent or before discovery. */
  version: string | null;
  informer: ListWatch<KubernetesObject> | null;
  entries: Map<string, Entry>;
  /** snapshot() array, sorted by namespace and name; null when a change invalidated it. */
  sorted: KubeObject[] | null;
  synced: boolean;
  /** Set by a successful list, read by the start attempt that caused it. */
  listedInAttempt: boolean;
  /** The informer.start() in flight, if any. */
  starting: Promise<void> | null;
  retry: NodeJS.Timeout | null;
  /** Consecutive failures (for backoff and "restored" logging). */
  failures: number;
  /** What the last of those failures said (problems()). */
  lastError: string;
  /** The last failure was a watch refused (403) where the list was allowed: polled by relisting (schedulePoll). */
  polling: boolean;
  /** An optional kind answered 403 before its first sync: not waited for by the synced gate. */
  forbidden: boolean;
  /** A 404 is being looked into (discovery of this kind in flight). */
  rechecking: boolean;
  /**
   * The entries were cached under another version, before the informer was replaced: its first list
   * must also drop those it does not hold (the new informer's own cache starts empty, so it would not).
   */
  carried: boolean;
  /**
   * A required kind whose API the server stopped serving (its CRD removed, or a version dropped with
   * none Sluice reads left): its last listed objects are kept and said (a read error is not an empty
   * cluster: dropping every HTTPRoute on one discovery answer would take every route down), and it is
   * looked for again; its first list once served replaces them (carried).
   */
  lost: boolean;
  stats: { lists: number; unpaginatedLists: number; errors: number; changes: number; ignored: number };
}

/** An HTTP error answer from the API server (the body is usually a Status). */
class ApiError extends Error {
  readonly statusCode: number;
  readonly reason: string | undefined;
  constructor(path: string, statusCode: number, body: unknown) {
    const status: { message?: unknown; reason?: unknown } = typeof body === 'object' && body !== null ? body : {};
    const message = typeof status.message === 'string' ? status.message : String(body ?? '').slice(0, 300);
    super(`GET ${path}: ${statusCode} ${message}`);
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.reason = typeof status.reason === 'string' ? status.reason : undefined;
  }
}

/**
 * client-node's Watch with two guards: no watch outlives stop() (one that connects afterwards is
 * aborted at once), and a watch that cannot even be set up (credentials failing to refresh) is
 * reported through `done` like any other failure instead of rejecting: ListWatch reconnects
 * without awaiting, so a rejection there would go unhandled and end the process.
 */
class GuardedWatch extends Watch {
  private readonly isStopped: () => boolean;
  constructor(kubeConfig: KubeConfig, isStopped: () => boolean, inactivityMs: number) {
    super(kubeConfig);
    this.isStopped = isStopped;
    // client-node 2.x's connect-then-inactivity timeout (private there, 30 s): a watch whose
    // connection went silent ends as a TimeoutError, and ListWatch resumes from its resourceVersion.
    Object.assign(this, { requestTimeoutMs: inactivityMs });
  }
  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const aborted = () => {
      const controller = new AbortController();
      controller.abort();
      return controller;
    };
    if (this.isStopped()) return aborted();
    let controller: AbortController;
    try {
      controller = await super.watch(path, queryParams, callback, done);
    } catch (err) {
      done(err);
      return aborted();
    }
    if (this.isStopped()) controller.abort();
    return controller;
  }
}

export class KubernetesSource {
  private readonly kubeConfig: KubeConfig;
  private readonly logger: Logger;
  private readonly onChange: (change?: SourceChange) => void;
  private readonly backoff: Backoff;
  private readonly rediscoverMs: number;
  private readonly pageSize: number;
  private readonly requestTimeoutMs: number;
  private readonly states = new Map<string, KindState>();
  private readonly abort = new AbortController();
  private started = false;
  private ready = false;
  private stopped = false;
  private rediscoverTimer: NodeJS.Timeout | null = null;
  private rediscovering = false;
  /** The Gateway API family's kinds Sluice does not read: their objects named (kube-ignored.ts), listed every `rediscoverMs`. */
  private readonly unread: NamedUnreadObjects;
  private unreadTimer: NodeJS.Timeout | null = null;
  /** Settles the promise start() waits on (all synced, or stopped). */
  private syncGate: { resolve: () => void; reject: (err: Error) => void } | null = null;

  constructor(options: KubernetesSourceOptions) {
    this.kubeConfig = options.kubeConfig;
    this.logger = options.logger;
    this.onChange = options.onChange;
    const initialMs = options.backoff?.initialMs ?? 1000;
    this.backoff = { initialMs, maxMs: Math.max(initialMs, options.backoff?.maxMs ?? 30_000) };
    this.rediscoverMs = options.rediscoverMs ?? 60_000;
    this.pageSize = options.pageSize ?? 500;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.unread = new NamedUnreadObjects(this.logger);
    for (const api of KIND_APIS) {
      this.states.set(api.kind, {
        api,
        version: null,
        informer: null,
        entries: new Map(),
        sorted: null,
        synced: false,
        listedInAttempt: false,
        starting: null,
        retry: null,
        failures: 0,
        lastError: '',
        polling: false,
        forbidden: false,
        rechecking: false,
        carried: false,
        lost: false,
        stats: { lists: 0, unpaginatedLists: 0, errors: 0, changes: 0, ignored: 0 },
      });
    }
  }

  /**
   * Starts an informer per kind and resolves once every present kind has listed. Rejects when a
   * required kind's API is not served (e.g. the Gateway API CRDs are not installed), or when stop()
   * comes first. API server errors meanwhile are retried with backoff, not fatal.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('KubernetesSource.start() called twice');
    this.started = true;
    if (!this.kubeConfig.getCurrentCluster()) throw new Error('kubeconfig: no current cluster');
    const all = [...this.states.values()];
    const versions = await this.discoverUntilAnswered(all);
    if (this.stopped) throw new Error('the Kubernetes source was stopped before discovery finished');
    const missing = all.filter((s) => s.api.required && !versions.get(s));
    if (missing.length > 0) {
      const list = missing.map((s) => `${s.api.kind} (${apiVersionOf(s.api.group, s.api.versions[0]!)} ${s.api.plural})`).join(', ');
      const hint = missing.some((s) => s.api.group === 'gateway.networking.k8s.io')
        ? ' Install the Gateway API CRDs (standard channel, v1.0 or later) before Sluice.'
        : '';
      throw new Error(`the Kubernetes API does not serve ${list}, which Sluice needs.${hint}`);
    }
    const absent = all.filter((s) => !versions.get(s));
    if (absent.length > 0) {
      this.logger.info(
        { kinds: absent.map((s) => s.api.kind) },
        `not served, treated as absent (no objects): ${absent.map((s) => `${s.api.kind} (${apiVersionOf(s.api.group, s.api.versions[0]!)})`).join(', ')}` +
          (this.rediscoverMs > 0 ? `; looking again every ${formatMs(this.rediscoverMs)}` : ''),
      );
    }
    const synced = new Promise<void>((resolve, reject) => {
      this.syncGate = { resolve, reject };
    });
    for (const s of all) {
      const version = versions.get(s);
      if (version) this.launch(s, version);
    }
    this.checkAllSynced();
    await synced;
    this.ready = true;
    void this.nameUnreadObjects();
    if (all.some((s) => !s.version)) this.scheduleRediscovery();
    const forbidden = all.filter((s) => s.forbidden);
    if (forbidden.length > 0) {
      this.logger.warn(
        { kinds: forbidden.map((s) => s.api.kind) },
        `serving without ${forbidden.map((s) => s.api.kind).join(', ')}: this identity may not list and watch ${forbidden.map((s) => resourceName(s.api)).join(', ')} (403); grant it (the chart's ClusterRole does) and they are picked up without a restart`,
      );
    }
    const present = all.filter((s) => s.version && !s.forbidden);
    this.logger.info(
      { kinds: present.length, objects: present.reduce((n, s) => n + s.entries.size, 0) },
      `Kubernetes source synced: ${present.length} kinds`,
    );
  }

  /** The current cache as the translator's input. */
  snapshot(): InputSnapshot {
    const snapshot = emptySnapshot();
    const arrays = snapshotArrays(snapshot);
    for (const s of this.states.values()) {
      s.sorted ??= [...s.entries.values()].map((e) => e.input).sort(byNamespaceAndName);
      arrays[SNAPSHOT_FIELD_BY_KIND[s.api.kind]!] = s.sorted.slice();
    }
    return snapshot;
  }

  /** One cached object, status and current resourceVersion included (for the status writer). Read-only. */
  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.states.get(kind)?.entries.get(entryKey(namespace, name))?.full;
  }

  /** True once start() has resolved (every present kind listed). */
  get synced(): boolean {
    return this.ready;
  }

  /** Per-kind counters and state, for logs, metrics and tests. */
  stats(): Record<string, KindStats> {
    const out: Record<string, KindStats> = {};
    for (const s of this.states.values()) {
      out[s.api.kind] = {
        apiVersion: s.version ? apiVersionOf(s.api.group, s.version) : null,
        state: !s.version ? 'absent' : s.synced ? 'synced' : s.forbidden ? 'forbidden' : 'syncing',
        objects: s.entries.size,
        ...s.stats,
      };
    }
    return out;
  }

  /**
   * Kinds that cannot be read right now, as SLU_SOURCE_READ problems (the admin API's /readyz and
   * /api/status, `sluice status`): what the API server said, and what Sluice serves meanwhile.
   */
  problems(): Problem[] {
    const out: Problem[] = [...this.unread.problems()];
    for (const s of this.states.values()) {
      if (s.lost) {
        out.push({ code: 'SLU_SOURCE_READ', file: resourceName(s.api), message: `${s.api.kind}: ${s.api.plural} are no longer served by the API server (its CRD was removed?); keeping its last listed objects until they are served again` });
        continue;
      }
      if (!s.version || s.failures === 0) continue;
      const meanwhile = s.polling
        ? 'its objects are as last polled'
        : s.forbidden
        ? 'served as if it had no objects until this identity may list and watch it'
        : s.synced
          ? 'keeping its last listed objects until it reads again'
          : 'nothing is translated until it has listed';
      out.push({ code: 'SLU_SOURCE_READ', file: resourceName(s.api), message: `${s.api.kind}: cannot list/watch (${s.lastError}); ${meanwhile}` });
    }
    return out;
  }

  /** Stops every informer; the promise settles once requests in flight have ended (callers may ignore it). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    if (this.rediscoverTimer) clearTimeout(this.rediscoverTimer);
    this.rediscoverTimer = null;
    if (this.unreadTimer) clearTimeout(this.unreadTimer);
    this.unreadTimer = null;
    this.syncGate?.reject(new Error('the Kubernetes source was stopped before every kind had synced'));
    this.syncGate = null;
    const pending: Promise<unknown>[] = [];
    for (const s of this.states.values()) {
      if (s.retry) clearTimeout(s.retry);
      s.retry = null;
      void s.informer?.stop();
      if (s.starting) pending.push(s.starting.catch(() => undefined));
    }
    await Promise.all(pending);
    // A watch that connected while we were stopping is aborted now (GuardedWatch covers later ones).
    await new Promise((resolve) => setImmediate(resolve));
    for (const s of this.states.values()) void s.informer?.stop();
  }

  // ---- informers -----------------------------------------------------------------------------

  private launch(s: KindState, version: string): void {
    s.version = version;
    const path = collectionPath(s.api, version);
    // Bookmarks keep a quiet kind's resourceVersion fresh, so a restarted watch rarely meets 410.
    const informer = new ListWatch<KubernetesObject>(
      `${path}?allowWatchBookmarks=true`,
      new GuardedWatch(this.kubeConfig, () => this.stopped, this.requestTimeoutMs),
      () => this.list(s, path),
      false,
      undefined,
      s.api.fieldSelector,
    );
    // An informer replaced after a 404 (kind gone, or served at another version) may still report.
    const current = () => s.informer === informer;
    informer.on('add', (obj) => current() && this.upsert(s, obj as KubeObject));
    informer.on('update', (obj) => current() && this.upsert(s, obj as KubeObject));
    informer.on('delete', (obj) => current() && this.remove(s, obj as KubeObject));
    informer.on('error', (err) => current() && this.failed(s, err));
    s.informer = informer;
    void this.attempt(s);
  }

  /** One informer.start(): lists if it has no resourceVersion (first time, after 410), then watches. */
  private async attempt(s: KindState): Promise<void> {
    s.retry = null;
    if (this.stopped || !s.informer) return;
    if (s.starting) return this.scheduleRetry(s);
    const errorsBefore = s.stats.errors;
    s.listedInAttempt = false;
    const informer = s.informer;
    const starting = informer.start();
    s.starting = starting;
    try {
      await starting;
    } catch (err) {
      // Defensive: ListWatch and GuardedWatch report failures through 'error'.
      if (s.informer === informer) this.failed(s, err);
    } finally {
      if (s.starting === starting) s.starting = null;
    }
    // Replaced meanwhile (404: the kind went away or moved to another version): not ours to finish.
    if (this.stopped || s.informer !== informer) return;
    if (s.listedInAttempt && !s.synced) this.markSynced(s);
    if (s.stats.errors === errorsBefore) this.recovered(s);
  }

  private markSynced(s: KindState): void {
    s.synced = true;
    if (s.forbidden) {
      s.forbidden = false;
      this.logger.info({ kind: s.api.kind, objects: s.entries.size }, `${s.api.kind}: may be listed now (no longer forbidden); serving its ${s.entries.size} object(s)`);
    }
    this.logger.debug({ kind: s.api.kind, objects: s.entries.size }, `${s.api.kind}: synced`);
    if (this.ready) {
      // A kind that appeared after start (rediscovery): its objects are news.
      if (s.entries.size > 0) this.notify();
    } else this.checkAllSynced();
  }

  private checkAllSynced(): void {
    if (!this.syncGate) return;
    for (const s of this.states.values()) if (s.version && !s.synced && !s.forbidden) return;
    this.syncGate.resolve();
    this.syncGate = null;
  }

  private failed(s: KindState, err: unknown): void {
    if (this.stopped) return;
    s.stats.errors++;
    s.failures++;
    const delay = backoffDelay(s.failures, this.backoff);
    const status = httpStatus(err);
    // client-node's watch reports a refusal as its bare status text; lists are ours (ApiError) and
    // quote the API server. RBAC with `list` but not `watch` is a common slip: name it.
    const watchRefused = status === 403 && !(err instanceof ApiError);
    const message = watchRefused
      ? `403 Forbidden to watch ${resourceName(s.api)}: this identity may list it but not watch it (RBAC verb "watch"); polled instead: listed again every ${formatMs(this.backoff.maxMs)} (sooner at first), so its changes arrive that late`
      : describeError(err);
    s.lastError = message;
    s.polling = watchRefused;
    if (status === 404 && s.version) {
      void this.recheck(s, message);
      return;
    }
    if (watchRefused) {
      if (s.failures === 1) this.logger.warn({ kind: s.api.kind, err: message }, `${s.api.kind}: list/watch failed (${message})`);
      this.schedulePoll(s, delay);
      return;
    }
    if (status === 403 && !watchRefused && !s.synced && !s.api.required && !s.forbidden) {
      // Not waited for: the rest is served without it (start() names every such kind once).
      s.forbidden = true;
      this.logger.warn({ kind: s.api.kind, err: message }, `${s.api.kind}: forbidden (${message}); served as absent, retrying with backoff`);
      this.checkAllSynced();
    } else if (s.failures === 1) {
      this.logger.warn({ kind: s.api.kind, err: message }, `${s.api.kind}: list/watch failed (${message}); retrying with backoff`);
    } else {
      this.logger.debug({ kind: s.api.kind, err: message, failures: s.failures, retryInMs: delay }, `${s.api.kind}: list/watch failed again`);
    }
    this.scheduleRetry(s, delay);
  }

  /**
   * A kind this identity may list but not watch: client-node's ListWatch would only ever retry the
   * watch from its last resourceVersion, so the objects would stay as first listed. A fresh informer
   * lists again (its first list replacing the cache: carried), then tries the watch once more, which
   * also finds out when "watch" is granted. At the backoff's pace, up to its maximum (30 s).
   */
  private schedulePoll(s: KindState, delay: number): void {
    if (this.stopped || s.retry) return;
    s.retry = setTimeout(() => {
      s.retry = null;
      if (this.stopped || !s.version || !s.polling) return;
      const informer = s.informer;
      s.informer = null;
      void informer?.stop();
      s.carried = true;
      this.launch(s, s.version);
    }, delay);
  }

  private scheduleRetry(s: KindState, delay = backoffDelay(Math.max(1, s.failures), this.backoff)): void {
    if (this.stopped || s.retry) return;
    s.retry = setTimeout(() => void this.attempt(s), delay);
  }

  private recovered(s: KindState): void {
    if (s.failures === 0) return;
    this.logger.info({ kind: s.api.kind, failures: s.failures }, `${s.api.kind}: list/watch restored after ${s.failures} failed attempt(s)`);
    s.failures = 0;
    s.polling = false;
    // The API server answers again: the other kinds waiting out their backoff (up to 30 s after an
    // outage) try now, spread over a quarter second, so the cache does not stay half stale.
    for (const other of this.states.values()) {
      if (other === s || !other.retry || other.failures === 0 || other.forbidden) continue;
      clearTimeout(other.retry);
      other.retry = null;
      this.scheduleRetry(other, Math.random() * 250);
    }
  }

  /**
   * A 404 from a watched kind: its API may be gone (CRD deleted) or moved (a CRD upgrade dropped the
   * version in use). Discovery decides; an answer that cannot be had is retried like any failure.
   */
  private async recheck(s: KindState, message: string): Promise<void> {
    if (s.rechecking) return;
    s.rechecking = true;
    let version: string | null | undefined;
    try {
      version = (await this.discover([s])).get(s);
    } catch (err) {
      this.logger.debug({ kind: s.api.kind, err: describeError(err) }, `${s.api.kind}: discovery after a 404 failed; retrying`);
    } finally {
      s.rechecking = false;
    }
    if (this.stopped) return;
    if (version === undefined || version === s.version) {
      if (s.failures === 1) this.logger.warn({ kind: s.api.kind, err: message }, `${s.api.kind}: list/watch failed (${message}); retrying with backoff`);
      this.scheduleRetry(s);
      return;
    }
    const was = apiVersionOf(s.api.group, s.version!);
    const informer = s.informer;
    s.informer = null;
    void informer?.stop();
    if (s.retry) clearTimeout(s.retry);
    s.retry = null;
    s.synced = false;
    s.forbidden = false;
    s.failures = 0;
    s.version = null;
    if (version) {
      // Same objects under another version: the new informer's first list replaces the cache.
      s.carried = true;
      s.lost = false;
      this.logger.info({ kind: s.api.kind, apiVersion: apiVersionOf(s.api.group, version) }, `${s.api.kind}: ${was} is no longer served; watching ${apiVersionOf(s.api.group, version)}`);
      this.launch(s, version);
      return;
    }
    if (s.api.required) {
      s.carried = true;
      s.lost = true;
      this.logger.error(
        { kind: s.api.kind, apiVersion: was, kept: s.entries.size },
        `${s.api.kind}: ${was} ${s.api.plural} is no longer served (its CRD was removed?); keeping its ${s.entries.size} last listed object(s) until it is served again` +
          (this.rediscoverMs > 0 ? `; looking again every ${formatMs(this.rediscoverMs)}` : ''),
      );
      s.stats.changes++;
      if (this.ready) {
        this.notify();
        this.scheduleRediscovery();
      } else this.checkAllSynced();
      return;
    }
    const dropped = s.entries.size;
    s.entries.clear();
    s.sorted = null;
    const log = s.api.required ? this.logger.error.bind(this.logger) : this.logger.warn.bind(this.logger);
    log(
      { kind: s.api.kind, apiVersion: was, dropped },
      `${s.api.kind}: ${was} ${s.api.plural} is no longer served (its CRD was removed?); treated as absent` +
        (dropped > 0 ? `, its ${dropped} cached object(s) dropped` : '') +
        (this.rediscoverMs > 0 ? `; looking again every ${formatMs(this.rediscoverMs)}` : ''),
    );
    if (dropped > 0) {
      s.stats.changes++;
      if (this.ready) this.notify();
    }
    if (this.ready) this.scheduleRediscovery();
    else this.checkAllSynced();
  }

  // ---- the cache -----------------------------------------------------------------------------

  private upsert(s: KindState, raw: KubeObject): void {
    if (this.stopped) return;
    if (s.failures > 0 && !s.polling) this.recovered(s); // an event arrived: the watch is healthy (a poll's list is no watch)
    const key = entryKey(raw.metadata?.namespace, raw.metadata?.name);
    const prev = s.entries.get(key);
    const obj = this.normalise(s, raw);
    if (!obj) {
      if (prev) {
        s.entries.delete(key);
        this.changed(s, raw);
      } else s.stats.ignored++;
      return;
    }
    const input = STATUS_INPUT_KINDS.has(s.api.kind) ? obj : withoutStatus(obj);
    if (prev && sameInput(prev.input, input)) {
      // Status, resourceVersion or trimmed fields only: keep the snapshot object, refresh get().
      prev.full = obj;
      s.stats.ignored++;
      return;
    }
    s.entries.set(key, { full: obj, input });
    this.changed(s, raw);
  }

  private remove(s: KindState, raw: KubeObject): void {
    if (this.stopped) return;
    if (s.entries.delete(entryKey(raw.metadata?.namespace, raw.metadata?.name))) this.changed(s, raw);
  }

  private changed(s: KindState, raw: KubeObject): void {
    s.sorted = null;
    s.stats.changes++;
    const { namespace, name } = raw.metadata ?? {};
    if (this.ready) this.notify({ kind: s.api.kind, ...(namespace ? { namespace } : {}), name: name ?? '' });
  }

  private notify(change?: SourceChange): void {
    try {
      this.onChange(change);
    } catch (err) {
      this.logger.error({ err }, 'onChange threw');
    }
  }

  /**
   * The wire object in place (the informer keeps the same object, so there is one copy): apiVersion
   * and kind set, managedFields and the last-applied annotation dropped, the kind's trim applied.
   * Null for an object the kind does not keep (its data is dropped from the informer's copy too).
   */
  private normalise(s: KindState, raw: KubeObject): KubeObject | null {
    raw.apiVersion = apiVersionOf(s.api.group, s.version!);
    raw.kind = s.api.kind;
    const meta = raw.metadata as KubeObject['metadata'] & { managedFields?: unknown };
    delete meta.managedFields;
    if (meta.annotations && LAST_APPLIED in meta.annotations) {
      const { [LAST_APPLIED]: _dropped, ...rest } = meta.annotations;
      if (Object.keys(rest).length > 0) meta.annotations = rest;
      else delete meta.annotations;
    }
    if (s.api.keep && !s.api.keep(raw)) {
      delete raw.data;
      delete raw.stringData;
      return null;
    }
    s.api.trim?.(raw);
    return raw;
  }

  // ---- API requests --------------------------------------------------------------------------

  /** A full list (paginated), as ListWatch expects it. */
  private async list(s: KindState, path: string): Promise<KubernetesListObject<KubernetesObject>> {
    if (this.stopped) throw new Error('stopped');
    s.stats.lists++;
    if (s.synced) {
      // A poll (list but no watch allowed) is routine: said once, when the refusal was.
      if (s.polling) this.logger.debug({ kind: s.api.kind }, `${s.api.kind}: polling (may list, not watch)`);
      else this.logger.info({ kind: s.api.kind }, `${s.api.kind}: listing again (resourceVersion expired, or the last list failed)`);
    }
    const items: KubernetesObject[] = [];
    let resourceVersion = '';
    let continueToken: string | undefined;
    const session = await this.session();
    try {
      do {
        const query = new URLSearchParams({ limit: String(this.pageSize) });
        if (s.api.fieldSelector) query.set('fieldSelector', s.api.fieldSelector);
        if (continueToken) query.set('continue', continueToken);
        let page: ListPage;
        try {
          page = (await session.get(`${path}?${query}`)) as ListPage;
        } catch (err) {
          // A continue token whose resourceVersion etcd has compacted away (410 Expired, a list slower
          // than the compaction interval, 5 min by default): as client-go's pager does
          // (FullListIfExpired), one list without a limit, the pages read so far dropped. Starting
          // over in pages could expire again on a cluster too big to page through in time.
          if (!continueToken || httpStatus(err) !== 410) throw err;
          this.logger.warn({ kind: s.api.kind, listed: items.length, err: describeError(err) }, `${s.api.kind}: the list's continue token expired (410) after ${items.length} object(s); listing again in one request, unpaginated, as client-go does`);
          const whole = new URLSearchParams();
          if (s.api.fieldSelector) whole.set('fieldSelector', s.api.fieldSelector);
          const query = whole.size > 0 ? `?${whole}` : '';
          page = (await session.get(`${path}${query}`)) as ListPage;
          items.length = 0;
          s.stats.unpaginatedLists++;
        }
        for (const item of page.items ?? []) items.push(item);
        resourceVersion = page.metadata?.resourceVersion ?? '';
        continueToken = page.metadata?.continue || undefined;
      } while (continueToken);
    } finally {
      await session.close();
    }
    s.listedInAttempt = true;
    if (s.carried) {
      s.carried = false;
      const listed = new Set(items.map((o) => entryKey(o.metadata?.namespace, o.metadata?.name)));
      for (const [key, entry] of s.entries) if (!listed.has(key)) this.remove(s, entry.full);
    }
    return { metadata: { resourceVersion }, items };
  }

  /**
   * Which served version each kind gets (null: not served), retrying with backoff while the API
   * server cannot answer (down, starting up): only a definite "not served" makes a kind absent.
   */
  private async discoverUntilAnswered(states: KindState[]): Promise<Map<KindState, string | null>> {
    for (let failures = 1; ; failures++) {
      try {
        return await this.discover(states);
      } catch (err) {
        if (this.stopped) throw new Error('the Kubernetes source was stopped before discovery finished');
        const delay = backoffDelay(failures, this.backoff);
        const log = failures === 1 ? this.logger.warn.bind(this.logger) : this.logger.debug.bind(this.logger);
        log({ err: describeError(err), retryInMs: delay }, `API discovery failed (${describeError(err)}); retrying`);
        await sleep(delay, this.abort.signal);
      }
    }
  }

  private async discover(states: KindState[]): Promise<Map<KindState, string | null>> {
    const session = await this.session();
    const resourcesOf = new Map<string, Promise<Set<string> | null>>();
    const served = (group: string, version: string): Promise<Set<string> | null> => {
      const path = groupVersionPath(group, version);
      let p = resourcesOf.get(path);
      if (!p) {
        p = session.get(path, [404]).then((body) => (body === null ? null : new Set<string>(((body as ResourceList).resources ?? []).map((r) => String(r.name)))));
        resourcesOf.set(path, p);
      }
      return p;
    };
    try {
      const out = new Map<KindState, string | null>();
      for (const s of states) {
        let found: string | null = null;
        for (const version of s.api.versions) {
          if ((await served(s.api.group, version))?.has(s.api.plural)) {
            found = version;
            break;
          }
        }
        out.set(s, found);
      }
      return out;
    } finally {
      // Settle every request before closing (a rejected one would otherwise go unobserved).
      await Promise.allSettled(resourcesOf.values());
      await session.close();
    }
  }

  /** Names the objects of the Gateway API family's unread kinds (kube-ignored.ts), then again every `rediscoverMs`. */
  private async nameUnreadObjects(): Promise<void> {
    this.unreadTimer = null;
    if (this.stopped) return;
    try {
      const session = await this.session();
      try {
        await this.unread.refresh((path, nullOn) => session.get(path, nullOn));
      } finally {
        await session.close();
      }
    } catch (err) {
      // Lines already logged stay; the kinds Sluice reads report their own trouble.
      if (!this.stopped) this.logger.debug({ err: describeError(err) }, 'listing the unread Gateway API kinds failed; trying again later');
    }
    if (this.stopped || this.rediscoverMs <= 0) return;
    this.unreadTimer = setTimeout(() => void this.nameUnreadObjects(), this.rediscoverMs);
    this.unreadTimer.unref();
  }

  private scheduleRediscovery(): void {
    if (this.stopped || this.rediscoverMs <= 0 || this.rediscoverTimer) return;
    this.rediscoverTimer = setTimeout(() => void this.rediscover(), this.rediscoverMs);
    this.rediscoverTimer.unref();
  }

  /** Looks for absent optional kinds again (a CRD installed after Sluice started); starts informers for those now served. */
  private async rediscover(): Promise<void> {
    this.rediscoverTimer = null;
    if (this.stopped || this.rediscovering) return;
    const absent = [...this.states.values()].filter((s) => !s.version);
    if (absent.length === 0) return;
    this.rediscovering = true;
    try {
      const versions = await this.discover(absent);
      for (const s of absent) {
        const version = versions.get(s);
        if (!version || this.stopped) continue;
        this.logger.info({ kind: s.api.kind, apiVersion: apiVersionOf(s.api.group, version) }, `${s.api.kind}: now served (${apiVersionOf(s.api.group, version)}); watching it`);
        s.lost = false;
        this.launch(s, version);
      }
    } catch (err) {
      this.logger.debug({ err: describeError(err) }, 'rediscovery of absent kinds failed; trying again later');
    } finally {
      this.rediscovering = false;
    }
    if ([...this.states.values()].some((s) => !s.version)) this.scheduleRediscovery();
  }

  /**
   * GETs with the kubeconfig's credentials and TLS settings (client-node's own, re-read each time
   * so rotated tokens and certificates are picked up), answering parsed JSON.
   */
  private async session(): Promise<{ get(path: string, nullOn?: number[]): Promise<unknown>; close(): Promise<void> }> {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig: no current cluster');
    const opts: HttpsRequestOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(opts);
    const tls: Record<string, unknown> = {};
    for (const field of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const) {
      if (opts[field] !== undefined) tls[field] = opts[field];
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const [name, value] of Object.entries(opts.headers ?? {})) if (value !== undefined) headers[name.toLowerCase()] = String(value);
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    // Every wait bounded: an API server that accepts and then says nothing must not hold a list or
    // discovery (and with it start() or a kind's resync) for undici's 300 s defaults.
    const timeout = this.requestTimeoutMs;
    const dispatcher = new Agent({ connect: { ...tls, timeout }, headersTimeout: timeout, bodyTimeout: timeout });
    const server = cluster.server.replace(/\/$/, '');
    const signal = this.abort.signal;
    return {
      async get(path: string, nullOn: number[] = []): Promise<unknown> {
        const res = await request(server + path, { method: 'GET', headers, dispatcher, signal });
        const text = await res.body.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text for the error message
        }
        if (nullOn.includes(res.statusCode)) return null;
        if (res.statusCode < 200 || res.statusCode > 299) throw new ApiError(path, res.statusCode, body);
        if (typeof body !== 'object' || body === null) throw new ApiError(path, res.statusCode, 'answer is not JSON');
        return body;
      },
      close: () => dispatcher.close(),
    };
  }
}

// ---- helpers -------------------------------------------------------------------------------------

// The API server's JSON as read here (raw: client-node's models rename `continue` to `_continue`).
/** A page of a list. */
interface ListPage {
  items?: KubernetesObject[];
  metadata?: { resourceVersion?: string; continue?: string };
}
/** A group version's discovery document (APIResourceList). */
interface ResourceList {
  resources?: { name: string }[];
}

/** The HTTP status of a failed list (ApiError) or watch (client-node sets statusCode). */
function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { statusCode?: unknown; code?: unknown };
  return typeof e.statusCode === 'number' ? e.statusCode : typeof e.code === 'number' ? e.code : undefined;
}

/** `plural.group` (or `plural` for the core group), as RBAC rules and API errors name a resource. */
function resourceName(api: KindApi): string {
  return api.group ? `${api.plural}.${api.group}` : api.plural;
}

function entryKey(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
}

function withoutStatus(obj: KubeObject): KubeObject {
  if (!('status' in obj)) return obj;
  const { status: _status, ...rest } = obj;
  return rest as KubeObject;
}

function byNamespaceAndName(a: KubeObject, b: KubeObject): number {
  const na = a.metadata.namespace ?? '';
  const nb = b.metadata.namespace ?? '';
  if (na !== nb) return na < nb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/** Equal snapshot forms, ignoring metadata.resourceVersion (which changes with every write, status included). */
export function sameInput(a: KubeObject, b: KubeObject): boolean {
  const { metadata: ma, ...ra } = a;
  const { metadata: mb, ...rb } = b;
  const { resourceVersion: _ra, ...restA } = ma ?? ({} as KubeObject['metadata']);
  const { resourceVersion: _rb, ...restB } = mb ?? ({} as KubeObject['metadata']);
  return jsonEqual(restA, restB) && jsonEqual(ra, rb);
}

/** Deep equality of JSON values; key order does not matter, an undefined property counts as absent. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keysA = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const keysB = Object.keys(bo).filter((k) => bo[k] !== undefined);
  if (keysA.length !== keysB.length) return false;
  for (const k of keysA) if (!jsonEqual(ao[k], bo[k])) return false;
  return true;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { statusCode?: number; code?: unknown; cause?: { code?: unknown; message?: string } };
  const parts = [e.message];
  if (e.statusCode !== undefined && !e.message.includes(String(e.statusCode))) parts.unshift(`HTTP ${e.statusCode}`);
  if (e.cause?.code || e.cause?.message) parts.push(`(${e.cause.code ?? e.cause.message})`);
  else if (e.code && !e.message.includes(String(e.code))) parts.push(`(${String(e.code)})`);
  return parts.join(' ');
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('aborted'));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
