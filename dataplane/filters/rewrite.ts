// Path and host rewriting, shared by URLRewrite (what the backend sees) and RequestRedirect
// (what the client is sent to). ReplacePrefixMatch works element-wise on the route's
// PathPrefix match, with the Gateway API spec's slash rules.

import type { PathMatch, PathModifier } from '../../ir/types.ts';
import { normalizePrefix } from '../router/match.ts';

export type PathRewritePlan =
  | { type: 'ReplaceFullPath'; value: string }
  /** `prefix` is the matched PathPrefix without trailing slash (`''` for `/`); same for `replacement`. */
  | { type: 'ReplacePrefixMatch'; prefix: string; replacement: string };

/** URLRewrite: null fields leave the request as it is. */
export interface UrlRewritePlan {
  hostname: string | null;
  path: PathRewritePlan | null;
}

export function compilePathModifier(modifier: PathModifier | undefined, match: PathMatch): PathRewritePlan | null {
  if (modifier === undefined) return null;
  const value = uriPath(modifier.value);
  if (modifier.type === 'ReplaceFullPath') return { type: 'ReplaceFullPath', value };
  // Only meaningful for a PathPrefix match (the API rejects other combinations); anything else
  // replaces the whole path, which is what a prefix of the full path amounts to.
  return match.type === 'PathPrefix'
    ? { type: 'ReplacePrefixMatch', prefix: normalizePrefix(match.value), replacement: normalizePrefix(value) }
    : { type: 'ReplaceFullPath', value };
}

const NOT_RAW = /[^\x21-\x7e]/u;
const NOT_RAW_RUNS = /[^\x21-\x7e]+/gu;

/**
 * A configured path as a request line and a Location can carry it: a space and characters beyond
 * ASCII percent-encoded as their UTF-8 bytes (`/café` → `/caf%C3%A9`, which a server decodes to
 * the same path), the rest as written (`%2F` stays). Made once, at compile time. Raw, `→` could not
 * be sent at all (undici refuses the path: 400) and `é` left as the latin1 byte E9; Envoy passes
 * the raw UTF-8 bytes, which no URI may hold (RFC 3986) and Node's own parser refuses.
 * (Control characters never get here: translation refuses them.)
 */
export function uriPath(text: string): string {
  if (!NOT_RAW.test(text)) return text;
  return text.replace(NOT_RAW_RUNS, (run) => {
    let out = '';
    for (const byte of Buffer.from(run, 'utf8')) out += `%${byte < 16 ? '0' : ''}${byte.toString(16).toUpperCase()}`;
    return out;
  });
}

export function rewritePath(plan: PathRewritePlan | null, path: string): string {
  if (plan === null) return path;
  if (plan.type === 'ReplaceFullPath') return plan.value;
  // Element-wise: the matched prefix ends at a segment boundary, so the rest is '' or starts
  // with '/'; the replacement has no trailing slash, so no '//' can appear at the seam.
  const rest = path.slice(plan.prefix.length);
  const rewritten = plan.replacement + rest;
  return rewritten === '' ? '/' : rewritten;
}

/** Later fields win: a backend's URLRewrite refines the route's. */
export function mergeRewrites(first: UrlRewritePlan | null, second: UrlRewritePlan | null): UrlRewritePlan | null {
  if (first === null) return second;
  if (second === null) return first;
  return { hostname: second.hostname ?? first.hostname, path: second.path ?? first.path };
}
