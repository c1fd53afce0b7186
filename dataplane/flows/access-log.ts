// The access log: one JSON line per recorded request flow (--access-log PATH, `-` for stdout; off
// by default), with the fields --access-log-fields names. Writes never wait: past 1 MiB queued
// (a slow disk, a full pipe), lines are dropped and counted rather than held in memory.

import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import client, { type Registry } from 'prom-client';
import type { Flow } from '../../ir/flow.ts';

/** What a line may hold, and how each is read from a flow. */
const FIELDS: Record<string, (f: Flow) => unknown> = {
  time: (f) => f.time,
  verdict: (f) => f.verdict,
  drop_reason: (f) => f.dropReason,
  method: (f) => f.l7?.method,
  path: (f) => f.l7?.path,
  host: (f) => f.l7?.host,
  protocol: (f) => f.l7?.protocol,
  status: (f) => f.l7?.status,
  duration_ms: (f) => f.l7?.latencyMs,
  client: (f) => `${f.source.ip}:${f.source.port}`,
  upstream: (f) => (f.destination.ip ? `${f.destination.ip}:${f.destination.port}` : undefined),
  route: (f) => f.route?.name,
  route_source: (f) => f.route?.source,
  service: (f) => (f.service ? `${f.service.namespace}/${f.service.name}` : undefined),
  rule: (f) => f.rule?.name,
};
export const ACCESS_LOG_FIELDS: readonly string[] = Object.keys(FIELDS);

/** Bytes queued on the stream past which lines are dropped. */
export const ACCESS_LOG_QUEUE_LIMIT = 1024 * 1024;

export class AccessLog {
  private readonly out: Writable;
  private readonly fields: [string, (f: Flow) => unknown][];
  private readonly dropped: client.Counter;
  private readonly ownsStream: boolean;

  /** `path`: a file (appended to) or `-` (stdout). `fields`: a subset of ACCESS_LOG_FIELDS, in that order. */
  /** `onError`: told once when the log cannot be written (its lines are then dropped and counted). */
  constructor(path: string, fields: readonly string[], registry: Registry, onError: (error: Error) => void) {
    for (const f of fields) if (!(f in FIELDS)) throw new Error(`access log field ${f}: expected one of ${ACCESS_LOG_FIELDS.join(', ')}`);
    this.fields = fields.map((f) => [f, FIELDS[f]!]);
    this.ownsStream = path !== '-';
    this.out = this.ownsStream ? createWriteStream(path, { flags: 'a' }) : process.stdout;
    // A broken log must not take the proxy down: said once, then its lines count as dropped.
    this.out.once('error', onError);
    this.out.on('error', () => undefined);
    this.dropped = new client.Counter({ name: 'sluice_access_log_dropped_total', help: 'Access log lines dropped because the log could not keep up (over 1 MiB queued)', registers: [registry] });
  }

  write(flow: Flow): void {
    if (flow.type !== 'L7') return;
    if (this.out.writableLength > ACCESS_LOG_QUEUE_LIMIT || this.out.destroyed) {
      this.dropped.inc();
      return;
    }
    const line: Record<string, unknown> = {};
    for (const [name, read] of this.fields) {
      const value = read(flow);
      if (value !== undefined) line[name] = value;
    }
    this.out.write(`${JSON.stringify(line)}\n`);
  }

  close(): Promise<void> {
    if (!this.ownsStream) return Promise.resolve();
    return new Promise((resolve) => this.out.end(resolve));
  }
}
