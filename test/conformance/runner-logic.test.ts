import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLAIMED_FEATURES } from './claimed-features.ts';
import { ArgsError, parseRunnerArgs } from './lib/args.ts';
import { canonicalHeaderName, groupRawHeaders, joinHeaderValues, lookupHeader } from './lib/headers.ts';
import { goMatchHostname } from './lib/http-client.ts';
import { applyPatch, getPath, parsePath, validateMutation } from './lib/mutations.ts';
import { awaitConvergence } from './lib/poll.ts';
import { backendFromPodName, binomialBounds, checkWeightedDistribution } from './lib/stats.ts';
import { endpointSlicesForServices, fillEndpointSlice } from './gateway-api/environment.ts';
import { evaluateResult, parseLocation, statusProblems } from './gateway-api/expect.ts';
import { validateCaseFile } from './gateway-api/schema.ts';
import { evaluateStatusCheck, StatusIndex, type CheckContext } from './gateway-api/status-checks.ts';
import { appendQueryParam, derivedHost, prepareAttempt } from './gateway-api/traffic.ts';
import { DEFAULT_CASE_FOLDERS, loadPlan, missingFeatures, readCaseHeader, runWhenExcuse } from './gateway-api/suite.ts';
import type { CaseFile, HttpCase } from './gateway-api/types.ts';
import type { ClientResponse } from './lib/http-client.ts';
import type { KObject } from './lib/manifest-store.ts';

function response(status: number, headers: [string, string][], body: unknown): ClientResponse {
  const raw = headers.flat();
  const map = groupRawHeaders(raw);
  return { ok: true, status, rawHeaders: raw, headers: map, body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), httpVersion: 'HTTP/1.1' };
}

const facts = { method: 'GET', scheme: 'http' as const, path: '/', baseUrl: 'http://10.0.0.1' };

const minimalCase = (): any => ({
  schema: 'gwapi-conformance-case/v1',
  name: 'T',
  features: [{ name: 'Gateway' }],
  manifests: ['shared/x.yaml'],
  statusChecks: [{ check: 'gatewayHasAddress', gateway: 'ns/gw' }],
  cases: [
    {
      name: 'c',
      target: { gateway: 'ns/gw', port: 80, scheme: 'http' },
      request: { method: 'GET', host: null, path: '/', headers: {}, protocol: 'HTTP/1.1', followRedirects: true },
      expect: { status: [200] },
    },
  ],
});

describe('strictness', () => {
  it('accepts a known case file', () => {
    expect(validateCaseFile(minimalCase())).toEqual([]);
  });

  it('fails on an unknown expect field', () => {
    const c = minimalCase();
    c.cases[0].expect.bodyContains = 'x';
    expect(validateCaseFile(c)).toEqual(['case.cases[0].expect: unknown field "bodyContains"']);
  });

  it('fails on unknown check kinds, case kinds, mutation ops, request fields and placeholders', () => {
    const c = minimalCase();
    c.statusChecks.push({ check: 'gatewayIsHappy', gateway: 'ns/gw' });
    c.cases.push({ ...c.cases[0], kind: 'grpc' });
    c.cases[0].request.trailers = {};
    c.cases[0].placeholders = { '{nonce}': 'x' };
    c.followUp = [{ description: 'd', mutations: [{ op: 'replace', kind: 'Gateway', name: 'gw' }], statusChecks: [], cases: [] }];
    const problems = validateCaseFile(c).join('\n');
    expect(problems).toContain('unknown status check "gatewayIsHappy"');
    expect(problems).toContain('unknown case kind "grpc"');
    expect(problems).toContain('unknown field "trailers"');
    expect(problems).toContain('unknown key "{nonce}"');
    expect(problems).toContain('unknown mutation op "replace"');
  });

  it('fails on an unknown field inside a status check and on unknown top-level fields', () => {
    const c = minimalCase();
    c.statusChecks[0].strict = true;
    c.extra = 1;
    const problems = validateCaseFile(c);
    expect(problems).toContain('case.statusChecks[0](gatewayHasAddress): unknown field "strict"');
    expect(problems).toContain('case: unknown field "extra"');
  });

  const suiteDir = join(import.meta.dirname, '..', '..', '..', 'shared', 'conformance', 'gateway-api');
  it('knows every field of the shipped Gateway API case files, in both folders, claimed or not', () => {
    let validated = 0;
    for (const dir of DEFAULT_CASE_FOLDERS.map((d) => join(suiteDir, d)).filter((d) => existsSync(d))) {
      for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
        expect([f, validateCaseFile(JSON.parse(readFileSync(join(dir, f), 'utf8')))]).toEqual([f, []]);
        validated++;
      }
    }
    if (existsSync(join(suiteDir, 'cases-new-kinds'))) expect(validated).toBeGreaterThanOrEqual(96);
  });

  it('skips exactly on missing claimed features', () => {
    const features = ['Gateway', 'HTTPRoute', 'ListenerSet', 'TLSRoute', 'TLSRoute'];
    expect(missingFeatures(features, ['Gateway', 'HTTPRoute'])).toEqual(['ListenerSet', 'TLSRoute']);
    expect(missingFeatures(features, ['Gateway', 'HTTPRoute', 'ListenerSet', 'TLSRoute'])).toEqual([]);
  });
});

describe('the plan: claims decide before the case file is validated', () => {
  const folder = (files: Record<string, unknown>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-plan-'));
    for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), typeof body === 'string' ? body : JSON.stringify(body));
    return dir;
  };
  // A case of a kind this runner does not know (new check, case kind and top-level field).
  const newKind = {
    ...minimalCase(),
    name: 'UDPThing',
    features: [{ name: 'Gateway' }, { name: 'UDPRoute' }],
    staticAddressInjection: { gateway: 'ns/gw' },
    statusChecks: [{ check: 'udpRouteIsHappy', route: 'ns/r' }],
    cases: [{ name: 'u', kind: 'udpEcho', target: { gateway: 'ns/gw', port: 53, scheme: 'udp' } }],
  };

  it('skips a test with an unclaimed feature without validating it, and names the feature', () => {
    const claimed = ['Gateway', 'HTTPRoute'];
    expect(validateCaseFile(newKind).length).toBeGreaterThan(0);
    const [t] = loadPlan([folder({ 'UDPThing.json': newKind })], [], claimed);
    expect(t).toMatchObject({ name: 'UDPThing', missing: ['UDPRoute'], problems: [] });
    expect(t.data).toBeUndefined();
  });

  it('validates the same file strictly once its features are claimed', () => {
    const [t] = loadPlan([folder({ 'UDPThing.json': newKind })], [], ['Gateway', 'UDPRoute']);
    expect(t.missing).toEqual([]);
    expect(t.problems.join('\n')).toContain('unknown status check "udpRouteIsHappy"');
    expect(t.data).toBeUndefined();
  });

  it('reads every folder in order, fails unreadable files and duplicate names, and keeps the rest runnable', () => {
    const a = folder({ 'B.json': { ...minimalCase(), name: 'B' }, 'A.json': { ...minimalCase(), name: 'A' }, 'Broken.json': '{not json' });
    const b = folder({ 'A.json': { ...minimalCase(), name: 'A' }, 'NoFeatures.json': { ...minimalCase(), name: 'NoFeatures', features: 'Gateway' } });
    const plan = loadPlan([a, b], [], ['Gateway']);
    expect(plan.map((t) => [t.name, t.data !== undefined && t.problems.length === 0])).toEqual([
      ['A', true],
      ['B', true],
      ['Broken', false],
      ['A', false],
      ['NoFeatures', false],
    ]);
    expect(plan[2].problems[0]).toMatch(/^cannot parse Broken\.json/);
    expect(plan[3].problems).toEqual([`test A is also defined in ${join(a, 'A.json')}`]);
    expect(plan[4].problems[0]).toContain('features must be a list');
    expect(loadPlan([a, b], ['B'], ['Gateway']).map((t) => t.name)).toEqual(['B']);
    expect(() => loadPlan([a, b], ['Nope'], ['Gateway'])).toThrow(ArgsError);
    expect(() => loadPlan([join(a, 'missing')], [], ['Gateway'])).toThrow(ArgsError);
  });

  it('reads the header of a case file without knowing the rest of it', () => {
    expect(readCaseHeader({ name: 'X', features: [{ name: 'Gateway', level: 'Core' }], anything: 1 })).toEqual({ name: 'X', features: ['Gateway'], problems: [] });
    expect(readCaseHeader([]).problems).toHaveLength(1);
    expect(readCaseHeader({ name: 'X', features: [{ title: 'Gateway' }] }).problems).toHaveLength(1);
  });

  it('passes a runWhen test without checks exactly as upstream returns early', () => {
    const tc = { runWhen: { supported: ['TLSRoute'], notSupported: ['TLSRouteModeTerminate'] } };
    expect(runWhenExcuse(tc, ['TLSRoute'])).toBeUndefined();
    expect(runWhenExcuse(tc, [])).toBe('runs only when TLSRoute is claimed');
    expect(runWhenExcuse(tc, ['TLSRoute', 'TLSRouteModeTerminate'])).toBe('runs only when TLSRouteModeTerminate is not claimed');
    expect(runWhenExcuse({}, [])).toBeUndefined();
    expect(validateCaseFile({ ...minimalCase(), runWhen: tc.runWhen })).toEqual([]);
  });

  const sharedRoot = join(import.meta.dirname, '..', '..', '..', 'shared', 'conformance', 'gateway-api');
  it('plans the shipped case folders: every test of a claimed feature set is valid, the others are skipped by name', () => {
    if (!DEFAULT_CASE_FOLDERS.every((d) => existsSync(join(sharedRoot, d)))) return;
    const plan = loadPlan(DEFAULT_CASE_FOLDERS.map((d) => join(sharedRoot, d)), [], CLAIMED_FEATURES);
    const invalid = plan.filter((t) => t.missing.length === 0 && t.problems.length > 0).map((t) => `${t.name}: ${t.problems[0]}`);
    expect(plan.filter((t) => t.missing.length === 0 && t.data === undefined && t.problems.length === 0)).toEqual([]);
    expect(new Set(plan.map((t) => t.name)).size).toBe(plan.length);
    expect(invalid).toEqual([]);
    expect(plan.some((t) => t.data?.cases.some((c) => c.kind === 'tcpEcho'))).toBe(true);
  });
});

describe('mutations', () => {
  const gw = (): Record<string, unknown> => ({
    kind: 'Gateway',
    metadata: { name: 'g', namespace: 'n' },
    spec: { listeners: [{ name: 'http', port: 80 }, { name: 'https', port: 443 }], rules: [{ backendRefs: [{ name: 'a' }] }] },
  });

  it('parses paths with indexes and quoted keys', () => {
    expect(parsePath('spec.rules[0].backendRefs[0].name')).toEqual(['spec', 'rules', 0, 'backendRefs', 0, 'name']);
    expect(parsePath('metadata.labels["kubernetes.io/metadata.name"]')).toEqual(['metadata', 'labels', 'kubernetes.io/metadata.name']);
    expect(() => parsePath('a..b')).toThrow();
  });

  it('sets, appends and keeps only', () => {
    let o = applyPatch(gw(), { op: 'patch', kind: 'Gateway', name: 'g', set: { 'spec.rules[0].backendRefs[0].name': 'b', 'spec.description': 'new' } });
    expect(getPath(o, 'spec.rules[0].backendRefs[0].name')).toBe('b');
    expect(getPath(o, 'spec.description')).toBe('new');
    o = applyPatch(o, { op: 'patch', kind: 'Gateway', name: 'g', appendTo: { 'spec.listeners': { name: 'alt', port: 8080 } } });
    expect((getPath(o, 'spec.listeners') as unknown[]).length).toBe(3);
    o = applyPatch(o, { op: 'patch', kind: 'Gateway', name: 'g', keepOnly: { 'spec.listeners': { name: 'https' } } });
    expect(getPath(o, 'spec.listeners')).toEqual([{ name: 'https', port: 443 }]);
    expect(gw().spec).toEqual(gw().spec); // input untouched
  });

  it('rejects unknown ops and fields', () => {
    expect(validateMutation({ op: 'merge', kind: 'A', name: 'b' })).toContain('unknown mutation op "merge"');
    expect(validateMutation({ op: 'patch', kind: 'A', name: 'b', set: {}, extra: 1 })).toContain('unknown mutation field "extra"');
    expect(validateMutation({ op: 'patch', kind: 'A', name: 'b' })).toContain('a patch mutation needs one of set, appendTo, keepOnly, removeWhere, setData');
    expect(validateMutation({ op: 'delete', kind: 'A', name: 'b' })).toEqual([]);
  });
});

describe('headers', () => {
  it('joins repeated values with "," and looks names up case-insensitively', () => {
    const m = groupRawHeaders(['X-A', '1', 'x-a', '2', 'Other', 'v']);
    expect(joinHeaderValues(m.get('x-a')!)).toBe('1,2');
    expect(lookupHeader({ 'X-Header-Set': ['a', 'b'] }, 'x-header-set')).toEqual(['a', 'b']);
    expect(canonicalHeaderName('access-control-request-method')).toBe('Access-Control-Request-Method');
  });
});

describe('distribution maths', () => {
  it('derives the backend from a pod name', () => {
    expect(backendFromPodName('infra-backend-v1-6c8d9f7b5-x2k9p')).toBe('infra-backend-v1');
  });

  it('applies the ±tolerance and zero-weight rules', () => {
    const w = { a: 0.7, b: 0.3, c: 0 };
    expect(checkWeightedDistribution({ a: 360, b: 140 }, w, 0.05, true).ok).toBe(true);
    expect(checkWeightedDistribution({ a: 300, b: 200 }, w, 0.05, true).ok).toBe(false);
    const zero = checkWeightedDistribution({ a: 349, b: 150, c: 1 }, w, 0.05, true);
    expect(zero.problems).toEqual(['c: weight 0 but received 1 request(s)']);
    expect(checkWeightedDistribution({ a: 350, b: 140, d: 10 }, w, 0.05, true).problems).toContain('d: not an expected backend but received 10 request(s)');
  });

  it('computes N·p ± k·sqrt(N·p·(1-p))', () => {
    const b = binomialBounds(500, 0.2, 3);
    expect(b.mean).toBe(100);
    expect(b.low).toBeCloseTo(100 - 3 * Math.sqrt(80));
    expect(b.high).toBeCloseTo(100 + 3 * Math.sqrt(80));
  });
});

describe('response evaluation', () => {
  const echo = {
    path: '/set?x=1',
    host: 'example.org',
    method: 'GET',
    headers: { 'X-Header-Set': ['a', 'b'], 'Some-Header': ['v'] },
    namespace: 'ns',
    pod: 'infra-backend-v1-abc-xyz',
  };
  const ok = response(200, [['Content-Type', 'application/json'], ['X-Resp', '1'], ['x-resp', '2']], echo);

  it('passes a matching echo reply and reports every mismatch', () => {
    expect(
      evaluateResult(
        {
          status: [200],
          backend: { podNamePrefix: 'infra-backend-v1', namespace: 'ns' },
          backendRequest: { path: '/set?x=1', method: 'GET', host: null, headers: { 'x-header-set': 'a,b' }, absentHeaders: ['X-Gone'] },
          response: { headers: { 'X-Resp': '1,2' } },
        },
        ok,
        facts,
      ),
    ).toEqual([]);
    const problems = evaluateResult(
      {
        status: [200],
        backend: { podNamePrefix: 'infra-backend-v2', namespace: 'other' },
        backendRequest: { path: '/set', headers: { 'X-Header-Set': 'a, b' }, absentHeaders: ['Some-Header'] },
        response: { headers: { 'X-Resp': '1, 2' }, absentHeaders: ['x-resp'] },
      },
      ok,
      facts,
    );
    expect(problems).toHaveLength(7);
  });

  it('treats 408 and 504 as equivalent', () => {
    expect(statusProblems({ status: [504] }, 408)).toEqual([]);
    expect(statusProblems({ status: [408] }, 504)).toEqual([]);
    expect(statusProblems({ status: [500] }, 504)).toHaveLength(1);
    expect(statusProblems({ notStatus: [500] }, 504)).toHaveLength(1);
  });

  it('does not judge the body of non-2xx answers', () => {
    expect(evaluateResult({ status: [404], backend: { podNamePrefix: 'x', namespace: 'y' } }, response(404, [], 'nope'), facts)).toEqual([]);
  });

  it('requires a transport error when asked, and fails on one otherwise', () => {
    expect(evaluateResult({ transportError: true }, { ok: false, error: 'ECONNRESET' }, facts)).toEqual([]);
    expect(evaluateResult({ transportError: true }, ok, facts)).toEqual(['expected a transport-level failure, got an HTTP 200 response']);
    expect(evaluateResult({ status: [200] }, { ok: false, error: 'boom' }, facts)).toEqual(['request failed: boom']);
  });

  it('answeredByGateway fails when the backend echoed the request', () => {
    const exp = { status: [200, 204], answeredByGateway: true, backendRequest: { method: 'OPTIONS' } };
    const preflight = { ...facts, method: 'OPTIONS' };
    expect(evaluateResult(exp, response(204, [['Access-Control-Allow-Origin', '*']], ''), preflight)).toEqual([]);
    expect(evaluateResult(exp, ok, preflight)[0]).toContain('answeredByGateway');
  });

  it('checks headersOneOf with ignoreWhitespace', () => {
    const r = response(200, [['Content-Type', 'application/json'], ['Access-Control-Allow-Methods', 'GET,OPTIONS']], echo);
    expect(evaluateResult({ status: [200], response: { headersOneOf: { 'access-control-allow-methods': ['GET, OPTIONS', 'OPTIONS, GET'] }, ignoreWhitespace: true } }, r, facts)).toEqual([]);
    expect(evaluateResult({ status: [200], response: { headersOneOf: { 'access-control-allow-methods': ['GET, OPTIONS'] }, ignoreWhitespace: false } }, r, facts)).toHaveLength(1);
  });

  it('evaluates redirects from the Location header', () => {
    const r = response(302, [['Location', 'http://example.org:8083/port?q=1']], '');
    expect(evaluateResult({ status: [302], redirect: { scheme: 'http', host: 'example.org', port: '8083', path: '/port' } }, r, facts)).toEqual([]);
    expect(evaluateResult({ status: [302], redirect: { scheme: 'http', host: null, port: null, path: '/port' } }, r, facts)).toHaveLength(1);
    const explicitDefault = response(301, [['Location', 'https://10.0.0.1:443/x']], '');
    expect(evaluateResult({ status: [301], redirect: { scheme: 'https', host: null, port: null, path: '/x' } }, explicitDefault, facts)).toEqual([]);
    expect(parseLocation('/rel', 'http://10.0.0.1:8080')).toEqual({ scheme: 'http', host: '10.0.0.1', port: '8080', path: '/rel' });
  });
});

describe('requests', () => {
  it('derives the Host from the gateway address and the listener port', () => {
    expect(derivedHost('10.0.0.1', 80, 'http')).toBe('10.0.0.1');
    expect(derivedHost('10.0.0.1', 8080, 'http')).toBe('10.0.0.1:8080');
    expect(derivedHost('10.0.0.1', 443, 'https')).toBe('10.0.0.1');
    expect(derivedHost('::1', 80, 'http')).toBe('[::1]');
  });

  it('appends request ids to the path', () => {
    expect(appendQueryParam('/mirror', 'id', 'u')).toBe('/mirror?id=u');
    expect(appendQueryParam('/m?a=1', 'id', 'u')).toBe('/m?a=1&id=u');
  });

  it('builds an attempt with fresh placeholders, request id, canonical headers and X-Echo-Set-Header', () => {
    const c: HttpCase = {
      name: 'c',
      target: { gateway: 'ns/gw', port: 80, scheme: 'http' },
      request: { method: 'GET', host: null, path: '/retry?uuid={uuid}', headers: { 'x-header-set': 'v' }, protocol: 'HTTP/1.1', followRedirects: true },
      expect: { status: [200], backendRequest: { path: '/retry?uuid={uuid}' } },
      placeholders: { '{uuid}': 'fresh' },
      uniqueRequestIdQueryParam: 'rid',
      echoSetResponseHeaders: { 'X-A': '1', 'X-B': '2' },
    };
    const p = prepareAttempt(c, '10.1.2.3', { portOffset: 20000, requestTimeoutMs: 1000, secret: () => undefined });
    if ('problems' in p) throw new Error(p.problems.join());
    expect(p.client.connectPort).toBe(20080);
    expect(p.client.authority).toBe('10.1.2.3');
    expect(p.client.path).toMatch(/^\/retry\?uuid=[0-9a-f-]{36}&rid=[0-9a-f-]{36}$/);
    expect(p.expect.backendRequest?.path).toBe(p.client.path);
    expect(p.client.headers).toContainEqual(['X-Header-Set', 'v']);
    expect(p.client.headers).toContainEqual(['X-Echo-Set-Header', 'X-A:1,X-B:2']);
    expect(p.client.headers[0]).toEqual(['Host', '10.1.2.3']);
    const again = prepareAttempt(c, '10.1.2.3', { portOffset: 20000, requestTimeoutMs: 1000, secret: () => undefined });
    expect('problems' in again ? '' : again.client.path).not.toBe(p.client.path);
  });

  it('matches certificate names like Go (including *.tld)', () => {
    expect(goMatchHostname('*.org', 'example.org')).toBe(true);
    expect(goMatchHostname('*.wildcard.org', 'a.wildcard.org')).toBe(true);
    expect(goMatchHostname('*.wildcard.org', 'a.b.wildcard.org')).toBe(false);
    expect(goMatchHostname('example.org', 'EXAMPLE.org.')).toBe(true);
  });
});

describe('convergence', () => {
  it('needs N consecutive successes; a failure resets the streak', async () => {
    const outcomes = [[], ['x'], [], [], []];
    let i = 0;
    const r = await awaitConvergence(async () => outcomes[i++] ?? [], { requiredSuccesses: 3, pollIntervalMs: 1, budgetMs: 1000 });
    expect(r.ok).toBe(true);
    expect(r.attempts).toBe(5);
    const never = await awaitConvergence(async () => ['nope'], { requiredSuccesses: 3, pollIntervalMs: 5, budgetMs: 30 });
    expect(never).toMatchObject({ ok: false, lastProblems: ['nope'] });
  });
});

describe('endpoint slices', () => {
  const pods = [
    { name: 'v1-abc-1', namespace: 'ns', ip: '127.0.0.2', labels: { app: 'v1' }, containerPorts: [{ name: 'http', port: 3000 }, { name: 'h2c', port: 3001 }] },
    { name: 'v1-abc-2', namespace: 'ns', ip: '127.0.0.3', labels: { app: 'v1' }, containerPorts: [{ name: 'http', port: 3000 }, { name: 'h2c', port: 3001 }] },
    { name: 'v2-abc-1', namespace: 'ns', ip: '127.0.0.4', labels: { app: 'v2' }, containerPorts: [{ name: 'http', port: 3000 }] },
  ];
  it('gives each selector-based Service one slice with its pods and mapped ports', () => {
    const svc: KObject = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'v1', namespace: 'ns' },
      spec: { selector: { app: 'v1' }, ports: [{ name: 'first-port', port: 8080, targetPort: 3000 }, { name: 'second-port', port: 8081, targetPort: 3001, appProtocol: 'kubernetes.io/h2c' }] },
    };
    const manual: KObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'm', namespace: 'ns' }, spec: { ports: [{ port: 8080 }] } };
    const slices = endpointSlicesForServices([svc, manual], pods, () => 'xyz12');
    expect(slices).toHaveLength(1);
    expect(slices[0].metadata).toMatchObject({ name: 'v1-xyz12', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'v1' } });
    expect((slices[0].endpoints as any[]).map((e) => e.addresses[0])).toEqual(['127.0.0.2', '127.0.0.3']);
    expect(slices[0].ports).toEqual([
      { name: 'first-port', port: 3000, protocol: 'TCP' },
      { name: 'second-port', port: 3001, protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' },
    ]);
  });

  it('fills manual slices by address family', () => {
    const v4: KObject = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'a-ip4', namespace: 'ns' }, addressType: 'IPv4' };
    const v6: KObject = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'a-ip6', namespace: 'ns' }, addressType: 'IPv6' };
    fillEndpointSlice(v4, pods.slice(0, 2));
    fillEndpointSlice(v6, pods.slice(0, 2));
    expect((v4.endpoints as any[]).map((e) => e.targetRef.name)).toEqual(['v1-abc-1', 'v1-abc-2']);
    expect(v6.endpoints).toEqual([]);
  });
});

describe('status checks', () => {
  const ctx = (items: any[], state = {}): CheckContext => ({
    controllerName: 'sluice.dev/gateway-controller',
    index: new StatusIndex(items),
    generationsBefore: new Map([['Gateway/ns/gw', 1]]),
    declaredGateways: [],
    state,
  });
  const cond = (type: string, status: string, reason: string, gen = 2) => ({ type, status, reason, observedGeneration: gen });
  const gateway = {
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'ns', generation: 2 },
    spec: { listeners: [{ name: 'http' }] },
    status: {
      addresses: [{ type: 'IPAddress', value: '127.20.0.1' }],
      conditions: [cond('Accepted', 'True', 'Accepted'), cond('Programmed', 'True', 'Programmed')],
      listeners: [{ name: 'http', attachedRoutes: 1, supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], conditions: [cond('Accepted', 'True', 'Accepted'), cond('ResolvedRefs', 'True', 'ResolvedRefs'), cond('Programmed', 'True', 'Programmed')] }],
    },
  };
  const route = (parentRef: Record<string, unknown>) => ({
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'ns', generation: 1 },
    status: { parents: [{ parentRef, controllerName: 'sluice.dev/gateway-controller', conditions: [{ ...cond('Accepted', 'True', 'Accepted'), observedGeneration: 1 }] }] },
  });

  it('parentAndRoutesAccepted requires explicit group and kind in parentRef', () => {
    const check = { check: 'parentAndRoutesAccepted' as const, parentKind: 'Gateway' as const, parent: 'ns/gw', listenerNames: null, routes: ['ns/r'], requireGatewayAddress: true };
    expect(evaluateStatusCheck(check, ctx([gateway, route({ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' })]))).toEqual([]);
    expect(evaluateStatusCheck(check, ctx([gateway, route({ name: 'gw' })]))).toHaveLength(1);
  });

  it('gatewayListenersExact compares names, kinds, attachedRoutes and conditions', () => {
    const check = {
      check: 'gatewayListenersExact' as const,
      gateway: 'ns/gw',
      listeners: [{ name: 'http', supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], attachedRoutes: 2, conditions: [{ type: 'Accepted', status: 'True', reason: null }] }],
    };
    expect(evaluateStatusCheck(check, ctx([gateway]))).toEqual(['Gateway ns/gw: listener http: attachedRoutes 1, expected 2']);
  });

  it('generationIncreased and latest-generation checks', () => {
    expect(evaluateStatusCheck({ check: 'generationIncreased', kind: 'Gateway', object: 'ns/gw' }, ctx([gateway]))).toEqual([]);
    const stale = { ...gateway, status: { ...gateway.status, conditions: [cond('Accepted', 'True', 'Accepted', 1)] } };
    expect(evaluateStatusCheck({ check: 'gatewayConditionsAtLatestGeneration', gateway: 'ns/gw' }, ctx([stale]))).toHaveLength(1);
  });

  it('routeHasNoAcceptedParents needs two consecutive empty polls', () => {
    const empty = { kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'ns', generation: 1 }, status: { parents: [] } };
    const state = {};
    const check = { check: 'routeHasNoAcceptedParents' as const, route: 'ns/r' };
    expect(evaluateStatusCheck(check, ctx([empty], state))).toHaveLength(1);
    expect(evaluateStatusCheck(check, ctx([empty], state))).toEqual([]);
  });
});

describe('command line', () => {
  it('parses the runner flags', () => {
    const a = parseRunnerArgs(['--suite', 'gateway-api', '--only', 'A,B', '--only', 'C', '--max-status-timeout', '20']);
    expect(a).toMatchObject({ suite: 'gateway-api', only: ['A', 'B', 'C'], maxStatusTimeoutSeconds: 20, portOffset: 20000 });
    expect(() => parseRunnerArgs(['--suite', 'gateway-api', '--bogus'])).toThrow(ArgsError);
    expect(() => parseRunnerArgs([])).toThrow('--suite is required');
  });
});
