// Certificates for HTTPS listeners. SecureContexts are built once per certificate hash and
// shared by every listener and reload; the SNICallback picks one per handshake from the
// listener's current selector, so certificate changes never reopen a socket.

import { createHash } from 'node:crypto';
import tls from 'node:tls';
import { dnsSubjectAltNames } from '../../ir/certificate-names.ts';
import { defaultTlsSettings } from '../../ir/tls-profiles.ts';
import type { ClientValidation, ListenerTls, TlsCertificate, TlsSettings } from '../../ir/types.ts';
import { HostIndex, normalizeHost } from '../router/host.ts';

/** OpenSSL's default TLS 1.3 suites as Node ships them (all AEAD); only TLS 1.2 suites are configurable. */
const TLS13_SUITES = tls.DEFAULT_CIPHERS.split(':').filter((name) => name.startsWith('TLS_'));

/** A port's versions and ciphers (IR TlsSettings, the default profile when absent), ready for node:tls. */
export interface TlsSettingsPlan {
  settings: TlsSettings;
  /** Identifies the settings, so contexts built with them are cached apart. */
  key: string;
}

export function compileTlsSettings(settings: TlsSettings | undefined): TlsSettingsPlan {
  const resolved = settings ?? defaultTlsSettings();
  const key = createHash('sha256').update(`${resolved.minVersion}/${resolved.maxVersion}/${resolved.ciphers.join(':')}`).digest('hex').slice(0, 16);
  return { settings: resolved, key };
}

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

/**
 * The createSecureContext options for a certificate, the CAs client certificates must chain to, and
 * the port's versions and ciphers. Only the server's default context decides versions and ciphers
 * (OpenSSL has settled them when the SNI callback swaps contexts); SNI contexts carry them too so
 * that any of them can become the default one.
 */
export function secureContextOptions(
  certificate: TlsCertificate,
  clientValidation: ClientValidationPlan | null,
  tlsSettings: TlsSettingsPlan | null,
): tls.SecureContextOptions {
  const { minVersion, maxVersion, ciphers } = (tlsSettings ?? compileTlsSettings(undefined)).settings;
  return {
    cert: certificate.certPem,
    key: certificate.keyPem,
    minVersion,
    maxVersion,
    // node:tls caps the maximum at TLS 1.2 when the list has no TLS 1.3 suite: always name them.
    ciphers: [...TLS13_SUITES, ...ciphers].join(':'),
    // Mozilla: with only strong suites offered, the client picks the one it runs fastest.
    honorCipherOrder: false,
    ...(clientValidation !== null ? { ca: clientValidation.caCertificates } : {}),
  };
}

export class SecureContextCache {
  private contexts = new Map<string, tls.SecureContext>();
  /** Each certificate's DNS subjectAltNames, by its hash. */
  private names = new Map<string, readonly string[]>();

  /** Throws when the PEM material is unusable. */
  get(certificate: TlsCertificate, clientValidation: ClientValidationPlan | null, tlsSettings: TlsSettingsPlan): tls.SecureContext {
    // The verification CAs live in the context the SNICallback hands over, so they are part of the key.
    const key = cacheKey(certificate, clientValidation, tlsSettings);
    let context = this.contexts.get(key);
    if (context === undefined) {
      context = tls.createSecureContext(secureContextOptions(certificate, clientValidation, tlsSettings));
      this.contexts.set(key, context);
    }
    return context;
  }

  /** The DNS names a certificate carries (its subjectAltName DNS entries, wildcards kept), parsed once. */
  dnsNames(certificate: TlsCertificate): readonly string[] {
    let names = this.names.get(certificate.hash);
    if (names === undefined) {
      names = dnsSubjectAltNames(certificate.certPem);
      this.names.set(certificate.hash, names);
    }
    return names;
  }

  /** Forgets contexts no committed table uses (a live handshake keeps its own reference). */
  retainOnly(keys: ReadonlySet<string>): void {
    for (const key of this.contexts.keys()) if (!keys.has(key)) this.contexts.delete(key);
    const hashes = new Set<string>();
    for (const key of keys) hashes.add(key.slice(0, key.indexOf('/')));
    for (const hash of this.names.keys()) if (!hashes.has(hash)) this.names.delete(hash);
  }
}

export function cacheKey(certificate: TlsCertificate, clientValidation: ClientValidationPlan | null, tlsSettings: TlsSettingsPlan): string {
  return `${certificate.hash}/${clientValidation?.key ?? ''}/${tlsSettings.key}`;
}

/**
 * SNI → SecureContext for one listener: exact name, then the longest matching wildcard, then a
 * certificate without hostnames; the first certificate is the fallback for no SNI or no match.
 * A certificate without hostnames (its listener has none) is found by its DNS subjectAltNames.
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
    tlsSettings: TlsSettingsPlan,
    cache: SecureContextCache,
    problems: CertificateProblem[],
  ): CertificateSelector | null {
    const byHost = new HostIndex<SelectedCertificate>();
    const loaded: TlsCertificate[] = [];
    let fallbackContext: tls.SecureContext | null = null;
    for (const certificate of config?.certificates ?? []) {
      let context: tls.SecureContext;
      try {
        context = cache.get(certificate, clientValidation, tlsSettings);
      } catch (error) {
        problems.push({ certificate: certificate.secret || certificate.name, message: (error as Error).message });
        continue;
      }
      loaded.push(certificate);
      fallbackContext ??= context;
      const selected = { certificate, context };
      if (certificate.hostnames.length === 0) {
        // A listener without a hostname and several certificates (one per site, as Envoy Gateway's
        // secure-gateways task has): the SNI picks the one whose DNS names cover it, as Envoy does;
        // the first stays the one for any other name.
        for (const name of cache.dnsNames(certificate)) byHost.add(name, selected);
        byHost.add(null, selected);
      }
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
