// A TCP listener that relays byte streams (TLS passthrough and terminate, TCP): connection limits
// from the front door's budget, one backend connection per client connection with the backend
// connect timeout, an idle timeout on the relayed stream, and a drain on close (open connections
// keep going until `drainMs`, so a reload or a removed route never cuts them at once).
import { connect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Backend, Endpoint } from '../../ir/types.ts';
import type { BackendChoice } from './backend-choice.ts';
import type { ConnectionBudget } from '../front-door.ts';
import type { L4Metrics, L4Outcome } from './metrics.ts';

export type StreamProtocol = 'TLS' | 'TCP';

export abstract class StreamListener {
  readonly name: string;
  protected readonly logger: Logger;
  /** Connection limits, load shedding, and the backend connect timeout. */
  protected readonly budget: ConnectionBudget;
  protected readonly metrics: L4Metrics;
  private readonly protocol: StreamProtocol;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(name: string, protocol: StreamProtocol, logger: Logger, budget: ConnectionBudget, metrics: L4Metrics) {
    this.name = name;
    this.protocol = protocol;
    this.logger = logger;
    this.budget = budget;
    this.metrics = metrics;
    // Half-open: a client that shuts down its sending side after its request (nc -N, whois) still
    // reads the answer; each side's end is passed on to the other, as Envoy's tcp_proxy does.
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    // Only reached when libuv could not absorb an accept error (EMFILE) itself; never a crash.
    this.server.on('error', (error: Error & { code?: string }) => this.logger.debug({ listener: name, code: error.code }, 'stream listener: accept failed'));
  }

  /** `reusePort`: each worker thread (--workers) binds its own socket to the port (SO_REUSEPORT). */
  listen(address: string, port: number, reusePort = false): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, host: address, reusePort }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
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

  /** Serves an admitted client connection (counted, error-safe, closed with the listener's drain). */
  protected abstract serve(client: Socket): void;

  private accept(client: Socket): void {
    // Refused (limits, load shedding): closed before a byte is read; a byte stream has no way to say more.
    if (this.budget.admit(this.name) !== null) {
      client.destroy();
      return;
    }
    this.sockets.add(client);
    client.once('close', () => {
      this.sockets.delete(client);
      this.budget.release(this.name);
      this.metrics.bytes.labels(this.name, this.protocol, 'from_client').inc(client.bytesRead);
      this.metrics.bytes.labels(this.name, this.protocol, 'to_client').inc(client.bytesWritten);
    });
    client.setNoDelay(true);
    client.on('error', () => client.destroy());
    this.serve(client);
  }

  protected count(outcome: L4Outcome): void {
    this.metrics.connections.labels(this.name, this.protocol, outcome).inc();
  }

  /**
   * L7 HTTP policy on the chosen endpoint (dataplane/policy/stream-policy.ts): true when it refuses
   * the stream, which is then closed before anything is read or relayed (counted policy_denied).
   */
  protected refusedByPolicy(client: Socket, route: BackendChoice, chosen: { backend: Backend; endpoint: Endpoint }): boolean {
    const decision = route.policy?.decide(client, { name: route.name, source: route.source }, chosen.backend.name, chosen.endpoint);
    if (decision?.verdict !== 'DROPPED') return false;
    this.count('policy_denied');
    this.logger.debug({ listener: this.name, route: route.name, endpoint: `${chosen.endpoint.address}:${chosen.endpoint.port}`, rules: decision.rules }, 'stream refused: the endpoint port has L7 HTTP rules');
    client.destroy();
    return true;
  }

  /**
   * Connects to `endpoint` (TLS when `tls` is given) within the backend connect timeout, writes
   * `head` (bytes already read from the client), then relays both ways until either side ends or
   * nothing moves for `idleTimeoutMs`. `client` is the plain socket or the TLS stream over it.
   */
  protected relay(client: Socket | Duplex, endpoint: Endpoint, route: string, idleTimeoutMs: number, head?: Buffer, tls?: ConnectionOptions): void {
    const connectTimeoutMs = this.budget.limits.backendConnectTimeoutMs;
    const upstream = tls
      ? tlsConnect({ ...tls, host: endpoint.address, port: endpoint.port })
      : connect({ host: endpoint.address, port: endpoint.port, noDelay: true, allowHalfOpen: true });
    let connected = false;
    const teardown = () => {
      client.destroy();
      upstream.destroy();
    };
    // One side closed after its clean end: the other gets what is still queued for it, then goes,
    // within the idle timeout should that peer not read it. A reset or an error: both go at once.
    const closeAfterFlush = (closed: Socket | Duplex, other: Socket | Duplex) => {
      if (!closed.readableEnded || other.destroyed || other.writableFinished || !connected) return teardown();
      other.once('finish', teardown);
      const timer = setTimeout(teardown, idleTimeoutMs);
      timer.unref();
      other.once('close', () => clearTimeout(timer));
    };
    upstream.setTimeout(connectTimeoutMs, () => upstream.destroy(new Error(`connect timeout after ${connectTimeoutMs} ms`)));
    upstream.once(tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      this.count('forwarded');
      // Socket timeouts count writes too: bytes either way keep the relay alive.
      upstream.setTimeout(idleTimeoutMs, () => {
        this.logger.debug({ listener: this.name, route }, 'stream idle: closing both sides');
        teardown();
      });
      if (head) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', (error) => {
      if (!connected) {
        this.count('connect_failed');
        this.logger.debug({ listener: this.name, route, endpoint: `${endpoint.address}:${endpoint.port}`, err: error.message }, 'backend connection failed');
      }
      teardown();
    });
    upstream.on('close', () => closeAfterFlush(upstream, client));
    client.on('close', () => closeAfterFlush(client, upstream));
  }
}
