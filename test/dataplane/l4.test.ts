// TCP, UDP and TLS-terminate listeners of a real Dataplane on real sockets: weighted choice per
// connection and per UDP session, replies from the listener socket, refused and unreachable
// backends, idle and session timeouts, session limits, reloads that keep open connections, and
// TLS ended at the gateway beside passthrough on one port.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import type { Backend, HttpIR, ProxyListener, TlsCertificate } from '../../ir/types.ts';
import { createSelfSignedServerCertificate } from '../support/demo/certs.ts';
import { freePort } from '../support/sluice-process.ts';
import { startBlackhole } from './support/blackhole.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';

const HOST = '127.0.0.1';

interface TcpBackend {
  name: string;
  port: number;
  server: Server;
  /** Connections it accepted. */
  accepted: number;
}

/** Writes `<name>\n` on connect, then echoes every byte. */
async function tcpBackend(name: string): Promise<TcpBackend> {
  const backend: TcpBackend = { name, port: 0, server: createServer(), accepted: 0 };
  backend.server.on('connection', (socket) => {
    backend.accepted++;
    socket.write(`${name}\n`);
    socket.pipe(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => backend.server.listen(0, HOST, resolve));
  backend.port = (backend.server.address() as AddressInfo).port;
  return backend;
}

interface UdpBackend {
  name: string;
  port: number;
  socket: UdpSocket;
}

/** Answers every datagram with `<name>:<payload>`. */
async function udpBackend(name: string): Promise<UdpBackend> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, from) => socket.send(`${name}:${msg.toString()}`, from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  return { name, port: socket.address().port, socket };
}

function backendOf(name: string, port: number): Backend {
  return { name, appProtocol: 'http', endpoints: [{ address: HOST, port }] };
}

function proxyListener(name: string, port: number, backends: { backend: string | null; weight: number }[] | null): ProxyListener {
  return {
    name,
    origin: { kind: 'Gateway', namespace: 'default', name: 'gw', sectionName: name },
    address: HOST,
    port,
    ...(backends ? { route: { name: `route-${name}`, origin: { kind: 'TCPRoute', namespace: 'default', name: `route-${name}` }, backends: backends.map((b) => ({ ...b, filters: [] })) } } : {}),
  };
}

function ir(parts: Partial<HttpIR>): HttpIR {
  return { listeners: [], backends: {}, ...parts };
}

/** The first line the TCP backend behind `port` writes; null when the gateway closes first. */
function firstLine(port: number, keep = false): Promise<{ line: string | null; socket: Socket }> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    let text = '';
    const done = (line: string | null) => {
      if (!keep) socket.destroy();
      resolve({ line, socket });
    };
    socket.on('data', (d) => {
      text += d;
      if (text.includes('\n')) done(text.slice(0, text.indexOf('\n')));
    });
    socket.on('close', () => done(null));
    socket.on('error', () => undefined);
  });
}

/** One datagram and its reply; null when none comes within `waitMs`. */
function udpExchange(port: number, payload: string, socket?: UdpSocket, waitMs = 1000): Promise<{ reply: string | null; from: AddressInfo | null }> {
  const own = socket ?? createSocket('udp4');
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(null, null), waitMs);
    const onMessage = (msg: Buffer, from: AddressInfo) => finish(msg.toString(), from);
    const finish = (reply: string | null, from: AddressInfo | null) => {
      clearTimeout(timer);
      own.off('message', onMessage);
      if (!socket) own.close();
      resolve({ reply, from });
    };
    own.on('message', onMessage);
    own.send(payload, port, HOST);
  });
}

async function metricValue(t: TestDataplane, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await t.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return value?.value ?? 0;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function started(frontDoor: Parameters<typeof testDataplane>[0] = {}): Promise<TestDataplane> {
  const t = testDataplane(frontDoor);
  cleanups.push(() => t.dataplane.close());
  return t;
}

function tracked<T extends { server?: Server; socket?: UdpSocket }>(backend: T): T {
  cleanups.push(() => {
    backend.server?.close();
    backend.socket?.close();
  });
  return backend;
}

describe('TCP listeners (TCPRoute)', () => {
  it('picks a backend per connection by weight (3:1 exactly over 40, weight 0 never)', async () => {
    const [a, b, c] = [tracked(await tcpBackend('a')), tracked(await tcpBackend('b')), tracked(await tcpBackend('c'))];
    const t = await started();
    const port = await freePort();
    const result = await t.dataplane.apply('v1', ir({
      backends: { a: backendOf('a', a.port), b: backendOf('b', b.port), c: backendOf('c', c.port) },
      tcp: [proxyListener(`${HOST}:${port}`, port, [{ backend: 'a', weight: 3 }, { backend: 'b', weight: 1 }, { backend: 'c', weight: 0 }])],
    }));
    expect(result.listeners).toEqual([{ name: `${HOST}:${port}`, ok: true }]);
    const seen: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const { line } = await firstLine(port);
      seen[line ?? 'closed'] = (seen[line ?? 'closed'] ?? 0) + 1;
    }
    expect(seen).toEqual({ a: 30, b: 10 });
    expect(c.accepted).toBe(0);
    expect(await metricValue(t, 'sluice_l4_connections_total', { listener: `${HOST}:${port}`, protocol: 'TCP', outcome: 'forwarded' })).toBe(40);
  });

  it('relays bytes both ways and counts them', async () => {
    const a = tracked(await tcpBackend('a'));
    const t = await started();
    const port = await freePort();
    await t.dataplane.apply('v1', ir({ backends: { a: backendOf('a', a.port) }, tcp: [proxyListener(`${HOST}:${port}`, port, [{ backend: 'a', weight: 1 }])] }));
    const payload = Buffer.alloc(256 * 1024, 7);
    const echoed = await new Promise<Buffer>((resolve) => {
      const socket = connect({ host: HOST, port });
      const chunks: Buffer[] = [];
      let length = 0;
      socket.on('data', (d: Buffer) => {
        chunks.push(d);
        length += d.length;
        if (length >= 2 + payload.length) {
          socket.end();
          resolve(Buffer.concat(chunks));
        }
      });
      socket.write(payload);
    });
    expect(createHash('sha256').update(echoed.subarray(2)).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    await new Promise((r) => setTimeout(r, 100));
    expect(await metricValue(t, 'sluice_l4_bytes_total', { listener: `${HOST}:${port}`, direction: 'from_client' })).toBe(payload.length);
  });

  it('closes connections without a route, to an invalid reference or to a refused port; an unreachable backend within the connect timeout', async () => {
    const t = await started({ frontDoor: { backendConnectTimeoutMs: 300 } });
    const closedPort = await freePort(); // nothing listens there
    const blackhole = await startBlackhole();
    cleanups.push(() => blackhole.close());
    const [p1, p2, p3, p4] = [await freePort(), await freePort(), await freePort(), await freePort()];
    await t.dataplane.apply('v1', ir({
      backends: { refused: backendOf('refused', closedPort), unreachable: backendOf('unreachable', blackhole.port) },
      tcp: [
        proxyListener(`${HOST}:${p1}`, p1, null),
        proxyListener(`${HOST}:${p2}`, p2, [{ backend: null, weight: 1 }]),
        proxyListener(`${HOST}:${p3}`, p3, [{ backend: 'refused', weight: 1 }]),
        proxyListener(`${HOST}:${p4}`, p4, [{ backend: 'unreachable', weight: 1 }]),
      ],
    }));
    for (const port of [p1, p2, p3]) expect((await firstLine(port)).line).toBeNull();
    const since = performance.now();
    expect((await firstLine(p4)).line).toBeNull();
    // Closed by the connect timeout (300 ms; generous slack for a loaded machine), not the OS's minutes.
    expect(performance.now() - since).toBeGreaterThanOrEqual(250);
    expect(performance.now() - since).toBeLessThan(5_000);
    expect(await metricValue(t, 'sluice_l4_connections_total', { listener: `${HOST}:${p1}`, outcome: 'no_route' })).toBe(1);
    expect(await metricValue(t, 'sluice_l4_connections_total', { listener: `${HOST}:${p2}`, outcome: 'no_endpoint' })).toBe(1);
    expect(await metricValue(t, 'sluice_l4_connections_total', { listener: `${HOST}:${p3}`, outcome: 'connect_failed' })).toBe(1);
    expect(await metricValue(t, 'sluice_l4_connections_total', { listener: `${HOST}:${p4}`, outcome: 'connect_failed' })).toBe(1);
  });

  it('closes a relayed connection that stays idle past the stream idle timeout', async () => {
    const a = tracked(await tcpBackend('a'));
    const t = await started({ frontDoor: { streamIdleTimeoutMs: 200 } });
    const port = await freePort();
    await t.dataplane.apply('v1', ir({ backends: { a: backendOf('a', a.port) }, tcp: [proxyListener(`${HOST}:${port}`, port, [{ backend: 'a', weight: 1 }])] }));
    const { line, socket } = await firstLine(port, true);
    expect(line).toBe('a');
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
  });

  it('keeps open connections on their backend across a reload; new connections take the new route', async () => {
    const [a, b] = [tracked(await tcpBackend('a')), tracked(await tcpBackend('b'))];
    const t = await started();
    const port = await freePort();
    const name = `${HOST}:${port}`;
    const backends = { a: backendOf('a', a.port), b: backendOf('b', b.port) };
    await t.dataplane.apply('v1', ir({ backends, tcp: [proxyListener(name, port, [{ backend: 'a', weight: 1 }])] }));
    const open = await firstLine(port, true);
    expect(open.line).toBe('a');
    await t.dataplane.apply('v2', ir({ backends, tcp: [proxyListener(name, port, [{ backend: 'b', weight: 1 }])] }));
    expect((await firstLine(port)).line).toBe('b');
    // The old connection still talks to a.
    const echoed = await new Promise<string>((resolve) => {
      open.socket.once('data', (d) => resolve(d.toString()));
      open.socket.write('still here');
    });
    expect(echoed).toBe('still here');
    open.socket.destroy();
  });
});

describe('UDP listeners (UDPRoute)', () => {
  it('keeps a client on one backend per session, splits new sessions by weight, and answers from the listener socket', async () => {
    const [a, b] = [tracked(await udpBackend('a')), tracked(await udpBackend('b'))];
    const t = await started();
    const port = await freePort();
    const name = `udp/${HOST}:${port}`;
    await t.dataplane.apply('v1', ir({ backends: { a: backendOf('a', a.port), b: backendOf('b', b.port) }, udp: [proxyListener(name, port, [{ backend: 'a', weight: 3 }, { backend: 'b', weight: 1 }])] }));
    const client = createSocket('udp4');
    cleanups.push(() => void client.close());
    const sticky = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const { reply, from } = await udpExchange(port, `ping ${i}`, client);
      expect(reply).toMatch(new RegExp(`^[ab]:ping ${i}$`));
      expect(from).toMatchObject({ address: HOST, port });
      sticky.add(reply!.split(':')[0]!);
    }
    expect(sticky.size).toBe(1);
    const seen: Record<string, number> = { [[...sticky][0]!]: 1 };
    for (let i = 0; i < 39; i++) {
      const { reply } = await udpExchange(port, 'x');
      const backend = reply?.split(':')[0] ?? 'none';
      seen[backend] = (seen[backend] ?? 0) + 1;
    }
    expect(seen).toEqual({ a: 30, b: 10 });
    expect(await metricValue(t, 'sluice_udp_sessions', { listener: name })).toBeGreaterThanOrEqual(1);
  });

  it('ends idle sessions, limits sessions per listener and drops datagrams without a backend', async () => {
    const a = tracked(await udpBackend('a'));
    const t = await started({ frontDoor: { udpSessionTimeoutMs: 1_000, maxUdpSessionsPerListener: 2 } });
    const [port, invalid] = [await freePort(), await freePort()];
    const name = `udp/${HOST}:${port}`;
    await t.dataplane.apply('v1', ir({
      backends: { a: backendOf('a', a.port) },
      udp: [proxyListener(name, port, [{ backend: 'a', weight: 1 }]), proxyListener(`udp/${HOST}:${invalid}`, invalid, [{ backend: null, weight: 1 }])],
    }));
    const clients = [createSocket('udp4'), createSocket('udp4'), createSocket('udp4')];
    cleanups.push(() => clients.forEach((c) => c.close()));
    expect((await udpExchange(port, '1', clients[0])).reply).toBe('a:1');
    expect((await udpExchange(port, '2', clients[1])).reply).toBe('a:2');
    // A third concurrent session is over the per-listener limit: dropped, counted.
    expect((await udpExchange(port, '3', clients[2], 200)).reply).toBeNull();
    expect(await metricValue(t, 'sluice_udp_datagrams_dropped_total', { listener: name, reason: 'session_limit' })).toBe(1);
    expect(await metricValue(t, 'sluice_udp_sessions', { listener: name })).toBe(2);
    // Idle sessions end: the gauge returns to 0 and the third client is served.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await metricValue(t, 'sluice_udp_sessions', { listener: name })).toBe(0);
    expect((await udpExchange(port, '4', clients[2])).reply).toBe('a:4');
    expect((await udpExchange(invalid, '5', undefined, 200)).reply).toBeNull();
    expect(await metricValue(t, 'sluice_udp_datagrams_dropped_total', { listener: `udp/${HOST}:${invalid}`, reason: 'no_endpoint' })).toBe(1);
  });

  it('binds UDP and TCP on the same port number as two sockets', async () => {
    const [tcpA, udpA] = [tracked(await tcpBackend('tcp')), tracked(await udpBackend('udp'))];
    const t = await started();
    const port = await freePort();
    const result = await t.dataplane.apply('v1', ir({
      backends: { t: backendOf('t', tcpA.port), u: backendOf('u', udpA.port) },
      tcp: [proxyListener(`${HOST}:${port}`, port, [{ backend: 't', weight: 1 }])],
      udp: [proxyListener(`udp/${HOST}:${port}`, port, [{ backend: 'u', weight: 1 }])],
    }));
    expect(result.listeners.every((l) => l.ok)).toBe(true);
    expect((await firstLine(port)).line).toBe('tcp');
    expect((await udpExchange(port, 'q')).reply).toBe('udp:q');
  });
});

describe('TLS listeners in Terminate mode (TLSRoute), beside passthrough', () => {
  it('ends TLS with the listener certificate for its SNI and relays plaintext; a passthrough name on the same port stays end to end; an unknown name is closed', async () => {
    const gatewayCert = await createSelfSignedServerCertificate({ dnsNames: ['tls.example.com'] });
    const backendCert = await createSelfSignedServerCertificate({ dnsNames: ['abc.example.com'] });
    const plain = tracked(await tcpBackend('plain'));
    const tlsBackend = createTlsServer({ cert: backendCert.certPem, key: backendCert.keyPem }, (socket) => socket.end(`backend-tls ${(socket as unknown as { servername: string }).servername}\n`));
    await new Promise<void>((resolve) => tlsBackend.listen(0, HOST, resolve));
    cleanups.push(() => void tlsBackend.close());
    const t = await started();
    const port = await freePort();
    const certificate: TlsCertificate = { name: 'cert', secret: 'secret/default/cert', hostnames: ['tls.example.com'], certPem: gatewayCert.certPem, keyPem: gatewayCert.keyPem, hash: 'h1' };
    const origin = { kind: 'TLSRoute' as const, namespace: 'default', name: 'r' };
    await t.dataplane.apply('v1', ir({
      backends: { plain: backendOf('plain', plain.port), tls: backendOf('tls', (tlsBackend.address() as AddressInfo).port) },
      passthrough: [{
        name: `${HOST}:${port}`,
        origins: [],
        address: HOST,
        port,
        routes: [
          { name: 'terminated', origin, hostname: 'tls.example.com', backends: [{ backend: 'plain', weight: 1, filters: [] }], terminate: { certificates: [certificate] } },
          { name: 'passed', origin, hostname: 'abc.example.com', backends: [{ backend: 'tls', weight: 1, filters: [] }] },
        ],
      }],
    }));
    const viaTls = (servername: string, ca: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: HOST, port, servername, ca }, () => undefined);
        let text = '';
        socket.on('data', (d) => {
          text += d;
          if (text.includes('\n')) {
            socket.destroy();
            resolve(text.trim());
          }
        });
        socket.on('error', reject);
        socket.on('close', () => resolve(text.trim()));
      });
    // The gateway's certificate verifies and the plaintext backend answers.
    expect(await viaTls('tls.example.com', gatewayCert.certPem)).toBe('plain');
    // The backend's own certificate verifies: the gateway never decrypted.
    expect(await viaTls('abc.example.com', backendCert.certPem)).toBe('backend-tls abc.example.com');
    await expect(viaTls('other.example.com', gatewayCert.certPem)).rejects.toThrow(/socket disconnected|ECONNRESET/);
    expect(await metricValue(t, 'sluice_l4_connections_total', { protocol: 'TLS', outcome: 'no_route' })).toBe(1);
  });
  it('closes a client that trickles its ClientHello past the handshake deadline (a deadline, not an idle timer)', async () => {
    const t = await started({ frontDoor: { tlsHandshakeTimeoutMs: 300 } });
    const port = await freePort();
    await t.dataplane.apply('v1', ir({ passthrough: [{ name: `${HOST}:${port}`, origins: [], address: HOST, port, routes: [] }] }));
    const socket = connect({ host: HOST, port });
    socket.on('error', () => undefined);
    // A handshake record header announcing a large ClientHello, then one byte every 50 ms.
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01]));
    const trickle = setInterval(() => socket.write(Buffer.from([0])), 50);
    const since = performance.now();
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    clearInterval(trickle);
    expect(performance.now() - since).toBeLessThan(5_000);
    expect(await metricValue(t, 'sluice_client_timeouts_total', { stage: 'tls_handshake' })).toBe(1);
  });
});
