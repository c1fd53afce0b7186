// Certificates for HTTPS listeners. SecureContexts are built once per certificate hash and
// shared by every listener and reload; the SNICallback picks one per handshake from the
// listener's current selector, so certificate changes never reopen a socket.

import tls from 'node:tls';
import type { ListenerTls, TlsCertificate } from '../../controller/ir/types.ts';
import { HostIndex, normalizeHost } from '../router/host.ts';

export const MIN_TLS_VERSION = 'TLSv1.2';

export interface CertificateProblem {
  certificate: string;
  message: string;
}

export class SecureContextCache {
  private contexts = new Map<string, tls.SecureContext>();

  /** Throws when the PEM material is unusable. */
  get(certificate: TlsCertificate): tls.SecureContext {
    let context = this.contexts.get(certificate.hash);
    if (context === undefined) {
      context = tls.createSecureContext({ cert: certificate.certPem, key: certificate.keyPem, minVersion: MIN_TLS_VERSION });
      this.contexts.set(certificate.hash, context);
    }
    return context;
  }

  /** Forgets contexts no committed table uses (a live handshake keeps its own reference). */
  retainOnly(hashes: ReadonlySet<string>): void {
    for (const hash of this.contexts.keys()) if (!hashes.has(hash)) this.contexts.delete(hash);
  }
}

/**
 * SNI → SecureContext for one listener: exact name, then the longest matching wildcard, then a
 * certificate without hostnames; the first certificate is the fallback for no SNI or no match.
 */
export class CertificateSelector {
  readonly fallback: TlsCertificate;
  private readonly fallbackContext: tls.SecureContext;
  private readonly byHost: HostIndex<tls.SecureContext>;

  private constructor(fallback: TlsCertificate, fallbackContext: tls.SecureContext, byHost: HostIndex<tls.SecureContext>) {
    this.fallback = fallback;
    this.fallbackContext = fallbackContext;
    this.byHost = byHost;
  }

  /**
   * Builds the selector from the certificates that load; broken ones are reported and skipped.
   * Null when none loads (the listener cannot serve TLS).
   */
  static build(config: ListenerTls | undefined, cache: SecureContextCache, problems: CertificateProblem[]): CertificateSelector | null {
    const byHost = new HostIndex<tls.SecureContext>();
    let fallback: { certificate: TlsCertificate; context: tls.SecureContext } | null = null;
    for (const certificate of config?.certificates ?? []) {
      let context: tls.SecureContext;
      try {
        context = cache.get(certificate);
      } catch (error) {
        problems.push({ certificate: certificate.name, message: (error as Error).message });
        continue;
      }
      fallback ??= { certificate, context };
      if (certificate.hostnames.length === 0) byHost.add(null, context);
      for (const hostname of certificate.hostnames) byHost.add(hostname, context);
    }
    return fallback === null ? null : new CertificateSelector(fallback.certificate, fallback.context, byHost);
  }

  select(servername: string): tls.SecureContext {
    return this.byHost.find(normalizeHost(servername)) ?? this.fallbackContext;
  }

  /** Hashes of every certificate this selector can hand out (for cache retention). */
  static hashes(config: ListenerTls | undefined): string[] {
    return (config?.certificates ?? []).map((certificate) => certificate.hash);
  }
}
