// The web view's server-sent events (/ui/events). One timer, running only while someone watches,
// builds the graph and reads the rates once per interval; each event is serialised once and written
// to every client. Bounded: at most `maxClients` at a time (more get 503), and a client that has not
// taken what earlier intervals sent (more than `maxQueuedBytes` still queued when the next interval
// is due) is disconnected: a stalled page never makes the process hold more than that, plus one
// interval's events, per client.
import type { IncomingMessage, ServerResponse } from 'node:http';
import client, { type Registry } from 'prom-client';
import type { IR } from '../../ir/types.ts';
import type { KubeObject } from '../../controller/sources/objects.ts';
import type { Problem } from '../../controller/problems.ts';
import { metric } from '../../dataplane/metrics.ts';
import { buildGraph, indexRoutes, type RouteIndex } from './graph.ts';
import { FlowTally, type FlowFeed } from './flows.ts';
import { TrafficReader } from './traffic.ts';
import type { UiEvents, UiHello, UiTraffic } from './view-types.ts';

export interface UiLimits {
  maxClients: number;
  maxQueuedBytes: number;
  intervalMs: number;
  /** Drops kept for a page that opens later. */
  keptDrops: number;
}

/** Defaults (Sluice's own; README "Web view"). */
export const UI_LIMITS: UiLimits = { maxClients: 16, maxQueuedBytes: 1024 * 1024, intervalMs: 1000, keptDrops: 100 };

export interface UiSources {
  ir(): IR | null;
  objects(): KubeObject[];
  problems?(): Problem[];
  controllerName?: string;
  /** Every flow source of this process (kernel connection records, per-request records). */
  feeds: FlowFeed[];
  registry: Registry;
  hello: Omit<UiHello, 'intervalSeconds'>;
}

/** Security headers of every /ui response (the page is same-origin scripts and styles only). */
export const UI_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

export class UiHub {
  private readonly sources: UiSources;
  private readonly limits: UiLimits;
  private readonly clients = new Set<ServerResponse>();
  private readonly traffic: TrafficReader;
  private readonly tally: FlowTally;
  private unfollow: (() => void)[] = [];
  private index: RouteIndex = indexRoutes(null);
  private indexedVersion: string | null | undefined = undefined;
  private timer: NodeJS.Timeout | null = null;
  private lastTick = performance.now();
  /** The frames last broadcast: a client that joins gets these, so it sees what the others see. */
  private sent: { graph?: { json: string; frame: string }; problems?: string; traffic?: string } = {};
  private readonly connected: client.Gauge;
  private readonly dropped: client.Counter<'reason'>;
  private readonly failed: client.Counter;

  constructor(sources: UiSources, limits: UiLimits = UI_LIMITS) {
    this.sources = sources;
    this.limits = limits;
    this.traffic = new TrafficReader(sources.registry);
    this.tally = new FlowTally(limits.keptDrops);
    this.connected = metric(sources.registry, 'sluice_ui_clients', (registers) => new client.Gauge({ name: 'sluice_ui_clients', help: 'Web view (/ui/events) clients connected', registers }));
    this.failed = metric(sources.registry, 'sluice_ui_update_failures_total', (registers) =>
      new client.Counter({ name: 'sluice_ui_update_failures_total', help: 'Web view updates that failed (the pages keep the previous one)', registers }),
    );
    this.dropped = metric(sources.registry, 'sluice_ui_clients_refused_total', (registers) =>
      new client.Counter({
        name: 'sluice_ui_clients_refused_total',
        help: 'Web view clients refused (too_many: over the client limit) or disconnected (slow: more than the queue bound not taken)',
        labelNames: ['reason'] as const,
        registers,
      }),
    );
  }

  /** Takes the request over as an event stream; 503 when the client limit is reached, 500 when the view cannot be built. */
  attach(_req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= this.limits.maxClients) {
      this.dropped.labels('too_many').inc();
      res.writeHead(503, { ...UI_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5', connection: 'close' });
      res.end(`the web view has ${this.limits.maxClients} clients already; try again later\n`);
      return;
    }
    if (!this.timer) {
      // Nobody was watching: what was sent last is stale. Built before answering: a failure is a 500.
      try {
        this.sent = { graph: this.buildGraph(), problems: frame('problems', this.problems()) };
        this.tally.reset(this.sources.feeds.flatMap((feed) => feed.latestDrops(this.limits.keptDrops)), this.currentIndex());
      } catch (err) {
        this.failed.inc();
        res.writeHead(500, { ...UI_HEADERS, 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end(`the web view could not be built: ${(err as Error).message}\n`);
        return;
      }
    }
    res.writeHead(200, { ...UI_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' });
    // The browser reconnects by itself after this long when the stream breaks.
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    this.connected.set(this.clients.size);
    res.on('close', () => {
      this.clients.delete(res);
      this.connected.set(this.clients.size);
      if (this.clients.size === 0) this.stopTimer();
    });
    const hello: UiHello = { ...this.sources.hello, intervalSeconds: this.limits.intervalMs / 1000 };
    res.write(frame('hello', hello));
    res.write(this.sent.graph!.frame);
    res.write(frame('drops', this.tally.latest()));
    res.write(this.sent.problems!);
    if (this.sent.traffic) res.write(this.sent.traffic);
    this.startTimer();
  }

  close(): void {
    this.stopTimer();
    for (const res of this.clients) res.destroy();
    this.clients.clear();
  }

  private startTimer(): void {
    if (this.timer) return;
    // Counters read now start the first interval: the first rates cover one interval, not the process's life.
    this.traffic.read(this.currentIndex()).catch(() => this.failed.inc());
    this.tally.take(1);
    this.unfollow = this.sources.feeds.map((feed) => feed.follow((flow) => this.tally.add(flow, this.currentIndex())));
    this.lastTick = performance.now();
    // A failed update must not take the process down: the pages keep the last one, the metric counts it.
    this.timer = setInterval(() => this.tick().catch(() => this.failed.inc()), this.limits.intervalMs);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const u of this.unfollow) u();
    this.unfollow = [];
  }

  private async tick(): Promise<void> {
    // A client still holding more than the bound of what earlier intervals sent is not keeping up.
    // (A graph larger than the bound gets room for two of it: a page must be able to take one.)
    const bound = Math.max(this.limits.maxQueuedBytes, 2 * (this.sent.graph?.frame.length ?? 0));
    for (const res of this.clients) {
      if (res.writableLength <= bound) continue;
      this.dropped.labels('slow').inc();
      this.clients.delete(res);
      res.destroy();
    }
    this.connected.set(this.clients.size);
    const graph = this.buildGraph();
    if (graph.json !== this.sent.graph?.json) {
      this.sent.graph = graph;
      this.broadcast(graph.frame);
    }
    const problems = frame('problems', this.problems());
    if (problems !== this.sent.problems) {
      this.sent.problems = problems;
      this.broadcast(problems);
    }
    const now = performance.now();
    const { drops, flowsPerSecond, recentDrops } = this.tally.take(Math.max(0.001, (now - this.lastTick) / 1000));
    this.lastTick = now;
    const traffic: UiTraffic = { ...(await this.traffic.read(this.currentIndex())), flows: flowsPerSecond, drops: recentDrops };
    this.sent.traffic = frame('traffic', traffic);
    this.broadcast(this.sent.traffic);
    if (drops.length > 0) this.broadcast(frame('drops', drops));
  }

  private buildGraph(): { json: string; frame: string } {
    const graph = buildGraph({
      ir: this.sources.ir(),
      objects: this.sources.objects(),
      ...(this.sources.controllerName ? { controllerName: this.sources.controllerName } : {}),
    });
    const json = JSON.stringify(graph);
    return { json, frame: `event: graph\ndata: ${json}\n\n` };
  }

  private problems(): UiEvents['problems'] {
    return (this.sources.problems?.() ?? []).map((p) => ({ code: p.code, message: p.message }));
  }

  /** The IR's route index, rebuilt when the served version changes. */
  private currentIndex(): RouteIndex {
    const ir = this.sources.ir();
    const version = ir?.version ?? null;
    if (version !== this.indexedVersion) {
      this.index = indexRoutes(ir);
      this.indexedVersion = version;
    }
    return this.index;
  }

  private broadcast(data: string): void {
    for (const res of this.clients) res.write(data);
  }

}

function frame<K extends keyof UiEvents>(event: K, payload: UiEvents[K]): string {
  return `event: ${event}\ndata: ${JSON.stringify(payload)}\n\n`;
}
