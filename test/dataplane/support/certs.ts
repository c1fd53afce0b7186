// Self-signed certificates for TLS tests, made in-process with @peculiar/x509 and webcrypto.

import { createHash, webcrypto } from 'node:crypto';
import type { TlsCertificate } from '../../../ir/types.ts';
// @peculiar/x509 2.x loads tsyringe, which refuses to start without the reflect-metadata polyfill.
import 'reflect-metadata';

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

/** A certificate authority that can sign client certificates (for frontend mTLS tests). */
export interface TestAuthority {
  certPem: string;
  /** A client certificate (CN = `commonName`) signed by this authority. */
  issueClientCertificate(commonName: string): Promise<TestCertificate>;
}

export async function certificateAuthority(commonName: string): Promise<TestAuthority> {
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const authority = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${commonName}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  return {
    certPem: authority.toString('pem'),
    async issueClientCertificate(client: string): Promise<TestCertificate> {
      const clientKeys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
      const certificate = await x509.X509CertificateGenerator.create({
        serialNumber: createHash('sha1').update(client + Math.random()).digest('hex').slice(0, 16),
        subject: `CN=${client}`,
        issuer: authority.subject,
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 24 * 3600_000),
        signingAlgorithm: algorithm,
        publicKey: clientKeys.publicKey,
        signingKey: keys.privateKey,
        extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
      });
      const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', clientKeys.privateKey);
      return { certPem: certificate.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), commonName: client };
    },
  };
}

/** The IR form: hash as the controller computes it (sha256 of cert + key). */
export function irCertificate(secret: string, hostnames: string[], certificate: TestCertificate): TlsCertificate {
  const hash = createHash('sha256').update(certificate.certPem).update(certificate.keyPem).digest('hex');
  return { name: `${secret}/certificate`, secret, hostnames, certPem: certificate.certPem, keyPem: certificate.keyPem, hash };
}
