// Incremental soundness from outside: one manifest folder served by long-lived `sluice run`
// processes (one worker, and two worker threads fed IR deltas) that see every edit, compared after
// each edit with a fresh `sluice run` started on the same folder. Whatever the incremental pipeline
// caches (translator memo, per-document parse, compiled routes, worker deltas, status store), a
// process that lived through the edits must serve what a fresh one serves: the same IR (version
// included: it is a content hash), the same statuses and problems, and the same answers.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';

/** Listener ports the scenarios use (each process binds them at its own offset). */
export const PORTS = [80, 443, 8080] as const;

/** One request sent to every process; `grpc`: an HTTP/2 cleartext call with a gRPC content type. */
export interface Probe {
  scheme: 'http' | 'https' | 'grpc';
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

function backendOf(body: string): string | null {
  try {
    const parsed = JSON.parse(body) as { pod?: string };
    return typeof parsed.pod === 'string' ? parsed.pod : null;
  } catch {
    return null;
  }
}

function askOnce(probe: Probe, offset: number): Promise<Answer> {
  const port = probe.port + offset;
  if (probe.scheme === 'grpc') return askGrpc(probe, port);
  return new Promise<Answer>((resolve) => {
    const options = { host: '127.0.0.1', port, path: probe.path, headers: { host: probe.host }, agent: false as const, timeout: 5000 };
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
 * Polls the incremental process until its version and statuses equal the fresh observation's (a
 * change is applied within milliseconds, a removal within a file after 0.5 s of stable content, a
 * burst after 100 ms), at most `timeoutMs`; returns its last observation either way.
 */
export async function converge(proc: Incremental, target: Observation | null, probes: Record<string, Probe>, tries: number, timeoutMs = 8000): Promise<Observation> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const config = await json(`${proc.sluice.admin}/api/config`).catch(() => null);
    if (config && target && config.version === target.version) {
      const status = await json(`${proc.sluice.admin}/api/status`);
      const statuses = [...status.items].sort((a, b) => key(a).localeCompare(key(b))).map(normaliseStatus);
      if (JSON.stringify(statuses) === JSON.stringify(target.statuses)) break;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return observe(proc.sluice, proc.offset, probes, tries);
}
