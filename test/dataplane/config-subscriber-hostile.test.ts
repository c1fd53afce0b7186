// The snapshot subscriber against a broken controller. The real controller (controller/publish/)
// does not send bad deltas, overlong lines or endless error bodies, so the controller here is a
// fake for those failures only: a real HTTP server on a real socket speaking the snapshot
// protocol (NDJSON: hello, snapshot, delta) and then misbehaving. Whatever it sends, the last good
// version keeps serving, nothing of a bad message is applied, the stream is dropped for a fresh
// one (which starts with a full snapshot), and the reconnects back off instead of looping hot.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import type { IR, L4IR } from '../../ir/types.ts';
import { irVersion } from '../../ir/version.ts';
import { IrDeltaEncoder } from '../../ir/delta.ts';
import { SnapshotSubscriber, type ApplyOutcome } from '../../dataplane/config/subscriber.ts';
import type { Ack } from '../../ir/protocol.ts';
import { initialIR } from './support/ir-edits.ts';

const L4: L4IR = { services: [] };
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Connection {
  url: string;
  at: number;
  closed: boolean;
}

/** A controller whose `n`-th stream (0-based) is served by `serve`; `acks`: the acknowledgements posted to it. */
async function fakeController(serve: (n: number, res: ServerResponse, req: IncomingMessage) => void): Promise<{ url: string; connections: Connection[]; acks: Ack[] }> {
  const connections: Connection[] = [];
  const acks: Ack[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'POST') {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => {
        acks.push(JSON.parse(body) as Ack);
        res.writeHead(204).end();
      });
      return;
    }
    const c: Connection = { url: req.url ?? '', at: performance.now(), closed: false };
    connections.push(c);
    res.on('close', () => (c.closed = true));
    serve(connections.length - 1, res, req);
  });
  const open = new Set<ServerResponse>();
  server.on('request', (_req, res: ServerResponse) => {
    open.add(res);
    res.on('close', () => open.delete(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections, acks };
}

function subscribe(url: string, options: { backoffMs?: number; maxMessageBytes?: number; messageTimeoutMs?: number; apply?: (version: string) => ApplyOutcome | null } = {}) {
  const applied: string[] = [];
  const logs: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) });
  const subscriber = new SnapshotSubscriber({
    url,
    name: 'dp-hostile',
    logger,
    heartbeatTimeoutMs: 30_000, // no watchdog in play: what ends a stream here is the subscriber's own check
    backoff: { initialMs: options.backoffMs ?? 100, maxMs: 5_000 },
    ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}),
    ...(options.messageTimeoutMs !== undefined ? { messageTimeoutMs: options.messageTimeoutMs } : {}),
    apply: async (version: string, ir: IR): Promise<ApplyOutcome> => {
      if (ir.version !== version) throw new Error('version mismatch');
      // `options.apply` decides the outcome of a version (null: applied, as by default).
      const outcome = options.apply?.(version) ?? null;
      if (outcome !== null) return outcome;
      applied.push(version);
      return { ok: true, listeners: [] };
    },
  });
  subscriber.start();
  cleanups.push(() => subscriber.stop());
  return { subscriber, applied, logs };
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

const line = (message: unknown): string => `${JSON.stringify(message)}\n`;
const hello = line({ type: 'hello', version: null, server: 'fake' });
const http = initialIR(3);
const goodVersion = irVersion(http, L4);
/** The first stream's good version, as a full delta (what the real controller sends a new stream). */
const goodDelta = line({ type: 'delta', version: goodVersion, ir: new IrDeltaEncoder().encode(http, L4, true) });
const otherVersion = irVersion(initialIR(4), L4);

/** Messages a broken controller sends after a good version; none may be applied, even in part. */
const badMessages: [string, string][] = [
  ['not JSON', 'this is not json\n'],
  ['truncated JSON', goodDelta.slice(0, Math.floor(goodDelta.length / 2)) + '\n'],
  ['a delta naming a part this stream never sent', line({ type: 'delta', version: otherVersion, ir: { full: false, prune: false, http: { listeners: [987654] }, l4: 1 } })],
  ['a delta whose part is neither a number nor {id, value}', line({ type: 'delta', version: otherVersion, ir: { full: false, prune: false, http: { listeners: [{ nope: true }] }, l4: { id: 1, value: { services: [] } } } })],
  ['a delta whose backend part is not an object', line({ type: 'delta', version: otherVersion, ir: { full: true, prune: false, http: { listeners: [], backends: { b: { id: 2, value: 'not an object' } } }, l4: { id: 1, value: { services: [] } } } })],
  ['a delta without its http part', line({ type: 'delta', version: otherVersion, ir: { full: true, prune: false, http: null, l4: null } })],
  ['a delta without its l4 part', line({ type: 'delta', version: otherVersion, ir: { full: true, prune: false, http: { listeners: [] }, l4: null } })],
];

describe('snapshot subscriber against a broken controller (fake controller on a real socket)', () => {
  it.each(badMessages)('%s: the good version keeps serving, nothing applied, the stream is dropped and a fresh one asked for', async (_, bad) => {
    const controller = await fakeController((n, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(hello);
      // The first stream ends after the good version (a controller restart); the next sends the bad
      // message and stays open: the subscriber must leave it.
      if (n === 0) res.end(goodDelta);
      else res.write(bad);
    });
    const { subscriber, applied, logs } = subscribe(controller.url);
    await waitFor('the good version', () => subscriber.current() === goodVersion);
    await waitFor('the bad stream dropped by the subscriber', () => controller.connections.length >= 2 && controller.connections[1]!.closed);
    await waitFor('a fresh stream after it', () => controller.connections.length >= 3);
    expect(applied).toEqual([goodVersion]);
    expect(subscriber.current()).toBe(goodVersion);
    // A fresh stream: it says what it serves and asks for deltas, so the controller starts it full.
    expect(controller.connections[2]!.url).toContain(`have=${goodVersion}`);
    expect(logs.some((l) => /malformed message from the controller/.test(JSON.stringify(l)))).toBe(true);
  });

  it('a controller that keeps sending bad deltas after hello: reconnects back off (not one every first-step delay)', async () => {
    const controller = await fakeController((n, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(hello);
      if (n === 0) res.end(goodDelta);
      else res.write(badMessages[n % badMessages.length]![1]);
    });
    const { subscriber, applied } = subscribe(controller.url, { backoffMs: 100 });
    await waitFor('the good version', () => subscriber.current() === goodVersion);
    const start = controller.connections[0]!.at;
    await sleep(1600);
    const within = controller.connections.filter((c) => c.at - start <= 1600).length;
    // Backoff 100 ms doubling, each delay at least half its ceiling: 50+50+100+200+400+800 ms
    // leaves room for at most 6 streams in 1.6 s; at a fixed first step (50-100 ms) it would be 16-32.
    expect(within).toBeLessThanOrEqual(7);
    expect(within).toBeGreaterThanOrEqual(3);
    expect(applied).toEqual([goodVersion]);
  });

  it('a line longer than the bound ends the stream (nothing buffered past it), the good version keeps serving', async () => {
    const chunk = 'x'.repeat(64 * 1024);
    const controller = await fakeController((n, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(hello);
      if (n === 0) {
        res.end(goodDelta);
        return;
      }
      // 8 MiB without a newline, in pieces, and then silence with the stream open.
      let sent = 0;
      const more = (): void => {
        while (sent < 128 && !res.destroyed) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
      };
      more();
    });
    const { subscriber, applied } = subscribe(controller.url, { maxMessageBytes: 1024 * 1024 });
    await waitFor('the good version', () => subscriber.current() === goodVersion);
    await waitFor('the overlong stream dropped', () => controller.connections.length >= 2 && controller.connections[1]!.closed, 10_000);
    expect(applied).toEqual([goodVersion]);
  });

  it('an error answer with an endless body: the subscriber reads its start, drops it and retries (no wait for its end)', async () => {
    const controller = await fakeController((n, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write('overloaded '.repeat(1000))), 5);
      res.on('close', () => clearInterval(timer));
    });
    const { logs } = subscribe(controller.url);
    await waitFor('a retry after the endless 503', () => controller.connections.length >= 2, 10_000);
    expect(controller.connections[0]!.closed).toBe(true);
    expect(logs.some((l) => /answered 503: overloaded/.test(l.msg))).toBe(true);
  });
  it('a message dripped slower than the message bound: the stream is dropped (each byte kept the heartbeat alive), logged, and a fresh one asked for', async () => {
    const otherDelta = line({ type: 'delta', version: otherVersion, ir: new IrDeltaEncoder().encode(initialIR(4), L4, true) });
    const controller = await fakeController((n, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(hello);
      if (n === 0) return void res.end(goodDelta);
      // A byte every 20 ms: ~50 bytes a second, a message of several KB never ends within 1 s.
      let sent = 0;
      const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(otherDelta[sent++ % (otherDelta.length - 1)]!)), 20);
      res.on('close', () => clearInterval(timer));
    });
    const { subscriber, applied, logs } = subscribe(controller.url, { messageTimeoutMs: 1_000 });
    await waitFor('the good version', () => subscriber.current() === goodVersion);
    const dripping = () => controller.connections[1]!;
    await waitFor('the dripping stream opened', () => controller.connections.length >= 2);
    await waitFor('the dripping stream dropped by the subscriber', () => dripping().closed, 5_000);
    const heldMs = performance.now() - dripping().at;
    expect(heldMs).toBeGreaterThanOrEqual(1_000);
    expect(heldMs).toBeLessThan(4_000);
    await waitFor('a fresh stream after it', () => controller.connections.length >= 3);
    expect(logs.some((l) => l.msg === 'snapshot stream: one message took longer than 1000 ms to arrive; reconnecting')).toBe(true);
    expect(applied).toEqual([goodVersion]);
    expect(controller.connections[2]!.url).toContain(`have=${goodVersion}`);
  });

  it('a message that arrives slowly but within the bound is applied (the bound is per message, not per stream)', async () => {
    const otherDelta = line({ type: 'delta', version: otherVersion, ir: new IrDeltaEncoder().encode(initialIR(4), L4, true) });
    const controller = await fakeController((n, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(hello);
      if (n > 0) return; // (no second version)
      // Three messages, each in 8 pieces over ~400 ms: 1.2 s in all, more than the bound.
      const pieces = [goodDelta, line({ type: 'heartbeat' }), otherDelta].flatMap((m) => Array.from({ length: 8 }, (_, i) => m.slice(Math.floor((i * m.length) / 8), Math.floor(((i + 1) * m.length) / 8))));
      const timer = setInterval(() => (res.destroyed || pieces.length === 0 ? clearInterval(timer) : res.write(pieces.shift()!)), 50);
      res.on('close', () => clearInterval(timer));
    });
    const { subscriber, applied } = subscribe(controller.url, { messageTimeoutMs: 1_000 });
    await waitFor('the second version', () => subscriber.current() === otherVersion, 10_000);
    expect(applied).toEqual([goodVersion, otherVersion]);
    expect(controller.connections).toHaveLength(1);
    expect(controller.connections[0]!.closed).toBe(false);
  });
});

describe('snapshot subscriber: a version applied late (--workers: no worker applied it within the bound)', () => {
  /** An outcome refused for now whose `late` the test settles. */
  function lateOutcome() {
    let settle!: (outcome: ApplyOutcome | null) => void;
    const late = new Promise<ApplyOutcome | null>((resolve) => (settle = resolve));
    return { outcome: { ok: false, listeners: [], error: 'no worker applied it within 30000 ms', late } satisfies ApplyOutcome, settle };
  }

  it('acknowledged as refused, then as served once the workers apply it; the controller learns it and a reconnect asks with it', async () => {
    const controller = await fakeController((n, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      // The first stream sends the version; later ones end after their hello (the subscriber reconnects).
      res.end(n === 0 ? `${hello}${goodDelta}` : hello);
    });
    const slow = lateOutcome();
    const { subscriber } = subscribe(controller.url, { apply: () => slow.outcome });
    await waitFor('the refusal acknowledged', () => controller.acks.length === 1);
    expect(controller.acks[0]).toMatchObject({ version: goodVersion, ok: false, serving: null });
    expect(subscriber.current()).toBeNull();
    slow.settle({ ok: true, listeners: [{ name: '0.0.0.0:80', ok: true }] });
    await waitFor('the late apply acknowledged', () => controller.acks.length === 2);
    expect(controller.acks[1]).toEqual({ name: 'dp-hostile', version: goodVersion, ok: true, listeners: [{ name: '0.0.0.0:80', ok: true }], serving: goodVersion });
    expect(subscriber.current()).toBe(goodVersion);
    const streams = controller.connections.length;
    await waitFor('the next stream', () => controller.connections.length > streams);
    expect(controller.connections[streams]!.url).toContain(`have=${goodVersion}`);
  });

  it('a late version is not taken after a newer one was applied', async () => {
    const controller = await fakeController((n, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(hello);
      if (n === 0) res.write(goodDelta);
      // The next version on the same stream, once the first was refused.
      setTimeout(() => res.write(line({ type: 'delta', version: otherVersion, ir: new IrDeltaEncoder().encode(initialIR(4), L4, true) })), 300);
    });
    const slow = lateOutcome();
    const { subscriber, applied } = subscribe(controller.url, { apply: (version) => (version === goodVersion ? slow.outcome : null) });
    await waitFor('the newer version served', () => subscriber.current() === otherVersion);
    slow.settle({ ok: true, listeners: [] });
    await sleep(200);
    expect(subscriber.current()).toBe(otherVersion);
    expect(applied).toEqual([otherVersion]);
    expect(controller.acks.map((a) => [a.version, a.ok])).toEqual([[goodVersion, false], [otherVersion, true]]);
  });
});
