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
import { MAX_OVERLAY_KEYS, RouteIndex } from '../../dataplane/router/route-index.ts';
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

/** One edit of a table: what a route change does to a virtual host's sorted rules. */
type Edit =
  | { kind: 'insert'; at: number; match: RouteMatch }
  | { kind: 'remove'; at: number }
  | { kind: 'replace'; at: number; match: RouteMatch }
  | { kind: 'move'; at: number; to: number }
  | { kind: 'recompile'; at: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), match: routeMatch }),
  fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), match: routeMatch }),
  fc.record({ kind: fc.constant('move' as const), at: fc.nat(), to: fc.nat() }),
  // The same match in a new compiled route (its backends changed): the index must hand out the new one.
  fc.record({ kind: fc.constant('recompile' as const), at: fc.nat() }),
);

let nextId = 1_000_000;

function applyEdit(entries: readonly Entry[], e: Edit): Entry[] {
  const next = [...entries];
  const at = entries.length === 0 ? 0 : e.at % entries.length;
  if (e.kind === 'insert') next.splice(e.at % (entries.length + 1), 0, { id: nextId++, match: compileMatch(e.match, []) });
  else if (entries.length === 0) return next;
  else if (e.kind === 'remove') next.splice(at, 1);
  else if (e.kind === 'replace') next[at] = { id: nextId++, match: compileMatch(e.match, []) };
  else if (e.kind === 'recompile') next[at] = { id: nextId++, match: entries[at].match };
  else next.splice(e.to % entries.length, 0, ...next.splice(at, 1));
  return next;
}

describe('RouteIndex.derive (the index of a changed virtual host, from the previous one)', () => {
  it('answers as a fresh index and the walk in table order, over random edit sequences', () => {
    fc.assert(
      fc.property(fc.array(routeMatch, { maxLength: 60 }), fc.array(edit, { minLength: 1, maxLength: 25 }), fc.array(request, { minLength: 1, maxLength: 12 }), (table, edits, requests) => {
        let entries = compileEntries(table);
        let index = new RouteIndex(entries, -1);
        for (const e of edits) {
          entries = applyEdit(entries, e);
          index = index.derive(entries);
          const fresh = new RouteIndex(entries, -1);
          for (const r of requests) {
            const expected = linear(entries, { ...r, params: null });
            expect(index.find({ ...r, params: null })).toBe(expected);
            expect(fresh.find({ ...r, params: null })).toBe(expected);
          }
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('touches only the changed keys of a long table, and is rebuilt once too many have changed', () => {
    let entries: Entry[] = [];
    for (let i = 0; i < 2000; i++) entries.push({ id: i, match: compileMatch({ path: { type: i % 2 === 0 ? 'Exact' : 'PathPrefix', value: `/t${i}/v1` }, headers: [], queryParams: [] }, []) });
    let index = new RouteIndex(entries);
    const at = (path: string): number | null => index.find({ path, method: 'GET', query: '', headers: [], params: null })?.id ?? null;
    // Rule 10 re-sorted to the end with a new path: two keys changed (its old and its new path).
    entries = [...entries.slice(0, 10), ...entries.slice(11), { id: 5000, match: compileMatch({ path: { type: 'Exact', value: '/t10/v2' }, headers: [], queryParams: [] }, []) }];
    index = index.derive(entries);
    expect(index.changedKeys).toBe(2);
    expect(at('/t10/v1')).toBeNull();
    expect(at('/t10/v2')).toBe(5000);
    expect(at('/t11/v1/x')).toBe(11);
    // A rule sorted first (before every kept one) is derived too: a fresh index leaves room there.
    expect(index.derive([{ id: 7000, match: compileMatch({ path: { type: 'Exact', value: '/first' }, headers: [], queryParams: [] }, []) }, ...entries]).changedKeys).toBe(3);
    // Rules added again and again at one place: its neighbours are renumbered, not the whole index.
    for (let added = 0; added < 20; added++) {
      entries = [...entries.slice(0, 500), { id: 6000 + added, match: compileMatch({ path: { type: 'Exact', value: `/a${added}` }, headers: [], queryParams: [] }, []) }, ...entries.slice(500)];
      const keys = index.changedKeys;
      index = index.derive(entries);
      expect(index.changedKeys).toBeGreaterThan(keys);
      expect(at(`/a${added}`)).toBe(6000 + added);
    }
    expect(at('/t498/v1')).toBe(498);
    expect(at('/t501/v1/x')).toBe(501);
    for (let edit = 0; edit < 300; edit++) {
      const i = 1 + 2 * ((edit * 37) % 900);
      entries = entries.map((entry, p) => (p === i ? { id: 10_000 + edit, match: compileMatch({ path: { type: 'PathPrefix', value: `/e${edit}` }, headers: [], queryParams: [] }, []) } : entry));
      index = index.derive(entries);
      expect(index.changedKeys).toBeLessThanOrEqual(MAX_OVERLAY_KEYS);
      expect(at(`/e${edit}/x`)).toBe(10_000 + edit);
    }
    expect(index.changedKeys).toBeLessThan(2 * 300);
    for (let p = 0; p < entries.length; p += 97) {
      const path = entries[p].match.path;
      if (path.type === 'Exact') expect(at(path.value)).toBe(entries[p].id);
    }
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
