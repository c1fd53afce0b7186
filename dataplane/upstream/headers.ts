// Header rewriting at the proxy boundary: hop-by-hop headers stay on their own connection
// (RFC 9110 §7.6.1), X-Forwarded-For/-Proto tell the upstream who asked and how.

import { applyHeaderModifiers, removeHeader, type HeaderModifierPlan } from '../filters/header-modifier.ts';
import type { Scheme } from '../filters/redirect.ts';

/**
 * Never forwarded in either direction; nor is any header named in Connection. `http2-settings`
 * belongs to an HTTP/1.1 → h2c upgrade, which is hop-by-hop too (RFC 7540 §3.2.1). `name` is
 * lower-case. By length first: nearly every header is none of these, and a length compare costs
 * less than a Set lookup of a fresh string, for each header of each message (issue #14).
 */
function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2:
      return name === 'te';
    case 7:
      return name === 'upgrade' || name === 'trailer';
    case 10:
      return name === 'connection' || name === 'keep-alive';
    case 14:
      return name === 'http2-settings';
    case 16:
      return name === 'proxy-connection';
    case 17:
      return name === 'transfer-encoding';
    default:
      return false;
  }
}

/**
 * Request headers we drop besides hop-by-hop ones: `expect` (Node has already answered
 * 100-continue, and undici refuses it), and the forwarding headers we rebuild ourselves. By length
 * first, as isHopByHop.
 */
function isRebuiltRequestHeader(name: string): boolean {
  switch (name.length) {
    case 6:
      return name === 'expect';
    case 15:
      return name === 'x-forwarded-for';
    case 17:
      return name === 'x-forwarded-proto';
    default:
      return false;
  }
}

/** The client's headers, read once: what matching and forwarding need (copied out by ProxyRequest at once). */
export interface ClientHeaders {
  /** Flat `[name, value, ...]`, names lower-case, every header in arrival order. */
  headers: string[];
  /** First Host header, as sent. */
  host: string | undefined;
  /** Whether a request body follows (Content-Length > 0 or Transfer-Encoding). */
  hasBody: boolean;
}

/**
 * The readers' one result object, filled again by every read: the reading is synchronous and its
 * one caller (ProxyRequest) copies the fields out at once, so a request allocates no object for it
 * (issue #14).
 */
const READ: ClientHeaders = { headers: [], host: undefined, hasBody: false };

function result(headers: string[], host: string | undefined, hasBody: boolean): ClientHeaders {
  READ.headers = headers;
  READ.host = host;
  READ.hasBody = hasBody;
  return READ;
}

/** The returned object is reused by the next read: copy its fields before reading again. */
export function readClientHeaders(rawHeaders: readonly string[]): ClientHeaders {
  const headers = new Array<string>(rawHeaders.length);
  let host: string | undefined;
  let hasBody = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    headers[i] = name;
    headers[i + 1] = value;
    if (name === 'host') host ??= value;
    else if (name === 'content-length') hasBody ||= value !== '0';
    else if (name === 'transfer-encoding') hasBody = true;
  }
  return result(headers, host, hasBody);
}

/**
 * The same for an HTTP/2 request: pseudo-headers dropped, `:authority` becoming the Host (it
 * wins over a Host header, RFC 9113 §8.3.1), and the Cookie header, which HTTP/2 lets clients
 * split into one field per cookie, joined back with "; " for HTTP/1.1 (RFC 9113 §8.2.3).
 * `endStream`: the HEADERS frame ended the stream, so no body follows. The returned object is
 * reused by the next read.
 */
export function readHttp2ClientHeaders(rawHeaders: readonly string[], endStream: boolean): ClientHeaders {
  const headers: string[] = [];
  let authority: string | undefined;
  let host: string | undefined;
  let cookie: string | undefined;
  let hasBody = !endStream;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    // HTTP/2 field names are lower-case on the wire (node:http2 refuses anything else).
    const name = rawHeaders[i];
    const value = rawHeaders[i + 1];
    if (name.charCodeAt(0) === 0x3a /* : */) {
      if (name === ':authority') authority = value;
      continue;
    }
    if (name === 'host') {
      host ??= value;
      continue;
    }
    if (name === 'cookie') {
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (name === 'content-length' && value === '0') hasBody = false;
    headers.push(name, value);
  }
  authority ??= host;
  if (authority !== undefined) headers.unshift('host', authority);
  if (cookie !== undefined) headers.push('cookie', cookie);
  return result(headers, authority, hasBody);
}

/**
 * The upstream request's headers before filters: client headers minus hop-by-hop ones (except
 * `te: trailers`, which the proxy honours by forwarding trailers), the Host kept as the client
 * sent it, X-Forwarded-For appended and X-Forwarded-Proto set. Filters run afterwards, so a
 * header modifier may still override the forwarding headers.
 */
export function upstreamRequestHeaders(headers: readonly string[], clientAddress: string | undefined, scheme: Scheme): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  let sawHost = false;
  let sawContentLength = false;
  let sawTeTrailers = false;
  // Every X-Forwarded-For line, joined (headerValue's reading), gathered in the same pass.
  let forwardedFor: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (isHopByHop(name)) {
      if (name === 'connection') connection = connection === undefined ? headers[i + 1] : `${connection},${headers[i + 1]}`;
      // The proxy passes trailers on, so it may say so upstream itself (gRPC servers insist).
      else if (name === 'te' && !sawTeTrailers && /\btrailers\b/i.test(headers[i + 1])) {
        sawTeTrailers = true;
        out.push('te', 'trailers');
      }
      continue;
    }
    if (isRebuiltRequestHeader(name)) {
      if (name === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? headers[i + 1] : `${forwardedFor},${headers[i + 1]}`;
      continue;
    }
    // undici rejects repeated Host or Content-Length; the first one is the one Node used.
    if (name === 'host') {
      if (sawHost) continue;
      sawHost = true;
    } else if (name === 'content-length') {
      if (sawContentLength) continue;
      sawContentLength = true;
    }
    out.push(name, headers[i + 1]);
  }
  if (connection !== undefined) removeConnectionOptions(out, connection);

  const address = clientAddress?.startsWith('::ffff:') ? clientAddress.slice(7) : clientAddress;
  if (address !== undefined) out.push('x-forwarded-for', forwardedFor === undefined ? address : `${forwardedFor}, ${address}`);
  else if (forwardedFor !== undefined) out.push('x-forwarded-for', forwardedFor);
  out.push('x-forwarded-proto', scheme);
  return out;
}

/**
 * Every response names its server: the backend's own `Server` header is kept, and `server: sluice`
 * is added when it sent none (Envoy overwrites it; keeping the backend's tells users more).
 */
export const SERVER_HEADER: readonly [string, string] = ['server', 'sluice'];

/** The downstream response's headers: upstream headers minus hop-by-hop ones, a Server header, then modifiers. */
export function downstreamResponseHeaders(
  upstream: Record<string, string | string[] | undefined>,
  modifiers: readonly HeaderModifierPlan[],
): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  if (upstream.server === undefined) out.push(SERVER_HEADER[0], SERVER_HEADER[1]);
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined) continue;
    if (isHopByHop(name)) {
      if (name === 'connection') connection = typeof value === 'string' ? value : value.join(',');
      continue;
    }
    if (typeof value === 'string') out.push(name, value);
    else for (let i = 0; i < value.length; i++) out.push(name, value[i]);
  }
  if (connection !== undefined) removeConnectionOptions(out, connection);
  if (modifiers.length > 0) applyHeaderModifiers(out, modifiers);
  return out;
}

/** Removes the headers a Connection header names (`Connection: close, x-private`). */
function removeConnectionOptions(headers: string[], connection: string): void {
  // Nearly every message says just one of these: nothing to remove, no need to split.
  if (connection.length <= 10) {
    const lower = connection.toLowerCase();
    if (lower === 'keep-alive' || lower === 'close' || lower === 'upgrade') return;
  }
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    // The common tokens name nothing we would forward; skip the scan for them.
    if (name === '' || name === 'close' || name === 'keep-alive' || name === 'upgrade') continue;
    removeHeader(headers, name);
  }
}
