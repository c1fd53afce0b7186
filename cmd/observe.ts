// `sluice observe`: the node's flows (the kernel's connection records and the proxy's request
// records) from a running sluice's admin API, with the filters `hubble observe` users type, printed
// as Hubble prints them: `-o compact` (one line), `-o table`, or `-o json` (Hubble's flow JSON:
// `{"flow": {...}, "node_name": ..., "time": ...}`, the mapping in README "Flows").

import { hostname } from 'node:os';
import type { Flow, FlowPeer } from '../ir/flow.ts';
import type { FlagValues } from './cli-flags.ts';
import { adminFetchError } from './admin-client.ts';

/** Flag → /api/flows query parameter (values pass through; the server checks them). */
const FILTER_FLAGS = ['verdict', 'type', 'from-pod', 'to-pod', 'from-namespace', 'to-namespace', 'namespace', 'to-service', 'http-status', 'http-method', 'http-path'] as const;

/** Hubble's output formats; `text` is the older name of compact. */
const FORMATS = ['compact', 'json', 'table', 'text'] as const;

export async function observe(values: FlagValues, usageError: (message: string) => number): Promise<number> {
  const format = (values.output as string | undefined) ?? 'compact';
  if (!(FORMATS as readonly string[]).includes(format)) return usageError(`-o ${format}: expected compact, json or table`);
  const query = new URLSearchParams();
  for (const flag of FILTER_FLAGS) {
    const value = values[flag];
    if (typeof value !== 'string' || value === '') continue;
    // hubble's --type drop is the drops; policy-verdict and trace are the kernel's records.
    if (flag === 'type' && value === 'drop') query.append('verdict', 'DROPPED');
    else if (flag === 'type' && (value === 'policy-verdict' || value === 'trace')) query.append('type', 'l3/l4');
    else query.append(flag, value);
  }
  const last = values.last as string | undefined;
  if (last !== undefined) {
    if (!/^\d+$/.test(last)) return usageError(`--last ${last}: expected a whole number`);
    query.set('last', last);
  }
  if (values.follow) query.set('follow', 'true');
  const address = values['admin-address'] as string;
  let response: Response;
  try {
    response = await fetch(`http://${address}/api/flows?${query}`);
  } catch (err) {
    process.stderr.write(`sluice observe: cannot reach ${address}: ${adminFetchError(err)}\n`);
    return 1;
  }
  if (!response.ok || !response.body) {
    process.stderr.write(`sluice observe: ${response.status} ${await response.text()}\n`);
    return 1;
  }
  const node = hostname();
  if (format === 'table') process.stdout.write(`${TABLE_HEADER}\n`);
  let pending = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!line) continue;
      const flow = JSON.parse(line) as Flow;
      if (format === 'json') process.stdout.write(`${JSON.stringify(hubbleJson(flow, node))}\n`);
      else if (format === 'table') process.stdout.write(`${tableRow(flow)}\n`);
      else process.stdout.write(`${compactLine(flow)}\n`);
    }
  }
  return 0;
}

// ---------------------------------------------------------------- Hubble's flow JSON

/** Hubble's drop_reason_desc for Sluice's reasons; the reasons Hubble has no name for are kept as they are. */
const HUBBLE_DROP_REASONS: Record<string, string> = {
  POLICY_L7: 'POLICY_DENIED',
  DEFAULT_DENY: 'POLICY_DENIED',
  POLICY_DENY: 'POLICY_DENY',
  NO_BACKEND: 'SERVICE_BACKEND_NOT_FOUND',
};

/** Hubble's event_type.type: 129 is an L7 record, 1 a drop, 5 a policy verdict. */
const EVENT_L7 = 129;
const EVENT_DROP = 1;
const EVENT_POLICY_VERDICT = 5;

/** One flow as `hubble observe -o json` prints it, so jq filters written for Hubble read it unchanged. */
export function hubbleJson(flow: Flow, node: string): Record<string, unknown> {
  const l7 = flow.l7;
  const isL7 = flow.type === 'L7';
  const peer = (p: FlowPeer) => ({
    ...(p.identity ? { identity: p.identity } : {}),
    ...(p.namespace ? { namespace: p.namespace } : {}),
    labels: p.labels,
    ...(p.pod ? { pod_name: p.pod.slice(p.pod.indexOf('/') + 1) } : {}),
  });
  const policies = flow.rule ? [{ name: flow.rule.name }] : undefined;
  const decidedBy = flow.verdict === 'FORWARDED' ? 'allowed_by' : 'denied_by';
  return {
    flow: {
      time: flow.time,
      verdict: flow.verdict,
      ...(flow.dropReason ? { drop_reason_desc: HUBBLE_DROP_REASONS[flow.dropReason] ?? flow.dropReason } : {}),
      IP: { source: flow.source.ip, destination: flow.destination.ip, ipVersion: 'IPv4' },
      l4: { [flow.protocol]: { source_port: flow.source.port, destination_port: flow.destination.port } },
      source: peer(flow.source),
      destination: peer(flow.destination),
      Type: isL7 ? 'L7' : 'L3_L4',
      node_name: node,
      event_type: { type: isL7 ? EVENT_L7 : flow.verdict === 'DROPPED' ? EVENT_DROP : EVENT_POLICY_VERDICT },
      traffic_direction: flow.direction.toUpperCase(),
      ...(policies ? { [`${flow.direction}_${decidedBy}`]: policies } : {}),
      ...(l7
        ? {
            l7: {
              type: flow.verdict === 'FORWARDED' ? 'RESPONSE' : 'REQUEST',
              latency_ns: String(Math.round(l7.latencyMs * 1e6)),
              http: { code: l7.status, method: l7.method, url: `http://${l7.host}${l7.path}`, protocol: l7.protocol },
            },
          }
        : {}),
      ...(flow.service ? { destination_service: { name: flow.service.name, namespace: flow.service.namespace } } : {}),
      is_reply: false,
      Summary: summary(flow),
      // What Hubble has no field for: Sluice's own drop reason, rule and route.
      sluice: {
        ...(flow.dropReason ? { drop_reason: flow.dropReason } : {}),
        ...(flow.rule ? { rule: flow.rule } : {}),
        ...(flow.route ? { route: flow.route } : {}),
        ...(flow.gateway ? { gateway: flow.gateway } : {}),
        ...(flow.service?.vip ? { vip: flow.service.vip, service_port: flow.service.port } : {}),
        ...(flow.hook ? { hook: flow.hook } : {}),
      },
    },
    node_name: node,
    time: flow.time,
  };
}

// ---------------------------------------------------------------- text

function who(p: FlowPeer): string {
  const name = p.labels.find((l) => l.startsWith('reserved:'))?.slice('reserved:'.length) ?? p.pod ?? p.namespace ?? `ID:${p.identity}`;
  return `${p.ip}:${p.port} (${name})`;
}

function verdictText(flow: Flow): string {
  return flow.dropReason ? `${flow.verdict} (${flow.dropReason})` : flow.verdict;
}

/** What happened, without who and when: the connection, or the HTTP exchange. */
function summary(flow: Flow): string {
  const l7 = flow.l7;
  if (flow.type === 'L7' && l7) return `${l7.protocol} ${l7.method} http://${l7.host}${l7.path} => ${l7.status || '-'} (${l7.latencyMs} ms)`;
  if (flow.type === 'L7') return `${flow.direction} ${flow.protocol} stream to a port with L7 HTTP rules`;
  return `${flow.direction} ${flow.protocol}`;
}

/** An L7 flow's kind: a request, or a TCPRoute/TLSRoute stream L7 policy decided without one. */
const l7Kind = (flow: Flow): string => (flow.l7 ? 'http-request' : 'l7-stream');

/** One line, as `hubble observe` prints flows. */
export function compactLine(flow: Flow): string {
  const time = flow.time.replace('T', ' ').replace('Z', '');
  const service = flow.service ? ` to-service ${flow.service.namespace}/${flow.service.name} (${flow.service.vip ?? ''}${flow.service.vip ? ':' : 'port '}${flow.service.port})` : '';
  const rule = flow.rule ? ` rule ${flow.rule.name}` : '';
  if (flow.type === 'L7') {
    const route = flow.route ? ` route ${flow.route.source}` : '';
    return `${time}: ${who(flow.source)} -> ${who(flow.destination)}${service} ${l7Kind(flow)} ${verdictText(flow)} (${summary(flow)})${route}${rule}`;
  }
  return `${time}: ${who(flow.source)} -> ${who(flow.destination)}${service} ${summary(flow)} ${verdictText(flow)}${rule}`;
}

const TABLE_COLUMNS = [26, 28, 36, 12, 26] as const;
const TABLE_HEADER = ['TIMESTAMP', 'SOURCE', 'DESTINATION', 'TYPE', 'VERDICT', 'SUMMARY'].map((h, i) => (i < TABLE_COLUMNS.length ? h.padEnd(TABLE_COLUMNS[i]!) : h)).join(' ');

function tableRow(flow: Flow): string {
  const cells = [flow.time, who(flow.source), who(flow.destination), flow.type === 'L7' ? l7Kind(flow) : 'L3_L4', verdictText(flow), summary(flow) + (flow.rule ? ` rule ${flow.rule.name}` : '')];
  return cells.map((c, i) => (i < TABLE_COLUMNS.length ? c.padEnd(TABLE_COLUMNS[i]!) : c)).join(' ');
}
