// The DNS names a PEM certificate carries: what SNI selection matches on a listener without a
// hostname. The dataplane picks certificates by them; the controller reports one that none of its
// names would ever select.
import { X509Certificate } from 'node:crypto';

/**
 * `DNS:` entries of a PEM certificate's subjectAltName (the leaf, the first of a chain), lower-cased,
 * wildcards kept. None when it does not parse (such a certificate is refused where it is loaded).
 */
export function dnsSubjectAltNames(certPem: string): string[] {
  let san: string;
  try {
    san = new X509Certificate(certPem).subjectAltName ?? '';
  } catch {
    return [];
  }
  return san.split(', ').filter((entry) => entry.startsWith('DNS:')).map((entry) => entry.slice(4).toLowerCase());
}
