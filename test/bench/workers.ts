// `npm run bench:workers`: what --workers gives on this box, every figure a ratio measured in the
// same run (configurations interleaved, order rotated per round, medians reported):
//
//   sluice-1 / sluice-N     `sluice run --workers 1` and `--workers N` (50-rule table, the proxy bench's)
//   fwd-1                   the raw undici forwarder, one thread
//   fwd-reuseport-N         the same in N worker threads binding the port with SO_REUSEPORT
//   fwd-cluster-N           the same in N processes behind node:cluster's round robin primary
//
// Nothing is pinned: the load generator (wrk) and the nginx backend share the cores with the
// proxy, so requests/s alone understates N workers; requests per CPU-second of the proxy's
// process tree (all its threads) says whether a worker costs more per request, and must not drop
// with workers. Then config convergence: a route's response header rewritten in its file, the
// time until a request (on a fresh connection) sees the new value; p50 and p99, with 1 and N
// workers. A benchmark, not a test: exits 0 whether or not a target is met.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GATEWAY_YAML, serviceYaml } from '../e2e/backends.ts';
import { BENCH_HOST, benchManifests } from './manifests.ts';
import { BACKEND_BODY, backendConf } from './nginx-conf.ts';
import { findExecutable, freePorts, httpGet, killAll, Proc, UsageSampler, waitFor200 } from './processes.ts';
import { startSluiceRun } from './sluice-run.ts';
import { runWrk } from './wrk.ts';

const ROOT = join(import.meta.dirname, '..', '..');

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
    workers: { type: 'string', default: String(Math.max(2, availableParallelism())) },
    changes: { type: 'string', default: '40' },
  },
  strict: true,
});
const N = Number(values.workers);
const DURATION = Number(values.duration);
const CONNECTIONS = Number(values.connections);
const ROUNDS = Number(values.rounds);
const CONFIGS = ['sluice-1', `sluice-${N}`, 'fwd-1', `fwd-reuseport-${N}`, `fwd-cluster-${N}`] as const;

const node = process.execPath;
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

interface Running {
  port: number;
  proc: Proc;
}

async function start(config: string): Promise<Running> {
  if (config.startsWith('sluice-')) {
    const workers = config.slice('sluice-'.length);
    return startSluiceRun({
      node, dir, name: `manifests-${workers}`, yaml: manifests.yaml, pin: [], args: ['--workers', workers], readyTimeoutMs: 60_000,
      verify: async (proc, port) => {
        const reply = await waitFor200(proc, port, manifests.path, 30_000, { host: BENCH_HOST });
        if (reply.body !== BACKEND_BODY) throw new Error('sluice: unexpected body');
      },
    });
  }
  const [port] = await freePorts(1);
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
    const running = await start(config);
    // `Host`, capitalised: wrk adds its own unless it sees exactly that name (two Host headers: nginx says 400).
    const load = { url: `http://127.0.0.1:${running.port}${manifests.path}`, threads: 1, connections: CONNECTIONS, headers: { Host: BENCH_HOST }, pin: [], wrk: wrk! };
    await runWrk({ ...load, durationSec: 2 }); // warm-up
    const usage = new UsageSampler(running.proc.pid, null);
    const result = await runWrk({ ...load, durationSec: DURATION });
    const { cpuPercent } = usage.stop();
    await running.proc.stop('SIGTERM', 15_000);
    const sample = { rps: result.requestsPerSec, perCpuSecond: result.requestsPerSec / Math.max(0.01, cpuPercent / 100), cpuPercent, p99Ms: result.p99Ms, errors: result.socketErrors + result.non2xx };
    samples.get(config)!.push(sample);
    if (sample.errors > 0) process.stderr.write(`${config}: ${/Socket errors.*|Non-2xx.*/.exec(result.raw)?.[0] ?? ''}\n`);
    process.stderr.write(`round ${round + 1} ${config}: ${Math.round(sample.rps)} req/s, ${Math.round(cpuPercent)}% CPU, ${Math.round(sample.perCpuSecond)} req per CPU-second, errors ${sample.errors}\n`);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const med = (config: string, field: keyof Sample) => median(samples.get(config)!.map((s) => s[field]));
const pad = (text: string, width: number) => text.padEnd(width);
console.log(`\n--workers on ${availableParallelism()} CPUs, unpinned (wrk and the backend share them), c=${CONNECTIONS}, ${DURATION} s x ${ROUNDS} rounds, medians`);
console.log(`${pad('config', 20)}${pad('req/s', 10)}${pad('x sluice-1', 12)}${pad('x fwd-1', 10)}${pad('CPU %', 8)}${pad('req/CPU-s', 11)}${pad('x sluice-1', 12)}${pad('p99 ms', 8)}errors`);
for (const config of CONFIGS) {
  const rps = med(config, 'rps');
  const perCpu = med(config, 'perCpuSecond');
  console.log(
    `${pad(config, 20)}${pad(String(Math.round(rps)), 10)}${pad((rps / med('sluice-1', 'rps')).toFixed(2), 12)}${pad((rps / med('fwd-1', 'rps')).toFixed(2), 10)}${pad(String(Math.round(med(config, 'cpuPercent'))), 8)}${pad(String(Math.round(perCpu)), 11)}${pad((perCpu / med('sluice-1', 'perCpuSecond')).toFixed(2), 12)}${pad(med(config, 'p99Ms').toFixed(1), 8)}${samples.get(config)!.reduce((a, s) => a + s.errors, 0)}`,
  );
}
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
for (const workers of [1, N]) {
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
