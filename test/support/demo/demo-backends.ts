// `sluice run --demo-backends`: makes a manifest folder runnable on a laptop.
//  - Every EndpointSlice endpoint on a loopback address gets an echo server
//    (named after the endpoint's targetRef Pod), so routes answer at once.
//  - Every TLS Secret an HTTPS listener or an Ingress names but the folder
//    lacks gets a self-signed certificate, written once into the folder as
//    `generated-tls-<namespace>-<name>.yaml`.
//  - Services a GRPCRoute sends to get gRPC echo servers (echo-basic's gRPC mode, grpc-echo.ts).
//  - Services a TCPRoute or TLSRoute sends to get TCP echo servers, those a UDPRoute sends to UDP
//    echo servers (echo-basic's TCP and UDP modes).
//  - Services a BackendTLSPolicy targets get HTTPS echo servers with a
//    certificate for the policy's hostname and SANs, signed by a CA made for
//    this run; the CA ConfigMaps the policies name and the client certificates
//    Gateways name (spec.tls.backend) that the folder lacks are written as
//    `generated-ca-...` / `generated-tls-...` files, renewed on every start.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parse, stringify } from 'yaml';
import { GATEWAY_GROUP, type InputSnapshot, type KubeObject } from '../../../controller/sources/objects.ts';
import {
  createCertificateAuthority,
  createClientCertificate,
  createSelfSignedServerCertificate,
  createServerCertificate,
  tlsSecretData,
  type CertificateAuthority,
  type CertificateBundle,
} from './certs.ts';
import { startEchoServer } from './echo-server.ts';
import { startGrpcEcho } from './grpc-echo.ts';
import { startTcpEcho } from './tcp-echo.ts';
import { startUdpEcho } from './udp-echo.ts';

export class DemoBackends {
  private readonly servers = new Map<string, Promise<{ close(): Promise<void> } | null>>();
  private readonly dir: string;
  private readonly logger: Logger;
  /** The CA behind the HTTPS demo backends and the client certificates written for Gateways; one per run. */
  private backendCa: Promise<CertificateAuthority> | null = null;
  /** Files of backend TLS this run has written (earlier runs' files hold another CA: rewritten once). */
  private readonly writtenThisRun = new Set<string>();

  constructor(manifestDir: string, logger: Logger) {
    this.dir = manifestDir;
    this.logger = logger;
  }

  /** Starts what the snapshot needs; returns true when it wrote files (the folder will be read again). */
  async sync(snapshot: InputSnapshot): Promise<boolean> {
    const wroteCertificates = await this.writeMissingCertificates(snapshot);
    const wrote = (await this.writeBackendTlsFiles(snapshot)) || wroteCertificates;
    const tlsServices = backendTlsWanted(snapshot).services;
    const grpc = routeServices(snapshot.grpcRoutes);
    const tcp = routeServices([...snapshot.tcpRoutes, ...snapshot.tlsRoutes]);
    const udp = routeServices(snapshot.udpRoutes);
    const starts: Promise<unknown>[] = [];
    for (const { address, port, pod, namespace, service } of demoEndpoints(snapshot)) {
      const key = `${address}:${port}`;
      if (this.servers.has(key)) continue;
      const identity = { pod, namespace, service };
      const special: Promise<{ close(): Promise<void> }> | null = grpc.has(`${namespace}/${service}`)
        ? startGrpcEcho({ host: address, port, identity })
        : tcp.has(`${namespace}/${service}`)
          ? startTcpEcho({ host: address, tcpPort: port, tlsPort: 0, identity })
          : udp.has(`${namespace}/${service}`)
            ? startUdpEcho({ host: address, port, identity })
            : null;
      if (special) {
        this.servers.set(key, this.started(key, pod, special));
        starts.push(this.servers.get(key)!);
        continue;
      }
      const names = tlsServices.get(`${namespace}/${service}`);
      const options = names
        ? this.caOnce().then(async (ca) => {
            const leaf = await createServerCertificate(ca, { dnsNames: names.dnsNames, uris: names.uris });
            // HTTPS on the endpoint's port; asks for a client certificate and verifies it against the CA.
            return { host: address, httpPort: 0, httpsPort: port, tls: { cert: leaf.certPem, key: leaf.keyPem, ca: ca.certPem }, identity: { pod, namespace, service } };
          })
        : Promise.resolve({ host: address, httpPort: port, identity: { pod, namespace, service } });
      const started = this.started(key, pod, options.then(startEchoServer));
      this.servers.set(key, started);
      starts.push(started);
    }
    await Promise.all(starts);
    return wrote;
  }

  /** Logs a demo backend's start (or why it could not start); a failed one is null. */
  private started<T>(key: string, pod: string, server: Promise<T>): Promise<T | null> {
    return server.then(
      (s) => {
        this.logger.info({ address: key, pod }, `demo echo backend ${pod} listening on ${key}`);
        return s;
      },
      (err: Error) => {
        this.logger.warn({ address: key, err: err.message }, `cannot start demo echo backend on ${key}: ${err.message}`);
        return null;
      },
    );
  }

  async close(): Promise<void> {
    const servers = await Promise.all(this.servers.values());
    await Promise.all(servers.map((s) => s?.close()));
  }

  private caOnce(): Promise<CertificateAuthority> {
    return (this.backendCa ??= createCertificateAuthority({ commonName: 'sluice demo backend CA' }));
  }

  /** CA ConfigMaps and Gateway client certificates for backend TLS that the folder lacks (or that an earlier run wrote). */
  private async writeBackendTlsFiles(snapshot: InputSnapshot): Promise<boolean> {
    const { caConfigMaps, clientSecrets } = backendTlsWanted(snapshot);
    const present = (kind: 'ConfigMap' | 'Secret', key: string) => (kind === 'ConfigMap' ? snapshot.configMaps : snapshot.secrets).some((o) => `${o.metadata.namespace}/${o.metadata.name}` === key);
    const ours = (file: string) => existsSync(file) && readFileSync(file, 'utf8').startsWith(GENERATED_BACKEND_MARKER);
    let wrote = false;
    const write = async (kind: 'ConfigMap' | 'Secret', namespace: string, name: string, object: (ca: CertificateAuthority) => Promise<KubeObject>) => {
      const file = join(this.dir, `generated-${kind === 'ConfigMap' ? 'ca' : 'tls'}-${namespace}-${name}.yaml`);
      if (this.writtenThisRun.has(file) || (present(kind, `${namespace}/${name}`) && !ours(file))) return;
      writeFileSync(file, `${GENERATED_BACKEND_MARKER}; rewritten on every start.\n${stringify(await object(await this.caOnce()))}`);
      this.writtenThisRun.add(file);
      this.logger.info({ file }, `wrote ${kind} ${namespace}/${name} for backend TLS to ${file}`);
      wrote = true;
    };
    for (const { namespace, name } of caConfigMaps) {
      await write('ConfigMap', namespace, name, async (ca) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { 'ca.crt': ca.certPem } }));
    }
    for (const { namespace, name } of clientSecrets) {
      await write('Secret', namespace, name, async (ca) => tlsSecret(namespace, name, await createClientCertificate(ca, { commonName: `gateway client ${namespace}/${name}` })));
    }
    return wrote;
  }

  private async writeMissingCertificates(snapshot: InputSnapshot): Promise<boolean> {
    const secrets = new Set(snapshot.secrets.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
    let wrote = false;
    for (const { namespace, name, hostnames } of tlsSecretsWanted(snapshot)) {
      const key = `${namespace}/${name}`;
      const file = join(this.dir, `generated-tls-${namespace}-${name}.yaml`);
      const dnsNames = [...new Set([...hostnames, 'localhost'])];
      // A certificate this option wrote before is replaced when it no longer names every host served.
      const missing = existsSync(file) ? namesMissingFromGenerated(file, dnsNames) : [];
      if (existsSync(file) ? missing.length === 0 : secrets.has(key)) continue;
      if (missing.length > 0) this.logger.info({ secret: key, file, missing }, `${file} does not name ${missing.join(', ')}: writing a new certificate`);
      const ipAddresses = ['127.0.0.1'];
      const bundle = await createSelfSignedServerCertificate({ dnsNames, ipAddresses });
      const secret = tlsSecret(namespace, name, bundle);
      writeFileSync(file, `${GENERATED_MARKER}; delete it to get a new one.\n${stringify(secret)}`);
      this.logger.info({ secret: key, file }, `wrote a self-signed certificate for ${[...dnsNames, ...ipAddresses].join(', ')} to ${file}`);
      secrets.add(key);
      wrote = true;
    }
    return wrote;
  }
}

function tlsSecret(namespace: string, name: string, bundle: CertificateBundle): KubeObject {
  return { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace }, data: tlsSecretData(bundle) };
}

/**
 * The snapshot as it will be once `--demo-backends` has written its certificates, without writing
 * them: every missing TLS Secret holds one throwaway certificate. For checks made before any side
 * effect (which HTTPS listeners will be served, so which ports bound).
 */
export async function withPlannedCertificates(snapshot: InputSnapshot): Promise<InputSnapshot> {
  const present = new Set(snapshot.secrets.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
  const missing = tlsSecretsWanted(snapshot).filter(({ namespace, name }) => !present.has(`${namespace}/${name}`));
  if (missing.length === 0) return snapshot;
  const placeholder = await createSelfSignedServerCertificate({ dnsNames: ['localhost'] });
  const planned = new Map(missing.map(({ namespace, name }) => [`${namespace}/${name}`, tlsSecret(namespace, name, placeholder)]));
  return { ...snapshot, secrets: [...snapshot.secrets, ...planned.values()] };
}

const GENERATED_MARKER = '# Self-signed certificate written by sluice --demo-backends';
const GENERATED_BACKEND_MARKER = '# Backend TLS demo file written by sluice --demo-backends (its CA lives only in the running process)';

export interface BackendTlsWanted {
  /** `namespace/service` → the names its demo certificate must carry (policy hostnames and SANs). */
  services: Map<string, { dnsNames: string[]; uris: string[] }>;
  /** ConfigMaps BackendTLSPolicies take CA certificates from. */
  caConfigMaps: { namespace: string; name: string }[];
  /** Secrets Gateways present to TLS backends (spec.tls.backend.clientCertificateRef). */
  clientSecrets: { namespace: string; name: string }[];
}

/** What `--demo-backends` needs for the BackendTLSPolicies and Gateway client certificates of a folder. */
export function backendTlsWanted(snapshot: InputSnapshot): BackendTlsWanted {
  const services = new Map<string, { dnsNames: string[]; uris: string[] }>();
  const caConfigMaps: { namespace: string; name: string }[] = [];
  for (const policy of snapshot.backendTlsPolicies) {
    const namespace = policy.metadata.namespace ?? 'default';
    const validation = policy.spec.validation;
    for (const ref of policy.spec.targetRefs) {
      if (ref.group !== '' || ref.kind !== 'Service') continue;
      const names = services.get(`${namespace}/${ref.name}`) ?? { dnsNames: [], uris: [] };
      for (const dns of [validation.hostname, ...(validation.subjectAltNames ?? []).flatMap((s) => (s.hostname ? [s.hostname] : []))]) if (!names.dnsNames.includes(dns)) names.dnsNames.push(dns);
      for (const uri of (validation.subjectAltNames ?? []).flatMap((s) => (s.uri ? [s.uri] : []))) if (!names.uris.includes(uri)) names.uris.push(uri);
      services.set(`${namespace}/${ref.name}`, names);
    }
    for (const ref of validation.caCertificateRefs ?? []) if (ref.group === '' && ref.kind === 'ConfigMap') caConfigMaps.push({ namespace, name: ref.name });
  }
  const clientSecrets = snapshot.gateways.flatMap((g) => {
    const ref = g.spec.tls?.backend?.clientCertificateRef;
    return ref && (ref.group ?? '') === '' && (ref.kind ?? 'Secret') === 'Secret' ? [{ namespace: ref.namespace ?? g.metadata.namespace ?? 'default', name: ref.name }] : [];
  });
  return { services, caConfigMaps, clientSecrets };
}

/** DNS names a certificate file this option wrote lacks; none for a file someone else wrote (it is theirs). */
function namesMissingFromGenerated(file: string, dnsNames: string[]): string[] {
  const text = readFileSync(file, 'utf8');
  if (!text.startsWith(GENERATED_MARKER)) return [];
  let named: Set<string>;
  try {
    const pem = Buffer.from(String((parse(text) as KubeObject).data?.['tls.crt'] ?? ''), 'base64').toString('utf8');
    named = new Set((new X509Certificate(pem).subjectAltName ?? '').split(', ').filter((san) => san.startsWith('DNS:')).map((san) => san.slice(4)));
  } catch {
    return dnsNames; // unreadable: write a good one
  }
  return dnsNames.filter((name) => !named.has(name));
}

export interface WantedTlsSecret {
  namespace: string;
  name: string;
  /** Every hostname served with it, lower-case, first mention first. */
  hostnames: string[];
}

/**
 * TLS Secrets that HTTPS listeners (of Gateways and ListenerSets) and Ingresses name, with the
 * hostnames they serve: the listener's hostname or, without one, the hostnames of the HTTPRoutes
 * attached to it; an Ingress TLS entry's hosts or, without them, its rules' hosts.
 */
export function tlsSecretsWanted(snapshot: InputSnapshot): WantedTlsSecret[] {
  const wanted = new Map<string, WantedTlsSecret>();
  const want = (namespace: string, name: string, hostnames: string[]): void => {
    const key = `${namespace}/${name}`;
    const entry = wanted.get(key) ?? { namespace, name, hostnames: [] };
    for (const hostname of hostnames) if (!entry.hostnames.includes(hostname.toLowerCase())) entry.hostnames.push(hostname.toLowerCase());
    wanted.set(key, entry);
  };
  const owners = [...snapshot.gateways.map((obj) => ({ kind: 'Gateway', obj })), ...snapshot.listenerSets.map((obj) => ({ kind: 'ListenerSet', obj }))];
  for (const { kind, obj } of owners) {
    const namespace = obj.metadata.namespace!;
    for (const listener of obj.spec?.listeners ?? []) {
      // HTTPS listeners, and TLS listeners that terminate (tls.mode defaults to Terminate).
      const terminates = listener?.protocol === 'HTTPS' || (listener?.protocol === 'TLS' && listener.tls?.mode !== 'Passthrough');
      if (!terminates) continue;
      const hostnames: string[] = listener.hostname ? [String(listener.hostname)] : attachedRouteHostnames(snapshot, kind, obj, listener);
      for (const ref of listener?.tls?.certificateRefs ?? []) {
        if ((ref?.kind ?? 'Secret') !== 'Secret' || (ref?.group ?? '') !== '' || !ref?.name) continue;
        want(ref.namespace ?? namespace, ref.name, hostnames);
      }
    }
  }
  for (const ing of snapshot.ingresses) {
    const ruleHosts: string[] = (ing.spec?.rules ?? []).flatMap((rule: any) => (rule?.host ? [String(rule.host)] : []));
    for (const tls of ing.spec?.tls ?? []) {
      if (tls?.secretName) want(ing.metadata.namespace!, tls.secretName, tls.hosts?.length ? tls.hosts.map(String) : ruleHosts);
    }
  }
  return [...wanted.values()];
}

/** Hostnames of the HTTPRoutes and TLSRoutes whose parentRefs name this listener (by section or port, or the whole parent). */
function attachedRouteHostnames(snapshot: InputSnapshot, kind: string, parent: KubeObject, listener: any): string[] {
  return [...snapshot.httpRoutes, ...snapshot.tlsRoutes].flatMap((route) => {
    const attached = (route.spec?.parentRefs ?? []).some(
      (ref: any) =>
        (ref?.group ?? GATEWAY_GROUP) === GATEWAY_GROUP &&
        (ref?.kind ?? 'Gateway') === kind &&
        ref?.name === parent.metadata.name &&
        (ref?.namespace ?? route.metadata.namespace) === parent.metadata.namespace &&
        (ref?.sectionName === undefined || ref.sectionName === listener?.name) &&
        (ref?.port === undefined || Number(ref.port) === Number(listener?.port)),
    );
    return attached ? ((route.spec?.hostnames ?? []) as unknown[]).map(String) : [];
  });
}

export interface DemoEndpoint {
  address: string;
  port: number;
  pod: string;
  namespace: string;
  service: string;
}

/** The EndpointSlice endpoints on loopback addresses: where `--demo-backends` starts echo servers. */
/** `namespace/name` of every Service the routes' rules send to (GRPCRoute: their demo backends speak gRPC; TCPRoute, UDPRoute...). */
function routeServices(routes: { metadata: { namespace?: string }; spec?: { rules?: { backendRefs?: { kind?: string; group?: string; name: string; namespace?: string }[] }[] } }[]): Set<string> {
  const out = new Set<string>();
  for (const route of routes) {
    for (const rule of route.spec?.rules ?? []) {
      for (const ref of rule?.backendRefs ?? []) {
        if ((ref.kind ?? 'Service') === 'Service' && !ref.group) out.add(`${ref.namespace ?? route.metadata.namespace}/${ref.name}`);
      }
    }
  }
  return out;
}

export function demoEndpoints(snapshot: InputSnapshot): DemoEndpoint[] {
  const out: DemoEndpoint[] = [];
  for (const slice of snapshot.endpointSlices) {
    const service = slice.metadata.labels?.['kubernetes.io/service-name'] ?? slice.metadata.name;
    for (const port of slice.ports ?? []) {
      for (const ep of slice.endpoints ?? []) {
        for (const address of ep?.addresses ?? []) {
          if (!isLoopback(address) || !port?.port) continue;
          out.push({ address, port: Number(port.port), pod: ep?.targetRef?.name ?? `${service}-demo`, namespace: slice.metadata.namespace!, service });
        }
      }
    }
  }
  return out;
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}
