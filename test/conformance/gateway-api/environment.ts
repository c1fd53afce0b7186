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
import { startEchoServer, type EchoServer } from '../../support/demo/echo-server.ts';
import { parseYamlObjects, type KObject } from '../lib/manifest-store.ts';
import { startTcpEcho } from '../../support/demo/tcp-echo.ts';
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
  /** Container ports by name (upstream echo-basic: http 3000, h2c 3001, https 8443). */
  containerPorts: { name: string; port: number }[];
  /** The HTTP echo; undefined for a pod in TCP mode (it logs no requests). */
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

export interface FleetOptions {
  instances: EchoBackendInstance[];
  /** Deployments from the base manifests (for pod template labels). */
  deployments: KObject[];
  containerPorts: { http: number; h2c: number; https: number };
  /** Fixed first three octets (e.g. "127.77.3"); random when omitted. */
  subnet?: string;
  /** PEM pair of a generated Secret (`namespace/name`), for backends that serve TLS. */
  tlsFor?: (secretRef: string) => { certPem: string; keyPem?: string } | undefined;
  log?: (line: string) => void;
}

/** A pod in echo-basic's TCP mode: plain TCP and, with `tlsCertificateFrom`, TLS. */
async function startTcpPod(
  inst: EchoBackendInstance,
  host: string,
  identity: { pod: string; namespace: string },
  tlsFor: FleetOptions['tlsFor'],
): Promise<Pick<EchoPod, 'containerPorts' | 'stop'>> {
  const tcpPort = inst.containerPorts?.tcp ?? TCP_ECHO_PORTS.tcp;
  const tlsPort = inst.containerPorts?.tls ?? TCP_ECHO_PORTS.tls;
  let tlsPem: { certPem: string; keyPem: string } | undefined;
  if (inst.tlsCertificateFrom) {
    const pem = tlsFor?.(inst.tlsCertificateFrom);
    if (!pem?.keyPem) throw new Error(`echo backend ${inst.namespace}/${inst.deployment}: no certificate and key in Secret ${inst.tlsCertificateFrom}`);
    tlsPem = { certPem: pem.certPem, keyPem: pem.keyPem };
  }
  const server = await startTcpEcho({ host, tcpPort, tlsPort, ...(tlsPem ? { tls: tlsPem } : {}), identity });
  return {
    containerPorts: [
      { name: 'tcp', port: tcpPort },
      { name: 'tls', port: tlsPort },
    ],
    stop: () => server.close(),
  };
}

/** echo-basic's TCP_PORT and TLS_PORT defaults. */
const TCP_ECHO_PORTS = { tcp: 3000, tls: 8443 };

export class EchoFleet {
  readonly pods: EchoPod[];
  readonly subnet: string;

  private constructor(pods: EchoPod[], subnet: string) {
    this.pods = pods;
    this.subnet = subnet;
  }

  /** Starts one echo server per replica, each on its own loopback address. */
  static async start(opts: FleetOptions): Promise<EchoFleet> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 6; attempt++) {
      const subnet = opts.subnet ?? `127.77.${randomInt(1, 255)}`;
      const pods: EchoPod[] = [];
      try {
        let host = 1;
        for (const inst of opts.instances) {
          const deployment = opts.deployments.find((d) => d.metadata.name === inst.deployment && d.metadata.namespace === inst.namespace);
          const labels: Record<string, string> = deployment?.spec?.template?.metadata?.labels ?? { app: inst.deployment };
          const hash = randomName(9 + randomInt(2));
          for (let r = 0; r < inst.replicas; r++) {
            const ip = `${subnet}.${host++}`;
            const name = podName(inst.deployment, hash);
            const identity = { pod: name, namespace: inst.namespace };
            const base = { name, namespace: inst.namespace, deployment: inst.deployment, ip, labels };
            if (inst.mode === 'tcp') {
              pods.push({ ...base, ...(await startTcpPod(inst, ip, identity, opts.tlsFor)), server: undefined });
              continue;
            }
            // gRPC, UDP and DNS modes are not served yet: their tests need unclaimed features.
            const server = await startEchoServer({
              host: ip,
              httpPort: opts.containerPorts.http,
              h2cPort: opts.containerPorts.h2c,
              identity,
              log: opts.log ? (line) => opts.log!(`[${name}] ${line}`) : undefined,
            });
            pods.push({
              ...base,
              containerPorts: [
                { name: 'http', port: opts.containerPorts.http },
                { name: 'h2c', port: opts.containerPorts.h2c },
              ],
              server,
              stop: () => server.close(),
            });
          }
        }
        return new EchoFleet(pods, subnet);
      } catch (err) {
        lastError = err;
        await Promise.all(pods.map((p) => p.stop()));
        if (opts.subnet) break;
      }
    }
    throw new Error(`cannot start the echo pods: ${(lastError as Error)?.message ?? lastError}`);
  }

  /** Pods in `namespace` whose labels satisfy `selector`. */
  select(namespace: string, selector: Record<string, string>): EchoPod[] {
    return this.pods.filter((p) => p.namespace === namespace && Object.entries(selector).every(([k, v]) => p.labels[k] === v));
  }

  byDeployment(namespace: string | undefined, deployment: string): EchoPod[] {
    return this.pods.filter((p) => p.deployment === deployment && (namespace === undefined || p.namespace === namespace));
  }

  async close(): Promise<void> {
    await Promise.all(this.pods.map((p) => p.stop()));
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
