// Admin HTTP API: health, readiness, Prometheus metrics, computed statuses
// (in Kubernetes shape) and the IR currently served.
import { createServer } from 'node:http';
import { isIP } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { FLOW_VERDICTS, flowMatches as filterMatches, type Flow, type FlowFilter } from '../ir/flow.ts';
import { compilePathPattern, pathPatternMatches } from '../dataplane/flows/path-pattern.ts';
import type { IR } from '../ir/types.ts';
import { parseHostPort } from '../ir/host-port.ts';
import { redactIR } from '../ir/version.ts';
import { problemLine, type Problem } from '../controller/problems.ts';
import type { KubeObject } from '../controller/sources/objects.ts';
import { UI_LIMITS, UiHub } from './ui/events.ts';
import { nodeFlowFeed } from './ui/flows.ts';
import { registerUi, uiNotes, type UiMode } from './ui/server.ts';
import { WorkerMetricsRegistry, type WorkerVersion } from './workers.ts';

/** A started part of the process (controller, standalone, dataplane): what its caller may do with it. */
export interface Running {
  close(): Promise<void>;
}

export interface AdminState {
  ready(): boolean;
  /** Every object read, with its computed status; Secret data never leaves. */
  objects(): KubeObject[];
  ir(): IR | null;
  /** The current problems (PROBLEM_CATALOGUE); absent: none tracked. */
  problems?(): Problem[];
  /** The node's flows: the kernel's connection records (eBPF on) and the proxy's request records, one stream. */
  flows?: FlowSource;
  /**
   * With --workers: the version each worker thread serves (`ir()` is the one the process applied,
   * which every serving worker had acknowledged when it was applied). Absent, or undefined: one thread.
   */
  workers?(): WorkerVersion[] | undefined;
  /** The web view (/ui): which process this is, and whose statuses are ours. Absent: `sluice run`. */
  ui?: { mode: UiMode; controllerName?: string };
}

export interface FlowSource {
  /**
   * The latest `last` flows that pass `filter`, oldest first; with --workers a promise (they are
   * read from every worker), except for a filter of drops and audits only (see WorkerFlows).
   */
  flows(filter: FlowFilter, last?: number): Flow[] | Promise<Flow[]>;
  follow(listener: (flow: Flow) => void): () => void;
}

/**
 * The admin API's own bounds (its port is not the front door, but it is a port, and its
 * descriptors are the process's): connections open at once (probes, scrapes, the web view's 16
 * and the flow followers' 16 fit many times; one more is closed at once), and the time a request
 * may take to arrive whole — Fastify turns Node's own bound (`requestTimeout`, 300 s) off, and its
 * option of that name does not take (Node reads it when the server is made: measured, a body
 * dripped a byte at a time held its connection past 45 s), so the server is made here. Every admin
 * request is a GET, headers only: Node's header bound (`headersTimeout`, 60 s) is the anchor; Node
 * checks every 30 s (cut within 60-90 s). Answers are not bounded by it (`follow` streams last).
 */
export const ADMIN_MAX_CONNECTIONS = 256;
export const ADMIN_REQUEST_TIMEOUT_MS = 60_000;

/** Bytes a flow follower may have queued before flows are skipped for it. */
const FOLLOW_QUEUE_LIMIT = 1024 * 1024;
/** Flow followers at a time (each one's filter runs on every flow, on the serving thread): as /ui/events. */
export const MAX_FLOW_FOLLOWERS = UI_LIMITS.maxClients;

/** /api/flows query parameters: hubble observe's filters, each repeatable or comma-separated. */
const FLOW_QUERY: Record<string, keyof FlowFilter> = {
  verdict: 'verdict',
  type: 'type',
  'from-pod': 'fromPod',
  'to-pod': 'toPod',
  'from-namespace': 'fromNamespace',
  'to-namespace': 'toNamespace',
  namespace: 'namespace',
  'to-service': 'toService',
  'http-status': 'httpStatus',
  'http-method': 'httpMethod',
  'http-path': 'httpPath',
};

/** The filter a query asks for, or the problem with it. */
export function flowFilterOf(query: Record<string, string | string[] | undefined>): FlowFilter | string {
  const filter: Record<string, string[]> = {};
  for (const [param, field] of Object.entries(FLOW_QUERY)) {
    const raw = query[param];
    if (raw === undefined) continue;
    const values = (Array.isArray(raw) ? raw : [raw]).flatMap((v) => v.split(',')).filter((v) => v !== '');
    if (values.length > 0) filter[field] = values;
  }
  for (const v of filter.verdict ?? []) if (!(FLOW_VERDICTS as readonly string[]).includes(v)) return `verdict ${v}: expected one of ${FLOW_VERDICTS.join(', ')}`;
  filter.type = (filter.type ?? []).map((t) => ({ l7: 'L7', 'l3/l4': 'L3_L4', l3_l4: 'L3_L4', l4: 'L3_L4', drop: 'drop', 'policy-verdict': 'policy-verdict' })[t.toLowerCase()] ?? t);
  for (const t of filter.type) if (t !== 'L7' && t !== 'L3_L4') return `type ${t}: expected l7 or l3/l4`;
  if (filter.type.length === 0) delete filter.type;
  for (const p of filter.httpPath ?? []) {
    try {
      compilePathPattern(p);
    } catch (error) {
      return `http-path ${p}: not a regular expression (RE2 syntax, as hubble's): ${(error as Error).message}`;
    }
  }
  for (const s of filter.httpStatus ?? []) if (!/^\d{1,3}\+?$/.test(s)) return `http-status ${s}: expected a code (403) or a class (5+)`;
  return filter as FlowFilter;
}

/** A metrics registry with the Node process metrics (`sluice_process_*`), one per Sluice process (with --workers, theirs summed in). */
export function processRegistry(): WorkerMetricsRegistry {
  const registry = new WorkerMetricsRegistry();
  collectDefaultMetrics({ register: registry, prefix: 'sluice_process_' });
  return registry;
}

/**
 * Host names no public DNS can hand an attacker: `localhost` and `*.localhost` (RFC 6761), single
 * labels (search-domain names such as a Service's), `.local` (mDNS), `.internal` (reserved by
 * ICANN for private use), and the cluster's `.svc` / `.cluster.local`.
 */
const PRIVATE_NAME = /^(?:[a-z0-9-]+|(?:[a-z0-9-]+\.)*(?:localhost|local|internal|svc|cluster\.local))\.?$/i;

/**
 * Whether the admin API answers a request with this Host. DNS rebinding: a page on a public name
 * that resolves to 127.0.0.1 (or to the node) reaches the admin port from a browser with its own
 * name as Host, and would read /api/status, /api/config, flows and /ui/events. What the admin API
 * really gets — kubelet probes and Prometheus (the pod IP), port-forwards and curl (localhost,
 * 127.0.0.1), in-cluster clients (a Service name) — always passes; no Host (HTTP/1.0) passes too,
 * since browsers always send one.
 */
export function adminHostAllowed(hostHeader: string | undefined): boolean {
  if (hostHeader === undefined || hostHeader === '') return true;
  const host = hostHeader.startsWith('[') ? hostHeader.slice(1, hostHeader.indexOf(']')) : hostHeader.replace(/:\d*$/, '');
  return isIP(host) !== 0 || PRIVATE_NAME.test(host);
}

/** Problems that can keep a first configuration from being applied: named by a /readyz that is not ready yet. */
const NOT_APPLIED_CODES = new Set<Problem['code']>(['SLU_SOURCE_READ', 'SLU_VERSION_REJECTED', 'SLU_VERSION_CRASHED', 'SLU_VERSION_LATE', 'SLU_APPLY_FAILED']);

export async function startAdminServer(address: string, state: AdminState, registry: Registry): Promise<FastifyInstance> {
  const { host, port } = parseHostPort(address);
  // forceCloseConnections: `follow` streams never end by themselves, and closing must not wait for them.
  const app = Fastify({ logger: false, forceCloseConnections: true, serverFactory: (handler) => createServer({ requestTimeout: ADMIN_REQUEST_TIMEOUT_MS }, handler) });
  app.server.maxConnections = ADMIN_MAX_CONNECTIONS;
  app.addHook('onRequest', async (req, reply) => {
    if (!adminHostAllowed(req.headers.host)) {
      return reply.code(403).type('text/plain').send('forbidden: the admin API answers an IP address, localhost or a cluster-internal name as Host (DNS rebinding)\n');
    }
  });
  app.get('/healthz', async () => 'ok\n');
  // A source read error leaves the last good configuration serving: still ready (a 503 would only
  // pull a serving instance out of its load balancer), with the reason in the body.
  // With --workers, ready once every worker serves a version (each one's apply is awaited, bounded:
  // cmd/workers.ts); a worker being replaced, or already on the next version, is named in the body.
  app.get('/readyz', async (_req, reply) => {
    if (!state.ready()) {
      // Why, where the process knows: a kind the API server will not let it list (403) holds the
      // first translation; a first version refused or crashing holds the first apply.
      const why = (state.problems?.() ?? []).filter((p) => NOT_APPLIED_CODES.has(p.code)).map(problemLine);
      return reply.code(503).send(`not ready: no configuration applied yet${why.length === 0 ? '' : `, while:\n${why.join('\n')}`}\n`);
    }
    const version = state.ir()?.version;
    const unread = (state.problems?.() ?? []).filter((p) => p.code === 'SLU_SOURCE_READ').map(problemLine);
    const reasons = [
      ...unread,
      ...(state.workers?.() ?? []).filter((w) => w.version !== version).map((w) => (w.version === null ? `worker ${w.worker}: starting, serves nothing yet` : `worker ${w.worker}: serves version ${w.version}, not ${version} (a change being applied)`)),
    ];
    // A source that cannot be read leaves the last good configuration in place: say that first.
    const serving = unread.length > 0 ? 'the last good configuration' : `version ${version}`;
    return reasons.length === 0 ? 'ready\n' : `ready, serving ${serving} while:\n${reasons.join('\n')}\n`;
  });
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.get('/api/status', async () => ({ apiVersion: 'v1', kind: 'List', items: state.objects().map(redactSecret), problems: state.problems?.() ?? [] }));
  app.get('/api/config', async (_req, reply) => {
    const ir = state.ir();
    if (!ir) return reply.code(503).send({ error: 'no configuration applied yet' });
    // `version`: what every serving worker has applied; `workers`: what each serves now (a change
    // in flight shows on them first; null: a worker starting). Converged when all equal `version`.
    const workers = state.workers?.();
    return { version: ir.version, ...(workers ? { workers } : {}), ir: redactIR(ir) };
  });
  // Flows as NDJSON, oldest first; `follow=true` keeps the response open and streams new ones.
  let followers = 0;
  app.get<{ Querystring: Record<string, string | string[] | undefined> }>('/api/flows', async (req, reply) => {
    const source = state.flows;
    if (!source) return reply.code(404).send({ error: 'no flows are recorded in this process' });
    const filter = flowFilterOf(req.query);
    if (typeof filter === 'string') return reply.code(400).send({ error: filter });
    const lastText = typeof req.query.last === 'string' ? req.query.last : undefined;
    const last = lastText === undefined ? undefined : Number(lastText);
    if (last !== undefined && (!Number.isInteger(last) || last < 0)) return reply.code(400).send({ error: `last ${lastText}: expected a whole number` });
    const lines = (await source.flows(filter, last)).map((f) => `${JSON.stringify(f)}\n`).join('');
    if (req.query.follow !== 'true') return reply.type('application/x-ndjson').send(lines);
    if (followers >= MAX_FLOW_FOLLOWERS) {
      return reply.code(503).header('retry-after', '5').send({ error: `${MAX_FLOW_FOLLOWERS} clients already follow flows; try again later` });
    }
    followers++;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    res.write(lines);
    // A follower that does not read (a stopped `sluice observe -f`) skips flows past 1 MiB queued
    // rather than growing this process's memory.
    const stop = source.follow((flow) => {
      if (res.writableLength < FOLLOW_QUEUE_LIMIT && filterMatches(flow, filter, pathPatternMatches)) res.write(`${JSON.stringify(flow)}\n`);
    });
    res.on('close', () => {
      stop();
      followers--;
    });
  });
  const feeds = state.flows ? [nodeFlowFeed(state.flows)] : [];
  const mode = state.ui?.mode ?? 'run';
  const hub = new UiHub({
    ir: () => state.ir(),
    objects: () => state.objects(),
    ...(state.problems ? { problems: () => state.problems!() } : {}),
    ...(state.ui?.controllerName ? { controllerName: state.ui.controllerName } : {}),
    feeds,
    registry,
    hello: {
      mode,
      capabilities: { conditions: mode !== 'dataplane', traffic: registry.getSingleMetric('sluice_http_requests_total') !== undefined, flows: feeds.length > 0 },
      notes: uiNotes(mode, feeds.length > 0),
    },
  });
  registerUi(app, hub);
  await app.listen({ host, port });
  return app;
}

function redactSecret(obj: KubeObject): KubeObject {
  if (obj.kind !== 'Secret') return obj;
  const { data, stringData, ...rest } = obj as KubeObject & { stringData?: Record<string, string> };
  const keys = [...Object.keys(data ?? {}), ...Object.keys(stringData ?? {})];
  return { ...rest, data: Object.fromEntries(keys.map((k) => [k, '<redacted>'])) } as KubeObject;
}
