// Mozilla's server-side TLS profiles (wiki.mozilla.org/Security/Server_Side_TLS), as far as they
// concern what a port offers. Both follow Mozilla in letting the client pick among the offered
// suites (no server cipher preference): every suite offered is strong.

import type { TlsProfileName, TlsSettings } from './types.ts';

/** TLS 1.2 suites of the intermediate profile: ECDHE key exchange and AEAD only (no CBC, no static RSA). */
const INTERMEDIATE_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** The TLS 1.2 suites a port offers when TLS 1.2 is enabled and no list is given. */
export const DEFAULT_TLS12_CIPHERS: readonly string[] = INTERMEDIATE_TLS12_CIPHERS;

export const TLS_PROFILES: Readonly<Record<TlsProfileName, TlsSettings>> = {
  /** TLS 1.3 only, for clients from 2018 on. */
  modern: { profile: 'modern', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: [] },
  /** TLS 1.2 (ECDHE + AEAD) and TLS 1.3: Mozilla's recommendation for a general-purpose server. */
  intermediate: { profile: 'intermediate', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: INTERMEDIATE_TLS12_CIPHERS },
};

export const DEFAULT_TLS_PROFILE: TlsProfileName = 'intermediate';

export function defaultTlsSettings(): TlsSettings {
  return TLS_PROFILES[DEFAULT_TLS_PROFILE];
}

/** Equal settings serve one port together; used to find listeners that ask for different ones. */
export function sameTlsSettings(a: TlsSettings, b: TlsSettings): boolean {
  return a.minVersion === b.minVersion && a.maxVersion === b.maxVersion && a.ciphers.join(':') === b.ciphers.join(':');
}

/** `intermediate (TLSv1.2-TLSv1.3)`, with the TLS 1.2 suites when they are not the profile's. */
export function describeTlsSettings(settings: TlsSettings): string {
  const versions = settings.minVersion === settings.maxVersion ? settings.minVersion : `${settings.minVersion}-${settings.maxVersion}`;
  const ownCiphers = settings.minVersion === 'TLSv1.2' && settings.ciphers.join(':') !== DEFAULT_TLS12_CIPHERS.join(':');
  return `${settings.profile} (${versions}${ownCiphers ? `, ciphers ${settings.ciphers.join(':')}` : ''})`;
}
