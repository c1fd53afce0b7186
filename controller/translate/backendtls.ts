// BackendTLSPolicy (GEP-1897, Gateway API v1) and the Gateway's backend client certificate
// (GEP-3155, `spec.tls.backend.clientCertificateRef`): which IR backends the gateway reaches over
// TLS, with which SNI, trust anchors and SAN checks, and the status of every policy — one
// `status.ancestors[]` entry per Gateway whose served routes use a backend the policy covers.
//
// Rules taken from the spec: a policy targets Services of its own namespace, a whole Service or one
// port (`sectionName` = port name; the port's own policy wins over a whole-Service one); of two
// policies on the same target and section the older (then `namespace/name` first) wins, the other
// is Accepted=False/Conflicted; CA references are ConfigMaps (Core) or Secrets (Sluice also reads
// them) holding PEM `ca.crt`; `wellKnownCACertificates: System` trusts the system roots. When no
// reference is usable the policy is Accepted=False/NoValidCACertificate and the backend is refused
// (503), never reached in plaintext.
import { X509Certificate, createHash } from 'node:crypto';
import type { BackendCaCertificate, BackendClientCertificate, BackendSubjectAltName, BackendTls, HttpIR, Origin, Route } from '../../ir/types.ts';
import { stableJson } from '../../ir/version.ts';
import { GATEWAY_GROUP, namespacedName, type BackendTLSPolicyObject, type GatewayObject, type KubeObject } from '../sources/objects.ts';
import { condition, type Condition, type ObjectStatus } from '../status/conditions.ts';
import { isGateway, olderFirst, readTlsSecret, type GatewayState } from './gateway.ts';
import type { InputIndex } from './index-inputs.ts';
import { isReferenceAllowed } from './referencegrant.ts';
import { kindSlip } from '../sources/ignored-kinds.ts';

interface Verdict {
  ok: boolean;
  reason: string;
  message: string;
}

export interface BackendTlsTranslation {
  statuses: ObjectStatus[];
  /** Things no condition can carry (targets that do not exist, ignored options). */
  problems: string[];
}

interface PolicyState {
  obj: BackendTLSPolicyObject;
  key: string;
  accepted: Verdict;
  resolvedRefs: Verdict;
  /** The TLS settings (or refusal) for every backend the policy covers. */
  tls: BackendTls;
  /** The older policies that hold a target (Service and section) this one names: it is Conflicted there. */
  beatenBy: Set<PolicyState>;
}

/** The policies of one translation: read once, then asked for each backendRef resolved. */
interface PolicyIndex {
  policies: PolicyState[];
  /** `namespace/service/section` ('' for the whole Service) → the policy in force. */
  claims: Map<string, PolicyState>;
  problems: string[];
}

const indexes = new WeakMap<InputIndex, PolicyIndex>();

/** The CRD's bound on `status.ancestors` (PolicyStatus): more would make the API server refuse the write. */
const MAX_ANCESTORS = 16;

function policyIndex(index: InputIndex): PolicyIndex {
  let built = indexes.get(index);
  if (built) return built;
  const problems: string[] = [];
  const policies = [...index.snapshot.backendTlsPolicies]
    .map((obj) => ({ obj, key: namespacedName(obj) }))
    .sort(olderFirst)
    .map(({ obj, key }) => readPolicy(obj, key, index, problems));
  // The oldest policy claims each (Service, section).
  const claims = new Map<string, PolicyState>();
  for (const policy of policies) {
    const ns = policy.obj.metadata.namespace ?? '';
    for (const ref of policy.obj.spec.targetRefs) {
      if (ref.group !== '' || ref.kind !== 'Service') {
        problems.push(`BackendTLSPolicy ${policy.key}: targetRef ${ref.group || 'core'}/${ref.kind} ${ref.name} is not supported (only core Services are)${kindSlip(ref.kind, ['Service'])}; ignored`);
        continue;
      }
      const service = index.service(ns, ref.name);
      // (Still claimed: it applies as soon as the Service appears.)
      if (!service) problems.push(`BackendTLSPolicy ${policy.key}: targetRef Service ${ns}/${ref.name} does not exist; the policy has no effect until it does`);
      if (service && ref.sectionName && !(service.spec?.ports ?? []).some((p) => p.name === ref.sectionName)) {
        problems.push(`BackendTLSPolicy ${policy.key}: targetRef Service ${ref.name} has no port named ${ref.sectionName}; the policy does not apply to it`);
      }
      const udp = (service?.spec?.ports ?? []).filter((p) => p.protocol === 'UDP' && (!ref.sectionName || p.name === ref.sectionName));
      if (udp.length > 0) {
        problems.push(`BackendTLSPolicy ${policy.key}: Service ${ref.name} port${udp.length > 1 ? 's' : ''} ${udp.map((p) => p.name ?? p.port).join(', ')} ${udp.length > 1 ? 'are' : 'is'} UDP; the policy applies to TCP ports only`);
      }
      const target = `${ns}/${ref.name}/${ref.sectionName ?? ''}`;
      const holder = claims.get(target);
      if (holder) policy.beatenBy.add(holder);
      else claims.set(target, policy);
    }
  }
  built = { policies, claims, problems };
  indexes.set(index, built);
  return built;
}

/**
 * The TLS a backendRef to this Service port gets: the port's own policy (sectionName = port name),
 * else the whole Service's; undefined when none targets it (plaintext).
 */
export function backendTlsFor(index: InputIndex, namespace: string, service: string, portName: string | undefined): BackendTls | undefined {
  const { claims } = policyIndex(index);
  return (claims.get(`${namespace}/${service}/${portName ?? ''}`) ?? claims.get(`${namespace}/${service}/`))?.tls;
}

/**
 * The statuses of every BackendTLSPolicy, from the assembled HTTP IR: a policy's ancestors are the
 * Gateways whose served routes (HTTP, gRPC, terminated TLS) use a backend it covers.
 */
export function backendTlsPolicyStatuses(http: HttpIR, index: InputIndex, controllerName: string): BackendTlsTranslation {
  const { policies, problems: found } = policyIndex(index);
  const problems = [...found];
  if (policies.length === 0) return { statuses: [], problems }; // no walk over every route
  const gatewaysByPolicy = new Map<BackendTls, Set<string>>();
  for (const [backend, gateways] of gatewaysUsingBackends(http)) {
    const tls = http.backends[backend]?.tls;
    if (!tls) continue;
    const set = gatewaysByPolicy.get(tls) ?? new Set<string>();
    for (const g of gateways) set.add(g);
    gatewaysByPolicy.set(tls, set);
  }
  const statuses = policies.map((policy) => {
    const ancestors = new Map<string, boolean>(); // gateway → Conflicted there
    for (const g of gatewaysByPolicy.get(policy.tls) ?? []) ancestors.set(g, false);
    // Where an older policy took a target of this one, this one is Conflicted on that policy's Gateways.
    for (const winner of policy.beatenBy) for (const g of gatewaysByPolicy.get(winner.tls) ?? []) ancestors.set(g, true);
    if (ancestors.size > MAX_ANCESTORS) {
      problems.push(`BackendTLSPolicy ${policy.key}: used through ${ancestors.size} Gateways; status.ancestors holds ${MAX_ANCESTORS}, the first ${MAX_ANCESTORS} by name are written`);
    }
    const relayed = ancestors.size === 0 ? passthroughUses(http, policy.tls) : null;
    if (relayed) {
      problems.push(
        `BackendTLSPolicy ${policy.key}: ${relayed.services.join(', ')} ${relayed.services.length > 1 ? 'are' : 'is'} used only by passthrough TLSRoutes (${relayed.routes.join(', ')}), ` +
          "which relay the client's own TLS to the backend: the gateway opens no TLS connection there, so the policy has no effect and no ancestor (GEP-1897 configures TLS the gateway originates; terminate the TLSRoute's listener, or route through an HTTPRoute, for it to apply)",
      );
    }
    return policyStatus(policy, ancestors, controllerName);
  });
  return { statuses, problems };
}

/**
 * The Services (`ns/name:port`) and TLSRoutes of the passthrough routes whose backends carry `tls`:
 * backendRefs resolve a policy whatever the route, but a passthrough relay never reads it. Null: none.
 */
function passthroughUses(http: HttpIR, tls: BackendTls): { services: string[]; routes: string[] } | null {
  const services = new Set<string>();
  const routes = new Set<string>();
  for (const socket of http.passthrough ?? []) {
    for (const route of socket.routes) {
      if (route.terminate !== undefined) continue;
      for (const weighted of route.backends) {
        const backend = weighted.backend === null ? undefined : http.backends[weighted.backend];
        if (backend?.tls !== tls) continue;
        services.add(`Service ${backend.source ?? weighted.backend}`);
        routes.add(`${route.origin.kind} ${route.origin.namespace}/${route.origin.name}`);
      }
    }
  }
  return services.size === 0 ? null : { services: [...services].sort(), routes: [...routes].sort() };
}

function readPolicy(obj: BackendTLSPolicyObject, key: string, index: InputIndex, problems: string[]): PolicyState {
  const ns = obj.metadata.namespace ?? '';
  const validation = obj.spec.validation;
  const refProblems: Verdict[] = [];
  const cas: BackendCaCertificate[] = [];
  (validation.caCertificateRefs ?? []).forEach((ref, i) => {
    const what = `caCertificateRefs[${i}] ${ref.kind} ${ns}/${ref.name}`;
    if (ref.group !== '' || (ref.kind !== 'ConfigMap' && ref.kind !== 'Secret')) {
      refProblems.push({ ok: false, reason: 'InvalidKind', message: `${what}: only core ConfigMaps and Secrets are supported` });
      return;
    }
    const found = ref.kind === 'ConfigMap' ? index.configMap(ns, ref.name) : index.secret(ns, ref.name);
    const read = found ? readCaBundle(found) : { error: 'not found' };
    if ('error' in read) refProblems.push({ ok: false, reason: 'InvalidCACertificateRef', message: `${what}: ${read.error}` });
    else cas.push({ source: `${ref.kind.toLowerCase()}/${ns}/${ref.name}`, pem: read.pem });
  });
  const wellKnown = validation.wellKnownCACertificates;
  let accepted: Verdict = { ok: true, reason: 'Accepted', message: 'Policy is accepted' };
  if (wellKnown !== undefined && wellKnown !== '' && wellKnown !== 'System') {
    accepted = { ok: false, reason: 'Invalid', message: `wellKnownCACertificates ${JSON.stringify(wellKnown)} is not supported (System is)` };
  } else if ((validation.caCertificateRefs ?? []).length > 0 && cas.length === 0) {
    accepted = { ok: false, reason: 'NoValidCACertificate', message: `no caCertificateRef is usable: ${refProblems.map((p) => p.message).join('; ')}` };
  }
  const resolvedRefs: Verdict =
    refProblems.length > 0
      ? { ok: false, reason: refProblems[0]!.reason, message: refProblems.map((p) => p.message).join('; ') }
      : { ok: true, reason: 'ResolvedRefs', message: 'All references resolved' };
  for (const option of Object.keys(obj.spec.options ?? {})) problems.push(`BackendTLSPolicy ${key}: options key ${option} is not Sluice's; ignored`);

  const subjectAltNames: BackendSubjectAltName[] = (validation.subjectAltNames ?? []).map((san) =>
    san.type === 'URI' ? { type: 'URI', value: String(san.uri ?? '') } : { type: 'Hostname', value: String(san.hostname ?? '').toLowerCase() },
  );
  const settings = {
    origin: { kind: 'BackendTLSPolicy', namespace: ns, name: obj.metadata.name } satisfies Origin,
    serverName: validation.hostname.toLowerCase(),
    ...(wellKnown === 'System' ? {} : { caCertificates: cas }),
    subjectAltNames,
    ...(accepted.ok ? {} : { refused: `BackendTLSPolicy ${key} is not accepted: ${accepted.message}` }),
  };
  const tls: BackendTls = { ...settings, hash: createHash('sha256').update(stableJson(settings)).digest('hex').slice(0, 16) };
  return { obj, key, accepted, resolvedRefs, tls, beatenBy: new Set() };
}

/** PEM `ca.crt` of a ConfigMap (data) or Secret (base64 data): at least one certificate, every block parses. */
function readCaBundle(obj: KubeObject): { pem: string } | { error: string } {
  const raw = obj.kind === 'Secret' ? (obj.data?.['ca.crt'] !== undefined ? Buffer.from(obj.data['ca.crt'], 'base64').toString('utf8') : undefined) : obj.data?.['ca.crt'];
  if (raw === undefined) return { error: `has no ca.crt` };
  const blocks = raw.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return { error: 'ca.crt holds no PEM certificate' };
  try {
    for (const block of blocks) new X509Certificate(block);
  } catch (err) {
    return { error: `ca.crt does not parse (${(err as Error).message})` };
  }
  return { pem: blocks.join('\n') + '\n' };
}

/** `namespace/name` of the Gateways whose served routes (HTTP, terminated TLS, TCP) use each backend. */
function gatewaysUsingBackends(http: HttpIR): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (backend: string | null, gateway: string | null) => {
    if (backend === null || gateway === null) return;
    const set = out.get(backend) ?? new Set<string>();
    set.add(gateway);
    out.set(backend, set);
  };
  for (const listener of http.listeners) {
    for (const scope of listener.scopes) {
      const gateway = gatewayOf(scope.origin);
      for (const host of scope.virtualHosts) for (const route of host.routes) for (const backend of routeBackends(route)) add(backend, gateway);
    }
  }
  for (const socket of http.passthrough ?? []) {
    for (const route of socket.routes) {
      if (route.terminate === undefined) continue;
      const gateway = gatewayOf(socket.origins[0]);
      for (const weighted of route.backends) add(weighted.backend, gateway);
    }
  }
  // TCPRoute: the gateway opens the connection to the backend, so the policy applies there too.
  for (const socket of http.tcp ?? []) for (const weighted of socket.route?.backends ?? []) add(weighted.backend, gatewayOf(socket.origin));
  return out;
}

function gatewayOf(origin: Origin | undefined): string | null {
  if (origin?.kind === 'Gateway') return `${origin.namespace}/${origin.name}`;
  if (origin?.kind === 'ListenerSet' && origin.parent) return `${origin.parent.namespace}/${origin.parent.name}`;
  return null; // Ingress listeners: no Gateway to report as an ancestor
}

/** Backends a route forwards to or mirrors to. */
function routeBackends(route: Route): (string | null)[] {
  const out: (string | null)[] = [];
  const mirrors = (filters: Route['filters']) => {
    for (const f of filters) if (f.type === 'RequestMirror') out.push(f.backend);
  };
  mirrors(route.filters);
  if (route.action.type === 'Forward') {
    for (const weighted of route.action.backends) {
      out.push(weighted.backend);
      mirrors(weighted.filters);
    }
  }
  return out;
}

function policyStatus(policy: PolicyState, ancestors: Map<string, boolean>, controllerName: string): ObjectStatus {
  const gen = policy.obj.metadata.generation;
  const entries = [...ancestors.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .slice(0, MAX_ANCESTORS)
    .map(([gateway, conflicted]) => {
      const [namespace, name] = gateway.split('/') as [string, string];
      const accepted: Verdict = conflicted
        ? { ok: false, reason: 'Conflicted', message: 'An older BackendTLSPolicy targets the same Service and section and takes precedence' }
        : policy.accepted;
      const conditions: Condition[] = [
        condition('Accepted', accepted.ok, accepted.reason, accepted.message, gen),
        condition('ResolvedRefs', policy.resolvedRefs.ok, policy.resolvedRefs.reason, policy.resolvedRefs.message, gen),
      ];
      return { ancestorRef: { group: GATEWAY_GROUP, kind: 'Gateway', namespace, name }, controllerName, conditions };
    });
  return {
    apiVersion: policy.obj.apiVersion,
    kind: 'BackendTLSPolicy',
    namespace: policy.obj.metadata.namespace,
    name: policy.obj.metadata.name,
    status: { ancestors: entries },
  };
}

// ---------------------------------------------------------------- Gateway spec.tls.backend

export type GatewayBackendTls = NonNullable<GatewayState['backendTls']>;

/** Sets `backendTls` on the Gateways whose `spec.tls.backend.clientCertificateRef` is set. */
export function attachBackendClientCertificates(gateways: GatewayState[], index: InputIndex): void {
  for (const gateway of gateways) {
    if (!isGateway(gateway.obj)) continue; // the Ingress listeners' stand-in has no spec.tls
    const resolved = resolveBackendClientCertificate(gateway.obj, index);
    if (resolved) gateway.backendTls = resolved;
  }
}

function resolveBackendClientCertificate(gateway: GatewayObject, index: InputIndex): GatewayBackendTls | null {
  const ref = gateway.spec.tls?.backend?.clientCertificateRef;
  if (!ref) return null;
  const gatewayNs = gateway.metadata.namespace ?? '';
  const namespace = ref.namespace ?? gatewayNs;
  const what = `tls.backend.clientCertificateRef ${ref.kind ?? 'Secret'} ${namespace}/${ref.name}`;
  const invalid = (message: string): GatewayBackendTls => ({ resolvedRefs: { ok: false, reason: 'InvalidClientCertificateRef', message: `${what}: ${message}` } });
  if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret') return invalid('only core Secrets are supported');
  if (!isReferenceAllowed(index.snapshot.referenceGrants, { group: GATEWAY_GROUP, kind: 'Gateway', namespace: gatewayNs }, { group: '', kind: 'Secret', namespace, name: ref.name })) {
    return { resolvedRefs: { ok: false, reason: 'RefNotPermitted', message: `${what}: no ReferenceGrant in ${namespace} allows it` } };
  }
  const secret = index.secret(namespace, ref.name);
  if (!secret) return invalid('not found');
  const pair = readTlsSecret(secret);
  if ('error' in pair) return invalid(pair.error);
  return {
    certificate: {
      secret: `secret/${namespace}/${ref.name}`,
      certPem: pair.cert,
      keyPem: pair.key,
      hash: createHash('sha256').update(pair.cert).update(pair.key).digest('hex').slice(0, 16),
    },
    resolvedRefs: { ok: true, reason: 'ResolvedRefs', message: 'All references resolved' },
  };
}
