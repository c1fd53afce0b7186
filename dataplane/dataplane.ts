// The dataplane: executes HttpIR. `apply` compiles a version, opens the sockets it adds, swaps
// every kept socket to the new table, then closes the sockets it dropped and releases pools and
// certificates nothing uses any more. Applies run one at a time, in call order.

import pino from 'pino';
import client, { type Registry } from 'prom-client';
import type { HttpIR, HttpListener, L4IR } from '../ir/types.ts';
import { RouteTableCompiler } from './config/compile.ts';
import { HttpPolicyIndex } from './policy/http-policy.ts';
import { FlowNames, RequestFlows, type RequestFlowOptions } from './flows/request-flows.ts';
import { StreamPolicy } from './policy/stream-policy.ts';
import type { ListenerTable, RouteTable } from './config/route-table.ts';
import { ConnectionBudget, DEFAULT_FRONT_DOOR_LIMITS, type FrontDoorLimits, type SharedConnectionCount } from './front-door.ts';
import { DataplaneMetrics } from './metrics.ts';
import { RateLimitService, type RateLimitProblem } from './ratelimit/limiter.ts';
import { PassthroughServer, compilePassthroughRoutes } from './passthrough/passthrough-server.ts';
import { ListenerServer } from './server.ts';
import { SecureContextCache } from './tls/certificates.ts';
import { UpstreamPools } from './upstream/pools.ts';
import { PickerStates, type PickerStateGeneration } from './upstream/weighted.ts';
import { L4Metrics } from './l4/metrics.ts';
import { TcpProxyServer, compileProxyRoute } from './l4/tcp-proxy.ts';
import { UdpProxyServer } from './l4/udp-proxy.ts';
import { newSessionKey } from './upstream/session.ts';
import { pinTickObjectShape } from './tick-shape.ts';

/** A TLS, TCP or UDP socket server: routes swap in with `update`. */
interface L4Server<R> {
  listen(address: string, port: number, reusePort?: boolean): Promise<void>;
  update(routes: R): void;
  close(drainMs: number): Promise<void>;
}

export interface DataplaneOptions {
  /** Added to every listener port when binding. */
  portOffset?: number;
  /**
   * Added to the ports of redirects Sluice derives (no explicit port): where clients connect to the
   * bound ports themselves (standalone) it is portOffset; 0 (the default) where a Service or NAT in
   * front maps Gateway ports to the bound ones (Kubernetes mode, conformance runs).
   */
  redirectPortOffset?: number;
  logger?: pino.Logger;
  /** Where metrics are registered; prom-client's default registry when absent. */
  registry?: Registry;
  /** Rate-limit buckets and Redis (kept across reloads); absent: local buckets only, no Redis. */
  rateLimits?: RateLimitService;
  /** Client timeouts and connection limits; DEFAULT_FRONT_DOOR_LIMITS when absent. */
  frontDoor?: FrontDoorLimits;
  /** Request flows (one record per proxied request) go here; absent: none are recorded. */
  flows?: RequestFlowOptions;
  /** Bind with SO_REUSEPORT: one of several worker threads serving the same listeners (--workers). */
  reusePort?: boolean;
  /** 48 bytes: the TLS session ticket keys of HTTPS listeners, the same in every worker thread (a ticket resumes on any). */
  tlsTicketKeys?: Buffer;
  /** --workers: --max-connections counts every worker's connections (shared memory); absent: this dataplane's alone. */
  connectionCount?: SharedConnectionCount;
  /** Signs session persistence tokens (dataplane/upstream/session.ts); absent: a random key of this dataplane's own. */
  sessionKey?: Buffer;
}

export interface ListenerResult {
  name: string;
  ok: boolean;
  error?: string;
  /** The bind error's code (EADDRNOTAVAIL: the address is on no interface here). */
  code?: string;
}

export interface ApplyResult {
  version: string;
  listeners: ListenerResult[];
}

/** How long removed listeners, `close()` and released pools wait for in-flight requests. */
export const DRAIN_TIMEOUT_MS = 10_000;

export class Dataplane {
  private readonly portOffset: number;
  private readonly redirectPortOffset: number;
  private readonly sessionKey: Buffer;
  private readonly logger: pino.Logger;
  private readonly metrics: DataplaneMetrics;
  private readonly pools: UpstreamPools;
  /** Connection counts and load shedding across every listener of this dataplane. */
  private readonly budget: ConnectionBudget;
  private readonly certificates = new SecureContextCache();
  private readonly pickerStates = new PickerStates();
  private readonly rateLimits: RateLimitService;
  private readonly servers = new Map<string, ListenerServer>();
  /** TLS sockets (TLSRoute, passthrough and terminate), by listener name. */
  private readonly passthrough = new Map<string, PassthroughServer>();
  /** TCP sockets (TCPRoute), by listener name. */
  private readonly tcp = new Map<string, TcpProxyServer>();
  /** UDP sockets (UDPRoute), by listener name. */
  private readonly udp = new Map<string, UdpProxyServer>();
  private readonly l4Metrics: L4Metrics;
  /** Sockets being drained after removal; awaited by close(). */
  private readonly closing = new Set<Promise<void>>();
  private table: RouteTable | null = null;
  /** Recompiles only what a version changed (by IR object identity); see RouteTableCompiler. */
  private readonly compiler = new RouteTableCompiler();
  /** The last version's L7 policy index and flow recorder, reused while their IR part is the same object. */
  private httpPolicy: { source: L4IR['policy']; index: HttpPolicyIndex | null } | null = null;
  private requestFlows: { source: L4IR | undefined; flows: RequestFlows | null } | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private readonly flows: RequestFlowOptions | null;
  private readonly reusePort: boolean;
  private readonly tlsTicketKeys: Buffer | null;

  constructor(options: DataplaneOptions = {}) {
    pinTickObjectShape();
    this.flows = options.flows ?? null;
    this.reusePort = options.reusePort ?? false;
    this.tlsTicketKeys = options.tlsTicketKeys ?? null;
    this.portOffset = options.portOffset ?? 0;
    this.redirectPortOffset = options.redirectPortOffset ?? 0;
    this.sessionKey = options.sessionKey ?? newSessionKey();
    this.logger = options.logger ?? pino({ name: 'sluice-dataplane' });
    this.metrics = new DataplaneMetrics(options.registry ?? client.register);
    this.l4Metrics = new L4Metrics(options.registry ?? client.register);
    const frontDoor = options.frontDoor ?? DEFAULT_FRONT_DOOR_LIMITS;
    this.budget = new ConnectionBudget(frontDoor, options.registry ?? client.register, this.logger, undefined, options.connectionCount);
    this.pools = new UpstreamPools(DRAIN_TIMEOUT_MS, frontDoor.backendConnectTimeoutMs, frontDoor.backendIdleTimeoutMs);
    this.rateLimits = options.rateLimits ?? new RateLimitService({ registry: options.registry ?? client.register, logger: this.logger });
  }

  /** The last version applied (its table is live), or null before the first. */
  get version(): string | null {
    return this.table?.version ?? null;
  }

  /** Never rejects for bad IR: problems come back per listener and in the logs. */
  /** `l4`: ir.l4, whose HTTP rules (`policy.http`) the proxy enforces per request and whose names flows use. */
  apply(version: string, http: HttpIR, l4?: L4IR): Promise<ApplyResult> {
    const result = this.queue.then(() => this.applyNow(version, http, l4));
    this.queue = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    const servers = [...this.servers.values()];
    this.servers.clear();
    const streams: L4Server<unknown>[] = [...this.passthrough.values(), ...this.tcp.values(), ...this.udp.values()];
    this.passthrough.clear();
    this.tcp.clear();
    this.udp.clear();
    await Promise.all([...servers.map((server) => this.closeServer(server)), ...streams.map((p) => p.close(DRAIN_TIMEOUT_MS)), ...this.closing]);
    await this.pools.closeAll();
    this.budget.close();
  }

  private async applyNow(version: string, http: HttpIR, l4?: L4IR): Promise<ApplyResult> {
    if (this.closed) return rejected(version, http, 'the dataplane is closed');

    const pickerStates = this.pickerStates.begin();
    if (this.httpPolicy === null || this.httpPolicy.source !== l4?.policy) this.httpPolicy = { source: l4?.policy, index: HttpPolicyIndex.build(l4?.policy) };
    const httpPolicy = this.httpPolicy.index;
    if (this.requestFlows === null || this.requestFlows.source !== l4) this.requestFlows = { source: l4, flows: this.flows === null ? null : new RequestFlows(this.flows, new FlowNames(l4)) };
    const flows = this.requestFlows.flows;
    let table: RouteTable;
    try {
      const rateLimitProblems: RateLimitProblem[] = [];
      const rateLimits = this.rateLimits.compile(http.rateLimits, rateLimitProblems);
      const compiled = this.compiler.compile(version, http, { pools: this.pools, certificates: this.certificates, pickerStates, metrics: this.metrics, rateLimits, redirectPortOffset: this.redirectPortOffset, sessionKey: this.sessionKey, httpPolicy, flows });
      table = compiled.table;
      table.problems.push(...rateLimitProblems);
      // From here the version is served: kept backends take their new endpoints now.
      compiled.commit();
    } catch (error) {
      const message = (error as Error).message;
      this.logger.error({ version, err: message }, 'configuration rejected; keeping the last good table');
      this.metrics.versionRejected();
      this.pools.retainOnly(this.table?.endpointKeys ?? new Set()); // pools the failed compile created
      return rejected(version, http, `configuration rejected: ${message}`);
    }
    for (const problem of table.problems) this.logger.warn({ version, subject: problem.subject }, problem.message);

    // Open what is new before closing what is gone; swap kept sockets in the same pass.
    const listeners: ListenerResult[] = [];
    const kept = new Set<string>();
    for (const listenerTable of table.listeners) {
      const result = await this.install(listenerTable);
      listeners.push(result);
      this.metrics.listenerState(listenerTable.name, result.ok);
      if (result.ok) kept.add(listenerTable.name);
    }
    for (const [name, server] of this.servers) {
      if (kept.has(name)) continue;
      this.servers.delete(name);
      if (!table.listeners.some((listener) => listener.name === name)) this.metrics.listenerState(name, null);
      this.closeInBackground(server);
    }

    listeners.push(...(await this.applyStreams(http, pickerStates, StreamPolicy.build(httpPolicy, flows))));

    this.table = table;
    this.pickerStates.commit(pickerStates);
    this.pools.retainOnly(table.endpointKeys);
    this.certificates.retainOnly(table.certificateKeys);
    this.metrics.versionApplied(version);
    this.logger.info({ version, listeners: listeners.length, failed: listeners.filter((l) => !l.ok).length }, 'configuration applied');
    return { version, listeners };
  }

  /** Binds or updates the socket for one listener. */
  private async install(table: ListenerTable): Promise<ListenerResult> {
    const name = table.name;
    const existing = this.servers.get(name);
    if (table.protocol === 'HTTPS' && table.certificates === null) {
      return this.fail(name, 'no usable TLS certificate for this HTTPS listener');
    }
    if (table.protocol !== 'HTTP' && table.protocol !== 'HTTPS') {
      return this.fail(name, `unsupported protocol ${JSON.stringify(table.protocol)}`);
    }
    const bindPort = table.port + this.portOffset;
    if (existing !== undefined) {
      if (existing.protocol === table.protocol && existing.address === table.listener.address && existing.bindPort === bindPort) {
        existing.update(table);
        return { name, ok: true };
      }
      // Same socket, different protocol: the old server stops listening at once (freeing the
      // port) and drains in the background while the new one binds.
      this.servers.delete(name);
      this.closeInBackground(existing);
    }
    const server = new ListenerServer(table, bindPort, this.logger, this.budget, this.reusePort, this.tlsTicketKeys);
    try {
      await server.listen();
    } catch (error) {
      await server.close(0).catch(() => undefined);
      return this.fail(name, describeBindError(error as Error, table.listener, bindPort), (error as NodeJS.ErrnoException).code);
    }
    this.servers.set(name, server);
    this.logger.info({ listener: name, address: table.listener.address, port: bindPort, protocol: table.protocol }, 'listener bound');
    return { name, ok: true };
  }

  /** TLS, TCP and UDP listeners: routes swap in place; sockets open before removed ones close. */
  private async applyStreams(http: HttpIR, pickerStates: PickerStateGeneration, policy: StreamPolicy | null): Promise<ListenerResult[]> {
    const backends = http.backends ?? {};
    const { limits } = this.budget;
    return [
      ...(await this.applySockets(this.passthrough, http.passthrough ?? [], 'TLS', (l) => compilePassthroughRoutes(l, backends, pickerStates, policy), (name, routes) =>
        new PassthroughServer(name, routes, this.logger, this.budget, this.l4Metrics, limits.streamIdleTimeoutMs),
      )),
      ...(await this.applySockets(this.tcp, http.tcp ?? [], 'TCP', (l) => compileProxyRoute(l, backends, pickerStates, policy), (name, route) =>
        new TcpProxyServer(name, route, this.logger, this.budget, this.l4Metrics, limits.streamIdleTimeoutMs),
      )),
      ...(await this.applySockets(this.udp, http.udp ?? [], 'UDP', (l) => compileProxyRoute(l, backends, pickerStates, null), (name, route) =>
        new UdpProxyServer(name, route, this.logger, this.budget, this.l4Metrics, limits.udpSessionTimeoutMs),
      )),
    ];
  }

  /** One kind of byte-stream or datagram socket: kept ones get their new routes, new ones bind, dropped ones drain. */
  private async applySockets<L extends { name: string; address: string; port: number }, R, S extends L4Server<R>>(
    servers: Map<string, S>,
    listeners: L[],
    protocol: string,
    compile: (listener: L) => R,
    create: (name: string, routes: R) => S,
  ): Promise<ListenerResult[]> {
    const results: ListenerResult[] = [];
    const wanted = new Set<string>();
    for (const listener of listeners) {
      wanted.add(listener.name);
      const routes = compile(listener);
      const existing = servers.get(listener.name);
      if (existing) {
        existing.update(routes);
        results.push({ name: listener.name, ok: true });
        continue;
      }
      const server = create(listener.name, routes);
      const bindPort = listener.port + this.portOffset;
      try {
        await server.listen(listener.address, bindPort, this.reusePort);
        servers.set(listener.name, server);
        this.logger.info({ listener: listener.name, address: listener.address, port: bindPort, protocol }, 'listener bound');
        results.push({ name: listener.name, ok: true });
      } catch (error) {
        await server.close(0).catch(() => undefined);
        results.push(this.fail(listener.name, `cannot bind ${listener.address}:${bindPort}: ${(error as Error).message}`, (error as NodeJS.ErrnoException).code));
      }
    }
    for (const [name, server] of servers) {
      if (wanted.has(name)) continue;
      servers.delete(name);
      const closing = server.close(DRAIN_TIMEOUT_MS).finally(() => this.closing.delete(closing));
      this.closing.add(closing);
    }
    return results;
  }

  private fail(name: string, error: string, code?: string): ListenerResult {
    this.logger.error({ listener: name, err: error }, 'listener not serving');
    return { name, ok: false, error, ...(code !== undefined ? { code } : {}) };
  }

  private closeInBackground(server: ListenerServer): void {
    const closing = this.closeServer(server).finally(() => this.closing.delete(closing));
    this.closing.add(closing);
  }

  private async closeServer(server: ListenerServer): Promise<void> {
    try {
      await server.close(DRAIN_TIMEOUT_MS);
    } catch (error) {
      this.logger.warn({ listener: server.name, err: (error as Error).message }, 'listener close failed');
    }
  }
}

function rejected(version: string, http: HttpIR, error: string): ApplyResult {
  const listeners = Array.isArray(http?.listeners) ? http.listeners : [];
  return { version, listeners: listeners.map((listener) => ({ name: String(listener?.name), ok: false, error })) };
}

function describeBindError(error: Error & { code?: string }, listener: HttpListener, port: number): string {
  const where = `${listener.address}:${port}`;
  return error.code !== undefined ? `cannot bind ${where}: ${error.code} (${error.message})` : `cannot bind ${where}: ${error.message}`;
}
