// Route selection, compiled from IR fixtures and exercised without sockets.

import { afterAll, describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import type { HttpIR, Route } from '../../ir/types.ts';
import { compileRouteTable } from '../../dataplane/config/compile.ts';
import type { RouteTable } from '../../dataplane/config/route-table.ts';
import { DataplaneMetrics } from '../../dataplane/metrics.ts';
import { HostIndex, normalizeHost } from '../../dataplane/router/host.ts';
import type { MatchableRequest } from '../../dataplane/router/match.ts';
import { findRoute, isMisdirected } from '../../dataplane/router/router.ts';
import { SecureContextCache } from '../../dataplane/tls/certificates.ts';
import { UpstreamPools } from '../../dataplane/upstream/pools.ts';
import { PickerStates } from '../../dataplane/upstream/weighted.ts';
import { exact, forwardTo, listener, prefix, regex, route, scope } from './support/ir.ts';

const pools = new UpstreamPools(1000, 1000);
afterAll(() => pools.closeAll());

function compile(http: HttpIR): RouteTable {
  const pickerStates = new PickerStates();
  return compileRouteTable('test', http, {
    pools,
    certificates: new SecureContextCache(),
    pickerStates: pickerStates.begin(),
    metrics: new DataplaneMetrics(new Registry()),
  });
}

function request(target: string, options: { method?: string; headers?: Array<[string, string]> } = {}): MatchableRequest {
  const q = target.indexOf('?');
  return {
    method: options.method ?? 'GET',
    path: q < 0 ? target : target.slice(0, q),
    query: q < 0 ? '' : target.slice(q + 1),
    headers: (options.headers ?? []).flatMap(([name, value]) => [name.toLowerCase(), value]),
    params: null,
  };
}

/** Name of the route chosen (the short test name), or null for 404. */
function routeFor(table: RouteTable, host: string, target: string, options?: Parameters<typeof request>[1]): string | null {
  const chosen = findRoute(table.listeners[0], normalizeHost(host), request(target, options));
  return chosen === null ? null : chosen.source.split('/')[1];
}

/** A table with one scope (no hostname), one virtual host `*`, these routes in this order. */
function tableOf(routes: Route[]): RouteTable {
  return compile({ listeners: [listener(80, [scope('http', null, [['*', routes]])])], backends: {} });
}

const ok = forwardTo();

describe('normalizeHost', () => {
  it('strips the port, lower-cases and drops one trailing dot', () => {
    expect(normalizeHost('Shop.Example.COM:8080')).toBe('shop.example.com');
    expect(normalizeHost('shop.example.com.')).toBe('shop.example.com');
    expect(normalizeHost('shop.example.com.:443')).toBe('shop.example.com');
    expect(normalizeHost('[::1]:8080')).toBe('[::1]');
    expect(normalizeHost(undefined)).toBe('');
  });
});

describe('HostIndex', () => {
  const index = new HostIndex<string>();
  index.add('*.example.com', 'wildcard');
  index.add('*.b.example.com', 'longer wildcard');
  index.add('Exact.Example.com', 'exact');
  index.add(null, 'catch-all');

  it('prefers exact, then the longest wildcard, then the catch-all', () => {
    expect(index.find('exact.example.com')).toBe('exact');
    expect(index.find('a.example.com')).toBe('wildcard');
    expect(index.find('a.b.example.com')).toBe('longer wildcard');
    expect(index.find('x.y.b.example.com')).toBe('longer wildcard');
    expect(index.find('a.c.example.com')).toBe('wildcard');
    expect(index.find('other.org')).toBe('catch-all');
  });

  it('never lets a wildcard match its bare suffix', () => {
    expect(index.find('example.com')).toBe('catch-all');
    expect(index.find('b.example.com')).toBe('wildcard');
  });

  it('limits an Ingress (single-label) wildcard to exactly one label', () => {
    const ingress = new HostIndex<string>();
    ingress.add('*.foo.com', 'one label', true);
    ingress.add('*.com', 'any depth');
    expect(ingress.find('a.foo.com')).toBe('one label');
    expect(ingress.find('a.b.foo.com')).toBe('any depth');
    expect(ingress.find('foo.com')).toBe('any depth');
  });

  it('keeps the first entry for a repeated pattern', () => {
    const first = new HostIndex<number>();
    first.add('a.com', 1);
    first.add('A.com', 2);
    first.add('*', 3);
    first.add(null, 4);
    expect(first.find('a.com')).toBe(1);
    expect(first.find('b.com')).toBe(3);
  });
});

describe('scope and virtual host selection', () => {
  const table = compile({
    listeners: [
      listener(80, [
        scope('any', null, [['*', [route('any-scope', {}, ok)]]]),
        scope('wild', '*.example.com', [
          ['*.example.com', [route('wild-scope', {}, ok)]],
          ['special.example.com', [route('wild-scope-special-host', {}, ok)]],
        ]),
        scope('longer-wild', '*.shop.example.com', [['*', [route('longer-wild-scope', {}, ok)]]]),
        scope('exact', 'api.example.com', [['api.example.com', [route('exact-scope', { path: prefix('/v1') }, ok)]]]),
      ]),
    ],
    backends: {},
  });

  it('chooses the scope by listener hostname: exact, longest wildcard, then none', () => {
    expect(routeFor(table, 'api.example.com', '/v1')).toBe('exact-scope');
    expect(routeFor(table, 'www.example.com', '/')).toBe('wild-scope');
    expect(routeFor(table, 'a.b.example.com', '/')).toBe('wild-scope');
    expect(routeFor(table, 'cart.shop.example.com', '/')).toBe('longer-wild-scope');
    expect(routeFor(table, 'example.com', '/')).toBe('any-scope');
    expect(routeFor(table, 'elsewhere.org:8080', '/')).toBe('any-scope');
  });

  it('does not fall back to a less specific scope when the chosen one has no match', () => {
    expect(routeFor(table, 'api.example.com', '/v2')).toBeNull();
  });

  it('chooses the virtual host within the scope the same way', () => {
    expect(routeFor(table, 'special.example.com', '/')).toBe('wild-scope-special-host');
    expect(routeFor(table, 'SPECIAL.example.com.', '/')).toBe('wild-scope-special-host');
  });

  it('answers nothing when no scope matches the host', () => {
    const strict = compile({ listeners: [listener(80, [scope('only', 'only.example.com', [['only.example.com', [route('only', {}, ok)]]])])], backends: {} });
    expect(routeFor(strict, 'only.example.com', '/')).toBe('only');
    expect(routeFor(strict, 'other.example.com', '/')).toBeNull();
  });
});

describe('path matching', () => {
  const table = tableOf([
    route('exact', { path: exact('/exact') }, ok),
    route('regex', { path: regex('/api/v[0-9]+') }, ok),
    route('prefix-foo', { path: prefix('/foo') }, ok),
    route('prefix-bar-slash', { path: prefix('/bar/') }, ok),
  ]);

  it('compares Exact paths exactly, without the query', () => {
    expect(routeFor(table, 'h', '/exact')).toBe('exact');
    expect(routeFor(table, 'h', '/exact?x=1')).toBe('exact');
    expect(routeFor(table, 'h', '/exact/')).toBeNull();
    expect(routeFor(table, 'h', '/Exact')).toBeNull();
  });

  it('matches PathPrefix element by element', () => {
    expect(routeFor(table, 'h', '/foo')).toBe('prefix-foo');
    expect(routeFor(table, 'h', '/foo/')).toBe('prefix-foo');
    expect(routeFor(table, 'h', '/foo/bar')).toBe('prefix-foo');
    expect(routeFor(table, 'h', '/foobar')).toBeNull();
  });

  it('ignores a trailing slash in the prefix value', () => {
    expect(routeFor(table, 'h', '/bar')).toBe('prefix-bar-slash');
    expect(routeFor(table, 'h', '/bar/baz')).toBe('prefix-bar-slash');
    expect(routeFor(table, 'h', '/barn')).toBeNull();
  });

  it('anchors regular expressions to the whole path', () => {
    expect(routeFor(table, 'h', '/api/v12')).toBe('regex');
    expect(routeFor(table, 'h', '/api/v1/users')).toBeNull();
    expect(routeFor(table, 'h', '/x/api/v1')).toBeNull();
  });

  it('lets / match every path', () => {
    const catchAll = tableOf([route('root', { path: prefix('/') }, ok)]);
    expect(routeFor(catchAll, 'h', '/')).toBe('root');
    expect(routeFor(catchAll, 'h', '/anything/at/all')).toBe('root');
  });

  it('takes the first matching route in the given order', () => {
    const ordered = tableOf([
      route('exact-first', { path: exact('/a/b') }, ok),
      route('longer-prefix', { path: prefix('/a/b') }, ok),
      route('shorter-prefix', { path: prefix('/a') }, ok),
    ]);
    expect(routeFor(ordered, 'h', '/a/b')).toBe('exact-first');
    expect(routeFor(ordered, 'h', '/a/b/c')).toBe('longer-prefix');
    expect(routeFor(ordered, 'h', '/a/c')).toBe('shorter-prefix');
  });
});

describe('header, query parameter and method matching', () => {
  const table = tableOf([
    route('header-exact', { headers: [{ name: 'x-env', type: 'Exact', value: 'canary' }] }, ok),
    route('header-regex', { headers: [{ name: 'X-Version', type: 'RegularExpression', value: 'v[0-9]' }] }, ok),
    route('header-joined', { headers: [{ name: 'x-multi', type: 'Exact', value: 'a,b' }] }, ok),
    route('query-exact', { queryParams: [{ name: 'debug', type: 'Exact', value: 'on' }] }, ok),
    route('query-regex', { queryParams: [{ name: 'Page', type: 'RegularExpression', value: '[0-9]+' }] }, ok),
    route('method', { method: 'POST' }, ok),
    route('all-of', { path: prefix('/both'), method: 'PUT', headers: [{ name: 'x-a', type: 'Exact', value: '1' }] }, ok),
  ]);

  it('matches header names case-insensitively and values exactly', () => {
    expect(routeFor(table, 'h', '/', { headers: [['X-Env', 'canary']] })).toBe('header-exact');
    expect(routeFor(table, 'h', '/', { headers: [['x-env', 'Canary']] })).toBeNull();
  });

  it('anchors header regexes', () => {
    expect(routeFor(table, 'h', '/', { headers: [['x-version', 'v2']] })).toBe('header-regex');
    expect(routeFor(table, 'h', '/', { headers: [['x-version', 'v22']] })).toBeNull();
  });

  it('joins repeated header values with ","', () => {
    expect(routeFor(table, 'h', '/', { headers: [['x-multi', 'a'], ['X-Multi', 'b']] })).toBe('header-joined');
  });

  it('matches the first value of a query parameter, name case-sensitive', () => {
    expect(routeFor(table, 'h', '/?debug=on')).toBe('query-exact');
    expect(routeFor(table, 'h', '/?debug=off&debug=on')).toBeNull();
    expect(routeFor(table, 'h', '/?debug=on&debug=off')).toBe('query-exact');
    expect(routeFor(table, 'h', '/?Page=12')).toBe('query-regex');
    expect(routeFor(table, 'h', '/?page=12')).toBeNull();
    expect(routeFor(table, 'h', '/?Page=12a')).toBeNull();
  });

  it('matches the method', () => {
    expect(routeFor(table, 'h', '/', { method: 'POST' })).toBe('method');
    expect(routeFor(table, 'h', '/', { method: 'GET' })).toBeNull();
  });

  it('requires every condition of a match', () => {
    expect(routeFor(table, 'h', '/both', { method: 'PUT', headers: [['x-a', '1']] })).toBe('all-of');
    expect(routeFor(table, 'h', '/both', { method: 'PUT' })).toBeNull();
    expect(routeFor(table, 'h', '/both', { method: 'GET', headers: [['x-a', '1']] })).toBeNull();
  });
});

describe('invalid regular expressions', () => {
  it('disable only their route and are reported', () => {
    const table = tableOf([
      route('broken-path', { path: regex('/(unclosed') }, ok),
      route('broken-header', { headers: [{ name: 'x', type: 'RegularExpression', value: '[' }] }, ok),
      route('fine', { path: prefix('/') }, ok),
    ]);
    expect(routeFor(table, 'h', '/(unclosed')).toBe('fine');
    expect(routeFor(table, 'h', '/', { headers: [['x', '[']] })).toBe('fine');
    expect(table.problems.map((problem) => problem.subject)).toEqual([
      'httproute/default/broken-path/rule/0/match/0',
      'httproute/default/broken-header/rule/0/match/0',
    ]);
    expect(table.problems[0].message).toMatch(/invalid regular expression.*never matches/);
  });
});

describe('421 Misdirected Request (Listener.hostname, gateway_types.go)', () => {
  // The listeners of upstream HTTPRouteHTTPSListenerDetectMisdirectedRequests on one HTTPS port.
  const ok = forwardTo('svc/a');
  const table = compile({
    listeners: [
      listener(443, [
        scope('https', null, [['*', [route('any', {}, ok)]]]),
        scope('second', 'second-example.org', [['second-example.org', [route('second', {}, ok)]]]),
        scope('wildcard', '*.wildcard.org', [['*.wildcard.org', [route('wildcard', {}, ok)]]]),
        scope('fourth', 'fourth-example.wildcard.org', [['fourth-example.wildcard.org', [route('fourth', {}, ok)]]]),
      ]),
    ],
    backends: {},
  }).listeners[0];
  const misdirected = (sni: string, host: string, t = table) => isMisdirected(t, sni, t.scopes.find(normalizeHost(host)));

  it('answers 421 when the Host belongs to another listener than the SNI picked, the hostname-less one included', () => {
    expect(misdirected('example.org', 'second-example.org')).toBe(true);
    expect(misdirected('second-example.org', 'example.org')).toBe(true);
    expect(misdirected('second-example.org', 'unknown-example.org')).toBe(true);
    expect(misdirected('third-example.wildcard.org', 'fourth-example.wildcard.org')).toBe(true);
    expect(misdirected('fourth-example.wildcard.org', 'fith-example.wildcard.org')).toBe(true);
  });

  it('serves a Host of the listener the SNI picked, and never judges a request without SNI', () => {
    expect(misdirected('example.org', 'unknown-example.org')).toBe(false);
    expect(misdirected('unknown-example.org', 'example.org')).toBe(false);
    expect(misdirected('third-example.wildcard.org', 'fith-example.wildcard.org')).toBe(false);
    expect(misdirected('fourth-example.wildcard.org', 'FOURTH-example.wildcard.org:443')).toBe(false);
    expect(isMisdirected(table, '', table.scopes.find('second-example.org'))).toBe(false);
  });

  it('leaves a Host no listener takes to the 404 the spec requires', () => {
    const specific = compile({ listeners: [listener(443, [scope('second', 'second-example.org', [['second-example.org', [route('second', {}, ok)]]])])], backends: {} }).listeners[0];
    expect(misdirected('second-example.org', 'unknown-example.org', specific)).toBe(false);
  });
});
