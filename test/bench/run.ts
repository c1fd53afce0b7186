// `npm run bench`: Sluice against a minimal Node forwarder (the raw undici forwarder),
// @fastify/http-proxy and nginx (1 worker, and N workers), side by side in one run, same pinning,
// same nginx backend (see shared/research/perf-baseline.md for the method).
//
//   CPU 0: the system under test (taskset -c 0)
//   CPU 1: wrk, the nginx backend, and this harness
//
// Configurations: direct (the backend alone, reference), minimal (node:http + undici dispatch,
// no routing; the issue's baseline), minimal-headers (the same sending the headers Sluice adds:
// X-Forwarded-For/-Proto and the bench route's two, so upstream requests and answers match Sluice's
// and the ratio to it is Sluice's own code; informational), fastify (@fastify/http-proxy, defaults), nginx (proxy_pass with upstream
// keep-alive, 1 worker), nginx-n (the same with one worker per CPU, unpinned: it shares CPU 1
// with wrk and the backend, so its figure says what N workers give on this box), sluice
// (`sluice run` with a 50-rule routing table). Every figure is also printed as a ratio against
// the baselines of the same run. Each round runs every configuration (interleaved, order rotated
// per round); the table shows medians. A benchmark, not a test: exits 0 whether or not
// the target is met, non-zero only when something could not be run.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_HOST, benchManifests, type BenchManifests } from './manifests.ts';
import { BACKEND_BODY, backendConf, proxyConf } from './nginx-conf.ts';
import { commandOutput, cpuBusyPercent, findExecutable, freePorts, killAll, Proc, tail, UsageSampler, waitFor200, type Usage } from './processes.ts';
import { formatSummary, lastProfile, monotonicUs, summariseFile, type Window } from './profile-summary.ts';
import { startSluiceRun } from './sluice-run.ts';
import { runWrk, type WrkResult } from './wrk.ts';

const ROOT = join(import.meta.dirname, '..', '..');
/**
 * Issue #14: per core at least the raw undici forwarder's requests per CPU-second (requests/s over
 * the SUT's own CPU time: when the SUT does not saturate CPU 0, requests/s measures the load
 * generator, not the SUT), RSS within 1.2x of it.
 */
const TARGET_RATIO = 1.0;
const RSS_TARGET_RATIO = 1.2;
const SUT_CPU = 0;
const LOAD_CPU = 1;
/** CPU 0 counts as quiet below this busy percentage (with the SUT idle). */
const QUIET_BUSY_PERCENT = 10;
/** Interference above this on the SUT's CPU makes a measurement suspect. */
const NOISY_OTHER_PERCENT = 10;

const CONFIGS = ['direct', 'minimal', 'minimal-headers', 'fastify', 'nginx', 'nginx-n', 'sluice', 'sluice-ref'] as const;
/** The first --ref is `sluice-ref`, each further one `sluice-ref2`, `sluice-ref3`, ... */
type ConfigName = (typeof CONFIGS)[number] | `sluice-ref${number}`;

const USAGE = `Usage: npm run bench -- [flags]

  --duration S       measured load per configuration and round, seconds (default 10)
  --connections N    wrk connections (default 64)
  --threads N        wrk threads (default 1)
  --rounds N         rounds; configurations interleaved, medians reported (default 1)
  --warmup S         unmeasured load before each measurement, seconds (default 3)
  --unloaded S       one-connection latency measurement after each load, seconds; 0 skips (default 3)
  --configs LIST     subset of ${CONFIGS.join(',')} (default all)
  --rules N          HTTPRoute rules in Sluice's table (default 50)
  --sluice-args ARGS more \`sluice run\` flags, space-separated (e.g. "--request-flows false"), to
                     measure what a feature costs
  --node-args ARGS   more Node flags for every Node system under test (the forwarders and each Sluice),
                     space-separated (e.g. --node-args=--trace-gc; with --keep each round's output is kept)
  --ref DIR          another checkout (e.g. \`git worktree add /tmp/ref HEAD~3\`): configuration
                     sluice-ref runs its bin/sluice.js, interleaved with this one's (before/after);
                     repeat it to compare several checkouts in the same rounds (sluice-ref2, ...)
  --cpu-prof         afterwards, one extra load each on the minimal forwarder and Sluice under
                     node --cpu-prof (not counted in the table), summarised
  --quiet-wait S     before each load, wait up to S seconds for CPU 0 to be idle when other
                     processes keep it busy (default 30; 0 skips)
  --json FILE        also write the results as JSON
  --keep             keep the temp folder (configs, logs, manifests, profiles)

Needs wrk and nginx (apt-get install wrk nginx) and taskset; 2+ CPUs for the pinned layout.
`;

interface Options {
  duration: number;
  connections: number;
  threads: number;
  rounds: number;
  warmup: number;
  unloaded: number;
  configs: ConfigName[];
  rules: number;
  sluiceArgs: string[];
  nodeArgs: string[];
  /** Other checkouts, in --ref order: `sluice-ref`, `sluice-ref2`, ... */
  refs: string[];
  cpuProf: boolean;
  quietWait: number;
  json: string | null;
  keep: boolean;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '64' },
      threads: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '1' },
      warmup: { type: 'string', default: '3' },
      unloaded: { type: 'string', default: '3' },
      configs: { type: 'string', default: CONFIGS.join(',') },
      rules: { type: 'string', default: '50' },
      'sluice-args': { type: 'string', default: '' },
      'node-args': { type: 'string', default: '' },
      ref: { type: 'string', multiple: true },
      'cpu-prof': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string', default: '30' },
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, min: number): number => {
    const n = Number((values as Record<string, unknown>)[name]);
    if (!Number.isInteger(n) || n < min) fail(`--${name}: expected a whole number >= ${min}`);
    return n;
  };
  const configs = String(values.configs).split(',').map((s) => s.trim()).filter(Boolean);
  const refs = values.ref ?? [];
  if (configs.includes('sluice-ref') && refs.length === 0) fail('--configs sluice-ref needs --ref DIR');
  for (const c of configs) if (!(CONFIGS as readonly string[]).includes(c)) fail(`--configs: unknown configuration ${c} (expected ${CONFIGS.join(',')})`);
  const refConfigs = refs.map((_, i) => refConfig(i));
  const threads = int('threads', 1);
  const connections = int('connections', 1);
  if (connections < threads) fail('--connections must be at least --threads');
  return {
    duration: int('duration', 1),
    connections,
    threads,
    rounds: int('rounds', 1),
    warmup: int('warmup', 0),
    unloaded: int('unloaded', 0),
    configs: [...CONFIGS.filter((c) => c !== 'sluice-ref' && configs.includes(c)), ...refConfigs],
    rules: int('rules', 8),
    sluiceArgs: String(values['sluice-args']).split(' ').filter(Boolean),
    nodeArgs: String(values['node-args']).split(' ').filter(Boolean),
    refs,
    cpuProf: values['cpu-prof'],
    quietWait: int('quiet-wait', 0),
    json: values.json ?? null,
    keep: values.keep,
  };
}

function refConfig(index: number): ConfigName {
  return index === 0 ? 'sluice-ref' : `sluice-ref${index + 1}`;
}

/** The checkout a `sluice-ref*` configuration runs; null for every other configuration. */
function refRoot(opts: Options, config: ConfigName): string | null {
  const index = opts.refs.findIndex((_, i) => refConfig(i) === config);
  return index < 0 ? null : opts.refs[index];
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

interface Tools {
  wrk: string;
  nginx: string;
  taskset: string | null;
  node: string;
}

function checkTools(): Tools {
  const wrk = findExecutable('wrk');
  const nginx = findExecutable('nginx');
  const missing = [wrk ? null : 'wrk', nginx ? null : 'nginx'].filter(Boolean);
  if (missing.length > 0) {
    process.stderr.write(
      `bench: ${missing.join(' and ')} not found on PATH (or /usr/sbin).\n` +
        `Install them first, e.g. on Debian/Ubuntu as root:\n\n    apt-get install wrk nginx\n\n`,
    );
    process.exit(1);
  }
  const localNode = join(ROOT, 'node_modules', '.bin', 'node');
  return { wrk: wrk!, nginx: nginx!, taskset: findExecutable('taskset'), node: existsSync(localNode) ? localNode : process.execPath };
}

interface RoundResult {
  /** 0-based round, to pair configurations measured in the same round. */
  round: number;
  load: WrkResult;
  unloaded: WrkResult | null;
  usage: Usage;
  /** The measured load, in monotonic microseconds. */
  window: Window;
}

interface Running {
  port: number;
  /** Process whose tree is the system under test (for RSS/CPU); null: nothing to sample. */
  proc: Proc | null;
  stop(): Promise<void>;
}

class Bench {
  readonly opts: Options;
  readonly tools: Tools;
  readonly dir: string;
  readonly pinned: boolean;
  readonly manifests: BenchManifests;
  readonly backendPort: number;
  backend: Proc | null = null;

  constructor(opts: Options, tools: Tools, dir: string, backendPort: number, pinned: boolean) {
    this.opts = opts;
    this.tools = tools;
    this.dir = dir;
    this.backendPort = backendPort;
    this.pinned = pinned;
    this.manifests = benchManifests(backendPort, opts.rules);
  }

  pin(cpu: number): string[] {
    return this.pinned ? [this.tools.taskset!, '-c', String(cpu)] : [];
  }

  /** `cpu` null: unpinned (nginx with a worker per CPU). */
  private nginx(name: string, conf: string, cpu: number | null): Proc {
    const file = join(this.dir, `${name}.conf`);
    writeFileSync(file, conf);
    return new Proc(name, [...(cpu === null ? [] : this.pin(cpu)), this.tools.nginx, '-p', this.dir, '-e', join(this.dir, `${name}-error.log`), '-c', file, '-g', 'daemon off;']);
  }

  async startBackend(): Promise<void> {
    this.backend = this.nginx('backend', backendConf(this.dir, this.backendPort), LOAD_CPU);
    const reply = await waitFor200(this.backend, this.backendPort, '/', 10_000);
    if (reply.body !== BACKEND_BODY) throw new Error(`backend answered an unexpected body: ${JSON.stringify(reply.body)}`);
  }

  async start(config: ConfigName, profileDir: string | null = null): Promise<Running> {
    switch (config) {
      case 'direct':
        return { port: this.backendPort, proc: this.backend, stop: async () => {} };
      case 'minimal':
        return this.nodeBaseline('minimal-forwarder', profileDir);
      case 'minimal-headers':
        return this.nodeBaseline('minimal-forwarder', profileDir, ['--same-headers', this.manifests.routeHeaders.join(',')], true);
      case 'fastify':
        return this.nodeBaseline('fastify-proxy', profileDir);
      case 'nginx': {
        const [port] = await freePorts(1);
        const proc = this.nginx('nginx-proxy', proxyConf(this.dir, port, this.backendPort), SUT_CPU);
        await this.verify(proc, port, false);
        return { port, proc, stop: () => proc.stop() };
      }
      case 'nginx-n': {
        const [port] = await freePorts(1);
        const proc = this.nginx('nginx-proxy-n', proxyConf(this.dir, port, this.backendPort, availableParallelism(), 'nginx-proxy-n'), null);
        await this.verify(proc, port, false);
        return { port, proc, stop: () => proc.stop() };
      }
      default: {
        // sluice and every sluice-ref*
        const root = refRoot(this.opts, config);
        const { port, proc } = await startSluiceRun({
          ...(root !== null ? { root } : {}),
          node: this.tools.node,
          dir: this.dir,
          name: 'manifests',
          yaml: this.manifests.yaml,
          pin: this.pin(SUT_CPU),
          profileDir,
          nodeArgs: this.opts.nodeArgs,
          args: this.opts.sluiceArgs,
          verify: (p, listenPort) => this.verify(p, listenPort, true),
        });
        return { port, proc, stop: () => proc.stop('SIGTERM', 15_000) };
      }
    }
  }

  /** A Node proxy of test/bench (`<script>.ts --port P --upstream HOST:PORT`) on the SUT's CPU. */
  /** `sendsRouteHeaders`: checked like Sluice's (the backend saw the bench rule's header). */
  private async nodeBaseline(script: string, profileDir: string | null, args: string[] = [], sendsRouteHeaders = false): Promise<Running> {
    const [port] = await freePorts(1);
    const proc = new Proc(script, [
      ...this.pin(SUT_CPU),
      this.tools.node,
      '--disable-warning=ExperimentalWarning',
      ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
      ...this.opts.nodeArgs,
      join(ROOT, 'test', 'bench', `${script}.ts`),
      '--port',
      String(port),
      '--upstream',
      `127.0.0.1:${this.backendPort}`,
      ...args,
    ]);
    await this.verify(proc, port, sendsRouteHeaders);
    return { port, proc, stop: () => proc.stop() };
  }

  /** The benchmarked request answers 200 with the backend's body (and, through Sluice or minimal-headers, the rule's header). */
  private async verify(proc: Proc, port: number, routeHeaders: boolean): Promise<void> {
    const headers = { host: BENCH_HOST, 'x-debug': '1' };
    const reply = await waitFor200(proc, port, this.manifests.path, 15_000, headers);
    if (reply.body !== BACKEND_BODY) throw new Error(`${proc.name}: unexpected body ${JSON.stringify(reply.body.slice(0, 200))}`);
    if (routeHeaders && reply.headers['x-bench-route-seen'] !== this.manifests.routeMarker) {
      throw new Error(
        `${proc.name}: GET ${this.manifests.path} did not reach the benchmarked rule (its RequestHeaderModifier should set ` +
          `x-bench-route: ${this.manifests.routeMarker}; the backend saw ${JSON.stringify(reply.headers['x-bench-route-seen'] ?? null)})`,
      );
    }
  }

  private wrk(port: number, connections: number, threads: number, durationSec: number): Promise<WrkResult> {
    return runWrk({
      wrk: this.tools.wrk,
      pin: this.pin(LOAD_CPU),
      url: `http://127.0.0.1:${port}${this.manifests.path}`,
      threads,
      connections,
      durationSec,
      headers: { Host: BENCH_HOST },
    });
  }

  /** Other people's processes share this machine: let a burst on the SUT's CPU pass first. */
  private async waitForQuietCpu(): Promise<void> {
    if (!this.pinned || this.opts.quietWait === 0) return;
    const started = Date.now();
    let busy = await cpuBusyPercent(SUT_CPU, 500);
    while (busy > QUIET_BUSY_PERCENT && Date.now() - started < this.opts.quietWait * 1000) busy = await cpuBusyPercent(SUT_CPU, 1000);
    const waited = (Date.now() - started) / 1000;
    if (waited > 1) process.stdout.write(`(waited ${waited.toFixed(0)}s for CPU ${SUT_CPU}${busy > QUIET_BUSY_PERCENT ? `; still ${busy.toFixed(0)}% busy` : ''}) `);
  }

  async measure(config: ConfigName, round: number, profileDir: string | null = null): Promise<RoundResult> {
    const running = await this.start(config, profileDir);
    try {
      const { connections, threads } = this.opts;
      if (this.opts.warmup > 0) await this.wrk(running.port, connections, threads, this.opts.warmup);
      if (config !== 'direct') await this.waitForQuietCpu();
      const sampler = running.proc ? new UsageSampler(running.proc.pid, config === 'direct' || config === 'nginx-n' || !this.pinned ? null : SUT_CPU) : null;
      const startUs = monotonicUs();
      const load = await this.wrk(running.port, connections, threads, this.opts.duration);
      const window = { startUs, endUs: monotonicUs() };
      const usage = sampler ? sampler.stop() : { rssMb: Number.NaN, cpuPercent: Number.NaN, otherPercent: Number.NaN };
      const unloaded = this.opts.unloaded > 0 ? await this.wrk(running.port, 1, 1, this.opts.unloaded) : null;
      if (running.proc && !running.proc.alive) throw new Error(`${running.proc.name} died under load:\n${tail(running.proc.logs())}`);
      return { round, load, unloaded, usage, window };
    } finally {
      await running.stop();
      // Kept for reading afterwards (say, V8's --trace-gc lines through NODE_OPTIONS: the heap at the end of each round).
      if (this.opts.keep && running.proc !== null && running.proc !== this.backend) writeFileSync(join(this.dir, `${config}-round${round + 1}${profileDir ? '-profile' : ''}.log`), running.proc.logs());
    }
  }
}

const BASE_LABELS: Record<(typeof CONFIGS)[number], string> = {
  direct: 'backend direct (no proxy, ref.)',
  minimal: 'minimal forwarder (node+undici)',
  'minimal-headers': 'minimal + same headers (info)',
  fastify: '@fastify/http-proxy',
  nginx: 'nginx proxy_pass, 1 worker',
  'nginx-n': `nginx proxy_pass, ${availableParallelism()} workers (unpinned)`,
  sluice: 'sluice',
  'sluice-ref': 'sluice (--ref checkout)',
};

let refLabels: ReadonlyMap<ConfigName, string> = new Map();

function label(config: ConfigName): string {
  return refLabels.get(config) ?? BASE_LABELS[config as (typeof CONFIGS)[number]];
}

function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

function table(rows: string[][], rightAlign: boolean[]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r, ri) => {
      const line = r.map((cell, i) => (rightAlign[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

async function main(): Promise<number> {
  const opts = parseOptions();
  refLabels = new Map(opts.refs.map((dir, i) => [refConfig(i), `sluice @ ${basename(dir)}`]));
  const tools = checkTools();
  const cpuCount = availableParallelism();
  const pinned = tools.taskset !== null && cpuCount >= 2;
  if (!pinned) {
    process.stderr.write(`bench: WARNING: ${tools.taskset ? `only ${cpuCount} CPU` : 'taskset not found'}; running unpinned, numbers are not comparable with pinned runs\n`);
  } else {
    // The harness itself (timers, /proc sampling) stays off the system under test's CPU.
    commandOutput(tools.taskset!, ['-a', '-p', '-c', String(LOAD_CPU), String(process.pid)]);
  }
  if (opts.configs.includes('sluice') && !existsSync(join(ROOT, 'bin', 'sluice.js'))) fail('bin/sluice.js not found');

  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  // nginx workers run as an unprivileged user when started as root.
  chmodSync(dir, 0o755);
  const cleanup = (): void => {
    killAll();
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping\n`);
      cleanup();
      process.exit(130);
    });
  }

  const [backendPort] = await freePorts(1);
  const bench = new Bench(opts, tools, dir, backendPort, pinned);
  const versions = {
    node: commandOutput(tools.node, ['--version']),
    nginx: commandOutput(tools.nginx, ['-v']).replace(/^nginx version: /, ''),
    wrk: commandOutput(tools.wrk, ['-v']).split('\n')[0].replace(/ Copyright.*$/, ''),
  };
  const out = (s = ''): boolean => process.stdout.write(`${s}\n`);
  out(`sluice bench  ${new Date().toISOString()}`);
  out(`machine: ${cpuCount} CPUs (${cpus()[0]?.model ?? 'unknown'}); node ${versions.node}, nginx ${versions.nginx}, ${versions.wrk}`);
  out(
    `layout: ${pinned ? `system under test on CPU ${SUT_CPU}, wrk + backend + harness on CPU ${LOAD_CPU}` : 'UNPINNED'}; ` +
      `wrk -t${opts.threads} -c${opts.connections} -d${opts.duration}s --latency (warm-up ${opts.warmup}s), keep-alive both sides`,
  );
  if (opts.sluiceArgs.length > 0) out(`sluice flags: ${opts.sluiceArgs.join(' ')}`);
  if (opts.nodeArgs.length > 0) out(`node flags: ${opts.nodeArgs.join(' ')}`);
  out(`sluice table: ${bench.manifests.rules} HTTPRoute rules; GET ${bench.manifests.path} (Host ${BENCH_HOST}) hits rule ${bench.manifests.position} of ${bench.manifests.rules} in precedence order`);
  out(`rounds: ${opts.rounds}; temp folder ${dir}${opts.keep ? ' (kept)' : ''}`);
  out();

  const results = new Map<ConfigName, RoundResult[]>(opts.configs.map((c) => [c, []]));
  const failures: string[] = [];
  try {
    await bench.startBackend();
    for (let round = 0; round < opts.rounds; round++) {
      const order = opts.configs.map((_, i) => opts.configs[(i + round) % opts.configs.length]);
      for (const config of order) {
        process.stdout.write(`round ${round + 1}/${opts.rounds}  ${label(config).padEnd(32)} `);
        try {
          const r = await bench.measure(config, round);
          results.get(config)!.push(r);
          const errors = r.load.non2xx + r.load.socketErrors;
          out(
            `${fmtInt(r.load.requestsPerSec).padStart(7)} req/s  p50 ${fmt(r.load.p50Ms)} ms  p99 ${fmt(r.load.p99Ms)} ms` +
              `  cpu ${fmt(r.usage.cpuPercent, 0)}%${Number.isFinite(r.usage.otherPercent) ? `  other on CPU ${SUT_CPU} ${fmt(r.usage.otherPercent, 0)}%` : ''}${errors ? `  ERRORS: ${r.load.non2xx} non-2xx, ${r.load.socketErrors} socket` : ''}`,
          );
        } catch (error) {
          out('FAILED');
          const message = `${config}: ${(error as Error).message}`;
          failures.push(message);
          process.stderr.write(`${message}\n`);
          if (!bench.backend?.alive) throw new Error(`backend died:\n${tail(bench.backend?.logs() ?? '')}`);
        }
      }
    }

    const profiles: { config: ConfigName; file: string; summary: string }[] = [];
    if (opts.cpuProf) {
      for (const config of (['minimal', 'sluice'] as const).filter((c) => opts.configs.includes(c))) {
        const profileDir = join(dir, 'profiles', config);
        mkdirSync(profileDir, { recursive: true });
        process.stdout.write(`profile pass: ${label(config).padEnd(32)} under node --cpu-prof (not counted)  `);
        try {
          const r = await bench.measure(config, -1, profileDir);
          out(`${fmtInt(r.load.requestsPerSec)} req/s`);
          const file = lastProfile(profileDir);
          if (file === undefined) throw new Error('no .cpuprofile written (did the process exit cleanly on SIGTERM?)');
          profiles.push({ config, file, summary: formatSummary(summariseFile(file, 25, r.window)) });
        } catch (error) {
          out('FAILED');
          failures.push(`profile ${config}: ${(error as Error).message}`);
        }
      }
    }
    out();
    report(opts, results, out);
    for (const p of profiles) {
      out();
      out(`CPU profile of ${label(p.config)} under load (${p.file}${opts.keep ? '' : '; pass --keep to keep it'}):`);
      out(p.summary);
    }
    if (opts.json) {
      writeFileSync(
        opts.json,
        `${JSON.stringify(
          {
            date: new Date().toISOString(),
            versions,
            options: opts,
            pinned,
            rules: bench.manifests.rules,
            path: bench.manifests.path,
            results: Object.fromEntries([...results].map(([c, rs]) => [c, rs.map((r) => ({ ...r, window: undefined, load: { ...r.load, raw: undefined }, unloaded: r.unloaded ? { ...r.unloaded, raw: undefined } : null }))])),
            failures,
          },
          null,
          2,
        )}\n`,
      );
      out(`\nresults written to ${opts.json}`);
    }
  } catch (error) {
    failures.push((error as Error).message);
    process.stderr.write(`bench: ${(error as Error).message}\n`);
  } finally {
    await bench.backend?.stop();
    cleanup();
  }
  if (failures.length > 0) {
    process.stderr.write(`\nbench: ${failures.length} configuration run(s) failed (see above)\n`);
    return 1;
  }
  return 0;
}

/** Requests per second of the SUT's own CPU time: less sensitive to other processes than req/s. */
function efficiency(r: RoundResult): number {
  return r.usage.cpuPercent > 0 ? r.load.requestsPerSec / (r.usage.cpuPercent / 100) : Number.NaN;
}

function report(opts: Options, results: Map<ConfigName, RoundResult[]>, out: (s?: string) => boolean): void {
  // Ratios per round (interleaved, so each round compares like with like), then the median.
  const ratio = (a: ConfigName, b: ConfigName, metric = (r: RoundResult): number => r.load.requestsPerSec): { median: number; perRound: number[] } => {
    const ra = results.get(a) ?? [];
    const rb = results.get(b) ?? [];
    const perRound: number[] = [];
    for (const x of ra) {
      const y = rb.find((r) => r.round === x.round);
      if (y) perRound.push(metric(x) / metric(y));
    }
    return { median: median(perRound), perRound };
  };
  const rss = (r: RoundResult): number => r.usage.rssMb;
  const multi = opts.rounds > 1;
  const rows: string[][] = [
    ['configuration', 'req/s', ...(multi ? ['min-max'] : []), 'x raw', 'x nginx', 'p50 ms', 'p99 ms', 'req/CPU-s', 'x raw', 'RSS MB', 'x raw', 'CPU %', 'other CPU0 %', 'unloaded p50/p99 ms', 'errors'],
  ];
  for (const [config, rs] of results) {
    if (rs.length === 0) {
      rows.push([label(config), 'failed', ...rows[0].slice(2).map(() => '')]);
      continue;
    }
    const rps = rs.map((r) => r.load.requestsPerSec);
    const errors = rs.reduce((n, r) => n + r.load.non2xx + r.load.socketErrors, 0);
    const unl = rs.filter((r) => r.unloaded !== null);
    rows.push([
      label(config),
      fmtInt(median(rps)),
      ...(multi ? [`${fmtInt(Math.min(...rps))}-${fmtInt(Math.max(...rps))}`] : []),
      fmt(ratio(config, 'minimal').median),
      fmt(ratio(config, 'nginx').median),
      fmt(median(rs.map((r) => r.load.p50Ms))),
      fmt(median(rs.map((r) => r.load.p99Ms))),
      fmtInt(median(rs.map(efficiency))),
      fmt(ratio(config, 'minimal', efficiency).median),
      fmt(median(rs.map(rss)), 0),
      fmt(ratio(config, 'minimal', rss).median),
      fmt(median(rs.map((r) => r.usage.cpuPercent)), 0),
      fmt(median(rs.map((r) => r.usage.otherPercent)), 0),
      unl.length ? `${fmt(median(unl.map((r) => r.unloaded!.p50Ms)))} / ${fmt(median(unl.map((r) => r.unloaded!.p99Ms)))}` : '-',
      String(errors),
    ]);
  }
  out(
    `results (median of ${opts.rounds} round${multi ? 's' : ''}; "x raw" / "x nginx": ratio to the minimal forwarder / nginx 1 worker in the same round, median over rounds; ` +
      `RSS and CPU % are the system under test's process tree, 100% = one core; ` +
      `"other CPU0 %" is CPU ${SUT_CPU} time used by anything else: interference from other processes, plus some loopback networking):`,
  );
  out(table(rows, rows[0].map((_, i) => i > 0)));
  out();

  const line = (name: string, r: { median: number; perRound: number[] }): void => {
    out(`${name.padEnd(44)}: ${fmt(r.median)}x${r.perRound.length > 1 ? `  (per round: ${r.perRound.map((x) => fmt(x)).join(', ')})` : ''}`);
  };
  const ok = (config: ConfigName): boolean => (results.get(config)?.length ?? 0) > 0;
  const sluiceOk = ok('sluice');
  for (const baseline of ['minimal', 'minimal-headers', 'fastify', 'nginx', 'nginx-n'] as const) {
    if (!sluiceOk || !ok(baseline)) continue;
    line(`sluice / ${label(baseline)} (req/s)`, ratio('sluice', baseline));
    line(`sluice / ${label(baseline)} (req/CPU-s)`, ratio('sluice', baseline, efficiency));
  }
  if (sluiceOk && ok('minimal')) line('sluice / minimal forwarder (RSS)', ratio('sluice', 'minimal', rss));
  for (const ref of opts.refs.map((_, i) => refConfig(i)).filter(ok)) {
    if (ok('minimal')) {
      line(`${label(ref)} / minimal forwarder (req/CPU-s)`, ratio(ref, 'minimal', efficiency));
      line(`${label(ref)} / minimal forwarder (RSS)`, ratio(ref, 'minimal', rss));
    }
    if (sluiceOk) {
      line(`sluice / ${label(ref)} (req/CPU-s)`, ratio('sluice', ref, efficiency));
      line(`sluice / ${label(ref)} (RSS)`, ratio('sluice', ref, rss));
    }
  }
  if (ok('minimal') && ok('nginx')) line('minimal / nginx proxy (req/s)', ratio('minimal', 'nginx'));
  const invalid = [...results].filter(([, rs]) => rs.some((r) => r.load.non2xx + r.load.socketErrors > r.load.requests * 0.001)).map(([c]) => c);
  const noisy = [...results].filter(([c, rs]) => c !== 'nginx-n' && median(rs.map((r) => r.usage.otherPercent)) > NOISY_OTHER_PERCENT).map(([c]) => c);
  if (noisy.length > 0) out(`WARNING: other processes used more than ${NOISY_OTHER_PERCENT}% of CPU ${SUT_CPU} during: ${noisy.join(', ')}; treat those figures with care (more --rounds help)`);
  if (invalid.length > 0) out(`WARNING: errors above 0.1% of requests in: ${invalid.join(', ')}; their requests/s are not comparable`);
  if (sluiceOk && ok('minimal')) {
    const r = ratio('sluice', 'minimal', efficiency).median;
    const memory = ratio('sluice', 'minimal', rss).median;
    const met = r >= TARGET_RATIO && !invalid.includes('sluice');
    const unreliable = noisy.includes('sluice') || noisy.includes('minimal');
    out(
      `target ${TARGET_RATIO}x the minimal forwarder's requests per CPU-second: ${met ? 'met' : 'NOT met'} (${fmt(r)}x); RSS within ${RSS_TARGET_RATIO}x: ${memory <= RSS_TARGET_RATIO ? 'met' : 'NOT met'} (${fmt(memory)}x)` +
        (unreliable ? ` -- UNRELIABLE: CPU ${SUT_CPU} was shared with other processes; rerun on a quiet machine or with more --rounds` : ''),
    );
  } else if (opts.configs.includes('sluice') && opts.configs.includes('minimal')) {
    out(`target ${TARGET_RATIO}x the minimal forwarder's requests per CPU-second: not measured (a configuration failed)`);
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`bench: ${(error as Error).stack ?? error}\n`);
    killAll();
    process.exit(1);
  },
);
