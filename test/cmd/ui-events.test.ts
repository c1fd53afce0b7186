// The web view's event stream over real sockets: the client limit (503 beyond it), a client that
// stops reading is disconnected once its queue passes the bound while a reading client keeps
// receiving, and the latest drops are kept, bounded, for a page that opens later.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import type { KubeObject } from '../../controller/sources/objects.ts';
import { UiHub, type UiLimits } from '../../cmd/ui/events.ts';
import { nodeFlowFeed, type FlowFeed } from '../../cmd/ui/flows.ts';
import { FlowBuffer } from '../../dataplane/flows/flow-buffer.ts';
import type { Flow } from '../../ir/flow.ts';

const LIMITS: UiLimits = { maxClients: 2, maxQueuedBytes: 1024 * 1024, intervalMs: 100, keptDrops: 3 };

/** Gateways whose condition message changes on every read: each interval sends a new graph of ~`count` KB. */
function changingGateways(count: number): () => KubeObject[] {
  let generation = 0;
  return () => {
    generation++;
    return Array.from({ length: count }, (_, i) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: `gw-${i}`, namespace: 'default' },
      spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
      status: {
        conditions: [{ type: 'Programmed', status: 'True', reason: 'Programmed', message: `generation ${generation} ${'x'.repeat(600)}` }],
        listeners: [{ name: 'http', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: '' }] }],
      },
    }));
  };
}

interface Started {
  hub: UiHub;
  registry: Registry;
  port: number;
  server: Server;
}

let started: Started | null = null;
const sockets: Socket[] = [];

async function start(objects: () => KubeObject[], feed: FlowFeed): Promise<Started> {
  const registry = new Registry();
  const hub = new UiHub({ ir: () => null, objects, feeds: [feed], registry, hello: { mode: 'run', capabilities: { conditions: true, traffic: false, flows: true }, notes: [] } }, LIMITS);
  const server = createServer((req, res) => hub.attach(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  started = { hub, registry, server, port: (server.address() as { port: number }).port };
  return started;
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  if (started) {
    started.hub.close();
    started.server.closeAllConnections();
    await new Promise((r) => started!.server.close(r));
    started = null;
  }
});

/** A raw client: what arrives is collected; `paused` ones never read (a stalled page). */
function client(port: number, paused = false): { socket: Socket; received: () => string; ended: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let data = '';
  socket.setEncoding('utf8');
  socket.write('GET /ui/events HTTP/1.1\r\nHost: x\r\n\r\n');
  // A 'data' listener would make the socket flow: a stalled client gets none until the test reads it.
  if (paused) socket.pause();
  else socket.on('data', (d: string) => (data = (data + d).slice(-200_000)));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, received: () => data, ended };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const metricValue = async (registry: Registry, name: string, labels: Record<string, string> = {}) =>
  (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;

describe('web view events', () => {
  it('sends hello, graph, drops and problems first, and refuses a client beyond the limit with 503', async () => {
    const { port, registry } = await start(changingGateways(2), nodeFlowFeed(new FlowBuffer(64)));
    const a = client(port);
    const b = client(port);
    await until('both clients streaming', () => a.received().includes('event: graph') && b.received().includes('event: graph'));
    const events = [...a.received().matchAll(/^event: (\w+)$/gm)].map((m) => m[1]).slice(0, 4);
    expect(events).toEqual(['hello', 'graph', 'drops', 'problems']);
    expect(a.received()).toMatch(/content-type: text\/event-stream/i);
    expect(a.received()).toMatch(/content-security-policy: default-src 'none'/i);

    const c = client(port);
    await c.ended;
    expect(c.received()).toMatch(/^HTTP\/1\.1 503 /);
    expect(c.received()).toMatch(/retry-after: 5/i);
    expect(await metricValue(registry, 'sluice_ui_clients_refused_total', { reason: 'too_many' })).toBe(1);
    expect(await metricValue(registry, 'sluice_ui_clients')).toBe(2);
  });

  it('disconnects a client that stops reading once its queue passes the bound; a reading one keeps receiving', async () => {
    const { port, registry } = await start(changingGateways(300), nodeFlowFeed(new FlowBuffer(64)));
    const stalled = client(port, true);
    const reading = client(port);
    await until('the stalled client dropped', async () => (await metricValue(registry, 'sluice_ui_clients_refused_total', { reason: 'slow' })) === 1, 30_000);
    expect(await metricValue(registry, 'sluice_ui_clients')).toBe(1);
    // The server closed the stalled stream: once it reads again, it reaches the end.
    stalled.socket.on('data', () => {}).resume();
    await stalled.ended;
    const generation = () => Number([...reading.received().matchAll(/generation (\d+)/g)].at(-1)?.[1] ?? 0);
    const before = generation();
    await until('new graphs on the reading client', () => generation() > before + 2);
    expect(reading.socket.destroyed).toBe(false);
  });

  it('survives an update that fails: the page keeps the last one, the metric counts it; a first graph that fails is a 500', async () => {
    // A source that throws stands in for a bug in building the view (no real input provokes one).
    let broken = false;
    const healthy = changingGateways(1);
    const { port, registry } = await start(() => {
      if (broken) throw new Error('objects unavailable');
      return healthy();
    }, nodeFlowFeed(new FlowBuffer(64)));
    const page = client(port);
    await until('streaming', () => page.received().includes('event: graph'));
    broken = true;
    await until('failed updates counted', async () => (await metricValue(registry, 'sluice_ui_update_failures_total')) >= 2);
    expect(page.socket.destroyed).toBe(false);
    broken = false;
    const graphs = () => page.received().split('event: graph').length;
    const before = graphs();
    await until('updates again', () => graphs() > before);
    // With nobody watching, a page that opens while the view cannot be built is told so.
    page.socket.destroy();
    await until('the page gone', async () => (await metricValue(registry, 'sluice_ui_clients')) === 0);
    broken = true;
    const late = client(port);
    await late.ended;
    expect(late.received()).toMatch(/^HTTP\/1\.1 500 /);
    expect(late.received()).toContain('the web view could not be built: objects unavailable');
  });

  it('hands a page that opens the latest drops the flow ring holds, bounded, then new ones as they come', async () => {
    const buffer = new FlowBuffer(64);
    const { port } = await start(changingGateways(1), nodeFlowFeed(buffer));
    const flow = (i: number, verdict: Flow['verdict']): Flow => ({
      time: `2026-01-01T00:00:0${i}.000Z`,
      type: 'L7',
      verdict,
      ...(verdict === 'FORWARDED' ? {} : { dropReason: 'POLICY_L7' as const }),
      direction: 'ingress',
      protocol: 'TCP',
      source: { ip: '10.0.0.1', port: 1234, identity: 2, labels: [] },
      destination: { ip: '10.0.0.2', port: 8000 + i, identity: 300, labels: ['k8s:app=web'] },
      service: { namespace: 'default', name: 'web', port: 80 },
      l7: { method: 'DELETE', path: `/x/${i}`, host: 'h', protocol: 'HTTP/1.1', status: 403, latencyMs: 1 },
    });
    // Pushed while nobody watches: the view does not follow the stream then, the ring keeps them.
    buffer.push(flow(1, 'FORWARDED'));
    for (let i = 2; i <= 6; i++) buffer.push(flow(i, 'DROPPED'));
    const page = client(port);
    await until('drops sent', () => page.received().includes('event: drops'));
    const drops = JSON.parse(/event: drops\ndata: (.*)\n/.exec(page.received())![1]!) as { destination: string; reason: string; detail: string }[];
    expect(drops.map((d) => d.destination)).toEqual(['10.0.0.2:8004 (app=web)', '10.0.0.2:8005 (app=web)', '10.0.0.2:8006 (app=web)']);
    expect(drops[2]).toMatchObject({ reason: 'POLICY_L7', detail: 'DELETE /x/6 → 403 · default/web:80' });
    // New drops reach a connected page within an interval.
    buffer.push(flow(7, 'AUDIT'));
    await until('the new drop', () => page.received().includes('10.0.0.2:8007'));
  });
});
