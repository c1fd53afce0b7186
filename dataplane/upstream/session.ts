// Session persistence (GEP-1619, IR Route.sessionPersistence): which endpoint a request with a
// session token goes to, and the token a response hands out.
//
// A token is `base64url(version | start ms | endpoint id | mac)`:
// - the endpoint id is an HMAC of the backend's name and the endpoint's address, under a key
//   derived from the process's session key and the rule (IR `scope`): no address in the clear, and
//   an id means nothing on another rule;
// - the start is when the session began (absoluteTimeout counts from it; it is kept while the
//   session holds, so the timeout cannot be extended by using it);
// - the mac (HMAC of the rest, same key, 96 bits) makes a changed or forged token one that is
//   not honoured: the request is load balanced as a new session and gets a new token.
// Every dataplane sharing the key (the workers of one process; replicas given the same
// --session-key-file) honours the others' tokens. The key never leaves the process.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SessionPersistence } from '../../ir/types.ts';
import type { UpstreamEndpoint } from './pools.ts';

const VERSION = 1;
const START_BYTES = 6;
const ID_BYTES = 9;
const MAC_BYTES = 12;
const PAYLOAD_BYTES = 1 + START_BYTES + ID_BYTES;
const TOKEN_BYTES = PAYLOAD_BYTES + MAC_BYTES;
/** base64url length of a token: anything else is not one, without decoding it. */
const TOKEN_CHARS = Math.ceil((TOKEN_BYTES * 4) / 3);

/** Valid tokens remembered per route (their HMAC is checked once): the oldest is dropped beyond this. */
const VERIFIED_CACHE_SIZE = 4096;

/** Bytes of key a session key file must hold at least (HMAC-SHA256's block is more; this is its output). */
export const SESSION_KEY_MIN_BYTES = 32;

/** A fresh random key: what one process uses when no key is configured. */
export function newSessionKey(): Buffer {
  return randomBytes(SESSION_KEY_MIN_BYTES);
}

/** Where a valid token leads: one of the rule's endpoints, with the choice (backend, filters, metrics) it belongs to. */
export interface SessionTarget<C> {
  choice: C;
  endpoint: UpstreamEndpoint;
}

/** A request's session: the endpoint its token names (null: a new session) and when the session began. */
export interface SessionBinding<C> {
  plan: SessionPlan<C>;
  target: SessionTarget<C> | null;
  startedAt: number;
}

/** One route's session settings compiled: its key, its endpoints by id, the cookie attributes. */
export class SessionPlan<C> {
  readonly type: 'Cookie' | 'Header';
  /** Cookie name, or lower-case header name. */
  readonly name: string;
  private readonly key: Buffer;
  private readonly absoluteTimeoutMs: number;
  /** `; Path=...; ...` after `name=token` in Set-Cookie. */
  private readonly cookieAttributes: string;
  private readonly byId = new Map<string, SessionTarget<C>>();
  /** Endpoint ids by endpoint and choice, for the tokens responses hand out. */
  private readonly idOf = new Map<UpstreamEndpoint, Map<C, string>>();
  /** Tokens already verified, with where they lead and their start (only valid ones: a forged token cannot fill it). */
  private readonly verified = new Map<string, { target: SessionTarget<C>; startedAt: number }>();

  /**
   * `targets`: every endpoint of every backend of the route, weight 0 included (GEP-1619: a session
   * holds across the split even when its backend's weight is now 0). `https`: the cookie is Secure.
   */
  constructor(spec: SessionPersistence, sessionKey: Buffer, targets: { choice: C; backend: string; endpoints: readonly UpstreamEndpoint[] }[], https: boolean) {
    this.type = spec.type;
    this.name = spec.type === 'Header' ? spec.name.toLowerCase() : spec.name;
    this.key = createHmac('sha256', sessionKey).update(`sluice session scope\0${spec.scope}`).digest();
    this.absoluteTimeoutMs = spec.absoluteTimeoutMs !== undefined && spec.absoluteTimeoutMs > 0 ? spec.absoluteTimeoutMs : 0;
    for (const { choice, backend, endpoints } of targets) {
      for (const endpoint of endpoints) {
        const id = createHmac('sha256', this.key).update(`${backend}\0${endpoint.address}:${endpoint.port}`).digest().subarray(0, ID_BYTES).toString('base64url');
        // The same endpoint under two choices of one rule (a Service listed twice): the first keeps it.
        if (!this.byId.has(id)) this.byId.set(id, { choice, endpoint });
        let ids = this.idOf.get(endpoint);
        if (ids === undefined) this.idOf.set(endpoint, (ids = new Map()));
        ids.set(choice, id);
      }
    }
    // GEP-1619 "Secure, HttpOnly, SameSite": secure by default; Secure only where the client
    // speaks TLS to us (a browser drops a Secure cookie set over plain HTTP).
    let attributes = `; Path=${spec.cookiePath ?? '/'}; HttpOnly; SameSite=Strict`;
    if (https) attributes += '; Secure';
    if (spec.cookieLifetime === 'Permanent' && this.absoluteTimeoutMs > 0) attributes += `; Max-Age=${Math.ceil(this.absoluteTimeoutMs / 1000)}`;
    this.cookieAttributes = attributes;
  }

  /** The request's session: the first of its tokens (cookies or header values) that is valid now, else a new one. */
  bind(headers: readonly string[], now: number): SessionBinding<C> {
    const wanted = this.type === 'Cookie' ? 'cookie' : this.name;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] !== wanted) continue;
      const value = headers[i + 1];
      if (this.type === 'Header') {
        const found = this.verify(value.trim(), now);
        if (found !== null) return found;
        continue;
      }
      // A Cookie field holds `name=value` pairs separated by `;` (RFC 6265 §4.2.1); the name may
      // recur (cookies of several paths): each is tried.
      for (const pair of value.split(';')) {
        const eq = pair.indexOf('=');
        if (eq < 0 || pair.slice(0, eq).trim() !== this.name) continue;
        const found = this.verify(pair.slice(eq + 1).trim(), now);
        if (found !== null) return found;
      }
    }
    return { plan: this, target: null, startedAt: now };
  }

  /**
   * What the response to a request of `binding`, answered by `endpoint` of `choice`, must carry
   * (`[name, value]` to append to its headers), or null when the client's token still holds.
   */
  responseHeader(binding: SessionBinding<C>, choice: C, endpoint: UpstreamEndpoint, now: number): [string, string] | null {
    const target = binding.target;
    if (target !== null && target.endpoint === endpoint && target.choice === choice) return null;
    const id = this.idOf.get(endpoint)?.get(choice);
    if (id === undefined) return null; // not an endpoint of this route's table (cannot happen): no token rather than a wrong one
    // A session moved to another endpoint (its own failed) keeps its start: moving never extends it.
    const token = this.sign(id, target === null ? now : binding.startedAt);
    return this.type === 'Cookie' ? ['set-cookie', `${this.name}=${token}${this.cookieAttributes}`] : [this.name, token];
  }

  private sign(id: string, startedAt: number): string {
    const payload = Buffer.alloc(PAYLOAD_BYTES);
    payload[0] = VERSION;
    payload.writeUIntBE(Math.max(0, Math.floor(startedAt)), 1, START_BYTES);
    Buffer.from(id, 'base64url').copy(payload, 1 + START_BYTES);
    return Buffer.concat([payload, this.mac(payload)]).toString('base64url');
  }

  private verify(token: string, now: number): SessionBinding<C> | null {
    if (token.length !== TOKEN_CHARS) return null;
    const known = this.verified.get(token);
    if (known !== undefined) return this.expired(known.startedAt, now) ? null : { plan: this, target: known.target, startedAt: known.startedAt };
    const bytes = Buffer.from(token, 'base64url');
    if (bytes.length !== TOKEN_BYTES || bytes[0] !== VERSION) return null;
    const payload = bytes.subarray(0, PAYLOAD_BYTES);
    if (!timingSafeEqual(this.mac(payload), bytes.subarray(PAYLOAD_BYTES))) return null;
    const startedAt = payload.readUIntBE(1, START_BYTES);
    if (this.expired(startedAt, now)) return null;
    // Signed by us, but its endpoint is gone from the backend (scaled down, not ready): a new session.
    const target = this.byId.get(payload.subarray(1 + START_BYTES).toString('base64url'));
    if (target === undefined) return null;
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, { target, startedAt });
    return { plan: this, target, startedAt };
  }

  /** Past its absolute timeout, or started in the future (another replica's clock, far ahead): a new session. */
  private expired(startedAt: number, now: number): boolean {
    return startedAt > now + 60_000 || (this.absoluteTimeoutMs > 0 && now - startedAt >= this.absoluteTimeoutMs);
  }

  private mac(payload: Buffer): Buffer {
    return createHmac('sha256', this.key).update(payload).digest().subarray(0, MAC_BYTES);
  }
}
