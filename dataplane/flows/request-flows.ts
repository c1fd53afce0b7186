// One flow record per proxied request (type L7): who asked, which route and endpoint answered,
// what L7 policy said, the status and how long it took. Drops and audits are always recorded;
// forwarded requests are sampled (`sampleRate`), so the cost on the hot path stays one small
// object per request; a sampled forwarded one is copied into the ring's columns (FlowBuffer.pushForwarded)
// through one record reused in place, so it leaves no object behind.

import { podsByAddress, type Flow, type FlowDropReason, type FlowPeer, type FlowVerdict } from '../../ir/flow.ts';
import { IDENTITY_WORLD, type L4IR } from '../../ir/types.ts';
import { HttpPolicyIndex, type L7Decision } from '../policy/http-policy.ts';
import { L4PolicyIndex, type L4Decision } from '../policy/l4-verdict.ts';
import { isoTime, type FlowBuffer, type ForwardedRequest } from './flow-buffer.ts';

export interface RequestFlowOptions {
  buffer: FlowBuffer;
  /** Share of FORWARDED requests recorded, 0–1; drops and audits are always recorded. */
  sampleRate: number;
}

const WORLD_LABELS = ['reserved:world'];
/** Bounds the peer cache (endpoint addresses of one version; a client address is never cached). */
const MAX_CACHED_PEERS = 10_000;

/** An IPv4 client on a dual-stack socket as its IPv4 address. */
const plainIp = (ip: string): string => (ip.startsWith('::ffff:') ? ip.slice(7) : ip);

/** `HTTP/<version>` of Node's httpVersion, made once per version. */
const PROTOCOLS = new Map<string, string>([['2.0', 'HTTP/2']]);
function protocolOf(httpVersion: string): string {
  let protocol = PROTOCOLS.get(httpVersion);
  if (protocol === undefined) {
    protocol = `HTTP/${httpVersion}`;
    // Bounded: Node's parser yields 1.0, 1.1 and 2.0 only; anything else is not remembered.
    if (PROTOCOLS.size < 8) PROTOCOLS.set(httpVersion, protocol);
  }
  return protocol;
}

/** Names for the numbers a request meets, from one IR version: identities, rules, Services. */
export class FlowNames {
  private readonly identities = new Map<number, { labels: string[]; namespace?: string }>();
  private readonly rules = new Map<number, string>();
  private readonly services = new Map<string, { namespace: string; name: string; port: number }>();
  /** Service VIP and real endpoints by backend name, to name the kernel's refusals. */
  private readonly serviceEndpoints = new Map<string, { vip: string; endpoints: { address: string; port: number }[] }>();
  private readonly l4: L4PolicyIndex | null;
  /** Endpoint address → `<ns>/<name>` of its Pod. */
  private readonly pods: Map<string, string>;
  private readonly index: HttpPolicyIndex | null;

  constructor(l4: L4IR | undefined) {
    for (const i of l4?.policy?.identities ?? []) this.identities.set(i.id, { labels: i.labels, ...(i.namespace ? { namespace: i.namespace } : {}) });
    for (const r of l4?.policy?.rules ?? []) this.rules.set(r.id, r.name);
    this.pods = podsByAddress(l4?.policy);
    for (const s of l4?.services ?? []) this.services.set(s.name, { namespace: s.origin.namespace, name: s.origin.name, port: s.port });
    this.index = l4?.policy ? new HttpPolicyIndex(l4.policy) : null;
    this.l4 = l4?.policy ? new L4PolicyIndex(l4.policy) : null;
    for (const s of l4?.services ?? []) this.serviceEndpoints.set(s.name, { vip: s.vip, endpoints: s.endpoints });
  }

  /**
   * Endpoints are few: their peers are made once per version and shared by every flow (flows are
   * read-only data). By address, then port: no key string built per request.
   */
  private readonly peers = new Map<string, Map<number, FlowPeer>>();
  private cachedPeers = 0;

  peer(ip: string, port: number, identity?: number): FlowPeer {
    let byPort = this.peers.get(ip);
    let peer = byPort?.get(port);
    if (peer === undefined) {
      const id = identity ?? this.index?.identityOf(ip) ?? IDENTITY_WORLD;
      const known = this.identities.get(id);
      const pod = this.pods.get(ip);
      peer = { ip, port, identity: id, ...(known?.namespace ? { namespace: known.namespace } : {}), labels: known?.labels ?? (id === IDENTITY_WORLD ? WORLD_LABELS : []), ...(pod ? { pod } : {}) };
      if (this.cachedPeers < MAX_CACHED_PEERS) {
        if (byPort === undefined) this.peers.set(ip, (byPort = new Map()));
        byPort.set(port, peer);
        this.cachedPeers++;
      }
    }
    return peer;
  }

  rule(id: number): { id: number; name: string } {
    let rule = this.ruleObjects.get(id);
    if (rule === undefined) this.ruleObjects.set(id, (rule = { id, name: this.rules.get(id) ?? `rule ${id}` }));
    return rule;
  }

  private readonly ruleObjects = new Map<number, { id: number; name: string }>();

  service(backend: string): { namespace: string; name: string; port: number } | undefined {
    return this.services.get(backend);
  }

  /**
   * Why the kernel refused a connection to `endpoint` of `backend`, when L3/L4 policy refuses it:
   * the endpoint's own verdict, or, for a Service VIP (the kernel picked the endpoint), the verdict
   * every endpoint behind it shares. Null when policy does not explain the refusal.
   */
  l4Refusal(backend: string | null, endpoint: { address: string; port: number }): (L4Decision & { identity: number; endpoint: { address: string; port: number } }) | null {
    if (this.l4 === null || this.index === null) return null;
    const service = backend !== null ? this.serviceEndpoints.get(backend) : undefined;
    const targets = service !== undefined && service.vip === endpoint.address ? service.endpoints : [endpoint];
    let first: (L4Decision & { identity: number; endpoint: { address: string; port: number } }) | null = null;
    for (const t of targets) {
      const identity = this.index.identityOf(t.address);
      const d = this.l4.decide(identity, t.port);
      if (d.verdict !== 'DROPPED') return null;
      first ??= { ...d, identity, endpoint: t };
    }
    return first;
  }
}

/** The recorder of one route table (its version's names). */
export class RequestFlows {
  private readonly options: RequestFlowOptions;
  readonly names: FlowNames;

  constructor(options: RequestFlowOptions, names: FlowNames) {
    this.options = options;
    this.names = names;
  }

  begin(clientIp: string | undefined, clientPort: number | undefined, method: string, path: string, host: string, httpVersion: string, startedAt: number): RequestFlow {
    return new RequestFlow(this, clientIp ?? '', clientPort ?? 0, method, path, host, httpVersion, startedAt);
  }

  /** Sampling and the push: FORWARDED flows at `sampleRate`, everything else always. */
  keep(flow: RequestFlow, verdict: FlowVerdict): boolean {
    const rate = this.options.sampleRate;
    return verdict !== 'FORWARDED' || rate >= 1 || (rate > 0 && Math.random() < rate);
  }

  push(flow: Flow): void {
    this.options.buffer.push(flow);
  }

  /** The record forwarded requests are written into (reused: the ring copies it). */
  readonly forwarded: ForwardedRequest = {
    wallClock: 0,
    clientIp: '',
    clientPort: 0,
    method: '',
    path: '',
    host: '',
    protocol: '',
    status: 0,
    latencyMs: 0,
    direction: 'ingress',
    destination: NO_DESTINATION,
    service: undefined,
    rule: undefined,
    route: undefined,
    gateway: undefined,
  };

  pushForwarded(): void {
    this.options.buffer.pushForwarded(this.forwarded);
  }

  /**
   * A byte stream (TCPRoute, TLSRoute) to an endpoint whose port has HTTP rules: refused (DROPPED)
   * or let through in audit mode (AUDIT), reason POLICY_L7, naming the rule. Type L7: L7 policy
   * decided, though no request was read (no `l7` part).
   */
  stream(clientIp: string, clientPort: number, route: { name: string; source: string }, backend: string, endpoint: { address: string; port: number }, decision: L7Decision): void {
    const service = this.names.service(backend);
    this.push({
      time: isoTime(Date.now()),
      type: 'L7',
      verdict: decision.verdict,
      dropReason: 'POLICY_L7',
      direction: decision.direction,
      protocol: 'TCP',
      source: { ip: plainIp(clientIp), port: clientPort, identity: IDENTITY_WORLD, labels: WORLD_LABELS },
      destination: this.names.peer(endpoint.address, endpoint.port),
      ...(service ? { service } : {}),
      ...(decision.rules.length > 0 ? { rule: this.names.rule(decision.rules[0]!) } : {}),
      route,
    });
  }
}

const NO_DESTINATION: FlowPeer = { ip: '', port: 0, identity: 0, labels: [] };

/** A flow's `route`, one object per compiled route shared by its flows (flows are read-only data). */
const FLOW_ROUTES = new WeakMap<object, { name: string; source: string }>();
/** The last route asked for and its flow route: consecutive requests mostly take the same route, and a WeakMap probe costs more than a compare. */
let lastRoute: object | null = null;
let lastFlowRoute: { name: string; source: string } = { name: '', source: '' };
function flowRoute(route: { readonly name: string; readonly source: string }): { name: string; source: string } {
  if (route === lastRoute) return lastFlowRoute;
  let shared = FLOW_ROUTES.get(route);
  if (shared === undefined) FLOW_ROUTES.set(route, (shared = { name: route.name, source: route.source }));
  lastRoute = route;
  lastFlowRoute = shared;
  return shared;
}

/**
 * One request on its way; `finish` records it (once). The proxy's request (ProxyRequest) is one
 * itself, so a routed request allocates no separate flow object (issue #14); `begin` makes a
 * standalone one.
 */
export class RequestFlow {
  /** Null: the request's table records no flows, and `finish` records nothing. */
  private readonly recorder: RequestFlows | null;
  private readonly clientIp: string;
  private readonly clientPort: number;
  readonly method: string;
  /** Path and query (origin-form), as the flow's `l7.path` shows them. */
  readonly target: string;
  readonly host: string;
  private readonly httpVersion: string;
  readonly startedAt: number;
  /** The route that matched (the compiled route itself: its name and source are read when recorded). */
  route: { readonly name: string; readonly source: string } | null = null;
  /** `<ns>/<name>` of the Gateway whose listener took the request (the access log's per-Gateway switch). */
  gateway: string | null = null;
  backend: string | null = null;
  endpoint: { readonly address: string; readonly port: number; readonly identity?: number } | null = null;
  decision: L7Decision | null = null;
  /** The endpoint refused the connection (ECONNREFUSED): L3/L4 policy may say why. */
  connectionRefused = false;
  private done = false;

  constructor(recorder: RequestFlows | null, clientIp: string, clientPort: number, method: string, target: string, host: string, httpVersion: string, startedAt: number) {
    this.recorder = recorder;
    this.clientIp = recorder === null ? clientIp : plainIp(clientIp);
    this.clientPort = clientPort;
    this.method = method;
    this.target = target;
    this.host = host;
    this.httpVersion = httpVersion;
    this.startedAt = startedAt;
  }

  /** Epoch ms when the request came, from its start on the monotonic clock: no field (a boxed number) per request. */
  private wallClock(): number {
    return Math.floor(performance.timeOrigin + this.startedAt);
  }

  /** The answer the client got. The verdict is L7 policy's unless a drop reason says otherwise. */
  /** `now`: performance.now() when the caller has read it already. */
  finish(status: number, dropReason?: FlowDropReason, now = performance.now()): void {
    const recorder = this.recorder;
    if (this.done || recorder === null) return;
    this.done = true;
    const decision = this.decision;
    const verdict: FlowVerdict = dropReason !== undefined ? 'DROPPED' : (decision?.verdict ?? 'FORWARDED');
    if (!recorder.keep(this, verdict)) return;
    const names = recorder.names;
    const refusal = this.connectionRefused && this.endpoint !== null && dropReason === undefined ? names.l4Refusal(this.backend, this.endpoint) : null;
    if (refusal !== null) return this.record(recorder, status, refusal, now);
    if (verdict === 'FORWARDED') return this.recordForwarded(recorder, status, now);
    // Built field by field, no spreads (drops and audits; forwarded requests are recordForwarded's).
    const flow: Flow = {
      time: isoTime(this.wallClock()),
      type: 'L7',
      verdict,
      direction: decision !== null ? decision.direction : 'ingress',
      protocol: 'TCP',
      source: { ip: this.clientIp, port: this.clientPort, identity: IDENTITY_WORLD, labels: WORLD_LABELS },
      destination: this.endpoint !== null ? names.peer(this.endpoint.address, this.endpoint.port, this.endpoint.identity) : NO_DESTINATION,
      l7: this.l7(status, now),
    };
    const reason = dropReason ?? (decision !== null && decision.verdict !== 'FORWARDED' ? 'POLICY_L7' : undefined);
    if (reason !== undefined) flow.dropReason = reason;
    const service = this.backend !== null ? names.service(this.backend) : undefined;
    if (service !== undefined) flow.service = service;
    if (decision !== null && decision.rules.length > 0) flow.rule = names.rule(decision.rules[0]!);
    if (this.route !== null) flow.route = flowRoute(this.route);
    if (this.gateway !== null) flow.gateway = this.gateway;
    recorder.push(flow);
  }

  /** The bulk: written into the recorder's reused record, which the ring copies (no object per request). */
  private recordForwarded(recorder: RequestFlows, status: number, now: number): void {
    const names = recorder.names;
    const r = recorder.forwarded;
    const decision = this.decision;
    r.wallClock = this.wallClock();
    r.clientIp = this.clientIp;
    r.clientPort = this.clientPort;
    r.method = this.method;
    r.path = this.target;
    r.host = this.host;
    r.protocol = protocolOf(this.httpVersion);
    r.status = status;
    r.latencyMs = Math.round((now - this.startedAt) * 1000) / 1000;
    r.direction = decision !== null ? decision.direction : 'ingress';
    r.destination = this.endpoint !== null ? names.peer(this.endpoint.address, this.endpoint.port, this.endpoint.identity) : NO_DESTINATION;
    r.service = this.backend !== null ? names.service(this.backend) : undefined;
    r.rule = decision !== null && decision.rules.length > 0 ? names.rule(decision.rules[0]!) : undefined;
    r.route = this.route !== null ? flowRoute(this.route) : undefined;
    r.gateway = this.gateway ?? undefined;
    recorder.pushForwarded();
  }

  /** A request whose connection the kernel refused by L3/L4 policy: DROPPED with that reason and rule. */
  private record(recorder: RequestFlows, status: number, refusal: L4Decision & { identity: number; endpoint: { address: string; port: number } }, now: number): void {
    const names = recorder.names;
    const service = this.backend !== null ? names.service(this.backend) : undefined;
    recorder.push({
      time: isoTime(this.wallClock()),
      type: 'L7',
      verdict: 'DROPPED',
      ...(refusal.reason ? { dropReason: refusal.reason } : {}),
      direction: refusal.direction,
      protocol: 'TCP',
      source: { ip: this.clientIp, port: this.clientPort, identity: IDENTITY_WORLD, labels: WORLD_LABELS },
      // The endpoint refused (behind a VIP: the first of them, all refused alike).
      destination: names.peer(refusal.endpoint.address, refusal.endpoint.port, refusal.identity),
      ...(service ? { service } : {}),
      ...(refusal.rule !== undefined ? { rule: names.rule(refusal.rule) } : {}),
      ...(this.route !== null ? { route: flowRoute(this.route) } : {}),
      ...(this.gateway !== null ? { gateway: this.gateway } : {}),
      l7: this.l7(status, now),
    });
  }

  /** The request's HTTP part of a flow, as answered now. */
  private l7(status: number, now: number): NonNullable<Flow['l7']> {
    return {
      method: this.method,
      path: this.target,
      host: this.host,
      protocol: protocolOf(this.httpVersion),
      status,
      latencyMs: Math.round((now - this.startedAt) * 1000) / 1000,
    };
  }
}
