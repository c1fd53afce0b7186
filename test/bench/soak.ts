// Soak benchmark (issue #11): a real `sluice run` under mixed load for a long time while one
// manifest is rewritten every 10 s, to show that neither memory nor failures creep up. A
// benchmark, not a test: it exits 0 whatever the verdict, non-zero only when it could not run.
//
//   node test/bench/soak.ts [--minutes 30] [--warmup-minutes M] [--rate 200]
//                           [--heap-snapshots MIN[,MIN...] --out DIR]
//
// Traffic, all to 127.0.0.1, paced at --rate requests per second in total, each kind a loop of at
// most CONCURRENCY requests in flight, every request bounded by REQUEST_TIMEOUT_MS:
//   h1-keepalive  HTTP/1.1 over a keep-alive pool            /api      expects 200 from blue
//   h1-new-conn   HTTP/1.1, a new connection per request      /api      expects 200 from blue
//   https-h1      HTTPS, HTTP/1.1 (ALPN), keep-alive           /api      expects 200 from blue
//   https-h2      HTTPS, HTTP/2 (ALPN), a new session every 50 /api      expects 200 from blue
//   split         weighted blue/green, weights flipped on each reload    expects 200 from either
//   rate-limited  local limit of 2/s per x-client-id (3 hot ids, many cold) expects 200 or 429
//   websocket     echo over /ws, a new connection every 20 messages      expects each echo back
// Every 10 s split.yaml is rewritten (weights flipped, an extra route added or removed): a reload.
//
// After the warm-up, the sluice process's RSS, V8 heap and external memory are read from its
// admin /metrics every 5 s. They swing by tens of % with garbage collection (a sawtooth, not a
// trend), so growth is read off a least-squares line through every sample after the warm-up:
// its value at the end against its value at the end of the warm-up. Printed: requests and
// failures per kind, reloads, each memory figure (line at start and end, growth in %, the
// samples' range), and the verdict against the target: RSS growth < 5 % after warm-up and 0
// failed requests.
//
// --heap-snapshots 30,60,120 makes the sluice process write a V8 heap snapshot at those minutes
// (SIGUSR2 with --heapsnapshot-signal, files in --out): compare them with
// `node test/bench/heap-diff.ts DIR/*.heapsnapshot` to tell a leak (some constructor's retained
// count keeps rising) from V8 and the allocator sizing themselves to a plateau. Writing a snapshot
// stops the process for seconds; requests that fail within such a pause are counted apart.
//
// Backends (echo servers as `--demo-backends` starts them) run in this process, so the RSS
// measured is Sluice's alone.

import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request as undiciRequest } from 'undici';
import WebSocket from 'ws';
import { createSelfSignedServerCertificate, tlsSecretData } from '../support/demo/certs.ts';
import { startEchoServer, type EchoServer } from '../support/demo/echo-server.ts';
import { GATEWAY_CLASS_YAML, serviceYaml } from '../e2e/backends.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';

const RELOAD_EVERY_MS = 10_000;
const SAMPLE_EVERY_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** Requests in flight at most per traffic kind. */
const CONCURRENCY = 8;
const RSS_GROWTH_TARGET_PERCENT = 5;
/** Measured on the project's VM: RSS rises and falls by up to 50 % over 3 to 4 minutes with the V8 heap. */
const SHORTEST_TREND_MINUTES = 10;
/**
 * --rate-limit-max-keys of the soaked process: small, so that the table is full (and evicting)
 * early, and its growth to that bound is not read as a leak.
 */
const RATE_LIMIT_KEYS = 1000;
const HOST = 'app.soak.test';
const LIMITED_HOST = 'limited.soak.test';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    'warmup-minutes': { type: 'string' },
    rate: { type: 'string', default: '200' },
    'heap-snapshots': { type: 'string' },
    out: { type: 'string' },
  },
});
const snapshotMinutes = (values['heap-snapshots'] ?? '').split(',').filter((m) => m !== '').map(Number);
const minutes = Number(values.minutes);
const warmupMinutes = values['warmup-minutes'] !== undefined ? Number(values['warmup-minutes']) : Math.min(5, minutes / 3);
const rate = Number(values.rate);
const snapshotsValid = snapshotMinutes.every((m) => m > 0 && m <= minutes) && (snapshotMinutes.length === 0 || values.out !== undefined);
if (!(minutes > 0) || !(warmupMinutes >= 0) || warmupMinutes >= minutes || !(rate > 0) || !snapshotsValid) {
  console.error('usage: soak.ts [--minutes N (> 0)] [--warmup-minutes M (< N)] [--rate R (> 0)] [--heap-snapshots MIN[,MIN] (each <= N) --out DIR]');
  process.exit(2);
}

/** Share of --rate per kind (the WebSocket loop counts one message as one request). */
const KINDS = {
  'h1-keepalive': 0.3,
  'h1-new-conn': 0.1,
  'https-h1': 0.15,
  'https-h2': 0.15,
  split: 0.15,
  'rate-limited': 0.1,
  websocket: 0.05,
} as const;
type Kind = keyof typeof KINDS;

interface Tally {
  requests: number;
  failed: number;
  /** A few failures, for the report. */
  examples: string[];
  /** What answered, per backend or status. */
  outcomes: Map<string, number>;
}
const tallies = new Map<Kind, Tally>(Object.keys(KINDS).map((k) => [k as Kind, { requests: 0, failed: 0, examples: [], outcomes: new Map() }]));

/** Until when a heap snapshot (plus one request timeout) may still fail requests: they are counted apart. */
let snapshotPauseUntil = 0;
let failedInSnapshotPause = 0;
let failuresPrinted = 0;

function record(kind: Kind, outcome: string, failure: string | null): void {
  const tally = tallies.get(kind)!;
  tally.requests++;
  tally.outcomes.set(outcome, (tally.outcomes.get(outcome) ?? 0) + 1);
  if (failure === null) return;
  if (Date.now() < snapshotPauseUntil) {
    failedInSnapshotPause++;
    if (tally.examples.length < 5) tally.examples.push(`${new Date().toISOString()} (during a heap snapshot) ${failure}`);
    return;
  }
  tally.failed++;
  if (tally.examples.length < 5) tally.examples.push(`${new Date().toISOString()} ${failure}`);
  // As it happens too (the first 100): a failure is read next to the load the box had then.
  if (++failuresPrinted <= 100) console.log(`  FAILED ${new Date().toISOString()} ${kind}: ${failure}`);
}

const errorText = (err: unknown): string => (err as { code?: string }).code ?? (err as Error).message ?? String(err);

// --- Manifests ------------------------------------------------------------------------------

function gatewayYaml(secret: Record<string, string>): string {
  return `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: soak, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - name: https
    port: 443
    protocol: HTTPS
    tls: {mode: Terminate, certificateRefs: [{kind: Secret, name: soak-tls}]}
---
apiVersion: v1
kind: Secret
metadata: {name: soak-tls, namespace: default}
type: kubernetes.io/tls
data: ${JSON.stringify(secret)}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: soak}]
  hostnames: [${HOST}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}, {path: {type: PathPrefix, value: /ws}}]
    backendRefs: [{name: blue, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: limited, namespace: default}
spec:
  parentRefs: [{name: soak}]
  hostnames: [${LIMITED_HOST}]
  rules: [{backendRefs: [{name: blue, port: 80}]}]
---
apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: per-client, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  local:
    rules:
    - clientSelectors: [{headers: [{name: x-client-id, type: Distinct}]}]
      limit: {requests: 2, unit: Second}
`;
}

/** The file rewritten on every reload: the split's weights flip, and an extra route comes or goes. */
function splitYaml(reload: number): string {
  const [blue, green] = reload % 2 === 0 ? [80, 20] : [20, 80];
  const extra =
    reload % 4 < 2
      ? ''
      : `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: extra-${reload % 8}, namespace: default}
spec:
  parentRefs: [{name: soak}]
  hostnames: [extra.soak.test]
  rules: [{matches: [{path: {type: Exact, value: /reload-${reload}}}], backendRefs: [{name: green, port: 80}]}]
`;
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: default}
spec:
  parentRefs: [{name: soak}]
  hostnames: [${HOST}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: blue, port: 80, weight: ${blue}}, {name: green, port: 80, weight: ${green}}]
${extra}`;
}

// --- Traffic --------------------------------------------------------------------------------

/** Runs `send` at `perSecond` until `deadline`, at most CONCURRENCY at once (late sends are skipped, not queued). */
async function paced(perSecond: number, deadline: number, send: () => Promise<void>): Promise<void> {
  const interval = 1000 / perSecond;
  const inFlight = new Set<Promise<void>>();
  let next = performance.now();
  while (Date.now() < deadline) {
    if (inFlight.size < CONCURRENCY) {
      const p = send().finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    next += interval;
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    else next = performance.now(); // behind: no catch-up burst
  }
  await Promise.all(inFlight);
}

/** The echo server's JSON names the pod (backend) that answered. */
function podOf(body: string): string {
  try {
    return String((JSON.parse(body) as { pod?: unknown }).pod);
  } catch {
    return 'not-json';
  }
}

function expectBackend(kind: Kind, status: number, body: string, allowed: string[]): void {
  const pod = status === 200 ? podOf(body) : `status ${status}`;
  record(kind, pod, status === 200 && allowed.includes(pod) ? null : `${status} from ${pod}: ${body.slice(0, 120)}`);
}

interface Targets {
  httpPort: number;
  httpsPort: number;
  ca: string;
}

/** Every traffic loop until `deadline`; resolves when all have finished and closed their clients. */
async function runTraffic(t: Targets, deadline: number): Promise<void> {
  const share = (kind: Kind): number => rate * KINDS[kind];
  const keepAlive = new Agent({ connections: CONCURRENCY, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: t.ca, servername: HOST });
  let clientId = 0;

  const viaUndici = async (kind: Kind, host: string, path: string, headers: Record<string, string>, check: (status: number, body: string) => void): Promise<void> => {
    try {
      const res = await undiciRequest(`http://127.0.0.1:${t.httpPort}${path}`, { dispatcher: keepAlive, headers: { host, ...headers }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      check(res.statusCode, await res.body.text());
    } catch (err) {
      record(kind, 'error', `${path}: ${errorText(err)}`);
    }
  };

  /** node:http or node:https, one request; `agent: false` opens a new connection for it. */
  const viaNode = (kind: Kind, client: typeof http | typeof https, port: number, agent: http.Agent | false): Promise<void> =>
    new Promise((resolve) => {
      const req = client.request(
        { host: '127.0.0.1', port, path: '/api/soak', agent, headers: { host: HOST, ...(agent === false ? { connection: 'close' } : {}) }, ca: t.ca, servername: HOST, timeout: REQUEST_TIMEOUT_MS },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => {
            expectBackend(kind, res.statusCode ?? 0, body, ['blue']);
            resolve();
          });
          res.on('error', (err) => {
            record(kind, 'error', errorText(err));
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        record(kind, 'error', errorText(err));
        resolve();
      });
      req.end();
    });

  let session: http2.ClientHttp2Session | null = null;
  let sessionRequests = 0;
  /** Streams not yet ended, per session: a session is closed only when its last one ends. */
  const inFlight = new Map<http2.ClientHttp2Session, number>();
  const retiring = new Set<http2.ClientHttp2Session>();
  const streamEnded = (of: http2.ClientHttp2Session): void => {
    const left = (inFlight.get(of) ?? 1) - 1;
    inFlight.set(of, left);
    if (left === 0 && retiring.delete(of)) {
      inFlight.delete(of);
      of.close();
    }
  };
  const viaHttp2 = (): Promise<void> =>
    new Promise((resolve) => {
      if (session === null || session.closed || session.destroyed || sessionRequests >= 50) {
        // Not close() at once: Node's client sends its GOAWAY ahead of request HEADERS still
        // queued, and nghttp2 then refuses those streams itself (RST_STREAM REFUSED_STREAM, the
        // server never sees them; reproduced against a bare node:http2 server). Under load that
        // failed a few requests per run — the bench's doing, not the gateway's.
        if (session !== null) {
          if ((inFlight.get(session) ?? 0) === 0) session.close();
          else retiring.add(session);
        }
        session = http2.connect(`https://127.0.0.1:${t.httpsPort}`, { ca: t.ca, servername: HOST });
        session.on('error', () => undefined); // each stream reports its own failure
        sessionRequests = 0;
      }
      sessionRequests++;
      const own = session;
      inFlight.set(own, (inFlight.get(own) ?? 0) + 1);
      const stream = own.request({ ':path': '/api/soak', ':authority': HOST });
      stream.once('close', () => streamEnded(own));
      stream.setTimeout(REQUEST_TIMEOUT_MS, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      let status = 0;
      let body = '';
      stream.setEncoding('utf8');
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.on('data', (d: string) => (body += d));
      stream.on('end', () => {
        expectBackend('https-h2', status, body, ['blue']);
        resolve();
      });
      stream.on('error', (err) => {
        // The RST_STREAM code and the session's state tell a server reset from a client-side close.
        record('https-h2', 'error', `${errorText(err)} (rstCode ${stream.rstCode}, ${own === session ? 'current' : 'previous'} session)`);
        resolve();
      });
      stream.end();
    });

  /** One message over the current WebSocket (a new one every 20), echoed back or a failure. */
  let socket: WebSocket | null = null;
  let socketMessages = 0;
  const oneMessage = async (): Promise<void> => {
    try {
      if (socket === null || socket.readyState !== WebSocket.OPEN || socketMessages >= 20) {
        socket?.close();
        socket = new WebSocket(`ws://127.0.0.1:${t.httpPort}/ws`, { headers: { host: HOST }, origin: `http://${HOST}`, handshakeTimeout: REQUEST_TIMEOUT_MS });
        socket.on('error', () => undefined); // reported by the pending message below
        await once(socket, 'open', { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        socketMessages = 0;
      }
      const ws = socket;
      const text = `soak ${socketMessages++} ${Date.now()}`;
      const reply = once(ws, 'message', { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      ws.send(text);
      const [data] = (await reply) as [Buffer];
      const echoedBack = data.toString() === text;
      record('websocket', echoedBack ? 'echo' : 'mismatch', echoedBack ? null : `sent ${text}, got ${data.toString().slice(0, 80)}`);
    } catch (err) {
      socket?.terminate();
      socket = null;
      record('websocket', 'error', errorText(err));
    }
  };
  // One message at a time: an echo is told from the next only by order.
  let webSocketTurn: Promise<void> = Promise.resolve();
  const viaWebSocket = (): Promise<void> => (webSocketTurn = webSocketTurn.then(oneMessage));

  const loops: Array<[Kind, () => Promise<void>]> = [
    ['h1-keepalive', () => viaUndici('h1-keepalive', HOST, '/api/soak', {}, (s, b) => expectBackend('h1-keepalive', s, b, ['blue']))],
    ['h1-new-conn', () => viaNode('h1-new-conn', http, t.httpPort, false)],
    ['https-h1', () => viaNode('https-h1', https, t.httpsPort, httpsAgent)],
    ['https-h2', viaHttp2],
    ['split', () => viaUndici('split', HOST, '/split', {}, (s, b) => expectBackend('split', s, b, ['blue', 'green']))],
    [
      'rate-limited',
      () =>
        // Every other request from one of 3 hot clients (over their limit: 429s); the rest from ids
        // cycling over more than the local bucket table holds, so its bound is exercised too.
        viaUndici('rate-limited', LIMITED_HOST, '/', { 'x-client-id': ++clientId % 2 === 0 ? `hot-${clientId % 3}` : `client-${clientId % (5 * RATE_LIMIT_KEYS)}` }, (s, b) =>
          s === 429 ? record('rate-limited', '429', null) : expectBackend('rate-limited', s, b, ['blue']),
        ),
    ],
    ['websocket', viaWebSocket],
  ];
  await Promise.all(loops.map(([kind, send]) => paced(share(kind), deadline, send)));
  (session as http2.ClientHttp2Session | null)?.close();
  (socket as WebSocket | null)?.close();
  httpsAgent.destroy();
  await keepAlive.close();
}

// --- Memory ---------------------------------------------------------------------------------

interface Sample {
  at: number;
  rss: number;
  heapUsed: number;
  /** Memory outside the V8 heap that V8 knows of (Buffers, TLS): where a leak the heap does not show would be. */
  external: number;
}

/** RSS and V8 heap in use, from the admin API's process metrics (prom-client's default names, any prefix). */
async function sampleMemory(admin: string): Promise<Sample> {
  const text = await (await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const metric = (suffix: string): number => {
    const line = text.split('\n').find((l) => !l.startsWith('#') && new RegExp(`^\\w*${suffix}(\\{[^}]*\\})? `).test(l));
    if (line === undefined) throw new Error(`no ${suffix} in ${admin}/metrics`);
    return Number(line.split(' ').at(-1));
  };
  return { at: Date.now(), rss: metric('process_resident_memory_bytes'), heapUsed: metric('nodejs_heap_size_used_bytes'), external: metric('nodejs_external_memory_bytes') };
}

/** The least-squares line through (at, value): its values at `from` and `to`. */
function trend(samples: Sample[], value: (s: Sample) => number, from: number, to: number): { start: number; end: number } {
  const n = samples.length;
  const meanAt = samples.reduce((sum, s) => sum + s.at, 0) / n;
  const meanValue = samples.reduce((sum, s) => sum + value(s), 0) / n;
  const covariance = samples.reduce((sum, s) => sum + (s.at - meanAt) * (value(s) - meanValue), 0);
  const variance = samples.reduce((sum, s) => sum + (s.at - meanAt) ** 2, 0);
  const slope = variance === 0 ? 0 : covariance / variance;
  return { start: meanValue + slope * (from - meanAt), end: meanValue + slope * (to - meanAt) };
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const growth = (from: number, to: number): number => ((to - from) / from) * 100;
const signed = (percent: number): string => `${percent >= 0 ? '+' : ''}${percent.toFixed(1)} %`;

// --- Run ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-soak-'));
  const certificate = await createSelfSignedServerCertificate({ commonName: HOST, dnsNames: [HOST, LIMITED_HOST] });
  const backends: EchoServer[] = [
    await startEchoServer({ httpPort: 0, identity: { pod: 'blue', namespace: 'default' } }),
    await startEchoServer({ httpPort: 0, identity: { pod: 'green', namespace: 'default' } }),
  ];
  writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(tlsSecretData(certificate)));
  writeFileSync(join(dir, 'services.yaml'), serviceYaml('blue', { port: backends[0]!.httpPort }) + '---\n' + serviceYaml('green', { port: backends[1]!.httpPort }));
  let reloads = 0;
  writeFileSync(join(dir, 'split.yaml'), splitYaml(reloads));
  const offset = await freePortOffset([80, 443]);
  let sluice: SluiceProcess | null = null;
  try {
    const snapshotDir = values.out;
    if (snapshotDir !== undefined) mkdirSync(snapshotDir, { recursive: true });
    const nodeArgs = snapshotDir !== undefined ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`] : [];
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--rate-limit-max-keys', String(RATE_LIMIT_KEYS)], 15000, { nodeArgs });
    const pid = sluice.pid;
    const admin = sluice.admin;
    const started = Date.now();
    const deadline = started + minutes * 60_000;
    const warmedUp = started + warmupMinutes * 60_000;
    console.log(`soak: ${minutes} min (warm-up ${warmupMinutes} min) at ${rate} req/s, reload every ${RELOAD_EVERY_MS / 1000} s; sluice admin ${admin}`);

    const snapshotTimers = snapshotMinutes.map((m) =>
      setTimeout(() => {
        snapshotPauseUntil = Date.now() + 60_000 + REQUEST_TIMEOUT_MS;
        console.log(`  ${m} min: heap snapshot requested (SIGUSR2 to ${pid}, into ${snapshotDir})`);
        process.kill(pid, 'SIGUSR2');
      }, m * 60_000 - 1000),
    );
    const traffic = runTraffic({ httpPort: 80 + offset, httpsPort: 443 + offset, ca: certificate.certPem }, deadline);
    const reloader = setInterval(() => writeFileSync(join(dir, 'split.yaml'), splitYaml(++reloads)), RELOAD_EVERY_MS);
    const samples: Sample[] = [];
    const sampler = setInterval(() => {
      if (Date.now() < warmedUp) return;
      sampleMemory(admin).then(
        (s) => samples.push(s),
        (err: Error) => console.error(`memory sample failed: ${err.message}`),
      );
    }, SAMPLE_EVERY_MS);
    const progress = setInterval(() => {
      const total = [...tallies.values()].reduce((n, t) => n + t.requests, 0);
      const failed = [...tallies.values()].reduce((n, t) => n + t.failed, 0);
      const last = samples.at(-1);
      console.log(`  ${((Date.now() - started) / 60_000).toFixed(1)} min: ${total} requests, ${failed} failed, ${reloads} reloads${last ? `, RSS ${mib(last.rss)}, heap ${mib(last.heapUsed)}, external ${mib(last.external)}` : ''}`);
    }, 60_000);
    await traffic;
    clearInterval(reloader);
    clearInterval(sampler);
    clearInterval(progress);
    snapshotTimers.forEach(clearTimeout);

    const applied = (sluice.logs().match(/configuration applied/g) ?? []).length;
    const total = [...tallies.values()].reduce((n, t) => n + t.requests, 0);
    const failed = [...tallies.values()].reduce((n, t) => n + t.failed, 0);
    console.log(`\nsoak results (${minutes} min, warm-up ${warmupMinutes} min, ${rate} req/s offered)`);
    for (const [kind, t] of tallies) {
      const outcomes = [...t.outcomes].map(([o, n]) => `${o} ${n}`).join(', ');
      console.log(`  ${kind.padEnd(13)} ${String(t.requests).padStart(8)} requests, ${t.failed} failed (${outcomes})`);
      for (const example of t.examples) console.log(`      ${example}`);
    }
    console.log(`  requests      ${total}, failed ${failed}${snapshotMinutes.length > 0 ? `, and ${failedInSnapshotPause} more within a minute after a heap snapshot was requested` : ''}`);
    console.log(`  reloads       ${reloads} manifest rewrites, ${applied} 'configuration applied' (the first is the start)`);
    if (samples.length < 2) throw new Error(`only ${samples.length} memory samples after the warm-up: run longer`);
    let rssGrowth = 0;
    for (const [label, value] of [
      ['RSS', (s: Sample) => s.rss],
      ['heap used', (s: Sample) => s.heapUsed],
      ['external', (s: Sample) => s.external],
    ] as const) {
      const line = trend(samples, value, warmedUp, deadline);
      const change = growth(line.start, line.end);
      if (label === 'RSS') rssGrowth = change;
      const values = samples.map(value);
      console.log(
        `  ${label.padEnd(13)} ${mib(line.start)} after warm-up -> ${mib(line.end)} at end (trend of ${samples.length} samples): ${signed(change)}; samples ${mib(Math.min(...values))} to ${mib(Math.max(...values))}`,
      );
    }
    // Medians per 10-minute window: a plateau shows as equal medians, a leak as a staircase.
    const windowMs = 10 * 60_000;
    const windows = new Map<number, Sample[]>();
    for (const s of samples) windows.set(Math.floor((s.at - started) / windowMs), [...(windows.get(Math.floor((s.at - started) / windowMs)) ?? []), s]);
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (const [w, ws] of windows) {
      console.log(`  min ${String(w * 10).padStart(3)}-${String(w * 10 + 10).padEnd(4)} median RSS ${mib(median(ws.map((s) => s.rss)))}, heap used ${mib(median(ws.map((s) => s.heapUsed)))}, external ${mib(median(ws.map((s) => s.external)))} (${ws.length} samples)`);
    }
    if (minutes - warmupMinutes < SHORTEST_TREND_MINUTES) {
      console.log(`  note          ${minutes - warmupMinutes} min measured: one garbage-collection swing of RSS lasts minutes, so the trend of fewer than ${SHORTEST_TREND_MINUTES} says little`);
    }
    const pass = rssGrowth < RSS_GROWTH_TARGET_PERCENT && failed === 0;
    console.log(`  verdict       ${pass ? 'PASS' : 'FAIL'} (target: RSS growth < ${RSS_GROWTH_TARGET_PERCENT} % after warm-up, 0 failed)`);
  } finally {
    await sluice?.stop();
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`soak could not run: ${err.stack ?? err.message}`);
  process.exit(1);
});
