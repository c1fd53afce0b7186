// GatewayClass and Gateway: which Gateways are ours, their addresses, and the
// validity of each listener (protocol, conflicts, route kinds, certificates).
// Route attachment fills in `attachedRoutes` later (httproute.ts).
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { certificateFacts, planCertificates } from '../../ir/certificate-names.ts';
import { defaultTlsSettings, describeTlsSettings, sameTlsSettings } from '../../ir/tls-profiles.ts';
import type { BackendClientCertificate, ClientValidation, TlsCertificate, TlsSettings } from '../../ir/types.ts';
import { GATEWAY_GROUP, namespacedName, type GatewayClassObject, type GatewayObject, type IngressClassObject, type KubeObject, type ListenerSetObject } from '../sources/objects.ts';
import { condition, type Condition, type ObjectStatus } from '../status/conditions.ts';
import { addressRequest, type AddressPlan, type AddressRequest, type ServiceAddressing } from './addresses.ts';
import type { InputIndex } from './index-inputs.ts';
import type { TranslateOptions } from './options.ts';
import { isReferenceAllowed } from './referencegrant.ts';
import { selectorMatches, selectorProblem, type LabelSelector } from './selectors.ts';
import { parseTlsOptions } from './tls-options.ts';
import { kindSlip } from '../sources/ignored-kinds.ts';
import type { CertificateRef, FrontendValidation, GatewaySpec, Listener, ListenerTLS, RouteGroupKind } from '../schema/kinds.ts';

/** A reference to a core object (a certificate's Secret, a CA's ConfigMap). */
type ObjectRef = { group?: string; kind?: string; name: string; namespace?: string };

export interface RouteKind {
  group: string;
  kind: string;
}

/**
 * The route kinds each listener protocol serves. HTTP and HTTPS listeners take gRPC too (GRPCRoute:
 * h2c with prior knowledge, h2 by ALPN). TLS listeners pass TLS through to TLSRoute backends.
 */
const HTTP_ROUTE_KINDS: RouteKind[] = [
  { group: GATEWAY_GROUP, kind: 'HTTPRoute' },
  { group: GATEWAY_GROUP, kind: 'GRPCRoute' },
];
const ROUTE_KINDS_BY_PROTOCOL: Record<string, RouteKind[]> = {
  HTTP: HTTP_ROUTE_KINDS,
  HTTPS: HTTP_ROUTE_KINDS,
  TLS: [{ group: GATEWAY_GROUP, kind: 'TLSRoute' }],
  // TCP and UDP listeners forward byte streams and datagrams to TCPRoute and UDPRoute backends.
  TCP: [{ group: GATEWAY_GROUP, kind: 'TCPRoute' }],
  UDP: [{ group: GATEWAY_GROUP, kind: 'UDPRoute' }],
};

/** Every route kind a listener serves, by name: to name the one meant when a kind is written in the wrong case. */
const ROUTE_KIND_NAMES = [...new Set(Object.values(ROUTE_KINDS_BY_PROTOCOL).flat().map((k) => k.kind))];

interface Verdict {
  ok: boolean;
  reason: string;
  message: string;
}

/** The object that declares a listener: the Gateway itself or a ListenerSet attached to it. */
export interface ListenerOwner {
  kind: 'Gateway' | 'ListenerSet' | 'IngressClass';
  obj: KubeObject;
  /** `namespace/name`. */
  key: string;
  namespace: string;
  generation: number | undefined;
}

export interface ListenerState {
  /** The Gateway that serves it (address, acceptance). */
  gateway: GatewayState;
  owner: ListenerOwner;
  name: string;
  port: number;
  protocol: string;
  hostname: string | null;
  /** TLS listeners: Passthrough, or Terminate (the CRD default: the gateway ends TLS and forwards the stream). */
  tlsMode?: 'Passthrough' | 'Terminate';
  /** IR scope name: `gateway/<ns>/<name>/listener/<listener>` or `listenerset/<ns>/<name>/listener/<listener>`. */
  scopeName: string;
  supportedKinds: RouteKind[];
  allowedRoutes: { from: string; selector?: LabelSelector };
  accepted: Verdict;
  conflict: Verdict | null;
  resolvedRefs: Verdict;
  certificates: TlsCertificate[];
  /** HTTPS: client-certificate validation for this listener's port, when configured. */
  clientValidation?: ClientValidation;
  /** HTTPS: versions and ciphers from `tls.options` (absent: the default profile). */
  tlsSettings?: TlsSettings;
  /** HTTPS: Strict-Transport-Security value from `tls.options`. */
  hsts?: string;
  /** `tls.options` keys of other implementations, ignored. */
  ignoredTlsOptions?: string[];
  /** certificateRefs that load but that no SNI would select (an earlier one covers all their names). */
  unservedCertificates?: string[];
  /** Ingress semantics: a `*.` host matches exactly one label. */
  singleLabelWildcards?: boolean;
  attachedRoutes: number;
}

export interface GatewayState {
  /** The Gateway, or for the Ingress listeners an IngressClass that stands in for one. */
  obj: GatewayObject | IngressClassObject;
  /** `namespace/name`. */
  key: string;
  generation: number | undefined;
  /** The first of `addresses`, null when it has none. */
  address: string | null;
  /** Where its listeners are bound: the requested IPAddress values and/or Sluice's own address. */
  addresses: string[];
  /** Requested addresses the dataplane Service does not carry (Programmed=False AddressNotAssigned). */
  unassigned: string | null;
  accepted: Verdict;
  listeners: ListenerState[];
  /** ListenerSets whose parentRef names this Gateway, allowed or not, oldest first. */
  listenerSets: ListenerSetState[];
  /** `spec.tls.backend` when set (backendtls.ts): the client certificate for TLS backends, and the verdict on its reference. */
  backendTls?: { certificate?: BackendClientCertificate; resolvedRefs: Verdict };
}

export interface ListenerSetState {
  owner: ListenerOwner;
  gateway: GatewayState;
  /** NotAllowed when the Gateway's allowedListeners does not admit it. */
  allowed: Verdict;
  /** Empty unless allowed. */
  listeners: ListenerState[];
}

/** Our GatewayClasses (spec.controllerName is ours) with their status; returns the accepted names. */
export function translateGatewayClasses(
  classes: GatewayClassObject[],
  options: TranslateOptions,
): { accepted: Set<string>; statuses: ObjectStatus[] } {
  const accepted = new Set<string>();
  const statuses: ObjectStatus[] = [];
  const served = new Set(options.servedClassNames ?? []);
  for (const gc of classes) {
    if (gc.spec?.controllerName !== options.controllerName && !served.has(gc.metadata.name)) continue;
    const gen = gc.metadata.generation;
    const params = gc.spec?.parametersRef;
    const verdict: Verdict = params
      ? { ok: false, reason: 'InvalidParameters', message: `parametersRef ${params.kind}/${params.name}: Sluice takes no GatewayClass parameters` }
      : { ok: true, reason: 'Accepted', message: 'Handled by Sluice' };
    if (verdict.ok) accepted.add(gc.metadata.name);
    statuses.push({
      apiVersion: gc.apiVersion,
      kind: 'GatewayClass',
      name: gc.metadata.name,
      status: { conditions: [condition('Accepted', verdict.ok, verdict.reason, verdict.message, gen)] },
    });
  }
  return { accepted, statuses };
}

/** Gateways of our classes, in `namespace/name` order; `markConflicts` must run over all listeners afterwards. */
export function translateGateways(
  ours: GatewayObject[],
  listenerSets: ListenerSetObject[],
  plan: AddressPlan,
  index: InputIndex,
  service: ServiceAddressing | null = null,
): GatewayState[] {
  const states = ours.map((obj) => {
    const key = namespacedName(obj);
    const request = addressRequest(obj.spec?.addresses, service === null);
    const missing = service ? request.requested.filter((a) => !service.addresses.has(a)) : [];
    const planned = request.planned ? plan.byGateway.get(key) : undefined;
    const addresses = request.unsupported ? [] : [...new Set([...request.static, ...(planned !== undefined ? [planned] : [])])];
    const gateway: GatewayState = {
      obj,
      key,
      generation: obj.metadata.generation,
      address: addresses[0] ?? null,
      addresses,
      unassigned: missing.length > 0
        ? `spec.addresses ${missing.join(', ')}: not an address of the dataplane Service ${service!.name}; Sluice does not edit it (give it spec.loadBalancerIP or externalIPs; a hostname is what its load balancer reports)`
        : null,
      accepted: gatewayVerdict(obj, request, request.planned && planned === undefined ? plan.problem ?? 'no address' : null),
      listeners: [],
      listenerSets: [],
    };
    const owner = ownerOf('Gateway', obj);
    gateway.listeners = (obj.spec?.listeners ?? []).map((l) => translateListener(gateway, owner, l, index));
    return gateway;
  });
  const byKey = new Map(states.map((g) => [g.key, g]));
  for (const obj of listenerSets) {
    const ref = obj.spec?.parentRef ?? {};
    if ((ref.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP || (ref.kind ?? 'Gateway') !== 'Gateway') continue;
    const gateway = byKey.get(`${ref.namespace ?? obj.metadata.namespace}/${ref.name}`);
    if (!gateway) continue; // not attached to one of our Gateways
    const owner = ownerOf('ListenerSet', obj);
    const allowed = listenerSetAllowed(gateway, owner, index);
    const set: ListenerSetState = { owner, gateway, allowed, listeners: [] };
    if (allowed.ok) set.listeners = (obj.spec?.listeners ?? []).map((l) => translateListener(gateway, owner, l, index));
    gateway.listenerSets.push(set);
  }
  for (const g of states) {
    g.listenerSets.sort((a, b) => olderFirst(a.owner, b.owner));
    g.accepted = listenersVerdict(g.accepted, allListeners(g));
  }
  return states.sort((a, b) => a.key.localeCompare(b.key));
}

/**
 * Gateway Accepted reason ListenersNotValid (gateway_types.go): a listener with an invalid or
 * unsupported configuration makes it True/ListenersNotValid while others are valid, and
 * False/ListenersNotValid when none is (upstream GatewayListenerUnsupportedProtocol).
 */
function listenersVerdict(verdict: Verdict, listeners: ListenerState[]): Verdict {
  const invalid = listeners.filter((l) => !l.accepted.ok).map((l) => l.name);
  if (!verdict.ok || invalid.length === 0) return verdict;
  return invalid.length === listeners.length
    ? { ok: false, reason: 'ListenersNotValid', message: `No valid listener (not valid: ${invalid.join(', ')}; see status.listeners)` }
    : { ok: true, reason: 'ListenersNotValid', message: `Not valid: listener ${invalid.join(', ')} (see status.listeners); the other listeners are served` };
}

/** A Gateway's own listeners followed by those of its allowed ListenerSets. */
export function allListeners(gateway: GatewayState): ListenerState[] {
  return [...gateway.listeners, ...gateway.listenerSets.flatMap((s) => s.listeners)];
}

function ownerOf(kind: ListenerOwner['kind'], obj: KubeObject): ListenerOwner {
  return { kind, obj, key: namespacedName(obj), namespace: obj.metadata.namespace!, generation: obj.metadata.generation };
}

/** Gateway `spec.allowedListeners.namespaces.from`: None (the default), Same, All or Selector. */
function listenerSetAllowed(gateway: GatewayState, owner: ListenerOwner, index: InputIndex): Verdict {
  const namespaces = gatewaySpec(gateway)?.allowedListeners?.namespaces;
  const from = namespaces?.from ?? 'None';
  const ok =
    from === 'All' ||
    (from === 'Same' && owner.namespace === gateway.obj.metadata.namespace) ||
    (from === 'Selector' && selectorProblem(namespaces?.selector) === null && selectorMatches(namespaces?.selector, index.namespaceLabels(owner.namespace)));
  return ok
    ? { ok: true, reason: 'Accepted', message: `Attached to Gateway ${gateway.key}` }
    : { ok: false, reason: 'NotAllowed', message: `Gateway ${gateway.key} does not allow ListenerSets from namespace ${owner.namespace} (allowedListeners: ${from})` };
}

/** The Gateway's spec; none for the IngressClass that stands in for the Ingress listeners' Gateway. */
function gatewaySpec(gateway: GatewayState): GatewaySpec | undefined {
  return isGateway(gateway.obj) ? gateway.obj.spec : undefined;
}

export function isGateway(obj: GatewayObject | IngressClassObject): obj is GatewayObject {
  return obj.kind === 'Gateway';
}

/** Creation order, then name: the order in which conflicting claims are granted. */
export function olderFirst(a: { obj: KubeObject; key: string }, b: { obj: KubeObject; key: string }): number {
  const ta = a.obj.metadata.creationTimestamp ?? '';
  const tb = b.obj.metadata.creationTimestamp ?? '';
  return ta < tb ? -1 : ta > tb ? 1 : a.key.localeCompare(b.key);
}

function gatewayVerdict(obj: GatewayObject, request: AddressRequest, addressProblem: string | null): Verdict {
  const params = obj.spec?.infrastructure?.parametersRef;
  if (params) {
    return { ok: false, reason: 'InvalidParameters', message: `infrastructure.parametersRef ${params.kind}/${params.name}: Sluice takes no Gateway parameters` };
  }
  if (request.unsupported) return { ok: false, reason: 'UnsupportedAddress', message: request.unsupported };
  if (addressProblem) return { ok: false, reason: 'AddressNotAssigned', message: addressProblem };
  return { ok: true, reason: 'Accepted', message: 'Gateway is valid' };
}

function translateListener(gateway: GatewayState, owner: ListenerOwner, spec: Listener, index: InputIndex): ListenerState {
  const protocol = String(spec?.protocol ?? '');
  const listener: ListenerState = {
    gateway,
    owner,
    name: String(spec?.name ?? ''),
    port: Number(spec?.port),
    protocol,
    hostname: spec?.hostname ? String(spec.hostname).toLowerCase() : null,
    scopeName: `${owner.kind.toLowerCase()}/${owner.key}/listener/${spec?.name}`,
    supportedKinds: [],
    allowedRoutes: {
      from: spec?.allowedRoutes?.namespaces?.from ?? 'Same',
      selector: spec?.allowedRoutes?.namespaces?.selector,
    },
    accepted: { ok: true, reason: 'Accepted', message: 'Listener is valid' },
    conflict: null,
    resolvedRefs: { ok: true, reason: 'ResolvedRefs', message: 'All references resolved' },
    certificates: [],
    attachedRoutes: 0,
  };
  const routeKinds = ROUTE_KINDS_BY_PROTOCOL[protocol];
  if (!routeKinds) {
    listener.accepted = { ok: false, reason: 'UnsupportedProtocol', message: `protocol ${protocol} is not supported (HTTP, HTTPS, TLS, TCP and UDP are)` };
    return listener;
  }
  const kinds = resolveRouteKinds(spec?.allowedRoutes?.kinds, routeKinds);
  listener.supportedKinds = kinds.supported;
  if (kinds.invalid.length > 0) {
    listener.resolvedRefs = {
      ok: false,
      reason: 'InvalidRouteKinds',
      message: `unsupported route kinds: ${kinds.invalid.map((k) => `${k.group}/${k.kind}${kindSlip(k.kind, ROUTE_KIND_NAMES)}`).join(', ')}`,
    };
  }
  const selectorError = listener.allowedRoutes.from === 'Selector' ? selectorProblem(listener.allowedRoutes.selector) : null;
  if (selectorError) listener.accepted = { ok: false, reason: 'UnsupportedValue', message: `allowedRoutes.namespaces.selector: ${selectorError}` };
  if (protocol === 'HTTPS') {
    resolveCertificates(listener, spec?.tls, index);
    resolveClientValidation(listener, gatewaySpec(gateway)?.tls?.frontend, index);
  }
  if (protocol === 'TLS') {
    // The CRD defaults tls.mode to Terminate: the gateway ends TLS with the listener's certificates.
    listener.tlsMode = spec?.tls?.mode === 'Passthrough' ? 'Passthrough' : 'Terminate';
    if (listener.tlsMode === 'Terminate') {
      resolveCertificates(listener, spec?.tls, index);
      // The spec names HTTPS listeners; a TLS listener that ends TLS here asks for client
      // certificates the same way rather than quietly serving without the validation asked for.
      resolveClientValidation(listener, gatewaySpec(gateway)?.tls?.frontend, index);
    }
  }
  if (protocol === 'HTTPS' || protocol === 'TLS') resolveTlsOptions(listener, spec?.tls?.options);
  return listener;
}

/**
 * `tls.options`: an unknown `sluice.dev/` key or a bad value makes the listener not Accepted
 * (UnsupportedValue, the message names the key), as any other listener value Sluice cannot honour.
 */
function resolveTlsOptions(listener: ListenerState, options: unknown): void {
  let parsed: ReturnType<typeof parseTlsOptions>;
  try {
    parsed = parseTlsOptions(options);
  } catch (error) {
    if (listener.accepted.ok) listener.accepted = { ok: false, reason: 'UnsupportedValue', message: (error as Error).message };
    return;
  }
  if (parsed.ignored.length > 0) {
    listener.ignoredTlsOptions = parsed.ignored;
    if (listener.accepted.ok) listener.accepted = { ...listener.accepted, message: `Listener is valid; tls.options ${parsed.ignored.join(', ')} ignored (not Sluice's)` };
  }
  const ours = Object.keys(options ?? {}).length > parsed.ignored.length;
  if (listener.tlsMode === 'Passthrough') {
    // Passthrough never decrypts: none of our settings could apply.
    if (ours && listener.accepted.ok) listener.accepted = { ok: false, reason: 'UnsupportedValue', message: 'tls.options sluice.dev/ keys apply to HTTPS listeners only (TLS passthrough is never decrypted)' };
    return;
  }
  listener.tlsSettings = parsed.settings;
  if (parsed.hsts !== undefined && listener.protocol === 'TLS' && listener.accepted.ok) {
    listener.accepted = { ok: false, reason: 'UnsupportedValue', message: 'tls.options sluice.dev/hsts applies to HTTPS listeners only (a TLS listener forwards a byte stream)' };
  } else if (parsed.hsts !== undefined) listener.hsts = parsed.hsts;
}

/**
 * Gateway `spec.tls.frontend`: the per-port entry for this listener's port, else the default.
 * CA references must be core ConfigMaps (cross-namespace with a ReferenceGrant) holding `ca.crt`.
 * When none resolves, the listener is not accepted (NoValidCACertificate) rather than served
 * without the validation its owner asked for.
 */
function resolveClientValidation(listener: ListenerState, frontend: FrontendValidation | undefined, index: InputIndex): void {
  const perPort = (frontend?.perPort ?? []).find((p) => Number(p?.port) === listener.port);
  const validation = perPort ? perPort.tls?.validation : frontend?.default?.validation;
  if (!validation) return;
  const cas = resolveCoreRefs<string>(listener, validation.caCertificateRefs ?? [], 'caCertificateRefs', 'ConfigMap', 'InvalidCACertificateKind', 'InvalidCACertificateRef', index, (configMap) => {
    const pem = configMap.data?.['ca.crt'];
    if (!pem) return { error: 'has no ca.crt' };
    try {
      new X509Certificate(pem);
    } catch (err) {
      return { error: `ca.crt does not parse (${(err as Error).message})` };
    }
    return { value: pem };
  });
  if (cas.length === 0) {
    listener.accepted = { ok: false, reason: 'NoValidCACertificate', message: 'client-certificate validation has no usable CA certificate' };
    return;
  }
  const mode = validation.mode === 'AllowInsecureFallback' ? 'AllowInsecureFallback' : 'AllowValidOnly';
  listener.clientValidation = { caCertificates: cas.map((c) => c.value), mode };
}

function resolveRouteKinds(kinds: RouteGroupKind[] | undefined, served: RouteKind[]): { supported: RouteKind[]; invalid: RouteKind[] } {
  if (!kinds || kinds.length === 0) return { supported: served.map((k) => ({ ...k })), invalid: [] };
  const supported: RouteKind[] = [];
  const invalid: RouteKind[] = [];
  const same = (a: RouteKind) => (b: RouteKind) => a.group === b.group && a.kind === b.kind;
  for (const k of kinds) {
    const kind: RouteKind = { group: k?.group ?? GATEWAY_GROUP, kind: String(k?.kind) };
    if (served.some(same(kind))) {
      if (!supported.some(same(kind))) supported.push(kind);
    } else invalid.push(kind);
  }
  return { supported, invalid };
}

function resolveCertificates(listener: ListenerState, tls: ListenerTLS | undefined, index: InputIndex): void {
  if (tls?.mode === 'Passthrough') {
    listener.accepted = { ok: false, reason: 'UnsupportedValue', message: 'tls.mode Passthrough needs protocol TLS (TLSRoute), not HTTPS' };
    return;
  }
  const refs: CertificateRef[] = tls?.certificateRefs ?? [];
  if (refs.length === 0) {
    listener.resolvedRefs = { ok: false, reason: 'InvalidCertificateRef', message: `${listener.protocol} listener has no tls.certificateRefs` };
    return;
  }
  const pairs = resolveCoreRefs(listener, refs, 'certificateRefs', 'Secret', 'InvalidCertificateRef', 'InvalidCertificateRef', index, (secret) => {
    const pair = readTlsSecret(secret);
    return 'error' in pair ? pair : { value: pair };
  });
  // Sets served as the dataplane's CertificateSelector serves them: by the listener's hostname, else
  // by each certificate's DNS names; an RSA and an ECDSA certificate for the same names are one set.
  if (pairs.length > 1) {
    const plan = planCertificates(pairs.map(({ value: pair }) => {
      const facts = certificateFacts(pair.cert);
      return { names: listener.hostname ? [listener.hostname] : facts.dnsNames, keyType: facts.keyType };
    }));
    for (const { index, by, names } of plan.unserved) {
      const { index: i, namespace, name } = pairs[index];
      const covered = names.length === 0 ? 'any name (this one has no DNS names)' : `all its names (${names.join(', ')})`;
      (listener.unservedCertificates ??= []).push(
        `certificateRefs[${i}] Secret ${namespace}/${name} is never served: ${by.map((k) => `certificateRefs[${pairs[k].index}]`).join(', ')} is selected for ${covered}; Sluice serves one certificate per name and key type (an RSA and an ECDSA one for the same names are served together)`,
      );
    }
  }
  for (const { value: pair, index: i, namespace, name } of pairs) {
    listener.certificates.push({
      name: `${listener.scopeName}/certificate/${i}`,
      secret: `secret/${namespace}/${name}`,
      hostnames: listener.hostname ? [listener.hostname] : [],
      certPem: pair.cert,
      keyPem: pair.key,
      hash: createHash('sha256').update(pair.cert).update(pair.key).digest('hex').slice(0, 16),
    });
  }
}

/**
 * Resolves a listener's references to core objects of one kind (Secrets, ConfigMaps): kind and
 * group checked, cross-namespace only with a ReferenceGrant from the listener's owner, then
 * `read` validates the content. Problems set ResolvedRefs=False (first reason, all messages).
 */
function resolveCoreRefs<T>(
  listener: ListenerState,
  refs: ObjectRef[],
  field: string,
  kindWanted: 'Secret' | 'ConfigMap',
  wrongKindReason: string,
  invalidReason: string,
  index: InputIndex,
  read: (obj: KubeObject) => { value: T } | { error: string },
): { value: T; index: number; namespace: string; name: string }[] {
  const owner = listener.owner;
  const problems: Verdict[] = [];
  const out: { value: T; index: number; namespace: string; name: string }[] = [];
  refs.forEach((ref, i) => {
    const group = ref?.group ?? '';
    const kind = ref?.kind ?? kindWanted;
    const namespace = ref?.namespace ?? owner.namespace;
    const name = String(ref?.name ?? '');
    const what = `${field}[${i}] ${kind} ${namespace}/${name}`;
    const fail = (reason: string, message: string) => problems.push({ ok: false, reason, message: `${what}: ${message}` });
    if (group !== '' || kind !== kindWanted) return fail(wrongKindReason, `only core ${kindWanted}s are supported${kindSlip(kind, [kindWanted])}`);
    const allowed = isReferenceAllowed(
      index.snapshot.referenceGrants,
      { group: GATEWAY_GROUP, kind: owner.kind, namespace: owner.namespace },
      { group: '', kind: kindWanted, namespace, name },
    );
    if (!allowed) return fail('RefNotPermitted', `no ReferenceGrant in ${namespace} allows it`);
    const obj = kindWanted === 'Secret' ? index.secret(namespace, name) : index.configMap(namespace, name);
    if (!obj) return fail(invalidReason, 'not found');
    const content = read(obj);
    if ('error' in content) return fail(invalidReason, content.error);
    out.push({ value: content.value, index: i, namespace, name });
  });
  if (problems.length > 0) {
    listener.resolvedRefs = { ok: false, reason: problems[0]!.reason, message: problems.map((p) => p.message).join('; ') };
  }
  return out;
}

/** Reads tls.crt and tls.key (data is base64, stringData plain) and checks they parse and belong together. */
export function readTlsSecret(secret: KubeObject): { cert: string; key: string } | { error: string } {
  const stringData = (secret.stringData ?? {}) as Record<string, string>;
  const read = (field: string): string | undefined =>
    stringData[field] ?? (secret.data?.[field] !== undefined ? Buffer.from(secret.data[field]!, 'base64').toString('utf8') : undefined);
  const cert = read('tls.crt');
  const key = read('tls.key');
  if (!cert || !key) return { error: 'Secret needs both tls.crt and tls.key' };
  try {
    const x509 = new X509Certificate(cert);
    const privateKey = createPrivateKey(key);
    if (!x509.checkPrivateKey(privateKey)) return { error: 'tls.key does not match tls.crt' };
  } catch (err) {
    return { error: `malformed certificate or key (${(err as Error).message})` };
  }
  return { cert, key };
}

/**
 * Listeners on one socket (address and port) must agree on the protocol, and
 * each needs a distinct hostname. The first claim in `listeners` order keeps
 * the port; later ones that clash are marked Conflicted and not served.
 * Gateways share a socket only when they share the bind address. The order:
 * older Gateways first, within one its own listeners then its ListenerSets
 * oldest first, and Ingress listeners last.
 */
export function markConflicts(listeners: ListenerState[]): void {
  const byPort = new Map<string, ListenerState[]>();
  for (const l of listeners) {
    if (!l.accepted.ok) continue;
    // A listener is bound on every address of its Gateway: it must fit on each of those sockets
    // (a Gateway without one has no socket to share).
    for (const address of l.gateway.addresses) {
      // UDP port P and TCP port P are different sockets.
      const socket = `${l.protocol === 'UDP' ? 'udp/' : ''}${address}:${l.port}`;
      const list = byPort.get(socket) ?? [];
      list.push(l);
      byPort.set(socket, list);
    }
  }
  for (const all of byPort.values()) {
    // One that lost on another of its addresses is not served at all: it claims nothing here.
    const group = all.filter((l) => l.conflict === null);
    const first = group[0];
    if (!first) continue;
    // Each hostname's holder, to name it when it is another Gateway's listener.
    const holders = new Map<string | null, ListenerState>();
    const firstTls = tlsSettingsOf(first);
    for (const l of group) {
      if (l.protocol !== first.protocol) {
        l.conflict = { ok: false, reason: 'ProtocolConflict', message: `port ${l.port} is already used with protocol ${first.protocol}` };
      } else if (l.protocol === 'HTTPS' && !sameTlsSettings(tlsSettingsOf(l), firstTls)) {
        // OpenSSL settles versions and ciphers before SNI picks a certificate: one set per port.
        l.conflict = {
          ok: false,
          reason: 'ProtocolConflict',
          message: `port ${l.port} already serves TLS ${describeTlsSettings(firstTls)} for listener ${first.scopeName}; this listener's tls.options ask for ${describeTlsSettings(tlsSettingsOf(l))} (versions and ciphers are per port)`,
        };
      } else if (holders.has(l.hostname) || ((l.protocol === 'TCP' || l.protocol === 'UDP') && holders.size > 0)) {
        // TCP and UDP have no hostname to tell listeners apart (the spec ignores it there): one per socket.
        const message = l.protocol === 'TCP' || l.protocol === 'UDP' ? `another ${l.protocol} listener already serves port ${l.port}` : `another listener on port ${l.port} has hostname ${l.hostname ?? '(none)'}`;
        // Another Gateway's (two Gateways of the docs' examples on one address): say whose, and why they meet.
        const holder = holders.get(l.hostname) ?? first;
        const whose = holder.gateway.key !== l.gateway.key ? ` (listener ${holder.name} of Gateway ${holder.gateway.key}: Gateways on one address share its ports; give each Gateway its own address: --bind-address with a CIDR, or spec.addresses)` : '';
        l.conflict = { ok: false, reason: 'HostnameConflict', message: message + whose };
      } else holders.set(l.hostname, l);
    }
  }
}

export function tlsSettingsOf(listener: ListenerState): TlsSettings {
  return listener.tlsSettings ?? defaultTlsSettings();
}

/** May a route in `namespace` attach to this listener? */
export function listenerAllowsNamespace(listener: ListenerState, namespace: string, index: InputIndex): boolean {
  const { from, selector } = listener.allowedRoutes;
  if (from === 'All') return true;
  if (from === 'Same') return namespace === listener.owner.namespace;
  if (from === 'Selector') return selectorMatches(selector, index.namespaceLabels(namespace));
  return false;
}

/** Can routes attach to it (it may still be unprogrammed, e.g. for a missing certificate)? */
export function listenerTakesRoutes(listener: ListenerState): boolean {
  return listener.gateway.accepted.ok && listener.accepted.ok && listener.conflict === null;
}

/** Valid enough to serve: takes routes, and a listener that terminates TLS has at least one usable certificate. */
function listenerServable(listener: ListenerState): boolean {
  const terminates = listener.protocol === 'HTTPS' || listener.tlsMode === 'Terminate';
  return listenerTakesRoutes(listener) && (!terminates || listener.certificates.length > 0);
}

/** Will the dataplane serve it? */
export function listenerProgrammed(listener: ListenerState): boolean {
  return listenerServable(listener) && listener.gateway.address !== null;
}

function gatewayProgrammed(gateway: GatewayState, anyProgrammed: boolean, gen: number | undefined): Condition {
  if (!gateway.accepted.ok) return condition('Programmed', false, 'Invalid', `Gateway is not accepted: ${gateway.accepted.message}`, gen);
  if (gateway.unassigned) return condition('Programmed', false, 'AddressNotAssigned', gateway.unassigned, gen);
  return anyProgrammed || gateway.listeners.length === 0
    ? condition('Programmed', true, 'Programmed', `Serving on ${gateway.addresses.join(', ')}`, gen)
    : condition('Programmed', false, 'Invalid', 'No listener of this Gateway can be served', gen);
}

export function gatewayStatus(gateway: GatewayState): ObjectStatus {
  const gen = gateway.generation;
  const listeners = gateway.listeners.map((l) => listenerStatus(l, gen));
  const attachedListenerSets = gateway.listenerSets.filter((s) => listenerSetAccepted(s).ok).length;
  const anyProgrammed = gateway.listeners.some(listenerProgrammed);
  const conditions: Condition[] = [
    condition('Accepted', gateway.accepted.ok, gateway.accepted.reason, gateway.accepted.message, gen),
    gatewayProgrammed(gateway, anyProgrammed, gen),
    // Written when spec.tls.backend is set: the references outside listeners, then the listeners' summary.
    ...(gateway.backendTls ? [gatewayResolvedRefs(gateway.backendTls.resolvedRefs, gateway.listeners, gen)] : []),
    ...insecureFrontendValidation(gatewaySpec(gateway)?.tls?.frontend, gen),
  ];
  return {
    apiVersion: gateway.obj.apiVersion,
    kind: 'Gateway',
    namespace: gateway.obj.metadata.namespace,
    name: gateway.obj.metadata.name,
    status: {
      ...(gateway.addresses.length > 0 && gateway.accepted.ok ? { addresses: gateway.addresses.map((value) => ({ type: 'IPAddress', value })) } : {}),
      conditions,
      listeners,
      attachedListenerSets,
    },
  };
}

/**
 * InsecureFrontendValidationMode=True/ConfigurationChanged while spec.tls.frontend (default or a
 * per-port entry) is in mode AllowInsecureFallback; absent otherwise (gateway_types.go).
 */
function insecureFrontendValidation(frontend: FrontendValidation | undefined, gen: number | undefined): Condition[] {
  const entries = [frontend?.default, ...(frontend?.perPort ?? []).map((p) => ({ port: p?.port, validation: p?.tls?.validation }))];
  const insecure = entries.filter((e) => e?.validation?.mode === 'AllowInsecureFallback').map((e) => (e && 'port' in e ? `port ${e.port}` : 'default'));
  if (insecure.length === 0) return [];
  return [condition('InsecureFrontendValidationMode', true, 'ConfigurationChanged', `Client certificates are optional (AllowInsecureFallback): ${insecure.join(', ')}`, gen)];
}

function gatewayResolvedRefs(backend: Verdict, listeners: ListenerState[], gen: number | undefined): Condition {
  if (!backend.ok) return condition('ResolvedRefs', false, backend.reason, backend.message, gen);
  const unresolved = listeners.filter((l) => !l.resolvedRefs.ok).map((l) => l.name);
  return unresolved.length > 0
    ? condition('ResolvedRefs', false, 'ListenersNotResolved', `listeners with unresolved references: ${unresolved.join(', ')}`, gen)
    : condition('ResolvedRefs', true, 'ResolvedRefs', 'All references resolved', gen);
}

/** Accepted when allowed by its Gateway and at least one of its listeners is valid. */
function listenerSetAccepted(set: ListenerSetState): Verdict {
  if (!set.gateway.accepted.ok) return { ok: false, reason: 'ParentNotAccepted', message: `Gateway ${set.gateway.key} is not accepted` };
  if (!set.allowed.ok) return set.allowed;
  if (!set.listeners.some(listenerServable)) return { ok: false, reason: 'ListenersNotValid', message: 'no listener of this ListenerSet is valid' };
  return set.allowed;
}

export function listenerSetStatus(set: ListenerSetState): ObjectStatus {
  const gen = set.owner.generation;
  const accepted = listenerSetAccepted(set);
  const programmed = accepted.ok && set.listeners.some(listenerProgrammed);
  return {
    apiVersion: set.owner.obj.apiVersion,
    kind: 'ListenerSet',
    namespace: set.owner.namespace,
    name: set.owner.obj.metadata.name,
    status: {
      conditions: [
        condition('Accepted', accepted.ok, accepted.reason, accepted.message, gen),
        programmed
          ? condition('Programmed', true, 'Programmed', `Served by Gateway ${set.gateway.key}`, gen)
          : condition('Programmed', false, accepted.ok ? 'Invalid' : accepted.reason, accepted.ok ? 'no listener can be served' : accepted.message, gen),
      ],
      listeners: set.listeners.map((l) => listenerStatus(l, gen)),
    },
  };
}

function listenerStatus(l: ListenerState, gen: number | undefined) {
  const programmed = listenerProgrammed(l);
  const accepted = l.conflict ?? l.accepted;
  const notProgrammedReason = l.conflict?.reason ?? (l.accepted.ok ? 'Invalid' : l.accepted.reason);
  const notProgrammedMessage = l.conflict?.message ?? (!l.accepted.ok ? l.accepted.message : !l.resolvedRefs.ok ? l.resolvedRefs.message : !l.gateway.accepted.ok ? l.gateway.accepted.message : 'not served');
  return {
    name: l.name,
    supportedKinds: l.supportedKinds,
    attachedRoutes: l.attachedRoutes,
    conditions: [
      condition('Accepted', accepted.ok, accepted.reason, accepted.message, gen),
      programmed
        ? condition('Programmed', true, 'Programmed', 'Listener is served', gen)
        : condition('Programmed', false, notProgrammedReason, notProgrammedMessage, gen),
      condition('ResolvedRefs', l.resolvedRefs.ok, l.resolvedRefs.reason, l.resolvedRefs.message, gen),
      l.conflict
        ? condition('Conflicted', true, l.conflict.reason, l.conflict.message, gen)
        : condition('Conflicted', false, 'NoConflicts', 'No conflicts', gen),
    ],
  };
}
