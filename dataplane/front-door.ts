// The front door's bounds: how long Sluice waits for a client at each step and how many
// connections it holds. One options object, built once from the CLI flags of `sluice run` and
// `sluice dataplane`, passed down DataplaneNode → Dataplane → ListenerServer; every wait on a
// client and every connection count reads its bound from here.
//
// Defaults and the anchors they follow are listed in README.md ("Front door: timeouts and limits").

import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import client, { type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { metric } from './metrics.ts';

export interface FrontDoorLimits {
  /** Longest a client may take to send a whole request head (HTTP/1.x), from its first byte. */
  requestHeadersTimeoutMs: number;
  /** Longest a TLS handshake may take, from the TCP accept (also bounds a client that never sends a ClientHello). */
  tlsHandshakeTimeoutMs: number;
  /** An idle keep-alive HTTP/1.1 connection (no request in flight) is closed after this. */
  idleTimeoutMs: number;
  /** Longest gap between two reads of a request body before the request is cut. */
  requestBodyTimeoutMs: number;
  /** Longest a response may wait for the client to take more of it (nginx send_timeout) before it is cut. */
  responseSendTimeoutMs: number;
  /** An HTTP/2 connection with no open stream and no frame either way is closed (GOAWAY) after this. */
  http2IdleTimeoutMs: number;
  /** Longest wait for the client's SETTINGS ACK or PING ACK before the HTTP/2 connection is closed. */
  http2AckTimeoutMs: number;
  /** Longest wait for a TCP (and TLS) connection to a backend endpoint. */
  backendConnectTimeoutMs: number;
  /**
   * Longest silence from a backend while its answer is awaited (no response head yet) or read (no
   * body byte), when no route timeout ends it sooner: then 504, or a cut once the response started.
   */
  backendIdleTimeoutMs: number;
  /** A relayed TCP or TLS stream (TCPRoute, TLSRoute) with no byte either way is closed after this. */
  streamIdleTimeoutMs: number;
  /** A UDP client session (UDPRoute) with no datagram either way is forgotten after this. */
  udpSessionTimeoutMs: number;
  /** An upgraded connection (WebSocket tunnel) with no byte either way is closed after this. */
  tunnelIdleTimeoutMs: number;
  /** Connections one listener holds at most; more are refused. */
  maxConnectionsPerListener: number;
  /**
   * UDP client sessions one UDP listener holds at most; a new source beyond is dropped. Apart from
   * the connection counts: a spoofed-source flood must not take the TCP and HTTP listeners' room.
   */
  maxUdpSessionsPerListener: number;
  /**
   * Bytes a UDP session sends its client at most per byte the client sent (anti-amplification:
   * a spoofed source must not turn a small datagram into a large reply to its victim); 0: no bound.
   */
  udpReplyRatio: number;
  /** Connections all listeners of the process hold together at most. */
  maxConnections: number;
  /** New connections are shed while open descriptors exceed this share of the descriptor limit (0 < r ≤ 1; 1: never). */
  shedDescriptorRatio: number;
  /** New connections are shed while the V8 heap in use exceeds this share of its limit (0 < r ≤ 1; 1: never). */
  shedHeapRatio: number;
  /** A request with `_` in a field name: refused (400) or served. */
  headersWithUnderscores: HeadersWithUnderscores;
  /** A path with `%2F` or `%5C`: redirected to it unescaped, refused (400), or routed and forwarded as it is. */
  escapedSlashes: EscapedSlashes;
}

/** Descriptors kept out of the client connection budget: listeners, backends' keep-alive pools, files, the admin port. */
const DESCRIPTOR_RESERVE = 100;

/** Upper bound of the global connection limit when the descriptor limit allows more. */
const MAX_CONNECTIONS_CAP = 20_000;

/** `--headers-with-underscores`: Envoy Gateway's `withUnderscoresAction` Allow / RejectRequest. */
export const HEADERS_WITH_UNDERSCORES = ['reject', 'allow'] as const;
export type HeadersWithUnderscores = (typeof HEADERS_WITH_UNDERSCORES)[number];
/** `--escaped-slashes`: Envoy Gateway's `escapedSlashesAction` UnescapeAndRedirect / RejectRequest / KeepUnchanged. */
export const ESCAPED_SLASHES = ['redirect', 'reject', 'keep'] as const;
export type EscapedSlashes = (typeof ESCAPED_SLASHES)[number];

export const DEFAULT_FRONT_DOOR_LIMITS: FrontDoorLimits = {
  requestHeadersTimeoutMs: 10_000,
  tlsHandshakeTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  requestBodyTimeoutMs: 30_000,
  // nginx's send_timeout: between two writes the client took, not over the whole response.
  responseSendTimeoutMs: 60_000,
  http2IdleTimeoutMs: 60_000,
  http2AckTimeoutMs: 10_000,
  backendConnectTimeoutMs: 5_000,
  // Envoy's stream_idle_timeout default (5 min), as --tunnel-idle-timeout: a backend that answers
  // nothing, or stops mid-body, no longer holds its client and connection for ever.
  backendIdleTimeoutMs: 300_000,
  // Envoy's tcp_proxy idle_timeout default (Envoy Gateway keeps it for TCPRoute and TLSRoute).
  streamIdleTimeoutMs: 3_600_000,
  // Envoy's udp_proxy idle_timeout default (Envoy Gateway keeps it for UDPRoute).
  udpSessionTimeoutMs: 60_000,
  // Envoy's stream_idle_timeout default, which covers upgraded streams; nginx's proxy_read_timeout
  // of 60 s is known to cut WebSockets that ping less often.
  tunnelIdleTimeoutMs: 300_000,
  maxConnectionsPerListener: 10_000,
  // Envoy's udp_proxy: sessions per upstream cluster are bounded by the cluster's max_connections
  // circuit breaker, 1024 by default.
  maxUdpSessionsPerListener: 1_024,
  // Off, as in Envoy's udp_proxy and nginx stream (neither bounds replies): echo-basic's UDP mode,
  // behind the upstream UDPRoute conformance tests, answers a 4-byte datagram with ~100 bytes of
  // JSON, and a DNS answer is often several times its query. 3 is QUIC's anti-amplification factor
  // for an unvalidated address (RFC 9000 section 8.1), for request/response backends facing the internet.
  udpReplyRatio: 0,
  maxConnections: defaultMaxConnections(descriptorLimit()),
  shedDescriptorRatio: 0.9,
  shedHeapRatio: 0.9,
  // Envoy Gateway's defaults (see UNDERSCORE_IN_HEADER and ESCAPED_SLASH in http1-strict.ts).
  headersWithUnderscores: 'reject',
  escapedSlashes: 'redirect',
};

/**
 * The process's soft RLIMIT_NOFILE (what `ulimit -n` shows), read from /proc/self/limits; null
 * where that file does not exist or says "unlimited".
 */
export function descriptorLimit(): number | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'latin1');
  } catch {
    return null;
  }
  const line = /^Max open files\s+(\S+)/m.exec(text);
  const soft = line === null ? NaN : Number(line[1]);
  return Number.isSafeInteger(soft) && soft > 0 ? soft : null;
}

/**
 * Each client connection may hold a backend connection too (nginx's worker_connections counts
 * both), so half of what the descriptor limit leaves after a reserve, capped.
 */
export function defaultMaxConnections(limit: number | null): number {
  if (limit === null) return MAX_CONNECTIONS_CAP;
  return Math.max(1, Math.min(MAX_CONNECTIONS_CAP, Math.floor((limit - DESCRIPTOR_RESERVE) / 2)));
}

/** One row of connection counts: [all workers', worker 0's, worker 1's, ...] from `at`. */
interface Row {
  counts: Int32Array;
  at: number;
}

/** Why a new connection was turned away. */
export type RefusalReason = 'listener_limit' | 'global_limit' | 'shedding' | 'udp_session_limit';

/**
 * Which wait a client overran when Sluice closed its connection. (An overlong request head is
 * counted with the parser's rejections, reason request_header_timeout; an idle keep-alive
 * connection closing is no fault of the client.)
 */
export type ClientTimeout = 'tls_handshake' | 'first_line' | 'request_body' | 'response_send';

/** What the load monitor found: null while there is headroom. */
type Pressure = { resource: 'descriptors' | 'heap'; used: number; limit: number } | null;

/** How often descriptors and heap are sampled for load shedding. */
const LOAD_SAMPLE_MS = 1_000;

/**
 * Listeners whose connections one process can count in shared memory (distinct listener names over
 * its life: names are `address:port`, so a process meets few). Beyond, a listener's connections are
 * counted by each worker alone, with a warning naming it.
 */
const SHARED_LISTENER_ROWS = 1024;

/**
 * The connection counts of one process, in memory every worker of --workers shares: one row for the
 * process (what --max-connections bounds) and one per listener (--max-connections-per-listener),
 * each row [all workers' count, worker 0's, worker 1's, ...]. A worker takes a slot with
 * compare-and-swap on the row's total (workers race for the last one) and counts it in its own
 * column too, so that the primary can take a dead worker's connections off every row (they died
 * with it). A listener's row is found by a 64-bit hash of its name, claimed by the first worker
 * that meets it (compare-and-swap on the key), so workers agree without asking the primary.
 */
export interface SharedConnectionCount {
  memory: SharedArrayBuffer;
  /** This worker's index. */
  worker: number;
}

/** How `memory` is laid out for `workers` workers: listener keys (BigInt64), then the rows (Int32). */
function connectionTable(memory: SharedArrayBuffer): { keys: BigInt64Array; counts: Int32Array; width: number } {
  const keys = new BigInt64Array(memory, 0, SHARED_LISTENER_ROWS);
  const counts = new Int32Array(memory, keys.byteLength);
  return { keys, counts, width: counts.length / (1 + SHARED_LISTENER_ROWS) };
}

/** Memory for `workers` workers' SharedConnectionCount (one worker: a process without --workers). */
export function sharedConnectionMemory(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer(BigInt64Array.BYTES_PER_ELEMENT * SHARED_LISTENER_ROWS + Int32Array.BYTES_PER_ELEMENT * (1 + SHARED_LISTENER_ROWS) * (1 + workers));
}

/** A dead worker's connections leave the process's and its listeners' counts (the primary calls it once the worker has exited). */
export function releaseWorkerConnections(memory: SharedArrayBuffer, worker: number): void {
  const { counts, width } = connectionTable(memory);
  for (let row = 0; row < counts.length; row += width) {
    const own = Atomics.exchange(counts, row + 1 + worker, 0);
    if (own !== 0) Atomics.sub(counts, row, own);
  }
}

/** The row of a UDP listener's sessions (its connections' row is the name itself: a UDP listener has none). */
function udpSessionsKey(listener: string): string {
  return `udp-sessions\u0000${listener}`;
}

/** A listener name's key in the shared table: 64 bits of its SHA-256, never 0 (an empty slot). */
function listenerKey(name: string): bigint {
  const key = createHash('sha256').update(name).digest().readBigInt64LE(0);
  return key === 0n ? 1n : key;
}

/**
 * Connection accounting shared by every listener of one process: the global count, refusals and
 * load shedding. Listeners keep their own count and ask `admit` before serving a connection.
 */
export class ConnectionBudget {
  readonly limits: FrontDoorLimits;
  /** This budget's open connections (its thread's: with --workers, the gauges are summed). */
  private open = 0;
  /** The process's and its listeners' counts (shared by the workers of --workers; see SharedConnectionCount). */
  private readonly table: ReturnType<typeof connectionTable>;
  /** This worker's column in each row. */
  private readonly own: number;
  /** Each listener's row met so far: its offset in `table.counts`, or a row of its own when the shared table is full. */
  private readonly rows = new Map<string, Row>();
  private readonly processRow: Row;
  private pressure: Pressure = null;
  private readonly logger: Logger;
  private readonly refused: client.Counter<'listener' | 'reason'>;
  private readonly timeouts: client.Counter<'listener' | 'stage'>;
  private readonly openGauge: client.Gauge;
  private readonly sheddingGauge: client.Gauge;
  private readonly sampler: NodeJS.Timeout;
  private readonly maxDescriptors: number | null;
  private sampling = false;
  /** One log line per refusal episode and reason, not one per connection. */
  private readonly refusingSince = new Map<string, number>();

  /** `shared`: count in the process-wide memory of --workers; absent: this budget is the process's. */
  constructor(limits: FrontDoorLimits, registry: Registry, logger: Logger, maxDescriptors: number | null = descriptorLimit(), shared?: SharedConnectionCount) {
    this.limits = limits;
    this.table = connectionTable(shared?.memory ?? sharedConnectionMemory(1));
    this.own = 1 + (shared?.worker ?? 0);
    this.processRow = { counts: this.table.counts, at: 0 };
    this.logger = logger;
    this.maxDescriptors = maxDescriptors;
    this.refused = metric(registry, 'sluice_connections_refused_total', (registers) =>
      new client.Counter({
        name: 'sluice_connections_refused_total',
        help: 'Client connections closed at accept (UDP: new sessions refused), by listener and reason (listener_limit, global_limit, shedding, udp_session_limit)',
        labelNames: ['listener', 'reason'] as const,
        registers,
      }),
    );
    this.timeouts = metric(registry, 'sluice_client_timeouts_total', (registers) =>
      new client.Counter({
        name: 'sluice_client_timeouts_total',
        help: 'Client connections closed because the client overran a front-door timeout, by listener and stage (tls_handshake, first_line, request_body, response_send)',
        labelNames: ['listener', 'stage'] as const,
        registers,
      }),
    );
    this.openGauge = metric(registry, 'sluice_connections_open', (registers) =>
      new client.Gauge({ name: 'sluice_connections_open', help: 'Client connections open across all listeners', registers }),
    );
    this.sheddingGauge = metric(registry, 'sluice_load_shedding', (registers) =>
      new client.Gauge({ name: 'sluice_load_shedding', help: 'Whether new connections are being shed (1) because descriptors or heap run low', registers }),
    );
    this.sheddingGauge.set(0);
    this.sampler = setInterval(() => void this.sample(), LOAD_SAMPLE_MS);
    this.sampler.unref();
  }

  get connections(): number {
    return this.open;
  }

  /**
   * Counts the connection in, in its listener's and the process's counts (every worker's), or says
   * why it must be refused (the caller closes it; the refusal is counted and logged once per
   * episode here). Each admitted connection is given back with `release(listener)`.
   */
  admit(listener: string): RefusalReason | null {
    if (this.pressure !== null) return this.refuse(listener, 'shedding');
    const row = this.row(listener);
    if (!this.take(row, this.limits.maxConnectionsPerListener)) return this.refuse(listener, 'listener_limit');
    if (!this.take(this.processRow, this.limits.maxConnections)) {
      this.give(row);
      return this.refuse(listener, 'global_limit');
    }
    this.open++;
    this.openGauge.set(this.open);
    this.endRefusals(listener);
    return null;
  }

  /** Counts one more connection in a row unless it holds `limit` already (workers race for the last one: compare-and-swap). */
  private take(row: Row, limit: number): boolean {
    const { counts, at } = row;
    for (;;) {
      const open = Atomics.load(counts, at);
      if (open >= limit) return false;
      if (Atomics.compareExchange(counts, at, open, open + 1) === open) break;
    }
    Atomics.add(counts, at + this.own, 1);
    return true;
  }

  private give(row: Row): void {
    Atomics.sub(row.counts, row.at, 1);
    Atomics.sub(row.counts, row.at + this.own, 1);
  }

  /** A listener's row: found (or claimed) in the shared table by its name's key. */
  private row(listener: string): Row {
    let row = this.rows.get(listener);
    if (row !== undefined) return row;
    const { keys, counts, width } = this.table;
    const key = listenerKey(listener);
    // Open addressing, linear probing; a slot once claimed keeps its key (no deletion, so probes stay valid).
    for (let i = 0, slot = Number(BigInt.asUintN(32, key) % BigInt(keys.length)); i < keys.length; i++, slot = (slot + 1) % keys.length) {
      const held = Atomics.compareExchange(keys, slot, 0n, key);
      if (held === 0n || held === key) {
        row = { counts, at: width * (1 + slot) };
        break;
      }
    }
    if (row === undefined) {
      row = { counts: new Int32Array(width), at: 0 };
      this.logger.warn({ listener, listeners: keys.length }, `listener ${listener}: the shared connection table is full; its --max-connections-per-listener is counted by each worker alone`);
    }
    this.rows.set(listener, row);
    return row;
  }

  /**
   * A new UDP session: bounded by its listener's own session cap (one count across workers, as
   * connections) and by load shedding, and not counted among the connections, so datagrams from
   * spoofed sources cannot refuse TCP clients. Each admitted session is given back with
   * `releaseUdpSession(listener)`.
   */
  admitUdpSession(listener: string): RefusalReason | null {
    if (this.pressure !== null) return this.refuse(listener, 'shedding');
    if (!this.take(this.row(udpSessionsKey(listener)), this.limits.maxUdpSessionsPerListener)) return this.refuse(listener, 'udp_session_limit');
    this.endRefusals(listener);
    return null;
  }

  releaseUdpSession(listener: string): void {
    this.give(this.row(udpSessionsKey(listener)));
  }

  private refuse(listener: string, reason: RefusalReason): RefusalReason {
    this.refused.labels(listener, reason).inc();
    const key = `${listener}\u0000${reason}`;
    if (!this.refusingSince.has(key)) {
      this.refusingSince.set(key, Date.now());
      const limit =
        reason === 'listener_limit' ? this.limits.maxConnectionsPerListener
        : reason === 'global_limit' ? this.limits.maxConnections
        : reason === 'udp_session_limit' ? this.limits.maxUdpSessionsPerListener
        : undefined;
      this.logger.warn({ listener, reason, limit, open: Atomics.load(this.table.counts, 0) }, `refusing new connections on ${listener}: ${describeRefusal(reason)}`);
    }
    return reason;
  }

  /** Counts a connection closed for overrunning a timeout. */
  timedOut(listener: string, stage: ClientTimeout): void {
    this.timeouts.labels(listener, stage).inc();
  }

  /** A connection `admit(listener)` counted in has closed. */
  release(listener: string): void {
    this.open--;
    this.give(this.row(listener));
    this.give(this.processRow);
    this.openGauge.set(this.open);
  }

  close(): void {
    clearInterval(this.sampler);
  }

  /** Samples descriptors and heap now (also what the timer does every second). */
  async sample(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      this.setPressure((await this.descriptorPressure()) ?? this.heapPressure());
    } finally {
      this.sampling = false;
    }
  }

  private async descriptorPressure(): Promise<Pressure> {
    if (this.maxDescriptors === null || this.limits.shedDescriptorRatio >= 1) return null;
    let used: number;
    try {
      used = (await readdir('/proc/self/fd')).length;
    } catch (error) {
      // Reading the directory needs a descriptor itself: none left is the pressure we look for.
      const code = (error as { code?: string }).code;
      if (code === 'EMFILE' || code === 'ENFILE') return { resource: 'descriptors', used: this.maxDescriptors, limit: this.maxDescriptors };
      return null;
    }
    return used > this.maxDescriptors * this.limits.shedDescriptorRatio ? { resource: 'descriptors', used, limit: this.maxDescriptors } : null;
  }

  private heapPressure(): Pressure {
    if (this.limits.shedHeapRatio >= 1) return null;
    const heap = v8.getHeapStatistics();
    return heap.used_heap_size > heap.heap_size_limit * this.limits.shedHeapRatio ? { resource: 'heap', used: heap.used_heap_size, limit: heap.heap_size_limit } : null;
  }

  private setPressure(pressure: Pressure): void {
    const was = this.pressure;
    this.pressure = pressure;
    if ((was === null) === (pressure === null)) return;
    this.sheddingGauge.set(pressure === null ? 0 : 1);
    if (pressure !== null) {
      this.logger.warn({ ...pressure, open: this.open }, `load shedding on: ${pressure.resource} ${pressure.used} of ${pressure.limit} in use; new connections are refused`);
    } else {
      this.logger.info({ resource: was?.resource, open: this.open }, 'load shedding off: new connections are served again');
    }
  }

  private endRefusals(listener: string): void {
    if (this.refusingSince.size === 0) return;
    for (const [key, since] of this.refusingSince) {
      if (!key.startsWith(`${listener}\u0000`)) continue;
      this.refusingSince.delete(key);
      this.logger.info({ listener, reason: key.slice(listener.length + 1), refusingForMs: Date.now() - since }, `accepting new connections on ${listener} again`);
    }
  }
}

function describeRefusal(reason: RefusalReason): string {
  if (reason === 'listener_limit') return 'the listener holds its maximum of connections (--max-connections-per-listener)';
  if (reason === 'global_limit') return 'the process holds its maximum of connections (--max-connections)';
  if (reason === 'udp_session_limit') return 'the UDP listener holds its maximum of sessions (--max-udp-sessions-per-listener)';
  return 'descriptors or memory run low (load shedding)';
}

/** What a refused cleartext HTTP client reads before the close. */
export const REFUSED_RESPONSE = Buffer.from(
  'HTTP/1.1 503 Service Unavailable\r\nserver: sluice\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\nService Unavailable\n',
  'latin1',
);
