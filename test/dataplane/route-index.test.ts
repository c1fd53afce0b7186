// The path index of a virtual host's routes (dataplane/router/route-index.ts) must pick exactly the
// route the walk in table order picks: property tests over random tables and requests (fast-check),
// then the compiled table with thousands of routes through findRoute.

import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import type { HeaderMatch, PathMatch, RouteMatch } from '../../ir/types.ts';
import { compileRouteTable } from '../../dataplane/config/compile.ts';
import { DataplaneMetrics } from '../../dataplane/metrics.ts';
import { normalizeHost } from '../../dataplane/router/host.ts';
import { compileMatch, matches, type CompiledMatch, type MatchableRequest } from '../../dataplane/router/match.ts';
import { RouteIndex } from '../../dataplane/router/route-index.ts';
import { findRoute } from '../../dataplane/router/router.ts';
import { SecureContextCache } from '../../dataplane/tls/certificates.ts';
import { UpstreamPools } from '../../dataplane/upstream/pools.ts';
import { PickerStates } from '../../dataplane/upstream/weighted.ts';
import { exact, forwardTo, listener, prefix, regex, route, scope } from './support/ir.ts';

/** Fixed, so a failure names a case that replays; SLUICE_FUZZ_SEED explores others. */
const SEED = Number(process.env.SLUICE_FUZZ_SEED ?? 14_2026);

interface Entry {
  id: number;
  match: CompiledMatch;
}

/** The reference: the first route in table order whose match holds (the router before the index). */
function linear(entries: readonly Entry[], request: MatchableRequest): Entry | null {
  return entries.find((entry) => matches(entry.match, request)) ?? null;
}

// A small alphabet, so random prefixes, exact paths and requests share elements often.
const segment = fc.constantFrom('a', 'b', 'ab', 'a.b', '', '%61', 'A');
const pathString = fc.array(segment, { minLength: 0, maxLength: 4 }).map((segments) => `/${segments.join('/')}`);
const prefixString = fc.tuple(pathString, fc.constantFrom('', '/', '//')).map(([path, tail]) => path + tail);

const pathMatch: fc.Arbitrary<PathMatch> = fc.oneof(
  { weight: 3, arbitrary: prefixString.map((value) => ({ type: 'PathPrefix' as const, value })) },
  { weight: 3, arbitrary: pathString.map((value) => ({ type: 'Exact' as const, value })) },
  { weight: 1, arbitrary: fc.constantFrom('/a.*', '/(a|b)/b', '.*b', '/ab?', '(').map((value) => ({ type: 'RegularExpression' as const, value })) },
);

const headerMatch: fc.Arbitrary<HeaderMatch> = fc.record({ type: fc.constant('Exact' as const), name: fc.constantFrom('x-a', 'X-B'), value: fc.constantFrom('1', '2') });

const routeMatch: fc.Arbitrary<RouteMatch> = fc.record({
  path: pathMatch,
  headers: fc.array(headerMatch, { maxLength: 2 }),
  queryParams: fc.array(fc.record({ type: fc.constant('Exact' as const), name: fc.constant('q'), value: fc.constantFrom('1', '2') }), { maxLength: 1 }),
  method: fc.option(fc.constantFrom('GET', 'POST'), { nil: undefined }),
});

const request: fc.Arbitrary<MatchableRequest> = fc
  .record({
    path: fc.oneof({ weight: 8, arbitrary: fc.tuple(pathString, fc.constantFrom('', '/', '/c')).map(([p, tail]) => p + tail) }, { weight: 1, arbitrary: fc.constantFrom('*', '', '//', '/a//b') }),
    method: fc.constantFrom('GET', 'POST', 'PUT'),
    headers: fc.array(fc.tuple(fc.constantFrom('x-a', 'x-b'), fc.constantFrom('1', '2')), { maxLength: 3 }),
    query: fc.constantFrom('', 'q=1', 'q=2', 'q=2&q=1'),
  })
  .map(({ path, method, headers, query }) => ({ path, method, headers: headers.flat(), query, params: null }));

function compileEntries(matchesOf: RouteMatch[]): Entry[] {
  return matchesOf.map((match, id) => ({ id, match: compileMatch(match, []) }));
}

describe('RouteIndex', () => {
  it('picks the route the walk in table order picks, for random tables and requests', () => {
    fc.assert(
      fc.property(fc.array(routeMatch, { minLength: 0, maxLength: 40 }), fc.array(request, { minLength: 1, maxLength: 20 }), (table, requests) => {
        const entries = compileEntries(table);
        // -1: the index even for the smallest tables (the default walks those).
        const index = new RouteIndex(entries, -1);
        for (const r of requests) {
          expect(index.find({ ...r, params: null })?.id ?? null).toBe(linear(entries, { ...r, params: null })?.id ?? null);
        }
      }),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('gives the same answer below the walking threshold as above it', () => {
    fc.assert(
      fc.property(fc.array(routeMatch, { maxLength: 8 }), request, (table, r) => {
        const entries = compileEntries(table);
        expect(new RouteIndex(entries).find({ ...r })?.id ?? null).toBe(new RouteIndex(entries, -1).find({ ...r })?.id ?? null);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('keeps table order across lists: a regex listed first beats an exact path listed later', () => {
    const entries = compileEntries([
      { path: { type: 'RegularExpression', value: '/a.*' }, headers: [], queryParams: [] },
      { path: { type: 'Exact', value: '/a/b' }, headers: [], queryParams: [] },
      { path: { type: 'PathPrefix', value: '/a' }, headers: [], queryParams: [], method: 'POST' },
      { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
    ]);
    const index = new RouteIndex(entries, -1);
    const at = (path: string, method = 'GET'): number | null => index.find({ path, method, query: '', headers: [], params: null })?.id ?? null;
    expect(at('/a/b')).toBe(0);
    expect(at('/b', 'POST')).toBe(3);
    expect(at('/ab')).toBe(0);
    expect(at('/b')).toBe(3);
    // `/a` never matches `/ab` as a prefix, only element-wise.
    const prefixes = new RouteIndex(compileEntries([{ path: { type: 'PathPrefix', value: '/a/' }, headers: [], queryParams: [] }]), -1);
    expect(prefixes.find({ path: '/ab', method: 'GET', query: '', headers: [], params: null })).toBeNull();
    expect(prefixes.find({ path: '/a', method: 'GET', query: '', headers: [], params: null })?.id).toBe(0);
    expect(prefixes.find({ path: '/a/', method: 'GET', query: '', headers: [], params: null })?.id).toBe(0);
  });
});

describe('findRoute over a compiled table of 10 000 routes', () => {
  const pools = new UpstreamPools(1000, 1000);
  afterAll(() => pools.closeAll());

  it('selects by hostname and path as the spec orders them', () => {
    // One virtual host with 5 000 rules (exact and prefix paths, a method-specific rule ahead of
    // each prefix), and 5 000 more rules on hosts of their own.
    const shared = [];
    for (let i = 0; i < 2500; i++) {
      shared.push(route(`exact-${i}`, { path: exact(`/svc/${i}/health`) }, forwardTo()));
      shared.push(route(`post-${i}`, { path: prefix(`/svc/${i}`), method: 'POST' }, forwardTo()));
    }
    for (let i = 0; i < 2500; i++) shared.push(route(`prefix-${i}`, { path: prefix(`/svc/${i}`) }, forwardTo()));
    shared.push(route('regex', { path: regex('/re/[0-9]+') }, forwardTo()));
    shared.push(route('root', { path: prefix('/') }, forwardTo()));
    const hosts: Array<[string, ReturnType<typeof route>[]]> = [['shared.example', shared]];
    for (let i = 0; i < 5000; i++) hosts.push([`h${i}.example`, [route(`host-${i}`, { path: prefix('/') }, forwardTo())]]);
    const table = compileRouteTable('scale', { listeners: [listener(80, [scope('http', null, hosts)])], backends: {} }, {
      pools,
      certificates: new SecureContextCache(),
      pickerStates: new PickerStates().begin(),
      metrics: new DataplaneMetrics(new Registry()),
    });
    const at = (host: string, path: string, method = 'GET'): string | null => {
      const chosen = findRoute(table.listeners[0], normalizeHost(host), { path, method, query: '', headers: [], params: null });
      return chosen === null ? null : chosen.source.split('/')[1];
    };
    expect(at('shared.example', '/svc/1234/health')).toBe('exact-1234');
    expect(at('shared.example', '/svc/1234/health', 'POST')).toBe('exact-1234');
    expect(at('shared.example', '/svc/1234/other', 'POST')).toBe('post-1234');
    expect(at('shared.example', '/svc/1234/other')).toBe('prefix-1234');
    expect(at('shared.example', '/svc/12345')).toBe('root');
    expect(at('shared.example', '/re/77')).toBe('regex');
    expect(at('shared.example', '/re/x')).toBe('root');
    expect(at('H4999.example:8080', '/anything')).toBe('host-4999');
    expect(at('h5000.example', '/anything')).toBeNull();
  });
});
