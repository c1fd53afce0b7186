// The CORS filter (Gateway API HTTPCORSFilter): the gateway answers preflights itself and adds
// the allow-origin family of headers to responses for allowed origins. An origin that is not
// allowed gets no CORS headers at all, which is what makes the browser refuse.

import type { CorsPolicy } from '../../ir/types.ts';
import { removeHeader } from './header-modifier.ts';

/** Spec default for `maxAge` (seconds). */
const DEFAULT_MAX_AGE = 5;

interface OriginPattern {
  scheme: string;
  /** Lower-case host, or the suffix after `*` (`.bar.com`) when `wildcard`. */
  host: string;
  wildcard: boolean;
  /** '' when absent. */
  port: string;
}

export interface CorsPlan {
  anyOrigin: boolean;
  origins: OriginPattern[];
  allowCredentials: boolean;
  /** `null`: `*`, echo what the preflight asks for. */
  allowMethods: string | null;
  allowHeaders: string | null;
  exposeHeaders: string;
  maxAge: string;
}

export function compileCors(policy: CorsPolicy): CorsPlan {
  const origins: OriginPattern[] = [];
  for (const origin of policy.allowOrigins) {
    if (origin === '*') continue;
    const parsed = parseOrigin(origin);
    if (parsed === null) continue;
    const wildcard = parsed.host.startsWith('*.');
    origins.push({ ...parsed, host: wildcard ? parsed.host.slice(1) : parsed.host, wildcard });
  }
  return {
    anyOrigin: policy.allowOrigins.includes('*'),
    origins,
    allowCredentials: policy.allowCredentials,
    allowMethods: policy.allowMethods.includes('*') ? null : policy.allowMethods.join(', '),
    allowHeaders: policy.allowHeaders.includes('*') ? null : policy.allowHeaders.join(', '),
    exposeHeaders: policy.exposeHeaders.join(', '),
    maxAge: String(policy.maxAge ?? DEFAULT_MAX_AGE),
  };
}

/** `https://Www.Foo.com:8443` → scheme, lower-case host, port; null when not an origin. */
function parseOrigin(origin: string): { scheme: string; host: string; port: string } | null {
  const schemeEnd = origin.indexOf('://');
  if (schemeEnd <= 0) return null;
  const authority = origin.slice(schemeEnd + 3).toLowerCase();
  if (authority === '' || authority.includes('/')) return null;
  const colon = authority.lastIndexOf(':');
  const hasPort = colon > 0 && !authority.endsWith(']') && /^[0-9]+$/.test(authority.slice(colon + 1));
  return {
    scheme: origin.slice(0, schemeEnd).toLowerCase(),
    host: hasPort ? authority.slice(0, colon) : authority,
    port: hasPort ? authority.slice(colon + 1) : '',
  };
}

export function originAllowed(plan: CorsPlan, origin: string): boolean {
  if (plan.anyOrigin) return true;
  const parsed = parseOrigin(origin);
  if (parsed === null) return false;
  for (const pattern of plan.origins) {
    if (pattern.scheme !== parsed.scheme || pattern.port !== parsed.port) continue;
    // A wildcard spans one or more labels (`https://*.bar.com` allows `https://a.b.bar.com`).
    if (pattern.wildcard ? parsed.host.endsWith(pattern.host) : parsed.host === pattern.host) return true;
  }
  return false;
}

/**
 * Headers for the answer to a preflight from an allowed origin. The origin is echoed rather
 * than `*` so one answer is right with and without credentials (hence `vary: origin`).
 */
export function preflightHeaders(plan: CorsPlan, origin: string, requestedMethod: string, requestedHeaders: string | undefined): string[] {
  const headers = ['access-control-allow-origin', origin, 'vary', 'origin'];
  headers.push('access-control-allow-methods', plan.allowMethods ?? requestedMethod);
  const allowHeaders = plan.allowHeaders ?? requestedHeaders ?? '';
  if (allowHeaders !== '') headers.push('access-control-allow-headers', allowHeaders);
  if (plan.exposeHeaders !== '') headers.push('access-control-expose-headers', plan.exposeHeaders);
  headers.push('access-control-max-age', plan.maxAge);
  if (plan.allowCredentials) headers.push('access-control-allow-credentials', 'true');
  return headers;
}

/** Headers added to an ordinary response for an allowed origin. */
export function responseCorsHeaders(plan: CorsPlan, origin: string): string[] {
  const headers = ['access-control-allow-origin', origin, 'vary', 'origin'];
  if (plan.allowCredentials) headers.push('access-control-allow-credentials', 'true');
  if (plan.exposeHeaders !== '') headers.push('access-control-expose-headers', plan.exposeHeaders);
  return headers;
}

/** Puts CORS headers on a response: they replace the upstream's own, `vary` is appended. */
export function addCorsHeaders(headers: string[], cors: readonly string[]): void {
  for (let i = 0; i < cors.length; i += 2) {
    if (cors[i] !== 'vary') removeHeader(headers, cors[i]);
    headers.push(cors[i], cors[i + 1]);
  }
}
