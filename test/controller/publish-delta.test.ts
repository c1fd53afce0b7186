// The snapshot protocol's deltas (`delta=1`, ir/delta.ts) over real loopback sockets: a dataplane
// replica gets each version as what changed, and the parts it already holds come back as the very
// objects it applied before — so its compiler reuses them, as in one process. A stream that cannot
// decode ends, and the next one starts full.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import type { HttpIR, IR, L4IR, Route } from '../../ir/types.ts';
import { irVersion } from '../../ir/version.ts';
import { SnapshotServer } from '../../controller/publish/server.ts';
import { SnapshotSubscriber, type ApplyOutcome } from '../../dataplane/config/subscriber.ts';
import { edit, initialIR } from '../dataplane/support/ir-edits.ts';

const logger = pino({ level: 'silent' });
const L4: L4IR = { services: [] };

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function versioned(http: HttpIR, l4: L4IR = L4): IR {
  return { version: irVersion(http, l4), http, l4 };
}

function routesOf(http: HttpIR): Route[] {
  return http.listeners.flatMap((l) => l.scopes.flatMap((s) => s.virtualHosts.flatMap((v) => v.routes)));
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

function subscribe(url: string, applied: IR[]): SnapshotSubscriber {
  const subscriber = new SnapshotSubscriber({
    url,
    name: 'dp-1',
    logger,
    backoff: { initialMs: 50, maxMs: 500 },
    apply: async (version: string, ir: IR): Promise<ApplyOutcome> => {
      applied.push(ir);
      return { ok: true, listeners: [] };
    },
  });
  subscriber.start();
  cleanups.push(() => subscriber.stop());
  return subscriber;
}

/** The NDJSON lines of a raw stream, as they arrive. */
function rawLines(url: string): { lines: string[]; close(): void } {
  const lines: string[] = [];
  let buffered = '';
  const req = httpRequest(url, (res: IncomingMessage) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        lines.push(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
  });
  req.on('error', () => undefined);
  req.end();
  return { lines, close: () => req.destroy() };
}

describe('snapshot deltas', () => {
  it('send what changed, and the dataplane gets back the objects it holds for the rest', async () => {
    const server = new SnapshotServer({ address: '127.0.0.1:0', logger, leader: () => ({ isLeader: true }) });
    await server.listen();
    cleanups.push(() => server.close());
    const applied: IR[] = [];
    subscribe(server.url(), applied);

    let http = initialIR(7);
    server.publish(versioned(http));
    await waitFor('the first version', () => applied.length === 1);
    expect(applied[0]!.http).toEqual(http);

    for (let step = 0; step < 12; step++) {
      const before = http;
      http = edit(http, { kind: step, a: step * 3, b: step * 5, c: step * 7 });
      if (http === before || irVersion(http, L4) === irVersion(before, L4)) continue;
      const count = applied.length;
      server.publish(versioned(http));
      await waitFor(`version ${step}`, () => applied.length === count + 1);
      const [previous, latest] = [applied[count - 1]!, applied[count]!];
      expect(latest.http).toEqual(http);
      // A rule that is the same object on the controller is the same object in the dataplane.
      const kept = new Set(routesOf(before));
      const received = new Set(routesOf(previous.http));
      const sent = routesOf(http);
      routesOf(latest.http).forEach((route, i) => expect(received.has(route)).toBe(kept.has(sent[i]!)));
    }
  });

  it('cost what changed on the wire: a one-rule edit is a small line after a full first one', async () => {
    const server = new SnapshotServer({ address: '127.0.0.1:0', logger, leader: () => ({ isLeader: true }) });
    await server.listen();
    cleanups.push(() => server.close());
    const base = initialIR(11);
    // 200 more rules on the first virtual host, so the full version is big.
    const vh = base.listeners[0]!.scopes[0]!.virtualHosts[0]!;
    const template = routesOf(initialIR(3))[0]!;
    const many = Array.from({ length: 200 }, (_, i) => ({ ...template, name: `httproute/default/many-${i}/rule/0/match/0` }));
    const http: HttpIR = { ...base, listeners: [{ ...base.listeners[0]!, scopes: [{ ...base.listeners[0]!.scopes[0]!, virtualHosts: [{ ...vh, routes: [...many, ...vh.routes] }, ...base.listeners[0]!.scopes[0]!.virtualHosts.slice(1)] }, ...base.listeners[0]!.scopes.slice(1)] }, ...base.listeners.slice(1)] };
    server.publish(versioned(http));

    const deltas = rawLines(`${server.url()}/v1/snapshots?name=raw&delta=1`);
    const snapshots = rawLines(`${server.url()}/v1/snapshots?name=plain`);
    cleanups.push(() => deltas.close(), () => snapshots.close());
    await waitFor('the first versions', () => deltas.lines.length >= 2 && snapshots.lines.length >= 2);
    const first = JSON.parse(deltas.lines[1]!) as { type: string; ir: { full: boolean } };
    expect(first.type).toBe('delta');
    expect(first.ir.full).toBe(true);
    // Without `delta=1`, snapshots as before.
    expect((JSON.parse(snapshots.lines[1]!) as { type: string }).type).toBe('snapshot');

    const changed = edit(http, { kind: 2, a: 0, b: 0, c: 3 }); // one of the 200 rules
    expect(irVersion(changed, L4)).not.toBe(irVersion(http, L4));
    server.publish(versioned(changed));
    await waitFor('the change', () => deltas.lines.length >= 3 && snapshots.lines.length >= 3);
    const delta = deltas.lines[2]!;
    expect((JSON.parse(delta) as { ir: { full: boolean } }).ir.full).toBe(false);
    expect(delta.length * 20).toBeLessThan(snapshots.lines[2]!.length);
  });

  it('a dataplane that cannot decode a delta ends the stream; the next stream starts full and is applied', async () => {
    // A real controller never sends a delta naming parts it did not send: a stand-in server does,
    // on the first connection only.
    const http = initialIR(5);
    const ir = versioned(http);
    const { IrDeltaEncoder } = await import('../../ir/delta.ts');
    const connections: string[] = [];
    const stand = createServer((req, res) => {
      if (req.url?.startsWith('/v1/acks')) return void res.writeHead(204).end();
      connections.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ type: 'hello', server: 'stand-in', version: ir.version, heartbeatMs: 5000 })}\n`);
      const encoder = new IrDeltaEncoder();
      if (connections.length === 1) {
        encoder.encode(http, ir.l4); // "sent" on a stream the dataplane never saw
        res.write(`${JSON.stringify({ type: 'delta', version: ir.version, ir: encoder.encode(edit(http, { kind: 0, a: 0, b: 0, c: 0 }), ir.l4) })}\n`);
      } else {
        res.write(`${JSON.stringify({ type: 'delta', version: ir.version, ir: encoder.encode(http, ir.l4, true) })}\n`);
      }
    });
    await new Promise<void>((resolve) => stand.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => stand.close(resolve)), () => stand.closeAllConnections());
    const applied: IR[] = [];
    subscribe(`http://127.0.0.1:${(stand.address() as AddressInfo).port}`, applied);
    await waitFor('the full version from the second stream', () => applied.length === 1);
    expect(connections).toHaveLength(2);
    expect(connections.every((url) => url.includes('delta=1'))).toBe(true);
    expect(applied[0]!.http).toEqual(http);
  });
});
