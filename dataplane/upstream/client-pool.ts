// A plain HTTP/1.1 endpoint's connections: what undici's Pool does with no connection limit (one
// undici Client per connection, no pipelining, a new one when all are busy, idle ones kept), with
// the idle clients on a stack. Pool finds a free client by walking its client list from the start,
// twice per request (to pick one, then to see whether another is left): at 256 concurrent requests
// that walk was ~1.5 % of a proxied request's CPU (issue #14). Popping the last idle client is
// O(1).

import { buildConnector, Client, Dispatcher, errors } from 'undici';

/** A client and whether it is on the idle stack (a drain can come for a client already there). */
class PooledClient extends Client {
  idle = false;
}

export interface ClientPoolOptions {
  /** How long a connection may take to establish. */
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
}

export class ClientPool extends Dispatcher {
  private readonly origin: string;
  private readonly options: Client.Options;
  private readonly clients = new Set<PooledClient>();
  private readonly idle: PooledClient[] = [];
  private closed = false;
  /** One listener for every client's 'drain' (`this` is the client): no closure per request. */
  private readonly onDrain: (this: PooledClient) => void;

  /** `origin`: `http://address:port`. */
  constructor(origin: string, options: ClientPoolOptions) {
    super();
    this.origin = origin;
    // One connector for all the pool's clients, as Pool builds it.
    this.options = { headersTimeout: options.headersTimeout, bodyTimeout: options.bodyTimeout, connect: buildConnector({ timeout: options.connectTimeout }) };
    const idle = this.idle;
    this.onDrain = function (this: PooledClient): void {
      if (this.idle || this.closed || this.destroyed) return;
      this.idle = true;
      idle.push(this);
    };
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.closed) {
      handler.onResponseError?.(null as unknown as Dispatcher.DispatchController, new errors.ClientClosedError());
      return false;
    }
    let client = this.idle.pop();
    if (client === undefined) client = this.create();
    else client.idle = false;
    // False: the client is busy now (one request per connection); its 'drain' puts it back.
    if (client.dispatch(options, handler)) {
      client.idle = true;
      this.idle.push(client);
    }
    return true;
  }

  private create(): PooledClient {
    const client = new PooledClient(this.origin, this.options);
    client.on('drain', this.onDrain);
    this.clients.add(client);
    return client;
  }

  /** Waits for the requests under way; new ones fail (ClientClosedError). */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.closed = true;
    this.idle.length = 0;
    const done = Promise.all([...this.clients].map((client) => client.close())).then(() => undefined);
    if (callback === undefined) return done;
    void done.then(callback);
  }

  /** Aborts every request under way and closes the connections. */
  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    this.closed = true;
    this.idle.length = 0;
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const done = Promise.all([...this.clients].map((client) => client.destroy(err))).then(() => undefined);
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    if (cb === undefined) return done;
    void done.then(cb);
  }
}
