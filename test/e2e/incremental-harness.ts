// Incremental soundness from outside: one manifest folder served by long-lived `sluice run`
// processes (one worker, and two worker threads fed IR deltas) that see every edit, compared after
// each edit with a fresh `sluice run` started on the same folder. Whatever the incremental pipeline
// caches (translator memo, per-document parse, compiled routes, worker deltas, status store), a
// process that lived through the edits must serve what a fresh one serves: the same IR (version
// included: it is a content hash), the same statuses and problems, and the same answers.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { tlsSecretData, type CertificateBundle } from '../support/demo/certs.ts';
import { startEchoServer, type EchoReply, type EchoServer, type EchoTlsOptions } from '../support/demo/echo-server.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { udpExchange } from '../conformance/gateway-api/l4-traffic.ts';

/** Listener ports the scenarios use (each process binds them at its own offset). */
export const PORTS = [80, 443, 8080] as const;

/**
 * One request sent to every process; `grpc`: an HTTP/2 cleartext call with a gRPC content type;
 * `udp`: one datagram from a local port not used before (a new UDP session; host and path unused);
 * `session`: a session persistence exchange (see askSession).
 */
export interface Probe {
  scheme: 'http' | 'https' | 'grpc' | 'udp' | 'session';
  port: (typeof PORTS)[number];
  host: string;
  path: string;
}

/** What a probe got: the status, which backend (the echo server's pod) answered, and the headers that matter. */
export interface Answer {
  status: number | string;
  backend: string | null;
  headers: Record<string, string>;
  /** HTTPS: the SHA-256 fingerprint of the certificate the listener presented. */
  certificate?: string;
}

type Manifest = object | string;
/** A file's content: objects (one document each, in this order) or raw text. */
export type FileContent = Manifest[] | string;

export interface Step {
  what: string;
  /** Files written (path relative to the folder), `null` deletes the file. */
  files?: Record<string, FileContent | null>;
  /** Versions written before `files`, 20 ms apart (a burst: the process may read any of them, or none). */
  burst?: Record<string, FileContent | null>[];
  /** Renames, applied before `files`. */
  renames?: [string, string][];
  /**
   * `previous`: a fresh process would not serve what an incremental one must (a file that stopped
   * parsing keeps its last good objects): compare with the previous step's fresh answers instead.
   */
  reference?: 'previous';
  /** Problem codes that must be listed after this step (by the incremental processes). */
  problems?: string[];
  /** Checked on the fresh process's observation (the scenario's own expectation, so a comparison of two wrong answers fails too). */
  expect?: (fresh: Observation) => void;
}

export interface Observation {
  version: string;
  ir: unknown;
  statuses: unknown[];
  problems: string[];
  answers: Record<string, Answer>;
}

export interface Incremental {
  label: string;
  sluice: SluiceProcess;
  offset: number;
}

/** Headers a response may carry that say nothing of the configuration (or count what came before). */
const VOLATILE_HEADERS = new Set(['date', 'content-length', 'connection', 'keep-alive', 'transfer-encoding', 'x-request-id', 'ratelimit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'retry-after']);

export function manifestText(content: FileContent): string {
  if (typeof content === 'string') return content;
  return content.map((o) => (typeof o === 'string' ? o : JSON.stringify(o))).join('\n---\n') + '\n';
}

export function writeFiles(dir: string, files: Record<string, FileContent | null>): void {
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    if (content === null) {
      rmSync(full, { force: true });
      continue;
    }
    mkdirSync(dirname(full), { recursive: true });
    // Written beside and renamed over, as editors do: a reader never sees half a file (that case has its own tests).
    const temp = join(dirname(full), `.${Math.random().toString(36).slice(2)}.tmp`);
    writeFileSync(temp, manifestText(content));
    renameSync(temp, full);
  }
}

export function applyStep(dir: string, step: Step): void {
  for (const [from, to] of step.renames ?? []) {
    mkdirSync(dirname(join(dir, to)), { recursive: true });
    renameSync(join(dir, from), join(dir, to));
  }
  writeFiles(dir, step.files ?? {});
}

/** Starts an incremental process (or a fresh reference) on `dir` with its own listener port offset. */
export async function startOn(dir: string, extra: string[] = []): Promise<{ sluice: SluiceProcess; offset: number }> {
  const offset = await freePortOffset([...PORTS]);
  const sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--redirect-port-offset', '0', ...extra], 30_000);
  return { sluice, offset };
}

async function json(url: string): Promise<any> {
  const res = await fetch(url);
  return res.json();
}

/** Everything a status says that does not depend on when or how often an object was seen. */
function normaliseStatus(item: any): unknown {
  const { metadata, status, spec, ...rest } = item;
  const { creationTimestamp: _c, uid: _u, resourceVersion: _r, generation: _g, ...meta } = metadata ?? {};
  return { ...rest, metadata: meta, ...(status === undefined ? {} : { status: stripTimes(status) }) };
}

function stripTimes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripTimes);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'lastTransitionTime' || k === 'observedGeneration') continue;
    out[k] = stripTimes(v);
  }
  return out;
}

/** Every condition's observedGeneration that is not its object's generation (a status left from an older spec). */
export function staleConditions(items: any[]): string[] {
  const stale: string[] = [];
  const walk = (value: unknown, where: string, generation: number) => {
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${where}[${i}]`, generation));
    if (typeof value !== 'object' || value === null) return;
    const record = value as Record<string, unknown>;
    if (typeof record.type === 'string' && 'observedGeneration' in record && record.observedGeneration !== generation) {
      stale.push(`${where} ${record.type}: observedGeneration ${String(record.observedGeneration)}, generation ${generation}`);
    }
    for (const [k, v] of Object.entries(record)) walk(v, `${where}.${k}`, generation);
  };
  for (const item of items) {
    if (item.metadata?.generation !== undefined) walk(item.status, `${item.kind}/${item.metadata.namespace ?? ''}/${item.metadata.name}`, item.metadata.generation);
  }
  return stale;
}

const key = (item: any) => `${item.kind}/${item.metadata?.namespace ?? ''}/${item.metadata?.name}`;

export async function observe(sluice: SluiceProcess, offset: number, probes: Record<string, Probe>, tries: number): Promise<Observation> {
  const config = await json(`${sluice.admin}/api/config`);
  const status = await json(`${sluice.admin}/api/status`);
  const statuses = [...status.items].sort((a, b) => key(a).localeCompare(key(b))).map(normaliseStatus);
  const problems = (status.problems as { code: string; message: string }[]).map((p) => `${p.code} ${p.message}`).sort();
  const answers: Record<string, Answer> = {};
  for (const [name, probe] of Object.entries(probes)) answers[name] = await ask(probe, offset, tries);
  const { version: _v, ...ir } = config.ir ?? {};
  return { version: config.version, ir, statuses, problems, answers };
}

/**
 * The answer to a probe, on a new connection each time: with worker threads each connection lands on
 * one of them (SO_REUSEPORT), so `tries` connections reach both with high probability, and all
 * answers must agree.
 */
async function ask(probe: Probe, offset: number, tries: number): Promise<Answer> {
  const answers: Answer[] = [];
  for (let i = 0; i < tries; i++) answers.push(await askOnce(probe, offset));
  const first = JSON.stringify(answers[0]);
  const differing = answers.find((a) => JSON.stringify(a) !== first);
  if (differing) return { status: `inconsistent: ${first} vs ${JSON.stringify(differing)}`, backend: null, headers: {} };
  return answers[0]!;
}

function keptHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (VOLATILE_HEADERS.has(k) || k.startsWith(':') || v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** The echo server that answered, and over TLS the name the gateway asked for and the client certificate it presented. */
function backendOf(body: string): string | null {
  try {
    const parsed = JSON.parse(body) as EchoReply;
    if (typeof parsed.pod !== 'string') return null;
    if (!parsed.tls) return parsed.pod;
    const client = parsed.tls.peerCertificates?.[0];
    return `${parsed.pod} tls ${parsed.tls.serverName} client ${client ? createHash('sha256').update(client.replace(/\s/g, '')).digest('hex').slice(0, 12) : 'none'}`;
  } catch {
    return null;
  }
}

/** Local UDP ports used by probes (each exchange must start a session of its own). */
const udpSources = new Set<number>();

async function askUdp(port: number): Promise<Answer> {
  // 3 s: a busy CI box can hold a datagram past 1 s; a port nobody listens on is refused at once.
  const exchange = await udpExchange('127.0.0.1', port, 'incremental', 3000, udpSources);
  // An errno (ECONNREFUSED) stands for its message, which names the process's own port.
  return 'pod' in exchange ? { status: 'answered', backend: exchange.pod, headers: {} } : { status: `error ${/\bE[A-Z]+\b/.exec(exchange.error)?.[0] ?? exchange.error}`, backend: null, headers: {} };
}

/** A session token (dataplane/upstream/session.ts): 38 characters of base64url. */
const TOKEN = /^[A-Za-z0-9_-]{38}$/;

/**
 * Session persistence: a first request, then three that send back the token it got (the cookie of
 * its Set-Cookie, or the response header holding a token); the answer is the first one's, with the
 * token masked (each process signs with its own key) and, as `backend`, whether the session stayed
 * on the backend that answered first (which one is the load balancer's pick, not compared).
 */
async function askSession(probe: Probe, offset: number): Promise<Answer> {
  const first = await askOnce({ ...probe, scheme: 'http' }, offset);
  const headers = { ...first.headers };
  let send: Record<string, string> | null = null;
  const cookie = /^([^=;\s]+)=([^;]*)(.*)$/.exec(headers['set-cookie'] ?? '');
  if (cookie && TOKEN.test(cookie[2]!)) {
    send = { cookie: `${cookie[1]}=${cookie[2]}` };
    headers['set-cookie'] = `${cookie[1]}=<token>${cookie[3]}`;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (send === null && TOKEN.test(value)) {
      send = { [name]: value };
      headers[name] = '<token>';
    }
  }
  // (Which backend answered is the load balancer's pick: not compared.)
  if (send === null) return { ...first, headers, backend: first.backend === null ? null : 'no session token' };
  const backends = [first.backend];
  for (let i = 0; i < 3; i++) backends.push((await askOnce({ ...probe, scheme: 'http' }, offset, send)).backend);
  return { ...first, headers, backend: backends.every((b) => b === backends[0]) ? 'the session stays on its backend' : `the session moved: ${backends.join(', ')}` };
}

function askOnce(probe: Probe, offset: number, extra: Record<string, string> = {}): Promise<Answer> {
  const port = probe.port + offset;
  if (probe.scheme === 'grpc') return askGrpc(probe, port);
  if (probe.scheme === 'udp') return askUdp(port);
  if (probe.scheme === 'session') return askSession(probe, offset);
  return new Promise<Answer>((resolve) => {
    const options = { host: '127.0.0.1', port, path: probe.path, headers: { host: probe.host, ...extra }, agent: false as const, timeout: 5000 };
    const req =
      probe.scheme === 'https'
        ? httpsRequest({ ...options, servername: probe.host, rejectUnauthorized: false })
        : httpRequest(options);
    let certificate: string | undefined;
    req.on('socket', (socket) => {
      if (probe.scheme === 'https') socket.once('secureConnect', () => (certificate = (socket as TLSSocket).getPeerCertificate().fingerprint256));
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, backend: backendOf(body), headers: keptHeaders(res.headers), ...(certificate ? { certificate } : {}) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: `error ${e.code ?? e.message}`, backend: null, headers: {} }));
    req.end();
  });
}

function askGrpc(probe: Probe, port: number): Promise<Answer> {
  return new Promise<Answer>((resolve) => {
    const session = http2Connect(`http://127.0.0.1:${port}`);
    const done = (a: Answer) => {
      session.destroy();
      resolve(a);
    };
    session.on('error', (e: NodeJS.ErrnoException) => done({ status: `error ${e.code ?? e.message}`, backend: null, headers: {} }));
    session.setTimeout(5000, () => done({ status: 'error timeout', backend: null, headers: {} }));
    const stream = session.request({ ':method': 'POST', ':path': probe.path, ':authority': probe.host, 'content-type': 'application/grpc', te: 'trailers' });
    let status = 0;
    let headers: Record<string, string> = {};
    let body = '';
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = keptHeaders(h);
    });
    stream.on('trailers', (t) => Object.assign(headers, keptHeaders(t)));
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => done({ status, backend: backendOf(body), headers }));
    stream.on('error', (e: NodeJS.ErrnoException) => done({ status: `error ${e.code ?? e.message}`, backend: null, headers: {} }));
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

/** The parts two processes must agree on, compared as text so a failure shows the first difference. */
export function comparable(o: Observation, withProblems: boolean): unknown {
  return { version: o.version, ir: o.ir, statuses: o.statuses, answers: o.answers, ...(withProblems ? { problems: o.problems } : {}) };
}

/**
 * Waits until the incremental process says (admin API) that it serves the fresh observation's
 * version on every worker thread (`/api/config` `workers`; a change is applied within
 * milliseconds, a removal within a file after 0.5 s of stable content, a burst after 100 ms), with
 * the same statuses and listing `problemCodes`, at most `timeoutMs`; then observes it once: its
 * answers must then be the fresh process's, with no further polling.
 */
export async function converge(proc: Incremental, target: Observation, probes: Record<string, Probe>, tries: number, problemCodes: string[] = [], timeoutMs = 10_000): Promise<Observation> {
  const deadline = Date.now() + timeoutMs;
  const wantedStatuses = JSON.stringify(target.statuses);
  for (;;) {
    const config = await json(`${proc.sluice.admin}/api/config`).catch(() => null);
    const workers = (config?.workers ?? []) as { worker: number; version: string | null }[];
    if (config?.version === target.version && workers.every((w) => w.version === target.version)) {
      const status = await json(`${proc.sluice.admin}/api/status`);
      const statuses = [...status.items].sort((a, b) => key(a).localeCompare(key(b))).map(normaliseStatus);
      const listed = (status.problems as { code: string }[]).map((p) => p.code);
      if (JSON.stringify(statuses) === wantedStatuses && problemCodes.every((c) => listed.includes(c))) break;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return observe(proc.sluice, proc.offset, probes, tries);
}

// -- builders of the scenarios' objects --
export const GW = 'gateway.networking.k8s.io';
export const T0 = '2026-01-01T00:00:00Z';
export const T1 = '2026-01-02T00:00:00Z';
export const T2 = '2026-01-03T00:00:00Z';

// Objects carry a creationTimestamp: otherwise it is the time a process first saw them, and a route
// added later would be younger in the incremental process than in the fresh one (a legitimate
// difference in precedence, not a stale cache).
export const meta = (name: string, namespace?: string, extra: Record<string, unknown> = {}) => ({ name, ...(namespace ? { namespace } : {}), creationTimestamp: T0, ...extra });

export const gatewayClass = (controllerName = 'sluice.dev/gateway-controller') => ({ apiVersion: `${GW}/v1`, kind: 'GatewayClass', metadata: meta('sluice'), spec: { controllerName } });

export interface ListenerSpec {
  name: string;
  port: number;
  protocol: string;
  hostname?: string;
  tls?: object;
  allowedRoutes?: object;
}
export const gateway = (listeners: ListenerSpec[], name = 'gw', extra: Record<string, unknown> = {}) => ({
  apiVersion: `${GW}/v1`,
  kind: 'Gateway',
  metadata: meta(name, 'default'),
  spec: { gatewayClassName: 'sluice', listeners, ...extra },
});
export const HTTP_ALL: ListenerSpec = { name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } };

/** A Service whose port `portName` reaches the echo server `backend` (its HTTP/1.1 port, or h2c for gRPC). */
export function service(name: string, backend: EchoServer, opts: { namespace?: string; portName?: string; port?: number; sliceName?: string; h2c?: boolean; https?: boolean } = {}): object[] {
  const namespace = opts.namespace ?? 'default';
  const portName = opts.portName ?? 'http';
  const target = opts.https ? backend.httpsPort! : opts.h2c ? backend.h2cPort! : backend.httpPort;
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: meta(name, namespace), spec: { ports: [{ name: portName, port: opts.port ?? 80 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: meta(`${name}-1`, namespace, { labels: { 'kubernetes.io/service-name': name } }),
      addressType: 'IPv4',
      ports: [{ name: opts.sliceName ?? portName, port: target }],
      endpoints: [{ addresses: ['127.0.0.1'] }],
    },
  ];
}

export const httpRoute = (name: string, spec: { hostnames?: string[]; backend: string; backendNamespace?: string; port?: number; path?: string; parent?: object }, namespace = 'default', created = T0) => ({
  apiVersion: `${GW}/v1`,
  kind: 'HTTPRoute',
  metadata: { ...meta(name, namespace), creationTimestamp: created },
  spec: {
    parentRefs: [spec.parent ?? { name: 'gw', namespace: 'default' }],
    ...(spec.hostnames ? { hostnames: spec.hostnames } : {}),
    rules: [{ ...(spec.path ? { matches: [{ path: { type: 'PathPrefix', value: spec.path } }] } : {}), backendRefs: [{ name: spec.backend, ...(spec.backendNamespace ? { namespace: spec.backendNamespace } : {}), port: spec.port ?? 80 }] }],
  },
});

export const grpcRoute = (name: string, hostnames: string[], backend: string, created = T0) => ({
  apiVersion: `${GW}/v1`,
  kind: 'GRPCRoute',
  metadata: { ...meta(name, 'default'), creationTimestamp: created },
  spec: { parentRefs: [{ name: 'gw', namespace: 'default' }], hostnames, rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
});

export const tlsSecret = (name: string, cert: CertificateBundle) => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: meta(name, 'default'), data: tlsSecretData(cert) });

// -- reading the fresh observation (each step's own expectation) --
export type Item = { kind: string; metadata: { name: string; namespace?: string }; status?: any };
export const item = (o: Observation, kind: string, name: string, namespace?: string): Item | undefined =>
  (o.statuses as Item[]).find((i) => i.kind === kind && i.metadata.name === name && (namespace === undefined || i.metadata.namespace === namespace));
export const routeCondition = (o: Observation, kind: string, name: string, type: string, namespace = 'default'): string | undefined => {
  const parents = item(o, kind, name, namespace)?.status?.parents as { conditions: { type: string; status: string; reason: string }[] }[] | undefined;
  const c = parents?.[0]?.conditions.find((x) => x.type === type);
  return c ? `${c.status} ${c.reason}` : undefined;
};
export const gatewayCondition = (o: Observation, type: string, name = 'gw'): string | undefined => {
  const c = (item(o, 'Gateway', name, 'default')?.status?.conditions as { type: string; status: string; reason: string }[] | undefined)?.find((x) => x.type === type);
  return c ? `${c.status} ${c.reason}` : undefined;
};
export const listenerCondition = (o: Observation, listener: string, type: string): string | undefined => {
  const l = (item(o, 'Gateway', 'gw', 'default')?.status?.listeners as { name: string; conditions: { type: string; status: string; reason: string }[] }[] | undefined)?.find((x) => x.name === listener);
  const c = l?.conditions.find((x) => x.type === type);
  return c ? `${c.status} ${c.reason}` : undefined;
};

export interface Scenario {
  name: string;
  files: Record<string, FileContent>;
  probes: Record<string, Probe>;
  steps: Step[];
  /** Steps whose files are written in place (truncate, then write), not renamed over. */
  inPlace?: boolean;
}

export const echo = (pod: string, tls?: EchoTlsOptions) =>
  startEchoServer({ httpPort: 0, h2cPort: 0, ...(tls ? { httpsPort: 0, tls } : {}), identity: { pod, namespace: 'default' } });

/** Runs a scenario: both incremental processes through every step, each step compared with a fresh process. */
export async function runScenario(s: Scenario): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-incremental-'));
  const procs: Incremental[] = [];
  try {
    writeFiles(dir, s.files);
    const [one, two] = await Promise.all([startOn(dir), startOn(dir, ['--workers', '2'])]);
    procs.push({ label: 'sluice run', ...one! }, { label: 'sluice run --workers 2', ...two! });
    let previous = await observe(one!.sluice, one!.offset, s.probes, 1);
    for (const step of s.steps) {
      for (const files of step.burst ?? []) {
        writeFiles(dir, files);
        await new Promise((r) => setTimeout(r, 20));
      }
      if (s.inPlace) for (const [path, content] of Object.entries(step.files ?? {})) writeFileSync(join(dir, path), content === null ? '' : manifestText(content));
      else applyStep(dir, step);
      let fresh: Observation;
      if (step.reference === 'previous') {
        fresh = previous;
      } else {
        const ref = await startOn(dir);
        try {
          fresh = await observe(ref.sluice, ref.offset, s.probes, 1);
        } finally {
          await ref.sluice.stop();
        }
      }
      step.expect?.(fresh);
      for (const proc of procs) {
        const seen = await converge(proc, fresh, s.probes, proc.label.includes('workers') ? 4 : 1, step.problems);
        const context = `${s.name}: after "${step.what}", ${proc.label}`;
        expect({ context, ...(comparable(seen, step.reference !== 'previous') as object) }).toEqual({ context, ...(comparable(fresh, step.reference !== 'previous') as object) });
        for (const code of step.problems ?? []) expect({ context, problems: seen.problems.filter((p) => p.startsWith(code)).length > 0 }).toEqual({ context, problems: true });
        // Every worker thread says it serves the version (what converge waited on).
        const workers = proc.label.includes('workers') ? [0, 1].map((worker) => ({ worker, version: fresh.version })) : undefined;
        expect({ context, workers: ((await json(`${proc.sluice.admin}/api/config`)) as { workers?: unknown }).workers }).toEqual({ context, workers });
        const status = (await (await fetch(`${proc.sluice.admin}/api/status`)).json()) as { items: any[] };
        expect({ context, stale: staleConditions(status.items) }).toEqual({ context, stale: [] });
      }
      previous = fresh;
    }
  } finally {
    await Promise.all(procs.map((p) => p.sluice.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

export const httpProbe = (host: string, path = '/'): Probe => ({ scheme: 'http', port: 80, host, path });

export function rateLimit(rule: string, requests: number, unit: string) {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'RateLimitPolicy',
    metadata: meta('limits', 'default'),
    spec: { targetRefs: [{ group: GW, kind: 'HTTPRoute', name: 'web' }], local: { rules: [{ name: rule, limit: { requests, unit } }] } },
  };
}

export function backendTlsPolicy() {
  return {
    apiVersion: `${GW}/v1`,
    kind: 'BackendTLSPolicy',
    metadata: meta('secure', 'default'),
    spec: { targetRefs: [{ group: '', kind: 'Service', name: 'secure' }], validation: { caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'ca' }], hostname: 'backend.example.com' } },
  };
}

export const caConfigMap = (pem: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('ca', 'default'), data: { 'ca.crt': pem } });


/**
 * One test per scenario, named before `setup` runs (the scenarios are built after it: the backends'
 * ports are in their manifests); `setup` returns what tears its backends down. A scenario missing
 * from `names` fails the last test rather than going unrun.
 */
export function describeScenarios(title: string, names: string[], setup: () => Promise<() => Promise<void>>, scenarios: () => Scenario[]): void {
  describe(title, () => {
    let teardown: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      teardown = await setup();
    });
    afterAll(async () => {
      await teardown?.();
    });
    for (const name of names) {
      it(name, async () => {
        const scenario = scenarios().find((s) => s.name === name);
        expect(scenario).toBeDefined();
        await runScenario(scenario!);
      }, 120_000);
    }
    it('runs every scenario', () => expect(scenarios().map((s) => s.name).sort()).toEqual([...names].sort()));
  });
}
