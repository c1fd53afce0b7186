// GRPCRoute end to end: a real `sluice run`, real gRPC echo backends (test/support/demo/grpc-echo.ts,
// grpc-js) and grpc-js clients over cleartext HTTP/2. Method and header matching pick the backend,
// filters change what the backend sees and what the client gets, a backend's status and message
// come through (trailers-only included), and the gateway's own errors are gRPC errors
// (UNIMPLEMENTED, UNAVAILABLE, DEADLINE_EXCEEDED) in trailers-only form.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { createSelfSignedServerCertificate, tlsSecretData, type CertificateBundle } from '../support/demo/certs.ts';
import { grpcEchoDefinition, startGrpcEcho, GRPC_ECHO_SERVICE, type GrpcEchoResponse, type GrpcEchoServer } from '../support/demo/grpc-echo.ts';
import { freePortOffset } from '../support/ports.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_YAML } from './backends.ts';

type EchoClient = grpc.Client & Record<'Echo' | 'EchoTwo' | 'EchoThree', (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: GrpcEchoResponse) => void) => void>;

const EchoClientCtor = (grpc.loadPackageDefinition(grpcEchoDefinition()).gateway_api_conformance as never as { echo_basic: { grpcecho: { GrpcEcho: new (target: string, creds: grpc.ChannelCredentials, options?: object) => EchoClient } } }).echo_basic.grpcecho.GrpcEcho;

/** A Service (no appProtocol: GRPCRoute makes it h2c) and its EndpointSlice on a local port. */
function grpcService(name: string, port: number): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  ports: [{name: grpc, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: default, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: grpc, port: ${port}}]
endpoints: [{addresses: [127.0.0.1]}]
`;
}

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example.com]
  rules:
  - name: echo-to-a
    matches: [{method: {service: ${GRPC_ECHO_SERVICE}, method: Echo}}]
    backendRefs: [{name: grpc-a, port: 8080}]
  - matches: [{method: {service: ${GRPC_ECHO_SERVICE}, method: EchoTwo}, headers: [{name: x-pick, value: b}]}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-added, value: by-gateway}]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-route, value: two-b}]}
    backendRefs: [{name: grpc-b, port: 8080}]
  - matches: [{method: {service: ${GRPC_ECHO_SERVICE}, method: EchoTwo}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: grpc-b, port: 8080}}
    backendRefs: [{name: grpc-a, port: 8080}]
  - matches: [{method: {method: EchoThree}}]
    backendRefs: [{name: grpc-a, port: 8080}]
  - matches: [{method: {service: missing.Backend}}]
    backendRefs: [{name: nowhere, port: 8080}]
  - matches: [{method: {service: dead.Backend}}]
    backendRefs: [{name: grpc-dead, port: 8080}]
  - matches: [{method: {service: slow.Backend}}]
    backendRefs: [{name: grpc-slow, port: 8080}]
  - matches: [{method: {service: no.Backends}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: regex, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  hostnames: [regex.example.com]
  rules:
  - matches: [{method: {type: RegularExpression, service: ".*\\\\.GrpcEcho", method: "Echo(Two)?"}}]
    backendRefs: [{name: grpc-b, port: 8080}]
---
# Streaming calls, mirrored: the request stream must flow up as it arrives.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: streams, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  hostnames: [streams.example.com]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: grpc-stream, port: 8080}}}]
    backendRefs: [{name: grpc-stream, port: 8080}]
---
# The HTTPS listener: gRPC over TLS, HTTP/2 chosen by ALPN.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: secure, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw-tls}]
  hostnames: [secure.example.com]
  rules:
  - backendRefs: [{name: grpc-b, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http-on-grpc-host, namespace: default, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["*.example.com"]
  rules:
  - backendRefs: [{name: grpc-a, port: 8080}]
`;

describe('GRPCRoute through a real sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let a: GrpcEchoServer;
  let b: GrpcEchoServer;
  let slow: net.Server;
  let streams: grpc.Server;
  let streamClient: grpc.Client & Record<'Bidi', (options: grpc.CallOptions) => grpc.ClientDuplexStream<{ v: string }, { v: string }>>;
  /** What the streaming backend received, per method (mirrored calls arrive twice). */
  const streamCalls: string[] = [];
  let port: number;
  let tlsPort: number;
  let certificate: CertificateBundle;
  const clients: grpc.Client[] = [];

  const client = (authority: string, tls = false): EchoClient => {
    const credentials = tls ? grpc.credentials.createSsl(Buffer.from(certificate.certPem)) : grpc.credentials.createInsecure();
    const options = tls ? { 'grpc.ssl_target_name_override': authority, 'grpc.default_authority': authority } : { 'grpc.default_authority': authority };
    const c = new EchoClientCtor(`127.0.0.1:${tls ? tlsPort : port}`, credentials, options);
    clients.push(c);
    return c;
  };
  const call = (c: EchoClient, method: 'Echo' | 'EchoTwo' | 'EchoThree', metadata: Record<string, string> = {}, deadlineMs = 5000) =>
    new Promise<{ err: grpc.ServiceError | null; res?: GrpcEchoResponse; headers: grpc.Metadata | null }>((resolve) => {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      let headers: grpc.Metadata | null = null;
      const unary = c[method]({}, md, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res?: GrpcEchoResponse) => resolve({ err, res, headers }));
      (unary as unknown as grpc.ClientUnaryCall).on('metadata', (m: grpc.Metadata) => (headers = m));
    });
  /** One raw HTTP/2 gRPC request: the response HEADERS (and whether they ended the stream) and the trailers. */
  const rawCall = (authority: string, path: string, extra: Record<string, string> = {}) =>
    new Promise<{ headers: http2.IncomingHttpHeaders; endStream: boolean; trailers: http2.IncomingHttpHeaders | null }>((resolve, reject) => {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on('error', reject);
      const stream = session.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers', ...extra });
      let result: { headers: http2.IncomingHttpHeaders; endStream: boolean; trailers: http2.IncomingHttpHeaders | null } | null = null;
      stream.on('response', (headers, flags) => (result = { headers, endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0, trailers: null }));
      stream.on('trailers', (trailers) => result && (result.trailers = trailers));
      stream.on('close', () => {
        session.close();
        if (result) resolve(result);
        else reject(new Error('no response'));
      });
      stream.on('error', reject);
      stream.resume();
      stream.end(Buffer.alloc(5));
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-grpc-'));
    a = await startGrpcEcho({ host: '127.0.0.1', port: 0, identity: { pod: 'grpc-a-1-x', namespace: 'default' } });
    b = await startGrpcEcho({ host: '127.0.0.1', port: 0, identity: { pod: 'grpc-b-1-x', namespace: 'default' } });
    // Accepts HTTP/2 and never answers: the gateway's grpc-timeout has to end the call.
    const slowServer = http2.createServer(() => {});
    slow = slowServer as unknown as net.Server;
    await new Promise<void>((resolve) => slowServer.listen(0, '127.0.0.1', resolve));
    // A bidirectional-streaming service: echoes each message as it comes.
    writeFileSync(join(dir, 'stream.proto'), 'syntax = "proto3"; package s; message M { string v = 1; } service S { rpc Bidi(stream M) returns (stream M); }');
    const streamPackage = grpc.loadPackageDefinition(protoLoader.loadSync(join(dir, 'stream.proto'))) as unknown as { s: { S: grpc.ServiceClientConstructor } };
    streams = new grpc.Server();
    streams.addService(streamPackage.s.S.service, {
      Bidi: (call: grpc.ServerDuplexStream<{ v: string }, { v: string }>) => {
        streamCalls.push('Bidi');
        call.on('data', (m: { v: string }) => call.write({ v: `echo:${m.v}` }));
        call.on('end', () => call.end());
      },
    });
    const streamPort = await new Promise<number>((resolve, reject) => streams.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const deadPort = await freePort(); // nothing listens there: connect refused
    const offset = await freePortOffset([80, 443]);
    port = 80 + offset;
    tlsPort = 443 + offset;
    certificate = await createSelfSignedServerCertificate({ dnsNames: ['secure.example.com'] });
    const tlsGateway = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw-tls, namespace: default}
spec:
  gatewayClassName: sluice
  listeners: [{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: secure-cert}]}}]
---
apiVersion: v1
kind: Secret
metadata: {name: secure-cert, namespace: default}
type: kubernetes.io/tls
data: ${JSON.stringify(tlsSecretData(certificate))}
`;
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [GATEWAY_YAML, tlsGateway, grpcService('grpc-a', a.port), grpcService('grpc-b', b.port), grpcService('grpc-dead', deadPort), grpcService('grpc-stream', streamPort), grpcService('grpc-slow', (slowServer.address() as net.AddressInfo).port)].join('---\n'),
    );
    writeFileSync(join(dir, 'routes.yaml'), ROUTES);
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset)]);
    streamClient = new streamPackage.s.S(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'streams.example.com' }) as unknown as typeof streamClient;
    clients.push(streamClient);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await sluice?.stop();
    streams?.forceShutdown();
    await Promise.all([a?.close(), b?.close(), new Promise((r) => (slow ? slow.close(r) : r(undefined)))]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('routes by service and method to the rule that matches, and the backend sees the method', async () => {
    const c = client('grpc.example.com');
    const echo = await call(c, 'Echo');
    expect(echo.err).toBeNull();
    expect(echo.res?.assertions?.context?.pod).toBe('grpc-a-1-x');
    expect(echo.res?.assertions?.fully_qualified_method).toBe(`/${GRPC_ECHO_SERVICE}/Echo`);
    const two = await call(c, 'EchoTwo');
    expect(two.err).toBeNull();
    expect(two.res?.assertions?.context?.pod).toBe('grpc-a-1-x');
  });

  it('HTTPS listener: gRPC over TLS with HTTP/2 by ALPN', async () => {
    const r = await call(client('secure.example.com', true), 'Echo');
    expect(r.err).toBeNull();
    expect(r.res?.assertions?.context?.pod).toBe('grpc-b-1-x');
    expect(r.res?.assertions?.authority).toBe('secure.example.com');
  });

  it('RequestMirror sends a copy of the call to the mirror backend, the answer comes from the real one', async () => {
    const before = b.received.filter((m) => m.endsWith('/EchoTwo')).length;
    const r = await call(client('grpc.example.com'), 'EchoTwo');
    expect(r.res?.assertions?.context?.pod).toBe('grpc-a-1-x');
    await waitFor('the mirrored EchoTwo at grpc-b', () => (b.received.filter((m) => m.endsWith('/EchoTwo')).length > before ? true : undefined), 5000);
  });

  it('a bidirectional stream on a mirrored rule flows both ways at once; the mirror gets the call when it ends', async () => {
    const before = streamCalls.length;
    const answers = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const call = streamClient.Bidi({ deadline: Date.now() + 5000 });
      // The second message is sent only after the first answer: a body held back until the client
      // half-closes would never get there.
      call.on('data', (m: { v: string }) => {
        got.push(m.v);
        if (got.length === 1) call.write({ v: 'two' });
        else call.end();
      });
      call.on('status', (status: grpc.StatusObject) => (status.code === grpc.status.OK ? resolve(got) : reject(new Error(`${status.code} ${status.details}`))));
      call.on('error', () => {});
      call.write({ v: 'one' });
    });
    expect(answers).toEqual(['echo:one', 'echo:two']);
    await waitFor('the mirrored Bidi call', () => (streamCalls.length >= before + 2 ? true : undefined), 5000);
  });

  it('a header match picks its rule first; request and response header modifiers apply', async () => {
    const r = await call(client('grpc.example.com'), 'EchoTwo', { 'x-pick': 'b' });
    expect(r.err).toBeNull();
    expect(r.res?.assertions?.context?.pod).toBe('grpc-b-1-x');
    expect(r.res?.assertions?.headers).toContainEqual({ key: 'x-added', value: 'by-gateway' });
    expect(r.headers?.get('x-route')).toEqual(['two-b']);
  });

  it('regular-expression method matches', async () => {
    const c = client('regex.example.com');
    expect((await call(c, 'Echo')).res?.assertions?.context?.pod).toBe('grpc-b-1-x');
    expect((await call(c, 'EchoTwo')).res?.assertions?.context?.pod).toBe('grpc-b-1-x');
    // EchoThree is outside the regex: no route, the gateway answers UNIMPLEMENTED.
    const three = await call(c, 'EchoThree');
    expect(three.err?.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(b.received.filter((m) => m.endsWith('/EchoThree'))).toEqual([]);
  });

  it("passes a backend's own status and message through (trailers-only answer relayed as one)", async () => {
    const r = await call(client('grpc.example.com'), 'EchoThree');
    expect(r.err?.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(r.err?.details).toBe('EchoThree is not implemented');
    const raw = await rawCall('grpc.example.com', `/${GRPC_ECHO_SERVICE}/EchoThree`);
    expect(raw.endStream).toBe(true);
    expect(raw.headers['grpc-status']).toBe('12');
  });

  it('no matching route: UNIMPLEMENTED as a trailers-only HTTP 200 response', async () => {
    const raw = await rawCall('grpc.example.com', '/unknown.Service/Method');
    expect(raw.headers[':status']).toBe(200);
    expect(raw.headers['content-type']).toBe('application/grpc');
    expect(raw.headers['grpc-status']).toBe('12');
    expect(raw.endStream).toBe(true);
    const r = await rawCall('grpc.example.com', '/no.Backends/Call');
    expect([r.headers['grpc-status'], r.endStream]).toEqual(['12', true]);
  });

  it('invalid backend, refused connection: UNAVAILABLE', async () => {
    const missing = await rawCall('grpc.example.com', '/missing.Backend/Call');
    expect([missing.headers[':status'], missing.headers['grpc-status'], missing.endStream]).toEqual([200, '14', true]);
    const dead = await rawCall('grpc.example.com', '/dead.Backend/Call');
    expect([dead.headers[':status'], dead.headers['grpc-status'], dead.endStream]).toEqual([200, '14', true]);
  });

  it('grpc-timeout bounds the call: DEADLINE_EXCEEDED from the gateway', async () => {
    const raw = await rawCall('grpc.example.com', '/slow.Backend/Call', { 'grpc-timeout': '300m' });
    expect([raw.headers[':status'], raw.headers['grpc-status'], raw.endStream]).toEqual([200, '4', true]);
  });

  it('an HTTP/1.1 request to a gRPC route gets a plain 415', async () => {
    const res = await request(`http://127.0.0.1:${port}/${GRPC_ECHO_SERVICE}/Echo`, { method: 'POST', headers: { host: 'grpc.example.com', 'content-type': 'application/json' }, body: '{}' });
    expect(res.statusCode).toBe(415);
    expect(await res.body.text()).toContain('gRPC');
  });

  it('status: the GRPCRoutes are Accepted; the younger HTTPRoute sharing their hostnames is not; a missing backend is ResolvedRefs=False', async () => {
    const find = async (kind: string, name: string) => (await sluice.status()).find((s) => s.kind === kind && s.metadata.name === name);
    const echo = await waitFor('GRPCRoute echo status', () => find('GRPCRoute', 'echo'));
    const conditions = echo.status.parents[0].conditions;
    expect(conditions).toContainEqual(expect.objectContaining({ type: 'Accepted', status: 'True' }));
    expect(conditions).toContainEqual(expect.objectContaining({ type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound' }));
    const http = await find('HTTPRoute', 'http-on-grpc-host');
    expect(http.status.parents[0].conditions).toContainEqual(expect.objectContaining({ type: 'Accepted', status: 'False', reason: 'NotAllowedByListeners' }));
    const gateway = await find('Gateway', 'gw');
    expect(gateway.status.listeners[0].supportedKinds.map((k: { kind: string }) => k.kind)).toEqual(['HTTPRoute', 'GRPCRoute']);
    expect(gateway.status.listeners[0].attachedRoutes).toBe(3); // echo, regex, streams (not the HTTPRoute)
  });
});
