// `npm run bench:routes`: how Sluice's cost grows with the number of HTTPRoutes (issue #14), in one
// process on the real pipeline: a Translator's first translation of an input snapshot (what a
// process does at start), then a real Dataplane applying the IR (compile + listener bound on a free
// port). Figures per table size, each as a ratio to the smallest table measured in the same run:
//   - full translate, compile + apply;
//   - full translate() against the Translator's incremental one (a process's translator: one
//     HTTPRoute object replaced, everything else the same objects), x = how many times cheaper;
//   - one route changed (its path), re-translated by the Translator and applied: p50/p99 of the
//     translate, of the apply and of both over --changes changes;
//   - route lookup (findRoute on the live table) for a request hitting a route near the end of the
//     precedence order, ns per lookup and ratio to the smallest table;
//   - heap retained per route (after GC, the dataplane holding the table).
// Two layouts: `hosts` (each HTTPRoute its own hostname, as on a shared gateway) and `paths` (every
// HTTPRoute on one hostname, distinct path prefixes: the worst case for a host-only index).
// Then the request cost end to end: `sluice run` with the same objects as manifests, wrk against
// it (the nginx backend of the proxy bench), CPU-seconds per request of the Sluice process and its
// RSS, each as a ratio to the smallest table (needs wrk and nginx; --e2e-duration 0 skips it).
// And convergence through the same `sluice run`: one route's document edited in the manifest file
// (written beside it, renamed over it: what an editor or `git checkout` does), until a request for
// the new path is answered by the backend — wall ms p50/p99 over --converge edits (0 skips).
// A benchmark, not a test: exits 0 whatever the figures.

import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { Registry } from 'prom-client';
import { emptySnapshot, type InputSnapshot } from '../../controller/sources/objects.ts';
import { translate, Translator, type TranslateOptions } from '../../controller/translate/translate.ts';
import { Dataplane } from '../../dataplane/dataplane.ts';
import type { RouteTable } from '../../dataplane/config/route-table.ts';
import { normalizeHost } from '../../dataplane/router/host.ts';
import type { MatchableRequest } from '../../dataplane/router/match.ts';
import { findRoute } from '../../dataplane/router/router.ts';
import type { IR } from '../../ir/types.ts';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import { snapshotArrays } from '../../controller/sources/objects.ts';
import { BACKEND_BODY, backendConf } from './nginx-conf.ts';
import { findExecutable, freePorts, httpGet, killAll, Proc, tail, UsageSampler, waitFor200 } from './processes.ts';
import { formatSummary, lastProfile, monotonicUs, summariseFile } from './profile-summary.ts';
import { startSluiceRun } from './sluice-run.ts';
import { runWrk } from './wrk.ts';
import { incrementalSection } from './route-scale-incremental.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const RULES_PER_ROUTE = 5;
const OPTIONS: TranslateOptions = {
  controllerName: 'sluice.dev/gateway-controller',
  bindAddress: '127.0.0.1',
  servedClassNames: [],
  ingress: { classNames: [], controllers: [], enforceHttps: false },
};

type Layout = 'hosts' | 'paths';

const USAGE = `Usage: npm run bench:routes -- [flags]

  --routes LIST    HTTPRoute counts (default 10,1000,10000), ${RULES_PER_ROUTE} rules each
  --layouts LIST   hosts,paths (default both)
  --changes N      one-route changes applied per size, for the p50/p99 (default 30)
  --lookups N      route lookups timed per size (default 200000)
  --e2e-duration S wrk load per size through \`sluice run\`, seconds; 0 skips (default 8)
  --converge N     manifest edits per size through \`sluice run\`, file written to request served; 0 skips (default 20)
  --e2e-only       skip the in-process part
  --cpu-prof       run Sluice under node --cpu-prof in the end-to-end part and summarise each profile
  --ref DIR        another checkout (e.g. \`git worktree add /tmp/ref HEAD~3\`): the end-to-end part runs
                   its bin/sluice.js too, interleaved with this one's (before/after); repeatable
  --rounds N       end-to-end runs per checkout and size, interleaved between checkouts (default 1)
`;

interface Options {
  routes: number[];
  layouts: Layout[];
  changes: number;
  lookups: number;
  e2eDuration: number;
  converge: number;
  cpuProf: boolean;
  e2eOnly: boolean;
  refs: string[];
  rounds: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      routes: { type: 'string', default: '10,1000,10000' },
      layouts: { type: 'string', default: 'hosts,paths' },
      changes: { type: 'string', default: '30' },
      lookups: { type: 'string', default: '200000' },
      'e2e-duration': { type: 'string', default: '8' },
      converge: { type: 'string', default: '20' },
      'cpu-prof': { type: 'boolean', default: false },
      'e2e-only': { type: 'boolean', default: false },
      ref: { type: 'string', multiple: true },
      rounds: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const routes = values.routes.split(',').map(Number);
  const layouts = values.layouts.split(',') as Layout[];
  if (routes.some((n) => !Number.isInteger(n) || n < 1) || layouts.some((l) => l !== 'hosts' && l !== 'paths')) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  return { routes, layouts, changes: Number(values.changes), lookups: Number(values.lookups), e2eDuration: Number(values['e2e-duration']), converge: Number(values.converge), cpuProf: values['cpu-prof'], e2eOnly: values['e2e-only'], refs: values.ref ?? [], rounds };
}

/** `routes` HTTPRoutes of RULES_PER_ROUTE rules each (an exact path, prefixes, a header match), 10 Services. */
function snapshotOf(routes: number, layout: Layout, backendPort: number): InputSnapshot {
  const snapshot = emptySnapshot();
  const created = '2026-01-01T00:00:00Z';
  snapshot.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'scale', creationTimestamp: created }, spec: { controllerName: OPTIONS.controllerName } });
  snapshot.gateways.push({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'scale', namespace: 'default', creationTimestamp: created },
    spec: { gatewayClassName: 'scale', listeners: [{ name: 'http', protocol: 'HTTP', port: 80, allowedRoutes: { namespaces: { from: 'Same' } } }] },
  });
  for (let s = 0; s < 10; s++) {
    snapshot.services.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${s}`, namespace: 'default', creationTimestamp: created }, spec: { ports: [{ name: 'http', port: 80, targetPort: backendPort }] } });
    snapshot.endpointSlices.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `svc-${s}-1`, namespace: 'default', creationTimestamp: created, labels: { 'kubernetes.io/service-name': `svc-${s}` } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: backendPort, protocol: 'TCP' }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    });
  }
  for (let r = 0; r < routes; r++) snapshot.httpRoutes.push(httpRouteOf(r, layout));
  return snapshot;
}

/** HTTPRoute `route-<r>`; `generation` > 0 changes its exact path to `<base>/health-g<generation>` (see changedPath). */
function httpRouteOf(r: number, layout: Layout, generation = 0): InputSnapshot['httpRoutes'][number] {
  const base = layout === 'hosts' ? '/api' : `/t${r}`;
  const backendRefs = [{ name: `svc-${r % 10}`, port: 80 }];
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: `route-${r}`, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z', generation: 1 },
    spec: {
      parentRefs: [{ name: 'scale' }],
      ...(layout === 'hosts' ? { hostnames: [`r${r}.scale.test`] } : { hostnames: ['scale.test'] }),
      rules: [
        { matches: [{ path: { type: 'Exact', value: generation > 0 ? changedPath(r, layout, generation).path : `${base}/health` } }], backendRefs },
        { matches: [{ path: { type: 'PathPrefix', value: `${base}/v1/users` } }], backendRefs },
        { matches: [{ path: { type: 'PathPrefix', value: `${base}/v1/orders` }, headers: [{ name: 'x-tenant', value: 'gold' }] }], backendRefs },
        { matches: [{ path: { type: 'PathPrefix', value: `${base}/v1/orders` } }], backendRefs },
        { matches: [{ path: { type: 'PathPrefix', value: `${base}/v2` } }], backendRefs },
      ],
    },
  };
}

/** The request only route `r` at `generation` answers (no other rule of the table matches it). */
function changedPath(r: number, layout: Layout, generation: number): { host: string; path: string } {
  return layout === 'hosts' ? { host: `r${r}.scale.test`, path: `/api/health-g${generation}` } : { host: 'scale.test', path: `/t${r}/health-g${generation}` };
}

interface SizeResult {
  layout: Layout;
  routes: number;
  rules: number;
  translateMs: number;
  applyMs: number;
  /** translate() from scratch of the changed snapshots (median), against the Translator's p50. */
  freshChangeTranslateMs: number;
  changeTranslate: Percentiles;
  changeApply: Percentiles;
  change: Percentiles;
  lookupNs: number;
  heapPerRouteBytes: number;
  /** Of which the IR (and translation's snapshot), the rest being the compiled table. */
  irPerRouteBytes: number;
}

/** CPU milliseconds of this process since `from` (user + system): other helpers share these cores, wall time would count their work too. */
function cpuMs(from?: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000;
}

interface Percentiles {
  p50: number;
  p99: number;
}

function percentiles(values: number[]): Percentiles {
  return { p50: percentile(values, 50), p99: percentile(values, 99) };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** The table the dataplane serves (private field: a benchmark may look inside). */
function liveTable(dataplane: Dataplane): RouteTable {
  return (dataplane as unknown as { table: RouteTable }).table;
}

async function measure(routes: number, layout: Layout, changes: number, lookups: number, backendPort: number, listenPort: number): Promise<SizeResult> {
  const heapBefore = heapUsed();
  const dataplane = new Dataplane({ portOffset: listenPort - 80, registry: new Registry(), logger: pino({ level: 'silent' }) });
  try {
    let snapshot = snapshotOf(routes, layout, backendPort);
    // The process's translator's first translation (what `sluice run` and `sluice controller` do at
    // start; translate() from scratch is measured after the changes): no translate() before it, whose
    // garbage, a whole IR, no process has, and whose collection fell into the changes measured next.
    const translator = new Translator();
    let cpu = process.cpuUsage();
    let ir: IR = translator.translate(snapshot, OPTIONS).ir;
    const translateMs = cpuMs(cpu);
    const heapAfterTranslate = heapUsed();
    cpu = process.cpuUsage();
    const applied = await dataplane.apply(ir.version, ir.http, ir.l4);
    const applyMs = cpuMs(cpu);
    if (!applied.listeners.every((l) => l.ok)) throw new Error(`listener not bound: ${JSON.stringify(applied.listeners)}`);
    const rules = ir.http.listeners.reduce((n, l) => n + l.scopes.reduce((m, s) => m + s.virtualHosts.reduce((k, v) => k + v.routes.length, 0), 0), 0);
    const heapPerRouteBytes = (heapUsed() - heapBefore) / routes;
    const irPerRouteBytes = (heapAfterTranslate - heapBefore) / routes;

    // The last route's prefix rule: in the `paths` layout, the bottom of one long virtual host.
    const last = routes - 1;
    const benchmarked = benchmarkedRequest(routes, layout);
    const host = normalizeHost(benchmarked.host);
    const request: MatchableRequest = { method: 'GET', path: benchmarked.path, query: '', headers: ['user-agent', 'bench'], params: null };
    const listener = liveTable(dataplane).listeners[0];
    const expected = findRoute(listener, host, request);
    if (expected === null || !expected.source.endsWith(`route-${last}`)) throw new Error(`lookup chose ${expected?.source ?? 'nothing'}, expected default/route-${last}`);
    for (let i = 0; i < 20_000; i++) findRoute(listener, host, request);
    cpu = process.cpuUsage();
    for (let i = 0; i < lookups; i++) findRoute(listener, host, request);
    const lookupNs = (cpuMs(cpu) * 1e6) / lookups;

    // One HTTPRoute replaced by a new object (its exact path changed), the rest the same objects: what
    // the manifest folder or an informer hands over after an edit.
    const translateTimes: number[] = [];
    const applyTimes: number[] = [];
    const freshTimes: number[] = [];
    for (let c = 0; c < changes; c++) {
      const changed = (c * 7919) % routes;
      snapshot = { ...snapshot, httpRoutes: snapshot.httpRoutes.map((r, i) => (i === changed ? httpRouteOf(changed, layout, c + 1) : r)) };
      cpu = process.cpuUsage();
      ir = translator.translate(snapshot, OPTIONS).ir;
      translateTimes.push(cpuMs(cpu));
      cpu = process.cpuUsage();
      await dataplane.apply(ir.version, ir.http, ir.l4);
      applyTimes.push(cpuMs(cpu));
    }
    // translate() from scratch after the changes, not between them: its garbage (a whole IR) would
    // be collected during the next change and counted as that change's cost.
    for (let c = 0; c < Math.min(3, changes); c++) {
      cpu = process.cpuUsage();
      translate(snapshot, OPTIONS);
      freshTimes.push(cpuMs(cpu));
    }
    const { host: newHost, path: newPath } = changedPath(((changes - 1) * 7919) % routes, layout, changes);
    const served = changes > 0 ? findRoute(liveTable(dataplane).listeners[0], normalizeHost(newHost), { ...request, path: newPath }) : null;
    if (changes > 0 && served === null) throw new Error(`the last change is not served: no route for ${newHost}${newPath}`);
    return {
      layout,
      routes,
      rules,
      translateMs,
      applyMs,
      freshChangeTranslateMs: percentile(freshTimes, 50),
      changeTranslate: percentiles(translateTimes),
      changeApply: percentiles(applyTimes),
      change: percentiles(translateTimes.map((t, i) => t + applyTimes[i]!)),
      lookupNs,
      heapPerRouteBytes,
      irPerRouteBytes,
    };
  } finally {
    await dataplane.close();
  }
}

/** The request every measurement sends: the last route's orders rule (see snapshotOf). */
function benchmarkedRequest(routes: number, layout: Layout): { host: string; path: string } {
  const last = routes - 1;
  return { host: layout === 'hosts' ? `r${last}.scale.test` : 'scale.test', path: `${layout === 'hosts' ? '/api' : `/t${last}`}/v1/orders/42` };
}

interface EndToEnd {
  routes: number;
  /** Which checkout ran: 'this' or a --ref folder's name. */
  checkout: string;
  requestsPerCpuSecond: number;
  rssMb: number;
  errors: number;
  /** Manifest edit → request served by the edited route, wall ms (and each edit's, in order); null when not measured. */
  convergence: Convergence | null;
  /** With --cpu-prof: the profile's summary over the measured load. */
  profile: string | null;
}

/** `sluice run` serving the table, wrk -c64 against it: CPU time per request, RSS. */
async function endToEnd(routes: number, layout: Layout, seconds: number, edits: number, backendPort: number, dir: string, wrk: string, cpuProf: boolean, root: string | null): Promise<EndToEnd> {
  const checkout = root === null ? 'this' : basename(root);
  const snapshot = snapshotOf(routes, layout, backendPort);
  const objects = Object.values(snapshotArrays(snapshot)).flat();
  const documents = objects.map((object) => stringify(object));
  const yaml = documents.join('---\n');
  const { host, path } = benchmarkedRequest(routes, layout);
  const profileDir = cpuProf ? join(dir, `profile-${layout}-${routes}`) : null;
  const sluice = await startSluiceRun({
    node: process.execPath,
    dir,
    name: `${layout}-${routes}`,
    yaml,
    ...(root !== null ? { root } : {}),
    pin: [],
    profileDir,
    readyTimeoutMs: 120_000,
    verify: async (proc, port) => {
      const reply = await waitFor200(proc, port, path, 60_000, { host });
      if (reply.body !== BACKEND_BODY) throw new Error(`unexpected body ${JSON.stringify(reply.body.slice(0, 200))}`);
    },
  });
  try {
    const convergeWindow = { startUs: monotonicUs(), endUs: 0 };
    const convergence =
      edits > 0
        ? await converge(sluice.proc.pid, sluice.port, join(dir, `${layout}-${routes}`, 'bench.yaml'), documents, (r) => objects.indexOf(snapshot.httpRoutes[r]!), layout, routes, edits).catch((error: unknown) => {
            throw new Error(`${(error as Error).message}\nsluice output:\n${tail(sluice.proc.logs())}`);
          })
        : null;
    convergeWindow.endUs = monotonicUs();
    if (seconds <= 0) {
      // --cpu-prof without load: the profile of the edits.
      await sluice.proc.stop('SIGTERM', 15_000);
      return { routes, checkout, requestsPerCpuSecond: Number.NaN, rssMb: Number.NaN, errors: 0, convergence, profile: profileDir === null ? null : profileSummary(profileDir, convergeWindow) };
    }
    const load = (durationSec: number) => runWrk({ wrk, pin: [], url: `http://127.0.0.1:${sluice.port}${path}`, threads: 1, connections: 64, durationSec, headers: { Host: host } });
    await load(2);
    const sampler = new UsageSampler(sluice.proc.pid, null);
    const window = { startUs: monotonicUs(), endUs: 0 };
    const result = await load(seconds);
    window.endUs = monotonicUs();
    const usage = sampler.stop();
    await sluice.proc.stop('SIGTERM', 15_000);
    const profile = profileDir === null ? null : profileSummary(profileDir, window);
    return { routes, checkout, requestsPerCpuSecond: usage.cpuPercent > 0 ? result.requestsPerSec / (usage.cpuPercent / 100) : Number.NaN, rssMb: usage.rssMb, errors: result.non2xx + result.socketErrors, convergence, profile };
  } finally {
    await sluice.proc.stop('SIGTERM', 15_000);
  }
}

function profileSummary(profileDir: string, window: { startUs: number; endUs: number }): string {
  const file = lastProfile(profileDir);
  return file === undefined ? 'no profile written' : formatSummary(summariseFile(file, 25, window));
}

interface Convergence extends Percentiles {
  max: number;
  times: number[];
  /** Each edit's CPU ms of Sluice's main thread and of all its threads (V8's compilers and GC helpers too), write → served. */
  cpu: { main: number; all: number }[];
}

/** CPU ns a process's main thread and all its threads have run, from /proc/<pid>/task/<tid>/schedstat (ns, not 10 ms ticks). */
function threadCpuNs(pid: number): { main: number; all: number } {
  let main = 0;
  let all = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let ns = 0;
    try {
      ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      continue; // the thread ended meanwhile
    }
    all += ns;
    if (tid === String(pid)) main = ns;
  }
  return { main, all };
}

/**
 * `edits` times: route r's document rewritten with a new exact path (the file written beside it and
 * renamed over it), then GET of that path (a new connection every millisecond or so) until the
 * backend answers it: wall ms from the rename to that answer. Before the edit no rule matches the path.
 */
async function converge(pid: number, port: number, file: string, documents: string[], documentOf: (r: number) => number, layout: Layout, routes: number, edits: number): Promise<Convergence> {
  const times: number[] = [];
  const cpu: { main: number; all: number }[] = [];
  for (let c = 1; c <= edits; c++) {
    // Apart, as edits by a person or a pipeline are: each one finds the process idle (the first too:
    // one made within 100 ms of the start's own run is coalesced as a burst, by design).
    await new Promise((resolve) => setTimeout(resolve, 200));
    const r = (c * 7919) % routes;
    documents[documentOf(r)] = stringify(httpRouteOf(r, layout, c));
    const { host, path } = changedPath(r, layout, c);
    writeFileSync(`${file}.next`, documents.join('---\n'));
    const before = threadCpuNs(pid);
    renameSync(`${file}.next`, file);
    const written = performance.now();
    for (;;) {
      const reply = await httpGet(port, path, { host }, 2000).catch(() => null);
      if (reply?.status === 200 && reply.body === BACKEND_BODY) break;
      if (performance.now() - written > 30_000) throw new Error(`edit ${c} (route-${r}, ${host}${path}) not served after 30 s (last: ${reply?.status ?? 'no answer'})`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    times.push(performance.now() - written);
    const after = threadCpuNs(pid);
    cpu.push({ main: (after.main - before.main) / 1e6, all: (after.all - before.all) / 1e6 });
  }
  return { ...percentiles(times), max: Math.max(...times), times, cpu };
}

async function endToEndSection(opts: Options, backendPort: number, out: (s?: string) => boolean): Promise<void> {
  const wrk = findExecutable('wrk');
  const nginx = findExecutable('nginx');
  if (opts.e2eDuration <= 0 && opts.converge <= 0) return;
  if (wrk === null || nginx === null) {
    out('end to end: skipped (needs wrk and nginx: apt-get install wrk nginx)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sluice-route-scale-'));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'backend.conf'), backendConf(dir, backendPort));
  const backend = new Proc('backend', [nginx, '-p', dir, '-e', join(dir, 'backend-error.log'), '-c', join(dir, 'backend.conf'), '-g', 'daemon off;']);
  try {
    await waitFor200(backend, backendPort, '/', 10_000);
    for (const layout of opts.layouts) {
      const results: EndToEnd[] = [];
      for (const routes of opts.routes) {
        // Rounds interleave the checkouts: before and after share the box's load.
        for (let round = 0; round < opts.rounds; round++) {
          for (const root of [null, ...opts.refs]) {
            process.stdout.write(`end to end: ${layout} ${routes} routes${root === null ? '' : ` (${basename(root)})`} ... `);
            results.push(await endToEnd(routes, layout, opts.e2eDuration, opts.converge, backendPort, dir, wrk, opts.cpuProf, root));
            out('done');
          }
        }
      }
      const base = results[0];
      out();
      out(`end to end, layout ${layout}: sluice run, wrk -c64 ${opts.e2eDuration}s (ratios against ${base.routes} routes, same run); ${opts.converge} manifest edits, file renamed in → served, wall ms`);
      out('routes  checkout  req/CPU-s  x cost per request  RSS MB  x RSS  RSS KiB/route over smallest  errors  converge p50 / p99 / max ms  first edits ms  first edits CPU ms main/all  CPU p50 main/all');
      for (const r of results) {
        const c = r.convergence;
        out(
          `${String(r.routes).padStart(6)}  ${r.checkout.padStart(8)}  ${fmt(r.requestsPerCpuSecond, 0).padStart(9)}  ${fmt(base.requestsPerCpuSecond / r.requestsPerCpuSecond, 2).padStart(18)}  ` +
            `${fmt(r.rssMb, 0).padStart(6)}  ${fmt(r.rssMb / base.rssMb, 2).padStart(5)}  ${fmt(r.routes === base.routes ? Number.NaN : ((r.rssMb - base.rssMb) * 1024) / (r.routes - base.routes), 2).padStart(27)}  ${String(r.errors).padStart(6)}  ` +
            `${(c ? `${fmt(c.p50)} / ${fmt(c.p99)} / ${fmt(c.max)}` : '-').padStart(27)}  ${(c ? c.times.slice(0, 3).map((t) => fmt(t, 0)).join(', ') : '-').padEnd(14)}  ${(c ? c.cpu.slice(0, 3).map((t) => `${fmt(t.main, 0)}/${fmt(t.all, 0)}`).join(', ') : '-').padEnd(28)}  ${c ? `${fmt(percentiles(c.cpu.map((t) => t.main)).p50, 0)}/${fmt(percentiles(c.cpu.map((t) => t.all)).p50, 0)}` : '-'}`,
        );
      }
      // Every edit, for what sets the p99 (one slow edit of 20 is the p99): wall ms (main-thread CPU ms).
      for (const r of results) if (r.convergence) out(`edits, ${r.checkout}: ${r.convergence.times.map((t, i) => `${fmt(t, 0)} (${fmt(r.convergence!.cpu[i]!.main, 0)})`).join(', ')}`);
      out();
      for (const r of results) if (r.profile !== null) out(`CPU profile of sluice run, ${layout} ${r.routes} routes, ${opts.e2eDuration > 0 ? 'under load' : 'during the manifest edits'}:\n${r.profile}\n`);
    }
  } finally {
    await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const [backendPort, listenPort] = await freePorts(2);
  const out = (s = ''): boolean => process.stdout.write(`${s}\n`);
  out(`sluice route-scale bench  ${new Date().toISOString()}  node ${process.version}`);
  out(`${RULES_PER_ROUTE} rules per HTTPRoute; one-route changes: ${opts.changes} per size; lookups: ${opts.lookups} per size`);
  for (const layout of opts.e2eOnly ? [] : opts.layouts) {
    const results: SizeResult[] = [];
    for (const routes of opts.routes) {
      process.stdout.write(`${layout} ${routes} routes ... `);
      const r = await measure(routes, layout, opts.changes, opts.lookups, backendPort, listenPort);
      results.push(r);
      out('done');
    }
    const base = results[0];
    out();
    out(`layout ${layout} (ratios against ${base.routes} routes, same run):`);
    out('(times are CPU time of this process: the machine is shared)');
    out('routes  rules   translate ms  compile+apply ms  full cycle ms  lookup ns  x lookup  heap/route KiB (IR + input / table)');
    for (const r of results) {
      out(
        `${String(r.routes).padStart(6)}  ${String(r.rules).padStart(6)}  ${fmt(r.translateMs).padStart(12)}  ${fmt(r.applyMs).padStart(16)}  ${fmt(r.translateMs + r.applyMs).padStart(13)}  ` +
          `${fmt(r.lookupNs, 0).padStart(9)}  ${fmt(r.lookupNs / base.lookupNs, 2).padStart(8)}  ${fmt(r.heapPerRouteBytes / 1024, 2).padStart(14)} (${fmt(r.irPerRouteBytes / 1024, 2)} / ${fmt((r.heapPerRouteBytes - r.irPerRouteBytes) / 1024, 2)})`,
      );
    }
    out();
    out(`one HTTPRoute changed, ${opts.changes} times per size: the Translator (incremental) then the dataplane's apply, CPU ms p50 / p99`);
    out('routes  translate() ms  Translator p50/p99  x cheaper  apply p50/p99  change p50/p99  x change vs smallest');
    for (const r of results) {
      const pair = (p: Percentiles) => `${fmt(p.p50)} / ${fmt(p.p99)}`;
      out(
        `${String(r.routes).padStart(6)}  ${fmt(r.freshChangeTranslateMs).padStart(14)}  ${pair(r.changeTranslate).padStart(18)}  ${fmt(r.freshChangeTranslateMs / r.changeTranslate.p50, 1).padStart(9)}  ` +
          `${pair(r.changeApply).padStart(13)}  ${pair(r.change).padStart(14)}  ${fmt(r.change.p50 / base.change.p50, 2).padStart(20)}`,
      );
    }
    out();
  }
  // The dataplane's side alone, full vs incremental, in process and with --workers 1 and 2.
  if (!opts.e2eOnly) await incrementalSection({ routes: opts.routes, layouts: opts.layouts, changes: opts.changes }, out);
  await endToEndSection(opts, backendPort, out);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    killAll();
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
