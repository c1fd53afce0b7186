// Review (session 10): an HTTPS port whose certificates are chosen by the client's cipher suites
// reads each ClientHello on a plain socket before the TLS server gets it (dataplane/tls/client-hellos.ts).
// Through a real `sluice run`, hostile clients on that path: a reset mid-ClientHello, a ClientHello
// in 1-byte segments, a client that sends nothing, a non-TLS client, an SSLv2-style hello; and
// what a legitimate client still gets there: ALPN h2 and http/1.1, session resumption, connections
// counted once.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { createSelfSignedServerCertificate, type CertificateBundle } from '../support/demo/certs.ts';
import { selfSignedCertificate } from '../dataplane/support/certs.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { gatewayYaml, serviceYaml, startNamedBackend, tlsSecretYaml, type NamedBackend } from './backends.ts';

const HOST = '127.0.0.1';
const HANDSHAKE_TIMEOUT_MS = 2_000;
const LISTENER_LIMIT = 40;
/** get()'s answer when the app backend answered. */
const SERVED = /^200 \{"backend":"app"/;

describe('HTTPS port reading ClientHellos first (certificates chosen by suites), hostile clients (sluice run)', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  let app: NamedBackend;
  const certs: Record<string, CertificateBundle> = {};
  /** A real TLS 1.2 ClientHello for www.sample.com (a later set: RSA and ECDSA). */
  let hello: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-review-s10-tls-'));
    app = await startNamedBackend('app');
    const made = await Promise.all([
      createSelfSignedServerCertificate({ dnsNames: ['www.example.com'] }),
      createSelfSignedServerCertificate({ dnsNames: ['www.sample.com'] }),
      selfSignedCertificate('www.sample.com', ['www.sample.com']),
    ]);
    ['example-rsa', 'sample-rsa', 'sample-ecdsa'].forEach((name, i) => (certs[name] = made[i]!));
    const offset = await freePortOffset([443]);
    port = 443 + offset;
    writeFileSync(
      join(dir, 'all.yaml'),
      `${gatewayYaml(['{name: sites, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: example-rsa}, {name: sample-rsa}, {name: sample-ecdsa}]}}'])}---
${Object.entries(certs)
  .map(([name, cert]) => tlsSecretYaml(name, cert))
  .join('---\n')}---
${serviceYaml('app', app)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sites, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`,
    );
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--bind-address', HOST, '--tls-handshake-timeout', String(HANDSHAKE_TIMEOUT_MS), '--max-connections-per-listener', String(LISTENER_LIMIT)]);
    hello = await captureClientHello({ servername: 'www.sample.com', maxVersion: 'TLSv1.2' });
    await waitFor('the HTTPS port serving', async () => (SERVED.test(await get({})) ? true : undefined));
  }, 60_000);

  afterAll(async () => {
    if (process.env.REVIEW_LOGS) console.log(sluice?.logs());
    await sluice?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One request over TLS (HTTP/1.1): "status body", or "refused: CODE". */
  const get = (options: ConnectionOptions): Promise<string> =>
    new Promise((resolve) => {
      const socket = tlsConnect({ host: HOST, port, servername: 'www.sample.com', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...options }, () => {
        socket.write('GET / HTTP/1.1\r\nhost: www.sample.com\r\nconnection: close\r\n\r\n');
      });
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(`refused: ${error.code ?? error.message}`));
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1').replace(/^HTTP\/1\.1 (\d+)[^]*\r\n\r\n/, '$1 ')));
    });

  /** The bytes a Node TLS client sends first, caught by a plain server. */
  const captureClientHello = (options: ConnectionOptions): Promise<Buffer> =>
    new Promise((resolve) => {
      const server = net.createServer((socket) => {
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          const data = Buffer.concat(chunks);
          if (data.length >= 5 && data.length >= 5 + data.readUInt16BE(3)) {
            socket.destroy();
            server.close();
            resolve(data);
          }
        });
      });
      server.listen(0, HOST, () => {
        const client = tlsConnect({ host: HOST, port: (server.address() as net.AddressInfo).port, rejectUnauthorized: false, ...options });
        client.on('error', () => undefined);
      });
    });

  const rawConnect = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const socket = net.connect(port, HOST, () => resolve(socket));
      socket.once('error', reject);
    });

  /** Resolves with what the server sent when it closes the connection, and how long that took. */
  const closed = (socket: net.Socket, withinMs = HANDSHAKE_TIMEOUT_MS * 4): Promise<{ bytes: number; afterMs: number }> => {
    const start = performance.now();
    return new Promise((resolve, reject) => {
      let bytes = 0;
      const timer = setTimeout(() => reject(new Error(`still open after ${withinMs} ms`)), withinMs);
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      socket.on('error', () => undefined);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve({ bytes, afterMs: performance.now() - start });
      });
    });
  };

  const openConnections = async (): Promise<number> => {
    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    return Number(/^sluice_connections_open (\d+)/m.exec(metrics)?.[1] ?? NaN);
  };

  it('a client resetting mid-ClientHello does not take the process down (no unhandled socket error)', async () => {
    for (let i = 0; i < 20; i++) {
      const socket = await rawConnect();
      socket.write(hello.subarray(0, 20));
      await new Promise((resolve) => setTimeout(resolve, 20));
      socket.resetAndDestroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await get({ maxVersion: 'TLSv1.2' })).toMatch(SERVED);
    expect(sluice.logs()).not.toMatch(/ECONNRESET/);
  });

  it('a ClientHello sent in 1-byte segments completes its handshake and is answered', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const raw = net.connect(port, HOST);
      raw.setNoDelay(true);
      raw.on('error', reject);
      // A TLS client over a socket whose first flight is written byte by byte.
      const relay = net.createServer((inner) => {
        inner.on('data', (chunk: Buffer) => {
          inner.pause();
          let i = 0;
          const next = (): void => {
            if (i >= chunk.length) return void inner.resume();
            raw.write(chunk.subarray(i, ++i), () => setImmediate(next));
          };
          next();
        });
        raw.on('data', (chunk: Buffer) => inner.write(chunk));
        raw.on('close', () => inner.destroy());
        inner.on('error', () => raw.destroy());
      });
      relay.listen(0, HOST, () => {
        const socket = tlsConnect({ host: HOST, port: (relay.address() as net.AddressInfo).port, servername: 'www.sample.com', maxVersion: 'TLSv1.2', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
          socket.write('GET / HTTP/1.1\r\nhost: www.sample.com\r\nconnection: close\r\n\r\n');
        });
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('error', reject);
        socket.on('close', () => {
          relay.close();
          resolve(Buffer.concat(chunks).toString('latin1'));
        });
      });
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\n\{"backend":"app"/);
  });

  it('a client that sends nothing, a non-TLS client and an SSLv2-style hello are closed within the handshake bound; the process serves on', async () => {
    const silent = await rawConnect();
    const plain = await rawConnect();
    plain.write('GET / HTTP/1.1\r\nhost: www.sample.com\r\n\r\n');
    const sslv2 = await rawConnect();
    // An SSLv2-compatible CLIENT-HELLO header (RFC 5246 appendix E.2): a 2-byte length with the top bit set.
    sslv2.write(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]));
    const [a, b, c] = await Promise.all([closed(silent), closed(plain), closed(sslv2)]);
    expect(a.afterMs).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 200);
    for (const { afterMs } of [a, b, c]) expect(afterMs).toBeLessThan(HANDSHAKE_TIMEOUT_MS * 3);
    expect(await get({})).toMatch(SERVED);
  });

  it('ALPN h2 and http/1.1 are both negotiated, SNI picks the set, TLS 1.2 sessions resume', async () => {
    const alpn = (protocols: string[]) =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: HOST, port, servername: 'www.sample.com', maxVersion: 'TLSv1.2', rejectUnauthorized: false, ALPNProtocols: protocols }, () => {
          resolve(`${socket.alpnProtocol} ${socket.getPeerX509Certificate()?.subjectAltName}`);
          socket.destroy();
        });
        socket.on('error', reject);
      });
    expect(await alpn(['h2'])).toBe('h2 DNS:www.sample.com');
    expect(await alpn(['http/1.1'])).toBe('http/1.1 DNS:www.sample.com');
    const session = http2.connect(`https://${HOST}:${port}`, { servername: 'www.sample.com', rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/', host: 'www.sample.com' });
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.resume();
    });
    session.close();
    expect(status).toBe(200);

    const first = await new Promise<TLSSocket>((resolve, reject) => {
      const socket = tlsConnect({ host: HOST, port, servername: 'www.sample.com', maxVersion: 'TLSv1.2', rejectUnauthorized: false }, () => resolve(socket));
      socket.on('error', reject);
    });
    const ticket = await new Promise<Buffer>((resolve) => (first.getSession() ? resolve(first.getSession()!) : first.once('session', resolve)));
    first.destroy();
    const reused = await new Promise<boolean>((resolve, reject) => {
      const socket = tlsConnect({ host: HOST, port, servername: 'www.sample.com', maxVersion: 'TLSv1.2', rejectUnauthorized: false, session: ticket }, () => {
        resolve(socket.isSessionReused());
        socket.destroy();
      });
      socket.on('error', reject);
    });
    expect(reused).toBe(true);
  });

  it('connections read first are counted once, and released when they close', async () => {
    await waitFor('no connection open', async () => ((await openConnections()) === 0 ? true : undefined));
    const sockets = await Promise.all(Array.from({ length: 10 }, () => rawConnect()));
    for (const socket of sockets) socket.write(hello.subarray(0, 10));
    await waitFor('10 open', async () => ((await openConnections()) === 10 ? true : undefined));
    for (const socket of sockets) socket.destroy();
    await waitFor('none open', async () => ((await openConnections()) === 0 ? true : undefined));
  });

  it('TLS 1.3 with a key share the server does not pick first (HelloRetryRequest or not) completes', async () => {
    for (const ecdhCurve of ['P-521:X25519', 'P-384:P-256']) {
      const answer = await get({ minVersion: 'TLSv1.3', ecdhCurve });
      expect(`${ecdhCurve} ${answer}`).toMatch(new RegExp(`^${ecdhCurve} ${SERVED.source.slice(1)}`));
    }
  });

  it('half-open connections past the listener limit are refused at once, the rest cut at the handshake timeout; then it serves', async () => {
    const sockets: net.Socket[] = [];
    const closes: Promise<{ bytes: number; afterMs: number }>[] = [];
    for (let i = 0; i < LISTENER_LIMIT * 2; i++) {
      const socket = net.connect(port, HOST);
      closes.push(closed(socket));
      socket.once('connect', () => socket.write(hello.subarray(0, 3)));
      sockets.push(socket);
    }
    const ends = await Promise.all(closes);
    // Refused ones end at once, the admitted ones at the bound: none outlives it by much.
    expect(ends.filter((e) => e.afterMs < HANDSHAKE_TIMEOUT_MS - 200).length).toBeGreaterThanOrEqual(LISTENER_LIMIT - 5);
    expect(ends.every((e) => e.afterMs < HANDSHAKE_TIMEOUT_MS * 3)).toBe(true);
    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    expect(Number(/^sluice_connections_refused_total\{[^}]*reason="listener_limit"[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(LISTENER_LIMIT - 5);
    await waitFor('none open', async () => ((await openConnections()) === 0 ? true : undefined));
    expect(await get({})).toMatch(SERVED);
  });
});
