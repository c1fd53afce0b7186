// The TLS 1.2 cipher suites a certificate authenticates, by IANA code: which key a suite needs is
// what decides, for a TLS 1.2 client, which certificate of a set it can use (an ECDHE-ECDSA suite
// an EC — or EdDSA, RFC 8422 — key; ECDHE-RSA and DHE-RSA an RSA or RSA-PSS key; RSA key exchange an
// RSA key). Made from `openssl ciphers -V 'ALL:@SECLEVEL=0'` (OpenSSL 3.0): every suite with RSA or
// ECDSA authentication and ECDHE, DHE or RSA key exchange, under OpenSSL's names (what a listener's
// tls-ciphers option lists). TLS 1.3 suites do not depend on the key: signature algorithms decide there.

/** How a suite's server is authenticated. */
export type SuiteAuth = 'ecdsa' | 'rsa-sign' | 'rsa-kx';

const SUITES: ReadonlyArray<readonly [number, string]> = [
  [0x002F, 'AES128-SHA'],
  [0x0033, 'DHE-RSA-AES128-SHA'],
  [0x0035, 'AES256-SHA'],
  [0x0039, 'DHE-RSA-AES256-SHA'],
  [0x003C, 'AES128-SHA256'],
  [0x003D, 'AES256-SHA256'],
  [0x0041, 'CAMELLIA128-SHA'],
  [0x0045, 'DHE-RSA-CAMELLIA128-SHA'],
  [0x0067, 'DHE-RSA-AES128-SHA256'],
  [0x006B, 'DHE-RSA-AES256-SHA256'],
  [0x0084, 'CAMELLIA256-SHA'],
  [0x0088, 'DHE-RSA-CAMELLIA256-SHA'],
  [0x009C, 'AES128-GCM-SHA256'],
  [0x009D, 'AES256-GCM-SHA384'],
  [0x009E, 'DHE-RSA-AES128-GCM-SHA256'],
  [0x009F, 'DHE-RSA-AES256-GCM-SHA384'],
  [0x00BA, 'CAMELLIA128-SHA256'],
  [0x00BE, 'DHE-RSA-CAMELLIA128-SHA256'],
  [0x00C0, 'CAMELLIA256-SHA256'],
  [0x00C4, 'DHE-RSA-CAMELLIA256-SHA256'],
  [0xC009, 'ECDHE-ECDSA-AES128-SHA'],
  [0xC00A, 'ECDHE-ECDSA-AES256-SHA'],
  [0xC013, 'ECDHE-RSA-AES128-SHA'],
  [0xC014, 'ECDHE-RSA-AES256-SHA'],
  [0xC023, 'ECDHE-ECDSA-AES128-SHA256'],
  [0xC024, 'ECDHE-ECDSA-AES256-SHA384'],
  [0xC027, 'ECDHE-RSA-AES128-SHA256'],
  [0xC028, 'ECDHE-RSA-AES256-SHA384'],
  [0xC02B, 'ECDHE-ECDSA-AES128-GCM-SHA256'],
  [0xC02C, 'ECDHE-ECDSA-AES256-GCM-SHA384'],
  [0xC02F, 'ECDHE-RSA-AES128-GCM-SHA256'],
  [0xC030, 'ECDHE-RSA-AES256-GCM-SHA384'],
  [0xC050, 'ARIA128-GCM-SHA256'],
  [0xC051, 'ARIA256-GCM-SHA384'],
  [0xC052, 'DHE-RSA-ARIA128-GCM-SHA256'],
  [0xC053, 'DHE-RSA-ARIA256-GCM-SHA384'],
  [0xC05C, 'ECDHE-ECDSA-ARIA128-GCM-SHA256'],
  [0xC05D, 'ECDHE-ECDSA-ARIA256-GCM-SHA384'],
  [0xC060, 'ECDHE-ARIA128-GCM-SHA256'],
  [0xC061, 'ECDHE-ARIA256-GCM-SHA384'],
  [0xC072, 'ECDHE-ECDSA-CAMELLIA128-SHA256'],
  [0xC073, 'ECDHE-ECDSA-CAMELLIA256-SHA384'],
  [0xC076, 'ECDHE-RSA-CAMELLIA128-SHA256'],
  [0xC077, 'ECDHE-RSA-CAMELLIA256-SHA384'],
  [0xC09C, 'AES128-CCM'],
  [0xC09D, 'AES256-CCM'],
  [0xC09E, 'DHE-RSA-AES128-CCM'],
  [0xC09F, 'DHE-RSA-AES256-CCM'],
  [0xC0A0, 'AES128-CCM8'],
  [0xC0A1, 'AES256-CCM8'],
  [0xC0A2, 'DHE-RSA-AES128-CCM8'],
  [0xC0A3, 'DHE-RSA-AES256-CCM8'],
  [0xC0AC, 'ECDHE-ECDSA-AES128-CCM'],
  [0xC0AD, 'ECDHE-ECDSA-AES256-CCM'],
  [0xC0AE, 'ECDHE-ECDSA-AES128-CCM8'],
  [0xC0AF, 'ECDHE-ECDSA-AES256-CCM8'],
  [0xCCA8, 'ECDHE-RSA-CHACHA20-POLY1305'],
  [0xCCA9, 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  [0xCCAA, 'DHE-RSA-CHACHA20-POLY1305'],
];

/** Suite code → OpenSSL name. */
export const TLS12_SUITE_NAMES: ReadonlyMap<number, string> = new Map(SUITES);

/** How a suite (by OpenSSL name) authenticates its server. */
export function suiteAuth(name: string): SuiteAuth {
  if (name.startsWith('ECDHE-ECDSA-')) return 'ecdsa';
  if (name.startsWith('ECDHE-') || name.startsWith('DHE-')) return 'rsa-sign';
  return 'rsa-kx';
}

/** Whether a key of `keyType` (ir/certificate-names.ts: rsa, rsa-pss, ec, ed25519, ed448) can serve a suite authenticated so. */
export function keyServes(auth: SuiteAuth, keyType: string | null): boolean {
  switch (auth) {
    case 'ecdsa':
      return keyType === 'ec' || keyType === 'ed25519' || keyType === 'ed448';
    case 'rsa-sign':
      return keyType === 'rsa' || keyType === 'rsa-pss';
    case 'rsa-kx':
      return keyType === 'rsa';
  }
}
