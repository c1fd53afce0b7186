// Lookup tables over an InputSnapshot, built once per translation.
import type { EndpointSliceObject, InputSnapshot, KubeObject, ServiceObject } from '../sources/objects.ts';

export class InputIndex {
  readonly snapshot: InputSnapshot;
  private readonly services = new Map<string, ServiceObject>();
  private readonly slicesByService = new Map<string, EndpointSliceObject[]>();
  private readonly secrets = new Map<string, KubeObject>();
  private readonly configMaps = new Map<string, KubeObject>();
  private readonly namespaces = new Map<string, KubeObject>();
  /** `Secret/<ns>/<name>` and `ConfigMap/<ns>/<name>` this translation asked for, found or not. */
  readonly referenced = new Set<string>();

  constructor(snapshot: InputSnapshot) {
    this.snapshot = snapshot;
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

  /** A namespace's labels; one that is not declared still carries the label Kubernetes adds to all. */
  namespaceLabels(name: string): Record<string, string> {
    return { ...this.namespaces.get(name)?.metadata.labels, 'kubernetes.io/metadata.name': name };
  }
}

function nsName(obj: KubeObject): string {
  return `${obj.metadata.namespace}/${obj.metadata.name}`;
}
