// Ingress (networking.k8s.io/v1): one more producer of the same IR. Every
// Ingress of a served class is merged onto one synthetic Gateway, `ingress`,
// with an HTTP listener on port 80 and, when any Ingress has TLS, an HTTPS
// listener on 443; its rules become virtual hosts and routes there.
//
// Semantics follow the Kubernetes specification where Cilium differs:
//  - `*.foo.com` matches exactly one label (not `a.b.foo.com`);
//  - within a host, its own paths come first (Exact, then ImplementationSpecific
//    regex, then Prefix, longer first), then the paths of host-less rules, then
//    the Ingress's defaultBackend: a host that matches but whose paths do not
//    falls through to the defaultBackend (Cilium answers 404 there).
import type { Backend, Origin, Route, RouteAction, TlsCertificate } from '../../ir/types.ts';
import type { Problem } from '../problems.ts';
import { namespacedName, type IngressObject, type KubeObject } from '../sources/objects.ts';
import type { ObjectStatus } from '../status/conditions.ts';
import { resolveBackendRef } from './backends.ts';
import { parseDurationMs } from './durations.ts';
import { readTlsSecret, type GatewayState, type ListenerState } from './gateway.ts';
import type { Placement } from './httproute.ts';
import type { InputIndex } from './index-inputs.ts';
import type { IngressOptions } from './options.ts';
import { createHash } from 'node:crypto';
import type { IngressBackend, IngressPath, IngressRule, IngressServiceBackend } from '../schema/kinds.ts';
import { RATE_LIMIT_ANNOTATION, RATE_LIMIT_SCOPE_ANNOTATION } from './ratelimit.ts';
import { UPGRADE_TYPES_ANNOTATION } from './upgrades.ts';
import { annotationOwner } from '../sources/ignored-kinds.ts';

export const INGRESS_GATEWAY_KEY = 'ingress';
const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class';
const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';
const FORCE_HTTPS = 'ingress.cilium.io/force-https';
const REQUEST_TIMEOUT = 'ingress.cilium.io/request-timeout';
/** Cilium annotations about its own load-balancer Service or Envoy: they have no meaning for Sluice. */
const NOT_APPLICABLE = /^ingress\.cilium\.io\/(loadbalancer-mode|service-type|service-external-traffic-policy|insecure-node-port|secure-node-port|host-listener-port|loadbalancer-class|tls-passthrough)$/;
/** Annotations Sluice reads on an Ingress (besides the class ones). */
const READ_ANNOTATIONS = new Set([FORCE_HTTPS, REQUEST_TIMEOUT, RATE_LIMIT_ANNOTATION, RATE_LIMIT_SCOPE_ANNOTATION, UPGRADE_TYPES_ANNOTATION]);

/**
 * One problem line for an Ingress annotation that looks meant for an ingress controller and that
 * Sluice does not read: Cilium's (`ingress.cilium.io/`) and Sluice's own (`sluice.dev/`) not in
 * the tables above — a typo or a feature Sluice lacks — and another controller's (a prefix naming
 * ingress, e.g. `nginx.ingress.kubernetes.io/`, or a known one's, e.g. Kong's `konghq.com/`). Ignoring them in silence would leave a migrated
 * Ingress behaving differently with no word why. Other annotations (kubectl's, tools') are not ours to judge.
 */
function annotationProblem(key: string, annotation: string): string | null {
  if (READ_ANNOTATIONS.has(annotation) || annotation === LEGACY_CLASS_ANNOTATION) return null;
  if (NOT_APPLICABLE.test(annotation)) return `Ingress ${key}: annotation ${annotation} does not apply to Sluice; ignored`;
  const slash = annotation.indexOf('/');
  const prefix = slash < 0 ? '' : annotation.slice(0, slash);
  if (prefix === 'ingress.cilium.io' || prefix === 'sluice.dev') {
    return `Ingress ${key}: annotation ${annotation} is not one Sluice implements (it reads ${[...READ_ANNOTATIONS].join(', ')}); ignored`;
  }
  if (prefix.includes('ingress')) return `Ingress ${key}: annotation ${annotation} belongs to another ingress controller and is not read by Sluice; ignored`;
  // Controllers whose prefix does not say ingress: Kong's konghq.com/strip-path, Contour's projectcontour.io/, NGINX's nginx.org/.
  const owner = annotationOwner(annotation);
  if (owner !== undefined) return `Ingress ${key}: annotation ${annotation} is ${owner}'s and is not read by Sluice; ignored`;
  return null;
}

export interface IngressTranslation {
  /** The synthetic Gateway that serves Ingresses, or null when none is ours. */
  gateway: GatewayState | null;
  placements: Placement[];
  backends: Backend[];
  statuses: ObjectStatus[];
  problems: string[];
}

export interface ServedIngresses {
  /** Ingresses of a served class: legacy annotation first (as Cilium), then spec.ingressClassName, then the default class. */
  ingresses: IngressObject[];
  /**
   * Whether Ingress listeners exist: some Ingress is ours, or an IngressClass of ours does (as a
   * cluster with Cilium's ingress controller keeps its load balancer while it has no Ingress).
   */
  listening: boolean;
  /** Ingresses that name no class while no IngressClass is marked default: nobody serves them, and the user should hear why. */
  problems: Problem[];
}

export function servedIngresses(index: InputIndex, options: IngressOptions, standalone = false): ServedIngresses {
  const classes = index.snapshot.ingressClasses;
  const served = new Set(options.classNames);
  for (const c of classes) if (c.spec?.controller !== undefined && options.controllers.includes(c.spec.controller)) served.add(c.metadata.name);
  const defaultIsOurs = classes.some((c) => served.has(c.metadata.name) && c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
  const anyDefault = classes.some((c) => c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
  const problems: Problem[] = [];
  // No IngressClass parameters are read (Cilium reads none either): said, not passed over.
  for (const c of classes) {
    const p = c.spec?.parameters;
    if (!p || !served.has(c.metadata.name)) continue;
    const object = `IngressClass ${c.metadata.name}`;
    problems.push({ code: 'SLU_TRANSLATION', object, message: `${object}: spec.parameters (${p.apiGroup ? `${p.apiGroup}/` : ''}${p.kind} ${p.name}) not read: Sluice takes no IngressClass parameters; its Ingresses are served as if it had none; ignored` });
  }
  const ingresses = index.snapshot.ingresses.filter((ing) => {
    const cls = ing.metadata.annotations?.[LEGACY_CLASS_ANNOTATION] ?? ing.spec?.ingressClassName;
    if (cls === undefined && !anyDefault) problems.push(classlessProblem(ing, [...new Set([...options.classNames, ...served])]));
    // Standalone, the folder is all there is: an Ingress of another class (the Kubernetes docs'
    // `nginx-example`) is nobody's, and nothing said so. In a cluster its controller may serve it.
    if (cls !== undefined && standalone && !served.has(cls)) problems.push(otherClassProblem(ing, cls, classes.find((c) => c.metadata.name === cls)?.spec?.controller, [...new Set([...options.classNames, ...served])]));
    return cls === undefined ? defaultIsOurs : served.has(cls);
  });
  return { ingresses, listening: ingresses.length > 0 || classes.some((c) => served.has(c.metadata.name)), problems };
}

/** Another default class would own a class-less Ingress; with none, nobody does. */
function classlessProblem(ing: KubeObject, servedClasses: string[]): Problem {
  const object = `Ingress ${namespacedName(ing)}`;
  const choice = servedClasses.length > 0 ? `set spec.ingressClassName: ${servedClasses[0]}` : 'set spec.ingressClassName to a class Sluice serves (--ingress-classes)';
  return {
    code: 'SLU_INGRESS_NO_CLASS',
    object,
    message: `${object} names no class and no IngressClass is marked default, so no controller serves it; ${choice} (or mark an IngressClass of Sluice's default with ${DEFAULT_CLASS_ANNOTATION}: "true")`,
  };
}

/** Standalone: an Ingress whose class Sluice does not serve, which nothing else reading the folder will. */
function otherClassProblem(ing: KubeObject, cls: string, controller: string | undefined, servedClasses: string[]): Problem {
  const object = `Ingress ${namespacedName(ing)}`;
  const whose = controller === undefined ? `names no IngressClass Sluice serves` : `is IngressClass ${cls} of controller ${controller}, not Sluice's`;
  const choice = servedClasses.length > 0 ? `set spec.ingressClassName: ${servedClasses[0]}` : 'set spec.ingressClassName to a class Sluice serves';
  return {
    code: 'SLU_TRANSLATION',
    object,
    message: `${object}: its class ${cls} ${whose}, and nothing else reads this folder, so it is not served; list ${cls} in --ingress-classes or ${choice}`,
  };
}

export function translateIngresses(served: ServedIngresses, address: string | null, index: InputIndex, options: IngressOptions): IngressTranslation {
  const out: IngressTranslation = { gateway: null, placements: [], backends: [], statuses: [], problems: [] };
  if (!served.listening) return out;
  const ingresses = served.ingresses;
  const sorted = [...ingresses].sort(
    (a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || namespacedName(a).localeCompare(namespacedName(b)),
  );
  const gateway: GatewayState = {
    obj: { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: INGRESS_GATEWAY_KEY } },
    key: INGRESS_GATEWAY_KEY,
    generation: undefined,
    address,
    addresses: address ? [address] : [],
    unassigned: null,
    accepted: address ? { ok: true, reason: 'Accepted', message: 'Ingress listeners' } : { ok: false, reason: 'AddressNotAssigned', message: 'no address' },
    listeners: [],
    listenerSets: [],
  };
  const http = syntheticListener(gateway, 'http', 80, 'HTTP');
  const https = syntheticListener(gateway, 'https', 443, 'HTTPS');
  gateway.listeners = [http];
  out.gateway = gateway;

  // Hosts every Ingress serves, for the host-less rules and defaultBackends that apply to them.
  const allHosts = new Set<string>(['*']);
  for (const ing of sorted) for (const rule of ing.spec?.rules ?? []) if (rule?.host) allHosts.add(String(rule.host).toLowerCase());

  /** Redirects of TLS hosts without a secretName: placed when some certificate serves the HTTPS listener. */
  const certlessRedirects: (() => void)[] = [];
  for (const ing of sorted) {
    const ns = ing.metadata.namespace!;
    const key = namespacedName(ing);
    const annotations = ing.metadata.annotations ?? {};
    for (const a of Object.keys(annotations)) {
      const problem = annotationProblem(key, a);
      if (problem) out.problems.push(problem);
    }
    const timeoutMs = annotations[REQUEST_TIMEOUT] !== undefined ? parseTimeout(annotations[REQUEST_TIMEOUT], key, out.problems) : undefined;
    const ordering = (tier: number, ruleIndex: number, matchIndex: number) => ({
      tier,
      creationTimestamp: ing.metadata.creationTimestamp ?? '',
      source: key,
      ruleIndex,
      matchIndex,
    });
    const place = (listener: ListenerState, hostname: string, route: Route, order: Placement['order']) =>
      out.placements.push({ scope: listener.scopeName, hostname, route, order });

    // TLS: certificates chosen by SNI; hosts listed here get the HTTPS redirect on port 80 — those
    // of an entry whose Secret loads, and those of an entry without secretName when some certificate
    // serves the HTTPS listener. Not those of an entry whose Secret does not load: a redirect to a
    // port that cannot serve them (no listener at all, or another host's certificate) would break
    // the host that plain HTTP still serves.
    const tlsHosts = new Set<string>();
    const certlessHosts = new Set<string>();
    (ing.spec?.tls ?? []).forEach((tls, i) => {
      const hosts: string[] = (tls?.hosts ?? []).map((h) => String(h).toLowerCase());
      if (!tls?.secretName) {
        for (const h of hosts) certlessHosts.add(h);
        return;
      }
      const secret = index.secret(ns, tls.secretName);
      const pair = secret ? readTlsSecret(secret) : { error: 'not found' };
      if ('error' in pair) {
        const unredirected = hosts.length > 0 ? `; plain HTTP to ${hosts.join(', ')} is not redirected to HTTPS, which has no certificate for ${hosts.length > 1 ? 'them' : 'it'}` : '';
        out.problems.push(`Ingress ${key}: tls[${i}] Secret ${ns}/${tls.secretName}: ${pair.error}${unredirected}`);
        return;
      }
      for (const h of hosts) tlsHosts.add(h);
      https.certificates.push(certificate(`${https.scopeName}/certificate/${key}/${i}`, `secret/${ns}/${tls.secretName}`, hosts, pair));
    });
    const forceHttps = annotations[FORCE_HTTPS] === 'enabled' || (options.enforceHttps && annotations[FORCE_HTTPS] !== 'disabled');

    const routesFor = (rule: IngressRule, ruleIndex: number): { route: Route; matchIndex: number }[] =>
      (rule?.http?.paths ?? []).flatMap((p, j) => {
        const route = ingressRoute(ing, `rule/${ruleIndex}/path/${j}`, p, p?.backend, index, out, timeoutMs);
        return route ? [{ route, matchIndex: j }] : [];
      });

    const rules: IngressRule[] = ing.spec?.rules ?? [];
    const hostless = rules.flatMap((rule, i) => (rule?.host ? [] : routesFor(rule, i).map((r) => ({ ...r, ruleIndex: i }))));
    const ownHosts = new Set<string>(['*']);
    rules.forEach((rule, i) => {
      if (!rule?.host) return;
      const host = String(rule.host).toLowerCase();
      ownHosts.add(host);
      for (const { route, matchIndex } of routesFor(rule, i)) {
        for (const listener of [http, https]) place(listener, host, route, ordering(0, i, matchIndex));
      }
    });
    // Host-less rules apply to every host on the Ingress listeners, after that host's own paths.
    for (const host of allHosts) {
      for (const { route, matchIndex, ruleIndex } of hostless) {
        for (const listener of [http, https]) place(listener, host, route, ordering(host === '*' ? 0 : 1, ruleIndex, matchIndex));
      }
    }
    // defaultBackend: last resort for this Ingress's hosts and for any other host.
    if (ing.spec?.defaultBackend) {
      const route = ingressRoute(ing, 'default-backend', { path: '/', pathType: 'Prefix' }, ing.spec.defaultBackend, index, out, timeoutMs);
      if (route) for (const host of ownHosts) for (const listener of [http, https]) place(listener, host, route, ordering(2, 0, 0));
    }
    // Plain HTTP to a TLS host is redirected to HTTPS before anything else (301, as Cilium's Envoy
    // does); hosts without a secretName once every Ingress's certificates are known.
    const redirect = (host: string) =>
      place(
        http,
        host,
        {
          name: `ingress/${key}/force-https/${host}`,
          source: key,
          origin: ingressOrigin(ing),
          match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
          filters: [],
          action: { type: 'Redirect', scheme: 'https', statusCode: 301 },
        },
        ordering(-1, 0, 0),
      );
    if (forceHttps) {
      for (const host of tlsHosts) redirect(host);
      certlessRedirects.push(() => {
        for (const host of certlessHosts) if (!tlsHosts.has(host)) redirect(host);
      });
    }
    out.statuses.push({
      apiVersion: ing.apiVersion,
      kind: 'Ingress',
      namespace: ns,
      name: ing.metadata.name,
      status: { loadBalancer: { ingress: address ? [{ ip: address }] : [] } },
    });
  }
  if (https.certificates.length > 0) {
    for (const placeRedirects of certlessRedirects) placeRedirects();
    gateway.listeners.push(https);
  } else {
    // A tls entry without secretName borrows the HTTPS listener's other certificates (nginx: its
    // default one); with none, its hosts have no HTTPS at all.
    for (const ing of sorted) {
      (ing.spec?.tls ?? []).forEach((tls, i) => {
        if (tls?.secretName) return;
        const hosts = (tls?.hosts ?? []).join(', ') || 'its hosts';
        out.problems.push(`Ingress ${namespacedName(ing)}: tls[${i}] has no secretName and no other Ingress entry gives the HTTPS listener a certificate, so HTTPS to ${hosts} is not served; name a kubernetes.io/tls Secret in secretName`);
      });
    }
  }
  return out;
}

function syntheticListener(gateway: GatewayState, name: string, port: number, protocol: 'HTTP' | 'HTTPS'): ListenerState {
  return {
    gateway,
    owner: { kind: 'IngressClass', obj: gateway.obj, key: INGRESS_GATEWAY_KEY, namespace: '', generation: undefined },
    name,
    port,
    protocol,
    hostname: null,
    scopeName: `ingress/listener/${name}`,
    supportedKinds: [],
    allowedRoutes: { from: 'None' },
    accepted: { ok: true, reason: 'Accepted', message: 'Ingress listener' },
    conflict: null,
    resolvedRefs: { ok: true, reason: 'ResolvedRefs', message: '' },
    certificates: [],
    singleLabelWildcards: true,
    attachedRoutes: 0,
  };
}

function certificate(name: string, secret: string, hostnames: string[], pair: { cert: string; key: string }): TlsCertificate {
  return {
    name,
    secret,
    hostnames,
    certPem: pair.cert,
    keyPem: pair.key,
    hash: createHash('sha256').update(pair.cert).update(pair.key).digest('hex').slice(0, 16),
  };
}

/** One Ingress path → one IR route. A missing Service answers 503, as it would with no endpoints. */
function ingressRoute(
  ing: IngressObject,
  suffix: string,
  path: Pick<IngressPath, 'path' | 'pathType'> | undefined,
  backend: IngressBackend | undefined,
  index: InputIndex,
  out: IngressTranslation,
  timeoutMs: number | undefined,
): Route | null {
  const key = namespacedName(ing);
  const name = `ingress/${key}/${suffix}`;
  const type = path?.pathType ?? 'ImplementationSpecific';
  const value = String(path?.path ?? '/');
  const pathMatch =
    type === 'Exact' ? { type: 'Exact' as const, value } : type === 'Prefix' ? { type: 'PathPrefix' as const, value } : { type: 'RegularExpression' as const, value };
  if (pathMatch.type === 'RegularExpression') {
    try {
      new RegExp(value);
    } catch (err) {
      out.problems.push(`Ingress ${key} ${suffix}: ImplementationSpecific path ${JSON.stringify(value)} is not a valid regular expression (${(err as Error).message}); path skipped`);
      return null;
    }
  }
  let action: RouteAction;
  if (backend?.resource) {
    out.problems.push(`Ingress ${key} ${suffix}: resource backends are not supported; answering 503`);
    action = { type: 'DirectResponse', status: 503 };
  } else {
    const service: Partial<IngressServiceBackend> = backend?.service ?? {};
    const port = service.port?.number ?? servicePortByName(index, ing.metadata.namespace!, service.name ?? '', service.port?.name);
    const resolved = resolveBackendRef({ name: service.name ?? '', port }, ing.metadata.namespace!, index, 'Ingress');
    if ('problem' in resolved) {
      out.problems.push(`Ingress ${key} ${suffix}: ${resolved.problem.message}; answering 503`);
      action = { type: 'DirectResponse', status: 503 };
    } else {
      out.backends.push(resolved.backend);
      action = { type: 'Forward', backends: [{ backend: resolved.backend.name, weight: 1, filters: [] }] };
    }
  }
  return {
    name,
    source: key,
    origin: ingressOrigin(ing),
    match: { path: pathMatch, headers: [], queryParams: [] },
    filters: [],
    action,
    ...(timeoutMs ? { timeouts: { requestMs: timeoutMs } } : {}),
  };
}

function servicePortByName(index: InputIndex, ns: string, service: string, portName: string | undefined): number | undefined {
  if (portName === undefined) return undefined;
  const port = (index.service(ns, service)?.spec?.ports ?? []).find((p) => p?.name === portName);
  return port?.port;
}

/** Cilium's request-timeout annotation: a duration such as `10s`, or a bare number of seconds. */
function parseTimeout(value: string, key: string, problems: string[]): number | undefined {
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : parseDurationMs(value);
  if (ms === null) {
    problems.push(`Ingress ${key}: ${REQUEST_TIMEOUT} ${JSON.stringify(value)} is not a duration; ignored`);
    return undefined;
  }
  return ms || undefined;
}

function ingressOrigin(ing: KubeObject): Origin {
  return { kind: 'Ingress', namespace: ing.metadata.namespace ?? '', name: ing.metadata.name };
}
