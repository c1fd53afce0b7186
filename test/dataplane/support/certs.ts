// Self-signed certificates for TLS tests, made in-process with @peculiar/x509 and webcrypto.

import { createHash, webcrypto } from 'node:crypto';
import type { TlsCertificate } from '../../../controller/ir/types.ts';
import './reflect-metadata.ts';

// Loaded after the polyfill has run: a static import could be evaluated first (jest links
// CommonJS dependencies before running sibling modules).
const x509 = await import('@peculiar/x509');
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestCertificate {
  certPem: string;
  keyPem: string;
  commonName: string;
}

/** A self-signed certificate for `commonName` with the given DNS names as SANs. */
export async function selfSignedCertificate(commonName: string, dnsNames: string[] = [commonName]): Promise<TestCertificate> {
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: createHash('sha1').update(commonName + Math.random()).digest('hex').slice(0, 16),
    name: `CN=${commonName}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value })))],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const keyPem = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
  return { certPem: certificate.toString('pem'), keyPem, commonName };
}

/** The IR form: hash as the controller computes it (sha256 of cert + key). */
export function irCertificate(name: string, hostnames: string[], certificate: TestCertificate): TlsCertificate {
  const hash = createHash('sha256').update(certificate.certPem).update(certificate.keyPem).digest('hex');
  return { name, hostnames, certPem: certificate.certPem, keyPem: certificate.keyPem, hash };
}
