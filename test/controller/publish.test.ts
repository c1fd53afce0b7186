// The snapshot protocol end to end over real loopback sockets: controller/publish/server.ts
// streaming to dataplane/config/subscriber.ts. The "dead controller" is a real node:http server
// that answers and then goes silent; nothing is mocked.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { createCertificateAuthority, createServerCertificate } from '../support/demo/certs.ts';
import type { IR } from '../../ir/types.ts';
import { irVersion } from '../../ir/version.ts';
import type { Ack } from '../../ir/protocol.ts';
import { SnapshotServer, type DataplaneState, type Leadership, type SnapshotServerOptions } from '../../controller/publish/server.ts';
import { rollout } from '../../controller/status/kubernetes.ts';
import { SnapshotSubscriber, type ApplyOutcome, type SnapshotSubscriberOptions } from '../../dataplane/config/subscriber.ts';

const logger = pino({ level: process.env.PUBLISH_DEBUG ? 'debug' : 'silent' });
const LEADING: Leadership = { isLeader: true };

/** A distinct IR per `n` (optionally padded with `endpoints` endpoints to make it big). */
function irNumber(n: number, endpoints = 1): IR {
  const name = `service/ns/svc-${n}/port/80`;
  const http = {
    listeners: [],
    backends: {
      [name]: {
        name,
        appProtocol: 'http' as const,
        endpoints: Array.from({ length: endpoints }, (_, i) => ({ address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8000 + (n % 1000) })),
      },
    },
  };
  const l4 = { services: [] };
  return { version: irVersion(http, l4), http, l4 };
}

// ------------------------------------------------------------------ resources closed after each test

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(options: Partial<SnapshotServerOptions> = {}): Promise<SnapshotServer> {
  const server = new SnapshotServer({ address: '127.0.0.1:0', logger, leader: () => LEADING, ...options });
  await server.listen();
  cleanups.push(() => server.close());
  return server;
}

/** What a dataplane did: every apply call, in order. `behaviour` decides each outcome. */
class FakeDataplane {
  readonly calls: { version: string; at: number }[] = [];
  behaviour: (version: string) => Promise<ApplyOutcome> | ApplyOutcome = () => ({ ok: true, listeners: [{ name: '0.0.0.0:80', ok: true }] });
  readonly apply = async (version: string, ir: IR): Promise<ApplyOutcome> => {
    expect(ir.version).toBe(version);
    this.calls.push({ version, at: performance.now() });
    return this.behaviour(version);
  };
  versions(): string[] {
    return this.calls.map((c) => c.version);
  }
}

function startSubscriber(url: string, dataplane: FakeDataplane, options: Partial<SnapshotSubscriberOptions> = {}): SnapshotSubscriber {
  const subscriber = new SnapshotSubscriber({ url, name: 'dp-1', logger, apply: dataplane.apply, backoff: { initialMs: 50, maxMs: 1000 }, ...options });
  subscriber.start();
  cleanups.push(() => subscriber.stop());
  return subscriber;
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

function stateOf(server: SnapshotServer, name = 'dp-1'): DataplaneState | undefined {
  return server.acks().find((s) => s.name === name);
}

/** A raw HTTP client request (no redirects followed, nothing added). */
async function raw(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await fetch(url, { ...init, redirect: 'manual' });
  const body = await res.text();
  return { status: res.status, headers: Object.fromEntries(res.headers), body };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// ------------------------------------------------------------------ tests

describe('snapshot protocol', () => {
  it('delivers the first snapshot and records the acknowledgement', async () => {
    const server = await startServer();
    const v1 = irNumber(1);
    server.publish(v1);
    const dataplane = new FakeDataplane();
    const acks: Ack[] = [];
    server.onAck((_state, ack) => acks.push(ack));
    const subscriber = startSubscriber(server.url(), dataplane);

    await waitFor('the ack of v1', () => stateOf(server)?.appliedVersion === v1.version);
    expect(dataplane.versions()).toEqual([v1.version]);
    expect(subscriber.current()).toBe(v1.version);
    expect(subscriber.connected()).toBe(true);
    const state = stateOf(server)!;
    expect(state).toMatchObject({ connected: true, appliedVersion: v1.version, listeners: [{ name: '0.0.0.0:80', ok: true }] });
    expect(state.lastAck).toMatchObject({ version: v1.version, ok: true, stale: false, unknown: false });
    expect(acks).toEqual([{ name: 'dp-1', version: v1.version, ok: true, listeners: [{ name: '0.0.0.0:80', ok: true }], serving: v1.version }]);
    expect(rollout(server.acks(), v1.version)).toEqual({ dataplanes: 1, applied: ['dp-1'], pending: [], rejected: [], socketFailures: [] });

    const diagnostics = await raw(`${server.url()}/v1/dataplanes`);
    expect(diagnostics.status).toBe(200);
    expect(JSON.parse(diagnostics.body)).toMatchObject({ leader: true, version: v1.version, dataplanes: [{ name: 'dp-1', connected: true, appliedVersion: v1.version }] });
  });

  it('streams the hello, the snapshot and heartbeats as NDJSON', async () => {
    const server = await startServer({ heartbeatIntervalMs: 100, id: 'controller-0' });
    const v1 = irNumber(1);
    server.publish(v1);
    const lines = await new Promise<string[]>((resolve, reject) => {
      const req = httpRequest(`${server.url()}/v1/snapshots?name=probe`, (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toBe('application/x-ndjson');
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          if (text.split('\n').length > 4) {
            req.destroy();
            resolve(text.split('\n').slice(0, 4));
          }
        });
      });
      req.on('error', reject);
      req.end();
    });
    const messages = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(messages[0]).toEqual({ type: 'hello', server: 'controller-0', version: v1.version, heartbeatMs: 100 });
    expect(messages[1]).toMatchObject({ type: 'snapshot', version: v1.version, ir: v1 });
    expect(messages[2]).toEqual({ type: 'heartbeat' });
    expect(messages[3]).toEqual({ type: 'heartbeat' });
  });

  it('brings each new publish to a connected dataplane, in order', async () => {
    const server = await startServer();
    const dataplane = new FakeDataplane();
    server.publish(irNumber(0));
    startSubscriber(server.url(), dataplane);
    await waitFor('the first apply', () => stateOf(server)?.appliedVersion === irNumber(0).version);

    const toApply: number[] = [];
    const toAck: number[] = [];
    for (let i = 1; i <= 20; i++) {
      const ir = irNumber(i);
      const acked = new Promise<number>((resolve) => {
        const off = server.onAck((_s, ack) => {
          if (ack.version !== ir.version) return;
          off();
          resolve(performance.now());
        });
      });
      const published = performance.now();
      server.publish(ir);
      const ackedAt = await acked;
      const applied = dataplane.calls.find((c) => c.version === ir.version)!;
      toApply.push(applied.at - published);
      toAck.push(ackedAt - published);
    }
    // Each publish applied once, in order (the loop waits for each ack before the next publish).
    expect(dataplane.calls.map((c) => c.version)).toEqual(Array.from({ length: 21 }, (_, i) => irNumber(i).version));
    // How quickly is a figure, printed for the report (not asserted: a loaded machine moves it):
    // publish → apply called in the dataplane, and → ack recorded by the controller.
    console.log(
      `publish→apply p50 ${percentile(toApply, 50).toFixed(2)} ms, p95 ${percentile(toApply, 95).toFixed(2)} ms; ` +
        `publish→ack recorded p50 ${percentile(toAck, 50).toFixed(2)} ms, p95 ${percentile(toAck, 95).toFixed(2)} ms (20 publishes, loopback)`,
    );
  });

  it('keeps serving while the controller is away and catches up when it returns on the same port', async () => {
    const first = await startServer();
    const port = Number(new URL(first.url()).port);
    const v1 = irNumber(1);
    const v2 = irNumber(2);
    first.publish(v1);
    const dataplane = new FakeDataplane();
    const subscriber = startSubscriber(first.url(), dataplane);
    await waitFor('v1 applied', () => stateOf(first)?.appliedVersion === v1.version);

    await first.close();
    await waitFor('the subscriber to notice', () => !subscriber.connected());
    await sleep(300); // a few reconnect attempts against a closed port
    expect(subscriber.current()).toBe(v1.version);
    expect(dataplane.versions()).toEqual([v1.version]);

    const second = await startServer({ address: `127.0.0.1:${port}` });
    second.publish(v2); // published while the dataplane was away
    await waitFor('v2 applied after the restart', () => stateOf(second)?.appliedVersion === v2.version);
    expect(dataplane.versions()).toEqual([v1.version, v2.version]);
    expect(subscriber.current()).toBe(v2.version);
  });

  it('applies nothing when it reconnects to a controller with the version it serves, and re-acknowledges it', async () => {
    const first = await startServer();
    const port = Number(new URL(first.url()).port);
    const v1 = irNumber(1);
    first.publish(v1);
    const dataplane = new FakeDataplane();
    const subscriber = startSubscriber(first.url(), dataplane);
    await waitFor('v1 applied', () => stateOf(first)?.appliedVersion === v1.version);
    await first.close();
    await waitFor('the subscriber to notice', () => !subscriber.connected());

    // A restarted controller (or a new leader) that knows nothing about this dataplane yet.
    const second = await startServer({ address: `127.0.0.1:${port}` });
    second.publish(v1);
    await waitFor('the re-acknowledgement', () => stateOf(second)?.appliedVersion === v1.version);
    expect(stateOf(second)).toMatchObject({ connected: true, listeners: [{ name: '0.0.0.0:80', ok: true }], lastAck: { version: v1.version, stale: false } });
    await sleep(200);
    expect(dataplane.versions()).toEqual([v1.version]);
  });

  it('applies only the newest version after a slow apply, not the ones published meanwhile', async () => {
    const server = await startServer();
    const dataplane = new FakeDataplane();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const irs = [1, 2, 3, 4, 5, 6].map((n) => irNumber(n));
    dataplane.behaviour = async (version) => {
      if (version === irs[0]!.version) await gate;
      return { ok: true, listeners: [] };
    };
    server.publish(irs[0]!);
    const subscriber = startSubscriber(server.url(), dataplane);
    await waitFor('the slow apply to start', () => dataplane.calls.length === 1);
    for (const ir of irs.slice(1)) {
      server.publish(ir);
      await sleep(20);
    }
    await sleep(100); // every one of them has reached the subscriber by now
    release();
    await waitFor('the newest applied', () => stateOf(server)?.appliedVersion === irs[5]!.version);
    await sleep(100);
    expect(dataplane.versions()).toEqual([irs[0]!.version, irs[5]!.version]);
    expect(subscriber.current()).toBe(irs[5]!.version);
  });

  it('sends a dataplane that reads slowly the newest version when its socket drains, not a queue', async () => {
    const server = await startServer({ heartbeatIntervalMs: 60_000 });
    const v0 = irNumber(0, 10_000); // about 500 kB each
    server.publish(v0);
    const received: string[] = [];
    let res!: IncomingMessage;
    const req = httpRequest(`${server.url()}/v1/snapshots?name=slow`);
    cleanups.push(() => req.destroy());
    res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
      req.end();
    });
    res.pause(); // read nothing while 20 versions are published
    const irs = Array.from({ length: 20 }, (_, i) => irNumber(i + 1, 10_000));
    for (const ir of irs) server.publish(ir);
    await sleep(100);
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      text += chunk;
      const lines = text.split('\n');
      text = lines.pop()!;
      for (const line of lines) {
        const message = JSON.parse(line) as { type: string; version?: string };
        received.push(message.type === 'snapshot' ? message.version! : message.type);
      }
    });
    res.resume();
    await waitFor('the newest version', () => received.at(-1) === irs[19]!.version);
    // hello, v0, at most the one version written when the socket had room again, then the newest.
    expect(received.slice(0, 2)).toEqual(['hello', v0.version]);
    expect(received.length).toBeLessThanOrEqual(4);
    console.log(`slow reader: 21 versions published, ${received.length - 1} snapshots sent`);
  });

  it('asks for a bearer token, compared in constant time', async () => {
    const server = await startServer({ token: 's3cret-token' });
    server.publish(irNumber(1));
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic czNjcmV0LXRva2Vu' }, { authorization: 'Bearer s3cret-token-and-more' }];
    for (const headers of attempts) {
      const stream = await raw(`${server.url()}/v1/snapshots?name=dp-1`, { headers });
      expect(stream.status).toBe(401);
      expect(stream.headers['www-authenticate']).toMatch(/^Bearer /);
      const ack = await raw(`${server.url()}/v1/acks`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
      expect(ack.status).toBe(401);
      expect((await raw(`${server.url()}/v1/dataplanes`, { headers })).status).toBe(401);
    }
    expect((await raw(`${server.url()}/v1/dataplanes`, { headers: { authorization: 'Bearer s3cret-token' } })).status).toBe(200);

    const refused = new FakeDataplane();
    startSubscriber(server.url(), refused, { name: 'dp-wrong', token: 'nope' });
    const accepted = new FakeDataplane();
    startSubscriber(server.url(), accepted, { name: 'dp-right', token: 's3cret-token' });
    await waitFor('the right token to work', () => stateOf(server, 'dp-right')?.appliedVersion === irNumber(1).version);
    await sleep(200);
    expect(refused.calls).toEqual([]);
    expect(stateOf(server, 'dp-wrong')).toBeUndefined();
  });

  it('records acknowledgements of old or unknown versions with a flag, and refuses malformed ones', async () => {
    const server = await startServer();
    const v1 = irNumber(1);
    const v2 = irNumber(2);
    server.publish(v1);
    server.publish(v2);
    const post = (ack: unknown) => raw(`${server.url()}/v1/acks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ack) });
    expect((await post({ name: 'dp-a', version: v1.version, ok: true, listeners: [], serving: v1.version })).status).toBe(204);
    expect(stateOf(server, 'dp-a')).toMatchObject({ connected: false, appliedVersion: v1.version, lastAck: { stale: true, unknown: false } });
    expect((await post({ name: 'dp-b', version: 'deadbeefdeadbeef', ok: true, listeners: [] })).status).toBe(204);
    expect(stateOf(server, 'dp-b')).toMatchObject({ appliedVersion: 'deadbeefdeadbeef', lastAck: { stale: true, unknown: true } });
    const bad = await post({ name: 'dp-c', version: v2.version, ok: 'yes', listeners: [] });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error).toMatch(/^ok:/);
    expect((await post({ name: 'bad name!', version: v2.version, ok: true, listeners: [] })).status).toBe(400);
    expect((await raw(`${server.url()}/v1/snapshots`)).status).toBe(400); // no name
    // A failed socket's bind error code is kept (EADDRNOTAVAIL becomes a Gateway's AddressNotUsable).
    const failed = { name: '192.0.2.10:80', ok: false, error: 'cannot bind 192.0.2.10:80: EADDRNOTAVAIL', code: 'EADDRNOTAVAIL' };
    expect((await post({ name: 'dp-d', version: v2.version, ok: true, listeners: [failed], serving: v2.version })).status).toBe(204);
    expect(stateOf(server, 'dp-d')).toMatchObject({ listeners: [failed] });
    expect((await post({ name: 'dp-e', version: v2.version, ok: true, listeners: [{ ...failed, code: 'not a code' }] })).status).toBe(400);
  });

  it('redirects to the leader from another replica; the dataplane follows, and finds the new leader after a handover', async () => {
    let leaderIs: 'a' | 'b' = 'a';
    let a!: SnapshotServer;
    let b!: SnapshotServer;
    const leadership = (self: 'a' | 'b'): Leadership =>
      leaderIs === self ? LEADING : { isLeader: false, leaderUrl: (leaderIs === 'a' ? a : b).url() };
    a = await startServer({ leader: () => leadership('a'), id: 'a' });
    b = await startServer({ leader: () => leadership('b'), id: 'b' });
    const v1 = irNumber(1);
    const v2 = irNumber(2);
    a.publish(v1);
    b.publish(v1); // every replica translates; only the leader serves

    const redirect = await raw(`${b.url()}/v1/snapshots?name=dp-1&have=abc`);
    expect(redirect.status).toBe(307);
    expect(redirect.headers.location).toBe(`${a.url()}/v1/snapshots?name=dp-1&have=abc`);
    const ackRedirect = await raw(`${b.url()}/v1/acks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(ackRedirect.status).toBe(307);
    expect(ackRedirect.headers.location).toBe(`${a.url()}/v1/acks`);

    // The dataplane is configured with the follower's URL (think: a Service that reached it).
    const dataplane = new FakeDataplane();
    const subscriber = startSubscriber(b.url(), dataplane);
    await waitFor('v1 acknowledged to the leader', () => stateOf(a)?.appliedVersion === v1.version);
    expect(stateOf(b)).toBeUndefined();

    // Handover: b leads now and publishes v2; a notices it does not lead and ends its streams.
    leaderIs = 'b';
    b.publish(v2);
    a.leadershipChanged();
    await waitFor('v2 from the new leader', () => stateOf(b)?.appliedVersion === v2.version);
    expect(stateOf(a)?.connected).toBe(false);
    expect(dataplane.versions()).toEqual([v1.version, v2.version]);
    expect(subscriber.current()).toBe(v2.version);
  });

  it('answers 503 while there is no leader; the dataplane retries until there is one', async () => {
    let leadership: Leadership = { isLeader: false, leaderUrl: null };
    const server = await startServer({ leader: () => leadership });
    const v1 = irNumber(1);
    server.publish(v1);
    const answer = await raw(`${server.url()}/v1/snapshots?name=dp-1`);
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('1');
    expect(JSON.parse(answer.body)).toEqual({ error: 'no leader yet' });

    const dataplane = new FakeDataplane();
    startSubscriber(server.url(), dataplane);
    await sleep(300);
    expect(dataplane.calls).toEqual([]);
    leadership = LEADING;
    const since = performance.now();
    await waitFor('v1 once there is a leader', () => stateOf(server)?.appliedVersion === v1.version);
    expect(performance.now() - since).toBeLessThan(2500); // Retry-After 1 s, capped backoff
  });

  it('bounds open streams: all dataplanes together (maxStreams), and 4 per dataplane name; a closed one makes room', async () => {
    const server = await startServer({ maxStreams: 6 });
    server.publish(irNumber(1));
    /** Opens a stream and resolves once its hello arrived (the stream then counts). */
    const open = (name: string) =>
      new Promise<{ close: () => void }>((resolve, reject) => {
        const req = httpRequest(`${server.url()}/v1/snapshots?name=${name}`, (res) => {
          if (res.statusCode !== 200) return reject(new Error(`${name}: ${res.statusCode}`));
          res.once('data', () => resolve({ close: () => req.destroy() }));
        });
        req.on('error', () => undefined);
        req.end();
      });
    const same = [await open('dp-1'), await open('dp-1'), await open('dp-1'), await open('dp-1')];
    cleanups.push(() => same.forEach((s) => s.close()));
    const fifth = await raw(`${server.url()}/v1/snapshots?name=dp-1`);
    expect([fifth.status, fifth.headers['retry-after'], JSON.parse(fifth.body)]).toEqual([503, '1', { error: 'dataplane dp-1 has 4 snapshot streams open already' }]);
    const others = [await open('dp-2'), await open('dp-3')];
    cleanups.push(() => others.forEach((s) => s.close()));
    const seventh = await raw(`${server.url()}/v1/snapshots?name=dp-4`);
    expect([seventh.status, JSON.parse(seventh.body)]).toEqual([503, { error: 'too many snapshot streams open (6)' }]);
    // A stream that ends gives its room back.
    same[0]!.close();
    await waitFor('dp-1 down to 3 streams', () => (server as unknown as { streams: Set<unknown> }).streams.size === 5);
    const again = await open('dp-4');
    again.close();
  });

  it('bounds connections too: two per stream allowed (its stream and its acks) plus 64; one more is closed at once, and room comes back', async () => {
    const server = await startServer({ maxStreams: 6 });
    const port = Number(new URL(server.url()).port);
    const connect = () =>
      new Promise<{ socket: Socket; closed: () => boolean }>((resolve, reject) => {
        let closed = false;
        const socket = netConnect(port, '127.0.0.1', () => resolve({ socket, closed: () => closed }));
        socket.on('close', () => (closed = true));
        socket.on('error', (error) => (closed ? undefined : reject(error)));
      });
    const held = await Promise.all(Array.from({ length: 2 * 6 + 64 }, connect));
    cleanups.push(() => held.forEach((h) => h.socket.destroy()));
    const extra = await connect();
    cleanups.push(() => extra.socket.destroy());
    await waitFor('the extra connection closed', () => extra.closed());
    expect(held.filter((h) => h.closed())).toEqual([]);
    held[0]!.socket.destroy();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await raw(`${server.url()}/v1/dataplanes`).catch(() => null))?.status ?? 0;
      if (status !== 200) await sleep(20);
    }
    expect(status).toBe(200);
  });

  it('notices a controller that goes silent without closing (heartbeat timeout) and reconnects', async () => {
    // A real HTTP server: the 1st request gets a hello and then silence, the 2nd no response at
    // all (not even headers); a 3rd request proves the 2nd was given up too.
    const arrivals: number[] = [];
    const open: ServerResponse[] = [];
    const silent: Server = createServer((_req, res) => {
      arrivals.push(performance.now());
      open.push(res);
      if (arrivals.length === 1) {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write(`${JSON.stringify({ type: 'hello', server: 'zombie', version: null, heartbeatMs: 100 })}\n`);
      }
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          silent.closeAllConnections();
          silent.close(() => resolve());
        }),
    );
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const subscriber = startSubscriber(url, new FakeDataplane(), { heartbeatTimeoutMs: 500, backoff: { initialMs: 50, maxMs: 200 } });
    await waitFor('the first connection', () => subscriber.connected());
    await waitFor('a third connection', () => arrivals.length >= 3, 5000);
    const gaps = [arrivals[1]! - arrivals[0]!, arrivals[2]! - arrivals[1]!];
    console.log(`silent controller detected after ${gaps.map((g) => g.toFixed(0)).join(' ms and ')} ms (timeout 500 ms + backoff)`);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(490);
      expect(gap).toBeLessThan(500 + 200 + 1500); // timeout + the largest backoff + slack for a loaded machine
    }
  });

  it('keeps a quiet stream open as long as heartbeats arrive', async () => {
    const server = await startServer({ heartbeatIntervalMs: 100 });
    server.publish(irNumber(1));
    const subscriber = startSubscriber(server.url(), new FakeDataplane(), { heartbeatTimeoutMs: 300 });
    await waitFor('connected', () => stateOf(server)?.appliedVersion === irNumber(1).version);
    const since = stateOf(server)!.since;
    await sleep(1200); // four heartbeat timeouts without any new version
    expect(stateOf(server)!.since).toEqual(since);
    expect(subscriber.connected()).toBe(true);
  });

  it('acknowledges a failed apply with ok:false and keeps serving the previous version', async () => {
    const server = await startServer();
    const [v1, v2, v3, v4] = [1, 2, 3, 4].map((n) => irNumber(n)) as [IR, IR, IR, IR];
    const dataplane = new FakeDataplane();
    dataplane.behaviour = (version) => {
      if (version === v2.version) return { ok: false, listeners: [], error: 'configuration rejected: bad regex' };
      if (version === v4.version) throw new Error('boom');
      return { ok: true, listeners: [{ name: '0.0.0.0:80', ok: true }, { name: '0.0.0.0:443', ok: false, error: 'EADDRINUSE' }] };
    };
    server.publish(v1);
    const subscriber = startSubscriber(server.url(), dataplane);
    await waitFor('v1 applied', () => stateOf(server)?.appliedVersion === v1.version);

    server.publish(v2);
    await waitFor('the ack of v2', () => stateOf(server)?.lastAck?.version === v2.version);
    expect(subscriber.current()).toBe(v1.version);
    expect(stateOf(server)).toMatchObject({
      appliedVersion: v1.version,
      listeners: [{ name: '0.0.0.0:80', ok: true }, { name: '0.0.0.0:443', ok: false, error: 'EADDRINUSE' }],
      lastAck: { version: v2.version, ok: false, error: 'configuration rejected: bad regex', stale: false },
    });
    expect(rollout(server.acks(), v2.version)).toMatchObject({ applied: [], pending: ['dp-1'], rejected: [{ name: 'dp-1', error: 'configuration rejected: bad regex' }] });

    server.publish(v3);
    await waitFor('v3 applied', () => stateOf(server)?.appliedVersion === v3.version);
    expect(rollout(server.acks(), v3.version).socketFailures).toEqual([{ name: '0.0.0.0:443', error: 'dp-1: EADDRINUSE' }]);

    server.publish(v4);
    await waitFor('the ack of v4', () => stateOf(server)?.lastAck?.version === v4.version);
    expect(stateOf(server)).toMatchObject({ appliedVersion: v3.version, lastAck: { ok: false, error: 'boom' } });
    expect(subscriber.current()).toBe(v3.version);
    expect(dataplane.versions()).toEqual([v1.version, v2.version, v3.version, v4.version]);
  });

  it('retries an acknowledgement until the controller takes it', async () => {
    // While `refuse` is set the controller answers every request 503 (no leader); the stream
    // opened before stays open (no heartbeat tick runs during the test).
    let refuse = false;
    const server = await startServer({ heartbeatIntervalMs: 60_000, leader: () => (refuse ? { isLeader: false, leaderUrl: null } : LEADING) });
    const v1 = irNumber(1);
    server.publish(v1);
    const dataplane = new FakeDataplane();
    dataplane.behaviour = () => {
      refuse = true;
      return { ok: true, listeners: [] };
    };
    const subscriber = startSubscriber(server.url(), dataplane);
    await waitFor('the apply', () => dataplane.calls.length === 1);
    await sleep(400); // several refused attempts
    expect(subscriber.current()).toBe(v1.version);
    expect(stateOf(server)).toMatchObject({ connected: true, appliedVersion: null, lastAck: null });
    refuse = false;
    await waitFor('the ack, finally', () => stateOf(server)?.appliedVersion === v1.version);
  });

  it('serves HTTPS with a certificate whose CA the dataplane trusts', async () => {
    const ca = await createCertificateAuthority({ commonName: 'sluice snapshots CA' });
    const certificate = await createServerCertificate(ca, { dnsNames: ['sluice-controller'], ipAddresses: ['127.0.0.1'] });
    const server = await startServer({ tls: certificate, token: 't' });
    expect(server.url()).toMatch(/^https:/);
    const v1 = irNumber(1);
    server.publish(v1);
    const trusting = new FakeDataplane();
    startSubscriber(server.url(), trusting, { name: 'dp-ca', token: 't', ca: ca.certPem });
    const untrusting = new FakeDataplane();
    startSubscriber(server.url(), untrusting, { name: 'dp-no-ca', token: 't' });
    await waitFor('v1 over TLS', () => stateOf(server, 'dp-ca')?.appliedVersion === v1.version);
    await sleep(200);
    expect(untrusting.calls).toEqual([]);
  });

  it('stops cleanly: no reconnects, no acks, the apply in progress awaited', async () => {
    const server = await startServer();
    server.publish(irNumber(1));
    const dataplane = new FakeDataplane();
    let release!: () => void;
    dataplane.behaviour = () => new Promise<ApplyOutcome>((resolve) => (release = () => resolve({ ok: true, listeners: [] })));
    const subscriber = startSubscriber(server.url(), dataplane);
    await waitFor('the apply to start', () => dataplane.calls.length === 1);
    let stopped = false;
    const stopping = subscriber.stop().then(() => (stopped = true));
    await sleep(50);
    expect(stopped).toBe(false);
    release();
    await stopping;
    await waitFor('the disconnect', () => stateOf(server)?.connected === false);
    expect(stateOf(server)?.appliedVersion).toBeNull();
    server.publish(irNumber(2));
    await sleep(200);
    expect(dataplane.calls).toHaveLength(1);
  });
});
