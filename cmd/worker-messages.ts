// What a --workers thread may send its primary (cmd/workers.ts), checked before anything of it is
// used: a worker is a thread of this process, but one whose heap is corrupt, whose code has a bug,
// or whose messages a future change got wrong must cost the process that worker (ended and
// replaced), never the primary (a throw in an aggregation, an unhandled rejection) nor a wrong
// version or metric in the admin API. Shapes only, with ajv (as the manifests' schemas): which
// request an answer belongs to and which version it may acknowledge is the pool's check.
import { Ajv, type ErrorObject } from 'ajv';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { FLOW_VERDICTS, type Flow } from '../ir/flow.ts';
import type { ApplyResult } from '../dataplane/dataplane.ts';

export type FromWorker =
  | { type: 'applied'; id: number; result: ApplyResult }
  | { type: 'metrics'; id: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { type: 'flows-read'; id: number; flows: Flow[] }
  | { type: 'done'; id: number }
  /**
   * `resync`: the worker could not decode a delta and needs the version in full. `rejected`: its
   * dataplane refused the version as a whole (a compile error) and keeps serving the one before.
   */
  | { type: 'failed'; id: number; error: string; resync?: boolean; rejected?: boolean }
  | { type: 'flows'; flows: Flow[] };

/** The stable code a malformed message is logged with (README "Workers"). */
export const MALFORMED_WORKER_MESSAGE = 'SLU_WORKER_MESSAGE';
/** A version the dataplane refused as a whole (every worker, or the one process): the last good one keeps serving (README "Workers"). */
export const VERSION_REJECTED = 'SLU_VERSION_REJECTED';
/** A version no worker applied within the bound: the last good one keeps serving until every worker serves it, late (README "Workers"). */
export const VERSION_LATE = 'SLU_VERSION_LATE';
/** A version that ended workers WORKER_CRASH_LIMIT times while they applied it: rejected, every worker back on the last good version (README "Workers"). */
export const VERSION_CRASHED = 'SLU_VERSION_CRASHED';

const id = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER };
const string = { type: 'string' };
const peer = {
  type: 'object',
  required: ['ip', 'port', 'identity', 'labels'],
  properties: { ip: string, port: { type: 'integer', minimum: 0, maximum: 65535 }, identity: { type: 'integer' }, namespace: string, labels: { type: 'array', items: string }, pod: string },
};
/** ir/flow.ts's Flow: the admin API, the access log and the flow metrics read every field. */
const flow = {
  type: 'object',
  required: ['time', 'verdict', 'direction', 'protocol', 'source', 'destination'],
  properties: {
    // ISO 8601 UTC (rings are merged by comparing it as a string).
    time: { type: 'string', pattern: '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z$' },
    type: { enum: ['L3_L4', 'L7'] },
    verdict: { enum: FLOW_VERDICTS },
    dropReason: { enum: ['POLICY_DENY', 'DEFAULT_DENY', 'NO_BACKEND', 'POLICY_L7', 'RATE_LIMITED', 'NO_ROUTE'] },
    hook: string,
    direction: { enum: ['ingress', 'egress'] },
    protocol: string,
    source: peer,
    destination: peer,
    service: { type: 'object', required: ['namespace', 'name', 'port'], properties: { namespace: string, name: string, vip: string, port: { type: 'integer' } } },
    rule: { type: 'object', required: ['id', 'name'], properties: { id: { type: 'integer' }, name: string } },
    route: { type: 'object', required: ['name', 'source'], properties: { name: string, source: string } },
    gateway: string,
    l7: {
      type: 'object',
      required: ['method', 'path', 'host', 'protocol', 'status', 'latencyMs'],
      properties: { method: string, path: string, host: string, protocol: string, status: { type: 'integer', minimum: 0, maximum: 999 }, latencyMs: { type: 'number', minimum: 0 } },
    },
  },
};
const flows = { type: 'array', items: flow };
/**
 * prom-client's getMetricsAsJSON: summed by AggregatorRegistry, which throws on an aggregator it
 * does not know; a value that is not a finite number would make every later total wrong.
 */
const metric = {
  type: 'object',
  required: ['name', 'help', 'type', 'values'],
  properties: {
    name: { type: 'string', pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$' },
    help: string,
    type: { enum: ['counter', 'gauge', 'histogram', 'summary'] },
    aggregator: { enum: ['sum', 'first', 'min', 'max', 'average', 'omit'] },
    values: {
      type: 'array',
      items: {
        type: 'object',
        required: ['value'],
        properties: {
          value: { type: 'number' },
          metricName: string,
          labels: { type: 'object', additionalProperties: { type: ['string', 'number'] } },
        },
      },
    },
  },
};
const listener = { type: 'object', required: ['name', 'ok'], properties: { name: string, ok: { type: 'boolean' }, error: string, code: string } };
const message = (type: string, required: string[], properties: Record<string, unknown>) => ({
  type: 'object',
  required: ['type', ...required],
  properties: { type: { const: type }, ...properties },
});
const schema = {
  type: 'object',
  required: ['type'],
  discriminator: { propertyName: 'type' },
  oneOf: [
    message('applied', ['id', 'result'], { id, result: { type: 'object', required: ['version', 'listeners'], properties: { version: { type: 'string', minLength: 1 }, listeners: { type: 'array', items: listener } } } }),
    message('metrics', ['id', 'metrics'], { id, metrics: { type: 'array', items: metric } }),
    message('flows-read', ['id', 'flows'], { id, flows }),
    message('done', ['id'], { id }),
    message('failed', ['id', 'error'], { id, error: string, resync: { type: 'boolean' }, rejected: { type: 'boolean' } }),
    message('flows', ['flows'], { flows }),
  ],
};

let check: ((data: unknown) => boolean) & { errors?: ErrorObject[] | null } | null = null;

/** The message as a FromWorker, or why it is not one (the first problem, with where it is). */
export function readFromWorker(data: unknown): FromWorker | string {
  // Compiled at the first message: a process without workers never pays for it.
  check ??= new Ajv({ discriminator: true, allErrors: false, allowUnionTypes: true }).compile(schema);
  if (check(data)) return data as FromWorker;
  const error = check.errors?.[0];
  const type = typeof data === 'object' && data !== null && typeof (data as { type?: unknown }).type === 'string' ? (data as { type: string }).type : null;
  return `${type === null ? 'a message without a known type' : `a ${JSON.stringify(type).slice(0, 40)} message`}: ${error ? `${error.instancePath || '/'} ${error.message ?? 'is invalid'}` : 'invalid'}`;
}
