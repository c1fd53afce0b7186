// undici dispatchers keyed by endpoint `address:port`, shared by every backend and listener
// that reaches the endpoint and kept across reloads, so a reload never drops warm keep-alive
// connections. A dispatcher is closed only when a committed table no longer references it.
//
// HTTP/1.1 endpoints get a Pool; endpoints of an `h2c` backend get one H2CClient (HTTP/2 with
// prior knowledge, streams multiplexed on one connection), keyed apart as `h2c:address:port`.
// Endpoints of a TLS backend (BackendTLSPolicy) get a Pool over TLS (HTTP/2 by ALPN for `h2c`
// backends), keyed by the TLS settings' hash and the client certificate's, so a changed CA or
// certificate opens new connections and the old pool drains.

import { H2CClient, Pool, type Dispatcher } from 'undici';
import type { AppProtocol, BackendClientCertificate, BackendTls, Endpoint } from '../../ir/types.ts';
import { backendConnector } from './tls.ts';

export interface UpstreamEndpoint {
  /** `address:port` (`[v6]:port`), prefixed `h2c:` for HTTP/2 endpoints. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly pool: Dispatcher;
  /** How long a connection to the endpoint may take to establish (WebSocket tunnels use it too). */
  readonly connectTimeoutMs: number;
}

export function endpointKey(endpoint: Endpoint): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

export class UpstreamPools {
  private readonly pools = new Map<string, UpstreamEndpoint>();
  private readonly drainTimeoutMs: number;
  private readonly connectTimeoutMs: number;

  /** `connectTimeoutMs`: a dead endpoint (no answer to SYN) fails the request after this instead of hanging. */
  constructor(drainTimeoutMs: number, connectTimeoutMs: number) {
    this.drainTimeoutMs = drainTimeoutMs;
    this.connectTimeoutMs = connectTimeoutMs;
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
        // Deadlines are per route (Gateway API timeouts, enforced by the proxy), not per pool.
        headersTimeout: 0,
        bodyTimeout: 0,
      };
      let pool: Dispatcher;
      if (tls) {
        const connect = backendConnector(tls.settings, tls.client, h2c, this.connectTimeoutMs);
        pool = new Pool(`https://${address}`, { ...options, connect, allowH2: h2c });
      } else pool = h2c ? new H2CClient(`http://${address}`, options) : new Pool(`http://${address}`, options);
      upstream = {
        key,
        address: endpoint.address,
        port: endpoint.port,
        pool,
        connectTimeoutMs: this.connectTimeoutMs,
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
