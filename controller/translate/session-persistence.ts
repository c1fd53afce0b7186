// HTTPRoute and GRPCRoute `rules[].sessionPersistence` (GEP-1619, experimental channel) → IR.
// The CRD's schema and CEL rules (checked in standalone by controller/schema/validate.ts, in
// Kubernetes mode by the API server) already refuse unknown types and lifetimes, a Permanent cookie
// without absoluteTimeout and cookieConfig on a Header session; what they cannot say is here: a
// `sessionName` must be a valid cookie or header name (the CRD only bounds its length), and one the
// gateway's own HTTP handling owns (Host, Cookie ...) is refused rather than clobbered.
import { createHash } from 'node:crypto';
import type { PathMatch, SessionPersistence } from '../../ir/types.ts';
import type { HTTPRouteRule } from '../schema/kinds.ts';
import { parseDurationMs } from './durations.ts';
import { TOKEN } from './header-fields.ts';

type SessionPersistenceSpec = NonNullable<HTTPRouteRule['sessionPersistence']>;


/** Header names a Header session cannot take: the framing, routing and cookie fields the gateway itself reads or writes. */
const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
  'cookie', 'set-cookie', 'content-type', 'grpc-status', 'grpc-message', 'grpc-timeout', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host',
]);

/**
 * The rule's session settings, without the cookie path (that comes from each match: `withCookiePath`);
 * undefined when the rule has none or they cannot be served (then `unsupported` was told why).
 */
export function toSessionPersistence(spec: SessionPersistenceSpec | undefined, scope: string, where: string, unsupported: (msg: string) => void): SessionPersistence | undefined {
  if (!spec) return undefined;
  const type = spec.type ?? 'Cookie';
  // No sessionName: one per rule (GEP-1619: "a unique cookie name should be generated"), from a hash
  // of the rule so that clients do not learn namespace and route names from it.
  const name = spec.sessionName ?? `sluice-session-${createHash('sha256').update(scope).digest('hex').slice(0, 12)}`;
  if (!TOKEN.test(name)) {
    unsupported(`${where}: sessionPersistence.sessionName ${JSON.stringify(name)} is not a valid ${type === 'Cookie' ? 'cookie' : 'header'} name (RFC 9110 token characters only)`);
    return undefined;
  }
  if (type === 'Header' && RESERVED_HEADERS.has(name.toLowerCase())) {
    unsupported(`${where}: sessionPersistence.sessionName ${JSON.stringify(name)} is a header the gateway itself reads or writes; choose another name`);
    return undefined;
  }
  const out: SessionPersistence = { type, name: type === 'Header' ? name.toLowerCase() : name, scope };
  if (spec.absoluteTimeout !== undefined) {
    const ms = parseDurationMs(spec.absoluteTimeout);
    if (ms === null || ms === 0) {
      unsupported(`${where}: sessionPersistence.absoluteTimeout ${JSON.stringify(spec.absoluteTimeout)} is not a duration above zero such as 30m or 1h`);
      return undefined;
    }
    out.absoluteTimeoutMs = ms;
  }
  if (type === 'Cookie') out.cookieLifetime = spec.cookieConfig?.lifetimeType ?? 'Session';
  return out;
}

/** A match's copy of the rule's settings: a cookie gets the match's path as its `Path` (GEP-1619 "Path"). */
export function withCookiePath(session: SessionPersistence | undefined, path: PathMatch): SessionPersistence | undefined {
  if (session === undefined || session.type !== 'Cookie') return session;
  return { ...session, cookiePath: cookiePathOf(path) };
}

/**
 * Exact and PathPrefix: the value; a regular expression: its longest literal prefix up to the last
 * `/` (GEP-1619: `/p1/p2/.*` → `/p1/p2`); `/` when nothing is left or the value holds characters a
 * cookie attribute cannot carry.
 */
export function cookiePathOf(path: PathMatch): string {
  let value = path.value;
  if (path.type === 'RegularExpression') {
    const meta = value.search(/[\\^$.|?*+()[\]{}]/);
    if (meta >= 0) value = value.slice(0, Math.max(0, value.lastIndexOf('/', meta)));
    if (value.length > 1 && value.endsWith('/')) value = value.slice(0, -1);
  }
  if (!value.startsWith('/') || !/^[\x21-\x3a\x3c-\x7e]+$/.test(value)) return '/';
  return value;
}
