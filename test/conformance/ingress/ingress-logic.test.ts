import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groupRawHeaders } from '../lib/headers.ts';
import type { ClientResponse, PeerCertificateInfo } from '../lib/http-client.ts';
import { ArgsError } from '../lib/args.ts';
import { endpointSliceObject, groupNamespaces, ingressClassObject, podName, serviceObject } from './environment.ts';
import {
  bindingKeys,
  captureEcho,
  certificateValidForHost,
  distinctPods,
  evaluateHttp,
  loadBalancerAddresses,
  redirectProblems,
  splitProblems,
  type EvaluationContext,
} from './expect.ts';
import { validateGroup, validateIndex } from './schema.ts';
import { loadPlan } from './suite.ts';
import { firstHop, hopUrl, nextHop, requestHeaders } from './traffic.ts';
import type { GroupFile, HttpCase, ServiceSpec } from './types.ts';

const echoService = (over: Partial<ServiceSpec> = {}): ServiceSpec => ({
  name: 'echo',
  namespace: 'ns',
  type: 'NodePort',
  ports: [{ port: 8080, targetPort: 3000, protocol: 'TCP' }],
  replicas: 1,
  echo: { namespace: 'ns', ingress: 'ing', service: 'echo', podNamePrefix: 'ing-echo-' },
  ...over,
});

const minimalGroup = (): any => ({
  schemaVersion: 1,
  group: 'g1',
  title: 't',
  source: { kind: 'k8s-spec+cilium-behaviour', references: ['x'] },
  controller: { ingressClassName: 'cilium', enforceHttps: true },
  namespace: 'ns',
  ingressClasses: [{ name: 'cilium', controller: 'cilium.io/ingress-controller', isDefaultClass: false }],
  secrets: [],
  ingresses: [{ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'ing', namespace: 'ns' }, spec: { ingressClassName: 'cilium' } }],
  services: [echoService()],
  setup: { waitForLoadBalancerAddress: ['ing'] },
  cases: [
    {
      id: 'g1/a',
      kind: 'http',
      source: 'k8s-spec',
      request: { scheme: 'http', host: 'a.test', path: '/', method: 'GET', headers: { 'User-Agent': 'Go-http-client/1.1' }, followRedirects: true },
      expect: { status: 200, backendService: 'echo' },
      asserted: ['status'],
    },
    { id: 'g1/s', kind: 'status', source: 'upstream', ingress: 'ing', expect: { loadBalancerAddress: 'present' } },
  ],
});

function response(status: number, headers: [string, string][], body: unknown, extra: Partial<ClientResponse> = {}): ClientResponse {
  const raw = headers.flat();
  return {
    ok: true,
    status,
    rawHeaders: raw,
    headers: groupRawHeaders(raw),
    body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    httpVersion: 'HTTP/1.1',
    ...extra,
  };
}

const echoBody = (over: Record<string, unknown> = {}) => ({
  path: '/a?x=1',
  host: 'a.test',
  method: 'GET',
  proto: 'HTTP/1.1',
  headers: { 'User-Agent': ['Go-http-client/1.1'] },
  namespace: 'ns',
  ingress: 'ing',
  service: 'echo',
  pod: 'ing-echo-abc-12345',
  httpPort: '3000',
  ...over,
});

const ctx = (svc: ServiceSpec = echoService()): EvaluationContext => ({ serviceOfPod: (p) => (p.startsWith(svc.echo.podNamePrefix) ? svc : undefined) });
const messages = (ps: { message: string }[]) => ps.map((p) => p.message);

describe('ingress case files: strictness', () => {
  it('accepts a known group', () => {
    expect(validateGroup(minimalGroup(), 'g1')).toEqual([]);
  });

  it('fails on unknown fields, kinds, expect keys and request fields', () => {
    const g = minimalGroup();
    g.extra = 1;
    g.cases[0].expect.bodyContains = 'x';
    g.cases[0].request.trailers = {};
    g.cases[1].kind = 'grpc';
    g.controller.mode = 'x';
    const problems = validateGroup(g, 'g1').join('\n');
    expect(problems).toContain('group: unknown field "extra"');
    expect(problems).toContain('unknown field "bodyContains"');
    expect(problems).toContain('unknown field "trailers"');
    expect(problems).toContain('unsupported case kind "grpc"');
    expect(problems).toContain('group.controller: unknown field "mode"');
  });

  it('checks cross references and the rules FORMAT.md implies', () => {
    const g = minimalGroup();
    g.cases[0].asserted = ['status', 'tls'];
    g.cases[0].request.sni = 'a.test';
    g.cases[0].expect.redirect = { scheme: 'https' };
    g.cases[1].ingress = 'nope';
    g.setup.scale = { missing: 3 };
    g.cases.push({ ...g.cases[0], id: 'g1/a' });
    const problems = validateGroup(g, 'other').join('\n');
    expect(problems).toContain('differs from the file name');
    expect(problems).toContain('"tls" is not a key of expect');
    expect(problems).toContain('only an https request sends SNI');
    expect(problems).toContain('only checkable when followRedirects is false');
    expect(problems).toContain('no Ingress named "nope"');
    expect(problems).toContain('setup.scale: no Service named "missing"');
    expect(problems).toContain('id "g1/a" used twice');
  });

  it('needs repeat and distinctPods exactly for distribution cases', () => {
    const g = minimalGroup();
    g.cases[0].kind = 'distribution';
    expect(validateGroup(g, 'g1').join('\n')).toContain('missing field "distinctPods"');
    g.cases[0].expect.distinctPods = 2;
    expect(validateGroup(g, 'g1').join('\n')).toContain('a distribution case needs repeat');
    g.cases[0].request.repeat = 10;
    expect(validateGroup(g, 'g1')).toEqual([]);
    g.cases[0].kind = 'http';
    const problems = validateGroup(g, 'g1').join('\n');
    expect(problems).toContain('unknown field "distinctPods"');
  });

  it('rejects secrets the runner cannot generate', () => {
    const g = minimalGroup();
    g.secrets = [{ name: 's', type: 'kubernetes.io/tls', generate: { selfSigned: false, dnsNames: ['a'], commonName: 'default', organization: 'Acme Co', keyAlgorithm: 'ECDSA', keyBits: 256, validDays: 365 } }];
    const problems = validateGroup(g, 'g1').join('\n');
    expect(problems).toContain('selfSigned: unsupported value false');
    expect(problems).toContain('keyAlgorithm: unsupported value "ECDSA"');
  });

  it('validates index.json', () => {
    expect(validateIndex({ schemaVersion: 1, groups: [{ file: 'a.json', group: 'a', source: 'k8s-spec', cases: 2 }], totalCases: 2 })).toEqual([]);
    expect(validateIndex({ schemaVersion: 1, groups: [{ file: 'a.json', group: 'b', cases: 2 }], totalCases: 3 }).join('\n')).toMatch(/expected b.json[\s\S]*totalCases 3/);
  });

  const casesDir = join(import.meta.dirname, '..', '..', '..', '..', 'shared', 'conformance', 'ingress', 'cases');
  it('knows every field of the shipped Ingress case files', () => {
    if (!existsSync(casesDir)) return;
    for (const f of readdirSync(casesDir).filter((x) => x.endsWith('.json') && x !== 'index.json')) {
      expect([f, validateGroup(JSON.parse(readFileSync(join(casesDir, f), 'utf8')), f.replace(/\.json$/, ''))]).toEqual([f, []]);
    }
    const plan = loadPlan(casesDir, []);
    expect(plan.indexProblems).toEqual([]);
    expect(plan.groups.every((g) => g.data && g.caseProblems.size === 0)).toBe(true);
  });
});

describe('ingress plan', () => {
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'ingress-plan-'));
    const g1 = minimalGroup();
    const g2 = { ...minimalGroup(), group: 'g2', cases: [{ ...minimalGroup().cases[0], id: 'g2/a' }, { ...minimalGroup().cases[1], id: 'g1/s' }] };
    writeFileSync(join(d, 'g1.json'), JSON.stringify(g1));
    writeFileSync(join(d, 'g2.json'), JSON.stringify(g2));
    writeFileSync(join(d, 'broken.json'), '{"cases": [{"id": "b/1"}]');
    return d;
  };

  it('selects by group or case id and rejects unknown names', () => {
    const d = dir();
    const plan = loadPlan(d, ['g1', 'g2/a']);
    const sel = Object.fromEntries(plan.groups.map((g) => [g.id, [...g.selected]]));
    expect(sel).toEqual({ broken: [], g1: ['g1/a', 'g1/s'], g2: ['g2/a'] });
    expect(() => loadPlan(d, ['nope'])).toThrow(ArgsError);
  });

  it('reports broken files, ids used twice and index.json mismatches', () => {
    const d = dir();
    writeFileSync(join(d, 'index.json'), JSON.stringify({ schemaVersion: 1, groups: [{ file: 'g1.json', group: 'g1', cases: 3 }] }));
    const plan = loadPlan(d, []);
    expect(plan.groups.map((g) => g.id)).toEqual(['g1', 'broken', 'g2']);
    expect(plan.groups[1].problems[0]).toContain('cannot parse broken.json');
    expect(plan.groups[2].caseProblems.get('g1/s')).toEqual(['case id "g1/s" is also used in g1.json']);
    expect(plan.indexProblems.join('\n')).toMatch(/broken.json is not listed[\s\S]*g2.json is not listed[\s\S]*has 3 cases, it has 2/);
  });
});

describe('ingress expectations', () => {
  const http = { status: 200, backendService: 'echo' };

  it('judges the echo fields, headers and protocol', () => {
    const expectAll = {
      status: 200,
      backendService: 'echo',
      servicePort: { number: 8080 },
      backendPath: '/a?x=1',
      backendHost: 'a.test',
      backendMethod: 'GET',
      backendProto: 'HTTP/1.1',
      backendHeaders: { 'user-agent': 'Go-http-client/1.1' },
      responseProto: 'HTTP/1.1',
      responseHeaders: { 'Content-Type': '*', Server: 'envoy' },
    };
    const res = response(200, [['Content-Type', 'application/json'], ['server', 'envoy']], echoBody());
    expect(evaluateHttp(expectAll, { result: res, podsReached: [] }, ctx(), 'http://a.test/')).toEqual([]);
    const bad = response(200, [['Content-Type', 'application/json']], echoBody({ service: 'other', host: 'b', headers: {} }));
    expect(messages(evaluateHttp(expectAll, { result: bad, podsReached: [] }, ctx(), 'http://a.test/'))).toEqual([
      'backendService: expected "echo", got "other"',
      'backendHost: expected "a.test", got "b"',
      'backendHeaders: user-agent expected "Go-http-client/1.1", absent',
      'responseHeaders: Server expected "envoy", absent',
    ]);
  });

  it('requires an echo reply for backend keys, and none (nor a reached pod) for backendService null', () => {
    const notFound = response(404, [['content-type', 'text/plain']], 'no route');
    expect(messages(evaluateHttp(http, { result: notFound, podsReached: [] }, ctx(), 'http://a.test/'))).toEqual([
      'status: expected 200, got HTTP 404 text/plain body "no route"',
      'backendService: no echo backend answered (HTTP 404 text/plain body "no route")',
    ]);
    const none = { status: 404, backendService: null };
    expect(evaluateHttp(none, { result: notFound, podsReached: [] }, ctx(), 'http://a.test/')).toEqual([]);
    expect(messages(evaluateHttp(none, { result: notFound, podsReached: ['ing-echo-x'] }, ctx(), 'http://a.test/'))[0]).toContain('ing-echo-x received the request');
    const echoed = response(404, [['content-type', 'application/json']], echoBody());
    expect(messages(evaluateHttp(none, { result: echoed, podsReached: [] }, ctx(), 'http://a.test/'))[0]).toContain('expected no echo backend to answer');
    expect(messages(evaluateHttp(http, { result: { ok: false, error: 'connect ECONNREFUSED', code: 'ECONNREFUSED' }, podsReached: [] }, ctx(), 'x'))).toEqual([
      'status: expected 200, request failed: connect ECONNREFUSED (ECONNREFUSED)',
    ]);
  });

  it('checks servicePort through the port the echo pod answered on', () => {
    const named = echoService({ ports: [{ name: 'http', port: 8080, targetPort: 3000 }] });
    const res = response(200, [], echoBody());
    expect(evaluateHttp({ status: 200, servicePort: { number: 8080, name: 'http' } }, { result: res, podsReached: [] }, ctx(named), 'x')).toEqual([]);
    expect(messages(evaluateHttp({ status: 200, servicePort: { number: 8080, name: 'web' } }, { result: res, podsReached: [] }, ctx(named), 'x'))[0]).toContain(
      'expected Service port 8080 (web), the request came through port 8080 (http)',
    );
    const two = echoService({ ports: [{ name: 'a', port: 80, targetPort: 3000 }, { name: 'b', port: 81, targetPort: 3001 }] });
    expect(evaluateHttp({ status: 200, servicePort: { number: 81 } }, { result: response(200, [], echoBody({ httpPort: '3001' })), podsReached: [] }, ctx(two), 'x')).toEqual([]);
    const same = echoService({ ports: [{ name: 'a', port: 80, targetPort: 3000 }, { name: 'b', port: 81, targetPort: 3000 }] });
    expect(messages(evaluateHttp({ status: 200, servicePort: { number: 81 } }, { result: res, podsReached: [] }, ctx(same), 'x'))[0]).toContain('cannot tell which port');
  });

  it('checks the leaf certificate like Go (first DNS SAN, VerifyHostname)', () => {
    const cert: PeerCertificateInfo = { pem: '', dnsNames: ['*.foo.test', 'bar.test'], ipAddresses: ['10.0.0.1'], validFrom: '', validTo: '' };
    expect(certificateValidForHost(cert, 'a.foo.test')).toBe(true);
    expect(certificateValidForHost(cert, 'a.b.foo.test')).toBe(false);
    expect(certificateValidForHost(cert, '10.0.0.1')).toBe(true);
    const res = response(200, [], echoBody(), { peerCertificate: cert });
    const t = { status: 200, tls: { leafCertFirstDnsName: 'bar.test', leafCertValidForHost: 'x.test' } };
    expect(messages(evaluateHttp(t, { result: res, podsReached: [] }, ctx(), 'x'))).toEqual([
      'tls: leafCertFirstDnsName expected "bar.test", got "*.foo.test" (SANs *.foo.test, bar.test)',
      'tls: leafCertValidForHost: the certificate (SANs *.foo.test, bar.test) is not valid for "x.test"',
    ]);
    expect(messages(evaluateHttp(t, { result: response(200, [], echoBody()), podsReached: [] }, ctx(), 'x'))).toEqual(['tls: the final response did not come over TLS']);
  });

  it('compares redirect components, ignoring a default port', () => {
    const want = { scheme: 'https', host: 'secure.test', path: '/a/b', query: 'x=1' };
    expect(redirectProblems(want, 'https://secure.test/a/b?x=1', 'http://secure.test/a/b?x=1')).toEqual([]);
    expect(redirectProblems(want, 'https://secure.test:443/a/b?x=1', 'http://secure.test/')).toEqual([]);
    expect(redirectProblems(want, 'https://secure.test:8443/a/b', 'http://secure.test/').join('\n')).toMatch(/port: expected the default port of https, got 8443[\s\S]*query: expected "x=1", got ""/);
    expect(redirectProblems(want, undefined, 'http://x/')).toEqual(['no Location header']);
    expect(redirectProblems({ path: '/p' }, '/p?y', 'http://h/q')).toEqual([]);
  });

  it('splits binding problems from notes per asserted', () => {
    const c = { id: 'x', kind: 'http', source: 'upstream', expect: { status: 200, backendPath: '/' }, asserted: ['status'] } as unknown as HttpCase;
    const problems = [{ key: 'backendPath', message: 'backendPath: x' }];
    expect(splitProblems(problems, bindingKeys(c, false))).toEqual({ failures: ['backendPath: x'], notes: [] });
    expect(splitProblems(problems, bindingKeys(c, true))).toEqual({ failures: [], notes: ['backendPath: x'] });
  });

  it('reads echo replies, distinct pods and load-balancer addresses', () => {
    expect(captureEcho(Buffer.from('not json'))).toBeUndefined();
    expect(captureEcho(Buffer.from('{"message":"x"}'))).toBeUndefined();
    expect(distinctPods([Buffer.from(JSON.stringify(echoBody())), Buffer.from(JSON.stringify(echoBody({ pod: 'p2' }))), Buffer.from('x')]).size).toBe(2);
    expect(loadBalancerAddresses({ status: { loadBalancer: { ingress: [{ ip: '' }, { hostname: 'lb.test' }, { ip: '1.2.3.4' }] } } })).toEqual(['lb.test', '1.2.3.4']);
    expect(loadBalancerAddresses({ status: { loadBalancer: {} } })).toEqual([]);
    expect(loadBalancerAddresses(undefined)).toEqual([]);
  });
});

describe('ingress requests', () => {
  const req = { scheme: 'http' as const, host: 'a.test', path: '/x?q=1', method: 'PUT', headers: { 'user-agent': 'Go-http-client/1.1' }, followRedirects: true };

  it('sets Host from the case or the dialled address, SNI from sni or host', () => {
    expect(firstHop(req, '10.1.2.3')).toEqual({ scheme: 'http', host: 'a.test', sni: '', path: '/x?q=1', method: 'PUT' });
    expect(firstHop({ ...req, host: null }, '10.1.2.3').host).toBe('10.1.2.3');
    expect(firstHop({ ...req, scheme: 'https', sni: 's.test' }, '10.1.2.3').sni).toBe('s.test');
    expect(firstHop({ ...req, scheme: 'https' }, '10.1.2.3').sni).toBe('a.test');
    expect(requestHeaders('a.test', { 'user-agent': 'UA' })).toEqual([['Host', 'a.test'], ['User-Agent', 'UA']]);
    expect(requestHeaders('a.test', {})).toEqual([['Host', 'a.test'], ['User-Agent', 'Go-http-client/1.1']]);
  });

  it('follows a redirect like the upstream client: same method, query dropped, SNI = host', () => {
    const first = firstHop(req, '10.1.2.3');
    expect(nextHop(first, 'https://secure.test:8443/a/b?x=1')).toEqual({ scheme: 'https', host: 'secure.test', sni: 'secure.test', path: '/a/b', method: 'PUT' });
    expect(nextHop(first, '/rel')).toEqual({ scheme: 'http', host: 'a.test', sni: '', path: '/rel', method: 'PUT' });
    expect(nextHop(first, 'ftp://x/')).toContain('scheme ftp');
    expect(hopUrl(first)).toBe('http://a.test/x?q=1');
  });
});

describe('ingress objects', () => {
  const group = minimalGroup() as GroupFile;

  it('builds Services, EndpointSlices, IngressClasses and Namespaces', () => {
    const svc = echoService({ namespace: undefined, ports: [{ name: 'http', port: 8080, targetPort: 3000 }] });
    expect(serviceObject(group, svc).spec).toEqual({ type: 'NodePort', selector: { app: 'ing-echo' }, ports: [{ name: 'http', port: 8080, targetPort: 3000, protocol: 'TCP' }] });
    const slice = endpointSliceObject(group, svc, [{ name: 'p1', namespace: 'ns', ip: '127.78.1.1' }], 'abcde');
    expect(slice.metadata).toMatchObject({ name: 'echo-abcde', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'echo' } });
    expect(slice.ports).toEqual([{ name: 'http', port: 3000, protocol: 'TCP' }]);
    expect((slice.endpoints as any[])[0]).toMatchObject({ addresses: ['127.78.1.1'], conditions: { ready: true } });
    expect(ingressClassObject({ name: 'c', controller: 'x', isDefaultClass: true }).metadata.annotations).toEqual({ 'ingressclass.kubernetes.io/is-default-class': 'true' });
    expect(ingressClassObject({ name: 'c', controller: 'x', isDefaultClass: false }).metadata.annotations).toBeUndefined();
    expect(groupNamespaces({ ...group, services: [echoService({ namespace: 'other' })] })).toEqual(['ns', 'other']);
    expect(podName('ing-echo-', 'hash123')).toMatch(/^ing-echo-hash123-[a-z0-9]{5}$/);
  });
});
