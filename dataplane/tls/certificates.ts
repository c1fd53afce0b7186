// Certificates for HTTPS listeners. SecureContexts are built once per certificate hash and
// shared by every listener and reload; the SNICallback picks one per handshake from the
// listener's current selector, so certificate changes never reopen a socket.

import { createHash } from 'node:crypto';
import tls from 'node:tls';
import type { ClientValidation, ListenerTls, TlsCertificate } from '../../controller/ir/types.ts';
import { HostIndex, normalizeHost } from '../router/host.ts';

export const MIN_TLS_VERSION = 'TLSv1.2';

export interface CertificateProblem {
  certificate: string;
  message: string;
}

/** Frontend client-certificate validation, as the TLS server applies it. */
export interface ClientValidationPlan {
  caCertificates: string[];
  /** false for AllowInsecureFallback: the certificate is asked for but not required. */
  rejectUnauthorized: boolean;
  /** Identifies the CA set, so contexts built with it are cached apart. */
  key: string;
}

export function compileClientValidation(validation: ClientValidation | undefined): ClientValidationPlan | null {
  if (validation === undefined) return null;
  const key = createHash('sha256').update(validation.caCertificates.join('\n')).digest('hex').slice(0, 16);
  return { caCertificates: validation.caCertificates, rejectUnauthorized: validation.mode !== 'AllowInsecureFallback', key };
}

/** The createSecureContext options for a certificate (and the CAs client certificates must chain to). */
export function secureContextOptions(certificate: TlsCertificate, clientValidation: ClientValidationPlan | null): tls.SecureContextOptions {
  return {
    cert: certificate.certPem,
    key: certificate.keyPem,
    minVersion: MIN_TLS_VERSION,
    ...(clientValidation !== null ? { ca: clientValidation.caCertificates } : {}),
  };
}

export class SecureContextCache {
  private contexts = new Map<string, tls.SecureContext>();

  /** Throws when the PEM material is unusable. */
  get(certificate: TlsCertificate, clientValidation: ClientValidationPlan | null): tls.SecureContext {
    // The verification CAs live in the context the SNICallback hands over, so they are part of the key.
    const key = cacheKey(certificate, clientValidation);
    let context = this.contexts.get(key);
    if (context === undefined) {
      context = tls.createSecureContext(secureContextOptions(certificate, clientValidation));
      this.contexts.set(key, context);
    }
    return context;
  }

  /** Forgets contexts no committed table uses (a live handshake keeps its own reference). */
  retainOnly(keys: ReadonlySet<string>): void {
    for (const key of this.contexts.keys()) if (!keys.has(key)) this.contexts.delete(key);
  }
}

export function cacheKey(certificate: TlsCertificate, clientValidation: ClientValidationPlan | null): string {
  return clientValidation === null ? certificate.hash : `${certificate.hash}/${clientValidation.key}`;
}

/**
 * SNI → SecureContext for one listener: exact name, then the longest matching wildcard, then a
 * certificate without hostnames; the first certificate is the fallback for no SNI or no match.
 */
export class CertificateSelector {
  readonly fallback: TlsCertificate;
  /** The certificates that loaded, in IR order. */
  readonly certificates: readonly TlsCertificate[];
  private readonly fallbackContext: tls.SecureContext;
  private readonly byHost: HostIndex<SelectedCertificate>;

  private constructor(certificates: TlsCertificate[], fallbackContext: tls.SecureContext, byHost: HostIndex<SelectedCertificate>) {
    this.fallback = certificates[0];
    this.certificates = certificates;
    this.fallbackContext = fallbackContext;
    this.byHost = byHost;
  }

  /**
   * Builds the selector from the certificates that load; broken ones are reported and skipped.
   * Null when none loads (the listener cannot serve TLS).
   */
  static build(
    config: ListenerTls | undefined,
    clientValidation: ClientValidationPlan | null,
    cache: SecureContextCache,
    problems: CertificateProblem[],
  ): CertificateSelector | null {
    const byHost = new HostIndex<SelectedCertificate>();
    const loaded: TlsCertificate[] = [];
    let fallbackContext: tls.SecureContext | null = null;
    for (const certificate of config?.certificates ?? []) {
      let context: tls.SecureContext;
      try {
        context = cache.get(certificate, clientValidation);
      } catch (error) {
        problems.push({ certificate: certificate.secret || certificate.name, message: (error as Error).message });
        continue;
      }
      loaded.push(certificate);
      fallbackContext ??= context;
      const selected = { certificate, context };
      if (certificate.hostnames.length === 0) byHost.add(null, selected);
      for (const hostname of certificate.hostnames) byHost.add(hostname, selected);
    }
    return fallbackContext === null ? null : new CertificateSelector(loaded, fallbackContext, byHost);
  }

  select(servername: string): tls.SecureContext {
    return this.byHost.find(normalizeHost(servername))?.context ?? this.fallbackContext;
  }

  /** SNI patterns in lookup precedence and the certificate each selects (the fallback aside). */
  sniEntries(): Array<{ pattern: string; certificate: TlsCertificate }> {
    return this.byHost.entries().map((entry) => ({ pattern: entry.pattern, certificate: entry.value.certificate }));
  }
}

interface SelectedCertificate {
  certificate: TlsCertificate;
  context: tls.SecureContext;
}
