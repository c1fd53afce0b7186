// One listening socket (HTTP or HTTPS) over the current ListenerTable. The table is a single
// reference swapped on reload; each request reads it once, so in-flight requests finish on
// the table they started with. Certificates resolve through the SNICallback against the same
// reference, so a reload never reopens the socket.
//
// fastify owns the server's lifecycle (listen, close), but proxied requests go to a raw
// handler installed through `serverFactory`, never through fastify's router: measured on the
// project's VM (CPU time per proxied request, 4 rounds), the raw handler cost 0.81x of a bare
// node:http + undici forwarder's throughput-per-CPU and a fastify catch-all route with
// `reply.hijack()` 0.70x. A proxy must also pass every target and body through untouched,
// which a catch-all route does not (bad-URL 400s, content-type parsing, header objects).

import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext } from 'node:tls';
import fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ListenerTable } from './config/route-table.ts';
import { handleRequest } from './request-handler.ts';
import { handleUpgrade } from './upgrade-handler.ts';
import { secureContextOptions } from './tls/certificates.ts';

/** Idle time after which a client keep-alive connection is closed. */
const CLIENT_KEEP_ALIVE_TIMEOUT_MS = 60_000;

export class ListenerServer {
  readonly name: string;
  readonly address: string;
  readonly bindPort: number;
  readonly protocol: ListenerTable['protocol'];
  private table: ListenerTable;
  private readonly logger: Logger;
  private readonly app: FastifyInstance;
  /** One, unless fastify binds a name that resolves to several addresses (`localhost`). */
  private readonly servers: http.Server[] = [];
  /** What the default (no-SNI) context was built from: certificate hash and client CA set. */
  private defaultContextKey: string | null = null;
  private draining = false;
  /** Upgraded (WebSocket) connections: the HTTP server no longer tracks them. */
  private readonly tunnels = new Set<Duplex>();

  /** `table.certificates` must be set for HTTPS (the caller checks). */
  constructor(table: ListenerTable, bindPort: number, logger: Logger) {
    this.name = table.name;
    this.address = table.listener.address;
    this.bindPort = bindPort;
    this.protocol = table.protocol;
    this.table = table;
    this.logger = logger;
    this.app = fastify({
      serverFactory: (fastifyHandler) => this.createServer(fastifyHandler),
      logger: false,
      forceCloseConnections: 'idle',
    });
  }

  /** Rejects with the bind error (EADDRINUSE, EACCES, ...). */
  async listen(): Promise<void> {
    await this.app.listen({ host: this.address, port: this.bindPort });
  }

  /**
   * Swaps in a new table. Only the default (no-SNI) context and the client-certificate settings
   * need the TLS server touched; SNI contexts come from the table itself.
   */
  update(table: ListenerTable): void {
    this.table = table;
    this.configureTls();
  }

  /**
   * Graceful: stop accepting, close idle keep-alive connections, let in-flight requests finish
   * (their responses say `Connection: close`), then cut whatever is left after `drainMs`.
   */
  async close(drainMs: number): Promise<void> {
    this.draining = true;
    await Promise.all(
      this.servers.map(async (server) => {
        // Stops listening at once (the port is free for a rebind); resolves when the last
        // connection has ended.
        const drained = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const deadline = setTimeout(() => {
          server.closeAllConnections();
          for (const tunnel of this.tunnels) tunnel.destroy();
        }, drainMs);
        deadline.unref();
        await drained;
        clearTimeout(deadline);
      }),
    );
    await this.app.close();
  }

  private createServer(_fastifyHandler: http.RequestListener): http.Server {
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (this.draining) res.shouldKeepAlive = false;
      handleRequest(this.table, this.logger, req, res);
    };
    const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
      this.tunnels.add(socket);
      socket.once('close', () => this.tunnels.delete(socket));
      handleUpgrade(this.table, this.logger, req, socket, head);
    };
    const options = {
      noDelay: true,
      keepAliveTimeout: CLIENT_KEEP_ALIVE_TIMEOUT_MS,
      // Request deadlines are a route policy (Gateway API timeouts), not a server default that
      // would cut long uploads. headersTimeout (60 s) still bounds slowloris.
      requestTimeout: 0,
      // Only WebSocket upgrades are tunnelled; any other Upgrade (h2c, ...) is served as a plain
      // request, its Upgrade header dropped as hop-by-hop.
      shouldUpgradeCallback: isWebSocketUpgrade,
    };
    let server: http.Server;
    if (this.protocol === 'HTTPS') {
      const tlsServer = https.createServer(
        {
          ...options,
          ...secureContextOptions(this.table.certificates!.fallback, this.table.clientValidation),
          SNICallback: (servername: string, callback: (error: Error | null, context?: SecureContext) => void) => {
            const certificates = this.table.certificates;
            callback(null, certificates === null ? undefined : certificates.select(servername));
          },
        },
        onRequest,
      );
      this.configureTls(tlsServer);
      tlsServer.on('tlsClientError', (error: Error, socket: Socket) => {
        this.logger.debug({ listener: this.name, err: error.message, remote: socket.remoteAddress }, 'TLS handshake failed');
      });
      server = tlsServer as unknown as http.Server;
    } else {
      server = http.createServer(options, onRequest);
    }
    server.on('upgrade', onUpgrade);
    // Nagle + delayed ACK can stall a proxy completely (seen with TLS under load): always off.
    server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    this.servers.push(server);
    return server;
  }

  /** Applies the table's client-certificate settings and default certificate to the TLS servers. */
  private configureTls(created?: https.Server): void {
    const fallback = this.table.certificates?.fallback;
    if (fallback === undefined) return;
    const validation = this.table.clientValidation;
    const key = `${fallback.hash}/${validation?.key ?? ''}`;
    // A server being created already has the right default context; existing ones need it
    // replaced when the certificate or the client CAs changed.
    const contextChanged = this.defaultContextKey !== null && key !== this.defaultContextKey;
    this.defaultContextKey = key;
    const servers = created !== undefined ? [created] : this.servers.filter((server) => server instanceof https.Server);
    for (const server of servers as https.Server[]) {
      // tls.Server keeps these as (untyped) fields set from its options and reads them for
      // each new connection, so a reload changes them for new handshakes only.
      const verification = server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
      verification.requestCert = validation !== null;
      verification.rejectUnauthorized = validation?.rejectUnauthorized ?? true;
      if (contextChanged && created === undefined) server.setSecureContext(secureContextOptions(fallback, validation));
    }
  }
}

function isWebSocketUpgrade(req: http.IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return upgrade !== undefined && upgrade.toLowerCase() === 'websocket';
}
