// The DNS names and key type of a PEM certificate, and how a listener's certificates are served
// from them: what SNI selection matches on a listener without a hostname, and which certificates
// share one name set with different key types (an RSA and an ECDSA one: both served, the client's
// signature algorithms choose, as Envoy does). The dataplane selects by this plan; the controller
// reports a certificate it leaves unserved.
import { X509Certificate } from 'node:crypto';

export interface CertificateFacts {
  /** `DNS:` entries of the subjectAltName (the leaf, the first of a chain), lower-cased, wildcards kept. */
  dnsNames: string[];
  /**
   * node:crypto's asymmetricKeyType of the public key ('rsa', 'ec', 'rsa-pss', 'ed25519', ...):
   * OpenSSL keeps one certificate per key type in a context. Null when the PEM does not parse.
   */
  keyType: string | null;
}

/** None of either when the PEM does not parse (such a certificate is refused where it is loaded). */
export function certificateFacts(certPem: string): CertificateFacts {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(certPem);
  } catch {
    return { dnsNames: [], keyType: null };
  }
  const san = certificate.subjectAltName ?? '';
  return {
    dnsNames: san.split(', ').filter((entry) => entry.startsWith('DNS:')).map((entry) => entry.slice(4).toLowerCase()),
    keyType: certificate.publicKey.asymmetricKeyType ?? null,
  };
}

/** A certificate as selection sees it: the names it is selected for (the listener's hostname, else its DNS names). */
export interface SelectableCertificate {
  names: readonly string[];
  keyType: string | null;
}

/** Certificates served together for `names`: indexes in listener order, one per key type. */
export interface CertificateSet {
  members: number[];
  names: readonly string[];
}

/** A certificate no SNI selects: every name it has is taken (`by`: the first certificate of each taking set). */
export interface UnservedCertificate {
  index: number;
  by: number[];
  names: readonly string[];
}

/**
 * A listener's certificates in sets, in order: a certificate joins an earlier served set with the
 * same names and no certificate of its key type yet; otherwise it starts a set. The first set is
 * the fallback for other names and clients without SNI. A set whose names are all taken by earlier
 * sets is never selected: its certificate is listed as unserved (and joins nothing).
 */
export function planCertificates(certificates: readonly SelectableCertificate[]): { sets: CertificateSet[]; unserved: UnservedCertificate[] } {
  const sets: Array<CertificateSet & { key: string; keyTypes: Set<string>; served: boolean }> = [];
  const unserved: UnservedCertificate[] = [];
  const claimed = new Map<string, number>();
  certificates.forEach(({ names: given, keyType }, index) => {
    const names = [...new Set(given)];
    const key = [...names].sort().join(' ');
    const joined = keyType === null ? undefined : sets.find((set) => set.served && set.key === key && !set.keyTypes.has(keyType));
    if (joined !== undefined && keyType !== null) {
      joined.members.push(index);
      joined.keyTypes.add(keyType);
      return;
    }
    const served = sets.length === 0 || !names.every((name) => claimed.has(name));
    if (!served) {
      const by = names.length === 0 ? [sets[0].members[0]] : [...new Set(names.map((name) => sets[claimed.get(name)!].members[0]))];
      unserved.push({ index, by, names });
    }
    sets.push({ members: [index], names, key, keyTypes: new Set(keyType === null ? [] : [keyType]), served });
    for (const name of names) if (!claimed.has(name)) claimed.set(name, sets.length - 1);
  });
  return { sets: sets.map(({ members, names }) => ({ members, names })), unserved };
}
