// Requests the way the upstream Ingress conformance client makes them
// (features/README.md): Go client, HTTP/1.1, TLS without verification and
// SNI = host, Host overridden unless the case's host is null, and redirects
// (301/302/303/307/308) followed by hand: same method, same proxy address,
// scheme/host/path from Location, default port of the scheme, query dropped.

import net from 'node:net';
import { canonicalHeaderName } from '../lib/headers.ts';
import { sendRequest, type ClientRequest, type ClientResult } from '../lib/http-client.ts';
import type { RequestSpec } from './types.ts';

export const REDIRECT_STATUSES = [301, 302, 303, 307, 308];
export const MAX_REDIRECTS = 10;
export const GO_USER_AGENT = 'Go-http-client/1.1';

const DEFAULT_PORT: Record<'http' | 'https', number> = { http: 80, https: 443 };

export interface TrafficSettings {
  /** Listener port P is reached at P + portOffset. */
  portOffset: number;
  timeoutMs: number;
}

/** One request of a (possibly redirected) exchange. */
export interface Hop {
  scheme: 'http' | 'https';
  /** Host header value. */
  host: string;
  /** TLS server name ('' or an IP literal: none). */
  sni: string;
  /** Request target (path plus query). */
  path: string;
  method: string;
}

function bracket(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}

/** The first request: Host is the case's host, or the dialled address (default port: no port) when null. */
export function firstHop(r: RequestSpec, address: string): Hop {
  const host = r.host ?? bracket(address);
  return {
    scheme: r.scheme,
    host,
    sni: r.scheme === 'https' ? r.sni ?? r.host ?? address : '',
    path: r.path,
    method: r.method,
  };
}

/** URL of a hop as the client sees it (for resolving a relative Location). */
export function hopUrl(h: Hop): string {
  return `${h.scheme}://${h.host}${h.path.startsWith('/') ? h.path : `/${h.path}`}`;
}

/**
 * The request that follows a redirect: same method; scheme, host name and
 * path from Location (resolved against the previous URL); query dropped; SNI
 * = that host. Returns a problem string when Location cannot be followed.
 */
export function nextHop(prev: Hop, location: string): Hop | string {
  let url: URL;
  try {
    url = new URL(location, hopUrl(prev));
  } catch {
    return `cannot parse Location ${JSON.stringify(location)}`;
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (scheme !== 'http' && scheme !== 'https') return `cannot follow Location ${JSON.stringify(location)}: scheme ${scheme}`;
  const hostname = url.hostname;
  if (!hostname) return `cannot follow Location ${JSON.stringify(location)}: no host`;
  const bare = hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    scheme,
    host: hostname,
    sni: scheme === 'https' ? bare : '',
    path: url.pathname || '/',
    method: prev.method,
  };
}

/** Header pairs in wire order: Host, then the case's headers (Go canonical names), User-Agent as Go's client when absent. */
export function requestHeaders(host: string, extra: Record<string, string> | undefined): [string, string][] {
  const out: [string, string][] = [['Host', host]];
  let ua = false;
  for (const [name, value] of Object.entries(extra ?? {})) {
    const canon = canonicalHeaderName(name);
    if (canon === 'User-Agent') ua = true;
    out.push([canon, value]);
  }
  if (!ua) out.push(['User-Agent', GO_USER_AGENT]);
  return out;
}

export function clientRequest(h: Hop, address: string, extraHeaders: Record<string, string> | undefined, s: TrafficSettings): ClientRequest {
  return {
    connectHost: address,
    connectPort: DEFAULT_PORT[h.scheme] + s.portOffset,
    protocol: h.scheme === 'https' ? 'HTTP/1.1+TLS' : 'HTTP/1.1',
    method: h.method,
    path: h.path,
    authority: h.host,
    headers: requestHeaders(h.host, extraHeaders),
    tls: h.scheme === 'https' ? { serverName: h.sni, insecureSkipVerify: true } : undefined,
    timeoutMs: s.timeoutMs,
  };
}

export interface Exchange {
  /** The final response (or transport failure). */
  result: ClientResult;
  /** The request that produced it. */
  final: Hop;
  /** Every request made, for messages: `GET http://host/path -> 301`. */
  chain: string[];
}

/** Sends the case's request to the proxy at `address`, following redirects when asked. */
export async function perform(r: RequestSpec, address: string, s: TrafficSettings): Promise<Exchange> {
  let hop = firstHop(r, address);
  const chain: string[] = [];
  for (let hops = 0; ; hops++) {
    const result = await sendRequest(clientRequest(hop, address, r.headers, s));
    chain.push(`${hop.method} ${hopUrl(hop)} -> ${result.ok ? result.status : 'error'}`);
    if (!r.followRedirects || !result.ok || !REDIRECT_STATUSES.includes(result.status)) return { result, final: hop, chain };
    const location = result.headers.get('location')?.[0];
    if (location === undefined) return { result, final: hop, chain };
    if (hops >= MAX_REDIRECTS) return { result: { ok: false, error: `stopped after ${MAX_REDIRECTS} redirects (${chain.join(', ')})` }, final: hop, chain };
    const next = nextHop(hop, location);
    if (typeof next === 'string') return { result: { ok: false, error: next }, final: hop, chain };
    hop = next;
  }
}
