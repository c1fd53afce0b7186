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
  if (modifier.type === 'ReplaceFullPath') return { type: 'ReplaceFullPath', value: modifier.value };
  // Only meaningful for a PathPrefix match (the API rejects other combinations); anything else
  // replaces the whole path, which is what a prefix of the full path amounts to.
  return match.type === 'PathPrefix'
    ? { type: 'ReplacePrefixMatch', prefix: normalizePrefix(match.value), replacement: normalizePrefix(modifier.value) }
    : { type: 'ReplaceFullPath', value: modifier.value };
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
