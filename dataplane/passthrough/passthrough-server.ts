// TLS passthrough (TLSRoute): a plain TCP listener that reads the SNI from
// the ClientHello, picks the route by hostname (exact, then the longest
// wildcard) and a backend by weight, and splices the connection through
// without decrypting it. Routes swap by reference; open connections keep going.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Backend, PassthroughListener } from '../../ir/types.ts';
import type { ConnectionBudget } from '../front-door.ts';
import { HostIndex } from '../router/host.ts';
import { weightedPicker, type PickerStateGeneration, type SmoothWeightedPicker } from '../upstream/weighted.ts';
import { readServerName } from './client-hello.ts';

interface CompiledRoute {
  name: string;
  /** Picks a backend's endpoint list; null entries are invalid references. */
  picker: SmoothWeightedPicker<Backend | null> | null;
  /** Round-robin position per backend. */
  next: Map<string, number>;
}

export function compilePassthroughRoutes(listener: PassthroughListener, backends: Record<string, Backend>, states: PickerStateGeneration): HostIndex<CompiledRoute> {
  const index = new HostIndex<CompiledRoute>();
  for (const route of listener.routes) {
    const candidates = route.backends.map((b, i) => ({ item: b.backend ? (backends[b.backend] ?? null) : null, weight: b.weight, id: `${i}:${b.backend}` }));
    index.add(route.hostname, { name: route.name, picker: weightedPicker(route.name, candidates, states), next: new Map() });
  }
  return index;
}

export class PassthroughServer {
  readonly name: string;
  private routes: HostIndex<CompiledRoute>;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly logger: Logger;
  /** Connection limits, load shedding, and the ClientHello (TLS handshake) and backend connect timeouts. */
  private readonly budget: ConnectionBudget;

  constructor(name: string, routes: HostIndex<CompiledRoute>, logger: Logger, budget: ConnectionBudget) {
    this.name = name;
    this.routes = routes;
    this.logger = logger;
    this.budget = budget;
    this.server = createServer((socket) => this.accept(socket));
    // Only reached when libuv could not absorb an accept error (EMFILE) itself; never a crash.
    this.server.on('error', (error: Error & { code?: string }) => this.logger.debug({ listener: name, code: error.code }, 'passthrough: accept failed'));
  }

  listen(address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, address, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  update(routes: HostIndex<CompiledRoute>): void {
    this.routes = routes;
  }

  /** Stops accepting; open connections are ended after `drainMs`. */
  async close(drainMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const timer = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, drainMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }

  private accept(client: Socket): void {
    // Refused (limits, load shedding): closed before a byte is read; TLS has no way to say more.
    if (this.budget.admit(this.name, this.sockets.size) !== null) {
      client.destroy();
      return;
    }
    this.sockets.add(client);
    client.once('close', () => {
      this.sockets.delete(client);
      this.budget.release();
    });
    client.setNoDelay(true);
    // The ClientHello is the first step of the client's handshake.
    client.setTimeout(this.budget.limits.tlsHandshakeTimeoutMs, () => {
      this.budget.timedOut(this.name, 'tls_handshake');
      client.destroy();
    });
    client.on('error', () => client.destroy());
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      const data = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const hello = readServerName(data);
      if (hello.kind === 'more') return;
      client.off('data', onData);
      client.pause();
      client.setTimeout(0);
      if (hello.kind === 'invalid') {
        this.logger.debug({ listener: this.name, reason: hello.reason }, 'passthrough: not a TLS ClientHello');
        client.destroy();
        return;
      }
      this.forward(client, hello.serverName, data);
    };
    client.on('data', onData);
  }

  private forward(client: Socket, serverName: string | null, hello: Buffer): void {
    const route = serverName ? this.routes.find(serverName) : undefined;
    const backend = route?.picker?.pick();
    const endpoints = backend?.endpoints ?? [];
    if (!route || !backend || endpoints.length === 0) {
      this.logger.debug({ listener: this.name, serverName, route: route?.name }, 'passthrough: no route or endpoint for this server name');
      client.destroy();
      return;
    }
    const position = route.next.get(backend.name) ?? 0;
    route.next.set(backend.name, position + 1);
    const endpoint = endpoints[position % endpoints.length]!;
    const upstream = connect({ host: endpoint.address, port: endpoint.port, noDelay: true });
    const connectTimeoutMs = this.budget.limits.backendConnectTimeoutMs;
    upstream.setTimeout(connectTimeoutMs, () => upstream.destroy(new Error(`connect timeout after ${connectTimeoutMs} ms`)));
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.write(hello);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    const teardown = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', teardown);
    upstream.on('close', teardown);
    client.on('close', teardown);
  }
}
