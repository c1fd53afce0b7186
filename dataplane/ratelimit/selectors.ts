// Which rules apply to a request, and which bucket of each: client selectors compiled once per
// configuration, the client address worked out once per request (X-Forwarded-For only through
// trusted proxies).

import { BlockList, isIP } from 'node:net';
import { createHash } from 'node:crypto';
import type { ClientIPDetection, RateLimitSelector } from '../../ir/types.ts';
import { headerValue } from '../header-fields.ts';
import { headerText, wireHeaderValue } from '../filters/header-modifier.ts';
import { anchored, compilePathMatch, pathMatches, type MatchProblem } from '../router/match.ts';

/** What the limiter reads from a request; ProxyRequest has the first three. */
export interface RateLimitRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Flat `[name, value, ...]`, names lower-case. */
  headers: readonly string[];
}

/** Per-request memo of the client address (computed on first use). */
export interface ClientContext {
  request: RateLimitRequest;
  remoteAddress: string | undefined;
  address: string | null | undefined;
}

type Condition = (ctx: ClientContext) => boolean;
type Distinct = (ctx: ClientContext) => string | null;

export interface CompiledSelectors {
  /** The rule's bucket key part for this request, or null when the rule does not apply. */
  keyFor(ctx: ClientContext): string | null;
}

/** Longer distinct values are hashed, so a huge header cannot make a huge key. */
const MAX_KEY_PART = 64;

export function compileSelectors(selectors: readonly RateLimitSelector[], detection: ClientIPDetection): CompiledSelectors {
  const conditions: Condition[] = [];
  const distinct: Distinct[] = [];
  for (const s of selectors) {
    switch (s.type) {
      case 'Header': {
        const name = s.name;
        if (s.match === 'Distinct') {
          distinct.push((ctx) => headerValue(ctx.request.headers, name) ?? null);
        } else {
          // As HTTPRoute header matches compare (router/match.ts): an Exact value as its UTF-8 bytes, a regex over the UTF-8 text.
          const value = s.value ?? '';
          const regex = s.match === 'Exact' ? null : anchored(value);
          const bytes = wireHeaderValue(value);
          const test = regex === null ? (v: string) => v === bytes : (v: string) => regex.test(headerText(v));
          const invert = s.invert;
          conditions.push((ctx) => {
            const v = headerValue(ctx.request.headers, name);
            return (v !== undefined && test(v)) !== invert;
          });
        }
        break;
      }
      case 'Method': {
        const methods = new Set(s.methods);
        conditions.push((ctx) => methods.has(ctx.request.method));
        break;
      }
      case 'Path': {
        // The same path matching as HTTPRoute matches (element-wise prefixes, anchored regexes).
        const problems: MatchProblem[] = [];
        const matcher = compilePathMatch({ type: s.match, value: s.value }, problems);
        if (problems.length > 0) throw new Error(`path selector: ${problems[0].message}`);
        const invert = s.invert;
        conditions.push((ctx) => pathMatches(matcher, ctx.request.path) !== invert);
        break;
      }
      case 'SourceCIDR': {
        const list = cidrList(s.cidrs);
        const inRange = (ctx: ClientContext): string | null => {
          const address = clientAddress(ctx, detection);
          return address !== null && contains(list, address) ? address : null;
        };
        if (s.match === 'Distinct') distinct.push(inRange);
        else conditions.push((ctx) => inRange(ctx) !== null);
        break;
      }
      default: {
        // Unreachable by the IR's types (the compiler checks every selector type is handled).
        const unhandled: never = s;
        throw new Error(`unknown rate-limit selector ${JSON.stringify((unhandled as { type: unknown }).type)}`);
      }
    }
  }
  return {
    keyFor(ctx) {
      for (let i = 0; i < conditions.length; i++) if (!conditions[i](ctx)) return null;
      if (distinct.length === 0) return '';
      let key = '';
      for (let i = 0; i < distinct.length; i++) {
        const part = distinct[i](ctx);
        if (part === null) return null; // no value, no descriptor: the rule does not apply (as Envoy)
        key += (i === 0 ? '' : '\n') + (part.length > MAX_KEY_PART ? `#${createHash('sha1').update(part).digest('hex')}` : part);
      }
      return key;
    },
  };
}

/**
 * The client's address: the peer, or — through at most `trustedHops` trusted proxies — the
 * X-Forwarded-For entry each of them appended (read from the right).
 */
export function clientAddress(ctx: ClientContext, detection: ClientIPDetection): string | null {
  if (ctx.address !== undefined) return ctx.address;
  let address = normalizeAddress(ctx.remoteAddress);
  if (address !== null && detection.trustedHops > 0) {
    const trusted = detection.trustedProxies.length === 0 ? null : cidrList(detection.trustedProxies);
    const entries = forwardedFor(ctx.request.headers);
    for (let hop = 0; hop < detection.trustedHops && hop < entries.length; hop++) {
      if (trusted !== null && !contains(trusted, address!)) break;
      const next = normalizeAddress(entries[entries.length - 1 - hop]);
      if (next === null) break;
      address = next;
    }
  }
  ctx.address = address;
  return address;
}

function forwardedFor(headers: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'x-forwarded-for') for (const part of headers[i + 1].split(',')) out.push(part.trim());
  }
  return out;
}

function normalizeAddress(value: string | undefined): string | null {
  if (value === undefined) return null;
  const address = value.startsWith('::ffff:') && isIP(value.slice(7)) === 4 ? value.slice(7) : value;
  return isIP(address) === 0 ? null : address.toLowerCase();
}

const cidrCache = new Map<string, BlockList>();

function cidrList(cidrs: readonly string[]): BlockList {
  const key = cidrs.join(',');
  let list = cidrCache.get(key);
  if (list === undefined) {
    list = new BlockList();
    for (const cidr of cidrs) {
      const [address, prefix] = cidr.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      list.addSubnet(address, Number(prefix), family);
    }
    if (cidrCache.size > 1000) cidrCache.clear();
    cidrCache.set(key, list);
  }
  return list;
}

function contains(list: BlockList, address: string): boolean {
  return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}
