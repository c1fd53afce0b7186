// Route matches compiled once (regexes built, prefixes normalized) and evaluated per request.
// Every condition of a match must hold: path, then method, headers, query parameters.

import type { HeaderMatch, PathMatch, QueryParamMatch, RouteMatch } from '../../ir/types.ts';
import { headerValue } from '../header-fields.ts';
import { headerText, wireHeaderValue } from '../filters/header-modifier.ts';

/** What matching reads from a request; built once per request by the request handler. */
export interface MatchableRequest {
  method: string;
  /** Path without query string, as the client sent it. */
  path: string;
  /** Query string without `?`. */
  query: string;
  /** Flat `[name, value, ...]` list, names lower-case, in arrival order. */
  headers: readonly string[];
  /** Parsed on first use by a query parameter match. */
  params: URLSearchParams | null;
}

export type PathMatcher =
  | { type: 'Exact'; value: string }
  /** `prefix` has no trailing slash; `''` stands for `/` (matches everything). */
  | { type: 'PathPrefix'; prefix: string }
  | { type: 'RegularExpression'; regex: RegExp }
  /** An invalid match: the route can never be selected. */
  | { type: 'Never' };

/** Header or query parameter condition. `regex` null and `exact` null means "never". */
export interface ValueMatcher {
  name: string;
  exact: string | null;
  regex: RegExp | null;
}

export interface CompiledMatch {
  path: PathMatcher;
  method: string | null;
  headers: ValueMatcher[];
  queryParams: ValueMatcher[];
}

/** A compile problem that disables one route; reported, never thrown out of apply. */
export interface MatchProblem {
  field: string;
  message: string;
}

/** `/foo/` → `/foo`, `/` → `''`: matching and prefix rewriting are element-wise. */
export function normalizePrefix(value: string): string {
  let end = value.length;
  while (end > 0 && value.charCodeAt(end - 1) === 0x2f /* / */) end--;
  return value.slice(0, end);
}

/** Gateway API regexes match the whole value; wrap once instead of checking indices per request. */
export function anchored(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

/** Most rules match on the path alone: one empty list for all of them (memory at 50 000 rules). */
const NO_VALUE_MATCHES: ValueMatcher[] = [];

export function compileMatch(match: RouteMatch, problems: MatchProblem[]): CompiledMatch {
  return {
    path: compilePathMatch(match.path, problems),
    method: match.method ? match.method.toUpperCase() : null,
    headers: match.headers.length === 0 ? NO_VALUE_MATCHES : match.headers.map((header) => compileValueMatch(header, 'header', true, problems)),
    queryParams: match.queryParams.length === 0 ? NO_VALUE_MATCHES : match.queryParams.map((param) => compileValueMatch(param, 'queryParam', false, problems)),
  };
}

export function compilePathMatch(path: PathMatch, problems: MatchProblem[]): PathMatcher {
  switch (path.type) {
    case 'Exact':
      return { type: 'Exact', value: path.value };
    case 'PathPrefix':
      return { type: 'PathPrefix', prefix: normalizePrefix(path.value) };
    case 'RegularExpression':
      try {
        return { type: 'RegularExpression', regex: anchored(path.value) };
      } catch (error) {
        problems.push({ field: 'path', message: `invalid regular expression ${JSON.stringify(path.value)}: ${(error as Error).message}` });
        return { type: 'Never' };
      }
    default:
      problems.push({ field: 'path', message: `unknown path match type ${JSON.stringify((path as PathMatch).type)}` });
      return { type: 'Never' };
  }
}

function compileValueMatch(
  match: HeaderMatch | QueryParamMatch,
  kind: 'header' | 'queryParam',
  lowerCaseName: boolean,
  problems: MatchProblem[],
): ValueMatcher {
  const name = lowerCaseName ? match.name.toLowerCase() : match.name;
  // A header's value is compared as the bytes that came (a latin1 string): the configured text as its UTF-8 bytes, as Envoy compares.
  if (match.type === 'Exact') return { name, exact: kind === 'header' ? wireHeaderValue(match.value) : match.value, regex: null };
  if (match.type === 'RegularExpression') {
    try {
      return { name, exact: null, regex: anchored(match.value) };
    } catch (error) {
      problems.push({ field: `${kind} ${match.name}`, message: `invalid regular expression ${JSON.stringify(match.value)}: ${(error as Error).message}` });
      return { name, exact: null, regex: null };
    }
  }
  problems.push({ field: `${kind} ${match.name}`, message: `unknown match type ${JSON.stringify(match.type)}` });
  return { name, exact: null, regex: null };
}

export function pathMatches(matcher: PathMatcher, path: string): boolean {
  switch (matcher.type) {
    case 'Exact':
      return path === matcher.value;
    case 'PathPrefix': {
      const prefix = matcher.prefix;
      // Element-wise: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, never `/foobar`.
      return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 0x2f /* / */);
    }
    case 'RegularExpression':
      return matcher.regex.test(path);
    default:
      return false;
  }
}

function valueMatches(matcher: ValueMatcher, value: string | null | undefined): boolean {
  if (value === undefined || value === null) return false;
  if (matcher.exact !== null) return value === matcher.exact;
  return matcher.regex !== null && matcher.regex.test(value);
}

export function matches(match: CompiledMatch, request: MatchableRequest): boolean {
  if (!pathMatches(match.path, request.path)) return false;
  if (match.method !== null && match.method !== request.method) return false;
  for (let i = 0; i < match.headers.length; i++) {
    const header = match.headers[i];
    const value = headerValue(request.headers, header.name);
    if (!valueMatches(header, header.regex !== null && value !== undefined ? headerText(value) : value)) return false;
  }
  if (match.queryParams.length > 0) {
    const params = (request.params ??= new URLSearchParams(request.query));
    for (let i = 0; i < match.queryParams.length; i++) {
      const param = match.queryParams[i];
      // URLSearchParams.get returns the first value, which is what the spec asks for.
      if (!valueMatches(param, params.get(param.name))) return false;
    }
  }
  return true;
}
