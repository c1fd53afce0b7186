// The incremental part of `npm run bench:routes` (issue #14), also runnable alone:
//   node test/bench/route-scale-incremental.ts [--routes 10,1000,10000] [--changes 30]
// What a version costs the dataplane when the IR keeps the objects of unchanged inputs (the
// translator's structural sharing; here the IR is built and edited the same way, copy on write
// along listener → scope → virtual host → route), against the same change with every object new
// (identity lost: what a JSON or structured-clone copy gives, and what every apply cost before):
//   - in process (one Dataplane): first apply, one rule changed, one backend's endpoints changed,
//     and the one-rule change with every object new; CPU ms of this process, p50/p99;
//   - --workers 1 and 2 (WorkerPool, real threads, deltas as cmd/workers.ts sends them): wall ms
//     until every worker applied the version, and CPU ms of the process (all threads).
// Ratios are against the change with every object new, measured in the same run.

import { parseArgs } from 'node:util';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Backend, HttpIR, Route } from '../../ir/types.ts';
import { Dataplane } from '../../dataplane/dataplane.ts';
import { WorkerMetricsRegistry, WorkerPool } from '../../cmd/workers.ts';
import { freePorts } from './processes.ts';

const RULES_PER_ROUTE = 5;
const BACKENDS = 10;

type Layout = 'hosts' | 'paths';

interface Target {
  apply(version: string, http: HttpIR): Promise<unknown>;
  close(): Promise<void>;
}

/** `routes` HTTPRoutes of RULES_PER_ROUTE rules, as translate() lays them out (one virtual host per hostname). */
export function buildIR(routes: number, layout: Layout, port: number): HttpIR {
  const backends: Record<string, Backend> = {};
  for (let s = 0; s < BACKENDS; s++) {
    const name = `service/default/svc-${s}/port/80`;
    backends[name] = { name, source: `default/svc-${s}:80`, appProtocol: 'http', endpoints: [{ address: '127.0.0.1', port: 9 }] };
  }
  const rules = (r: number): Route[] => {
    const base = layout === 'hosts' ? '/api' : `/t${r}`;
    const backend = `service/default/svc-${r % BACKENDS}/port/80`;
    const rule = (i: number, path: Route['match']['path'], headers: Route['match']['headers'] = []): Route => ({
      name: `httproute/default/route-${r}/rule/${i}/match/0`,
      source: `default/route-${r}`,
      origin: { kind: 'HTTPRoute', namespace: 'default', name: `route-${r}`, ruleIndex: i },
      match: { path, headers, queryParams: [] },
      filters: [],
      action: { type: 'Forward', backends: [{ backend, weight: 1, filters: [] }] },
    });
    return [
      rule(0, { type: 'Exact', value: `${base}/health` }),
      rule(1, { type: 'PathPrefix', value: `${base}/v1/users` }),
      rule(2, { type: 'PathPrefix', value: `${base}/v1/orders` }, [{ type: 'Exact', name: 'x-tenant', value: 'gold' }]),
      rule(3, { type: 'PathPrefix', value: `${base}/v1/orders` }),
      rule(4, { type: 'PathPrefix', value: `${base}/v2` }),
    ];
  };
  const scopeName = 'gateway/default/scale/listener/http';
  const virtualHosts =
    layout === 'hosts'
      ? Array.from({ length: routes }, (_, r) => ({ name: `${scopeName}/host/r${r}.scale.test`, hostname: `r${r}.scale.test`, routes: rules(r) }))
      : [{ name: `${scopeName}/host/scale.test`, hostname: 'scale.test', routes: Array.from({ length: routes }, (_, r) => rules(r)).flat() }];
  return {
    listeners: [
      {
        name: `127.0.0.1:${port}`,
        address: '127.0.0.1',
        port,
        protocol: 'HTTP',
        scopes: [{ name: scopeName, origin: { kind: 'Gateway', namespace: 'default', name: 'scale', sectionName: 'http' }, hostname: null, virtualHosts }],
      },
    ],
    backends,
  };
}

/** Route `r`'s first rule gets a new path: new objects for it and its virtual host, scope and listener only. */
export function changeRule(ir: HttpIR, layout: Layout, r: number, generation: number): HttpIR {
  const listener = ir.listeners[0];
  const scope = listener.scopes[0];
  const v = layout === 'hosts' ? r : 0;
  const position = layout === 'hosts' ? 0 : r * RULES_PER_ROUTE;
  const virtualHost = scope.virtualHosts[v];
  const old = virtualHost.routes[position];
  const rule: Route = { ...old, match: { ...old.match, path: { type: 'Exact', value: `${layout === 'hosts' ? '/api' : `/t${r}`}/health-g${generation}` } } };
  const routes = virtualHost.routes.slice();
  routes[position] = rule;
  const virtualHosts = scope.virtualHosts.slice();
  virtualHosts[v] = { ...virtualHost, routes };
  return { ...ir, listeners: [{ ...listener, scopes: [{ ...scope, virtualHosts }] }] };
}

/** One backend's endpoints changed (EndpointSlice churn): a new Backend object, nothing else. */
export function changeEndpoints(ir: HttpIR, s: number, generation: number): HttpIR {
  const name = `service/default/svc-${s % BACKENDS}/port/80`;
  const endpoints = Array.from({ length: 1 + (generation % 3) }, (_, i) => ({ address: `127.0.0.${1 + i}`, port: 9 }));
  return { ...ir, backends: { ...ir.backends, [name]: { ...ir.backends[name], endpoints } } };
}

function cpuMs(from: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

interface Timed {
  cpu: number[];
  wall: number[];
}

async function timed(target: Target, versions: Array<[string, HttpIR]>): Promise<Timed> {
  const out: Timed = { cpu: [], wall: [] };
  for (const [version, http] of versions) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    await target.apply(version, http);
    out.wall.push(performance.now() - start);
    out.cpu.push(cpuMs(cpu));
  }
  return out;
}

interface Row {
  where: string;
  routes: number;
  full: Timed;
  rule: Timed;
  endpoints: Timed;
  identityLost: Timed;
}

async function measure(where: string, make: () => Target, routes: number, layout: Layout, changes: number, port: number): Promise<Row> {
  const target = make();
  try {
    let ir = buildIR(routes, layout, port);
    const full = await timed(target, [['v0', ir]]);
    const ruleVersions: Array<[string, HttpIR]> = [];
    for (let c = 0; c < changes; c++) ruleVersions.push([`r${c}`, (ir = changeRule(ir, layout, (c * 7919) % routes, c))]);
    const rule = await timed(target, ruleVersions);
    const endpointVersions: Array<[string, HttpIR]> = [];
    for (let c = 0; c < changes; c++) endpointVersions.push([`e${c}`, (ir = changeEndpoints(ir, c, c))]);
    const endpoints = await timed(target, endpointVersions);
    const lostVersions: Array<[string, HttpIR]> = [];
    for (let c = 0; c < Math.min(5, changes); c++) lostVersions.push([`l${c}`, (ir = structuredClone(changeRule(ir, layout, (c * 104729) % routes, changes + c)))]);
    const identityLost = await timed(target, lostVersions);
    return { where, routes, full, rule, endpoints, identityLost };
  } finally {
    await target.close();
  }
}

function inProcess(): Target {
  const dataplane = new Dataplane({ registry: new Registry(), logger: pino({ level: 'silent' }) });
  return { apply: (version, http) => dataplane.apply(version, http), close: () => dataplane.close() };
}

function workers(count: number): Target {
  const pool = new WorkerPool({
    count,
    logger: pino({ level: 'silent' }),
    registry: new WorkerMetricsRegistry(),
    onFlows: () => undefined,
    init: { logLevel: 'silent', portOffset: 0, redirectPortOffset: 0, flows: null, rateLimit: { redisTimeoutMs: 50, replicas: 1, maxLocalKeys: 1000 } },
  });
  return { apply: (version, http) => pool.apply(version, http), close: () => pool.close() };
}

const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const p50p99 = (values: number[]): string => `${fmt(percentile(values, 50))} / ${fmt(percentile(values, 99))}`;

export async function incrementalSection(options: { routes: number[]; layouts: Layout[]; changes: number }, out: (s?: string) => void): Promise<void> {
  const [port] = await freePorts(1);
  for (const layout of options.layouts) {
    const rows: Row[] = [];
    for (const routes of options.routes) {
      rows.push(await measure('in process', inProcess, routes, layout, options.changes, port));
      for (const count of [1, 2]) rows.push(await measure(`workers ${count}`, () => workers(count), routes, layout, options.changes, port));
    }
    out();
    out(`incremental apply, layout ${layout}: ${RULES_PER_ROUTE} rules per route, ${options.changes} changes per kind (x: against the same change with every object new, same run)`);
    out('in process: CPU ms of this process; workers: wall ms until every worker applied, and CPU ms of all threads (primary + workers)');
    out('where        routes  first apply  one rule p50/p99   x     endpoints p50/p99   x      all new p50  | CPU: one rule p50  all new p50');
    for (const r of rows) {
      const workersRow = r.where !== 'in process';
      const pick = (t: Timed): number[] => (workersRow ? t.wall : t.cpu);
      const lost = percentile(pick(r.identityLost), 50);
      out(
        `${r.where.padEnd(11)}  ${String(r.routes).padStart(6)}  ${fmt(pick(r.full)[0]).padStart(11)}  ${p50p99(pick(r.rule)).padStart(15)}  ${fmt(percentile(pick(r.rule), 50) / lost, 3).padStart(5)}  ` +
          `${p50p99(pick(r.endpoints)).padStart(17)}  ${fmt(percentile(pick(r.endpoints), 50) / lost, 3).padStart(5)}  ${fmt(lost).padStart(11)}  | ` +
          (workersRow ? `${fmt(percentile(r.rule.cpu, 50)).padStart(17)}  ${fmt(percentile(r.identityLost.cpu, 50)).padStart(11)}` : ''),
      );
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { routes: { type: 'string', default: '10,1000,10000' }, layouts: { type: 'string', default: 'hosts,paths' }, changes: { type: 'string', default: '30' } } });
  incrementalSection({ routes: values.routes.split(',').map(Number), layouts: values.layouts.split(',') as Layout[], changes: Number(values.changes) }, (s = '') => process.stdout.write(`${s}\n`)).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}
