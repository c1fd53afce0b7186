// The only code that writes status to Kubernetes. It patches the status subresource of each
// object whose computed status differs from what the object carries, and only the part that is
// ours:
//
// - GatewayClass, Gateway, ListenerSet: the whole status (translation only computes a status for
//   objects Sluice owns);
// - HTTPRoute, TLSRoute (`status.parents[]`) and RateLimitPolicy (`status.ancestors[]`): only the
//   entries whose controllerName is ours; other controllers' entries stay where they are;
// - Ingress: `status.loadBalancer` only.
//
// Conditions keep the lastTransitionTime the object already carries while their status and reason
// are unchanged (a message or observedGeneration change is written, the time is kept), so a
// restarted controller bumps no times. Every patch is a JSON merge patch that carries
// metadata.resourceVersion: the API server refuses it with 409 when the object changed since it was
// read, so a concurrent writer (another controller adding its parents entry) is never overwritten.
// On 409 the object is read again, the status merged again and the patch retried (bounded, with a
// small backoff); an object deleted meanwhile (404) is skipped.
import {
  ApiException,
  CustomObjectsApi,
  NetworkingV1Api,
  PatchStrategy,
  type ConfigurationOptions,
  type KubeConfig,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { backoffDelay, type Backoff } from '../../ir/backoff.ts';

import { describeApiError as describe, requestOptions } from '../sources/kube-request.ts';
import type { KubeObject } from '../sources/objects.ts';
import type { Condition, ObjectStatus } from './conditions.ts';

/** Between conflicting patches: a fresh read usually settles it, so short (25–50 ms, then doubling). */
const CONFLICT_BACKOFF: Backoff = { initialMs: 50, maxMs: 1_000 };

export interface StatusWriterOptions {
  kubeConfig: KubeConfig;
  controllerName: string;
  logger: Logger;
  /** The cached object (from the informer source), for resourceVersion and the current status; undefined = fetch it. */
  current(kind: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Attempts per object when the API server answers 409 Conflict (default 5). */
  maxAttempts?: number;
  /** Timeout of each API request in milliseconds (default 10 000). */
  requestTimeoutMs?: number;
  /** Objects written in parallel (default 4). */
  concurrency?: number;
  /** fieldManager of the patches (default `sluice`). */
  fieldManager?: string;
}

export interface WriteResult {
  /** Objects whose status was patched. */
  written: number;
  /** Objects whose status already matched. */
  unchanged: number;
  /** 409 Conflict answers met (each was retried with a fresh read). */
  conflicts: number;
  /** Objects that were deleted meanwhile (404), skipped. */
  gone: number;
  /** `Kind/namespace/name` of objects whose status could not be written (logged). */
  failed: string[];
}

type Outcome = 'written' | 'unchanged' | 'gone';

/** Kinds whose status lists entries per controller, and the name of that list. */
const SHARED_LISTS: Record<string, 'parents' | 'ancestors'> = {
  HTTPRoute: 'parents',
  TLSRoute: 'parents',
  GRPCRoute: 'parents',
  TCPRoute: 'parents',
  UDPRoute: 'parents',
  RateLimitPolicy: 'ancestors',
  BackendTLSPolicy: 'ancestors',
};

const PLURALS: Record<string, string> = {
  GatewayClass: 'gatewayclasses',
  Gateway: 'gateways',
  ListenerSet: 'listenersets',
  HTTPRoute: 'httproutes',
  TLSRoute: 'tlsroutes',
  GRPCRoute: 'grpcroutes',
  TCPRoute: 'tcproutes',
  UDPRoute: 'udproutes',
  RateLimitPolicy: 'ratelimitpolicies',
  BackendTLSPolicy: 'backendtlspolicies',
};

const CLUSTER_SCOPED = new Set(['GatewayClass']);

/** Every kind whose status the writer patches: the custom resources above and Ingress (the chart's RBAC follows it). */
export const STATUS_WRITTEN_KINDS: readonly string[] = [...Object.keys(PLURALS), 'Ingress'];

export class StatusWriter {
  private readonly options: StatusWriterOptions;
  private readonly custom: CustomObjectsApi;
  private readonly networking: NetworkingV1Api;
  private readonly maxAttempts: number;
  private readonly requestTimeoutMs: number;
  private readonly concurrency: number;
  private readonly fieldManager: string;
  /**
   * What we last wrote per object: the resourceVersion the patch was based on and the status it
   * produced. An informer cache that has not caught up with our own write yet still shows the old
   * resourceVersion; when the wanted status is what we wrote, that is not a reason to patch again
   * (which would only earn a 409), and when it is anything else, the cache's status is no reason not to.
   */
  private lastWrite = new Map<string, { basedOn: string; status: string }>();
  /**
   * The failures the last write() warned about: the same ones again (a 403 the controller retries
   * every few seconds, an API server away) are logged at debug, not warned about on every retry.
   */
  private lastFailures: string | null = null;
  /** write() calls run one after another, so two never patch the same object at once. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: StatusWriterOptions) {
    this.options = options;
    this.custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.networking = options.kubeConfig.makeApiClient(NetworkingV1Api);
    this.maxAttempts = options.maxAttempts ?? 5;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.concurrency = options.concurrency ?? 4;
    this.fieldManager = options.fieldManager ?? 'sluice';
  }

  /** Writes every status that differs from what the object carries; returns counts. Never throws for one object's failure (logs it, reports it). */
  write(statuses: ObjectStatus[]): Promise<WriteResult> {
    const run = this.queue.then(() => this.writeAll(statuses));
    this.queue = run.catch(() => {});
    return run;
  }

  private async writeAll(statuses: ObjectStatus[]): Promise<WriteResult> {
    const result: WriteResult = { written: 0, unchanged: 0, conflicts: 0, gone: 0, failed: [] };
    const keys = new Set(statuses.map(keyOf));
    for (const key of this.lastWrite.keys()) if (!keys.has(key)) this.lastWrite.delete(key);
    const errors: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < statuses.length) {
        const s = statuses[next++]!;
        try {
          const outcome = await this.writeOne(s, result);
          result[outcome]++;
        } catch (err) {
          result.failed.push(keyOf(s));
          errors.push(`${keyOf(s)}: ${describe(err)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, statuses.length) }, worker));
    // One line per write, not one per object: an unreachable API server fails them all.
    if (errors.length > 0) {
      errors.sort();
      const shown = errors.slice(0, 5).join('; ') + (errors.length > 5 ? `; and ${errors.length - 5} more` : '');
      const message = `could not write the status of ${errors.length} object(s): ${shown}`;
      if (message === this.lastFailures) this.options.logger.debug({ failed: result.failed }, `still ${message}`);
      else this.options.logger.warn({ failed: result.failed }, message);
      this.lastFailures = message;
    } else if (this.lastFailures !== null) {
      this.options.logger.info(`status writes succeed again (${result.written} written)`);
      this.lastFailures = null;
    }
    if (result.written > 0 || result.conflicts > 0) this.options.logger.debug({ ...result }, 'status written');
    return result;
  }

  private async writeOne(s: ObjectStatus, result: WriteResult): Promise<Outcome> {
    const key = keyOf(s);
    let obj = this.options.current(s.kind, s.namespace, s.name);
    for (let attempt = 1; ; attempt++) {
      if (!obj) {
        obj = await this.read(s);
        if (!obj) return 'gone';
      }
      const existing = (obj.status ?? {}) as Record<string, unknown>;
      const wanted = mergeStatus(s.kind, existing, s.status, this.options.controllerName, stamp(new Date()));
      const wantedJson = canonical(wanted);
      const rv = obj.metadata.resourceVersion;
      const last = attempt === 1 && rv ? this.lastWrite.get(key) : undefined;
      if (last !== undefined && last.basedOn === rv) {
        // The cache has not caught up with our own last write: the object holds what we wrote, not
        // what the cache shows. Compared with the cache, a status going back to what it was before
        // that write (Programmed Pending, then True once the dataplane acked) read as unchanged and
        // was never written: the object stayed at the write in between for good.
        if (last.status === wantedJson) return 'unchanged';
      } else if (wantedJson === canonical(existing)) {
        return 'unchanged';
      }
      const patch = { metadata: { resourceVersion: rv }, status: mergePatch(existing, wanted) ?? {} };
      try {
        await this.patch(s, patch);
        if (rv) this.lastWrite.set(key, { basedOn: rv, status: wantedJson });
        return 'written';
      } catch (err) {
        const code = err instanceof ApiException ? err.code : 0;
        if (code === 404) return 'gone';
        if (code !== 409) throw err;
        result.conflicts++;
        this.options.logger.debug({ object: key, attempt }, `conflict writing the status of ${key}; reading it again`);
        if (attempt >= this.maxAttempts) throw new Error(`still conflicting after ${attempt} attempts`);
        await sleep(backoffDelay(attempt, CONFLICT_BACKOFF));
        obj = undefined;
      }
    }
  }

  /** The object as the API server has it now, or undefined when it does not exist. */
  private async read(s: ObjectStatus): Promise<KubeObject | undefined> {
    try {
      if (s.kind === 'Ingress') {
        const ingress = await this.networking.readNamespacedIngressStatus({ name: s.name, namespace: s.namespace ?? 'default' }, this.requestOptions());
        return plain(ingress) as KubeObject;
      }
      const r = this.resource(s);
      const obj = r.namespace === undefined
        ? await this.custom.getClusterCustomObjectStatus({ group: r.group, version: r.version, plural: r.plural, name: s.name }, this.requestOptions())
        : await this.custom.getNamespacedCustomObjectStatus({ ...r, namespace: r.namespace, name: s.name }, this.requestOptions());
      return obj as KubeObject;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  private async patch(s: ObjectStatus, body: unknown): Promise<void> {
    const options = this.requestOptions(PatchStrategy.MergePatch);
    if (s.kind === 'Ingress') {
      await this.networking.patchNamespacedIngressStatus({ name: s.name, namespace: s.namespace ?? 'default', body, fieldManager: this.fieldManager }, options);
      return;
    }
    const r = this.resource(s);
    if (r.namespace === undefined) {
      await this.custom.patchClusterCustomObjectStatus({ group: r.group, version: r.version, plural: r.plural, name: s.name, body, fieldManager: this.fieldManager }, options);
    } else {
      await this.custom.patchNamespacedCustomObjectStatus({ ...r, namespace: r.namespace, name: s.name, body, fieldManager: this.fieldManager }, options);
    }
  }

  private resource(s: ObjectStatus): { group: string; version: string; plural: string; namespace?: string } {
    const [group, version] = s.apiVersion.includes('/') ? s.apiVersion.split('/', 2) : ['', s.apiVersion];
    const plural = PLURALS[s.kind] ?? `${s.kind.toLowerCase()}s`;
    return { group: group!, version: version!, plural, ...(CLUSTER_SCOPED.has(s.kind) ? {} : { namespace: s.namespace ?? 'default' }) };
  }

  /** Per-request options: a timeout, and the patch content type. */
  private requestOptions(contentType?: string): ConfigurationOptions<ObservableMiddleware> {
    return requestOptions({ signal: AbortSignal.timeout(this.requestTimeoutMs), ...(contentType ? { contentType } : {}) });
  }
}

// ---- merging -------------------------------------------------------------------------------------

/**
 * The status the object should carry: the computed one for the part that is ours, what the object
 * has for the rest, with lastTransitionTime kept where a condition did not transition.
 */
export function mergeStatus(kind: string, existing: Record<string, unknown>, computed: Record<string, unknown>, controllerName: string, now: string): Record<string, unknown> {
  const list = SHARED_LISTS[kind];
  if (list) {
    const current = Array.isArray(existing[list]) ? (existing[list] as Record<string, unknown>[]) : [];
    const ours = current.filter((e) => e?.controllerName === controllerName);
    const refKey = list === 'parents' ? 'parentRef' : 'ancestorRef';
    const wanted = ((computed[list] ?? []) as Record<string, unknown>[])
      .filter((e) => e.controllerName === controllerName)
      .map((e) => stampTree(e, ours.find((o) => canonical(o[refKey]) === canonical(e[refKey])), now) as Record<string, unknown>);
    // Ours go where ours were (others' entries keep their place), else at the end.
    const merged: Record<string, unknown>[] = [];
    let placed = false;
    for (const e of current) {
      if (e?.controllerName !== controllerName) merged.push(e);
      else if (!placed) {
        merged.push(...wanted);
        placed = true;
      }
    }
    if (!placed) merged.push(...wanted);
    return { ...existing, [list]: merged };
  }
  if (kind === 'Ingress') {
    const loadBalancer = computed.loadBalancer ?? {};
    return { ...existing, loadBalancer };
  }
  // GatewayClass, Gateway, ListenerSet: the whole status is ours.
  return stampTree(computed, existing, now) as Record<string, unknown>;
}

/** Gives every condition a lastTransitionTime: the previous one when status and reason are unchanged. */
function stampTree(value: unknown, previous: unknown, now: string): unknown {
  if (Array.isArray(value)) return value.map((item, i) => stampTree(item, matchingItem(item, previous, i), now));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const prev = isObject(previous) ? previous[k] : undefined;
    out[k] = k === 'conditions' && Array.isArray(v) ? v.map((c: Condition) => stampCondition(c, prev, now)) : stampTree(v, prev, now);
  }
  return out;
}

function stampCondition(c: Condition, previous: unknown, now: string): Condition {
  const old = Array.isArray(previous) ? (previous as Condition[]).find((p) => p?.type === c.type) : undefined;
  const kept = old && old.status === c.status && old.reason === c.reason && old.lastTransitionTime;
  return { ...c, lastTransitionTime: kept ? String(old.lastTransitionTime) : (c.lastTransitionTime ?? now) };
}

/** Listeners match by name, parents by parentRef, ancestors by ancestorRef, anything else by position. */
function matchingItem(item: unknown, previous: unknown, i: number): unknown {
  if (!Array.isArray(previous)) return undefined;
  if (!isObject(item)) return previous[i];
  if (typeof item.name === 'string') return previous.find((p) => isObject(p) && p.name === item.name);
  for (const ref of ['parentRef', 'ancestorRef']) {
    if (item[ref]) return previous.find((p) => isObject(p) && canonical(p[ref]) === canonical(item[ref]));
  }
  return previous[i];
}

/** RFC 7386 merge patch turning `from` into `to` (undefined when they are equal). */
export function mergePatch(from: unknown, to: unknown): unknown {
  if (!isObject(from) || !isObject(to)) return canonical(from) === canonical(to) ? undefined : to;
  const patch: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(to)) {
    if (v === undefined) continue;
    const d = isObject(v) && isObject(from[k]) ? mergePatch(from[k], v) : canonical(from[k]) === canonical(v) ? undefined : v;
    if (d !== undefined) patch[k] = d;
  }
  for (const k of Object.keys(from)) if (from[k] !== undefined && (!(k in to) || to[k] === undefined)) patch[k] = null;
  return Object.keys(patch).length > 0 ? patch : undefined;
}

/** JSON with sorted keys, undefined dropped and Dates as ISO strings: equality that ignores key order. */
export function canonical(value: unknown): string {
  return JSON.stringify(normalize(value)) ?? 'undefined';
}

function normalize(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(normalize);
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) if (value[k] !== undefined) out[k] = normalize(value[k]);
  return out;
}

/** A typed client-node model as plain JSON (undefined fields dropped, Dates as strings). */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function keyOf(s: ObjectStatus): string {
  return s.namespace ? `${s.kind}/${s.namespace}/${s.name}` : `${s.kind}/${s.name}`;
}

/** Kubernetes metav1.Time: RFC 3339 in whole seconds. */
function stamp(now: Date): string {
  return now.toISOString().replace(/\.\d+Z$/, 'Z');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
