// RateLimitPolicy (sluice.dev/v1alpha1) and the Ingress `sluice.dev/rate-limit` annotation:
// validation, GEP-713 attachment (targetRefs to a Gateway, a Gateway listener, an HTTPRoute or
// a named HTTPRoute rule), precedence, the policies' status, and the IR: `http.rateLimits` plus
// `rateLimit` on every governed route.
//
// Precedence (GEP-713 "defaults", the only kind this policy has): for each route the most
// specific attached policy governs it, whole — HTTPRoute rule (sectionName) > HTTPRoute >
// Gateway listener (sectionName) > Gateway. Policies are not merged field by field. Two
// policies naming the same target (same kind, name and sectionName): the older one
// (creationTimestamp, then namespace/name) is accepted, the other is Conflicted for that target.
//
// Attachment works on the translator's graph: each placement (a route rule's match on a listener)
// before the IR is assembled, identified by its typed origins, never by parsing IR names.
//
// Pure like the rest of translation: the same snapshot gives the same IR and statuses.
import { createHash } from 'node:crypto';
import type { Origin, RateLimitPolicy, RateLimitRule, RateLimitSelector } from '../../ir/types.ts';
import { stableJson } from '../../ir/version.ts';
import { namespacedName, type InputSnapshot, type KubeObject, type RateLimitPolicyObject } from '../sources/objects.ts';
import { condition, type Condition, type ObjectStatus } from '../status/conditions.ts';
import type { GatewayState } from './gateway.ts';
import type { Placement } from './httproute.ts';
import type { InputIndex } from './index-inputs.ts';

export const RATE_LIMIT_GROUP = 'sluice.dev';
export const RATE_LIMIT_ANNOTATION = 'sluice.dev/rate-limit';
export const RATE_LIMIT_SCOPE_ANNOTATION = 'sluice.dev/rate-limit-scope';

// The spec as its CRD types it. A policy translation sees has passed the CRD's schema and CEL rules
// (standalone: controller/schema/validate.ts; Kubernetes mode: the API server), so the bounds,
// enums, patterns and required fields are not checked again here; only what the schema cannot
// say is (a regular expression JavaScript compiles, unique rule names, a path starting with /).
type RateLimitSpec = RateLimitPolicyObject['spec'];
type RuleSpec = NonNullable<RateLimitSpec['local']>['rules'][number] | NonNullable<RateLimitSpec['global']>['rules'][number];
type SelectorSpec = NonNullable<RuleSpec['clientSelectors']>[number];

const UNIT_SECONDS: Record<RuleSpec['limit']['unit'], number> = { Second: 1, Minute: 60, Hour: 3600, Day: 86400 };

export interface RateLimitInput {
  snapshot: InputSnapshot;
  /** Our Gateways (accepted or not), as translated. */
  gateways: GatewayState[];
  /** `namespace/name` of the HTTPRoutes that have a parent among our Gateways. */
  servedRoutes: () => Set<string>;
  /**
   * The served placements (on programmed listeners), each with its listener's origin. A governed
   * placement is replaced in this array by a copy whose route carries `rateLimit` (routes and
   * placements are shared: neither is written into).
   */
  placements: readonly Placement[];
  /** Puts `placement` at `i` of the served placements (`placements` itself is not written: the translator's memo keeps it). */
  replace(i: number, placement: Placement): void;
  /** A served placement's listener (by scope name) as an origin (asked only of placements a policy may govern). */
  listenerOrigin: (scope: string) => Origin;
  controllerName: string;
  /** The translation's index: a Translator's memo keeps each governed route's copy (structural sharing). */
  index: InputIndex;
}

export interface RateLimitTranslation {
  /** The policies the placements' routes reference, keyed by IR name; empty when none. */
  rateLimits: Record<string, RateLimitPolicy>;
  statuses: ObjectStatus[];
  /** Problems with objects that carry no status of their own (Ingress annotations, foreign kinds). */
  problems: string[];
}

interface TargetRef {
  group: string;
  kind: string;
  namespace: string;
  name: string;
  sectionName?: string;
}

interface Ancestor {
  ref: TargetRef;
  /** Set when the target cannot be used: TargetNotFound, Invalid or Conflicted. */
  problem: { reason: string; message: string } | null;
  /** `Kind/ns/name/sectionName` once accepted: what routes are matched against. */
  key: string;
  /** Names of the routes it governs, and of those a more specific policy governs instead. */
  governed: Set<string>;
  overridden: Set<string>;
}

interface PolicyState {
  obj: RateLimitPolicyObject;
  ir: RateLimitPolicy | null;
  invalid: string | null;
  ancestors: Ancestor[];
}

export function translateRateLimits(input: RateLimitInput): RateLimitTranslation {
  const { snapshot } = input;
  const problems: string[] = [];
  const policies: PolicyState[] = [];
  for (const obj of [...snapshot.rateLimitPolicies].sort(olderFirst)) {
    const group = String(obj.apiVersion ?? '').split('/')[0];
    if (group !== RATE_LIMIT_GROUP) {
      problems.push(`RateLimitPolicy ${namespacedName(obj)}: apiVersion ${obj.apiVersion} is not Sluice's (${RATE_LIMIT_GROUP}/v1alpha1); ignored`);
      continue;
    }
    policies.push(readPolicy(obj, input));
  }

  // Conflicts: the first (oldest) valid policy naming a target keeps it.
  const claims = new Map<string, { policy: PolicyState; ancestor: Ancestor }>();
  for (const policy of policies) {
    for (const ancestor of policy.ancestors) {
      if (ancestor.problem) continue;
      const holder = claims.get(ancestor.key);
      if (holder) {
        ancestor.problem = {
          reason: 'Conflicted',
          message: `RateLimitPolicy ${namespacedName(holder.policy.obj)} already targets ${describeRef(ancestor.ref)} (older policies take precedence)`,
        };
        continue;
      }
      claims.set(ancestor.key, { policy, ancestor });
    }
  }

  const ingressPolicies = readIngressAnnotations(snapshot, input.placements, problems);
  const rateLimits: Record<string, RateLimitPolicy> = {};
  const governedBy = (placement: Placement, listener: Origin): RateLimitPolicy | null => {
    const { route } = placement;
    if (route.origin.kind === 'Ingress') return ingressPolicies.get(`${route.origin.namespace}/${route.origin.name}`) ?? null;
    let winner: RateLimitPolicy | null = null;
    for (const key of candidateKeys(route.origin, listener)) {
      const claim = claims.get(key);
      if (!claim) continue;
      if (winner === null) {
        winner = claim.policy.ir!;
        claim.ancestor.governed.add(route.name);
      } else claim.ancestor.overridden.add(route.name);
    }
    return winner;
  };
  // Nothing to attach (the usual case): no walk over every placement.
  const { placements } = input;
  for (let i = 0; i < (claims.size > 0 || ingressPolicies.size > 0 ? placements.length : 0); i++) {
    const placement = placements[i]!;
    const policy = governedBy(placement, input.listenerOrigin(placement.scope));
    if (policy === null) continue;
    rateLimits[policy.name] = policy;
    const route = placement.route;
    // A copy of the placement: placements may be the previous translation's (memo.ts).
    input.replace(i, { ...placement, route: input.index.perObject(route, `rateLimit ${policy.name}`, () => ({ ...route, rateLimit: { policy: policy.name, partition: route.source } })) });
  }
  const sorted = Object.fromEntries(Object.keys(rateLimits).sort().map((n) => [n, rateLimits[n]!]));
  return { rateLimits: sorted, statuses: policies.map((p) => policyStatus(p, input.controllerName)), problems };
}

/** Target keys (`Kind/ns/name/sectionName`) that could govern a route rule placed on a listener, most specific first. */
function candidateKeys(route: Origin, listener: Origin): string[] {
  const keys: string[] = [];
  if (route.kind === 'HTTPRoute') {
    if (route.sectionName !== undefined) keys.push(`HTTPRoute/${route.namespace}/${route.name}/${route.sectionName}`);
    keys.push(`HTTPRoute/${route.namespace}/${route.name}/`);
  }
  if (listener.kind === 'Gateway') keys.push(`Gateway/${listener.namespace}/${listener.name}/${listener.sectionName}`, `Gateway/${listener.namespace}/${listener.name}/`);
  // A ListenerSet listener is not a section of its Gateway: only policies on the whole Gateway reach it.
  if (listener.kind === 'ListenerSet' && listener.parent) keys.push(`Gateway/${listener.parent.namespace}/${listener.parent.name}/`);
  return keys;
}

function readPolicy(obj: RateLimitPolicyObject, input: RateLimitInput): PolicyState {
  const ns = obj.metadata.namespace ?? 'default';
  const spec = obj.spec;
  const compiled = compilePolicy(obj);
  const invalid = 'error' in compiled ? compiled.error : null;
  const seen = new Set<string>();
  const ancestors: Ancestor[] = [];
  // A targetRef has no namespace field: a policy targets objects of its own namespace.
  for (const { group, kind, name, sectionName } of spec.targetRefs) {
    const ref: TargetRef = { group, kind, namespace: ns, name, ...(sectionName !== undefined ? { sectionName } : {}) };
    const key = `${ref.kind}/${ns}/${ref.name}/${ref.sectionName ?? ''}`;
    if (seen.has(key)) continue; // the same target listed twice: one ancestor
    seen.add(key);
    const problem = invalid ? { reason: 'Invalid', message: invalid } : resolveTarget(ref, input);
    ancestors.push({ ref, problem, key, governed: new Set(), overridden: new Set() });
  }
  return { obj, ir: 'error' in compiled ? null : compiled.policy, invalid, ancestors };
}

function resolveTarget(ref: TargetRef, input: RateLimitInput): Ancestor['problem'] {
  const what = describeRef(ref);
  // The CRD's CEL rule admits Gateway and HTTPRoute of gateway.networking.k8s.io only.
  if (ref.kind === 'Gateway') {
    const gateway = input.gateways.find((g) => g.key === `${ref.namespace}/${ref.name}`);
    if (!gateway) return { reason: 'TargetNotFound', message: `${what} does not exist or is not served by this controller` };
    if (ref.sectionName !== undefined && !gateway.listeners.some((l) => l.name === ref.sectionName)) {
      return { reason: 'TargetNotFound', message: `${what}: the Gateway has no listener named ${ref.sectionName}` };
    }
    return null;
  }
  const route = input.snapshot.httpRoutes.find((r) => r.metadata.namespace === ref.namespace && r.metadata.name === ref.name);
  if (!route || !input.servedRoutes().has(`${ref.namespace}/${ref.name}`)) {
    return { reason: 'TargetNotFound', message: `${what} does not exist or is not attached to a Gateway this controller serves` };
  }
  if (ref.sectionName !== undefined && !(route.spec?.rules ?? []).some((r) => r.name === ref.sectionName)) {
    return { reason: 'TargetNotFound', message: `${what}: the HTTPRoute has no rule named ${ref.sectionName}` };
  }
  return null;
}

function policyStatus(policy: PolicyState, controllerName: string): ObjectStatus {
  const gen = policy.obj.metadata.generation;
  const ancestors = policy.ancestors.map((a) => {
    const conditions: Condition[] = [];
    if (a.problem) {
      conditions.push(condition('Accepted', false, a.problem.reason, a.problem.message, gen));
      conditions.push(condition('Programmed', false, a.problem.reason, a.problem.message, gen));
    } else {
      conditions.push(condition('Accepted', true, 'Accepted', 'Policy is accepted', gen));
      const governed = a.governed.size;
      const overridden = [...a.overridden].filter((r) => !a.governed.has(r)).length;
      if (governed === 0 && overridden > 0) {
        conditions.push(condition('Programmed', false, 'Overridden', `more specific policies govern all ${overridden} route match(es) of ${describeRef(a.ref)}`, gen));
      } else if (overridden > 0) {
        conditions.push(condition('Programmed', true, 'PartiallyProgrammed', `governs ${governed} route match(es); more specific policies govern ${overridden}`, gen));
      } else {
        conditions.push(condition('Programmed', true, 'Programmed', `governs ${governed} route match(es)`, gen));
      }
    }
    return {
      ancestorRef: { group: a.ref.group, kind: a.ref.kind, namespace: a.ref.namespace, name: a.ref.name, ...(a.ref.sectionName !== undefined ? { sectionName: a.ref.sectionName } : {}) },
      controllerName,
      conditions,
    };
  });
  return { apiVersion: policy.obj.apiVersion, kind: 'RateLimitPolicy', namespace: policy.obj.metadata.namespace, name: policy.obj.metadata.name, status: { ancestors } };
}

// ------------------------------------------------------------------ validation and IR

/** The policy's spec as IR, or what the schema cannot refuse that is wrong with it (see RateLimitSpec). */
export function compilePolicy(obj: KubeObject): { policy: RateLimitPolicy } | { error: string } {
  const spec = obj.spec as RateLimitSpec;
  const key = namespacedName(obj);
  try {
    const raw = [
      ...(spec.local?.rules ?? []).map((rule, i) => ({ scope: 'Local' as const, rule, where: `spec.local.rules[${i}]` })),
      ...(spec.global?.rules ?? []).map((rule, i) => ({ scope: 'Global' as const, rule, where: `spec.global.rules[${i}]` })),
    ];
    const names = new Set<string>();
    const rules = raw.map(({ scope, rule, where }, i) => {
      const name = rule.name ?? (raw.length === 1 ? obj.metadata.name : `${obj.metadata.name}-${i}`);
      if (names.has(name)) throw new Error(`${where}.name ${name} is used twice`);
      names.add(name);
      return compileRule(rule, scope, name, where);
    });
    const xff = spec.clientIPDetection?.xForwardedFor ?? {};
    const draft = spec.responseHeaders?.draft ?? 'Draft10';
    return {
      policy: {
        name: `ratelimitpolicy/${key}`,
        source: key,
        origin: { kind: 'RateLimitPolicy', namespace: obj.metadata.namespace ?? '', name: obj.metadata.name },
        rules,
        failureMode: spec.global?.failureMode ?? 'FailOpen',
        clientIP: { trustedHops: xff.numTrustedHops ?? 0, trustedProxies: (xff.trustedCIDRs ?? []).map(canonicalCidr) },
        responseHeaders: { draft10: draft === 'Draft10', legacy: spec.responseHeaders?.legacyXRateLimit === true },
      },
    };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function compileRule(rule: RuleSpec, scope: 'Local' | 'Global', name: string, where: string): RateLimitRule {
  const { requests, unit } = rule.limit;
  const selectors = (rule.clientSelectors ?? []).flatMap((sel, i) => compileSelector(sel, `${where}.clientSelectors[${i}]`));
  const content = { scope, selectors, requests, unitSeconds: UNIT_SECONDS[unit], burst: rule.burst ?? requests, shared: rule.shared === true };
  return {
    name,
    ...content,
    shadowMode: rule.shadowMode === true,
    hash: createHash('sha256').update(stableJson(content)).digest('hex').slice(0, 12),
  };
}

function compileSelector(sel: SelectorSpec, where: string): RateLimitSelector[] {
  const out: RateLimitSelector[] = [];
  for (const [j, h] of (sel.headers ?? []).entries()) {
    const name = h.name.toLowerCase();
    const type = h.type ?? 'Exact';
    if (type === 'Distinct') {
      out.push({ type: 'Header', name, match: 'Distinct', invert: false });
      continue;
    }
    // The CRD's CEL rule: Exact and RegularExpression carry a value.
    const value = h.value!;
    if (type === 'RegularExpression') checkRegex(value, `${where}.headers[${j}]`);
    out.push({ type: 'Header', name, match: type, value, invert: h.invert === true });
  }
  if (sel.methods !== undefined) out.push({ type: 'Method', methods: [...sel.methods] });
  if (sel.path !== undefined) {
    const type = sel.path.type ?? 'PathPrefix';
    const value = sel.path.value;
    if (type === 'RegularExpression') checkRegex(value, `${where}.path`);
    else if (!value.startsWith('/')) throw new Error(`${where}.path.value must start with /`);
    out.push({ type: 'Path', match: type, value, invert: sel.path.invert === true });
  }
  if (sel.sourceCIDR !== undefined) out.push({ type: 'SourceCIDR', match: sel.sourceCIDR.type ?? 'Exact', cidrs: [canonicalCidr(sel.sourceCIDR.value)] });
  return out;
}

function checkRegex(pattern: string, where: string): void {
  try {
    new RegExp(pattern);
  } catch (err) {
    throw new Error(`${where}: invalid regular expression ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
}

/** A CIDR the schema's isCIDR() admitted, in one spelling: address lower case, prefix length without leading zeros. */
function canonicalCidr(cidr: string): string {
  const slash = cidr.indexOf('/');
  return `${cidr.slice(0, slash).toLowerCase()}/${Number(cidr.slice(slash + 1))}`;
}

// ------------------------------------------------------------------ the Ingress annotation

const ANNOTATION_UNITS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hour: 3600, d: 86400, day: 86400 };

/**
 * `sluice.dev/rate-limit: "100/minute"` on a served Ingress: one bucket per client IP (peer
 * address) and per Ingress, local unless `sluice.dev/rate-limit-scope: Global`. Keyed by the
 * Ingress `<ns>/<name>` (the routes' source).
 */
function readIngressAnnotations(snapshot: InputSnapshot, placements: RateLimitInput['placements'], problems: string[]): Map<string, RateLimitPolicy> {
  if (!snapshot.ingresses.some((ing) => ing.metadata.annotations?.[RATE_LIMIT_ANNOTATION] !== undefined)) return new Map(); // no walk over every placement
  const served = new Set<string>();
  for (const placement of placements) if (placement.route.origin.kind === 'Ingress') served.add(placement.route.source);
  const out = new Map<string, RateLimitPolicy>();
  for (const ing of snapshot.ingresses) {
    const key = namespacedName(ing);
    const value = ing.metadata.annotations?.[RATE_LIMIT_ANNOTATION];
    if (value === undefined || !served.has(key)) continue;
    const m = /^\s*(\d+)\s*\/\s*([a-z]+?)s?\s*$/i.exec(value);
    const unitSeconds = m ? ANNOTATION_UNITS[m[2]!.toLowerCase()] : undefined;
    const requests = m ? Number(m[1]) : 0;
    if (!m || unitSeconds === undefined || requests < 1) {
      problems.push(`Ingress ${key}: ${RATE_LIMIT_ANNOTATION} ${JSON.stringify(value)} is not a limit such as "100/minute" (second, minute, hour, day); no limit applied`);
      continue;
    }
    const scopeValue = ing.metadata.annotations?.[RATE_LIMIT_SCOPE_ANNOTATION] ?? 'Local';
    if (scopeValue !== 'Local' && scopeValue !== 'Global') {
      problems.push(`Ingress ${key}: ${RATE_LIMIT_SCOPE_ANNOTATION} ${JSON.stringify(scopeValue)}: Local or Global; using Local`);
    }
    const content = {
      scope: (scopeValue === 'Global' ? 'Global' : 'Local') as RateLimitRule['scope'],
      selectors: [{ type: 'SourceCIDR', match: 'Distinct', cidrs: ['0.0.0.0/0', '::/0'] }] as RateLimitSelector[],
      requests,
      unitSeconds,
      burst: requests,
      shared: false,
    };
    out.set(key, {
      name: `ingress/${key}/rate-limit`,
      source: key,
      origin: { kind: 'Ingress', namespace: ing.metadata.namespace ?? '', name: ing.metadata.name },
      rules: [{ name: ing.metadata.name, ...content, shadowMode: false, hash: createHash('sha256').update(stableJson(content)).digest('hex').slice(0, 12) }],
      failureMode: 'FailOpen',
      clientIP: { trustedHops: 0, trustedProxies: [] },
      responseHeaders: { draft10: true, legacy: false },
    });
  }
  return out;
}

// ------------------------------------------------------------------ helpers

function describeRef(ref: TargetRef): string {
  return `${ref.kind} ${ref.namespace}/${ref.name}${ref.sectionName !== undefined ? ` sectionName ${ref.sectionName}` : ''}`;
}

function olderFirst(a: KubeObject, b: KubeObject): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  return ta < tb ? -1 : ta > tb ? 1 : namespacedName(a).localeCompare(namespacedName(b));
}
