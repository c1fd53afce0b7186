// `npm run bench:workers`: what --workers gives on this box, every figure a ratio measured in the
// same run (configurations interleaved, order rotated per round, medians reported):
//
//   sluice-1 / sluice-N     `sluice run --workers 1` and `--workers N` (50-rule table, the proxy bench's)
//   sluice-N-noflows        `--workers N --request-flows false`: what request flows cost with workers
//   fwd-1                   the raw undici forwarder, one thread
//   fwd-reuseport-N         the same in N worker threads binding the port with SO_REUSEPORT
//   fwd-cluster-N           the same in N processes behind node:cluster's round robin primary
//   nginx-1 / nginx-N       nginx proxy_pass with 1 and N worker processes: the box's own effect
//
// `--rate-limit`: the Gateway gets a local RateLimitPolicy that never refuses (10^9 per second), one
// bucket for every request: each decision takes the shared buckets' lock (what workers contend
// for). `--configs a,b`: only those (the summary lines need their pairs).
//
// Nothing is pinned: the load generator (wrk) and the nginx backend share the cores with the
// proxy, so requests/s alone understates N workers; requests per CPU-second of the proxy's
// process tree (all its threads) says whether a worker costs more per request, and must not drop
// with workers — unless nginx's drops as much on the same box. Each Sluice round also prints
// where its CPU went, per thread (/proc/<pid>/task/*/stat): the main thread (primary), the
// workers, V8's platform threads (GC), libuv's pool. Then config convergence: a route's response header rewritten in its file, the
// time until a request (on a fresh connection) sees the new value; p50 and p99, with 1 and N
// workers. A benchmark, not a test: exits 0 whether or not a target is met.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GATEWAY_YAML, serviceYaml } from '../e2e/backends.ts';
import { BENCH_HOST, benchManifests } from './manifests.ts';
import { BACKEND_BODY, backendConf, proxyConf } from './nginx-conf.ts';
import { commandOutput, findExecutable, freePorts, httpGet, killAll, Proc, UsageSampler, waitFor200 } from './processes.ts';
import { startSluiceRun } from './sluice-run.ts';
import { runWrk } from './wrk.ts';

const ROOT = join(import.meta.dirname, '..', '..');

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    // Each worker's isolate compiles its hot code itself (V8's optimising compiler, on V8's
    // platform threads): measured, a fifth of a core in a 2-worker process's first 4 s under load, ~3 % after.
    // Shorter, N workers pay N times the start-up in the measured window.
    warmup: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
    workers: { type: 'string', default: String(Math.max(2, availableParallelism())) },
    changes: { type: 'string', default: '40' },
    'rate-limit': { type: 'boolean', default: false },
    configs: { type: 'string' },
  },
  strict: true,
});
const N = Number(values.workers);
const DURATION = Number(values.duration);
const WARMUP = Number(values.warmup);
const CONNECTIONS = Number(values.connections);
const ROUNDS = Number(values.rounds);
const ALL_CONFIGS = ['sluice-1', `sluice-${N}`, `sluice-${N}-noflows`, 'fwd-1', `fwd-reuseport-${N}`, `fwd-cluster-${N}`, 'nginx-1', `nginx-${N}`];
const CONFIGS = values.configs === undefined ? ALL_CONFIGS : values.configs.split(',');
const unknown = CONFIGS.filter((c) => !ALL_CONFIGS.includes(c));
if (unknown.length > 0) {
  process.stderr.write(`--configs: ${unknown.join(', ')} unknown; expected some of ${ALL_CONFIGS.join(', ')}\n`);
  process.exit(2);
}

const node = process.execPath;
const CLOCK_TICKS = Number(commandOutput('getconf', ['CLK_TCK'])) || 100;
const wrk = findExecutable('wrk');
const nginx = findExecutable('nginx');
if (!wrk || !nginx) {
  process.stderr.write('bench:workers needs wrk and nginx (apt-get install wrk nginx)\n');
  process.exit(1);
}
process.on('exit', killAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-workers-'));
const [backendPort] = await freePorts(1);
writeFileSync(join(dir, 'backend.conf'), backendConf(dir, backendPort!));
const backend = new Proc('backend', [nginx, '-p', dir, '-e', join(dir, 'backend-error.log'), '-c', join(dir, 'backend.conf'), '-g', 'daemon off;']);
if ((await waitFor200(backend, backendPort!, '/', 10_000)).body !== BACKEND_BODY) throw new Error('unexpected backend body');
const manifests = benchManifests(backendPort!);
if (values['rate-limit']) {
  manifests.yaml += `---
apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: bench-never, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: bench}]
  local:
    rules: [{limit: {requests: 1000000000, unit: Second}}]
`;
}

interface Running {
  port: number;
  proc: Proc;
}

async function start(config: string): Promise<Running> {
  if (config.startsWith('sluice-')) {
    const [, workers, variant] = config.split('-');
    const args = ['--workers', workers!, ...(variant === 'noflows' ? ['--request-flows', 'false'] : [])];
    return startSluiceRun({
      node, dir, name: `manifests-${config}`, yaml: manifests.yaml, pin: [], args, readyTimeoutMs: 60_000,
      verify: async (proc, port) => {
        const reply = await waitFor200(proc, port, manifests.path, 30_000, { host: BENCH_HOST });
        if (reply.body !== BACKEND_BODY) throw new Error('sluice: unexpected body');
      },
    });
  }
  const [port] = await freePorts(1);
  if (config.startsWith('nginx-')) {
    const file = join(dir, `${config}.conf`);
    writeFileSync(file, proxyConf(dir, port!, backendPort!, Number(config.slice('nginx-'.length)), config));
    const proc = new Proc(config, [nginx!, '-p', dir, '-e', join(dir, `${config}-error.log`), '-c', file, '-g', 'daemon off;']);
    await waitFor200(proc, port!, '/', 10_000);
    return { port: port!, proc };
  }
  const upstream = `127.0.0.1:${backendPort}`;
  const command =
    config === 'fwd-1'
      ? [node, '--disable-warning=ExperimentalWarning', join(ROOT, 'test', 'bench', 'minimal-forwarder.ts'), '--port', String(port), '--upstream', upstream]
      : [node, '--disable-warning=ExperimentalWarning', join(ROOT, 'test', 'bench', 'workers-forwarder.ts'), '--mode', config.includes('cluster') ? 'cluster' : 'reuseport', '--workers', String(N), '--port', String(port), '--upstream', upstream];
  const proc = new Proc(config, command);
  await waitFor200(proc, port!, '/', 30_000);
  return { port: port!, proc };
}

interface Sample {
  /** Spawn to ready (Sluice: /readyz answers 200 and the benchmarked request is served). */
  startMs: number;
  rps: number;
  perCpuSecond: number;
  cpuPercent: number;
  p99Ms: number;
  errors: number;
}
const samples = new Map<string, Sample[]>(CONFIGS.map((c) => [c, []]));

for (let round = 0; round < ROUNDS; round++) {
  const order = CONFIGS.map((_, i) => CONFIGS[(i + round) % CONFIGS.length]!);
  for (const config of order) {
    const startedAt = performance.now();
    const running = await start(config);
    const startMs = performance.now() - startedAt;
    // `Host`, capitalised: wrk adds its own unless it sees exactly that name (two Host headers: nginx says 400).
    const load = { url: `http://127.0.0.1:${running.port}${manifests.path}`, threads: 1, connections: CONNECTIONS, headers: { Host: BENCH_HOST }, pin: [], wrk: wrk! };
    await runWrk({ ...load, durationSec: WARMUP }); // warm-up
    const usage = new UsageSampler(running.proc.pid, null);
    const threadsBefore = threadCpu(running.proc.pid);
    const result = await runWrk({ ...load, durationSec: DURATION });
    const { cpuPercent } = usage.stop();
    const perThread = config.startsWith('sluice-') ? threadShares(threadsBefore, threadCpu(running.proc.pid), DURATION) : '';
    await running.proc.stop('SIGTERM', 15_000);
    const sample = { startMs, rps: result.requestsPerSec, perCpuSecond: result.requestsPerSec / Math.max(0.01, cpuPercent / 100), cpuPercent, p99Ms: result.p99Ms, errors: result.socketErrors + result.non2xx };
    samples.get(config)!.push(sample);
    if (sample.errors > 0) process.stderr.write(`${config}: ${/Socket errors.*|Non-2xx.*/.exec(result.raw)?.[0] ?? ''}\n`);
    process.stderr.write(`round ${round + 1} ${config}: ready in ${Math.round(startMs)} ms, ${Math.round(sample.rps)} req/s, ${Math.round(cpuPercent)}% CPU, ${Math.round(sample.perCpuSecond)} req per CPU-second, errors ${sample.errors}${perThread}, load average ${loadAverage()}\n`);
  }
}

/** CPU seconds of each thread of `pid`, by thread id, with its name (MainThread, WorkerThread, V8Worker, libuv-worker...). */
function threadCpu(pid: number): Map<string, { name: string; seconds: number }> {
  const out = new Map<string, { name: string; seconds: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** ` (main 4%, workers 41+42%, V8 platform 8%)`: each kind of thread's share of one core over the run. */
function threadShares(before: Map<string, { name: string; seconds: number }>, after: Map<string, { name: string; seconds: number }>, seconds: number): string {
  const byKind = new Map<string, number[]>();
  for (const [tid, t] of after) {
    const kind = t.name === 'MainThread' ? 'main' : t.name === 'WorkerThread' ? 'workers' : t.name.startsWith('V8') ? 'V8 platform' : t.name.startsWith('libuv') ? 'libuv pool' : 'other';
    const percent = (100 * (t.seconds - (before.get(tid)?.seconds ?? 0))) / seconds;
    byKind.set(kind, [...(byKind.get(kind) ?? []), percent]);
  }
  const parts = [...byKind].filter(([kind, xs]) => kind === 'workers' || xs.reduce((a, b) => a + b, 0) >= 0.5).map(([kind, xs]) => `${kind} ${kind === 'workers' ? xs.map((x) => x.toFixed(0)).join('+') : xs.reduce((a, b) => a + b, 0).toFixed(0)}%`);
  return ` (${parts.join(', ')})`;
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ')[0]!;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const med = (config: string, field: keyof Sample) => median(samples.get(config)?.map((s) => s[field]) ?? [Number.NaN]);
const pad = (text: string, width: number) => text.padEnd(width);
console.log(`\n--workers on ${availableParallelism()} CPUs, unpinned (wrk and the backend share them), c=${CONNECTIONS}, ${DURATION} s x ${ROUNDS} rounds, medians${values['rate-limit'] ? ', a local rate limit on every request' : ''}`);
console.log(`${pad('config', 20)}${pad('req/s', 10)}${pad('x sluice-1', 12)}${pad('x fwd-1', 10)}${pad('CPU %', 8)}${pad('req/CPU-s', 11)}${pad('x sluice-1', 12)}${pad('p99 ms', 8)}errors`);
for (const config of CONFIGS) {
  const rps = med(config, 'rps');
  const perCpu = med(config, 'perCpuSecond');
  console.log(
    `${pad(config, 20)}${pad(String(Math.round(rps)), 10)}${pad((rps / med('sluice-1', 'rps')).toFixed(2), 12)}${pad((rps / med('fwd-1', 'rps')).toFixed(2), 10)}${pad(String(Math.round(med(config, 'cpuPercent'))), 8)}${pad(String(Math.round(perCpu)), 11)}${pad((perCpu / med('sluice-1', 'perCpuSecond')).toFixed(2), 12)}${pad(med(config, 'p99Ms').toFixed(1), 8)}${samples.get(config)!.reduce((a, s) => a + s.errors, 0)}`,
  );
}
const perCpuRatio = (a: string, b: string) => (med(a, 'perCpuSecond') / med(b, 'perCpuSecond')).toFixed(2);
console.log(`${N} workers vs 1, req per CPU-second: sluice ${perCpuRatio(`sluice-${N}`, 'sluice-1')}x, nginx ${perCpuRatio(`nginx-${N}`, 'nginx-1')}x (the box's own effect); sluice without request flows ${perCpuRatio(`sluice-${N}-noflows`, 'sluice-1')}x`);
console.log(`start (sluice run to /readyz), medians: --workers 1 ${med('sluice-1', 'startMs').toFixed(0)} ms, --workers ${N} ${med(`sluice-${N}`, 'startMs').toFixed(0)} ms`);
console.log(`design: fwd-reuseport-${N} / fwd-cluster-${N}: ${(med(`fwd-reuseport-${N}`, 'rps') / med(`fwd-cluster-${N}`, 'rps')).toFixed(2)}x req/s, ${(med(`fwd-reuseport-${N}`, 'perCpuSecond') / med(`fwd-cluster-${N}`, 'perCpuSecond')).toFixed(2)}x req per CPU-second`);

// Convergence: a file change until a request sees it.
const routeYaml = (value: string) => `${GATEWAY_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-change, value: '${value}'}]}}]
    backendRefs: [{name: backend, port: 80}]
---
${serviceYaml('backend', { port: backendPort! })}`;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
for (const workers of Number(values.changes) > 0 ? [1, N] : []) {
  const name = `converge-${workers}`;
  const running = await startSluiceRun({
    node, dir, name, yaml: routeYaml('c0'), pin: [], args: ['--workers', String(workers)], readyTimeoutMs: 60_000,
    verify: async (proc, port) => void (await waitFor200(proc, port, '/', 30_000)),
  });
  const times: number[] = [];
  for (let i = 1; i <= Number(values.changes); i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const at = performance.now();
    writeFileSync(join(dir, name, 'bench.yaml'), routeYaml(`c${i}`));
    while ((await httpGet(running.port, '/')).headers['x-change'] !== `c${i}`) {
      if (performance.now() - at > 10_000) throw new Error(`change ${i} not served after 10 s`);
    }
    times.push(performance.now() - at);
  }
  await running.proc.stop('SIGTERM', 15_000);
  console.log(`convergence, --workers ${workers}: file written → served, ${times.length} changes: p50 ${pct(times, 50).toFixed(1)} ms, p99 ${pct(times, 99).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`);
}

await backend.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
