// Admin HTTP API: health, readiness, Prometheus metrics, computed statuses
// (in Kubernetes shape) and the IR currently served.
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { VERDICTS, type Verdict } from '../bpf/agent/codec.ts';
import { flowMatches as filterMatches, type FlowFilter, type FlowRecord } from '../bpf/agent/flows.ts';
import type { IR } from '../ir/types.ts';
import { parseHostPort } from '../ir/host-port.ts';
import { redactIR } from '../ir/version.ts';
import { problemLine, type Problem } from '../controller/problems.ts';
import type { KubeObject } from '../controller/sources/objects.ts';

/** A started part of the process (controller, standalone, dataplane): what its caller may do with it. */
export interface Running {
  close(): Promise<void>;
}

export interface AdminState {
  ready(): boolean;
  /** Every object read, with its computed status; Secret data never leaves. */
  objects(): KubeObject[];
  ir(): IR | null;
  /** The current problems (PROBLEM_CATALOGUE); absent: none tracked. */
  problems?(): Problem[];
  /** Flows seen by the BPF agent; absent when eBPF is off. */
  flows?: FlowSource;
}

export interface FlowSource {
  flows(filter: FlowFilter): FlowRecord[];
  follow(listener: (flow: FlowRecord) => void): () => void;
}

/** A metrics registry with the Node process metrics (`sluice_process_*`), one per Sluice process. */
export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sluice_process_' });
  return registry;
}

export async function startAdminServer(address: string, state: AdminState, registry: Registry): Promise<FastifyInstance> {
  const { host, port } = parseHostPort(address);
  // forceCloseConnections: `follow` streams never end by themselves, and closing must not wait for them.
  const app = Fastify({ logger: false, forceCloseConnections: true });
  app.get('/healthz', async () => 'ok\n');
  // A source read error leaves the last good configuration serving: still ready (a 503 would only
  // pull a serving instance out of its load balancer), with the reason in the body.
  app.get('/readyz', async (_req, reply) => {
    if (!state.ready()) return reply.code(503).send('not ready: no configuration applied yet\n');
    const reasons = (state.problems?.() ?? []).filter((p) => p.code === 'SLU_SOURCE_READ').map(problemLine);
    return reasons.length === 0 ? 'ready\n' : `ready, serving the last good configuration while:\n${reasons.join('\n')}\n`;
  });
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.get('/api/status', async () => ({ apiVersion: 'v1', kind: 'List', items: state.objects().map(redactSecret), problems: state.problems?.() ?? [] }));
  app.get('/api/config', async (_req, reply) => {
    const ir = state.ir();
    if (!ir) return reply.code(503).send({ error: 'no configuration applied yet' });
    return { version: ir.version, ir: redactIR(ir) };
  });
  // Flows as NDJSON, oldest first; `follow=true` keeps the response open and streams new ones.
  app.get<{ Querystring: { verdict?: string; namespace?: string; 'to-service'?: string; follow?: string } }>('/api/flows', async (req, reply) => {
    const source = state.flows;
    if (!source) return reply.code(404).send({ error: 'eBPF is off in this process: no flows (see the log line at start for why)' });
    const { verdict, namespace } = req.query;
    if (verdict && !(VERDICTS as readonly string[]).includes(verdict)) {
      return reply.code(400).send({ error: `verdict ${verdict}: expected one of ${VERDICTS.join(', ')}` });
    }
    const filter: FlowFilter = {
      ...(verdict ? { verdict: verdict as Verdict } : {}),
      ...(namespace ? { namespace } : {}),
      ...(req.query['to-service'] ? { toService: req.query['to-service'] } : {}),
    };
    const lines = source.flows(filter).map((f) => `${JSON.stringify(f)}\n`).join('');
    if (req.query.follow !== 'true') return reply.type('application/x-ndjson').send(lines);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    res.write(lines);
    const stop = source.follow((flow) => {
      if (filterMatches(flow, filter)) res.write(`${JSON.stringify(flow)}\n`);
    });
    res.on('close', stop);
  });
  await app.listen({ host, port });
  return app;
}

function redactSecret(obj: KubeObject): KubeObject {
  if (obj.kind !== 'Secret') return obj;
  const { data, stringData, ...rest } = obj as KubeObject & { stringData?: Record<string, string> };
  const keys = [...Object.keys(data ?? {}), ...Object.keys(stringData ?? {})];
  return { ...rest, data: Object.fromEntries(keys.map((k) => [k, '<redacted>'])) } as KubeObject;
}
