// TLS from the gateway to a backend (BackendTLSPolicy, plus the Gateway's client certificate):
// the node:tls options for one backend, shared by the HTTP pools (undici) and by any other code
// that opens a TLS connection to a backend endpoint (TLSRoute Terminate re-origination).
//
// What the spec asks and how: SNI is `validation.hostname`; the chain must end in one of the
// policy's CA certificates (or the system roots for `wellKnownCACertificates: System`); the
// certificate must carry the hostname, or, when `subjectAltNames` is set, one of those SANs
// instead (Hostname SANs with the usual wildcard rules, URI SANs exactly). TLS 1.2 at least.
import tls, { type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { buildConnector } from 'undici';
import type { BackendClientCertificate, BackendSubjectAltName, BackendTls } from '../../ir/types.ts';

/** The node:tls options for connecting to an endpoint of a TLS backend (host and port are the caller's). */
export function backendTlsOptions(settings: BackendTls, client: BackendClientCertificate | undefined, alpn: readonly string[]): ConnectionOptions {
  return {
    servername: settings.serverName,
    // Absent: Node's bundled Mozilla roots (wellKnownCACertificates: System).
    ...(settings.caCertificates !== undefined ? { ca: settings.caCertificates.map((c) => c.pem) } : {}),
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    ALPNProtocols: [...alpn],
    checkServerIdentity: (_servername, cert) => checkBackendIdentity(settings, cert),
    ...(client !== undefined ? { cert: client.certPem, key: client.keyPem } : {}),
  };
}

/** Called once the chain verified: the hostname, or any of the policy's SANs. */
export function checkBackendIdentity(settings: Pick<BackendTls, 'serverName' | 'subjectAltNames'>, cert: PeerCertificate): Error | undefined {
  if (settings.subjectAltNames.length === 0) return tls.checkServerIdentity(settings.serverName, cert);
  if (settings.subjectAltNames.some((san) => sanMatches(san, cert))) return undefined;
  const wanted = settings.subjectAltNames.map((s) => `${s.type === 'URI' ? 'URI' : 'DNS'}:${s.value}`).join(', ');
  const error = new Error(`backend certificate carries none of the required subjectAltNames (${wanted}); it has: ${cert.subjectaltname ?? 'none'}`);
  return Object.assign(error, { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
}

function sanMatches(san: BackendSubjectAltName, cert: PeerCertificate): boolean {
  if (san.type === 'Hostname') {
    // node's own check (wildcards in the left-most label), but only against the DNS SANs.
    return cert.subjectaltname !== undefined && tls.checkServerIdentity(san.value, { ...cert, subject: { ...cert.subject, CN: '' } }) === undefined;
  }
  return certificateUris(cert).includes(san.value);
}

/** URI SANs of a peer certificate; node quotes values that hold separators (`URI:"a, b"`). */
function certificateUris(cert: PeerCertificate): string[] {
  const out: string[] = [];
  for (const match of (cert.subjectaltname ?? '').matchAll(/URI:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = match[1]!;
    try {
      out.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
    } catch {
      // A value node could not have written: no match.
    }
  }
  return out;
}

/**
 * An undici connector for a TLS backend. undici otherwise sends the request's Host as SNI (and
 * reconnects when it changes); the policy's hostname is the SNI for every request instead.
 */
export function backendConnector(settings: BackendTls, client: BackendClientCertificate | undefined, http2: boolean, connectTimeoutMs: number): buildConnector.connector {
  // ALPN: undici offers http/1.1 (and h2 with allowH2); the options' ALPN list is overridden there.
  const connect = buildConnector({ ...backendTlsOptions(settings, client, []), allowH2: http2, timeout: connectTimeoutMs });
  return (options, callback) => connect({ ...options, servername: settings.serverName }, callback);
}
