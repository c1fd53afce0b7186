// Lookup tables over an InputSnapshot, built once per translation.
import type { EndpointSliceObject, InputSnapshot, KubeObject, ServiceObject } from '../sources/objects.ts';
import type { TranslateMemo } from './memo.ts';

export class InputIndex {
  readonly snapshot: InputSnapshot;
  private readonly services = new Map<string, ServiceObject>();
  private readonly slicesByService = new Map<string, EndpointSliceObject[]>();
  private readonly secrets = new Map<string, KubeObject>();
  private readonly configMaps = new Map<string, KubeObject>();
  private readonly namespaces = new Map<string, KubeObject>();
  /** `Secret/<ns>/<name>` and `ConfigMap/<ns>/<name>` this translation asked for, found or not. */
  readonly referenced = new Set<string>();
  /** What a Translator keeps between translations; null for a one-off translate(). */
  readonly memo: TranslateMemo | null;
  /** Values computed once per translation (backend resolutions by reference), by key. */
  private readonly once = new Map<string, unknown>();

  constructor(snapshot: InputSnapshot, memo: TranslateMemo | null = null) {
    this.snapshot = snapshot;
    this.memo = memo;
    for (const s of snapshot.services) this.services.set(nsName(s), s);
    for (const s of snapshot.secrets) this.secrets.set(nsName(s), s);
    for (const c of snapshot.configMaps) this.configMaps.set(nsName(c), c);
    for (const n of snapshot.namespaces) this.namespaces.set(n.metadata.name, n);
    for (const slice of snapshot.endpointSlices) {
      const service = slice.metadata.labels?.['kubernetes.io/service-name'];
      if (!service) continue;
      const key = `${slice.metadata.namespace}/${service}`;
      const list = this.slicesByService.get(key) ?? [];
      list.push(slice);
      this.slicesByService.set(key, list);
    }
  }

  service(namespace: string, name: string): ServiceObject | undefined {
    return this.services.get(`${namespace}/${name}`);
  }

  endpointSlices(namespace: string, service: string): EndpointSliceObject[] {
    return this.slicesByService.get(`${namespace}/${service}`) ?? [];
  }

  secret(namespace: string, name: string): KubeObject | undefined {
    this.referenced.add(`Secret/${namespace}/${name}`);
    return this.secrets.get(`${namespace}/${name}`);
  }

  configMap(namespace: string, name: string): KubeObject | undefined {
    this.referenced.add(`ConfigMap/${namespace}/${name}`);
    return this.configMaps.get(`${namespace}/${name}`);
  }

  /** `compute()` once per translation for `key` (which must name everything compute reads besides this index). */
  cached<T>(key: string, compute: () => T): T {
    const known = this.once.get(key);
    if (known !== undefined || this.once.has(key)) return known as T;
    const value = compute();
    this.once.set(key, value);
    return value;
  }

  /** What cached() computed for `key` in this translation, if it did (and it was not undefined). */
  computed(key: string): unknown {
    return this.once.get(key);
  }

  /**
   * `compute()` — a function of `obj` alone (and of `name`, which tells the functions apart) — once
   * per object while a Translator's memo lasts; every time without one.
   */
  perObject<O extends object, T>(obj: O, name: string, compute: (obj: O) => T): T {
    return this.memo ? this.memo.perObject(obj, name, compute) : compute(obj);
  }

  /** A route's undeclared-fields problem (a function of the route object alone): once per route object while a memo lasts, in its record. */
  routeUndeclared(route: object, compute: () => string | null): string | null {
    return this.memo ? this.memo.undeclared(route, compute) : compute();
  }

  /** A namespace's labels; one that is not declared still carries the label Kubernetes adds to all. */
  namespaceLabels(name: string): Record<string, string> {
    return { ...this.namespaces.get(name)?.metadata.labels, 'kubernetes.io/metadata.name': name };
  }
}

function nsName(obj: KubeObject): string {
  return `${obj.metadata.namespace}/${obj.metadata.name}`;
}
