// The snapshot protocol between the controller (controller/publish/server.ts) and dataplane replicas
// (dataplane/config/subscriber.ts): how a dataplane receives versioned IR snapshots and how it
// acknowledges them. Plain HTTP/1.1, JSON, one long-lived response per dataplane.
//
// Endpoints (all require `Authorization: Bearer <token>` when the controller has a token; 401
// otherwise, checked in constant time and before anything else):
//
//   GET /v1/snapshots?name=<dataplane>&have=<version>[&delta=1]
//     200, `content-type: application/x-ndjson`, never ends by itself: one JSON message per line.
//       {"type":"hello","server":"<controller id>","version":"<latest>"|null,"heartbeatMs":5000}
//           always first. `version` is what the controller publishes now (null: nothing yet).
//       {"type":"snapshot","version":"<V>","ir":{...}}
//           right after hello unless `have` == V; then once per newly published version. Only the
//           latest matters: a dataplane that reads slowly is sent the newest version when its
//           socket drains, never a queue of stale ones.
//       {"type":"delta","version":"<V>","ir":{"full":…,"prune":…,"http":…,"l4":…}}
//           instead of `snapshot` when the dataplane asked for deltas (`&delta=1`): version V as a
//           delta against what this stream sent before (ir/delta.ts): parts the dataplane holds go
//           as numbers, so it costs what changed, and the dataplane gets back the objects it holds
//           (its compiler reuses them). The first on a stream is full. A dataplane that cannot
//           decode one ends the stream; the next stream starts full.
//       {"type":"heartbeat"}
//           every `heartbeatMs` (5 s). A dataplane that receives no byte for 15 s (or 3 ×
//           heartbeatMs, whichever is longer) treats the controller as dead and reconnects.
//       Each message must arrive whole within 60 s of its first byte (MESSAGE_TIMEOUT_MS, the
//       subscriber's; bytes dripped slowly reset the heartbeat wait but not this one) and be at
//       most 256 MiB (MAX_MESSAGE_BYTES); past either the dataplane ends the stream and reconnects
//       (backoff growing: the controller is treated as faulty), and the next stream starts full.
//       Unknown `type`s are ignored (room to grow without a new path).
//     `name` identifies the dataplane (its pod name; unique; [A-Za-z0-9._:-], at most 253).
//     `have` is the version the dataplane serves now (absent: none, or an apply is in progress so
//     what it serves is about to change). Versions are content hashes (ir/version.ts), compared
//     for equality only; "newer" means "published later".
//     The stream ends when the controller shuts down or stops leading; the dataplane reconnects.
//   POST /v1/acks   body: Ack (below) → 204; 400 for a malformed body.
//     Sent by the dataplane after each apply, and again after every (re)connection whose hello
//     names the version it already serves, so a restarted controller or a new leader learns the
//     state of every dataplane without a re-apply. Acks for versions that are not the latest
//     published one are recorded, flagged `stale` (and `unknown` when this controller process
//     never published that version).
//   GET /v1/dataplanes   diagnostics: {leader, version, dataplanes: DataplaneState[]}.
//
// Leadership: only the leader serves snapshots and takes acks. Another replica answers
//   307 Location: <leader URL><same path and query>   when it knows the leader, else
//   503 {"error":"no leader yet"} with Retry-After (seconds).
// The dataplane follows at most MAX_REDIRECTS hops per attempt (never from https to http) and
// always starts again from its configured URL (usually a Service in front of every controller
// replica), so a changed leader is found on the next reconnect. A replica that stops leading ends
// its streams at once (`SnapshotServer.leadershipChanged()`, and at every heartbeat tick).
//
// Dataplane behaviour: reconnects with exponential backoff (200 ms doubling, capped at 5 s,
// jittered; a 503's Retry-After is honoured up to the cap) whenever the stream ends, fails or
// goes silent; applies one version at a time and always the newest received (versions that
// arrive during an apply replace each other; only the last one is applied next); a version
// equal to the one it serves is not applied again; a failed apply leaves the previous version
// serving and is acknowledged with ok:false, the error and `serving` (the previous version) —
// also a version its dataplane refuses as a whole (SLU_VERSION_REJECTED: a compile error, in
// every worker or the one thread) or that ends its workers 3 times in a row (SLU_VERSION_CRASHED,
// cmd/workers.ts); acks are retried (same backoff) until
// delivered or superseded by a newer one; while the controller is away it keeps serving what it
// has and never tears anything down.
//
// Security: snapshots carry TLS private keys (IR listeners' keyPem). The endpoint must only be
// reachable inside the cluster (a ClusterIP Service, NetworkPolicy to dataplane pods) and must
// be given a token (a Secret mounted into controller and dataplane pods). The controller can
// serve it over HTTPS (`tls` option) with a certificate whose CA the dataplane trusts (`ca`);
// without that, the keys cross the pod network in clear text.

import type { EncodedIR } from './delta.ts';
import type { IR } from './types.ts';

export const SNAPSHOTS_PATH = '/v1/snapshots';
export const ACKS_PATH = '/v1/acks';
export const DATAPLANES_PATH = '/v1/dataplanes';

export const HEARTBEAT_INTERVAL_MS = 5_000;
export const HEARTBEAT_TIMEOUT_MS = 15_000;
export const MAX_REDIRECTS = 5;
/** Retry-After (seconds) of a 503 "no leader yet". */
export const NO_LEADER_RETRY_AFTER_S = 1;

export interface HelloMessage {
  type: 'hello';
  /** Which controller replica answers (for logs). */
  server: string;
  /** The version published now; null before the first publish. */
  version: string | null;
  heartbeatMs: number;
}

export interface SnapshotMessage {
  type: 'snapshot';
  version: string;
  ir: IR;
}

/** A version as a delta against what the stream sent before (`delta=1` streams). */
export interface DeltaMessage {
  type: 'delta';
  version: string;
  ir: EncodedIR;
}

export interface HeartbeatMessage {
  type: 'heartbeat';
}

export type StreamMessage = HelloMessage | SnapshotMessage | DeltaMessage | HeartbeatMessage;

/** One socket of the applied version (an HttpListener or PassthroughListener name). */
export interface ListenerAck {
  name: string;
  ok: boolean;
  error?: string;
  /** The bind error's code (EADDRINUSE, EADDRNOTAVAIL ...), when binding is what failed. */
  code?: string;
}

export interface Ack {
  /** The dataplane's name (as in `GET /v1/snapshots?name=`). */
  name: string;
  /** The version this ack is about. */
  version: string;
  /** false: the version was rejected as a whole; the dataplane still serves `serving`. */
  ok: boolean;
  /** Per-socket results (ok:true with failed listeners: applied, but some ports could not be bound). */
  listeners: ListenerAck[];
  /** Why the apply failed (ok:false). */
  error?: string;
  /** The version the dataplane serves after this apply (`version` when ok; the previous one, or null, when not). */
  serving: string | null;
}

const NAME = /^[A-Za-z0-9._:-]{1,253}$/;

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name);
}

const VERSION = /^[A-Za-z0-9._:-]{1,128}$/;

export function isValidVersion(version: unknown): version is string {
  return typeof version === 'string' && VERSION.test(version);
}

/** The Ack in `body`, or a message saying what is wrong with it. */
export function parseAck(body: unknown): { ack: Ack } | { problem: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { problem: 'expected a JSON object' };
  const b = body as Record<string, unknown>;
  if (!isValidName(b.name)) return { problem: 'name: expected a dataplane name ([A-Za-z0-9._:-], 1 to 253 characters)' };
  if (!isValidVersion(b.version)) return { problem: 'version: expected a version string' };
  if (typeof b.ok !== 'boolean') return { problem: 'ok: expected a boolean' };
  if (b.error !== undefined && typeof b.error !== 'string') return { problem: 'error: expected a string' };
  if (b.serving !== undefined && b.serving !== null && !isValidVersion(b.serving)) return { problem: 'serving: expected a version string or null' };
  if (!Array.isArray(b.listeners)) return { problem: 'listeners: expected an array' };
  const listeners: ListenerAck[] = [];
  for (const [i, l] of (b.listeners as unknown[]).entries()) {
    const item = l as Record<string, unknown> | null;
    if (typeof item !== 'object' || item === null || typeof item.name !== 'string' || typeof item.ok !== 'boolean') {
      return { problem: `listeners[${i}]: expected {name: string, ok: boolean, error?: string}` };
    }
    if (item.error !== undefined && typeof item.error !== 'string') return { problem: `listeners[${i}].error: expected a string` };
    if (item.code !== undefined && (typeof item.code !== 'string' || !/^[A-Z0-9_]{1,32}$/.test(item.code))) return { problem: `listeners[${i}].code: expected an error code such as EADDRINUSE` };
    listeners.push({
      name: item.name,
      ok: item.ok,
      ...(typeof item.error === 'string' ? { error: item.error } : {}),
      ...(typeof item.code === 'string' ? { code: item.code } : {}),
    });
  }
  const ack: Ack = {
    name: b.name,
    version: b.version,
    ok: b.ok,
    listeners,
    ...(typeof b.error === 'string' ? { error: b.error } : {}),
    // An older dataplane without `serving`: an ok ack means it serves that version.
    serving: b.serving === undefined ? (b.ok ? b.version : null) : (b.serving as string | null),
  };
  return { ack };
}
