// The cluster stand-ins for the Gateway API suite: echo "pods" on loopback
// addresses, their EndpointSlices, namespaces, generated certificates and the
// runner's GatewayClass, plus loading the suite's YAML with placeholders.

import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createCertificateAuthority,
  createClientCertificate,
  createSelfSignedServerCertificate,
  createServerCertificate,
  tlsSecretData,
  type CertificateAuthority,
  type CertificateBundle,
} from '../../support/demo/certs.ts';
import { modeFromEnv, startEchoBasic, type ContainerPort, type EchoMode, type RunningEcho } from '../../support/demo/echo-basic.ts';
import type { EchoServer } from '../../support/demo/echo-server.ts';
import { parseYamlObjects, type KObject } from '../lib/manifest-store.ts';
import type { EchoBackendInstance, GeneratedObject, SuiteFile } from './types.ts';

// ---------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------

export interface PlaceholderValues {
  gatewayClassName: string;
  controllerName: string;
}

/**
 * Loads a suite YAML file: substitutes {GATEWAY_CLASS_NAME} /
 * {GATEWAY_CONTROLLER_NAME} and, like upstream, overwrites
 * spec.gatewayClassName of every Gateway and spec.controllerName of every
 * GatewayClass with the implementation under test.
 */
export function loadSuiteManifest(path: string, values: PlaceholderValues): KObject[] {
  const text = readFileSync(path, 'utf8')
    .replaceAll('{GATEWAY_CLASS_NAME}', values.gatewayClassName)
    .replaceAll('{GATEWAY_CONTROLLER_NAME}', values.controllerName);
  const objects = parseYamlObjects(text, path);
  for (const o of objects) {
    if (o.kind === 'Gateway' && isGatewayApi(o)) {
      o.spec = { ...(o.spec ?? {}), gatewayClassName: values.gatewayClassName };
    }
    if (o.kind === 'GatewayClass' && isGatewayApi(o)) {
      o.spec = { ...(o.spec ?? {}), controllerName: values.controllerName };
    }
  }
  return objects;
}

function isGatewayApi(o: KObject): boolean {
  return typeof o.apiVersion === 'string' && o.apiVersion.startsWith('gateway.networking.k8s.io/');
}

// ---------------------------------------------------------------------------
// Echo pods
// ---------------------------------------------------------------------------

export interface EchoPod {
  name: string;
  namespace: string;
  deployment: string;
  ip: string;
  labels: Record<string, string>;
  mode: EchoMode;
  /** What listens, by the names suite.json uses (http, h2c, https, grpc, grpcTLS, tcp, tls, udp, dns). */
  containerPorts: ContainerPort[];
  /** The HTTP echo (HTTP mode); undefined in the other modes (they log no requests). */
  server: EchoServer | undefined;
  stop(): Promise<void>;
}

const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function randomName(length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += NAME_ALPHABET[randomInt(NAME_ALPHABET.length)];
  return s;
}

/** `<deployment>-<replicaset hash>-<5 char suffix>`. */
export function podName(deployment: string, hash: string): string {
  return `${deployment}-${hash}-${randomName(5)}`;
}

/** A pod's echo-basic container as its Deployment describes it: mode, environment, mounted files. */
export interface EchoContainer {
  mode: EchoMode;
  env: Record<string, string>;
  files: Record<string, string>;
}

function dataOf(o: KObject | undefined): Record<string, string> | undefined {
  if (!o) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((o.data ?? {}) as Record<string, unknown>)) {
    if (typeof v === 'string') out[k] = o.kind === 'Secret' ? Buffer.from(v, 'base64').toString('utf8') : v;
  }
  for (const [k, v] of Object.entries((o.stringData ?? {}) as Record<string, unknown>)) if (typeof v === 'string') out[k] = v;
  return out;
}

/**
 * Reads the first container of a Deployment's pod template the way the kubelet would start it:
 * literal env values, the fieldRefs echo-basic uses (pod name, namespace, pod IP), and the files of
 * Secret / ConfigMap volumes (`items` or every key). The image decides the kind of backend:
 * echo-basic (mode from its environment, unless `mode` overrides it) or CoreDNS (the DNS stand-in).
 */
export function echoContainer(
  deployment: KObject,
  pod: { name: string; ip: string },
  objects: KObject[],
  mode?: EchoMode,
): EchoContainer | { problem: string } {
  const namespace = deployment.metadata.namespace ?? 'default';
  const where = `Deployment ${namespace}/${deployment.metadata.name}`;
  const spec = deployment.spec?.template?.spec ?? {};
  const container = (spec.containers ?? [])[0];
  if (!container) return { problem: `${where}: no container` };
  const image = String(container.image ?? '');
  const isDns = /coredns/.test(image);
  if (!isDns && !/echo-basic/.test(image)) return { problem: `${where}: image ${image} is neither echo-basic nor CoreDNS; the runner cannot stand in for it` };
  const env: Record<string, string> = {};
  for (const e of (container.env ?? []) as { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }[]) {
    if (typeof e.value === 'string') env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = pod.name;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = namespace;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'status.podIP') env[e.name] = pod.ip;
    else if (e.valueFrom !== undefined) return { problem: `${where}: env ${e.name}: only literal values and the fieldRefs metadata.name, metadata.namespace, status.podIP are supported` };
    else env[e.name] = '';
  }
  const files: Record<string, string> = {};
  const volumes = (spec.volumes ?? []) as { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] }; configMap?: { name: string; items?: { key: string; path: string }[] } }[];
  for (const m of (container.volumeMounts ?? []) as { name: string; mountPath: string }[]) {
    const v = volumes.find((x) => x.name === m.name);
    const source = v?.secret
      ? { kind: 'Secret', name: v.secret.secretName, items: v.secret.items }
      : v?.configMap
        ? { kind: 'ConfigMap', name: v.configMap.name, items: v.configMap.items }
        : undefined;
    if (!source) continue;
    const data = dataOf(objects.find((o) => o.kind === source.kind && o.metadata.name === source.name && (o.metadata.namespace ?? 'default') === namespace));
    if (!data) continue; // the kubelet would wait; the server then starts without the file (echo-basic: no TLS port)
    const dir = m.mountPath.replace(/\/$/, '');
    for (const item of source.items ?? Object.keys(data).map((key) => ({ key, path: key }))) {
      if (data[item.key] !== undefined) files[`${dir}/${item.path}`] = data[item.key];
    }
  }
  return { mode: mode ?? (isDns ? 'dns' : modeFromEnv(env)), env, files };
}

export interface FleetOptions {
  /** suite.json echoBackends.instances (mode, replicas) for the Deployments they name. */
  instances: EchoBackendInstance[];
  /** The base manifests' Deployments: one pod per replica. */
  deployments: KObject[];
  /** Secrets and ConfigMaps the pods' volumes mount. */
  objects: KObject[];
  /** Fixed first three octets (e.g. "127.77.3"); random when omitted. */
  subnet?: string;
  log?: (line: string) => void;
}

/** Addresses per subnet: .1 to .254. */
const HOSTS_PER_SUBNET = 254;

export class EchoFleet {
  readonly pods: EchoPod[] = [];
  readonly subnet: string;
  readonly #instances: EchoBackendInstance[];
  readonly #log: FleetOptions['log'];
  readonly #usedHosts = new Set<number>();

  private constructor(subnet: string, instances: EchoBackendInstance[], log: FleetOptions['log']) {
    this.subnet = subnet;
    this.#instances = instances;
    this.#log = log;
  }

  /** Starts one echo server per replica of the base Deployments, each on its own loopback address. */
  static async start(opts: FleetOptions): Promise<EchoFleet> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 6; attempt++) {
      const fleet = new EchoFleet(opts.subnet ?? `127.77.${randomInt(1, 255)}`, opts.instances, opts.log);
      try {
        await fleet.startDeployments(opts.deployments, opts.objects);
        return fleet;
      } catch (err) {
        lastError = err;
        await fleet.close();
        if (opts.subnet) break;
      }
    }
    throw new Error(`cannot start the echo pods: ${(lastError as Error)?.message ?? lastError}`);
  }

  /**
   * Starts the pods of `deployments` (replicas from suite.json's instance, else spec.replicas, else
   * 1) and returns them; on failure the ones started are stopped again and the error names the
   * Deployment.
   */
  async startDeployments(deployments: KObject[], objects: KObject[]): Promise<EchoPod[]> {
    const started: EchoPod[] = [];
    try {
      for (const d of deployments) {
        const namespace = d.metadata.namespace ?? 'default';
        const inst = this.#instances.find((i) => i.deployment === d.metadata.name && i.namespace === namespace);
        const labels: Record<string, string> = d.spec?.template?.metadata?.labels ?? { app: d.metadata.name };
        const replicas = inst?.replicas ?? (typeof d.spec?.replicas === 'number' ? d.spec.replicas : 1);
        const hash = randomName(9 + randomInt(2));
        for (let r = 0; r < replicas; r++) {
          const ip = `${this.subnet}.${this.#takeHost()}`;
          const name = podName(d.metadata.name, hash);
          const container = echoContainer(d, { name, ip }, objects, inst?.mode);
          if ('problem' in container) {
            this.#releaseHost(ip);
            throw new Error(container.problem);
          }
          let echo: RunningEcho;
          try {
            echo = await startEchoBasic({ host: ip, mode: container.mode, env: container.env, files: container.files, log: this.#log ? (line) => this.#log!(`[${name}] ${line}`) : undefined });
          } catch (err) {
            this.#releaseHost(ip);
            throw new Error(`Deployment ${namespace}/${d.metadata.name}: pod ${name} (${container.mode}) on ${ip}: ${(err as Error).message}`);
          }
          const pod: EchoPod = { name, namespace, deployment: d.metadata.name, ip, labels, mode: echo.mode, containerPorts: echo.ports, server: echo.http, stop: () => echo.stop() };
          started.push(pod);
          this.pods.push(pod);
        }
      }
    } catch (err) {
      await this.stopPods(started);
      throw err;
    }
    return started;
  }

  /** Stops `pods` and forgets them (their addresses become free again). */
  async stopPods(pods: EchoPod[]): Promise<void> {
    await Promise.all(pods.map((p) => p.stop()));
    for (const p of pods) {
      const i = this.pods.indexOf(p);
      if (i !== -1) this.pods.splice(i, 1);
      this.#releaseHost(p.ip);
    }
  }

  #takeHost(): number {
    for (let h = 1; h <= HOSTS_PER_SUBNET; h++) {
      if (!this.#usedHosts.has(h)) {
        this.#usedHosts.add(h);
        return h;
      }
    }
    throw new Error(`no free address left in ${this.subnet}.0/24`);
  }

  #releaseHost(ip: string): void {
    this.#usedHosts.delete(Number(ip.slice(ip.lastIndexOf('.') + 1)));
  }

  /** Pods in `namespace` whose labels satisfy `selector`. */
  select(namespace: string, selector: Record<string, string>): EchoPod[] {
    return this.pods.filter((p) => p.namespace === namespace && Object.entries(selector).every(([k, v]) => p.labels[k] === v));
  }

  byDeployment(namespace: string | undefined, deployment: string): EchoPod[] {
    return this.pods.filter((p) => p.deployment === deployment && (namespace === undefined || p.namespace === namespace));
  }

  async close(): Promise<void> {
    await this.stopPods([...this.pods]);
  }
}

// ---------------------------------------------------------------------------
// EndpointSlices
// ---------------------------------------------------------------------------

export interface PodEndpoint {
  name: string;
  namespace: string;
  ip: string;
  labels: Record<string, string>;
  containerPorts: { name: string; port: number }[];
}

function endpointOf(p: PodEndpoint): Record<string, unknown> {
  return {
    addresses: [p.ip],
    conditions: { ready: true, serving: true, terminating: false },
    targetRef: { kind: 'Pod', name: p.name, namespace: p.namespace },
  };
}

/**
 * One EndpointSlice per selector-based Service, listing every pod the
 * selector matches (ready), ports mapped from the Service's targetPorts.
 * Services without a selector (manual slices) and ExternalName Services get none.
 */
export function endpointSlicesForServices(services: KObject[], pods: PodEndpoint[], suffix: () => string = () => randomName(5)): KObject[] {
  const out: KObject[] = [];
  for (const svc of services) {
    if (svc.kind !== 'Service') continue;
    const selector: Record<string, string> | undefined = svc.spec?.selector;
    if (!selector || Object.keys(selector).length === 0 || svc.spec?.type === 'ExternalName') continue;
    const namespace = svc.metadata.namespace ?? 'default';
    const matched = pods.filter((p) => p.namespace === namespace && Object.entries(selector).every(([k, v]) => p.labels[k] === v));
    const ports: Record<string, unknown>[] = [];
    for (const sp of (svc.spec?.ports ?? []) as any[]) {
      let target: number | undefined;
      if (typeof sp.targetPort === 'number') target = sp.targetPort;
      else if (typeof sp.targetPort === 'string' && /^\d+$/.test(sp.targetPort)) target = Number(sp.targetPort);
      else if (typeof sp.targetPort === 'string') target = matched[0]?.containerPorts.find((c) => c.name === sp.targetPort)?.port;
      else target = sp.port;
      if (target === undefined) continue;
      const port: Record<string, unknown> = { name: sp.name ?? '', port: target, protocol: sp.protocol ?? 'TCP' };
      if (sp.appProtocol) port.appProtocol = sp.appProtocol;
      ports.push(port);
    }
    out.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${svc.metadata.name}-${suffix()}`,
        namespace,
        labels: {
          'kubernetes.io/service-name': svc.metadata.name,
          'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        },
      },
      addressType: 'IPv4',
      endpoints: matched.map(endpointOf),
      ports,
    });
  }
  return out;
}

/** Fills an existing (manual) EndpointSlice with pods of its address family; other families stay empty. */
export function fillEndpointSlice(slice: KObject, pods: PodEndpoint[]): void {
  const family = slice.addressType;
  const matching = pods.filter((p) => (family === 'IPv6' ? p.ip.includes(':') : family === 'IPv4' ? !p.ip.includes(':') : false));
  slice.endpoints = matching.map(endpointOf);
}

// ---------------------------------------------------------------------------
// Suite objects: namespaces, GatewayClass, generated Secrets / ConfigMaps
// ---------------------------------------------------------------------------

export interface GeneratedMaterial {
  objects: KObject[];
  /** ref -> bundle, for Secrets holding certificates. */
  bundles: Map<string, CertificateBundle>;
}

/** Builds the objects of suite.json `generatedObjects` with fresh keys. */
export async function generateObjects(defs: GeneratedObject[]): Promise<GeneratedMaterial> {
  const cas = new Map<string, CertificateAuthority>();
  const caFor = async (label: string): Promise<CertificateAuthority> => {
    let ca = cas.get(label);
    if (!ca) {
      ca = await createCertificateAuthority({ commonName: `conformance CA ${label}` });
      cas.set(label, ca);
    }
    return ca;
  };
  const labelIn = (text: string | undefined): string | undefined => /CA '([^']+)'/.exec(text ?? '')?.[1];
  let anonymous = 0;
  const objects: KObject[] = [];
  const bundles = new Map<string, CertificateBundle>();
  for (const def of defs) {
    const ref = `${def.namespace}/${def.name}`;
    if (def.kind === 'Secret') {
      let bundle: CertificateBundle;
      if (def.subjectAltNames) {
        const names = { dnsNames: def.subjectAltNames.dns ?? [], uris: def.subjectAltNames.uri ?? [], ipAddresses: def.subjectAltNames.ip ?? [] };
        // "signed by CA 'C'": clients of these backends trust only that CA's ConfigMap.
        const issuer = /signed by CA/.test(def.how ?? '') ? labelIn(def.how) : undefined;
        bundle = issuer ? await createServerCertificate(await caFor(issuer), names) : await createSelfSignedServerCertificate(names);
      } else if (/clientAuth|client certificate/i.test(def.how ?? '')) {
        const label = labelIn(def.how);
        if (!label) throw new Error(`generatedObjects ${ref}: cannot tell which CA signs the client certificate (${def.how})`);
        bundle = await createClientCertificate(await caFor(label), { commonName: def.name });
      } else {
        throw new Error(`generatedObjects ${ref}: cannot interpret ${JSON.stringify(def.how)}`);
      }
      bundles.set(ref, bundle);
      objects.push({
        apiVersion: 'v1',
        kind: 'Secret',
        type: def.type ?? 'kubernetes.io/tls',
        metadata: { name: def.name, namespace: def.namespace },
        data: tlsSecretData(bundle),
      });
    } else if (def.kind === 'ConfigMap') {
      const data: Record<string, string> = {};
      for (const [key, description] of Object.entries(def.data ?? {})) {
        if (/\bCA\b/.test(description) && /PEM/.test(description)) {
          const label = labelIn(description) ?? `anonymous-${++anonymous}`;
          data[key] = (await caFor(label)).certPem;
        } else {
          throw new Error(`generatedObjects ${ref}: cannot interpret data ${key}: ${JSON.stringify(description)}`);
        }
      }
      objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: def.name, namespace: def.namespace }, data });
    } else {
      throw new Error(`generatedObjects ${ref}: unsupported kind ${JSON.stringify((def as { kind?: unknown }).kind)}`);
    }
  }
  return { objects, bundles };
}

/**
 * Namespaces of suite.json: labels are merged into a Namespace of the base
 * manifests when it exists there (the base objects are edited in place),
 * otherwise a Namespace object is returned.
 */
export function suiteNamespaces(suite: SuiteFile, base: KObject[]): KObject[] {
  const out: KObject[] = [];
  for (const ns of suite.namespaces) {
    const existing = base.find((o) => o.kind === 'Namespace' && o.metadata.name === ns.name);
    if (existing) existing.metadata.labels = { ...(ns.labels ?? {}), ...(existing.metadata.labels ?? {}) };
    else out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.name, labels: { ...(ns.labels ?? {}) } } });
  }
  return out;
}

export function gatewayClassObject(name: string, controllerName: string): KObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name },
    spec: { controllerName, description: 'GatewayClass of the Sluice conformance runner' },
  };
}

function findObject(objects: KObject[], kind: string, ref: string): KObject | undefined {
  const [namespace, name] = ref.includes('/') ? ref.split('/', 2) : ['default', ref];
  return objects.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace ?? 'default') === namespace);
}

/** One `data` value of a ConfigMap in the manifest set (e.g. a CA bundle's `ca.crt`). */
export function configMapValue(objects: KObject[], ref: string, key: string): string | undefined {
  const value = (findObject(objects, 'ConfigMap', ref)?.data as Record<string, unknown> | undefined)?.[key];
  return typeof value === 'string' ? value : undefined;
}

/** PEM pair of a kubernetes.io/tls Secret in the manifest set. */
export function secretPem(objects: KObject[], ref: string): { certPem: string; keyPem?: string } | undefined {
  const s = findObject(objects, 'Secret', ref);
  if (!s) return undefined;
  const data = (s.data ?? {}) as Record<string, string>;
  const stringData = (s.stringData ?? {}) as Record<string, string>;
  const get = (k: string) => stringData[k] ?? (data[k] !== undefined ? Buffer.from(data[k], 'base64').toString('utf8') : undefined);
  const certPem = get('tls.crt');
  if (!certPem) return undefined;
  return { certPem, keyPem: get('tls.key') };
}
