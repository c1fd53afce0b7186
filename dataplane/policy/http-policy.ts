// L7 HTTP policy (ir.l4.policy.http) as the proxy enforces it: on each request, once the endpoint
// is known and before anything is sent to it. The endpoint's identity comes from the ipcache
// (longest prefix), its rules from the grants of that identity and port, in both directions: the
// destination's ingress rules and the gateway's egress rules must each let the request through.
// Matching is Cilium's Envoy filter's: method, path (the whole `:path`, query included) and host
// are RE2 regexes (Envoy's safe_regex, via re2js: linear time, whatever path a client sends)
// matched against the whole value; `headers` need presence or an exact value;
// `headerMatches` with a mismatch action run on every rule whose other parts matched and may
// change the request (ADD, DELETE, REPLACE) before it goes on.

import { IDENTITY_ANY, IDENTITY_WORLD, type HttpPolicy, type HttpPolicyHeader, type HttpPolicyRule, type L4Policy } from '../../ir/types.ts';
import { addressInCidr, parseCidr, parseIPv4, type Cidr } from '../../ir/ipv4.ts';
import { removeHeader, wireHeaderValue } from '../filters/header-modifier.ts';
import { RE2JS } from 're2js';

/** Cilium's Envoy answers a denied request with this body (403). */
export const ACCESS_DENIED_BODY = 'Access denied\r\n';

export type PolicyDirection = 'ingress' | 'egress';

export interface L7Decision {
  /** FORWARDED: every direction allowed; DROPPED: an enforcing direction denied; AUDIT: only audit-mode directions denied. */
  verdict: 'FORWARDED' | 'DROPPED' | 'AUDIT';
  /** The direction that denied (DROPPED, AUDIT), else the last one checked. */
  direction: PolicyDirection;
  /** The L4Rule ids whose HTTP rules were in force for that direction (the ones that allowed, or all of them when none did). */
  rules: readonly number[];
}

/** One compiled `rules.http[]` entry. */
class CompiledHttpRule {
  readonly rule: number;
  private readonly method: Pattern | null;
  private readonly path: Pattern | null;
  private readonly host: Pattern | null;
  /** A pattern RE2 cannot compile (the translator said so): the rule admits nothing. */
  private readonly broken: boolean;
  private readonly headers: readonly HttpPolicyHeader[];
  readonly actions: HttpPolicyRule['headerActions'];

  constructor(rule: number, http: HttpPolicyRule) {
    this.rule = rule;
    const method = compileRe2(http.method);
    const path = compileRe2(http.path);
    const host = compileRe2(http.host);
    this.broken = method === undefined || path === undefined || host === undefined;
    this.method = method ?? null;
    this.path = path ?? null;
    this.host = host ?? null;
    // Compared with and sent as the value's UTF-8 bytes, as Cilium's Envoy does (and HTTPRoute
    // header matches and modifiers here): header strings are latin1 both ways in Node and undici.
    this.headers = http.headers.map(onTheWire);
    this.actions = http.headerActions.map(onTheWire);
  }

  /** Method, path, host and `headers`: Envoy's HeaderMatchers, no side effects. */
  allowed(method: string, target: string, headers: readonly string[]): boolean {
    if (this.broken) return false;
    if (this.method !== null && !this.method.testExact(method)) return false;
    if (this.path !== null && !this.path.testExact(target)) return false;
    if (this.host !== null && !this.host.testExact(joinedHeader(headers, 'host') ?? '')) return false;
    for (const h of this.headers) {
      const value = joinedHeader(headers, h.name);
      if (value === undefined || (h.value !== undefined && value !== h.value)) return false;
    }
    return true;
  }

  /** The mismatch actions, every one of them (as Cilium: all run, then the result is known); true when all matched or were acted on. */
  headerMatches(headers: string[]): boolean {
    for (const a of this.actions) {
      const value = joinedHeader(headers, a.name);
      const matches = a.value === undefined ? value !== undefined : value === a.value;
      if (matches) continue;
      if (a.mismatch === 'ADD' && a.value !== undefined) headers.push(a.name, a.value);
      else if (a.mismatch === 'DELETE' && a.value !== undefined) removeHeader(headers, a.name);
      else if (a.mismatch === 'REPLACE' && a.value !== undefined) {
        removeHeader(headers, a.name);
        headers.push(a.name, a.value);
      }
      // LOG (and any action on a presence match): the rule still matches, the mismatch is only recorded.
    }
    return true;
  }
}

/** A header rule with its value as the latin1 string of its UTF-8 bytes (the same object when ASCII). */
function onTheWire<T extends HttpPolicyHeader>(header: T): T {
  if (header.value === undefined) return header;
  const value = wireHeaderValue(header.value);
  return value === header.value ? header : { ...header, value };
}

/** The HTTP rules in force for one direction of one (identity, port). */
class DirectionCheck {
  readonly direction: PolicyDirection;
  readonly audit: boolean;
  private readonly rules: readonly CompiledHttpRule[];
  private readonly allRuleIds: readonly number[];
  /** No rule has mismatch actions: the first rule that matches decides (Envoy short-circuits too). */
  private readonly shortCircuit: boolean;

  /** What this direction says of what its rules do not allow. */
  readonly denial: L7Decision;

  constructor(direction: PolicyDirection, audit: boolean, rules: CompiledHttpRule[]) {
    this.direction = direction;
    this.audit = audit;
    this.rules = rules;
    this.allRuleIds = [...new Set(rules.map((r) => r.rule))];
    this.shortCircuit = rules.every((r) => r.actions.length === 0);
    this.denial = { verdict: audit ? 'AUDIT' : 'DROPPED', direction, rules: this.allRuleIds };
  }

  /** The ids of the rules that allowed the request, or null when none did. */
  check(method: string, target: string, headers: string[]): readonly number[] | null {
    let allowedBy: number[] | null = null;
    for (const rule of this.rules) {
      if (!rule.allowed(method, target, headers)) continue;
      if (!rule.headerMatches(headers)) continue;
      if (this.shortCircuit) return [rule.rule];
      (allowedBy ??= []).push(rule.rule);
    }
    return allowedBy;
  }
}

/** What L7 policy asks of requests to one endpoint (`address:port`). */
export class EndpointPolicy {
  /** The endpoint's identity (IDENTITY_WORLD when no ipcache prefix holds it). */
  readonly identity: number;
  private readonly checks: readonly DirectionCheck[];

  constructor(identity: number, checks: DirectionCheck[]) {
    this.identity = identity;
    this.checks = checks;
  }

  /**
   * Decides one request; `headers` (flat `[name, value, ...]`, lower-case names, as sent upstream)
   * may be changed by mismatch actions. The gateway's egress rules are checked first, as its own
   * proxy would before the destination's.
   */
  decide(method: string, target: string, headers: string[]): L7Decision {
    let audited: L7Decision | null = null;
    let last: L7Decision | null = null;
    for (const c of this.checks) {
      const allowedBy = c.check(method, target, headers);
      if (allowedBy !== null) {
        last = { verdict: 'FORWARDED', direction: c.direction, rules: allowedBy };
        continue;
      }
      if (!c.audit) return c.denial;
      audited ??= c.denial;
    }
    return audited ?? last!;
  }

  /**
   * Decides a byte stream (TCPRoute, TLSRoute) to the endpoint: the gateway relays bytes it does
   * not parse, and a port with HTTP rules passes only HTTP the rules allow (Cilium redirects it to
   * Envoy, which lets nothing else through), so every stream is denied — DROPPED, or AUDIT when
   * each direction that has a say is in audit mode.
   */
  decideStream(): L7Decision {
    let audited: L7Decision | null = null;
    for (const c of this.checks) {
      if (!c.audit) return c.denial;
      audited ??= c.denial;
    }
    return audited!;
  }
}

/** ir.l4.policy compiled for lookups by endpoint; `forEndpoint` is called when a route table is built, never per request. */
export class HttpPolicyIndex {
  private readonly hosts = new Map<number, number>();
  /** Prefixes shorter than /32, longest first. */
  private readonly prefixes: { cidr: Cidr; identity: number }[] = [];
  private readonly byKey = new Map<string, HttpPolicy>();

  constructor(policy: L4Policy) {
    for (const e of policy.ipcache) {
      const cidr = parseCidr(e.cidr);
      if (cidr === null) continue;
      if (cidr.len === 32) this.hosts.set(cidr.ip, e.identity);
      else this.prefixes.push({ cidr, identity: e.identity });
    }
    this.prefixes.sort((a, b) => b.cidr.len - a.cidr.len);
    for (const p of policy.http ?? []) this.byKey.set(`${p.direction}/${p.identity}`, p);
  }

  /** Null when no policy governs any request, so tables without one carry nothing. */
  static build(policy: L4Policy | undefined): HttpPolicyIndex | null {
    return policy?.http && policy.http.length > 0 ? new HttpPolicyIndex(policy) : null;
  }

  identityOf(address: string): number {
    const ip = parseIPv4(address);
    if (ip === null) return IDENTITY_WORLD;
    const exact = this.hosts.get(ip);
    if (exact !== undefined) return exact;
    for (const p of this.prefixes) if (addressInCidr(ip, p.cidr)) return p.identity;
    return IDENTITY_WORLD;
  }

  /** The checks for requests to `address:port`, or null when L7 has no say there. */
  forEndpoint(address: string, port: number): EndpointPolicy | null {
    const identity = this.identityOf(address);
    const checks: DirectionCheck[] = [];
    const egress = this.direction('egress', [this.byKey.get(`egress/${identity}`), this.byKey.get(`egress/${IDENTITY_ANY}`)], port);
    if (egress) checks.push(egress);
    const ingress = this.direction('ingress', [this.byKey.get(`ingress/${identity}`)], port);
    if (ingress) checks.push(ingress);
    return checks.length === 0 ? null : new EndpointPolicy(identity, checks);
  }

  /** The grants taking in `port`: null when there are none, or one is L4-only (every request passes). */
  private direction(direction: PolicyDirection, policies: (HttpPolicy | undefined)[], port: number): DirectionCheck | null {
    const rules: CompiledHttpRule[] = [];
    let covered = false;
    let audit = false;
    for (const p of policies) {
      if (p === undefined) continue;
      for (const g of p.grants) {
        if (g.ports && (port < g.ports.from || port > g.ports.to)) continue;
        if (g.http === null) return null;
        covered = true;
        audit ||= p.audit;
        for (const h of g.http) rules.push(new CompiledHttpRule(g.rule, h));
      }
    }
    return covered ? new DirectionCheck(direction, audit, rules) : null;
  }
}

/** Whole-value matching (Envoy's safe_regex_match is a full match). */
interface Pattern {
  testExact(value: string): boolean;
}

/** A pattern without metacharacters (`GET`, `/api/products`): string equality, the same answer at a tenth of RE2's cost. */
class Literal implements Pattern {
  private readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  testExact(value: string): boolean {
    return value === this.text;
  }
}

/** The pattern for whole-value matching; null when absent, undefined when RE2 refuses it. */
function compileRe2(re: string | undefined): Pattern | null | undefined {
  if (re === undefined) return null;
  try {
    const compiled = RE2JS.compile(re);
    return RE2JS.quote(re) === re ? new Literal(re) : compiled;
  } catch {
    return undefined;
  }
}

/** Every value of a header joined with ',' (Envoy's getAllOfHeaderAsString); undefined when absent. */
function joinedHeader(headers: readonly string[], name: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) out = out === undefined ? headers[i + 1] : `${out},${headers[i + 1]}`;
  }
  return out;
}
