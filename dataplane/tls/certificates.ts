// Certificates for HTTPS listeners. SecureContexts are built once per certificate hash and
// shared by every listener and reload; the SNICallback picks one per handshake from the
// listener's current selector, so certificate changes never reopen a socket.

import { createHash } from 'node:crypto';
import tls from 'node:tls';
import { certificateFacts, planCertificates, type CertificateFacts } from '../../ir/certificate-names.ts';
import { defaultTlsSettings } from '../../ir/tls-profiles.ts';
import type { ClientValidation, ListenerTls, TlsCertificate, TlsSettings } from '../../ir/types.ts';
import { HostIndex, normalizeHost } from '../router/host.ts';
import { TLS12_SUITE_NAMES, keyServes, suiteAuth } from './suites.ts';

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
 * The createSecureContext options for a certificate (or several of different key types, which
 * OpenSSL keeps side by side and picks from by the ClientHello), the CAs client certificates must
 * chain to, and the port's versions and ciphers. Only the server's default context decides versions
 * and ciphers (OpenSSL has settled them when the SNI callback swaps contexts); SNI contexts carry
 * them too so that any of them can become the default one.
 */
export function secureContextOptions(
  certificates: TlsCertificate | readonly TlsCertificate[],
  clientValidation: ClientValidationPlan | null,
  tlsSettings: TlsSettingsPlan | null,
): tls.SecureContextOptions {
  const { minVersion, maxVersion, ciphers } = (tlsSettings ?? compileTlsSettings(undefined)).settings;
  const list = listOf(certificates);
  return {
    cert: list.map((certificate) => certificate.certPem),
    key: list.map((certificate) => certificate.keyPem),
    minVersion,
    maxVersion,
    // node:tls caps the maximum at TLS 1.2 when the list has no TLS 1.3 suite: always name them.
    ciphers: [...TLS13_SUITES, ...ciphers].join(':'),
    // Mozilla: with only strong suites offered, the client picks the one it runs fastest.
    honorCipherOrder: false,
    ...(clientValidation !== null ? { ca: clientValidation.caCertificates } : {}),
  };
}

function listOf(certificates: TlsCertificate | readonly TlsCertificate[]): readonly TlsCertificate[] {
  return 'hash' in certificates ? [certificates] : certificates;
}

export class SecureContextCache {
  private contexts = new Map<string, tls.SecureContext>();
  /** Each certificate's DNS subjectAltNames and key type, by its hash. */
  private facts = new Map<string, CertificateFacts>();

  /** Throws when the PEM material is unusable. */
  get(certificates: TlsCertificate | readonly TlsCertificate[], clientValidation: ClientValidationPlan | null, tlsSettings: TlsSettingsPlan): tls.SecureContext {
    // The verification CAs live in the context the SNICallback hands over, so they are part of the key.
    const key = cacheKey(certificates, clientValidation, tlsSettings);
    let context = this.contexts.get(key);
    if (context === undefined) {
      context = tls.createSecureContext(secureContextOptions(certificates, clientValidation, tlsSettings));
      this.contexts.set(key, context);
    }
    return context;
  }

  /** The DNS names a certificate carries (its subjectAltName DNS entries, wildcards kept) and its key type, parsed once. */
  factsOf(certificate: TlsCertificate): CertificateFacts {
    let facts = this.facts.get(certificate.hash);
    if (facts === undefined) {
      facts = certificateFacts(certificate.certPem);
      this.facts.set(certificate.hash, facts);
    }
    return facts;
  }

  /** Forgets contexts no committed table uses (a live handshake keeps its own reference). */
  retainOnly(keys: ReadonlySet<string>): void {
    for (const key of this.contexts.keys()) if (!keys.has(key)) this.contexts.delete(key);
    const hashes = new Set<string>();
    for (const key of keys) for (const hash of key.slice(0, key.indexOf('/')).split('+')) hashes.add(hash);
    for (const hash of this.facts.keys()) if (!hashes.has(hash)) this.facts.delete(hash);
  }
}

export function cacheKey(certificates: TlsCertificate | readonly TlsCertificate[], clientValidation: ClientValidationPlan | null, tlsSettings: TlsSettingsPlan): string {
  return `${listOf(certificates).map((certificate) => certificate.hash).join('+')}/${clientValidation?.key ?? ''}/${tlsSettings.key}`;
}

/** What the SNI callback can learn of the client before a certificate is chosen (its TLSSocket). */
export interface HandshakeView {
  /** OpenSSL's names of the signature algorithms both sides accept ('ECDSA+SHA256', 'RSA-PSS+SHA256', 'Ed25519+UNDEF'). */
  getSharedSigalgs(): string[];
  /** The version settled from the ClientHello. */
  getProtocol(): string | null;
  /** The cipher suites the client offers (IANA codes), when its ClientHello was read first (needsClientHello). */
  cipherSuites?: readonly number[];
}

/**
 * SNI → certificates for one listener: exact name, then the longest matching wildcard, then a
 * certificate without hostnames; the first set is the fallback for no SNI or no match. A
 * certificate without hostnames (its listener has none) is found by its DNS subjectAltNames.
 * Certificates of different key types for the same names are one set (planCertificates), served
 * together:
 * - `combined` (a TLSSocket made with the set's context, TLS Terminate): one context holds every
 *   pair and OpenSSL picks by the ClientHello.
 * - otherwise (an HTTPS server's SNICallback): Node's context switch installs only one pair of a
 *   context (its last), so each pair has its own context and select() picks one by the client's
 *   signature algorithms; the fallback set is the server's default context (every pair) and is not
 *   switched to at all.
 */
export class CertificateSelector {
  /** The fallback set: the server's default context serves these. */
  readonly fallback: readonly TlsCertificate[];
  /** Identifies the fallback set with the CAs and settings (the server's default context). */
  readonly fallbackKey: string;
  /** The certificates that loaded, in IR order. */
  readonly certificates: readonly TlsCertificate[];
  /**
   * Whether the listener must read a TLS 1.2 client's ClientHello before its handshake (its cipher
   * suites, HandshakeView.cipherSuites): a set switched to holds pairs of different key types and
   * TLS 1.2 is offered. Node shows a switched set's handshake only the signature algorithms, and
   * with those alone a client offering only ECDHE-ECDSA suites but signing with RSA too was given
   * the RSA pair and failed (no shared cipher). OpenSSL, which picks among the fallback set's pairs
   * itself, weighs suites and signature algorithms; so does Envoy among a listener's certificates.
   */
  readonly needsClientHello: boolean;
  private readonly fallbackSet: SelectedSet;
  private readonly byHost: HostIndex<SelectedSet>;
  /** The TLS 1.2 suites the port offers (OpenSSL names). */
  private readonly suites: ReadonlySet<string>;

  private constructor(certificates: TlsCertificate[], fallbackSet: SelectedSet, fallbackKey: string, byHost: HostIndex<SelectedSet>, tlsSettings: TlsSettingsPlan) {
    this.fallback = fallbackSet.certificates;
    this.fallbackKey = fallbackKey;
    this.certificates = certificates;
    this.fallbackSet = fallbackSet;
    this.byHost = byHost;
    const { minVersion, ciphers } = tlsSettings.settings;
    this.suites = new Set(minVersion === 'TLSv1.2' ? ciphers : []);
    this.needsClientHello = this.suites.size > 0 && byHost.entries().some(({ value: set }) => set !== fallbackSet && set.contexts.length > 1 && new Set(set.keyTypes).size > 1);
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
    combined = false,
  ): CertificateSelector | null {
    const given = config?.certificates ?? [];
    const facts = given.map((certificate) => cache.factsOf(certificate));
    const plan = planCertificates(given.map((certificate, i) => ({ names: certificate.hostnames.length > 0 ? certificate.hostnames : facts[i].dnsNames, keyType: facts[i].keyType })));
    const byHost = new HostIndex<SelectedSet>();
    const loaded: TlsCertificate[] = [];
    let fallback: SelectedSet | null = null;
    for (const { members, names } of plan.sets) {
      const set: SelectedSet = { certificates: [], keyTypes: [], contexts: [] };
      for (const i of members) {
        const certificate = given[i];
        try {
          // Each pair on its own first: a broken one is reported by name and the others still serve.
          set.contexts.push(cache.get(certificate, clientValidation, tlsSettings));
        } catch (error) {
          problems.push({ certificate: certificate.secret || certificate.name, message: (error as Error).message });
          continue;
        }
        set.certificates.push(certificate);
        set.keyTypes.push(facts[i].keyType);
        loaded.push(certificate);
      }
      if (set.certificates.length === 0) continue;
      if (combined && set.certificates.length > 1) set.contexts = [cache.get(set.certificates, clientValidation, tlsSettings)];
      fallback ??= set;
      // A listener without a hostname and several certificates (one per site, as Envoy Gateway's
      // secure-gateways task has): the SNI picks the set whose DNS names cover it, as Envoy does;
      // the first stays the one for any other name.
      for (const name of names) byHost.add(name, set);
      if (set.certificates[0].hostnames.length === 0) byHost.add(null, set);
    }
    if (fallback === null) return null;
    return new CertificateSelector(loaded, fallback, cacheKey(fallback.certificates, clientValidation, tlsSettings), byHost, tlsSettings);
  }

  /**
   * The context an HTTPS server's SNICallback switches to; undefined for the fallback set, which
   * the server's default context (built from `fallback`) serves with every pair.
   */
  select(servername: string, client: HandshakeView): tls.SecureContext | undefined {
    const set = this.byHost.find(normalizeHost(servername)) ?? this.fallbackSet;
    if (set === this.fallbackSet) return undefined;
    return set.contexts.length === 1 ? set.contexts[0] : set.contexts[pairFor(set, client, this.suites)];
  }

  /** The context (every pair of the set) a TLSSocket is made with; built `combined`. */
  context(servername: string | null): tls.SecureContext {
    const set = (servername ? this.byHost.find(normalizeHost(servername)) : undefined) ?? this.fallbackSet;
    return set.contexts[0];
  }

  /** SNI patterns in lookup precedence and the certificates each selects (the fallback aside). */
  sniEntries(): Array<{ pattern: string; certificates: readonly TlsCertificate[] }> {
    return this.byHost.entries().map((entry) => ({ pattern: entry.pattern, certificates: entry.value.certificates }));
  }
}

interface SelectedSet {
  /** Those that loaded, in IR order; one per key type. */
  certificates: TlsCertificate[];
  keyTypes: Array<string | null>;
  /** One per certificate, or one for all of them when built `combined`. */
  contexts: tls.SecureContext[];
}

/**
 * Which pair of a switched set the client gets. TLS 1.3: the first shared signature algorithm a
 * pair can make, in OpenSSL's order (as OpenSSL picks among pairs of one context). TLS 1.2: the
 * suites depend on the key type too (ECDHE-ECDSA vs ECDHE-RSA): the set's first pair the client can
 * use — a suite it offers that the port offers and the pair's key serves, and (but for RSA key
 * exchange) a shared signature algorithm the key makes — so a client is moved off the first pair
 * only when it cannot use it. Without the client's suites (not read: needsClientHello), the first
 * pair whenever a shared algorithm fits it.
 */
function pairFor(set: SelectedSet, client: HandshakeView, portSuites: ReadonlySet<string>): number {
  let shared: string[];
  try {
    shared = client.getSharedSigalgs();
  } catch {
    return 0; // no handshake state to read: the set's first, as a single certificate would be
  }
  const fits = (i: number) => shared.some((sigalg) => signs(sigalg, set.keyTypes[i]));
  if (client.getProtocol() !== 'TLSv1.3' && client.cipherSuites !== undefined) {
    // No signature_algorithms extension: TLS 1.2's defaults (RFC 5246 §7.4.1.4.1) fit every key type.
    const usable = (i: number) =>
      client.cipherSuites!.some((code) => {
        const name = TLS12_SUITE_NAMES.get(code);
        if (name === undefined || !portSuites.has(name)) return false;
        const auth = suiteAuth(name);
        return keyServes(auth, set.keyTypes[i]) && (auth === 'rsa-kx' || shared.length === 0 || fits(i));
      });
    const i = set.keyTypes.findIndex((_, j) => usable(j));
    if (i >= 0) return i;
  }
  if (client.getProtocol() !== 'TLSv1.3' && fits(0)) return 0;
  for (const sigalg of shared) {
    const i = set.keyTypes.findIndex((keyType) => signs(sigalg, keyType));
    if (i >= 0) return i;
  }
  return 0;
}

/** Can a key of `keyType` make the signature OpenSSL names `sigalg` (scheme+hash)? */
function signs(sigalg: string, keyType: string | null): boolean {
  switch (sigalg.slice(0, sigalg.indexOf('+'))) {
    case 'ECDSA':
      return keyType === 'ec';
    case 'RSA':
      return keyType === 'rsa';
    case 'RSA-PSS': // rsa_pss_rsae_* (an RSA key) and rsa_pss_pss_* (an RSA-PSS key) share the name
      return keyType === 'rsa' || keyType === 'rsa-pss';
    case 'Ed25519':
      return keyType === 'ed25519';
    case 'Ed448':
      return keyType === 'ed448';
    default:
      return false;
  }
}
