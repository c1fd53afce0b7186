// undici dispatchers keyed by endpoint `address:port`, shared by every backend and listener
// that reaches the endpoint and kept across reloads, so a reload never drops warm keep-alive
// connections. A dispatcher is closed only when a committed table no longer references it.
//
// HTTP/1.1 endpoints get a ClientStack (below: undici Clients, the idle ones on a stack), cleartext
// or over TLS; endpoints of an `h2c` backend get one H2CClient (HTTP/2 with
// prior knowledge, streams multiplexed on one connection), keyed apart as `h2c:address:port`.
// Endpoints of a TLS backend (BackendTLSPolicy) are keyed by the TLS settings' hash and the client
// certificate's, so a changed CA or certificate opens new connections and the old ones drain; the
// connections of one share its connector and so its TLS session cache (a new connection resumes
// the session of an earlier one, as Pool's clients do). A TLS `h2c` backend (HTTP/2 by ALPN, else
// HTTP/1.1) keeps undici's Pool, whose clients may multiplex.

import { buildConnector, Client, Dispatcher, errors, H2CClient, Pool } from 'undici';
import type { AppProtocol, BackendClientCertificate, BackendTls, Endpoint } from '../../ir/types.ts';
import { IdleWatch } from './idle-watch.ts';
import { InterimHeads } from './interim.ts';
import { backendConnector } from './tls.ts';

export interface UpstreamEndpoint {
  /** `address:port` (`[v6]:port`), prefixed `h2c:` for HTTP/2 endpoints. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly pool: Dispatcher;
  /** How long a connection to the endpoint may take to establish (WebSocket tunnels use it too). */
  readonly connectTimeoutMs: number;
  /**
   * The backend idle bound (--backend-idle-timeout) that requests to the endpoint watch themselves
   * (ProxyExchange; undici's own timeouts are off, see idle-watch.ts); null: none.
   */
  readonly idle?: IdleWatch | null;
}

export function endpointKey(endpoint: Endpoint): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

export class UpstreamPools {
  private readonly pools = new Map<string, UpstreamEndpoint>();
  private readonly drainTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  /** Shared by every endpoint: one interval walks the requests in flight. */
  private readonly idle: IdleWatch | null;

  /**
   * `connectTimeoutMs`: a dead endpoint (no answer to SYN) fails the request after this instead of
   * hanging. `idleTimeoutMs` (0: none): longest silence of a backend before its response head, or
   * between two reads of its body (a request body still being sent or a response paused for a slow
   * client does not count); requests watch it through the endpoint's `idle`.
   */
  constructor(drainTimeoutMs: number, connectTimeoutMs: number, idleTimeoutMs = 0) {
    this.drainTimeoutMs = drainTimeoutMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.idle = idleTimeoutMs > 0 ? new IdleWatch(idleTimeoutMs) : null;
  }

  /**
   * The endpoint's dispatcher, created on first use (creating one opens no connection). `tls`: the
   * backend's TLS settings (not refused) and the client certificate of the Gateway that uses it.
   */
  acquire(endpoint: Endpoint, appProtocol: AppProtocol, tls?: { settings: BackendTls; client: BackendClientCertificate | undefined }): UpstreamEndpoint {
    const address = endpointKey(endpoint);
    const h2c = appProtocol === 'h2c';
    const key = tls ? `tls:${tls.settings.hash}:${tls.client?.hash ?? ''}:${h2c ? 'h2:' : ''}${address}` : h2c ? `h2c:${address}` : address;
    let upstream = this.pools.get(key);
    if (upstream === undefined) {
      const options = {
        connectTimeout: this.connectTimeoutMs,
        // Deadlines are per route (Gateway API timeouts, enforced by the proxy), a backend's silence
        // by the endpoint's idle watch: undici's own timers cost an old-generation object per request.
        headersTimeout: 0,
        bodyTimeout: 0,
      };
      let pool: Dispatcher;
      if (tls) {
        const connect = backendConnector(tls.settings, tls.client, h2c, this.connectTimeoutMs);
        // Measured against Pool over TLS at 64 concurrent requests: ~1.04x the requests per CPU-second.
        pool = h2c ? new Pool(`https://${address}`, { ...options, connect, allowH2: true }) : new ClientStack(`https://${address}`, { ...options, connect });
      } else pool = h2c ? new H2CClient(`http://${address}`, options) : new ClientStack(`http://${address}`, options);
      upstream = {
        key,
        address: endpoint.address,
        port: endpoint.port,
        pool,
        connectTimeoutMs: this.connectTimeoutMs,
        idle: this.idle,
      };
      this.pools.set(key, upstream);
    }
    return upstream;
  }

  get size(): number {
    return this.pools.size;
  }

  /** Closes the pools whose keys are not in `used`; requests already in them finish first. */
  retainOnly(used: ReadonlySet<string>): void {
    for (const [key, upstream] of this.pools) {
      if (used.has(key)) continue;
      this.pools.delete(key);
      void this.drain(upstream.pool);
    }
  }

  async closeAll(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((upstream) => this.drain(upstream.pool)));
  }

  /** Graceful close, bounded: a response that never ends must not keep the pool alive forever. */
  private async drain(pool: Dispatcher): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, this.drainTimeoutMs, 'timeout');
      timer.unref();
    });
    try {
      const outcome = await Promise.race([pool.close().then(() => 'closed' as const), deadline]);
      if (outcome === 'timeout') await pool.destroy();
    } catch {
      // Closing twice or destroying a closed pool is harmless; nothing left to release.
    } finally {
      clearTimeout(timer);
    }
  }
}

/** One connection of a ClientStack. */
interface Slot {
  readonly client: Client;
  /** On the idle stack (a client is never on it twice). */
  idle: boolean;
  /** Taken out after a connection error: never used again (as undici's Pool retires such a client). */
  retired: boolean;
  /** The current connection's interim response heads (a 100 Continue taken as any 1xx: interim.ts); null before it connects. */
  heads: InterimHeads | null;
}

/**
 * An HTTP/1.1 endpoint's connections (cleartext, or TLS through `options.connect`): one undici Client per connection (one request at a
 * time each, as Pool's), the idle ones on a stack, a request taking the last freed one or a new
 * one. What undici's Pool does for a request costs O(connections): it scans its clients from the
 * first for one not busy, and once that one is, scans again to learn whether any is left; at 64
 * to 256 concurrent requests per endpoint that scan and its drain bookkeeping were a measurable
 * part of a proxied request (issue #14). Like Pool without `connections` (how Sluice used it), it
 * never queues: no limit on connections per endpoint (the front door's connection limits bound the
 * requests); a client whose connection failed is retired, as Pool retires it.
 */
export class ClientStack extends Dispatcher {
  private readonly origin: string;
  private readonly options: Client.Options;
  /** The connector every client's connections are made with (the options' own, else undici's default). */
  private readonly connector: buildConnector.connector;
  private readonly slots = new Set<Slot>();
  private readonly idle: Slot[] = [];
  private closing = false;

  constructor(origin: string, options: Client.Options) {
    super();
    // Refused here as Pool's constructor refuses it (the compile leaves such an endpoint out with a
    // problem), not at the first request: no client is made before one is needed.
    const url = new URL(origin);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '' || url.hash !== '') throw new errors.InvalidArgumentError(`invalid origin ${origin}`);
    this.origin = origin;
    this.options = options;
    const connect = options.connect;
    this.connector = typeof connect === 'function' ? connect : buildConnector({ ...connect, timeout: options.connectTimeout ?? undefined });
  }

  /** As Dispatcher.dispatch; errors (closed) reach `handler.onResponseError`, as undici delivers them. */
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.closing) {
      handler.onResponseError?.(null as unknown as Dispatcher.DispatchController, new errors.ClientClosedError());
      return true;
    }
    let slot = this.idle.pop();
    while (slot !== undefined && (slot.retired || slot.client.closed || slot.client.destroyed)) {
      slot.idle = false;
      slot = this.idle.pop();
    }
    if (slot === undefined) slot = this.open();
    else {
      slot.idle = false;
      slot.heads?.expectHead();
    }
    // false: busy until its 'drain' (every HTTP/1.1 request: one at a time per connection).
    if (slot.client.dispatch(options, handler)) this.release(slot);
    return true;
  }

  private open(): Slot {
    const connect: buildConnector.connector = (options, callback) =>
      this.connector(options, (...result) => {
        // A new connection (a client reconnects after a close): its first bytes are a response head.
        // (A failed connect calls back with the error alone.)
        const socket = result[1];
        if (socket !== null && socket !== undefined) slot.heads = new InterimHeads(socket);
        callback(...result);
      });
    const client = new Client(this.origin, { ...this.options, connect });
    const slot: Slot = { client, idle: false, retired: false, heads: null };
    this.slots.add(slot);
    client.on('drain', () => this.release(slot));
    client.on('connectionError', () => this.retire(slot));
    return slot;
  }

  private release(slot: Slot): void {
    if (slot.idle || slot.retired || this.closing) return;
    slot.idle = true;
    this.idle.push(slot);
  }

  private retire(slot: Slot): void {
    if (slot.retired) return;
    slot.retired = true;
    this.slots.delete(slot);
    // Requests already on it have had their error; close() lets anything left finish.
    slot.client.close().catch(() => {});
  }

  /** Open connections' clients (a test reads it). */
  get size(): number {
    return this.slots.size;
  }

  /** Lets requests under way finish, then closes every connection. */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    return settle(this.end((client) => client.close()), callback);
  }

  /** Ends every connection now; requests under way fail with `error`. */
  override destroy(): Promise<void>;
  override destroy(error: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(error: Error | null, callback: () => void): void;
  override destroy(first?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const error = typeof first === 'function' ? null : (first ?? null);
    return settle(this.end((client) => client.destroy(error)), typeof first === 'function' ? first : callback);
  }

  private end(each: (client: Client) => Promise<void>): Promise<void> {
    this.closing = true;
    this.idle.length = 0;
    return Promise.all([...this.slots].map((slot) => each(slot.client))).then(() => undefined);
  }
}

/** Dispatcher's two forms of close/destroy: a promise, or a callback. */
function settle(done: Promise<void>, callback: (() => void) | undefined): Promise<void> | void {
  if (callback === undefined) return done;
  done.then(callback, callback);
}
