import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import WebSocket from 'ws';
import {
  canonicalHeaderName,
  cleanPath,
  echoSetHeaders,
  parseGoDuration,
  startEchoServer,
  type EchoServer,
} from '../support/demo/echo-server.ts';
import { createCertificateAuthority, createClientCertificate, createSelfSignedServerCertificate } from '../support/demo/certs.ts';

const HOST = '127.0.0.1';

interface Reply {
  status: number;
  rawHeaders: string[];
  body: string;
}

function request(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, path, method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function header(r: Reply, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i] === name) out.push(r.rawHeaders[i + 1]);
  return out;
}

describe('echo server helpers', () => {
  it('canonicalises header names like Go', () => {
    expect(canonicalHeaderName('x-header-set')).toBe('X-Header-Set');
    expect(canonicalHeaderName('X-HEADER')).toBe('X-Header');
    expect(canonicalHeaderName('content-md5')).toBe('Content-Md5');
    expect(canonicalHeaderName('bad header')).toBe('bad header');
  });

  it('parses Go durations', () => {
    expect(parseGoDuration('1s')).toBe(1000);
    expect(parseGoDuration('300ms')).toBe(300);
    expect(parseGoDuration('1m30s')).toBe(90_000);
    expect(parseGoDuration('1.5h')).toBe(5_400_000);
    expect(parseGoDuration('0')).toBe(0);
    expect(() => parseGoDuration('10')).toThrow();
    expect(() => parseGoDuration('abc')).toThrow();
  });

  it('applies X-Echo-Set-Header like echo-basic', () => {
    expect(echoSetHeaders(['X-A:1, X-B: two ,X-A:3'])).toEqual([
      ['X-A', '1,3'],
      ['X-B', 'two'],
    ]);
    expect(echoSetHeaders([''])).toEqual([]);
  });

  it('cleans paths like Go ServeMux', () => {
    expect(cleanPath('/a//b')).toBe('/a/b');
    expect(cleanPath('/a/../b/')).toBe('/b/');
    expect(cleanPath('/')).toBe('/');
  });
});

describe('echo server', () => {
  let echo: EchoServer;
  beforeAll(async () => {
    echo = await startEchoServer({
      host: HOST,
      httpPort: 0,
      h2cPort: 0,
      identity: { pod: 'infra-backend-v1-6c8d9f7b5-x2k9p', namespace: 'gateway-conformance-infra' },
    });
  });
  afterAll(async () => {
    await echo.close();
  });

  it('echoes the request as JSON and records it', async () => {
    const lines: string[] = [];
    const r = await request(echo.httpPort, '/v2?animal=whale', { 'x-foo': 'a', 'X-Echo-Set-Header': 'X-Out:1,X-Out:2' });
    expect(r.status).toBe(200);
    expect(header(r, 'Content-Type')).toEqual(['application/json']);
    expect(header(r, 'X-Content-Type-Options')).toEqual(['nosniff']);
    expect(header(r, 'X-Out')).toEqual(['1,2']);
    const body = JSON.parse(r.body);
    expect(body).toMatchObject({
      path: '/v2?animal=whale',
      host: `${HOST}:${echo.httpPort}`,
      method: 'GET',
      proto: 'HTTP/1.1',
      namespace: 'gateway-conformance-infra',
      pod: 'infra-backend-v1-6c8d9f7b5-x2k9p',
      httpPort: String(echo.httpPort),
    });
    expect(body.headers['X-Foo']).toEqual(['a']);
    expect(body.headers.Host).toBeUndefined();
    expect(echo.received.some((x) => x.target === '/v2?animal=whale')).toBe(true);
    void lines;
  });

  it('logs the echo line through the log callback', async () => {
    const lines: string[] = [];
    const e = await startEchoServer({ host: HOST, httpPort: 0, identity: { pod: 'p', namespace: 'n' }, log: (l) => lines.push(l) });
    try {
      await request(e.httpPort, '/logged?x=1');
      expect(lines[0]).toMatch(/^Echoing back request made to \/logged\?x=1 to client \(127\.0\.0\.1:\d+\)$/);
    } finally {
      await e.close();
    }
  });

  it('supports /status, /health and ?delay=', async () => {
    expect((await request(echo.httpPort, '/status/418')).status).toBe(418);
    const health = await request(echo.httpPort, '/health');
    expect([health.status, health.body]).toEqual([200, 'OK']);
    const t0 = Date.now();
    const delayed = await request(echo.httpPort, '/x?delay=200ms');
    expect(delayed.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('fails /retry attempts with a status code, then echoes', async () => {
    const path = '/retry/x?uuid=abc&succeedAfter=2&responseCode=503';
    expect((await request(echo.httpPort, path)).status).toBe(503);
    expect((await request(echo.httpPort, path)).status).toBe(503);
    const ok = await request(echo.httpPort, path);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).path).toBe(path);
    expect((await request(echo.httpPort, '/retry/x?uuid=zzz')).status).toBe(400);
  });

  it('resets the TCP connection for a failing /retry attempt without responseCode', async () => {
    await expect(request(echo.httpPort, '/retry/y?uuid=r1&succeedAfter=1')).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect((await request(echo.httpPort, '/retry/y?uuid=r1&succeedAfter=1')).status).toBe(200);
  });

  it('serves HTTP/2 with prior knowledge on the h2c port and 400 for HTTP/1.1 there', async () => {
    const plain = await request(echo.h2cPort!, '/');
    expect(plain.status).toBe(400);
    const session = http2.connect(`http://${HOST}:${echo.h2cPort}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/h2?q=1', 'x-h': 'v' });
        let data = '';
        req.setEncoding('utf8');
        req.on('data', (d) => (data += d));
        req.on('end', () => resolve(data));
        req.on('error', reject);
      });
      const json = JSON.parse(body);
      expect(json.proto).toBe('HTTP/2.0');
      expect(json.path).toBe('/h2?q=1');
      expect(json.headers['X-H']).toEqual(['v']);
    } finally {
      session.close();
    }
  });

  it('answers an h2c upgrade on stream 1 and keeps serving HTTP/2 afterwards', async () => {
    const frames = await h2cUpgradeExchange(echo.h2cPort!);
    const s1 = frames.filter((f) => f.streamId === 1);
    expect(s1[0].type).toBe(1); // HEADERS
    const hdrs = decodeLiteralBlock(s1[0].payload);
    expect(hdrs[':status']).toBe('200');
    const data = Buffer.concat(s1.filter((f) => f.type === 0).map((f) => f.payload)).toString();
    const json = JSON.parse(data);
    expect(json.proto).toBe('HTTP/2.0');
    expect(json.path).toBe('/upgraded?x=1');
    expect(json.headers.Upgrade).toBeUndefined();
    // Stream 3 is served by Node's HTTP/2 server on the same connection.
    const s3 = frames.filter((f) => f.streamId === 3);
    expect(s3.some((f) => f.type === 1)).toBe(true);
    expect(Buffer.concat(s3.filter((f) => f.type === 0).map((f) => f.payload)).toString()).toContain('/second');
  });

  it('echoes WebSocket text and binary frames on /ws', async () => {
    const ws = new WebSocket(`ws://${HOST}:${echo.httpPort}/ws`, { origin: 'ws://gateway/test' });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const next = () => new Promise<[Buffer, boolean]>((resolve) => ws.once('message', (d, bin) => resolve([d as Buffer, bin])));
    let p = next();
    ws.send('Websocket Support!');
    const [text, textBin] = await p;
    expect([text.toString(), textBin]).toEqual(['Websocket Support!', false]);
    p = next();
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    const [bin, binFlag] = await p;
    expect([[...bin], binFlag]).toEqual([[1, 2, 3], true]);
    ws.close();
  });

  it('rejects a WebSocket handshake without Origin', async () => {
    const ws = new WebSocket(`ws://${HOST}:${echo.httpPort}/ws`);
    const status = await new Promise<number>((resolve) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => resolve(101));
      ws.once('error', () => {});
    });
    expect(status).toBe(403);
  });

  it('waitForRequest sees requests arriving later', async () => {
    const waiting = echo.waitForRequest((r) => r.target === '/later', 2000);
    await request(echo.httpPort, '/later');
    expect((await waiting)?.target).toBe('/later');
    expect(await echo.waitForRequest((r) => r.target === '/never', 50)).toBeUndefined();
  });
});

describe('echo server over TLS', () => {
  it('serves HTTPS with client certificate details', async () => {
    const server = await createSelfSignedServerCertificate({ dnsNames: ['echo.example'] });
    const ca = await createCertificateAuthority();
    const client = await createClientCertificate(ca);
    const echo = await startEchoServer({
      host: HOST,
      httpPort: 0,
      httpsPort: 0,
      tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
      identity: { pod: 'tls-backend-1-2', namespace: 'n' },
    });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const options = {
            host: HOST,
            port: echo.httpsPort!,
            path: '/tls',
            servername: 'echo.example',
            ca: server.certPem,
            cert: client.certPem,
            key: client.keyPem,
            ALPNProtocols: ['http/1.1'],
            agent: false,
          } as https.RequestOptions;
        const req = https.request(options,
          (res) => {
            let d = '';
            res.on('data', (c) => (d += c));
            res.on('end', () => resolve(d));
          },
        );
        req.on('error', reject);
        req.end();
      });
      const json = JSON.parse(body);
      expect(json.tls.serverName).toBe('echo.example');
      expect(json.tls.version).toMatch(/^TLSv1\.[23]$/);
      expect(json.tls.peerCertificates[0]).toContain('BEGIN CERTIFICATE');
      expect(json.tls.negotiatedProtocol).toBe('http/1.1');
    } finally {
      await echo.close();
    }
  });
});

// --- minimal HTTP/2 framing for the h2c upgrade test -------------------------

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function frameBytes(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

function decodeLiteralBlock(block: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const readInt = (prefix: number): number => {
    const max = (1 << prefix) - 1;
    let v = block[i++] & max;
    if (v < max) return v;
    let m = 0;
    let b: number;
    do {
      b = block[i++];
      v += (b & 0x7f) << m;
      m += 7;
    } while (b & 0x80);
    return v;
  };
  while (i < block.length) {
    expect(block[i]).toBe(0x00);
    i++;
    const nl = readInt(7);
    const name = block.subarray(i, i + nl).toString();
    i += nl;
    const vl = readInt(7);
    out[name] = block.subarray(i, i + vl).toString();
    i += vl;
  }
  return out;
}

async function h2cUpgradeExchange(port: number): Promise<Frame[]> {
  const socket = net.connect(port, HOST);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    'GET /upgraded?x=1 HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
  );
  let buf = Buffer.alloc(0);
  let upgraded = false;
  const frames: Frame[] = [];
  let settingsSeen = 0;
  let sentSecond = false;
  return new Promise<Frame[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout; frames: ${JSON.stringify(frames.map((f) => [f.type, f.streamId]))}`)), 5000);
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        expect(buf.subarray(0, end).toString()).toMatch(/^HTTP\/1\.1 101 /);
        buf = buf.subarray(end + 4);
        upgraded = true;
        socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frameBytes(4, 0, 0, Buffer.alloc(0))]));
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f: Frame = { type: buf[3], flags: buf[4], streamId: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        frames.push(f);
        if (f.type === 4 && !(f.flags & 1)) {
          settingsSeen++;
          socket.write(frameBytes(4, 1, 0, Buffer.alloc(0))); // ACK every SETTINGS
        }
        if (settingsSeen >= 2 && !sentSecond) {
          sentSecond = true;
          const block = Buffer.concat([literal(':method', 'GET'), literal(':path', '/second'), literal(':scheme', 'http'), literal(':authority', 'test')]);
          socket.write(frameBytes(1, 0x4 | 0x1, 3, block));
        }
        if (f.streamId === 3 && f.flags & 1) {
          clearTimeout(timer);
          socket.destroy();
          resolve(frames);
        }
      }
    });
  });
}
