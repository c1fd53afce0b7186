// The controller's side of the snapshot protocol (protocol.ts documents it): streams the latest
// IR to every connected dataplane as NDJSON and records which version each one acknowledged.
//
// Only the latest version is kept. Each publish is serialised once and written to every stream;
// a stream whose socket is full is sent the newest version when it drains (a slow dataplane
// never receives a queue of stale snapshots). One interval timer writes heartbeats, ends streams
// when this replica stops leading, cuts streams stalled for `stallTimeoutMs` and forgets
// dataplanes disconnected for longer than `forgetAfterMs`.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { hostname } from 'node:os';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { parseHostPort } from '../../ir/host-port.ts';
import { IrDeltaEncoder } from '../../ir/delta.ts';
import type { IR } from '../../ir/types.ts';
import {
  ACKS_PATH,
  DATAPLANES_PATH,
  HEARTBEAT_INTERVAL_MS,
  NO_LEADER_RETRY_AFTER_S,
  SNAPSHOTS_PATH,
  isValidName,
  isValidVersion,
  parseAck,
  type Ack,
  type DeltaMessage,
  type HelloMessage,
  type ListenerAck,
} from '../../ir/protocol.ts';

export type Leadership = { isLeader: true } | { isLeader: false; leaderUrl: string | null };

export interface SnapshotServerOptions {
  /** `HOST:PORT` to listen on (port 0: any free port, see `url()`). */
  address: string;
  /** Bearer token every request must carry; absent: no authentication (tests, loopback only). */
  token?: string;
  logger: Logger;
  /** Asked on every request and heartbeat tick. `leaderUrl` is a base URL, e.g. `https://10.1.2.3:18000`. */
  leader(): Leadership;
  /** Serve HTTPS with this certificate (dataplanes then need its CA as `ca`). */
  tls?: { certPem: string; keyPem: string };
  /** Names this replica in hello messages and logs (default: the host name, i.e. the pod name). */
  id?: string;
  heartbeatIntervalMs?: number;
  /** A stream whose socket has not drained for this long is cut (the peer is gone). Default 30 s. */
  stallTimeoutMs?: number;
  /** A dataplane disconnected for this long disappears from `acks()`. Default 60 s. */
  forgetAfterMs?: number;
  /** Snapshot streams open at once, all dataplanes together; more are answered 503. Default 1024. */
  maxStreams?: number;
}

/** What the controller knows about one dataplane (by name). */
export interface DataplaneState {
  name: string;
  /** It has a snapshot stream open to this replica now. */
  connected: boolean;
  /** When `connected` last changed (or the state was created by an ack). */
  since: Date;
  /** The version it serves, by its latest ack (null: nothing, or not known yet). */
  appliedVersion: string | null;
  /** Socket results of `appliedVersion` (empty when unknown, e.g. learnt from a failed apply's ack). */
  listeners: ListenerAck[];
  lastAckAt: Date | null;
  /** The latest ack, whatever it says. */
  lastAck: AckRecord | null;
}

export interface AckRecord {
  version: string;
  ok: boolean;
  error?: string;
  listeners: ListenerAck[];
  /** The version was not the latest published one when the ack arrived. */
  stale: boolean;
  /** This process never published that version (a restarted controller, or another leader's). */
  unknown: boolean;
}

interface Stream {
  name: string;
  res: ServerResponse;
  /** The version this stream was last sent (or said it has). */
  sentVersion: string | null;
  /** Socket full: wait for 'drain' before writing again. */
  stalledSince: number | null;
  /** `delta=1`: versions go as deltas against what this stream sent (ir/delta.ts); null: full snapshots. */
  encoder: IrDeltaEncoder | null;
  sentAny: boolean;
}

interface StateRecord {
  name: string;
  streams: number;
  since: Date;
  appliedVersion: string | null;
  listeners: ListenerAck[];
  lastAckAt: Date | null;
  lastAck: AckRecord | null;
}

/** How many published versions are remembered to tell `unknown` acks apart. */
const KNOWN_VERSIONS = 256;
/**
 * Each open stream holds a socket and, with deltas, an encoder remembering what it sent: bounded,
 * so a client with the token (or any, without one) cannot open streams until memory runs out.
 * 1024 dataplanes per controller is far beyond a cluster's nodes per gateway; a dataplane has one
 * stream, a few while a reconnect overlaps a stream whose peer vanished (cut after `stallTimeoutMs`).
 */
const MAX_STREAMS = 1024;
const MAX_STREAMS_PER_DATAPLANE = 4;
/**
 * Connections at once, beyond the streams: a dataplane holds its stream's and, kept alive, its
 * acknowledgements'; one more connection than this is closed at once (a stream refused by the
 * bounds above still costs a connection until its 503 is sent). And the time a request may take
 * to arrive whole: Fastify turns Node's own bound (`requestTimeout`) off and its option of that
 * name does not take (Node reads it when the server is made), so an acknowledgement's body dripped
 * a byte at a time held its connection for ever: the server is made here. 60 s is Node's header
 * bound (`headersTimeout`), for a body of a few KB; Node checks every 30 s. Answers (the streams)
 * are not bounded by it.
 */
const EXTRA_CONNECTIONS = 64;
export const REQUEST_TIMEOUT_MS = 60_000;
const HEARTBEAT_LINE = '{"type":"heartbeat"}\n';

export class SnapshotServer {
  private readonly options: SnapshotServerOptions;
  private readonly logger: Logger;
  private readonly app: FastifyInstance;
  private readonly id: string;
  private readonly heartbeatMs: number;
  private readonly tokenDigest: Buffer | null;
  private readonly streams = new Set<Stream>();
  private readonly states = new Map<string, StateRecord>();
  private readonly known = new Set<string>();
  private readonly ackListeners = new Set<(state: DataplaneState, ack: Ack) => void>();
  private readonly changeListeners = new Set<(state: DataplaneState) => void>();
  private latest: { version: string; ir: IR; line: string | null } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: SnapshotServerOptions) {
    this.options = options;
    this.logger = options.logger;
    this.id = options.id ?? hostname();
    this.heartbeatMs = options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.tokenDigest = options.token ? digest(options.token) : null;
    // forceCloseConnections: snapshot streams never end by themselves; close() must not wait for them.
    const tls = options.tls ? { cert: options.tls.certPem, key: options.tls.keyPem } : null;
    this.app = Fastify({
      logger: false,
      forceCloseConnections: true,
      serverFactory: (handler) => (tls ? createTlsServer({ ...tls, requestTimeout: REQUEST_TIMEOUT_MS }, handler) : createServer({ requestTimeout: REQUEST_TIMEOUT_MS }, handler)),
    }) as unknown as FastifyInstance;
    this.app.server.maxConnections = 2 * (options.maxStreams ?? MAX_STREAMS) + EXTRA_CONNECTIONS;
    this.routes();
  }

  async listen(): Promise<void> {
    const { host, port } = parseHostPort(this.options.address);
    await this.app.listen({ host, port });
    this.timer = setInterval(() => this.tick(), this.heartbeatMs);
    this.timer.unref();
    this.logger.info({ url: this.url(), tls: Boolean(this.options.tls), token: Boolean(this.tokenDigest) }, 'serving snapshots to dataplanes');
  }

  /** The base URL this server listens on (after `listen()`). */
  url(): string {
    const address = this.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('the snapshot server is not listening');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${address.port}`;
  }

  /** The version to serve from now on. Re-publishing the current version does nothing. */
  publish(ir: IR): void {
    if (this.latest?.version === ir.version) return;
    // The full line is made when a stream without deltas needs it (20 MB at 10 000 routes).
    this.latest = { version: ir.version, ir, line: null };
    this.known.add(ir.version);
    if (this.known.size > KNOWN_VERSIONS) this.known.delete(this.known.values().next().value as string);
    for (const stream of this.streams) this.sendLatest(stream);
    this.logger.debug({ version: ir.version, streams: this.streams.size }, 'published');
  }

  /** The latest published version, or null. */
  version(): string | null {
    return this.latest?.version ?? null;
  }

  /** Every dataplane known: connected now, or disconnected for less than `forgetAfterMs`. */
  acks(): DataplaneState[] {
    return [...this.states.values()].map(snapshotOf).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Called for every ack received (recorded first). Returns a function that unsubscribes. */
  onAck(listener: (state: DataplaneState, ack: Ack) => void): () => void {
    this.ackListeners.add(listener);
    return () => this.ackListeners.delete(listener);
  }

  /** Called for every ack and whenever a dataplane connects, disconnects or is forgotten. */
  onChange(listener: (state: DataplaneState) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Call when leadership may have changed: a replica that no longer leads ends its streams at once. */
  leadershipChanged(): void {
    if (this.streams.size === 0 || this.options.leader().isLeader) return;
    this.logger.info({ streams: this.streams.size }, 'not leading: ending snapshot streams so dataplanes find the leader');
    this.endStreams();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.endStreams();
    await this.app.close();
  }

  // ------------------------------------------------------------------ HTTP

  private routes(): void {
    const app = this.app;
    app.addHook('onRequest', async (req, reply) => {
      if (this.authorized(req)) return;
      return reply.code(401).header('www-authenticate', 'Bearer realm="sluice-snapshots"').send({ error: 'a valid bearer token is required' });
    });

    app.get(SNAPSHOTS_PATH, async (req, reply) => {
      if (this.redirectIfFollower(req, reply)) return reply;
      const query = req.query as Record<string, unknown>;
      if (!isValidName(query.name)) return reply.code(400).send({ error: 'name: expected the dataplane name ([A-Za-z0-9._:-], 1 to 253 characters)' });
      const have = query.have === undefined || query.have === '' ? null : query.have;
      if (have !== null && !isValidVersion(have)) return reply.code(400).send({ error: 'have: expected a version' });
      if (this.closed) return reply.code(503).header('retry-after', String(NO_LEADER_RETRY_AFTER_S)).send({ error: 'shutting down' });
      const refused = this.streamRefused(query.name);
      if (refused !== null) {
        this.logger.warn({ dataplane: query.name, streams: this.streams.size }, `snapshot stream refused: ${refused}`);
        return reply.code(503).header('retry-after', String(NO_LEADER_RETRY_AFTER_S)).send({ error: refused });
      }
      reply.hijack();
      this.openStream(query.name, have, reply.raw, query.delta === '1');
    });

    app.post(ACKS_PATH, async (req, reply) => {
      if (this.redirectIfFollower(req, reply)) return reply;
      const parsed = parseAck(req.body);
      if ('problem' in parsed) return reply.code(400).send({ error: parsed.problem });
      this.recordAck(parsed.ack);
      return reply.code(204).send();
    });

    app.get(DATAPLANES_PATH, async () => ({
      server: this.id,
      leader: this.options.leader().isLeader,
      version: this.latest?.version ?? null,
      dataplanes: this.acks(),
    }));
  }

  private authorized(req: FastifyRequest): boolean {
    if (!this.tokenDigest) return true;
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    // Compare digests: equal lengths, and the time taken says nothing about the token.
    return match !== null && timingSafeEqual(digest(match[1]!), this.tokenDigest);
  }

  /** Answers 307 (to the leader) or 503 (no leader yet) when this replica does not lead. */
  private redirectIfFollower(req: FastifyRequest, reply: FastifyReply): boolean {
    const leadership = this.options.leader();
    if (leadership.isLeader) return false;
    let location: string | null = null;
    if (leadership.leaderUrl) {
      try {
        location = new URL(req.url, leadership.leaderUrl).toString();
      } catch {
        this.logger.warn({ leaderUrl: leadership.leaderUrl }, 'the leader URL is not a URL; answering 503');
      }
    }
    if (location) reply.code(307).header('location', location).send({ leader: location });
    else reply.code(503).header('retry-after', String(NO_LEADER_RETRY_AFTER_S)).send({ error: 'no leader yet' });
    return true;
  }

  // ------------------------------------------------------------------ streams

  /** Why one more stream (for dataplane `name`) is refused, or null. */
  private streamRefused(name: string): string | null {
    const max = this.options.maxStreams ?? MAX_STREAMS;
    if (this.streams.size >= max) return `too many snapshot streams open (${max})`;
    if ((this.states.get(name)?.streams ?? 0) >= MAX_STREAMS_PER_DATAPLANE) return `dataplane ${name} has ${MAX_STREAMS_PER_DATAPLANE} snapshot streams open already`;
    return null;
  }

  private openStream(name: string, have: string | null, res: ServerResponse, delta: boolean): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.socket?.setNoDelay(true);
    res.socket?.setKeepAlive(true, 10_000);
    const stream: Stream = { name, res, sentVersion: have, stalledSince: null, encoder: delta ? new IrDeltaEncoder() : null, sentAny: false };
    this.streams.add(stream);
    const state = this.stateFor(name);
    state.streams++;
    if (state.streams === 1) state.since = new Date();
    this.logger.info({ dataplane: name, have, version: this.latest?.version ?? null }, 'dataplane connected');
    res.on('close', () => {
      this.streams.delete(stream);
      state.streams--;
      if (state.streams === 0) state.since = new Date();
      this.logger.info({ dataplane: name }, 'dataplane disconnected');
      this.changed(state);
    });
    const hello: HelloMessage = { type: 'hello', server: this.id, version: this.latest?.version ?? null, heartbeatMs: this.heartbeatMs };
    this.write(stream, `${JSON.stringify(hello)}\n`);
    this.sendLatest(stream);
    this.changed(state);
  }

  private sendLatest(stream: Stream): void {
    if (!this.latest || stream.sentVersion === this.latest.version || stream.stalledSince !== null) return;
    stream.sentVersion = this.latest.version;
    const { version, ir } = this.latest;
    if (stream.encoder !== null) {
      // Against what this stream sent before (its own encoder: a slow stream skips versions).
      const encoded = stream.encoder.encode(ir.http, ir.l4, !stream.sentAny);
      stream.sentAny = true;
      this.write(stream, `${JSON.stringify({ type: 'delta', version, ir: encoded } satisfies DeltaMessage)}\n`);
      return;
    }
    this.latest.line ??= `${JSON.stringify({ type: 'snapshot', version, ir })}\n`;
    this.write(stream, this.latest.line);
  }

  private write(stream: Stream, line: string): void {
    const { res } = stream;
    if (res.destroyed || res.writableEnded) return;
    if (res.write(line)) return;
    stream.stalledSince = Date.now();
    res.once('drain', () => {
      stream.stalledSince = null;
      this.sendLatest(stream);
    });
  }

  private endStreams(): void {
    for (const stream of this.streams) if (!stream.res.writableEnded) stream.res.end();
  }

  private tick(): void {
    if (this.streams.size > 0 && !this.options.leader().isLeader) this.leadershipChanged();
    const now = Date.now();
    const stallTimeout = this.options.stallTimeoutMs ?? 30_000;
    for (const stream of this.streams) {
      if (stream.stalledSince === null) this.write(stream, HEARTBEAT_LINE);
      else if (now - stream.stalledSince > stallTimeout) {
        this.logger.warn({ dataplane: stream.name, stalledMs: now - stream.stalledSince }, 'snapshot stream stalled; cutting it');
        stream.res.destroy();
      }
    }
    const forgetAfter = this.options.forgetAfterMs ?? 60_000;
    for (const [name, state] of this.states) {
      if (state.streams > 0 || now - state.since.getTime() < forgetAfter) continue;
      this.states.delete(name);
      this.logger.info({ dataplane: name }, 'forgetting a dataplane that stayed away');
      this.changed(state);
    }
  }

  // ------------------------------------------------------------------ acks

  private recordAck(ack: Ack): void {
    const state = this.stateFor(ack.name);
    const record: AckRecord = {
      version: ack.version,
      ok: ack.ok,
      ...(ack.error !== undefined ? { error: ack.error } : {}),
      listeners: ack.listeners,
      stale: ack.version !== this.latest?.version,
      unknown: !this.known.has(ack.version),
    };
    if (ack.serving === ack.version) {
      state.appliedVersion = ack.version;
      state.listeners = ack.listeners;
    } else if (ack.serving !== state.appliedVersion) {
      state.appliedVersion = ack.serving;
      state.listeners = [];
    }
    state.lastAck = record;
    state.lastAckAt = new Date();
    const failed = ack.listeners.filter((l) => !l.ok);
    const fields = { dataplane: ack.name, version: ack.version, serving: ack.serving, stale: record.stale, unknown: record.unknown };
    if (!ack.ok) this.logger.warn({ ...fields, error: ack.error }, `dataplane ${ack.name} rejected version ${ack.version}: ${ack.error ?? 'no reason given'}`);
    else if (failed.length > 0) this.logger.warn({ ...fields, failed }, `dataplane ${ack.name} applied version ${ack.version}; ${failed.length} listener(s) failed`);
    else this.logger.info(fields, `dataplane ${ack.name} applied version ${ack.version}`);
    const snapshot = snapshotOf(state);
    for (const listener of this.ackListeners) safely(() => listener(snapshot, ack), this.logger);
    this.changed(state);
  }

  private stateFor(name: string): StateRecord {
    let state = this.states.get(name);
    if (!state) {
      state = { name, streams: 0, since: new Date(), appliedVersion: null, listeners: [], lastAckAt: null, lastAck: null };
      this.states.set(name, state);
    }
    return state;
  }

  private changed(state: StateRecord): void {
    if (this.changeListeners.size === 0) return;
    const snapshot = snapshotOf(state);
    for (const listener of this.changeListeners) safely(() => listener(snapshot), this.logger);
  }
}

function snapshotOf(state: StateRecord): DataplaneState {
  return {
    name: state.name,
    connected: state.streams > 0,
    since: state.since,
    appliedVersion: state.appliedVersion,
    listeners: state.listeners,
    lastAckAt: state.lastAckAt,
    lastAck: state.lastAck,
  };
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function safely(fn: () => void, logger: Logger): void {
  try {
    fn();
  } catch (err) {
    logger.error({ err }, 'a snapshot server listener threw');
  }
}
