// The access log: one JSON line per recorded request flow (--access-log PATH, `-` for stdout; off
// by default), with the fields --access-log-fields names. A Gateway may switch it on or off for its
// own requests, and name its own fields (annotations sluice.dev/access-log, -fields; ir
// ListenerScope.accessLog): lines then go to the flag's sink, stdout without it. Writes never
// wait: past 1 MiB queued (a slow disk, a full pipe), lines are dropped and counted rather than
// held in memory.

import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import client, { type Registry } from 'prom-client';
import { ACCESS_LOG_FIELDS as FIELD_NAMES, type AccessLogField, type Flow } from '../../ir/flow.ts';
import { forwardedFlow, type FlowRecorder, type ForwardedRequest } from './flow-buffer.ts';
import type { AccessLogSetting, HttpIR } from '../../ir/types.ts';
import { metric } from '../metrics.ts';

export const ACCESS_LOG_FIELDS: readonly string[] = FIELD_NAMES;

type FieldReader = [string, (f: Flow) => unknown];

/** How each field is read from a flow. */
const FIELDS: Record<AccessLogField, (f: Flow) => unknown> = {
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
  gateway: (f) => f.gateway,
};

const readers = (fields: readonly string[]): FieldReader[] => fields.filter((f): f is AccessLogField => f in FIELDS).map((f) => [f, FIELDS[f]]);

/** Each Gateway's switch from the IR's listener scopes (every scope of a Gateway carries the same). */
export function gatewayAccessLogs(http: HttpIR): Map<string, AccessLogSetting> {
  const out = new Map<string, AccessLogSetting>();
  for (const l of http.listeners) {
    for (const s of l.scopes) {
      if (s.accessLog === undefined) continue;
      const gateway = s.origin.parent ?? s.origin;
      out.set(`${gateway.namespace}/${gateway.name}`, s.accessLog);
    }
  }
  return out;
}

/** Bytes queued on the stream past which lines are dropped. */
export const ACCESS_LOG_QUEUE_LIMIT = 1024 * 1024;

export class AccessLog implements FlowRecorder {
  private readonly out: Writable;
  private readonly fields: FieldReader[];
  private readonly dropped: client.Counter;
  private readonly ownsStream: boolean;
  /** --access-log given: every request not switched off by its Gateway is logged. */
  private readonly onByDefault: boolean;
  /** Per Gateway (`<ns>/<name>`): whether its requests are logged, with which fields. */
  private gateways = new Map<string, { enabled: boolean | undefined; fields: FieldReader[] }>();

  /**
   * `path`: a file (appended to) or `-` (stdout). `fields`: a subset of ACCESS_LOG_FIELDS, in that
   * order. `onByDefault`: false when only Gateways that ask for it are logged (no --access-log).
   * `onError`: told once when the log cannot be written (its lines are then dropped and counted).
   */
  constructor(path: string, fields: readonly string[], registry: Registry, onError: (error: Error) => void, onByDefault = true) {
    for (const f of fields) if (!(f in FIELDS)) throw new Error(`access log field ${f}: expected one of ${ACCESS_LOG_FIELDS.join(', ')}`);
    this.fields = readers(fields);
    this.onByDefault = onByDefault;
    this.ownsStream = path !== '-';
    this.out = this.ownsStream ? createWriteStream(path, { flags: 'a' }) : process.stdout;
    // A broken log must not take the proxy down: said once, then its lines count as dropped.
    this.out.once('error', onError);
    this.out.on('error', () => undefined);
    this.dropped = metric(registry, 'sluice_access_log_dropped_total', (registers) =>
      new client.Counter({ name: 'sluice_access_log_dropped_total', help: 'Access log lines dropped because the log could not keep up (over 1 MiB queued)', registers }),
    );
  }

  /** The Gateways' switches of the version being served (gatewayAccessLogs). */
  configure(gateways: Map<string, AccessLogSetting>): void {
    this.gateways = new Map([...gateways].map(([key, s]) => [key, { enabled: s.enabled, fields: s.fields ? readers(s.fields) : this.fields }]));
  }

  /** FlowRecorder: flows pushed as objects. */
  readonly flow = (flow: Flow): void => this.write(flow);

  /** FlowRecorder: a forwarded request's flow is built only when its line is written. */
  readonly forwarded = (r: ForwardedRequest): void => {
    if (this.logs(r.gateway)) this.write(forwardedFlow(r));
  };

  /** Whether requests through Gateway `gateway` (`<ns>/<name>`) are logged. */
  private logs(gateway: string | undefined): boolean {
    return (gateway !== undefined ? this.gateways.get(gateway)?.enabled : undefined) ?? this.onByDefault;
  }

  write(flow: Flow): void {
    if (flow.type !== 'L7') return;
    const gateway = flow.gateway !== undefined ? this.gateways.get(flow.gateway) : undefined;
    if (!this.logs(flow.gateway)) return;
    if (this.out.writableLength > ACCESS_LOG_QUEUE_LIMIT || this.out.destroyed) {
      this.dropped.inc();
      return;
    }
    const line: Record<string, unknown> = {};
    for (const [name, read] of gateway?.fields ?? this.fields) {
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
