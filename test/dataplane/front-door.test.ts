// The front door's timeouts and limits, with raw sockets against a real Dataplane: slow and
// silent clients are cut by the configured timeouts (set short here, 1 s), connection limits and
// load shedding refuse with a 503, a backend that never answers SYN fails within the connect
// timeout.

import { closeSync, openSync, readdirSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Registry } from 'prom-client';
import { descriptorLimit, defaultMaxConnections } from '../../dataplane/front-door.ts';
import { freePort, freePorts } from '../support/ports.ts';
import { startBlackhole, type Blackhole } from './support/blackhole.ts';
import { waitFor } from '../support/wait.ts';
import { request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { irCertificate, selfSignedCertificate } from './support/certs.ts';
import { createSelfSignedServerCertificate } from '../support/demo/certs.ts';
import { testDataplane, type LogLine, type TestDataplane } from './support/harness.ts';
import { backend, forwardTo, listener, prefix, route, scope, singleHostIR } from './support/ir.ts';

/** What the tests configure; every bound asserted below allows generous slack on a loaded box. */
const TIMEOUT_MS = 1_000;
const CLOSED_WITHIN_MS = 6_000;

interface Closed {
  /** Everything the server sent before closing. */
  text: string;
  afterMs: number;
}

/** Resolves when the server closes the socket (or rejects after `withinMs`). */
function closedBy(socket: net.Socket, withinMs = CLOSED_WITHIN_MS): Promise<Closed> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`still open after ${withinMs} ms; received ${JSON.stringify(Buffer.concat(chunks).toString())}`));
    }, withinMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined); // a reset is a close too
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), afterMs: performance.now() - start });
    });
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Writes `parts` one every `gapMs` until the socket closes. */
function trickle(socket: net.Socket, parts: string[], gapMs: number): void {
  let next = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || next >= parts.length) clearInterval(timer);
    else socket.write(parts[next++]!);
  }, gapMs);
  socket.once('close', () => clearInterval(timer));
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value ?? 0;
}

/** The first log line whose message matches. */
function logLine(logs: LogLine[], pattern: RegExp): Promise<LogLine> {
  return waitFor(`a log line ${pattern}`, () => logs.find((l) => pattern.test(l.msg)), CLOSED_WITHIN_MS);
}

describe('front door timeouts (HTTP/1.1, cleartext)', () => {
  let echo: EchoServer;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    echo = await startEchoServer('a');
    port = await freePort();
    harness = testDataplane({
      frontDoor: { requestHeadersTimeoutMs: TIMEOUT_MS, idleTimeoutMs: TIMEOUT_MS, requestBodyTimeoutMs: TIMEOUT_MS },
    });
    await harness.dataplane.apply('v1', singleHostIR(port, [route('echo', { path: prefix('/') }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]));
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await echo.close();
  });

  it('cuts a request head trickled one line at a time (slowloris) with a 408', async () => {
    const socket = await connect(port);
    const closed = closedBy(socket);
    trickle(socket, ['GET / HTTP/1.1\r\n', 'Host: a\r\n', ...Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: 1\r\n`)], 300);
    const { text, afterMs } = await closed;
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(afterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
  });

  it('cuts a lone byte followed by silence', async () => {
    const socket = await connect(port);
    const closed = closedBy(socket);
    socket.write('G');
    // Cut before or after the protocol is known (408 from the HTTP/1.1 server, or a plain close).
    expect((await closed).afterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
  });

  it('cuts a request line trickled one byte at a time, from the first byte, not the last', async () => {
    const socket = await connect(port);
    const closed = closedBy(socket);
    const before = await metricValue(harness.registry, 'sluice_client_timeouts_total', { stage: 'first_line' });
    trickle(socket, [...'GET /a-long-path-that-never-ends-because-it-is-trickled-slowly-one-byte-at-a-time'], 200);
    const { afterMs } = await closed;
    expect(afterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    expect(await metricValue(harness.registry, 'sluice_client_timeouts_total', { stage: 'first_line' })).toBe(before + 1);
  });

  it('cuts a connection that never sends a byte', async () => {
    const socket = await connect(port);
    expect((await closedBy(socket)).text).toBe('');
  });

  it('closes an idle keep-alive connection after the idle timeout, not before', async () => {
    const socket = await connect(port);
    const closed = closedBy(socket);
    socket.write('GET /idle HTTP/1.1\r\nHost: a\r\n\r\n');
    const { text, afterMs } = await closed;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(afterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
  });

  it('cuts a request body that stalls longer than the body timeout; the backend never gets a request', async () => {
    const before = echo.received.length;
    const socket = await connect(port);
    const closed = closedBy(socket);
    socket.write('POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789');
    await closed;
    expect(echo.received.slice(before).filter((r) => r.path === '/upload')).toEqual([]);
    expect(await metricValue(harness.registry, 'sluice_client_timeouts_total', { stage: 'request_body' })).toBe(1);
  });

  it('lets a slow body through while each gap stays under the timeout, and waits for a slow backend', async () => {
    // 24 parts 100 ms apart (2.4 s in all, more than the body timeout), then a backend that takes
    // longer than the body timeout to answer: neither is a stalled body. The gaps are a tenth of
    // the timeout because this client shares its event loop with the Dataplane: a stall of the
    // test process (a loaded box, a GC) delays the client's write itself, so the gap on the wire
    // really grows; only a stall of 900 ms or more can make one reach the timeout.
    const parts = Array.from({ length: 24 }, (_, i) => `part${String(i).padStart(2, '0')}.`);
    const socket = await connect(port);
    const closed = closedBy(socket, 15_000);
    socket.write(`POST /slow-body?delay=${TIMEOUT_MS * 2} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: ${parts.join('').length}\r\n\r\n`);
    trickle(socket, parts, 100);
    const { text } = await closed;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain(`"bodyLength":${parts.join('').length}`);
  });
});

describe('front door timeouts (HTTPS)', () => {
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    port = await freePort();
    const certificate = await selfSignedCertificate('front.example.com');
    harness = testDataplane({ frontDoor: { tlsHandshakeTimeoutMs: TIMEOUT_MS, requestHeadersTimeoutMs: TIMEOUT_MS, maxConnectionsPerListener: 1 } });
    const routes = [route('direct', { path: prefix('/') }, { type: 'DirectResponse', status: 200, body: 'ok' })];
    const result = await harness.dataplane.apply('v1', {
      listeners: [listener(port, [scope('https', null, [['*', routes]])], { protocol: 'HTTPS', tls: { certificates: [irCertificate('secret/default/front', ['front.example.com'], certificate)] } })],
      backends: {},
    });
    expect(result.listeners.every((l) => l.ok)).toBe(true);
  });

  afterAll(async () => {
    await harness.dataplane.close();
  });

  it('cuts a TCP connection that never sends its ClientHello', async () => {
    const socket = await connect(port);
    const { text, afterMs } = await closedBy(socket);
    expect(text).toBe('');
    expect(afterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    expect(await metricValue(harness.registry, 'sluice_client_timeouts_total', { stage: 'tls_handshake' })).toBe(1);
  });

  it('cuts a TLS session that completes its handshake and never sends a request (408)', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'front.example.com', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    const { text } = await closedBy(socket as net.Socket);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('closes a connection over the listener limit before its handshake', async () => {
    const held = await connect(port);
    const heldClosed = closedBy(held);
    const refused = tls.connect({ host: '127.0.0.1', port, servername: 'front.example.com', rejectUnauthorized: false });
    const error = await new Promise<Error>((resolve, reject) => {
      refused.once('error', resolve);
      refused.once('secureConnect', () => reject(new Error('handshake completed over the limit')));
    });
    expect(error.message).toMatch(/ECONNRESET|socket disconnected|EPIPE/);
    expect(await metricValue(harness.registry, 'sluice_connections_refused_total', { reason: 'listener_limit' })).toBe(1);
    held.destroy();
    await heldClosed;
  });
});

describe('backend connect timeout', () => {
  let blackhole: Blackhole;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    blackhole = await startBlackhole();
    port = await freePort();
    harness = testDataplane({ frontDoor: { backendConnectTimeoutMs: TIMEOUT_MS } });
    await harness.dataplane.apply('v1', singleHostIR(port, [route('hole', { path: prefix('/') }, forwardTo('svc/hole'))], [backend('svc/hole', [{ address: '127.0.0.1', port: blackhole.port }])]));
  });

  afterAll(async () => {
    await harness.dataplane.close();
    blackhole.close();
  });

  it('answers 503 once the endpoint has not answered the connect within the timeout', async () => {
    const started = performance.now();
    const response = await request(port, '/');
    const elapsed = performance.now() - started;
    expect(response.status).toBe(503);
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    expect(elapsed).toBeLessThan(CLOSED_WITHIN_MS);
    expect(harness.logs.some((l) => l.msg === 'upstream request failed' && (l.err as { code?: string }).code === 'UND_ERR_CONNECT_TIMEOUT')).toBe(true);
  });
});

describe('connection limits', () => {
  let ports: number[];
  let harness: TestDataplane;
  const held: net.Socket[] = [];

  beforeAll(async () => {
    ports = await freePorts(2);
    harness = testDataplane({ frontDoor: { maxConnectionsPerListener: 2, maxConnections: 3 } });
    const routes = [route('direct', { path: prefix('/') }, { type: 'DirectResponse', status: 200, body: 'ok' })];
    await harness.dataplane.apply('v1', { listeners: ports.map((p) => listener(p, [scope('http', null, [['*', routes]])])), backends: {} });
  });

  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await harness.dataplane.close();
  });

  it('refuses over the per-listener limit with a 503, counts it, logs the episode once, and serves again below it', async () => {
    const [a] = ports as [number, number];
    held.push(await connect(a), await connect(a));
    for (let i = 0; i < 2; i++) {
      const refused = await closedBy(await connect(a));
      expect(refused.text).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
      expect(refused.text).toMatch(/\r\nconnection: close\r\n/i);
    }
    expect(await metricValue(harness.registry, 'sluice_connections_refused_total', { listener: `127.0.0.1:${a}`, reason: 'listener_limit' })).toBe(2);
    expect(harness.logs.filter((l) => /^refusing new connections/.test(l.msg))).toHaveLength(1);

    held.pop()!.destroy();
    await waitFor('one connection open', async () => ((await metricValue(harness.registry, 'sluice_connections_open')) === 1 ? true : undefined));
    expect((await request(a, '/')).status).toBe(200);
    expect(harness.logs.some((l) => /^accepting new connections/.test(l.msg))).toBe(true);
  });

  it('refuses over the global limit on any listener', async () => {
    const [a, b] = ports as [number, number];
    held.push(await connect(a), await connect(b));
    await waitFor('three connections open', async () => ((await metricValue(harness.registry, 'sluice_connections_open')) === 3 ? true : undefined));
    const refused = await closedBy(await connect(b));
    expect(refused.text).toMatch(/^HTTP\/1\.1 503 /);
    expect(await metricValue(harness.registry, 'sluice_connections_refused_total', { listener: `127.0.0.1:${b}`, reason: 'global_limit' })).toBe(1);
    for (const socket of held.splice(0)) socket.destroy();
  });
});

describe('load shedding', () => {
  const limit = descriptorLimit();
  let port: number;
  let harness: TestDataplane;

  it('derives the global limit from the descriptor limit: half of what the reserve leaves, capped', () => {
    expect(defaultMaxConnections(256)).toBe(78);
    expect(defaultMaxConnections(1024)).toBe(462);
    expect(defaultMaxConnections(1_048_576)).toBe(20_000);
    expect(defaultMaxConnections(null)).toBe(20_000);
  });

  it('sheds new connections while descriptors run high, one log line per episode, and serves again when they are freed', async () => {
    if (limit === null) throw new Error('no /proc/self/limits: load shedding by descriptors needs Linux');
    port = await freePort();
    // The high-water mark sits 40 descriptors above what this process uses now; opening 80
    // files crosses it for real.
    const inUse = readdirSync('/proc/self/fd').length;
    harness = testDataplane({ frontDoor: { shedDescriptorRatio: (inUse + 40) / limit } });
    const routes = [route('direct', { path: prefix('/') }, { type: 'DirectResponse', status: 200, body: 'ok' })];
    await harness.dataplane.apply('v1', singleHostIR(port, routes));
    try {
      expect((await request(port, '/')).status).toBe(200);
      const files = Array.from({ length: 80 }, () => openSync('/dev/null', 'r'));
      try {
        await logLine(harness.logs, /^load shedding on: descriptors/);
        const refused = await closedBy(await connect(port));
        expect(refused.text).toMatch(/^HTTP\/1\.1 503 /);
        expect(await metricValue(harness.registry, 'sluice_load_shedding')).toBe(1);
        expect(await metricValue(harness.registry, 'sluice_connections_refused_total', { reason: 'shedding' })).toBe(1);
      } finally {
        for (const fd of files) closeSync(fd);
      }
      await logLine(harness.logs, /^load shedding off/);
      expect((await request(port, '/')).status).toBe(200);
      expect(harness.logs.filter((l) => /^load shedding on/.test(l.msg))).toHaveLength(1);
      expect(await metricValue(harness.registry, 'sluice_load_shedding')).toBe(0);
    } finally {
      await harness.dataplane.close();
    }
  });

  it('sheds when the heap is above its bound', async () => {
    port = await freePort();
    // Any heap in use is above a bound this small: the real heap statistics drive the switch.
    harness = testDataplane({ frontDoor: { shedHeapRatio: 1e-9 } });
    await harness.dataplane.apply('v1', singleHostIR(port, [route('direct', { path: prefix('/') }, { type: 'DirectResponse', status: 200, body: 'ok' })]));
    try {
      await logLine(harness.logs, /^load shedding on: heap/);
      expect((await closedBy(await connect(port))).text).toMatch(/^HTTP\/1\.1 503 /);
    } finally {
      await harness.dataplane.close();
    }
  });
});

describe('TLS passthrough listeners', () => {
  let port: number;
  let harness: TestDataplane;
  const held: net.Socket[] = [];

  beforeAll(async () => {
    port = await freePort();
    harness = testDataplane({ frontDoor: { tlsHandshakeTimeoutMs: TIMEOUT_MS, maxConnectionsPerListener: 1 } });
    const result = await harness.dataplane.apply('v1', { listeners: [], backends: {}, passthrough: [{ name: 'tls', origins: [], address: '127.0.0.1', port, routes: [] }] });
    expect(result.listeners).toEqual([{ name: 'tls', ok: true }]);
  });

  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await harness.dataplane.close();
  });

  it('cuts a connection that never sends its ClientHello, and refuses over the listener limit at once', async () => {
    const silent = await connect(port);
    held.push(silent);
    const silentClosed = closedBy(silent);
    const refused = await closedBy(await connect(port), TIMEOUT_MS / 2);
    expect(refused.text).toBe('');
    expect(await metricValue(harness.registry, 'sluice_connections_refused_total', { listener: 'tls', reason: 'listener_limit' })).toBe(1);
    const { afterMs } = await silentClosed;
    expect(afterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    expect(await metricValue(harness.registry, 'sluice_client_timeouts_total', { listener: 'tls', stage: 'tls_handshake' })).toBe(1);
  });
});

describe('front door timeouts (HTTPS whose certificates are chosen by cipher suites: each ClientHello read first)', () => {
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    port = await freePort();
    const rsa = (name: string) => createSelfSignedServerCertificate({ dnsNames: [name] });
    const [fallback, rsaB, ecB] = await Promise.all([rsa('a.example'), rsa('b.example'), selfSignedCertificate('b.example')]);
    const certificate = (secret: string, c: { certPem: string; keyPem: string }) => irCertificate(secret, [], { ...c, commonName: secret });
    harness = testDataplane({ frontDoor: { tlsHandshakeTimeoutMs: TIMEOUT_MS } });
    const routes = [route('direct', { path: prefix('/') }, { type: 'DirectResponse', status: 200, body: 'ok' })];
    const result = await harness.dataplane.apply('v1', {
      // b.example's set (RSA and ECDSA) is switched to by the SNI callback: the port reads ClientHellos.
      listeners: [listener(port, [scope('https', null, [['*', routes]])], { protocol: 'HTTPS', tls: { certificates: [certificate('secret/default/a', fallback), certificate('secret/default/b-rsa', rsaB), certificate('secret/default/b-ec', ecB)] } })],
      backends: {},
    });
    expect(result.listeners.every((l) => l.ok)).toBe(true);
  });

  afterAll(async () => {
    await harness.dataplane.close();
  });

  it('cuts a connection whose ClientHello never completes at the handshake timeout (counted), as without the read', async () => {
    const socket = await connect(port);
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])); // a record of 512 bytes announced, 1 sent
    const { text, afterMs } = await closedBy(socket);
    expect(text).toBe('');
    expect(afterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    expect(await metricValue(harness.registry, 'sluice_client_timeouts_total', { stage: 'tls_handshake' })).toBe(1);
  });

  it('a TLS 1.2 client with ECDHE-ECDSA suites only (RSA signatures listed first) gets the ECDSA certificate; a session past its handshake is not cut by the read\'s bound', async () => {
    const clients = [
      { servername: 'b.example', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256:ecdsa_secp256r1_sha256', keyType: 'ec', name: 'b.example' },
      { servername: 'b.example', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', sigalgs: 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256', keyType: 'rsa', name: 'b.example' },
      // No SNI: the fallback set, OpenSSL's pick; the callback never runs.
      { servername: undefined, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', sigalgs: 'rsa_pss_rsae_sha256', keyType: 'rsa', name: 'a.example' },
    ];
    for (const client of clients) {
      const socket = tls.connect({ host: '127.0.0.1', port, ...(client.servername ? { servername: client.servername } : {}), maxVersion: 'TLSv1.2', ciphers: client.ciphers, sigalgs: client.sigalgs, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', () => resolve());
        socket.once('error', reject);
      });
      const peer = socket.getPeerX509Certificate();
      expect(`${peer?.subjectAltName} ${peer?.publicKey.asymmetricKeyType}`).toBe(`DNS:${client.name} ${client.keyType}`);
      // Longer than the handshake bound, then a request: answered.
      await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS * 1.5));
      socket.write('GET / HTTP/1.1\r\nhost: b.example\r\nconnection: close\r\n\r\n');
      const { text } = await closedBy(socket as net.Socket);
      expect(text).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\nok$/);
    }
    expect(await metricValue(harness.registry, 'sluice_client_timeouts_total', { stage: 'tls_handshake' })).toBe(1);
  });
});
