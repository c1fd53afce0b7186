// Fields Sluice does not read, on objects whose own status cannot say so, each said once per object,
// naming it:
// - undeclared fields: in Kubernetes mode the API server validates with the CRDs installed, which
//   may be another channel or release than the v1.6.1 standard channel Sluice reads (the
//   experimental Gateway `spec.defaultScope`, for example). Routes say it in their status instead
//   (Accepted=False UnsupportedValue, attachment.ts); standalone validation refuses such objects.
// - Gateway `spec.infrastructure` labels and annotations (Extended): Sluice provisions no
//   per-Gateway Service or Deployment to carry them (feature GatewayInfrastructurePropagation is not
//   claimed); the Gateway is served, the fields have no effect.
import type { Problem } from '../problems.ts';
import { undeclaredFields } from '../schema/validate.ts';
import type { HTTPHeaderModifier, ParentRef } from '../schema/kinds.ts';
import type { InputIndex } from './index-inputs.ts';
import { GATEWAY_GROUP, namespacedName, type GatewayObject, type GRPCRouteObject, type HTTPRouteObject, type KubeObject, type ListenerSetObject, type ReferenceGrantObject } from '../sources/objects.ts';
import { foreignAnnotationsText, meantKind } from '../sources/ignored-kinds.ts';

export function ignoredFieldProblems(objects: KubeObject[], gateways: GatewayObject[]): Problem[] {
  const out: Problem[] = [];
  const report = (obj: KubeObject, fields: string[], why: string) => {
    const object = `${obj.kind} ${namespacedName(obj)}`;
    out.push({ code: 'SLU_TRANSLATION', message: `${object}: ${fields.join(', ')} ${why}; ignored`, object });
  };
  for (const obj of [...gateways, ...objects]) {
    const fields = undeclaredFields(obj);
    if (fields.length > 0) report(obj, fields, 'not read by Sluice (not in the Gateway API v1.6.1 standard channel)');
    // A Passthrough listener hands the client's TLS to the backend: its certificates are never used.
    if (obj.kind !== 'Gateway' && obj.kind !== 'ListenerSet') continue;
    const listeners = (obj as GatewayObject | ListenerSetObject).spec.listeners ?? [];
    const certified = listeners.flatMap((l, i) => (l.tls?.mode === 'Passthrough' && (l.tls.certificateRefs ?? []).length > 0 ? [`spec.listeners[${i}].tls.certificateRefs`] : []));
    if (certified.length > 0) report(obj, certified, 'not used: a TLS Passthrough listener never ends TLS (the backend does)');
  }
  const setsByGateway = new Map<string, ListenerSetObject[]>();
  for (const obj of objects) {
    if (obj.kind !== 'ListenerSet') continue;
    const set = obj as ListenerSetObject;
    const key = `${set.spec.parentRef?.namespace ?? set.metadata.namespace}/${set.spec.parentRef?.name}`;
    setsByGateway.set(key, [...(setsByGateway.get(key) ?? []), set]);
  }
  for (const gateway of gateways) {
    // tls.frontend.perPort for a port where no listener ends TLS (HTTPS, TLS Terminate): it validates nothing.
    const perPort = gateway.spec.tls?.frontend?.perPort ?? [];
    if (perPort.length > 0) {
      const listeners = [...gateway.spec.listeners, ...(setsByGateway.get(namespacedName(gateway)) ?? []).flatMap((set) => set.spec.listeners ?? [])];
      const terminating = new Set(listeners.filter((l) => l.protocol === 'HTTPS' || (l.protocol === 'TLS' && l.tls?.mode !== 'Passthrough')).map((l) => Number(l.port)));
      const idle = perPort.flatMap((p, i) => (terminating.has(Number(p.port)) ? [] : [`spec.tls.frontend.perPort[${i}] (port ${p.port})`]));
      if (idle.length > 0) report(gateway, idle, 'applies to no listener: no HTTPS or TLS Terminate listener of the Gateway or its ListenerSets is on that port');
    }
    const infrastructure = gateway.spec.infrastructure;
    const fields = (['labels', 'annotations'] as const).filter((f) => Object.keys(infrastructure?.[f] ?? {}).length > 0).map((f) => `spec.infrastructure.${f}`);
    if (fields.length > 0) report(gateway, fields, 'not propagated: Sluice provisions no per-Gateway resources to carry them');
  }
  return out;
}

/**
 * Other implementations' annotations (ignored-kinds.ts ANNOTATION_OWNERS) on our Gateways and on the
 * ListenerSets and routes that have a parent of ours (`ours`, the objects with a status of ours): Kong's
 * examples put `konghq.com/plugins: key-auth` and `konghq.com/strip-path` on HTTPRoutes, Istio's
 * `networking.istio.io/service-type` on Gateways. Sluice reads none of them, so the route is served
 * without what they ask for (without the authentication a key-auth plugin would add); one line per object.
 */
export function foreignAnnotationProblems(gateways: readonly KubeObject[], others: readonly (readonly KubeObject[])[], ours: readonly { kind: string; namespace?: string; name: string }[], index: InputIndex): Problem[] {
  const found: [KubeObject, string][] = [];
  for (const list of [gateways, ...others]) {
    for (let i = 0; i < list.length; i++) {
      const obj = list[i]!;
      // Once per object (the memo keeps an unchanged object's answer across translations).
      const text = index.perObject(obj, 'foreign annotations', foreignAnnotationsOf);
      if (text !== null) found.push([obj, text]);
    }
  }
  return linesForOurs(found, ours, gateways, '; ignored');
}

function foreignAnnotationsOf(obj: KubeObject): string | null {
  return foreignAnnotationsText(obj.metadata.annotations);
}

/** One SLU_TRANSLATION line per found object that is one of `gateways` or has a status in `ours`. */
function linesForOurs(found: [KubeObject, string][], ours: readonly { kind: string; namespace?: string; name: string }[], gateways: readonly KubeObject[], tail: string): Problem[] {
  if (found.length === 0) return [];
  const keys = new Set(ours.map((s) => `${s.kind}/${s.namespace}/${s.name}`));
  const out: Problem[] = [];
  for (const [obj, text] of found) {
    if (!gateways.includes(obj) && !keys.has(`${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`)) continue;
    const object = `${obj.kind} ${namespacedName(obj)}`;
    out.push({ code: 'SLU_TRANSLATION', message: `${object}: ${text}${tail}`, object });
  }
  return out;
}

/** An NGINX variable ($remote_addr, ${request_id}) or an Envoy command operator (%DOWNSTREAM_REMOTE_ADDRESS%, %REQ(x-id)%). */
const VARIABLE = /\$\{?[a-z_][a-z0-9_]*\}?|%[A-Z][A-Z0-9_]*(\([^)]*\))?%/;

type ModifierFilters = readonly { requestHeaderModifier?: HTTPHeaderModifier; responseHeaderModifier?: HTTPHeaderModifier }[] | undefined;

/**
 * The line's text for a route whose header modifier values read as variables, or that matches a
 * header whose name has `_` (the front door refuses a request carrying one: the match can never
 * match, and before the refusal it did), else null.
 */
function variableHeaderText(route: HTTPRouteObject | GRPCRouteObject): string | null {
  let named: string[] | undefined;
  let underscored: string[] | undefined;
  const rules = route.spec?.rules ?? [];
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    named = variableHeaders(rule.filters, named);
    const refs = rule.backendRefs ?? [];
    for (let j = 0; j < refs.length; j++) named = variableHeaders(refs[j]!.filters, named);
    const matches = rule.matches ?? [];
    for (let j = 0; j < matches.length; j++) {
      for (const h of matches[j]!.headers ?? []) if (String(h.name).includes('_')) (underscored ??= []).push(`rule ${i} match ${j} header ${h.name}`);
    }
  }
  const lines: string[] = [];
  if (named !== undefined) lines.push(`header modifier values ${named.join(', ')} are sent as written: the Gateway API, and Sluice, expand no variables (NGINX expands $name, Envoy %NAME%)`);
  if (underscored !== undefined) lines.push(`${underscored.join(', ')} can never match: the front door refuses a request with '_' in a field name (400 underscore_in_header, as Envoy Gateway's default withUnderscoresAction RejectRequest) unless the dataplane runs with --headers-with-underscores allow`);
  return lines.length === 0 ? null : lines.join('; ');
}

/** `named` with the `name: value` of each set/add header of `filters` whose value reads as a variable. */
function variableHeaders(filters: ModifierFilters, named: string[] | undefined): string[] | undefined {
  if (filters === undefined) return named;
  for (let f = 0; f < filters.length; f++) {
    const filter = filters[f]!;
    for (const modifier of [filter.requestHeaderModifier, filter.responseHeaderModifier]) {
      if (modifier === undefined) continue;
      for (const list of [modifier.set, modifier.add]) {
        for (const h of list ?? []) if (VARIABLE.test(String(h.value))) (named ??= []).push(`${h.name}: ${h.value}`);
      }
    }
  }
  return named;
}

/**
 * Header modifier values that read as another proxy's variable: NGINX Gateway Fabric's examples set
 * `X-Client-IP: $remote_addr`, which NGINX expands; the Gateway API says a value is sent as written,
 * as Sluice sends it, so the backend gets the text `$remote_addr`. Said once per route of ours (HTTPRoute,
 * GRPCRoute; rule and backendRef filters), naming the headers.
 */
export function variableHeaderValueProblems(routes: readonly (HTTPRouteObject | GRPCRouteObject)[], ours: readonly { kind: string; namespace?: string; name: string }[], index: InputIndex): Problem[] {
  const found: [KubeObject, string][] = [];
  // Plain loops: this runs on every translation, over every route (10 000 at the scale targets).
  for (let r = 0; r < routes.length; r++) {
    const route = routes[r]!;
    const text = index.perObject(route, 'variable header values', variableHeaderText);
    if (text !== null) found.push([route, text]);
  }
  return linesForOurs(found, ours, [], '');
}

/** What a ReferenceGrant can let Sluice read across namespaces: who refers (Gateway API group), and to what (core group). */
const GRANT_FROM = ['Gateway', 'ListenerSet', 'HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute', 'UDPRoute'];
const GRANT_TO = ['Secret', 'Service', 'ConfigMap'];

/**
 * ReferenceGrant entries that can never match a reference Sluice makes because of a slip (a kind in
 * the wrong case, `httproute`; a Gateway API kind under the core group): a grant has no status, so
 * without this line the reference it was written for stays RefNotPermitted with no hint why.
 */
export function referenceGrantProblems(grants: ReferenceGrantObject[]): Problem[] {
  const out: Problem[] = [];
  for (const grant of grants) {
    const object = `ReferenceGrant ${namespacedName(grant)}`;
    const check = (field: string, group: string, kind: string, wantGroup: string, kinds: string[]) => {
      if (group === wantGroup && kinds.includes(kind)) return;
      // Another kind altogether is another implementation's business: only slips are said.
      const meant = kinds.includes(kind) ? kind : meantKind(kind, kinds);
      if (meant === undefined) return;
      const fix = `group: ${JSON.stringify(wantGroup)}, kind: ${meant}`;
      out.push({ code: 'SLU_TRANSLATION', object, message: `${object}: ${field} (group ${JSON.stringify(group)}, kind ${kind}) matches no reference: kinds are case-sensitive and each has one group; did you mean ${fix}?` });
    };
    (grant.spec.from ?? []).forEach((f, i) => check(`spec.from[${i}]`, f?.group ?? '', f?.kind ?? '', GATEWAY_GROUP, GRANT_FROM));
    (grant.spec.to ?? []).forEach((t, i) => check(`spec.to[${i}]`, t?.group ?? '', t?.kind ?? '', '', GRANT_TO));
  }
  return out;
}

/**
 * Routes whose parentRefs name Services only (GAMMA: a mesh's routes). Not Sluice's to answer in
 * status (a mesh implementation writes their parents), but not passed over in silence either: one
 * problem each, so a cluster without a mesh learns why such a route does nothing. (A Service parent
 * next to a Gateway of Sluice's gets a parent entry instead, attachment.ts.)
 */
export function meshRouteProblems(routes: (KubeObject & { spec: { parentRefs?: ParentRef[] } })[], index: InputIndex): Problem[] {
  const out: Problem[] = [];
  // Only a route with a Service parent can be one: the rest (every route of a gateway) are passed
  // with a look at their parentRefs' kinds, nothing allocated or looked up.
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i]!;
    const refs = route.spec.parentRefs;
    if (refs === undefined || !refs.some(isServiceRef)) continue;
    const problem = index.perObject(route, 'mesh route', meshRouteProblem);
    if (problem) out.push(problem);
  }
  return out;
}

function isServiceRef(ref: ParentRef): boolean {
  return ref?.kind === 'Service';
}

function meshRouteProblem(route: KubeObject & { spec: { parentRefs?: ParentRef[] } }): Problem | null {
  const refs = route.spec.parentRefs ?? [];
  const gatewayParent = refs.some((r) => (r.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && ['Gateway', 'ListenerSet'].includes(r.kind ?? 'Gateway'));
  if (gatewayParent || !refs.some((r) => r.kind === 'Service')) return null;
  const object = `${route.kind} ${namespacedName(route)}`;
  return { code: 'SLU_TRANSLATION', message: `${object}: its parentRefs are Services (GAMMA, mesh), which Sluice does not serve: it is a gateway, not a mesh; left to a mesh implementation`, object };
}
