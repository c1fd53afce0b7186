// Header modifier values beyond ASCII go out as the UTF-8 bytes written in the manifest (what Envoy,
// and so Envoy Gateway and Cilium, sends), both directions, HTTP/1.1 and HTTP/2, on a real
// `sluice run`. Node reads and writes header strings as latin1 (one character per byte), so the
// bytes on the wire are `Buffer.from(value, 'latin1')` of what the backend and the client read.
// Before: `é` went out as the single byte E9 and `→` made the route Accepted=False.

import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGatewayYaml, serviceYaml } from '../e2e/backends.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { startRawBackend, type RawBackend } from './support/raw-backend.ts';

const VALUE = 'café → ok';
const UTF8 = Buffer.from(VALUE, 'utf8');
/** Bytes of a header value as Node hands it over (a latin1 string). */
const bytes = (value: string | string[] | undefined): Buffer => Buffer.from(String(value), 'latin1');

/** A node:http2 cleartext backend recording the request heads it receives; answers 200 `h2`. */
async function startH2cBackend(): Promise<{ port: number; heads: http2.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const heads: http2.IncomingHttpHeaders[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    heads.push(headers);
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end('h2\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    heads,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const modifiers = (kind: 'RequestHeaderModifier' | 'ResponseHeaderModifier', field: string, header: string) =>
  `{type: ${kind}, ${field}: {set: [{name: ${header}, value: "${VALUE}"}], add: [{name: x-add, value: "é"}]}}`;

const routesYaml = (): string => `apiVersion: v1
kind: Service
metadata: {name: h2, namespace: default}
spec:
  ports: [{name: h2c, port: 80, appProtocol: kubernetes.io/h2c}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: utf8, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  # Rule-level modifiers, HTTP/1.1 backend.
  - matches: [{path: {type: PathPrefix, value: /h1}}]
    filters:
    - ${modifiers('RequestHeaderModifier', 'requestHeaderModifier', 'x-req')}
    - ${modifiers('ResponseHeaderModifier', 'responseHeaderModifier', 'x-res')}
    backendRefs: [{name: raw, port: 80}]
  # Header matches on text beyond ASCII: compared with the UTF-8 bytes that came, as Envoy compares.
  - matches: [{path: {type: PathPrefix, value: /match-exact}, headers: [{name: x-lang, value: "café →"}]}]
    backendRefs: [{name: raw, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /match-regex}, headers: [{type: RegularExpression, name: x-lang, value: "caf. →"}]}]
    backendRefs: [{name: raw, port: 80}]
  # Paths to replace with beyond ASCII: percent-encoded UTF-8 in the Location and the request line.
  - matches: [{path: {type: PathPrefix, value: /redirect}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: "/café→x y"}}}]
  - matches: [{path: {type: PathPrefix, value: /rewrite}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: "/é→"}}}]
    backendRefs: [{name: raw, port: 80}]
  # backendRef-level modifiers, h2c backend.
  - matches: [{path: {type: PathPrefix, value: /h2}}]
    backendRefs:
    - name: h2
      port: 80
      filters:
      - ${modifiers('RequestHeaderModifier', 'requestHeaderModifier', 'x-req')}
      - ${modifiers('ResponseHeaderModifier', 'responseHeaderModifier', 'x-res')}
`;

/** One HTTP/1.1 request on a raw socket: the response head's fields as latin1 strings, repeated names joined by `\n`. */
function rawGet(port: number, path: string, extra = ''): Promise<{ status: number; fields: Map<string, string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.destroy();
      const [line, ...lines] = data.slice(0, end).split('\r\n');
      const fields = new Map<string, string>();
      for (const text of lines) {
        const colon = text.indexOf(':');
        const name = text.slice(0, colon).toLowerCase();
        const value = text.slice(colon + 1).trim();
        fields.set(name, fields.has(name) ? `${fields.get(name)}\n${value}` : value);
      }
      resolve({ status: Number(line!.split(' ')[1]), fields });
    });
    socket.write(`GET ${path} HTTP/1.1\r\nhost: utf8.example\r\n${extra}connection: close\r\n\r\n`, 'latin1');
  });
}

/** One HTTP/2 request with prior knowledge (h2c): status and response headers as Node reads them (latin1). */
function h2Get(port: number, path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<http2.IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':path': path, ':authority': 'utf8.example', ...headers });
    req.setTimeout(5000, () => req.close());
    req.on('error', reject);
    req.on('response', (head) => {
      req.resume();
      req.on('end', () => {
        session.close();
        resolve(head);
      });
    });
    req.end();
  });
}

describe('header modifier values beyond ASCII: UTF-8 bytes on the wire (a real sluice run)', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let raw: RawBackend;
  let h2: Awaited<ReturnType<typeof startH2cBackend>>;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-fx-utf8-'));
    raw = await startRawBackend('raw');
    h2 = await startH2cBackend();
    const h2Slice = serviceYaml('h2', h2).split('---\n')[1]!.replace('name: http,', 'name: h2c,');
    writeFileSync(join(dir, 'all.yaml'), [httpGatewayYaml(80), serviceYaml('raw', raw), routesYaml(), h2Slice].join('---\n'));
    const offset = await freePortOffset([80]);
    port = 80 + offset;
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset)]);
    await waitFor('the route served', async () => ((await rawGet(port, '/h1')).status === 200 ? true : undefined), 15_000);
  }, 60_000);

  afterAll(async () => {
    await sluice?.stop();
    await raw?.close();
    await h2?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the route is Accepted (a character above U+00FF was refused)', async () => {
    const route = (await sluice.status()).find((item) => item.kind === 'HTTPRoute' && item.metadata.name === 'utf8');
    const accepted = route?.status?.parents?.[0]?.conditions?.find((c: { type: string }) => c.type === 'Accepted');
    expect(accepted?.status).toBe('True');
  });

  it('HTTP/1.1 client, HTTP/1.1 backend: request and response headers carry the UTF-8 bytes; add joins them to the bytes that came', async () => {
    raw.requests.length = 0;
    // The client's own x-add: 'ü' as its two UTF-8 bytes, the field as Node would read it.
    const answer = await rawGet(port, '/h1', `x-add: ${Buffer.from('ü', 'utf8').toString('latin1')}\r\n`);
    expect(answer.status).toBe(200);
    expect(bytes(answer.fields.get('x-res'))).toEqual(UTF8);
    expect(bytes(answer.fields.get('x-add'))).toEqual(Buffer.from([0xc3, 0xa9]));
    const seen = new Map(raw.requests[0]!.headers.map(([name, value]) => [name.toLowerCase(), value]));
    expect(bytes(seen.get('x-req'))).toEqual(UTF8);
    expect(bytes(seen.get('x-add'))).toEqual(Buffer.from('ü,é', 'utf8'));
    // `→` is E2 86 92 on the wire, not one truncated byte.
    expect(raw.raw()).toContain(`x-req: ${UTF8.toString('latin1')}\r\n`);
    expect(UTF8.includes(Buffer.from([0xe2, 0x86, 0x92]))).toBe(true);
  });

  it('HTTP/2 client, h2c backend (backendRef-level filters): the same bytes both ways', async () => {
    h2.heads.length = 0;
    const head = await h2Get(port, '/h2');
    expect(head[':status']).toBe(200);
    expect(bytes(head['x-res'])).toEqual(UTF8);
    expect(bytes(head['x-add'])).toEqual(Buffer.from('é', 'utf8'));
    expect(bytes(h2.heads[0]!['x-req'])).toEqual(UTF8);
    expect(bytes(h2.heads[0]!['x-add'])).toEqual(Buffer.from('é', 'utf8'));
  });

  it('crossed: HTTP/2 client to the HTTP/1.1 backend, HTTP/1.1 client to the h2c backend', async () => {
    raw.requests.length = 0;
    h2.heads.length = 0;
    const viaH2 = await h2Get(port, '/h1');
    expect(bytes(viaH2['x-res'])).toEqual(UTF8);
    expect(bytes(new Map(raw.requests[0]!.headers.map(([n, v]) => [n.toLowerCase(), v])).get('x-req'))).toEqual(UTF8);
    const viaH1 = await rawGet(port, '/h2');
    expect(viaH1.status).toBe(200);
    expect(bytes(viaH1.fields.get('x-res'))).toEqual(UTF8);
    expect(bytes(h2.heads[0]!['x-req'])).toEqual(UTF8);
  });

  it('header matches: Exact and RegularExpression on text beyond ASCII match its UTF-8 bytes, HTTP/1.1 and HTTP/2', async () => {
    const utf8 = Buffer.from('café →', 'utf8').toString('latin1');
    for (const path of ['/match-exact', '/match-regex']) {
      expect([path, (await rawGet(port, path, `x-lang: ${utf8}\r\n`)).status]).toEqual([path, 200]);
      expect([path, (await h2Get(port, path, { 'x-lang': utf8 }))[':status']]).toEqual([path, 200]);
      expect([path, (await rawGet(port, path)).status]).toEqual([path, 404]);
    }
    // The same text in latin1 bytes (E9, and no byte can spell →) is another value.
    expect((await rawGet(port, '/match-exact', 'x-lang: caf\xe9 \xe2\x86\x92\r\n')).status).toBe(404);
    expect((await rawGet(port, '/match-regex', 'x-lang: caf\xe9\r\n')).status).toBe(404);
  });

  it('a redirect or rewrite path beyond ASCII goes out percent-encoded as UTF-8 (it answered 500 or 400, or sent E9)', async () => {
    const redirect = await rawGet(port, '/redirect');
    expect(redirect.status).toBe(302);
    expect(redirect.fields.get('location')).toBe(`http://utf8.example:${port}/caf%C3%A9%E2%86%92x%20y`);
    const viaH2 = await h2Get(port, '/redirect');
    expect(viaH2.location).toBe(`http://utf8.example:${port}/caf%C3%A9%E2%86%92x%20y`);
    raw.requests.length = 0;
    expect((await rawGet(port, '/rewrite/a')).status).toBe(200);
    expect(raw.requests[0]!.target).toBe('/%C3%A9%E2%86%92/a');
  });

  it('the IR (/api/config) carries the values as written; only the dataplane makes the wire form', async () => {
    const config = await (await fetch(`${sluice.admin}/api/config`)).text();
    expect(config).toContain(JSON.stringify({ name: 'x-req', value: VALUE }));
  });
});
