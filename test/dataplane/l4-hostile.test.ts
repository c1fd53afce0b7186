// The UDP, TCP and TLS-terminate listeners against hostile clients, on real sockets: a flood of
// datagrams from ever new source addresses (what a spoofed-source flood looks like to the proxy:
// each source port is a session as each forged address would be) must not refuse TCP clients, and a
// backend answering more than the client sent must not turn Sluice into an amplifier towards the
// (unverifiable) source address.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import type { HttpIR, ProxyListener } from '../../ir/types.ts';
import { freePort } from '../support/sluice-process.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';

const HOST = '127.0.0.1';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function started(frontDoor: NonNullable<Parameters<typeof testDataplane>[0]>['frontDoor']): TestDataplane {
  const t = testDataplane({ frontDoor });
  cleanups.push(() => t.dataplane.close());
  return t;
}

function udpSocket(): UdpSocket {
  const socket = createSocket('udp4');
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

/** A UDP backend that answers every datagram with `reply(payload)`. */
async function udpBackend(reply: (payload: Buffer) => Buffer): Promise<number> {
  const socket = udpSocket();
  socket.on('message', (msg, from) => socket.send(reply(msg), from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  return socket.address().port;
}

/** A TCP backend that writes `hello\n` on connect. */
async function tcpBackend(): Promise<number> {
  const server: Server = createServer((socket) => socket.end('hello\n'));
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

function listener(name: string, port: number, backend: string): ProxyListener {
  return {
    name,
    origin: { kind: 'Gateway', namespace: 'default', name: 'gw', sectionName: name },
    address: HOST,
    port,
    route: { name: `route-${name}`, origin: { kind: 'UDPRoute', namespace: 'default', name: 'r' }, backends: [{ backend, weight: 1, filters: [] }] },
  };
}

function ir(parts: Partial<HttpIR>): HttpIR {
  return { listeners: [], backends: {}, ...parts };
}

/** Every datagram `socket` receives within `waitMs`. */
function collect(socket: UdpSocket, waitMs: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const onMessage = (msg: Buffer) => got.push(msg);
  socket.on('message', onMessage);
  return new Promise((resolve) =>
    setTimeout(() => {
      socket.off('message', onMessage);
      resolve(got);
    }, waitMs),
  );
}

function tcpFirstLine(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('close', () => resolve(text.includes('\n') ? text.slice(0, text.indexOf('\n')) : null));
    socket.on('error', () => undefined);
  });
}

async function metricValue(t: TestDataplane, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await t.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return value?.value ?? 0;
}

describe('UDP listeners under a flood from many sources', () => {
  it('caps sessions per UDP listener on their own: TCP clients are still served with the connection budget at its smallest', async () => {
    const echo = await udpBackend((msg) => msg);
    const tcp = await tcpBackend();
    // --max-connections 1: were UDP sessions still counted as connections, the first forged
    // source would take the only place and the TCP listener would refuse every client.
    const t = started({ maxConnections: 1, maxUdpSessionsPerListener: 5 });
    const [udpPort, tcpPort] = [await freePort(), await freePort()];
    const udpName = `udp/${HOST}:${udpPort}`;
    await t.dataplane.apply('v1', ir({
      backends: { u: { name: 'u', appProtocol: 'http', endpoints: [{ address: HOST, port: echo }] }, t: { name: 't', appProtocol: 'http', endpoints: [{ address: HOST, port: tcp }] } },
      udp: [listener(udpName, udpPort, 'u')],
      tcp: [{ ...listener(`${HOST}:${tcpPort}`, tcpPort, 't'), origin: { kind: 'Gateway', namespace: 'default', name: 'gw', sectionName: 'tcp' } }],
    }));
    const sources = Array.from({ length: 20 }, () => udpSocket());
    await Promise.all(sources.map((s) => new Promise<void>((resolve) => s.bind(0, HOST, resolve))));
    const replies = sources.map((s) => collect(s, 1_000));
    sources.forEach((s, i) => s.send(`flood ${i}`, udpPort, HOST));
    const answered = (await Promise.all(replies)).filter((r) => r.length > 0).length;
    expect(answered).toBe(5);
    expect(await metricValue(t, 'sluice_udp_sessions', { listener: udpName })).toBe(5);
    expect(await metricValue(t, 'sluice_udp_datagrams_dropped_total', { listener: udpName, reason: 'session_limit' })).toBe(15);
    expect(await metricValue(t, 'sluice_connections_refused_total', { listener: udpName, reason: 'udp_session_limit' })).toBe(15);
    expect(await tcpFirstLine(tcpPort)).toBe('hello');
  });

  it('sends a client at most --udp-reply-ratio times the bytes it sent; further replies are dropped and counted', async () => {
    // An amplifier: 100 bytes back for every datagram, whatever its size.
    const amplifier = await udpBackend(() => Buffer.alloc(100, 0x61));
    const t = started({ udpReplyRatio: 3 });
    const port = await freePort();
    const name = `udp/${HOST}:${port}`;
    await t.dataplane.apply('v1', ir({ backends: { a: { name: 'a', appProtocol: 'http', endpoints: [{ address: HOST, port: amplifier }] } }, udp: [listener(name, port, 'a')] }));
    const client = udpSocket();
    await new Promise<void>((resolve) => client.bind(0, HOST, resolve));
    // 10-byte datagrams: 30 bytes of reply allowed per datagram, never one of 100 until 4 were sent.
    let received = collect(client, 500);
    client.send(Buffer.alloc(10), port, HOST);
    client.send(Buffer.alloc(10), port, HOST);
    expect(await received).toHaveLength(0);
    expect(await metricValue(t, 'sluice_udp_replies_dropped_total', { listener: name })).toBe(2);
    // 40 bytes sent in all: 120 allowed, so one reply of 100 passes.
    received = collect(client, 500);
    client.send(Buffer.alloc(20), port, HOST);
    expect((await received).map((r) => r.length)).toEqual([100]);
    // A client sending as much as it gets back is never cut (an echo, a DNS query and its answer).
    received = collect(client, 500);
    for (let i = 0; i < 5; i++) client.send(Buffer.alloc(100), port, HOST);
    expect(await received).toHaveLength(5);
  });

  it('with --udp-reply-ratio 0 replies are not bounded', async () => {
    const amplifier = await udpBackend(() => Buffer.alloc(1000, 0x61));
    const t = started({ udpReplyRatio: 0 });
    const port = await freePort();
    await t.dataplane.apply('v1', ir({ backends: { a: { name: 'a', appProtocol: 'http', endpoints: [{ address: HOST, port: amplifier }] } }, udp: [listener(`udp/${HOST}:${port}`, port, 'a')] }));
    const client = udpSocket();
    await new Promise<void>((resolve) => client.bind(0, HOST, resolve));
    const received = collect(client, 500);
    client.send(Buffer.alloc(1), port, HOST);
    expect((await received).map((r) => r.length)).toEqual([1000]);
  });
});

describe('TCP listeners and half-closed connections', () => {
  it("relays the backend's answer to a client that half-closed after its request (shutdown(SHUT_WR), as nc -N or whois do)", async () => {
    // Answers once the client's side has ended: what it read, then its own end.
    const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
      let got = '';
      socket.on('data', (d) => (got += d));
      socket.on('end', () => socket.end(`got ${got}\n`));
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const t = started({});
    const port = await freePort();
    await t.dataplane.apply('v1', ir({
      backends: { b: { name: 'b', appProtocol: 'http', endpoints: [{ address: HOST, port: (server.address() as AddressInfo).port }] } },
      tcp: [{ ...listener(`${HOST}:${port}`, port, 'b'), origin: { kind: 'Gateway', namespace: 'default', name: 'gw', sectionName: 'tcp' } }],
    }));
    const answer = await new Promise<string>((resolve) => {
      const client = connect({ host: HOST, port, allowHalfOpen: true }, () => client.end('hello'));
      let text = '';
      client.on('data', (d) => (text += d));
      client.on('end', () => resolve(text));
      client.on('close', () => resolve(text));
      client.on('error', () => resolve(`error ${text}`));
    });
    expect(answer).toBe('got hello\n');
  });
});

