// ir.l4 → the exact entries every map should hold. Pure: the same IR always
// gives the same bytes, so an agent restarted on unchanged state writes nothing.
import type { L4IR, L4PolicyEntry, L4Service } from '../../ir/types.ts';
import {
  CONFIG_TRACE_FORWARDED,
  DIRECTION,
  ENFORCE,
  SVC_MODE,
  backendVal,
  configVal,
  ipcacheKey,
  ipcacheVal,
  isIpv4,
  lbTableVal,
  policyKey,
  policyVal,
  portBlocks,
  protocolNumber,
  svcKey,
  svcVal,
  u32Key,
  u64Key,
} from './codec.ts';
import { maglevTable } from './maglev.ts';

/** Maps in the order their entries are written; stale entries are deleted in the reverse order. */
export const MAP_ORDER = [
  'sl_config',
  'sl_cg_identity',
  'sl_ipcache',
  'sl_policy_allow',
  'sl_policy_deny',
  'sl_enforced',
  'sl_backends',
  'sl_lb_tables',
  'sl_services',
] as const;
export type ManagedMap = (typeof MAP_ORDER)[number];

export interface MapEntry {
  key: Buffer;
  value: Buffer;
  /** One readable line for golden files and diagnostics. */
  describe: string;
}

/** Entries per map, keyed by the key's hex. */
export type DesiredState = Record<ManagedMap, Map<string, MapEntry>>;

export interface DesiredOptions {
  /** cgroup ids whose sockets are the gateway's (they carry the ingress identity as a source). */
  gatewayCgroups: { id: bigint; identity: number }[];
  traceForwarded: boolean;
}

export interface DesiredResult {
  state: DesiredState;
  /** Parts of the IR the kernel cannot hold (IPv6, SCTP VIPs…), one line each; they are skipped. */
  skipped: string[];
}

export function desiredState(l4: L4IR, options: DesiredOptions): DesiredResult {
  const state = Object.fromEntries(MAP_ORDER.map((m) => [m, new Map<string, MapEntry>()])) as DesiredState;
  const skipped: string[] = [];
  const put = (map: ManagedMap, key: Buffer, value: Buffer, describe: string): void => {
    const hex = key.toString('hex');
    if (!state[map].has(hex)) state[map].set(hex, { key, value, describe });
  };

  put('sl_config', u32Key(0), configVal(options.traceForwarded ? CONFIG_TRACE_FORWARDED : 0), `trace-forwarded=${options.traceForwarded}`);
  for (const cg of options.gatewayCgroups) put('sl_cg_identity', u64Key(cg.id), u32Key(cg.identity), `cgroup ${cg.id} -> identity ${cg.identity}`);

  // ---- services: backends, then tables, then the service entries that point at them.
  const services = l4.services.filter((s) => {
    if (!isIpv4(s.vip)) skipped.push(`${s.name}: VIP ${s.vip} is not IPv4`);
    return isIpv4(s.vip);
  });
  const backendKeys = new Set<string>();
  for (const s of services) for (const e of s.endpoints) if (isIpv4(e.address)) backendKeys.add(backendKey(e.address, e.port, s.protocol));
  const backendIds = stableIds([...backendKeys]);
  const serviceIds = stableIds(services.map(serviceKey));
  for (const [key, id] of backendIds) {
    const [address, port, protocol] = parseBackendKey(key);
    put('sl_backends', u32Key(id), backendVal(address, port, protocol), `backend ${id} = ${key}`);
  }
  for (const s of services) {
    const svcId = serviceIds.get(serviceKey(s))!;
    const endpoints = s.endpoints.filter((e) => {
      if (!isIpv4(e.address)) skipped.push(`${s.name}: endpoint ${e.address} is not IPv4`);
      return isIpv4(e.address) && e.weight > 0;
    });
    const backends = endpoints.map((e) => {
      const key = backendKey(e.address, e.port, s.protocol);
      return { id: backendIds.get(key)!, key, weight: e.weight };
    });
    if (backends.length > 0) {
      const table = maglevTable(backends);
      put('sl_lb_tables', u32Key(svcId), lbTableVal(table), `table ${svcId}: ${describeTable(table)}`);
    }
    const mode = s.affinity === 'client' ? SVC_MODE.client : SVC_MODE.random;
    put('sl_services', svcKey(s.vip, s.port, s.protocol), svcVal(svcId, backends.length, mode), `${serviceKey(s)} -> service ${svcId} (${s.name}, ${backends.length} endpoints, ${s.affinity})`);
  }

  // ---- policy: addresses and rules first, enforcement last, so a new default deny never precedes its allows.
  const policy = l4.policy;
  if (policy) {
    for (const e of policy.ipcache) put('sl_ipcache', ipcacheKey(e.cidr), ipcacheVal(e.identity), `${e.cidr} -> identity ${e.identity}`);
    // Lowest rule id first, so when two rules produce one key the reported rule is deterministic.
    for (const entry of [...policy.entries].sort((a, b) => a.rule - b.rule)) {
      for (const k of policyKeys(entry)) {
        put(entry.action === 'deny' ? 'sl_policy_deny' : 'sl_policy_allow', k.key, policyVal(entry.rule), `${k.describe} -> rule ${entry.rule}`);
      }
    }
    // An identity with rules in a direction is looked up there even without default deny, so that
    // deny rules of policies with enableDefaultDeny: false still refuse.
    const flags = new Map<number, number>();
    const add = (identity: number, bits: number) => flags.set(identity, (flags.get(identity) ?? 0) | bits);
    for (const entry of policy.entries) add(entry.local, entry.direction === 'ingress' ? ENFORCE.rulesIngress : ENFORCE.rulesEgress);
    for (const e of policy.enforcement) {
      add(e.identity, (e.ingress ? ENFORCE.ingress : 0) | (e.egress ? ENFORCE.egress : 0) | (e.audit ? ENFORCE.auditIngress | ENFORCE.auditEgress : 0));
    }
    for (const [identity, bits] of [...flags.entries()].sort(([a], [b]) => a - b)) {
      put('sl_enforced', u32Key(identity), u32Key(bits), `identity ${identity}: ${describeEnforcement(bits)}`);
    }
  }
  return { state, skipped };
}

function policyKeys(entry: L4PolicyEntry): { key: Buffer; describe: string }[] {
  const direction = DIRECTION[entry.direction];
  const head = `${entry.direction} local=${entry.local} remote=${entry.remote}`;
  if (entry.protocol === 'ANY') {
    return [{ key: policyKey({ local: entry.local, remote: entry.remote, direction, proto: 0, port: 0, portBits: 0 }), describe: `${head} any` }];
  }
  const proto = protocolNumber(entry.protocol);
  const blocks = entry.ports ? portBlocks(entry.ports.from, entry.ports.to) : [{ port: 0, portBits: 0 }];
  return blocks.map((b) => ({
    key: policyKey({ local: entry.local, remote: entry.remote, direction, proto, port: b.port, portBits: b.portBits }),
    describe: `${head} ${entry.protocol} ${b.portBits === 0 ? 'any port' : `${b.port}/${b.portBits}`}`,
  }));
}

function describeEnforcement(bits: number): string {
  const names: [number, string][] = [
    [ENFORCE.ingress, 'ingress default-deny'], [ENFORCE.egress, 'egress default-deny'],
    [ENFORCE.rulesIngress, 'ingress rules'], [ENFORCE.rulesEgress, 'egress rules'],
    [ENFORCE.auditIngress | ENFORCE.auditEgress, 'audit'],
  ];
  return names.filter(([bit]) => (bits & bit) === bit).map(([, name]) => name).join(', ');
}

function describeTable(table: Uint32Array): string {
  const counts = new Map<number, number>();
  for (const id of table) counts.set(id, (counts.get(id) ?? 0) + 1);
  return [...counts.entries()].sort(([a], [b]) => a - b).map(([id, n]) => `${id}x${n}`).join(' ');
}

function backendKey(address: string, port: number, protocol: string): string {
  return `${address}:${port}/${protocol}`;
}

function parseBackendKey(key: string): [string, number, string] {
  const [hostPort, protocol] = key.split('/');
  const i = hostPort!.lastIndexOf(':');
  return [hostPort!.slice(0, i), Number(hostPort!.slice(i + 1)), protocol!];
}

function serviceKey(s: L4Service): string {
  return `${s.vip}:${s.port}/${s.protocol}`;
}

/**
 * Ids from a hash of each key, so an id does not change when unrelated
 * services or endpoints come and go (map entries stay put); collisions probe
 * upwards in sorted key order, which keeps the result deterministic.
 */
export function stableIds(keys: string[]): Map<string, number> {
  const ids = new Map<string, number>();
  const used = new Set<number>();
  for (const key of [...new Set(keys)].sort()) {
    let id = (fnv1a(key) % 0x7ffffffe) + 1;
    while (used.has(id)) id = id === 0x7ffffffe ? 1 : id + 1;
    used.add(id);
    ids.set(key, id);
  }
  return ids;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
