// `sluice run --demo-backends`: makes a manifest folder runnable on a laptop.
//  - Every EndpointSlice endpoint on a loopback address gets an echo server
//    (named after the endpoint's targetRef Pod), so routes answer at once.
//  - Every TLS Secret an HTTPS listener or an Ingress names but the folder
//    lacks gets a self-signed certificate, written once into the folder as
//    `generated-tls-<namespace>-<name>.yaml`.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { stringify } from 'yaml';
import type { InputSnapshot, KubeObject } from '../sources/objects.ts';
import { createSelfSignedServerCertificate, tlsSecretData, type CertificateBundle } from './certs.ts';
import { startEchoServer, type EchoServer } from './echo-server.ts';

export class DemoBackends {
  private readonly servers = new Map<string, Promise<EchoServer | null>>();
  private readonly dir: string;
  private readonly logger: Logger;

  constructor(manifestDir: string, logger: Logger) {
    this.dir = manifestDir;
    this.logger = logger;
  }

  /** Starts what the snapshot needs; returns true when it wrote files (the folder will be read again). */
  async sync(snapshot: InputSnapshot): Promise<boolean> {
    const wrote = await this.writeMissingCertificates(snapshot);
    const starts: Promise<unknown>[] = [];
    for (const { address, port, pod, namespace, service } of demoEndpoints(snapshot)) {
      const key = `${address}:${port}`;
      if (this.servers.has(key)) continue;
      const started = startEchoServer({ host: address, httpPort: port, identity: { pod, namespace, service } }).then(
        (server) => {
          this.logger.info({ address: key, pod }, `demo echo backend ${pod} listening on ${key}`);
          return server;
        },
        (err: Error) => {
          this.logger.warn({ address: key, err: err.message }, `cannot start demo echo backend on ${key}: ${err.message}`);
          return null;
        },
      );
      this.servers.set(key, started);
      starts.push(started);
    }
    await Promise.all(starts);
    return wrote;
  }

  async close(): Promise<void> {
    const servers = await Promise.all(this.servers.values());
    await Promise.all(servers.map((s) => s?.close()));
  }

  private async writeMissingCertificates(snapshot: InputSnapshot): Promise<boolean> {
    const secrets = new Set(snapshot.secrets.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
    let wrote = false;
    for (const { namespace, name, hostnames } of tlsSecretsWanted(snapshot)) {
      const key = `${namespace}/${name}`;
      const file = join(this.dir, `generated-tls-${namespace}-${name}.yaml`);
      if (secrets.has(key) || existsSync(file)) continue;
      const dnsNames = [...new Set([...hostnames, 'localhost'])];
      const bundle = await createSelfSignedServerCertificate({ dnsNames });
      const secret = tlsSecret(namespace, name, bundle);
      writeFileSync(file, `# Self-signed certificate written by sluice --demo-backends; delete it to get a new one.\n${stringify(secret)}`);
      this.logger.info({ secret: key, file }, `wrote a self-signed certificate for ${dnsNames.join(', ')} to ${file}`);
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

/** TLS Secrets that HTTPS Gateway listeners and Ingresses name, with the hostnames they serve. */
function tlsSecretsWanted(snapshot: InputSnapshot): { namespace: string; name: string; hostnames: string[] }[] {
  const out: { namespace: string; name: string; hostnames: string[] }[] = [];
  for (const gw of snapshot.gateways) {
    for (const listener of gw.spec?.listeners ?? []) {
      if (listener?.protocol !== 'HTTPS') continue;
      for (const ref of listener?.tls?.certificateRefs ?? []) {
        if ((ref?.kind ?? 'Secret') !== 'Secret' || (ref?.group ?? '') !== '' || !ref?.name) continue;
        out.push({ namespace: ref.namespace ?? gw.metadata.namespace!, name: ref.name, hostnames: listener.hostname ? [listener.hostname] : [] });
      }
    }
  }
  for (const ing of snapshot.ingresses) {
    for (const tls of ing.spec?.tls ?? []) {
      if (tls?.secretName) out.push({ namespace: ing.metadata.namespace!, name: tls.secretName, hostnames: tls.hosts ?? [] });
    }
  }
  return out;
}

export interface DemoEndpoint {
  address: string;
  port: number;
  pod: string;
  namespace: string;
  service: string;
}

/** The EndpointSlice endpoints on loopback addresses: where `--demo-backends` starts echo servers. */
export function demoEndpoints(snapshot: InputSnapshot): DemoEndpoint[] {
  const out: DemoEndpoint[] = [];
  for (const slice of snapshot.endpointSlices) {
    const service = slice.metadata.labels?.['kubernetes.io/service-name'] ?? slice.metadata.name;
    for (const port of (slice.ports ?? []) as any[]) {
      for (const ep of (slice.endpoints ?? []) as any[]) {
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
