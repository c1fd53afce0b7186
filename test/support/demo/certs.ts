// Certificate generation for the demo backends, the quickstart's first-start
// self-signed certificate and the conformance runner's generated Secrets.
//
// Everything uses @peculiar/x509 on top of Node's WebCrypto. Keys are RSA
// (2048 bit by default) and exported as PKCS#8 PEM ("BEGIN PRIVATE KEY"),
// which node:tls accepts directly.

import { webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import './reflect-metadata.ts';
import type * as X509 from '@peculiar/x509';

// Loaded dynamically so that the Reflect polyfill above is installed first even
// where CommonJS dependencies are evaluated before ESM bodies (jest's ESM mode).
const x509: typeof X509 = await import('@peculiar/x509');

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const RSA_ALGORITHM = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};

const DAY_MS = 24 * 60 * 60 * 1000;

/** A certificate with its private key, both PEM encoded. */
export interface CertificateBundle {
  /** PEM of the certificate ("BEGIN CERTIFICATE"). */
  certPem: string;
  /** PEM of the PKCS#8 private key ("BEGIN PRIVATE KEY"). */
  keyPem: string;
}

/** A CA that can sign further certificates. */
export interface CertificateAuthority extends CertificateBundle {
  /** Keys and parsed certificate, needed to sign leaf certificates. */
  readonly signer: CaSigner;
}

interface CaSigner {
  keys: CryptoKeyPair;
  cert: X509.X509Certificate;
}

export interface NameOptions {
  /** Subject common name. */
  commonName?: string;
  /** Subject organisation (O=). */
  organization?: string;
}

export interface SubjectAltNames {
  /** DNS names, wildcards like `*.example.org` allowed. */
  dnsNames?: string[];
  /** URI SANs, stored verbatim (upstream conformance uses the URI `*`). */
  uris?: string[];
  /** IPv4 / IPv6 literals. */
  ipAddresses?: string[];
}

export interface ServerCertificateOptions extends NameOptions, SubjectAltNames {
  /** Validity in days from now (default 365). */
  validityDays?: number;
  /** RSA modulus length (default 2048). */
  modulusLength?: number;
}

export interface CaOptions extends NameOptions {
  validityDays?: number;
  modulusLength?: number;
}

export interface ClientCertificateOptions extends NameOptions, SubjectAltNames {
  validityDays?: number;
  modulusLength?: number;
}

function subjectName(opts: NameOptions, defaultCn: string): string {
  const parts: string[] = [];
  parts.push(`CN=${escapeRdn(opts.commonName ?? defaultCn)}`);
  if (opts.organization) parts.push(`O=${escapeRdn(opts.organization)}`);
  return parts.join(', ');
}

function escapeRdn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

function validity(days: number | undefined): { notBefore: Date; notAfter: Date } {
  // Backdate a little so that small clock differences do not matter.
  const notBefore = new Date(Date.now() - 5 * 60 * 1000);
  const notAfter = new Date(notBefore.getTime() + (days ?? 365) * DAY_MS);
  return { notBefore, notAfter };
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // positive
  if (bytes[0] === 0) bytes[0] = 1;
  return Buffer.from(bytes).toString('hex');
}

async function generateKeys(modulusLength: number | undefined): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(
    { ...RSA_ALGORITHM, modulusLength: modulusLength ?? 2048 },
    true,
    ['sign', 'verify'],
  )) as CryptoKeyPair;
}

async function privateKeyPem(keys: CryptoKeyPair): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return toPem(Buffer.from(der), 'PRIVATE KEY');
}

function toPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function sanExtension(sans: SubjectAltNames): X509.Extension | undefined {
  const names: { type: 'dns' | 'url' | 'ip'; value: string }[] = [];
  for (const dns of sans.dnsNames ?? []) names.push({ type: 'dns', value: dns });
  for (const ip of sans.ipAddresses ?? []) {
    if (isIP(ip) === 0) throw new Error(`not an IP address: ${ip}`);
    names.push({ type: 'ip', value: ip });
  }
  for (const uri of sans.uris ?? []) names.push({ type: 'url', value: uri });
  if (names.length === 0) return undefined;
  return new x509.SubjectAlternativeNameExtension(names, false);
}

/**
 * Self-signed server certificate (not a CA): keyUsage digitalSignature +
 * keyEncipherment, extKeyUsage serverAuth, with the given SANs. This is the
 * shape upstream Gateway API conformance generates for its TLS Secrets.
 */
export async function createSelfSignedServerCertificate(opts: ServerCertificateOptions = {}): Promise<CertificateBundle> {
  const keys = await generateKeys(opts.modulusLength);
  const name = subjectName({ organization: 'Acme Co', ...opts }, opts.dnsNames?.[0] ?? 'default');
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const san = sanExtension(opts);
  if (san) extensions.push(san);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    ...validity(opts.validityDays),
    keys,
    signingAlgorithm: RSA_ALGORITHM,
    extensions,
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await privateKeyPem(keys) };
}

/**
 * Self-signed CA: IsCA true, keyUsage digitalSignature + keyCertSign,
 * extKeyUsage clientAuth + serverAuth (the `caCertificateShape` of the
 * conformance suite).
 */
export async function createCertificateAuthority(opts: CaOptions = {}): Promise<CertificateAuthority> {
  const keys = await generateKeys(opts.modulusLength);
  const name = subjectName({ organization: 'Acme Co', ...opts }, 'Sluice Test CA');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    ...validity(opts.validityDays),
    keys,
    signingAlgorithm: RSA_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth], false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem: await privateKeyPem(keys),
    signer: { keys, cert },
  };
}

async function createSignedLeaf(
  ca: CertificateAuthority,
  opts: ClientCertificateOptions & { usage: 'client' | 'server' },
  defaultCn: string,
): Promise<CertificateBundle> {
  const keys = await generateKeys(opts.modulusLength);
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(
      [opts.usage === 'client' ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.signer.keys.publicKey),
  ];
  const san = sanExtension(opts);
  if (san) extensions.push(san);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: subjectName({ organization: 'Acme Co', ...opts }, defaultCn),
    issuer: ca.signer.cert.subject,
    ...validity(opts.validityDays),
    publicKey: keys.publicKey,
    signingKey: ca.signer.keys.privateKey,
    signingAlgorithm: RSA_ALGORITHM,
    extensions,
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await privateKeyPem(keys) };
}

/** Client certificate (extKeyUsage clientAuth, SANs only if given) signed by `ca`. */
export async function createClientCertificate(
  ca: CertificateAuthority,
  opts: ClientCertificateOptions = {},
): Promise<CertificateBundle> {
  return createSignedLeaf(ca, { ...opts, usage: 'client' }, 'client');
}

/** Server certificate (extKeyUsage serverAuth) with the given SANs, signed by `ca`. */
export async function createServerCertificate(
  ca: CertificateAuthority,
  opts: ServerCertificateOptions = {},
): Promise<CertificateBundle> {
  return createSignedLeaf(ca, { ...opts, usage: 'server' }, opts.dnsNames?.[0] ?? 'server');
}

/** Parses a PEM certificate with node:crypto (for callers that want to inspect it). */
export function parseCertificate(pem: string): NodeX509Certificate {
  return new NodeX509Certificate(pem);
}

/** `kubernetes.io/tls` Secret `data` (base64) for a bundle. */
export function tlsSecretData(bundle: CertificateBundle): Record<string, string> {
  return {
    'tls.crt': Buffer.from(bundle.certPem).toString('base64'),
    'tls.key': Buffer.from(bundle.keyPem).toString('base64'),
  };
}
