// The runner's new case kinds and runner pieces, run against the echo backends directly (no
// gateway: the "Gateway address" is the echo's own, the port offset maps the listener port onto
// the echo's port): gRPC cases and their status derivation, gRPC and L4 weightedDistribution,
// dnsQuery, udpEcho, echoRepeat; staticAddressInjection, the new mutations and status checks, and
// echo pods read from the suite's Deployments. Each has a negative twin that must fail.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { join } from 'node:path';
import { startEchoBasic, type RunningEcho } from '../support/demo/echo-basic.ts';
import { GRPC_ECHO_SERVICE } from '../support/demo/grpc-echo.ts';
import { echoContainer } from './gateway-api/environment.ts';
import { backendTlsProblems } from './gateway-api/expect.ts';
import { runGrpcCase } from './gateway-api/grpc-traffic.ts';
import { runL4Case } from './gateway-api/l4-traffic.ts';
import { validateCaseFile } from './gateway-api/schema.ts';
import { canBind, caseWithStaticAddresses, chooseStaticAddresses, injectStaticAddresses } from './gateway-api/static-addresses.ts';
import { evaluateStatusCheck, StatusIndex, type StatusObject } from './gateway-api/status-checks.ts';
import type { CaseFile, GrpcCase, L4Case, StaticAddressInjection } from './gateway-api/types.ts';
import { directTrafficEnv } from './direct-env.ts';
import { codeForHttpStatus, deriveGrpcCode, GrpcConnection } from './lib/grpc-client.ts';
import { parseYamlObjects, type KObject } from './lib/manifest-store.ts';
import { applyPatch, dataKeyOf, resolveDataValue, setDataKeys, validateMutation } from './lib/mutations.ts';

const HOST = '127.0.0.1';
const LISTENER_PORT = 80;
const SHARED = join(import.meta.dirname, '..', '..', '..', 'shared', 'conformance', 'gateway-api');
const running: RunningEcho[] = [];

afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()));
});

async function start(pod: string, env: Record<string, string>, mode?: 'dns'): Promise<RunningEcho> {
  const r = await startEchoBasic({ host: HOST, env: { POD_NAME: pod, NAMESPACE: 'gateway-conformance-infra', ...env }, ...(mode ? { mode } : {}) });
  running.push(r);
  return r;
}

/**
 * The runner's view: Gateway `ns/gw` is HOST, and its listener port 80 is the given real port. A
 * passing case ends as soon as it converged, so the budget only bounds how long a failing one tries
 * (short where the test expects a failure, roomy where a loaded machine must not fail a pass).
 */
const directEnv = (port: number, budgetMs = 10_000) => directTrafficEnv(HOST, port - LISTENER_PORT, { convergence: { requiredSuccesses: 3, pollIntervalMs: 50, budgetMs } });
const FAILING_BUDGET_MS = 1000;

const portOf = (r: RunningEcho, name: string) => r.ports.find((p) => p.name === name)!.port;

describe('gRPC cases against the gRPC echo', () => {
  let echo: RunningEcho;
  beforeAll(async () => {
    echo = await start('grpc-infra-backend-v1-6c8d9f7b5-x2k9p', { GRPC_ECHO_SERVER: '1', HTTP_PORT: '0' });
  });

  const grpcCase = (over: Partial<GrpcCase> = {}, method = 'Echo'): GrpcCase => ({
    name: 'c',
    target: { gateway: 'ns/gw', port: LISTENER_PORT, scheme: 'http' },
    request: { protocol: 'grpc', authority: null, service: GRPC_ECHO_SERVICE, method, metadata: { 'x-version': 'one' } },
    expect: { grpcCode: 'OK', backend: { podNamePrefix: 'grpc-infra-backend-v1', namespace: 'gateway-conformance-infra' }, backendRequest: { fullyQualifiedMethod: `/${GRPC_ECHO_SERVICE}/${method}` } },
    ...over,
  });

  it('passes an OK case that names the right pod and method', async () => {
    const c = grpcCase();
    expect(validateCaseFile({ schema: 'gwapi-conformance-case/v1', name: 'T', features: [], manifests: [], statusChecks: [], cases: [c] })).toEqual([]);
    expect(await runGrpcCase(c, directEnv(portOf(echo, 'grpc')))).toEqual([]);
    expect(await runGrpcCase(grpcCase({}, 'EchoTwo'), directEnv(portOf(echo, 'grpc')))).toEqual([]);
  });

  it('fails when another pod or method answered', async () => {
    const wrongPod = grpcCase({ expect: { grpcCode: 'OK', backend: { podNamePrefix: 'grpc-infra-backend-v2', namespace: 'gateway-conformance-infra' } } });
    expect((await runGrpcCase(wrongPod, directEnv(portOf(echo, 'grpc'), FAILING_BUDGET_MS))).join()).toContain('backend.pod: expected prefix "grpc-infra-backend-v2"');
    const wrongMethod = grpcCase({ expect: { grpcCode: 'OK', backendRequest: { fullyQualifiedMethod: `/${GRPC_ECHO_SERVICE}/EchoTwo` } } });
    expect((await runGrpcCase(wrongMethod, directEnv(portOf(echo, 'grpc'), FAILING_BUDGET_MS))).join()).toContain('fullyQualifiedMethod');
  });

  it('reads UNIMPLEMENTED for EchoThree, and notGrpcCode fails at once on a listed code', async () => {
    expect(await runGrpcCase(grpcCase({ expect: { grpcCode: 'UNIMPLEMENTED' } }, 'EchoThree'), directEnv(portOf(echo, 'grpc')))).toEqual([]);
    expect(await runGrpcCase(grpcCase({ expect: { notGrpcCode: ['OK'] } }, 'EchoThree'), directEnv(portOf(echo, 'grpc')))).toEqual([]);
    const problems = await runGrpcCase(grpcCase({ expect: { notGrpcCode: ['OK'] } }), directEnv(portOf(echo, 'grpc')));
    // Decided by the first attempt, not by the budget.
    expect(problems).toEqual(['the RPC ended OK (OK), which this case must never see (attempt 1)']);
  });

  it('weightedDistribution counts the pods of OK replies, per-RPC connections included', async () => {
    const weighted = (weights: Record<string, number>, connectionPerRequest: boolean): GrpcCase => ({
      ...grpcCase(),
      kind: 'weightedDistribution',
      expect: { grpcCode: 'OK', weights },
      connectionPerRequest,
      randomJitter: { metadata: 'x-jitter' },
      distribution: { totalRequests: 20, concurrency: 4, absoluteTolerance: 0.05, maxAttempts: 1 },
    });
    expect(await runGrpcCase(weighted({ 'grpc-infra-backend-v1': 1 }, true), directEnv(portOf(echo, 'grpc')))).toEqual([]);
    expect(await runGrpcCase(weighted({ 'grpc-infra-backend-v1': 1 }, false), directEnv(portOf(echo, 'grpc')))).toEqual([]);
    const wrong = await runGrpcCase(weighted({ 'grpc-infra-backend-v1': 0.5, 'grpc-infra-backend-v2': 0.5 }, false), directEnv(portOf(echo, 'grpc')));
    expect(wrong.join()).toContain('grpc-infra-backend-v2: share 0.000');
  });
});

describe('gRPC status derivation', () => {
  it('maps as Go does: grpc-status first, then the HTTP status, else INTERNAL', () => {
    expect(deriveGrpcCode({ httpStatus: 200, contentType: 'application/grpc', grpcStatus: '12' })).toBe('UNIMPLEMENTED');
    expect(deriveGrpcCode({ httpStatus: 404, contentType: 'text/plain', grpcStatus: '14' })).toBe('UNAVAILABLE');
    expect([400, 401, 403, 404, 429, 502, 503, 504, 500].map(codeForHttpStatus)).toEqual([
      'INTERNAL', 'UNAUTHENTICATED', 'PERMISSION_DENIED', 'UNIMPLEMENTED', 'UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE', 'UNKNOWN',
    ]);
    expect(deriveGrpcCode({ httpStatus: 200, contentType: 'application/grpc', grpcStatus: undefined })).toBe('INTERNAL');
  });

  describe('over the wire', () => {
    let server: http2.Http2Server;
    let port: number;
    const seen: http2.IncomingHttpHeaders[] = [];
    beforeAll(async () => {
      server = http2.createServer();
      server.on('stream', (stream, headers) => {
        seen.push(headers);
        stream.on('error', () => {}); // the reset below is an error on this side
        const path = String(headers[':path']);
        if (path.endsWith('/NotFound')) stream.respond({ ':status': 404, 'content-type': 'text/plain' }, { endStream: true });
        else if (path.endsWith('/Unavailable')) stream.respond({ ':status': 503 }, { endStream: true });
        else if (path.endsWith('/TrailersOnly')) stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
        else if (path.endsWith('/NoStatus')) {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
          stream.end(Buffer.from([0, 0, 0, 0, 0]));
        } else if (path.endsWith('/Reset')) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        else if (path.endsWith('/Hang')) stream.on('close', () => {});
      });
      await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
      port = (server.address() as net.AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('sends the README headers and frame, and derives 404/503/trailers-only/no-status/reset/deadline', async () => {
      const conn = await GrpcConnection.dial(HOST, port, 2000);
      const call = (m: string, deadlineMs = 2000) => conn.call({ path: `/svc/${m}`, authority: 'gw.example:80', metadata: [['x-a', 'b']], deadlineMs });
      expect((await call('NotFound')).code).toBe('UNIMPLEMENTED');
      expect((await call('Unavailable')).code).toBe('UNAVAILABLE');
      expect((await call('TrailersOnly')).code).toBe('UNIMPLEMENTED');
      expect((await call('NoStatus')).code).toBe('INTERNAL');
      expect((await call('Reset')).code).toBe('UNAVAILABLE');
      expect((await call('Hang', 200)).code).toBe('DEADLINE_EXCEEDED');
      conn.close();
      expect(seen[0]).toMatchObject({ ':method': 'POST', ':scheme': 'http', ':path': '/svc/NotFound', ':authority': 'gw.example:80', 'content-type': 'application/grpc', te: 'trailers', 'x-a': 'b' });
      expect(seen[0]['grpc-timeout']).toMatch(/^\d+m$/);
    });

    it('a refused dial fails the attempt', async () => {
      const closed = net.createServer();
      await new Promise<void>((resolve) => closed.listen(0, HOST, resolve));
      const freePort = (closed.address() as net.AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      await expect(GrpcConnection.dial(HOST, freePort, 1000)).rejects.toThrow();
    });
  });
});

describe('L4 kinds against the TCP, UDP and DNS backends', () => {
  let tcp: RunningEcho;
  let udp: RunningEcho;
  let dns: RunningEcho;
  beforeAll(async () => {
    tcp = await start('tcp-backend-v1-6c8d9f7b5-x2k9p', { TCP_ECHO_SERVER: '1', TCP_PORT: '0', TLS_PORT: '0' });
    udp = await start('udp-backend-v1-6c8d9f7b5-x2k9p', { UDP_ECHO_SERVER: '1', UDP_PORT: '0', SERVICE_NAME: 'udp-backend-v1' });
    dns = await start('coredns-6c8d9f7b5-x2k9p', { DNS_PORT: '0' }, 'dns');
  });
  const QUICK = { intervalSeconds: 0.05, budgetSeconds: 0.5 };
  const target = (scheme: 'tcp' | 'udp') => ({ gateway: 'ns/gw', port: LISTENER_PORT, scheme });

  it('dnsQuery passes on an answer with the same id, fails against a server that is no DNS', async () => {
    const q: L4Case = { name: 'q', kind: 'dnsQuery', target: target('udp') as { gateway: string; port: number; scheme: 'udp' }, request: { name: 'foo.bar.com.', type: 'A', recursionDesired: true }, expect: { anyResponse: true }, retry: QUICK };
    expect(await runL4Case(q, directEnv(portOf(dns, 'dns')))).toEqual([]);
    expect((await runL4Case(q, directEnv(portOf(udp, 'udp')))).join()).toContain('not a DNS message');
  });

  it('udpEcho compares service and namespace, and retries a mismatch until the budget is spent', async () => {
    const u = (backend: { service: string; namespace: string }): L4Case => ({ name: 'u', kind: 'udpEcho', target: target('udp') as { gateway: string; port: number; scheme: 'udp' }, request: { payload: 'ping' }, expect: { backend }, retry: QUICK });
    expect(await runL4Case(u({ service: 'udp-backend-v1', namespace: 'gateway-conformance-infra' }), directEnv(portOf(udp, 'udp')))).toEqual([]);
    expect(await runL4Case(u({ service: '', namespace: '' }), directEnv(portOf(udp, 'udp')))).toEqual([]);
    expect((await runL4Case(u({ service: 'udp-backend-v2', namespace: 'gateway-conformance-infra' }), directEnv(portOf(udp, 'udp')))).join()).toContain('no conclusive attempt');
  });

  it('echoRepeat: every exchange from one backend, over TCP and UDP; another backend fails at once', async () => {
    const rep = (scheme: 'tcp' | 'udp', backendName: string): L4Case => ({
      name: 'r',
      kind: 'echoRepeat',
      target: target(scheme),
      ...(scheme === 'udp' ? { request: { payload: 'x' } } : {}),
      repeat: 5,
      attemptTimeoutSeconds: 2,
      onTransportError: 'fail',
      retry: null,
      expect: { backendName },
    });
    expect(await runL4Case(rep('tcp', 'tcp-backend-v1'), directEnv(portOf(tcp, 'tcp')))).toEqual([]);
    expect(await runL4Case(rep('udp', 'udp-backend-v1'), directEnv(portOf(udp, 'udp')))).toEqual([]);
    expect((await runL4Case(rep('tcp', 'tcp-backend-v2'), directEnv(portOf(tcp, 'tcp')))).join()).toContain('exchange 1/5 answered by tcp-backend-v1-6c8d9f7b5-x2k9p (backend tcp-backend-v1), expected tcp-backend-v2');
    // A DNS server's reply is no echo JSON: an exchange error, which "fail" turns into a failure.
    expect((await runL4Case(rep('udp', 'udp-backend-v1'), directEnv(portOf(dns, 'dns')))).join()).toContain('exchange 1/5');
  });

  it('weightedDistribution over TCP and UDP, after its warm-up steps', async () => {
    const w = (scheme: 'tcp' | 'udp', weights: Record<string, number>): L4Case => ({
      name: 'w',
      kind: 'weightedDistribution',
      target: target(scheme),
      ...(scheme === 'udp' ? { request: { payload: 'x' } } : {}),
      warmUp: scheme === 'tcp' ? ['tcpConnect', 'tcpEchoOnce'] : ['udpAnyReply'],
      expect: { weights },
      distribution: { totalRequests: 20, concurrency: 4, maxAttempts: 1 },
    });
    expect(await runL4Case(w('tcp', { 'tcp-backend-v1': 1, 'tcp-backend-v2': 0 }), directEnv(portOf(tcp, 'tcp')))).toEqual([]);
    expect(await runL4Case(w('udp', { 'udp-backend-v1': 1 }), directEnv(portOf(udp, 'udp')))).toEqual([]);
    expect((await runL4Case(w('tcp', { 'tcp-backend-v2': 1 }), directEnv(portOf(tcp, 'tcp')))).join()).toContain('tcp-backend-v1: not an expected backend');
  });
});

describe('staticAddressInjection', () => {
  const file = join(SHARED, 'cases-new-kinds', 'GatewayStaticAddresses.json');
  const load = () => JSON.parse(readFileSync(file, 'utf8')) as CaseFile;
  const inj: StaticAddressInjection = {
    gateway: 'gateway-conformance-infra/gateway-static-addresses',
    placeholders: { usable: 'PLACEHOLDER_USABLE_ADDRS', unusable: 'PLACEHOLDER_UNUSABLE_ADDRS' },
    usable: { type: 'IPAddress', choose: '', substitutes: '{USABLE_ADDRESS}' },
    unusable: { type: 'IPAddress', choose: '', substitutes: '{UNUSABLE_ADDRESS}' },
    resultOrder: [
      { type: 'test/fake-invalid-type', value: 'fake address teehee!' },
      { type: 'IPAddress', value: '{UNUSABLE_ADDRESS}' },
      { type: 'IPAddress', value: '{USABLE_ADDRESS}' },
    ],
  };
  const gateway = (addresses: unknown[]): KObject => ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gateway-static-addresses', namespace: 'gateway-conformance-infra' }, spec: { addresses } });

  it('rewrites spec.addresses as upstream: the fake entry kept, then unusable, then usable', () => {
    const gw = gateway([{ type: 'test/fake-invalid-type', value: 'fake address teehee!' }, { value: 'PLACEHOLDER_UNUSABLE_ADDRS' }, { value: 'PLACEHOLDER_USABLE_ADDRS' }]);
    expect(injectStaticAddresses(gw, inj, { usable: '127.201.3.4', unusable: '192.0.2.10' })).toEqual([]);
    expect(gw.spec.addresses).toEqual([
      { type: 'test/fake-invalid-type', value: 'fake address teehee!' },
      { type: 'IPAddress', value: '192.0.2.10' },
      { type: 'IPAddress', value: '127.201.3.4' },
    ]);
  });

  it('says so when a placeholder is missing (the result then differs from resultOrder)', () => {
    const problems = injectStaticAddresses(gateway([{ value: 'PLACEHOLDER_USABLE_ADDRS' }]), inj, { usable: '127.201.3.4', unusable: '192.0.2.10' });
    expect(problems.join()).toContain('no spec.addresses entry PLACEHOLDER_UNUSABLE_ADDRS');
    expect(problems.join()).toContain('resultOrder says');
  });

  it('substitutes the chosen values in checks and mutations (removeWhere included), not in the injection', () => {
    const tc = caseWithStaticAddresses(load(), { usable: '127.201.3.4', unusable: '192.0.2.10' });
    const text = JSON.stringify({ ...tc, staticAddressInjection: undefined });
    expect(text).not.toContain('{USABLE_ADDRESS}');
    expect(text).not.toContain('{UNUSABLE_ADDRESS}');
    const removal = tc.followUp![1].mutations[0];
    expect(removal).toMatchObject({ removeWhere: { 'spec.addresses': { value: '192.0.2.10' } } });
    expect(tc.staticAddressInjection!.usable.substitutes).toBe('{USABLE_ADDRESS}');
    const gw = gateway([{ type: 'IPAddress', value: '192.0.2.10' }, { type: 'IPAddress', value: '127.201.3.4' }]) as unknown as Record<string, unknown>;
    expect((applyPatch(gw, removal as never) as KObject).spec.addresses).toEqual([{ type: 'IPAddress', value: '127.201.3.4' }]);
  });

  it('chooses a bindable loopback address outside the bind range and a TEST-NET-1 address that does not bind', async () => {
    const v = await chooseStaticAddresses('127.150.0.0/16');
    expect(v.usable).toMatch(/^127\./);
    expect(v.usable).not.toBe('127.0.0.1');
    expect(v.usable.startsWith('127.150.')).toBe(false);
    expect(await canBind(v.usable)).toBe(true);
    expect(v.unusable).toMatch(/^192\.0\.2\./);
    expect(await canBind(v.unusable)).toBe(false);
  });
});

describe('mutations of the new kinds', () => {
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca', namespace: 'ns' }, data: { 'ca.crt': 'PEM-A' } };
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'ns' }, data: { 'tls.crt': Buffer.from('CERT').toString('base64') } };
  const lookup = (kind: string, ref: string) => [cm, secret].find((o) => o.kind === kind && `${o.metadata.namespace}/${o.metadata.name}` === ref);

  it('validates create, setData and removeWhere strictly', () => {
    expect(validateMutation({ op: 'create', object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'ns' }, data: { 'ca.crt': { copyFrom: { kind: 'ConfigMap', object: 'ns/ca', key: 'ca.crt' } } } }, waitBeforeSeconds: 1 })).toEqual([]);
    expect(validateMutation({ op: 'create', object: { kind: 'ConfigMap' } })).toContain('a create mutation needs object with apiVersion, kind and metadata.name');
    expect(validateMutation({ op: 'patch', kind: 'ConfigMap', name: 'ca', setData: { 'ca.crt': { copyFrom: { kind: 'Pod', object: 'ns/x', key: 'k' } } } }).join()).toContain('copyFrom');
    expect(validateMutation({ op: 'patch', kind: 'Gateway', name: 'g', setData: { a: '' } })).toContain('setData applies to a ConfigMap or Secret only');
    expect(validateMutation({ op: 'patch', kind: 'Gateway', name: 'g', removeWhere: { 'spec.addresses': { value: 'x' } } })).toEqual([]);
  });

  it('copyFrom reads the current value (a Secret decoded); setData stores literal keys, empty strings too', () => {
    expect(resolveDataValue({ copyFrom: { kind: 'Secret', object: 'ns/s', key: 'tls.crt' } }, lookup)).toBe('CERT');
    expect(() => resolveDataValue({ copyFrom: { kind: 'ConfigMap', object: 'ns/ca', key: 'nope' } }, lookup)).toThrow('has no key nope');
    const emptied = applyPatch(cm, { kind: 'ConfigMap', name: 'ca', op: 'patch', setData: { 'ca.crt': '' } });
    expect(emptied.data).toEqual({ 'ca.crt': '' });
    const s = structuredClone(secret) as Record<string, unknown>;
    setDataKeys(s, { 'ca.crt': 'PEM-B' });
    expect(dataKeyOf(s, 'ca.crt')).toBe('PEM-B');
    expect((s.data as Record<string, string>)['ca.crt']).toBe(Buffer.from('PEM-B').toString('base64'));
  });
});

describe('status checks of the new kinds', () => {
  const gw = (addresses: unknown[], gen = 2): StatusObject => ({
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'ns', generation: gen },
    status: { addresses, conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: 2 }] },
  });
  const ctx = (items: StatusObject[]) => ({ controllerName: 'c', index: new StatusIndex(items), generationsBefore: new Map(), declaredGateways: [], state: {} });
  const check = { check: 'gatewayStatusAddresses' as const, gateway: 'ns/gw', count: 1, mustContain: [{ type: 'IPAddress', value: '127.201.3.4' }], mustNotContain: ['192.0.2.10'] };

  it('gatewayStatusAddresses: exact count, the wanted address with its type, none of the others, conditions current', () => {
    expect(evaluateStatusCheck(check, ctx([gw([{ type: 'IPAddress', value: '127.201.3.4' }])]))).toEqual([]);
    expect(evaluateStatusCheck(check, ctx([gw([{ type: 'IPAddress', value: '127.201.3.4' }, { type: 'IPAddress', value: '192.0.2.10' }])])).join()).toContain('contains 192.0.2.10');
    expect(evaluateStatusCheck(check, ctx([gw([{ type: 'Hostname', value: '127.201.3.4' }])])).join()).toContain('lacks IPAddress 127.201.3.4');
    expect(evaluateStatusCheck(check, ctx([gw([{ type: 'IPAddress', value: '127.201.3.4' }], 3)])).join()).toContain('not at generation 3');
  });

  it('backendTLSPolicyCondition looks at the named ancestor and waits while any entry is stale', () => {
    const policy = (observed: number): StatusObject => ({
      kind: 'BackendTLSPolicy',
      metadata: { name: 'p', namespace: 'ns', generation: 2 },
      status: { ancestors: [{ ancestorRef: { name: 'gw', namespace: 'ns' }, controllerName: 'c', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: observed }] }] },
    });
    const c = { check: 'backendTLSPolicyCondition' as const, policy: 'ns/p', ancestor: 'ns/gw', condition: { type: 'Accepted', status: 'True', reason: 'Accepted' } };
    expect(evaluateStatusCheck(c, ctx([policy(2)]))).toEqual([]);
    expect(evaluateStatusCheck(c, ctx([policy(1)]))).not.toEqual([]);
    expect(evaluateStatusCheck({ ...c, ancestor: 'ns/other' }, ctx([policy(2)]))).not.toEqual([]);
  });

  it('backendRequest.tls: SNI and the presented client certificate, by DER', () => {
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from('leaf-der').toString('base64')}\n-----END CERTIFICATE-----\n`;
    const req = { method: 'GET', scheme: 'http' as const, path: '/', baseUrl: 'http://x', secretCertPem: () => pem };
    const want = { serverName: 'abc.example.com', peerCertificateFrom: 'ns/client' };
    expect(backendTlsProblems(want, { tls: { version: 'TLSv1.3', serverName: 'abc.example.com', cipherSuite: '', peerCertificates: [pem] } }, req)).toEqual([]);
    expect(backendTlsProblems(want, { tls: { version: 'TLSv1.3', serverName: 'abc.example.com', cipherSuite: '' } }, req).join()).toContain('did not see the certificate');
    expect(backendTlsProblems(want, {}, req).join()).toContain('without TLS');
  });
});

describe('echo pods from the suite Deployments', () => {
  const objects = () => [
    ...parseYamlObjects(readFileSync(join(SHARED, 'manifests', 'base', 'manifests.yaml'), 'utf8'), 'base'),
    ...parseYamlObjects(readFileSync(join(SHARED, 'manifests', 'tests', 'gateway-tls-backend-client-certificate.yaml'), 'utf8'), 'test'),
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls-checks-certificate', namespace: 'gateway-conformance-infra' }, data: { 'tls.crt': Buffer.from('CRT').toString('base64'), 'tls.key': Buffer.from('KEY').toString('base64') } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'tls-checks-ca-certificate', namespace: 'gateway-conformance-infra' }, data: { 'ca.crt': 'CA' } },
  ] as KObject[];
  const deployment = (name: string) => objects().find((o) => o.kind === 'Deployment' && o.metadata.name === name)!;
  const pod = { name: 'p-abc-12345', ip: '127.77.1.9' };

  it('reads mode, identity and mounted files as the kubelet would hand them over', () => {
    const grpc = echoContainer(deployment('grpc-infra-backend-v1'), pod, objects());
    expect(grpc).toMatchObject({ mode: 'grpc', env: { POD_NAME: 'p-abc-12345', NAMESPACE: 'gateway-conformance-infra', GRPC_ECHO_SERVER: '1', TLS_SERVER_CERT: '/etc/secret-volume/crt' } });
    expect('files' in grpc && grpc.files).toEqual({ '/etc/secret-volume/crt': 'CRT', '/etc/secret-volume/key': 'KEY' });
    expect(echoContainer(deployment('coredns'), pod, objects())).toMatchObject({ mode: 'dns' });
    expect(echoContainer(deployment('tcp-backend'), pod, objects())).toMatchObject({ mode: 'tcp' });
    const client = echoContainer(deployment('tls-backend-with-client-cert-validation'), pod, objects());
    expect(client).toMatchObject({ mode: 'http', env: { TLS_CLIENT_CACERTS: '/etc/configmap-volume/ca' }, files: { '/etc/configmap-volume/ca': 'CA', '/etc/secret-volume/crt': 'CRT' } });
  });

  it('refuses an image it cannot stand in for', () => {
    const d = structuredClone(deployment('coredns'));
    d.spec.template.spec.containers[0].image = 'nginx:1.27';
    expect(echoContainer(d, pod, objects())).toEqual({ problem: expect.stringContaining('neither echo-basic nor CoreDNS') });
  });
});
