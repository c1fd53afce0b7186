// Gateway listener `tls.options`: implementation-specific key/values. Sluice reads its own
// `sluice.dev/` keys; an unknown key or a bad value of ours makes the listener invalid (never a
// silent default), keys of other implementations are ignored and reported.
import tls from 'node:tls';
import { DEFAULT_TLS12_CIPHERS, TLS_PROFILES, DEFAULT_TLS_PROFILE } from '../../ir/tls-profiles.ts';
import type { TlsProfileName, TlsSettings, TlsVersion } from '../../ir/types.ts';

const PREFIX = 'sluice.dev/';
export const TLS_OPTION_KEYS = {
  profile: `${PREFIX}tls-profile`,
  minVersion: `${PREFIX}tls-min-version`,
  maxVersion: `${PREFIX}tls-max-version`,
  ciphers: `${PREFIX}tls-ciphers`,
  hsts: `${PREFIX}hsts`,
} as const;

export interface ListenerTlsOptions {
  settings: TlsSettings;
  /** A normalised Strict-Transport-Security value; absent: no HSTS. */
  hsts?: string;
  /** Keys of other implementations, ignored. */
  ignored: string[];
}

/** Throws a message naming the key when an option of ours is unknown or invalid. */
export function parseTlsOptions(options: unknown): ListenerTlsOptions {
  if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
    throw new Error('tls.options must be a map of strings');
  }
  const entries = Object.entries((options ?? {}) as Record<string, unknown>);
  const ignored: string[] = [];
  const values = new Map<string, string>();
  for (const [key, value] of entries) {
    if (!key.startsWith(PREFIX)) {
      // Un-prefixed keys are reserved for Gateway API, which defines none yet: refuse rather than guess.
      if (!key.includes('/')) throw new Error(`tls.options key ${JSON.stringify(key)}: Gateway API defines no un-prefixed option Sluice knows`);
      ignored.push(key);
      continue;
    }
    if (!(Object.values(TLS_OPTION_KEYS) as string[]).includes(key)) {
      throw new Error(`tls.options key ${JSON.stringify(key)} is unknown (Sluice reads ${Object.values(TLS_OPTION_KEYS).join(', ')})`);
    }
    if (typeof value !== 'string') throw new Error(`tls.options ${JSON.stringify(key)} must be a string`);
    values.set(key, value.trim());
  }

  const problem = (key: string, value: string, why: string): Error => new Error(`tls.options ${JSON.stringify(key)}: ${JSON.stringify(value)} ${why}`);
  const profileValue = values.get(TLS_OPTION_KEYS.profile);
  if (profileValue !== undefined && !Object.hasOwn(TLS_PROFILES, profileValue)) {
    throw problem(TLS_OPTION_KEYS.profile, profileValue, `is not a profile (${Object.keys(TLS_PROFILES).join(' or ')})`);
  }
  const profile = TLS_PROFILES[(profileValue as TlsProfileName | undefined) ?? DEFAULT_TLS_PROFILE];
  const version = (key: string, fallback: TlsVersion): TlsVersion => {
    const value = values.get(key);
    if (value === undefined) return fallback;
    const parsed = parseVersion(value);
    if (parsed === null) throw problem(key, value, 'is not a TLS version Sluice offers (1.2 or 1.3; 1.0 and 1.1 are deprecated by RFC 8996)');
    return parsed;
  };
  const minVersion = version(TLS_OPTION_KEYS.minVersion, profile.minVersion);
  const maxVersion = version(TLS_OPTION_KEYS.maxVersion, profile.maxVersion);
  if (minVersion > maxVersion) {
    throw new Error(`tls.options: minimum version ${minVersion} is above maximum version ${maxVersion}`);
  }
  const cipherValue = values.get(TLS_OPTION_KEYS.ciphers);
  let ciphers: string[] = minVersion === 'TLSv1.3' ? [] : [...DEFAULT_TLS12_CIPHERS];
  if (cipherValue !== undefined) {
    if (minVersion === 'TLSv1.3') throw problem(TLS_OPTION_KEYS.ciphers, cipherValue, 'has no effect: TLS 1.2 is not offered (TLS 1.3 suites are not configurable)');
    ciphers = parseCiphers(cipherValue, (why) => problem(TLS_OPTION_KEYS.ciphers, cipherValue, why));
  }
  const hstsValue = values.get(TLS_OPTION_KEYS.hsts);
  const hsts = hstsValue === undefined ? undefined : parseHsts(hstsValue, (why) => problem(TLS_OPTION_KEYS.hsts, hstsValue, why));
  return { settings: { profile: profile.profile, minVersion, maxVersion, ciphers }, ...(hsts !== undefined ? { hsts } : {}), ignored };
}

function parseVersion(value: string): TlsVersion | null {
  if (value === '1.2' || value === 'TLSv1.2') return 'TLSv1.2';
  if (value === '1.3' || value === 'TLSv1.3') return 'TLSv1.3';
  return null;
}

/**
 * A colon-separated list of OpenSSL TLS 1.2 suite names. Keywords and operators (HIGH, !aNULL,
 * +, @STRENGTH) are refused: OpenSSL silently drops what it does not match, and the list must say
 * exactly what is offered. node:tls then builds a context with it, as the dataplane will.
 */
function parseCiphers(value: string, problem: (why: string) => Error): string[] {
  const known = new Set(tls.getCiphers());
  const names = value.split(':').map((name) => name.trim());
  if (names.some((name) => name === '')) throw problem('has an empty entry');
  for (const name of names) {
    if (name.toLowerCase().startsWith('tls_')) throw problem(`names the TLS 1.3 suite ${name}; only TLS 1.2 suites are configurable`);
    if (!known.has(name.toLowerCase())) throw problem(`names ${name}, which is not an OpenSSL cipher suite name`);
  }
  const ciphers = names.map((name) => name.toUpperCase());
  try {
    tls.createSecureContext({ ciphers: ciphers.join(':'), minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
  } catch (error) {
    throw problem(`is refused by OpenSSL (${(error as Error).message})`);
  }
  return ciphers;
}

/**
 * RFC 6797 §6.1: `max-age=<seconds>` (required), `includeSubDomains`, and the `preload` token most
 * browsers honour, each at most once. Returned in one canonical spelling.
 */
function parseHsts(value: string, problem: (why: string) => Error): string {
  let maxAge: string | null = null;
  let includeSubDomains = false;
  let preload = false;
  const seen = new Set<string>();
  for (const raw of value.split(';')) {
    const directive = raw.trim();
    if (directive === '') continue;
    const match = /^([A-Za-z-]+)\s*(?:=\s*(\S*))?$/.exec(directive);
    const name = match?.[1]?.toLowerCase();
    if (match === null || name === undefined) throw problem(`has a malformed directive ${JSON.stringify(directive)}`);
    if (seen.has(name)) throw problem(`repeats ${name}`);
    seen.add(name);
    const directiveValue = match[2];
    if (name === 'max-age') {
      const seconds = /^("?)(\d{1,10})\1$/.exec(directiveValue ?? '');
      if (seconds === null) throw problem(`needs max-age=<seconds>, not ${JSON.stringify(directive)}`);
      maxAge = seconds[2]!;
    } else if (name === 'includesubdomains' && directiveValue === undefined) includeSubDomains = true;
    else if (name === 'preload' && directiveValue === undefined) preload = true;
    else throw problem(`has an unsupported directive ${JSON.stringify(directive)} (max-age=<seconds>, includeSubDomains, preload)`);
  }
  if (maxAge === null) throw problem('needs max-age=<seconds>');
  return [`max-age=${Number(maxAge)}`, ...(includeSubDomains ? ['includeSubDomains'] : []), ...(preload ? ['preload'] : [])].join('; ');
}
