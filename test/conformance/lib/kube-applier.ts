// The kubernetes target's ObjectSink: makes the API server hold exactly the objects of the
// ManifestStore. Each flush diffs the desired set against what the applier last wrote and
//   1. deletes objects no longer wanted (routes first, Namespaces last: reverse dependency order),
//   2. server-side applies new and changed ones (field manager `sluice-conformance`, forced;
//      fields dropped from an object are removed, as a manifest rewrite would) in dependency
//      order: Namespaces, classes, Secrets/ConfigMaps, Services, EndpointSlices, Gateways,
//      ListenerSets, ReferenceGrants, routes and Ingresses — kinds of one rank in parallel,
//   3. deletes unwanted Namespaces and finalizes them itself: the test cluster has no
//      kube-controller-manager, so nothing else would empty and remove a terminating namespace
//      (the applier has already deleted everything it put there).
// An object the API server refuses (422 from CRD validation, a kind not served, ...) is recorded
// as a problem for the suite to report and is not retried until its content changes.

import { stableJson } from '../../../ir/version.ts';
import { KubeApiError, type KubeClient, type KubeObject } from '../../kube/client.ts';
import { keyOf, type KObject, type ObjectSink } from './manifest-store.ts';

const RANK: Record<string, number> = {
  Namespace: 0,
  CustomResourceDefinition: 0,
  GatewayClass: 1,
  IngressClass: 1,
  Secret: 2,
  ConfigMap: 2,
  ServiceAccount: 2,
  Service: 3,
  EndpointSlice: 4,
  Deployment: 4,
  Gateway: 5,
  ListenerSet: 6,
  ReferenceGrant: 7,
  BackendTLSPolicy: 7,
};
const DEFAULT_RANK = 8; // routes, Ingresses, policies, anything else

export function rankOf(kind: string): number {
  return RANK[kind] ?? DEFAULT_RANK;
}

interface Applied {
  /** stableJson of the object as the suite wanted it. */
  json: string;
  desired: KObject;
  /** What the API server answered (defaults filled in, resourceVersion); absent when refused. */
  result?: KubeObject;
  error?: string;
}

/** Groups entries by rank, ascending (or descending). */
function byRank<T>(items: T[], kind: (t: T) => string, descending = false): T[][] {
  const groups = new Map<number, T[]>();
  for (const it of items) {
    const r = rankOf(kind(it));
    groups.set(r, [...(groups.get(r) ?? []), it]);
  }
  return [...groups.entries()].sort((a, b) => (descending ? b[0] - a[0] : a[0] - b[0])).map(([, v]) => v);
}

function describe(err: unknown): string {
  if (err instanceof KubeApiError) return `${err.status} ${err.reason ?? ''}: ${err.body?.message ?? err.message}`.replace(/ +:/, ':');
  return (err as Error).message ?? String(err);
}

function resourceVersionOf(o: { metadata?: { resourceVersion?: string } } | undefined): number {
  const n = Number(o?.metadata?.resourceVersion);
  return Number.isFinite(n) ? n : NaN;
}

/** An object without status and without the metadata the API server or the informer own. */
function contentOf(o: any): string {
  const { status: _s, metadata, ...rest } = o ?? {};
  const { labels, annotations, name, namespace } = metadata ?? {};
  const data = o?.kind === 'Secret' ? undefined : rest.data; // /api/status redacts Secret data
  return stableJson({ ...rest, data, metadata: { labels, annotations, name, namespace } });
}

/**
 * Whether the copy of an object Sluice lists (its informer's, /api/status) reflects what the API
 * server answered to our write: the same or a later resourceVersion (status writes move it on), or
 * the same content (a write that changed only managedFields moves the resourceVersion without the
 * informer passing the object on).
 */
export function listedCaughtUp(applied: KubeObject, listed: any): boolean {
  return resourceVersionOf(listed) >= resourceVersionOf(applied) || contentOf(listed) === contentOf(applied);
}

export class KubeApplier implements ObjectSink {
  readonly #client: KubeClient;
  readonly #fieldManager: string;
  readonly #applied = new Map<string, Applied>();
  #problems: string[] = [];
  /** Every request the applier made (for the verbose log). */
  writes = 0;

  constructor(client: KubeClient, fieldManager = 'sluice-conformance') {
    this.#client = client;
    this.#fieldManager = fieldManager;
  }

  /** Problems since the last call (objects refused by the API server), then forgets them. */
  takeProblems(): string[] {
    const out = this.#problems;
    this.#problems = [];
    return out;
  }

  /** The API server's answer for an object the suite wants, if it accepted it. */
  result(o: KObject): KubeObject | undefined {
    return this.#applied.get(keyOf(o))?.result;
  }

  /** The refusal of an object the suite wants, if the API server refused it. */
  refusal(o: KObject): string | undefined {
    return this.#applied.get(keyOf(o))?.error;
  }

  async sync(objects: KObject[]): Promise<void> {
    const desired = new Map(objects.map((o) => [keyOf(o), o]));
    const removals = [...this.#applied.entries()].filter(([k]) => !desired.has(k));
    const changes = [...desired.entries()].filter(([k, o]) => this.#applied.get(k)?.json !== stableJson(o));

    const namespaces = removals.filter(([, a]) => a.desired.kind === 'Namespace');
    for (const batch of byRank(removals.filter(([, a]) => a.desired.kind !== 'Namespace'), ([, a]) => a.desired.kind, true)) {
      await Promise.all(batch.map(([k, a]) => this.#delete(k, a)));
    }
    for (const batch of byRank(changes, ([, o]) => o.kind)) {
      await Promise.all(batch.map(([k, o]) => this.#apply(k, o)));
    }
    await Promise.all(namespaces.map(([k, a]) => this.#deleteNamespace(k, a)));
  }

  #ref(o: KObject, result?: KubeObject) {
    return {
      apiVersion: o.apiVersion,
      kind: o.kind,
      name: o.metadata.name,
      ...((result?.metadata.namespace ?? o.metadata.namespace) ? { namespace: result?.metadata.namespace ?? o.metadata.namespace } : {}),
    };
  }

  async #apply(key: string, o: KObject): Promise<void> {
    const body = structuredClone(o) as KubeObject;
    delete body.status;
    const entry: Applied = { json: stableJson(o), desired: o };
    try {
      this.writes++;
      entry.result = await this.#client.apply(body, this.#fieldManager, true);
    } catch (err) {
      entry.error = describe(err);
      this.#problems.push(`the API server refused ${key}: ${entry.error}`);
    }
    this.#applied.set(key, entry);
  }

  async #delete(key: string, a: Applied): Promise<void> {
    this.#applied.delete(key);
    if (!a.result) return; // never created
    try {
      this.writes++;
      await this.#client.delete(this.#ref(a.desired, a.result));
    } catch (err) {
      this.#problems.push(`cannot delete ${key}: ${describe(err)}`);
    }
  }

  async #deleteNamespace(key: string, a: Applied): Promise<void> {
    this.#applied.delete(key);
    if (!a.result) return;
    const name = a.desired.metadata.name;
    const ref = { apiVersion: 'v1', kind: 'Namespace', name };
    try {
      this.writes++;
      await this.#client.delete(ref);
      const ns = await this.#client.getOrUndefined(ref);
      if (ns && (ns.spec?.finalizers ?? []).length > 0) {
        // What the namespace controller does once the namespace is empty.
        this.writes++;
        await this.#client.call('PUT', `/api/v1/namespaces/${encodeURIComponent(name)}/finalize`, {
          body: { ...ns, spec: { ...ns.spec, finalizers: [] } },
        });
      }
      for (let i = 0; i < 50 && (await this.#client.getOrUndefined(ref)); i++) await new Promise((r) => setTimeout(r, 100));
    } catch (err) {
      this.#problems.push(`cannot delete ${key}: ${describe(err)}`);
    }
  }
}
