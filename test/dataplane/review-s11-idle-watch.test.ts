// Review (session 11): the backend idle bound (--backend-idle-timeout, here 1 s) on coarse ticks
// (dataplane/upstream/idle-watch.ts) through a real `sluice run`, over HTTP/1.1 and HTTP/2 (h2c)
// upstreams: a backend that read the whole request body and then says nothing gets a 504 after the
// bound; an HTTP/2 backend that sent its whole body by its Content-Length but ends its stream
// later has that body relayed at once (it was held back until the stream's end, and the bound then
// cut the client with nothing sent).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGatewayYaml, serviceYaml } from '../e2e/backends.ts';
import { runServing, type SluiceProcess } from '../support/sluice-process.ts';

const BOUND_MS = 1_000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type Response = http.ServerResponse | http2.Http2ServerResponse;

describe('the backend idle bound (1 s) over HTTP/1.1 and HTTP/2 upstreams (sluice run)', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  let h1: http.Server;
  let h2: http2.Http2Server;
  /** Request bodies each backend read to their end, by protocol. */
  const bodies: Record<'h1' | 'h2', string[]> = { h1: [], h2: [] };
  /** Responses whose whole body went out but whose end waits for the test. */
  const unended: Response[] = [];

  /** /ok: answered; /whole-body-open: `hello` by its length, the end left to the test; else read the body and say nothing. */
  const handler = (protocol: 'h1' | 'h2') => (req: http.IncomingMessage | http2.Http2ServerRequest, res: Response): void => {
    if (req.url?.endsWith('/whole-body-open')) {
      // Both response kinds have these; their overloads just don't unify.
      (res as http.ServerResponse).writeHead(200, { 'content-length': '5' });
      (res as http.ServerResponse).write('hello');
      unended.push(res);
      return;
    }
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
    req.on('end', () => {
      bodies[protocol].push(body);
      if (req.url?.endsWith('/ok')) res.end(`ok ${body.length}`);
    });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-review-s11-idle-'));
    h1 = http.createServer(handler('h1'));
    h2 = http2.createServer(handler('h2'));
    await new Promise<void>((resolve) => h1.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const h2Service = serviceYaml('h2', { port: (h2.address() as net.AddressInfo).port }).replace('ports: [{name: http, port: 80}]', 'ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]');
    const routes = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: h1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /h2}}]
    backendRefs: [{name: h2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /retried}}]
    retry: {codes: [503], attempts: 1}
    backendRefs: [{name: h1, port: 80}]
`;
    writeFileSync(join(dir, 'all.yaml'), [httpGatewayYaml(80), serviceYaml('h1', { port: (h1.address() as net.AddressInfo).port }), h2Service, routes].join('---\n'));
    ({ sluice, port } = await runServing(dir, ['--backend-idle-timeout', String(BOUND_MS)], (at) => fetch(`http://127.0.0.1:${at}/h2/ok`, { method: 'POST', body: 'x' }).then((r) => r.status)));
  }, 60_000);

  afterAll(async () => {
    for (const res of unended) res.end();
    await sluice?.stop();
    h1?.closeAllConnections();
    h1?.close();
    h2?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A raw client connection: what it received so far, and whether it closed. */
  async function connect(): Promise<{ socket: net.Socket; text: () => string; closed: () => boolean }> {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let text = '';
    let closed = false;
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('close', () => (closed = true));
    return { socket, text: () => text, closed: () => closed };
  }

  for (const [what, path, protocol] of [['HTTP/1.1', '/silent', 'h1'], ['HTTP/2 (h2c)', '/h2/silent', 'h2']] as const) {
    it(`${what}: a backend that read the whole streamed body and says nothing gets a 504 after the bound`, async () => {
      const before = bodies[protocol].length;
      const client = await connect();
      const start = performance.now();
      client.socket.write(`POST ${path} HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n`);
      await sleep(100);
      client.socket.write('5\r\nworld\r\n0\r\n\r\n');
      for (const deadline = Date.now() + 8 * BOUND_MS; !client.text().includes('\r\n') && Date.now() < deadline; ) await sleep(20);
      const afterMs = performance.now() - start;
      client.socket.destroy();
      expect(bodies[protocol].slice(before)).toEqual(['helloworld']);
      expect(client.text()).toMatch(/^HTTP\/1\.1 504 /);
      expect(afterMs).toBeGreaterThanOrEqual(BOUND_MS);
    }, 20_000);
  }

  it('a route with retries: each attempt silent past the bound, then a 504 (a timeout, as a backendRequest timeout gives), not 503', async () => {
    const before = bodies.h1.length;
    const client = await connect();
    const start = performance.now();
    client.socket.write('GET /retried/silent HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    for (const deadline = Date.now() + 10 * BOUND_MS; !client.text().includes('\r\n') && Date.now() < deadline; ) await sleep(20);
    const afterMs = performance.now() - start;
    client.socket.destroy();
    expect(bodies.h1.length - before).toBe(2);
    expect(client.text()).toMatch(/^HTTP\/1\.1 504 /);
    expect(afterMs).toBeGreaterThanOrEqual(2 * BOUND_MS);
  }, 20_000);

  for (const [what, path] of [['HTTP/1.1', '/whole-body-open'], ['HTTP/2 (h2c)', '/h2/whole-body-open']] as const) {
    it(`${what}: a body whole by its Content-Length reaches the client while the backend's stream is still open`, async () => {
      const client = await connect();
      client.socket.write(`GET ${path} HTTP/1.1\r\nhost: a\r\n\r\n`);
      // Three bounds: the body must not wait for the stream's end, nor be lost when the bound cuts.
      for (const deadline = Date.now() + 3 * BOUND_MS; !client.text().endsWith('\r\n\r\nhello') && !client.closed() && Date.now() < deadline; ) await sleep(20);
      const text = client.text();
      const closed = client.closed();
      client.socket.destroy();
      expect({ text: text.replace(/\r\ndate: [^\r]*/i, ''), closedBeforeTheBody: closed && !text.endsWith('hello') }).toEqual({
        text: 'HTTP/1.1 200 OK\r\nserver: sluice\r\ncontent-length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nhello',
        closedBeforeTheBody: false,
      });
    }, 20_000);
  }
});
