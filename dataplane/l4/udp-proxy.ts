// UDP listeners (UDPRoute): each client address (IP and port) is a session with one endpoint of the
// route's backends, picked by weight when its first datagram arrives. A session has its own socket
// towards the backend; the backend's replies go back to the client from the listener socket (the
// address the client sent to). Sessions end after the session timeout without a datagram either
// way. Bounded: a UDP listener holds at most --max-udp-sessions-per-listener sessions, apart from
// the TCP connection counts (a spoofed-source flood must not refuse TCP and HTTP clients); a session
// drops client datagrams while too many of its sends are still queued, and replies beyond
// --udp-reply-ratio times the bytes its client sent (the source of a datagram is not verified: a
// forged one must not make Sluice an amplifier towards the address it names).
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import type { Endpoint } from '../../ir/types.ts';
import type { ConnectionBudget } from '../front-door.ts';
import { chooseEndpoint, type BackendChoice } from './backend-choice.ts';
import type { DatagramDrop, L4Metrics } from './metrics.ts';

/** Datagrams of one session sent towards the backend and not yet handed to the kernel; more are dropped. */
export const MAX_QUEUED_DATAGRAMS = 64;

interface Session {
  upstream: Socket;
  endpoint: Endpoint;
  timer: NodeJS.Timeout;
  queued: number;
  fromClient: number;
  toClient: number;
}

export class UdpProxyServer {
  readonly name: string;
  private route: BackendChoice | null;
  private readonly logger: Logger;
  private readonly budget: ConnectionBudget;
  private readonly metrics: L4Metrics;
  private readonly sessionTimeoutMs: number;
  private socket: Socket | null = null;
  private readonly sessions = new Map<string, Session>();

  constructor(name: string, route: BackendChoice | null, logger: Logger, budget: ConnectionBudget, metrics: L4Metrics, sessionTimeoutMs: number) {
    this.name = name;
    this.route = route;
    this.logger = logger;
    this.budget = budget;
    this.metrics = metrics;
    this.sessionTimeoutMs = sessionTimeoutMs;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** `reusePort`: each worker thread (--workers) binds its own socket; the kernel keeps a client on one (4-tuple hash). */
  listen(address: string, port: number, reusePort = false): Promise<void> {
    const socket = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', reusePort });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, address, () => {
        socket.off('error', reject);
        // A send error on the listener socket (an ICMP unreachable reported late) is no reason to stop.
        socket.on('error', (error) => this.logger.debug({ listener: this.name, err: error.message }, 'udp: listener socket error'));
        socket.on('message', (msg, rinfo) => this.fromClient(msg, rinfo));
        this.socket = socket;
        resolve();
      });
    });
  }

  /** New sessions use the new route; open sessions keep their endpoint until they end. */
  update(route: BackendChoice | null): void {
    this.route = route;
  }

  /**
   * Ends every session and closes the socket. A datagram flow has no end to wait for, and replies
   * need the listener socket: there is nothing to drain into, unlike a TCP connection.
   */
  async close(): Promise<void> {
    for (const key of [...this.sessions.keys()]) this.end(key);
    const socket = this.socket;
    this.socket = null;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private drop(reason: DatagramDrop): void {
    this.metrics.dropped.labels(this.name, reason).inc();
  }

  private fromClient(msg: Buffer, client: RemoteInfo): void {
    const key = `${client.address}|${client.port}`;
    const session = this.sessions.get(key) ?? this.open(key, client);
    if (!session) return;
    if (session.queued >= MAX_QUEUED_DATAGRAMS) return this.drop('backpressure');
    session.timer.refresh();
    session.queued++;
    session.fromClient += msg.length;
    this.metrics.datagrams.labels(this.name, 'from_client').inc();
    session.upstream.send(msg, session.endpoint.port, session.endpoint.address, (error) => {
      session.queued--;
      if (error) {
        this.drop('backend_error');
        this.logger.debug({ listener: this.name, err: error.message }, 'udp: send to backend failed');
      }
    });
  }

  private open(key: string, client: RemoteInfo): Session | null {
    const route = this.route;
    const chosen = route ? chooseEndpoint(route) : null;
    if (!route || !chosen) {
      this.metrics.connections.labels(this.name, 'UDP', route ? 'no_endpoint' : 'no_route').inc();
      this.drop('no_endpoint');
      return null;
    }
    // Counted until end() gives it back (the count is shared by the workers of --workers).
    const refused = this.budget.admitUdpSession(this.name);
    if (refused !== null) {
      this.drop(refused === 'shedding' ? 'shedding' : 'session_limit');
      return null;
    }
    const { endpoint } = chosen;
    const upstream = createSocket({ type: isIPv6(endpoint.address) ? 'udp6' : 'udp4' });
    const session: Session = { upstream, endpoint, timer: setTimeout(() => this.end(key), this.sessionTimeoutMs), queued: 0, fromClient: 0, toClient: 0 };
    session.timer.unref();
    upstream.on('message', (reply, from) => {
      // Only the chosen endpoint answers for this session: anything else reaching its port is not a reply.
      if (from.port !== endpoint.port || from.address !== endpoint.address || !this.socket) return;
      const ratio = this.budget.limits.udpReplyRatio;
      if (ratio > 0 && session.toClient + reply.length > session.fromClient * ratio) {
        this.metrics.replyDropped.labels(this.name).inc();
        return;
      }
      session.timer.refresh();
      session.toClient += reply.length;
      this.metrics.datagrams.labels(this.name, 'to_client').inc();
      this.socket.send(reply, client.port, client.address);
    });
    upstream.on('error', (error) => {
      this.logger.debug({ listener: this.name, route: route.name, err: error.message }, 'udp: backend socket error; session ended');
      this.end(key);
    });
    this.sessions.set(key, session);
    this.metrics.connections.labels(this.name, 'UDP', 'forwarded').inc();
    this.metrics.sessions.labels(this.name).set(this.sessions.size);
    return session;
  }

  private end(key: string): void {
    const session = this.sessions.get(key);
    if (!session) return;
    this.sessions.delete(key);
    this.budget.releaseUdpSession(this.name);
    clearTimeout(session.timer);
    session.upstream.close();
    this.metrics.sessions.labels(this.name).set(this.sessions.size);
    this.metrics.bytes.labels(this.name, 'UDP', 'from_client').inc(session.fromClient);
    this.metrics.bytes.labels(this.name, 'UDP', 'to_client').inc(session.toClient);
  }
}
