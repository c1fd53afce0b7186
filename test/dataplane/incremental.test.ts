// The incremental compile (RouteTableCompiler, dataplane/config/compile.ts) must serve exactly what a
// compile from scratch of the same IR serves. Property: random sequences of IR edits, made the way the
// translator makes them (a changed part is a new object along its path, everything else keeps its
// identity), compiled one after the other by one compiler → after every step, the table equals a
// fresh compile of that step's IR (describeRouteTable: matchers, pickers, weights, endpoints, filters,
// mirrors; problems as a set), findRoute picks the same route for random requests, and session plans
// know the same endpoints. Then: the property catches a cache that is wrong on purpose, and an
// endpoint-only change recompiles no route.

import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import type { Backend, Endpoint, HttpIR, ListenerScope, Route, VirtualHost } from '../../ir/types.ts';
import { compileRouteTable, RouteTableCompiler } from '../../dataplane/config/compile.ts';
import { describeRouteTable } from '../../dataplane/config/describe.ts';
import type { CompiledRoute, RouteTable } from '../../dataplane/config/route-table.ts';
import { DataplaneMetrics } from '../../dataplane/metrics.ts';
import { normalizeHost } from '../../dataplane/router/host.ts';
import type { MatchableRequest } from '../../dataplane/router/match.ts';
import { findRoute } from '../../dataplane/router/router.ts';
import { SecureContextCache } from '../../dataplane/tls/certificates.ts';
import { BackendTarget } from '../../dataplane/upstream/backend.ts';
import { UpstreamPools } from '../../dataplane/upstream/pools.ts';
import { newSessionKey } from '../../dataplane/upstream/session.ts';
import { PickerStates } from '../../dataplane/upstream/weighted.ts';
import { exact, forwardTo, listener, prefix, regex, requestHeaders, route, scope, vhost, weighted } from './support/ir.ts';

/** Fixed, so a failure names a case that replays; SLUICE_FUZZ_SEED explores others. */
const SEED = Number(process.env.SLUICE_FUZZ_SEED ?? 14_2027);
const RUNS = 150;

const pools = new UpstreamPools(1000, 1000);
afterAll(() => void pools.closeAll());
const sessionKey = newSessionKey();
const certificates = new SecureContextCache();

// ------------------------------------------------------------------ the IR and its edits

const HOSTS = ['*', 'x.test', '*.x.test', 'y.test'];
const BACKENDS = ['b0', 'b1', 'b2', 'b3', 'b4'];

function endpoints(seed: number): Endpoint[] {
  const count = seed % 3; // 0, 1 or 2 endpoints: none ready is a case too
  return Array.from({ length: count }, (_, i) => ({ address: `10.0.${seed % 7}.${i + 1}`, port: 8000 + (seed % 5) }));
}

function backendOf(name: string, seed: number): Backend {
  return { name, source: `default/${name}:80`, appProtocol: seed % 4 === 3 ? 'h2c' : 'http', endpoints: endpoints(seed) };
}

/** A rule from a number: its path match, backends and weights, filters, action kind all vary with it. */
function routeOf(id: number, seed: number): Route {
  const paths = [prefix('/'), prefix('/a'), prefix('/a/b'), exact('/a'), exact('/b'), regex('/(a|b)/c'), prefix('/b')];
  const path = paths[seed % paths.length];
  const backend = (k: number): string | null => (k === 5 ? null : `b${k}`); // b5 is never in the IR, null is an invalid reference
  const headers = seed % 5 === 4 ? [{ type: 'Exact' as const, name: 'x-v', value: '1' }] : [];
  if (seed % 11 === 10) return route(`r${id}`, { path, headers }, { type: 'Redirect', statusCode: 301, hostname: 'moved.test' });
  const action =
    seed % 3 === 0
      ? forwardTo(weighted(backend(seed % 6), 1 + (seed % 3)), weighted(backend((seed >> 2) % 6), seed % 4))
      : forwardTo(weighted(backend(seed % 6), 1, seed % 7 === 1 ? [requestHeaders({ set: [{ name: 'x-b', value: String(seed) }] })] : []));
  const filters = seed % 13 === 12 ? [{ type: 'RequestMirror' as const, backend: backend((seed >> 3) % 6), percent: 100 }] : [];
  const rule = route(`r${id}`, { path, headers }, action, filters);
  return seed % 9 === 8 ? { ...rule, sessionPersistence: { type: 'Cookie', name: 's', scope: `r${id}` } } : rule;
}

function initialIR(seed: number): HttpIR {
  let id = 0;
  const vhosts = (count: number): Array<[string, Route[]]> =>
    HOSTS.slice(0, count).map((host, h) => [host, Array.from({ length: (seed + h) % 4 }, () => routeOf(id++, seed + id * 7))]);
  return {
    listeners: [listener(80, [scope('http', null, vhosts(3)), scope('named', 'y.test', vhosts(2))]), listener(81, [scope('other', null, vhosts(4))])],
    backends: Object.fromEntries(BACKENDS.slice(0, 4).map((name, i) => [name, backendOf(name, seed + i)])),
  };
}

type Edit = { kind: number; a: number; b: number; c: number };

/** Copy on write along listener → scope → virtual host: the rest of the IR keeps its objects. */
function withVirtualHost(ir: HttpIR, a: number, b: number, change: (vh: VirtualHost, scope: ListenerScope) => VirtualHost | null): HttpIR {
  const l = a % ir.listeners.length;
  const target = ir.listeners[l];
  if (target.scopes.length === 0) return ir;
  const s = b % target.scopes.length;
  const sc = target.scopes[s];
  if (sc.virtualHosts.length === 0) return ir;
  const v = (a + b) % sc.virtualHosts.length;
  const changed = change(sc.virtualHosts[v], sc);
  const virtualHosts = changed === null ? sc.virtualHosts.filter((_, i) => i !== v) : sc.virtualHosts.map((vh, i) => (i === v ? changed : vh));
  const scopes = target.scopes.map((x, i) => (i === s ? { ...sc, virtualHosts } : x));
  return { ...ir, listeners: ir.listeners.map((x, i) => (i === l ? { ...target, scopes } : x)) };
}

let nextId = 1000;

function edit(ir: HttpIR, e: Edit): HttpIR {
  switch (e.kind % 12) {
    case 0: // a rule added
      return withVirtualHost(ir, e.a, e.b, (vh) => {
        const routes = [...vh.routes];
        routes.splice(e.c % (routes.length + 1), 0, routeOf(nextId++, e.c));
        return { ...vh, routes };
      });
    case 1: // a rule removed
      return withVirtualHost(ir, e.a, e.b, (vh) => ({ ...vh, routes: vh.routes.filter((_, i) => i !== e.c % Math.max(1, vh.routes.length)) }));
    case 2: // a rule changed (same name, new object)
      return withVirtualHost(ir, e.a, e.b, (vh) => {
        if (vh.routes.length === 0) return vh;
        const i = e.c % vh.routes.length;
        const changed = routeOf(0, e.c + 1);
        return { ...vh, routes: vh.routes.map((r, k) => (k === i ? { ...changed, name: r.name, source: r.source, origin: r.origin } : r)) };
      });
    case 3: // endpoints of a backend changed: EndpointSlice churn
    case 4: {
      const names = Object.keys(ir.backends);
      if (names.length === 0) return ir;
      const name = names[e.a % names.length];
      const old = ir.backends[name];
      return { ...ir, backends: { ...ir.backends, [name]: { ...old, endpoints: endpoints(e.b) } } };
    }
    case 5: {
      // a backend added, removed or reshaped (appProtocol, metric label)
      const name = BACKENDS[e.a % BACKENDS.length];
      const backends = { ...ir.backends };
      if (e.b % 3 === 0) delete backends[name];
      else if (e.b % 3 === 1) backends[name] = backendOf(name, e.c);
      else if (backends[name] !== undefined) backends[name] = { ...backends[name], source: `default/${name}:${e.c % 3}` };
      return { ...ir, backends };
    }
    case 6: // a rule moved to another virtual host, the same object (an HTTPRoute's hostname edited)
    {
      let moved: Route | undefined;
      const without = withVirtualHost(ir, e.a, e.b, (vh) => {
        moved = vh.routes[e.c % Math.max(1, vh.routes.length)];
        return moved === undefined ? vh : { ...vh, routes: vh.routes.filter((r) => r !== moved) };
      });
      if (moved === undefined) return ir;
      const route = moved;
      return withVirtualHost(without, e.b, e.c, (vh) => (vh.routes.some((r) => r.name === route.name) ? vh : { ...vh, routes: [route, ...vh.routes] }));
    }
    case 7: // a virtual host removed
      return withVirtualHost(ir, e.a, e.b, () => null);
    case 8: {
      // a virtual host added to a scope
      const l = e.a % ir.listeners.length;
      const target = ir.listeners[l];
      const s = e.b % Math.max(1, target.scopes.length);
      const sc = target.scopes[s];
      if (sc === undefined) return ir;
      const host = HOSTS[e.c % HOSTS.length];
      if (sc.virtualHosts.some((vh) => vh.hostname === host)) return ir;
      const virtualHosts = [...sc.virtualHosts, vhost(sc.name, host, [routeOf(nextId++, e.c)])];
      return { ...ir, listeners: ir.listeners.map((x, i) => (i === l ? { ...target, scopes: target.scopes.map((y, k) => (k === s ? { ...sc, virtualHosts } : y)) } : x)) };
    }
    case 9: {
      // a listener's scope hostname changed (a new scope object, the same virtual hosts)
      const l = e.a % ir.listeners.length;
      const target = ir.listeners[l];
      const s = e.b % Math.max(1, target.scopes.length);
      if (target.scopes[s] === undefined) return ir;
      const hostname = [null, 'x.test', '*.x.test'][e.c % 3];
      return { ...ir, listeners: ir.listeners.map((x, i) => (i === l ? { ...target, scopes: target.scopes.map((y, k) => (k === s ? { ...y, hostname } : y)) } : x)) };
    }
    case 10: // nothing changed: a new version made of the same objects
      return { ...ir };
    default: // every object new (a dataplane that received the IR as JSON): identity says nothing
      return structuredClone(ir);
  }
}

const editArb: fc.Arbitrary<Edit> = fc.record({ kind: fc.nat(23), a: fc.nat(50), b: fc.nat(50), c: fc.nat(50) });

// ------------------------------------------------------------------ compiling and comparing

function context(pickerStates: PickerStates, metrics: DataplaneMetrics) {
  return { pools, certificates, pickerStates: pickerStates.begin(), metrics, sessionKey };
}

/** One compiler across versions, as the Dataplane keeps it. */
class Incremental {
  private readonly compiler = new RouteTableCompiler();
  private readonly pickerStates = new PickerStates();
  readonly registry = new Registry();
  private readonly metrics = new DataplaneMetrics(this.registry);

  apply(version: string, http: HttpIR): RouteTable {
    const ctx = context(this.pickerStates, this.metrics);
    const result = this.compiler.compile(version, http, ctx);
    result.commit();
    this.pickerStates.commit(ctx.pickerStates);
    this.metrics.versionApplied(version);
    return result.table;
  }
}

function fresh(version: string, http: HttpIR): RouteTable {
  return compileRouteTable(version, http, context(new PickerStates(), new DataplaneMetrics(new Registry())));
}

/** The description with problems as a sorted list: their order is the compile's walk, not meaning. */
function described(table: RouteTable): Record<string, unknown> {
  const out = describeRouteTable(table);
  return { ...out, problems: [...(out.problems as string[])].sort() };
}

/** What a request gets: the route, its backends and weights, the endpoints each serves, the session endpoint ids. */
function answer(table: RouteTable, host: string, request: MatchableRequest): unknown[] {
  return table.listeners.map((listener) => {
    const found = findRoute(listener, normalizeHost(host), { ...request, params: null });
    return found === null ? null : routeAnswer(found);
  });
}

function routeAnswer(found: CompiledRoute): unknown {
  const action = found.action;
  if (action.type !== 'Forward') return { name: found.name, type: action.type };
  const session = action.session as unknown as { byId: Map<string, unknown> } | null;
  return {
    name: found.name,
    backends: action.picker?.items.map((choice, i) => [choice.backend?.name ?? null, action.picker!.weights[i], choice.backend?.endpoints.map((e) => e.key) ?? null]) ?? null,
    session: session === null ? null : [...session.byId.keys()].sort(),
  };
}

const REQUESTS = ['/', '/a', '/a/b', '/a/b/c', '/b', '/b/c', '/c'].flatMap((path) =>
  ['x.test', 'z.x.test', 'y.test', 'other.test'].map((host) => ({ host, request: { method: 'GET', path, query: '', headers: ['x-v', '1'], params: null } as MatchableRequest })),
);

/** Runs the edits; returns the first step where incremental and fresh disagree, or null. */
function firstDifference(seed: number, edits: Edit[]): string | null {
  let ir = initialIR(seed);
  const incremental = new Incremental();
  for (let step = 0; step <= edits.length; step++) {
    if (step > 0) ir = edit(ir, edits[step - 1]);
    const version = `v${step}`;
    const got = incremental.apply(version, ir);
    const want = fresh(version, ir);
    const a = JSON.stringify(described(got));
    const b = JSON.stringify(described(want));
    if (a !== b) return `step ${step}: tables differ\nincremental ${a}\nfresh       ${b}`;
    for (const { host, request } of REQUESTS) {
      const x = JSON.stringify(answer(got, host, request));
      const y = JSON.stringify(answer(want, host, request));
      if (x !== y) return `step ${step}: ${host}${request.path} → incremental ${x}, fresh ${y}`;
    }
  }
  return null;
}

const property = fc.property(fc.nat(1000), fc.array(editArb, { minLength: 1, maxLength: 25 }), (seed, edits) => {
  const difference = firstDifference(seed, edits);
  if (difference !== null) throw new Error(difference);
});

describe('incremental compile', () => {
  it('serves what a compile from scratch serves, after every edit of random edit sequences', () => {
    fc.assert(property, { seed: SEED, numRuns: RUNS });
  });

  describe('with a cache that is wrong on purpose', () => {
    const replace = Object.getOwnPropertyDescriptor(BackendTarget.prototype, 'replaceEndpoints')!;
    afterEach(() => {
      Object.defineProperty(BackendTarget.prototype, 'replaceEndpoints', replace);
    });

    it('finds the difference: kept backends that never take their new endpoints', () => {
      Object.defineProperty(BackendTarget.prototype, 'replaceEndpoints', { ...replace, value: () => undefined });
      const result = fc.check(property, { seed: SEED, numRuns: RUNS });
      expect(result.failed).toBe(true);
      expect(String(result.errorInstance)).toMatch(/differ|→/);
    });
  });

  it('recompiles no route when only endpoints change, and serves the new endpoints', () => {
    const r1 = route('one', { path: prefix('/') }, forwardTo('b0'));
    const r2 = route('two', { path: prefix('/two') }, forwardTo(weighted('b0', 1), weighted('b1', 3)));
    const ir: HttpIR = { listeners: [listener(80, [scope('http', null, [['*', [r2, r1]]])])], backends: { b0: backendOf('b0', 1), b1: backendOf('b1', 2) } };
    const incremental = new Incremental();
    const before = incremental.apply('v1', ir);
    const churned: HttpIR = { ...ir, backends: { ...ir.backends, b0: { ...ir.backends.b0, endpoints: [{ address: '10.9.9.9', port: 9000 }, { address: '10.9.9.8', port: 9000 }] } } };
    const after = incremental.apply('v2', churned);

    const request: MatchableRequest = { method: 'GET', path: '/x', query: '', headers: [], params: null };
    const routeBefore = findRoute(before.listeners[0], 'any', request);
    const routeAfter = findRoute(after.listeners[0], 'any', request);
    // The same compiled objects all the way up: the listener table itself is the one already served.
    expect(after.listeners[0]).toBe(before.listeners[0]);
    expect(routeAfter).toBe(routeBefore);
    expect(routeAnswer(routeAfter!)).toEqual({ name: r1.name, backends: [['b0', 1, ['10.9.9.9:9000', '10.9.9.8:9000']]], session: null });
    expect(described(after)).toEqual({ ...described(fresh('v2', churned)) });
  });

  it('recompiles only the changed rule: the others keep their compiled objects', () => {
    const rules = Array.from({ length: 50 }, (_, i) => route(`r${i}`, { path: prefix(`/p${i}`) }, forwardTo(`b${i % 4}`)));
    const ir: HttpIR = { listeners: [listener(80, [scope('http', null, [['*', rules]])])], backends: Object.fromEntries(BACKENDS.slice(0, 4).map((n, i) => [n, backendOf(n, i + 1)])) };
    const incremental = new Incremental();
    const before = incremental.apply('v1', ir);
    const changed = withVirtualHost(ir, 0, 0, (vh) => ({ ...vh, routes: vh.routes.map((r, i) => (i === 7 ? { ...r, match: { ...r.match, path: prefix('/changed') } } : r)) }));
    const after = incremental.apply('v2', changed);
    const routesBefore = before.listeners[0].scopes.find('any')!.virtualHosts.find('any')!.routes;
    const routesAfter = after.listeners[0].scopes.find('any')!.virtualHosts.find('any')!.routes;
    expect(routesAfter.filter((r, i) => r !== routesBefore[i]).map((r) => r.name)).toEqual([rules[7].name]);
    const request: MatchableRequest = { method: 'GET', path: '/changed/x', query: '', headers: [], params: null };
    expect(findRoute(after.listeners[0], 'any', request)?.name).toBe(rules[7].name);
    expect(findRoute(after.listeners[0], 'any', { ...request, path: '/p7' })).toBeNull();
  });

  it('keeps the per-backend metric series of the routes it reuses, and drops those of removed ones', async () => {
    const kept = route('kept', { path: prefix('/kept') }, forwardTo('b0'));
    const gone = route('gone', { path: prefix('/gone') }, forwardTo('b1'));
    const ir: HttpIR = { listeners: [listener(80, [scope('http', null, [['*', [kept, gone]]])])], backends: { b0: backendOf('b0', 1), b1: backendOf('b1', 1) } };
    const incremental = new Incremental();
    const table = incremental.apply('v1', ir);
    for (const path of ['/kept', '/gone']) {
      const found = findRoute(table.listeners[0], 'any', { method: 'GET', path, query: '', headers: [], params: null });
      if (found?.action.type !== 'Forward') throw new Error(`no forward for ${path}`);
      found.action.picker!.items[0].metrics.record(200, performance.now());
    }
    incremental.apply('v2', withVirtualHost(ir, 0, 0, (vh) => ({ ...vh, routes: [kept] })));
    const series = (await incremental.registry.getSingleMetric('sluice_backend_requests_total')!.get()).values.map((v) => v.labels.route);
    expect(series).toEqual(['default/kept']);
  });
});
