// One worker thread of `--workers N` (started by cmd/workers.ts): a Dataplane binding every
// listener with SO_REUSEPORT, its own metrics registry (the primary aggregates them), rate-limit
// buckets in the memory all workers share, and its request flows in a ring of its own (counted
// in its flow metrics, written to the access log; read by the primary on demand, relayed as they
// come only when asked).
// It does what the primary's messages say, in order: apply a version, switch Redis, report
// metrics or flows, drain and exit.
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Flow } from '../ir/flow.ts';
import { IrDeltaDecoder, type EncodedIR } from '../ir/delta.ts';
import { Dataplane } from '../dataplane/dataplane.ts';
import { FlowBuffer, forwardedFlow } from '../dataplane/flows/flow-buffer.ts';
import { FlowMetrics } from '../dataplane/flows/flow-metrics.ts';
import { ACCESS_LOG_FIELDS, AccessLog, gatewayAccessLogs } from '../dataplane/flows/access-log.ts';
import { RateLimitService } from '../dataplane/ratelimit/limiter.ts';
import { SharedBuckets, sharedClock } from '../dataplane/ratelimit/shared-buckets.ts';
import type { ToWorker, FromWorker, WorkerInit } from './workers.ts';

/** Flows are sent to the primary in batches this often (one message per batch, not per request). */
const FLOW_BATCH_MS = 20;

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (message: FromWorker): void => port.postMessage(message);
const logger = pino({ level: init.logLevel, base: { component: 'sluice', worker: init.index } });
const registry = new Registry();
const rateLimits = new RateLimitService({
  registry,
  logger: logger.child({ component: 'ratelimit' }),
  ...init.rateLimit,
  now: sharedClock,
  buckets: { local: new SharedBuckets(init.buckets.local), fallback: new SharedBuckets(init.buckets.fallback) },
  redis: init.redis,
});

let pending: Flow[] = [];
let flushTimer: NodeJS.Timeout | null = null;
const flush = (): void => {
  flushTimer = null;
  const flows = pending;
  pending = [];
  if (flows.length > 0) post({ type: 'flows', flows });
};
const accessLogSettings = init.accessLog ?? { path: '-', fields: ACCESS_LOG_FIELDS, onByDefault: false };
const accessLog = new AccessLog(accessLogSettings.path, accessLogSettings.fields, registry, (err) =>
  logger.error({ path: accessLogSettings.path, err: err.message }, 'access log cannot be written: its lines are dropped (sluice_access_log_dropped_total)'), accessLogSettings.onByDefault);
let flowOptions = {};
/** The latest --flow-buffer-size forwarded requests of this worker; the primary merges the rings when read. */
let ring: FlowBuffer | null = null;
let relaying = init.flows?.relay ?? false;
if (init.flows !== null) {
  const bufferSize = init.flows.bufferSize;
  const kept = new FlowBuffer(bufferSize);
  ring = kept;
  const metrics = new FlowMetrics(registry);
  // Forwarded requests (the bulk) stay and are counted here; drops and audits (rare, and what the
  // web view lists at once) go to the primary's ring as they come, as forwarded ones do while relayed.
  const handOver = new FlowBuffer(1);
  const send = (flow: Flow): void => {
    // Bounded: a primary that stops reading cannot make a worker hold more than its ring does.
    if (pending.length >= bufferSize) pending.shift();
    pending.push(flow);
    flushTimer ??= setTimeout(flush, FLOW_BATCH_MS);
  };
  handOver.subscribeRecorder({
    flow: send,
    forwarded: (request) => {
      kept.pushForwarded(request);
      metrics.forwarded(request);
      accessLog.forwarded(request);
      if (relaying) send(forwardedFlow(request));
    },
  });
  flowOptions = { flows: { buffer: handOver, sampleRate: init.flows.sampleRate } };
}

const dataplane = new Dataplane({
  ...flowOptions,
  portOffset: init.portOffset,
  redirectPortOffset: init.redirectPortOffset,
  ...(init.sessionKey ? { sessionKey: Buffer.from(init.sessionKey) } : {}),
  logger,
  registry,
  rateLimits,
  reusePort: true,
  connectionCount: { memory: init.connections, worker: init.index },
  tlsTicketKeys: Buffer.from(init.ticketKeys),
  ...(init.frontDoor ? { frontDoor: init.frontDoor } : {}),
});

/** Versions arrive as deltas against the one before: the decoder holds that one's objects. */
const decoder = new IrDeltaDecoder();

port.on('message', (message: ToWorker) => {
  void handle(message).catch((err: Error) => post({ type: 'failed', id: message.id, error: err.message }));
});

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'apply': {
      let ir: ReturnType<IrDeltaDecoder['decode']>;
      try {
        ir = decoder.decode(JSON.parse(message.ir) as EncodedIR);
      } catch (error) {
        post({ type: 'failed', id: message.id, error: (error as Error).message, resync: true });
        return;
      }
      const result = await dataplane.apply(message.version, ir.http, ir.l4);
      // Refused as a whole (a compile error): the dataplane serves the version before, and says so
      // in every listener's result. Not an acknowledgement: the pool must not take it as served.
      if (dataplane.version !== message.version) {
        post({ type: 'failed', id: message.id, error: result.listeners.find((l) => l.error !== undefined)?.error ?? 'configuration rejected', rejected: true });
        return;
      }
      accessLog.configure(gatewayAccessLogs(ir.http));
      post({ type: 'applied', id: message.id, result });
      return;
    }
    case 'redis':
      rateLimits.setRedis(message.settings);
      post({ type: 'done', id: message.id });
      return;
    case 'metrics':
      post({ type: 'metrics', id: message.id, metrics: await registry.getMetricsAsJSON() });
      return;
    case 'read-flows':
      post({ type: 'flows-read', id: message.id, flows: ring?.flows(message.filter, message.last) ?? [] });
      return;
    case 'relay-flows':
      relaying = message.on;
      post({ type: 'done', id: message.id });
      return;
    case 'close':
      await dataplane.close();
      await rateLimits.close();
      await accessLog.close();
      if (flushTimer) clearTimeout(flushTimer);
      flush();
      post({ type: 'done', id: message.id });
      port.close();
      return;
    default:
      throw new Error(`unknown message type ${String((message as { type?: unknown }).type)}`);
  }
}
