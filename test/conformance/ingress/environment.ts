// The cluster stand-ins for one Ingress group: echo "pods" (one echo server
// per replica and target port, each pod on its own loopback address), the
// group's objects as YAML-ready Kubernetes objects (Namespaces, IngressClasses,
// generated TLS Secrets, Services, EndpointSlices, Ingresses).

import { randomInt } from 'node:crypto';
import { createSelfSignedServerCertificate, tlsSecretData, type CertificateBundle } from '../../support/demo/certs.ts';
import { startEchoServer, type EchoServer } from '../../support/demo/echo-server.ts';
import type { KObject } from '../lib/manifest-store.ts';
import type { GroupFile, SecretSpec, ServiceSpec } from './types.ts';

export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';

const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export function randomName(length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += NAME_ALPHABET[randomInt(NAME_ALPHABET.length)];
  return s;
}

/** `<prefix><replicaset hash>-<5 chars>`: the prefix is `<deployment>-`, as a Deployment's pods are named. */
export function podName(prefix: string, hash: string): string {
  return `${prefix}${hash}-${randomName(5)}`;
}

/** `namespace/name` of a Service entry (namespace defaults to the group's). */
export function serviceKey(group: Pick<GroupFile, 'namespace'>, svc: Pick<ServiceSpec, 'name' | 'namespace'>): string {
  return `${svc.namespace ?? group.namespace}/${svc.name}`;
}

/** Distinct target ports of a Service: each replica listens on all of them. */
export function targetPorts(svc: ServiceSpec): number[] {
  return [...new Set(svc.ports.map((p) => p.targetPort))].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------
// Echo pods
// ---------------------------------------------------------------------------

/** Hands out addresses PREFIX.X.Y (loopback 127.78.X.Y by default), never twice in a run. */
export class AddressAllocator {
  #third: number;
  #fourth = 0;
  readonly #prefix: string;

  constructor(firstThirdOctet = randomInt(1, 150), prefix = '127.78') {
    this.#third = firstThirdOctet;
    this.#prefix = prefix;
  }

  next(): string {
    this.#fourth++;
    if (this.#fourth > 254) {
      this.#fourth = 1;
      this.#third++;
      if (this.#third > 254) throw new Error(`address range ${this.#prefix}.0.0/16 exhausted`);
    }
    return `${this.#prefix}.${this.#third}.${this.#fourth}`;
  }
}

export interface EchoPod {
  name: string;
  /** `namespace/name` of its Service entry. */
  service: string;
  namespace: string;
  ip: string;
  servers: EchoServer[];
}

export class GroupPods {
  readonly #group: GroupFile;
  readonly #alloc: AddressAllocator;
  readonly #hashes = new Map<string, string>();
  pods: EchoPod[] = [];

  constructor(group: GroupFile, alloc: AddressAllocator) {
    this.#group = group;
    this.#alloc = alloc;
  }

  service(key: string): ServiceSpec | undefined {
    return this.#group.services.find((s) => serviceKey(this.#group, s) === key);
  }

  podsOf(key: string): EchoPod[] {
    return this.pods.filter((p) => p.service === key);
  }

  serviceOfPod(pod: string): ServiceSpec | undefined {
    const p = this.pods.find((x) => x.name === pod);
    return p ? this.service(p.service) : undefined;
  }

  /** Starts `replicas` pods for every Service. */
  async startAll(): Promise<void> {
    for (const svc of this.#group.services) await this.scaleTo(serviceKey(this.#group, svc), svc.replicas);
  }

  /** Adds or removes (newest first) pods of a Service until it has `n`. */
  async scaleTo(key: string, n: number): Promise<void> {
    const svc = this.service(key);
    if (!svc) throw new Error(`no Service ${key} in the group`);
    let hash = this.#hashes.get(key);
    if (!hash) {
      hash = randomName(9 + randomInt(2));
      this.#hashes.set(key, hash);
    }
    while (this.podsOf(key).length < n) this.pods.push(await this.#startPod(svc, key, hash));
    while (this.podsOf(key).length > n) {
      const victim = this.podsOf(key).at(-1)!;
      this.pods = this.pods.filter((p) => p !== victim);
      await Promise.all(victim.servers.map((s) => s.close()));
    }
  }

  async #startPod(svc: ServiceSpec, key: string, hash: string): Promise<EchoPod> {
    const name = podName(svc.echo.podNamePrefix, hash);
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const ip = this.#alloc.next();
      const servers: EchoServer[] = [];
      try {
        for (const port of targetPorts(svc)) {
          servers.push(
            await startEchoServer({
              host: ip,
              httpPort: port,
              identity: { pod: name, namespace: svc.echo.namespace, service: svc.echo.service, ingress: svc.echo.ingress },
            }),
          );
        }
        return { name, service: key, namespace: svc.namespace ?? this.#group.namespace, ip, servers };
      } catch (err) {
        lastError = err;
        await Promise.all(servers.map((s) => s.close()));
      }
    }
    throw new Error(`cannot start echo pod ${name}: ${(lastError as Error)?.message ?? lastError}`);
  }

  /** Pods that received a request (echo handler) at or after `since`. */
  reachedSince(since: number): string[] {
    return this.pods.filter((p) => p.servers.some((s) => s.received.some((r) => r.at >= since))).map((p) => p.name);
  }

  async close(): Promise<void> {
    await Promise.all(this.pods.flatMap((p) => p.servers.map((s) => s.close())));
    this.pods = [];
  }
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

export function secretKey(group: Pick<GroupFile, 'namespace'>, s: Pick<SecretSpec, 'name' | 'namespace'>): string {
  return `${s.namespace ?? group.namespace}/${s.name}`;
}

/** Fresh self-signed certificates per `secrets[].generate` (upstream recipe: RSA, CN, O, DNS SANs, validity). */
export async function generateSecrets(group: GroupFile): Promise<Map<string, CertificateBundle>> {
  const out = new Map<string, CertificateBundle>();
  for (const s of group.secrets ?? []) {
    const g = s.generate;
    out.set(
      secretKey(group, s),
      await createSelfSignedServerCertificate({
        commonName: g.commonName,
        organization: g.organization,
        dnsNames: g.dnsNames,
        validityDays: g.validDays,
        modulusLength: g.keyBits,
      }),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------

export interface PodEndpoint {
  name: string;
  namespace: string;
  ip: string;
}

/** The Deployment name upstream gives the pods of a Service: the pod-name prefix without its last '-'. */
export function deploymentName(svc: ServiceSpec): string {
  return svc.echo.podNamePrefix.replace(/-$/, '');
}

export function serviceObject(group: GroupFile, svc: ServiceSpec): KObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: svc.name, namespace: svc.namespace ?? group.namespace },
    spec: {
      type: svc.type ?? 'ClusterIP',
      selector: { app: deploymentName(svc) },
      ports: svc.ports.map((p) => ({
        ...(p.name !== undefined ? { name: p.name } : {}),
        port: p.port,
        targetPort: p.targetPort,
        protocol: p.protocol ?? 'TCP',
      })),
    },
  };
}

/** One EndpointSlice per Service: one ready endpoint per pod, one port per Service port (its target port). */
export function endpointSliceObject(group: GroupFile, svc: ServiceSpec, pods: PodEndpoint[], suffix: string): KObject {
  const namespace = svc.namespace ?? group.namespace;
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${svc.name}-${suffix}`,
      namespace,
      labels: {
        'kubernetes.io/service-name': svc.name,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
      },
    },
    addressType: 'IPv4',
    endpoints: pods.map((p) => ({
      addresses: [p.ip],
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: 'Pod', name: p.name, namespace: p.namespace },
    })),
    ports: svc.ports.map((p) => ({ name: p.name ?? '', port: p.targetPort, protocol: p.protocol ?? 'TCP' })),
  };
}

export function secretObject(group: GroupFile, s: SecretSpec, bundle: CertificateBundle): KObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: s.type,
    metadata: { name: s.name, namespace: s.namespace ?? group.namespace },
    data: tlsSecretData(bundle),
  };
}

export function ingressClassObject(c: GroupFile['ingressClasses'][number]): KObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'IngressClass',
    metadata: { name: c.name, ...(c.isDefaultClass ? { annotations: { [DEFAULT_CLASS_ANNOTATION]: 'true' } } : {}) },
    spec: { controller: c.controller },
  };
}

/** Every namespace the group's namespaced objects live in. */
export function groupNamespaces(group: GroupFile): string[] {
  const names = new Set<string>([group.namespace]);
  for (const s of group.secrets ?? []) names.add(s.namespace ?? group.namespace);
  for (const s of group.services) names.add(s.namespace ?? group.namespace);
  for (const i of group.ingresses) names.add(i.metadata.namespace ?? group.namespace);
  return [...names];
}

export function namespaceObject(name: string): KObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'app.kubernetes.io/name': 'ingress-conformance' } } };
}

/** The Ingresses as given, with the group's namespace where they carry none. */
export function ingressObjects(group: GroupFile): KObject[] {
  return group.ingresses.map((i) => {
    const o = structuredClone(i) as unknown as KObject;
    o.metadata.namespace ??= group.namespace;
    return o;
  });
}

/** Everything but the EndpointSlices (which change with scaling). */
export function groupObjects(group: GroupFile, bundles: Map<string, CertificateBundle>): KObject[] {
  const out: KObject[] = groupNamespaces(group).map(namespaceObject);
  out.push(...group.ingressClasses.map(ingressClassObject));
  for (const s of group.secrets ?? []) {
    const bundle = bundles.get(secretKey(group, s));
    if (!bundle) throw new Error(`no certificate generated for Secret ${secretKey(group, s)}`);
    out.push(secretObject(group, s, bundle));
  }
  out.push(...group.services.map((s) => serviceObject(group, s)));
  out.push(...ingressObjects(group));
  return out;
}

export function groupEndpointSlices(group: GroupFile, pods: GroupPods, suffix: string): KObject[] {
  return group.services.map((s) => endpointSliceObject(group, s, pods.podsOf(serviceKey(group, s)), suffix));
}
