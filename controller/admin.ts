// Admin HTTP API: health, readiness, Prometheus metrics, computed statuses
// (in Kubernetes shape) and the IR currently served.
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { IR } from './ir/types.ts';
import { redactIR } from './ir/version.ts';
import type { KubeObject } from './sources/objects.ts';

export interface AdminState {
  ready(): boolean;
  /** Every object read, with its computed status; Secret data never leaves. */
  objects(): KubeObject[];
  ir(): IR | null;
}

export async function startAdminServer(address: string, state: AdminState, registry: Registry): Promise<FastifyInstance> {
  const { host, port } = parseHostPort(address);
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => 'ok\n');
  app.get('/readyz', async (_req, reply) => (state.ready() ? 'ready\n' : reply.code(503).send('not ready: no configuration applied yet\n')));
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.get('/api/status', async () => ({ apiVersion: 'v1', kind: 'List', items: state.objects().map(redactSecret) }));
  app.get('/api/config', async (_req, reply) => {
    const ir = state.ir();
    if (!ir) return reply.code(503).send({ error: 'no configuration applied yet' });
    return { version: ir.version, ir: redactIR(ir) };
  });
  await app.listen({ host, port });
  return app;
}

export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid address ${JSON.stringify(address)}: expected HOST:PORT`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]) };
}

function redactSecret(obj: KubeObject): KubeObject {
  if (obj.kind !== 'Secret') return obj;
  const { data, stringData, ...rest } = obj as KubeObject & { stringData?: Record<string, string> };
  const keys = [...Object.keys(data ?? {}), ...Object.keys(stringData ?? {})];
  return { ...rest, data: Object.fromEntries(keys.map((k) => [k, '<redacted>'])) } as KubeObject;
}
