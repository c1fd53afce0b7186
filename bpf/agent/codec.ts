// Byte layouts of the map keys and values in bpf/include/maps.h. Addresses and
// ports are written in network byte order; every buffer starts zeroed so that
// padding bytes never make a hash lookup miss. `checkCodec` compares these
// layouts with the BTF of the loaded object, so a change on one side only
// fails loudly at start instead of writing garbage into the kernel.
import { formatIPv4, parseCidr, parseIPv4 } from '../../ir/ipv4.ts';

export const LB_SLOTS = 1021;

export const PROTO = { TCP: 6, UDP: 17, SCTP: 132 } as const;
export const SVC_MODE = { random: 0, client: 1 } as const;
export const DIRECTION = { ingress: 0, egress: 1 } as const;
export const ENFORCE = { ingress: 1, egress: 2, auditIngress: 4, auditEgress: 8, rulesIngress: 16, rulesEgress: 32 } as const;
export const CONFIG_TRACE_FORWARDED = 1;
export const POLICY_PREFIX_FIXED = 72;
export const POLICY_PREFIX_PROTO = 80;
export const POLICY_PREFIX_FULL = 96;

/** Indexes into sl_counters. */
export const COUNTER = {
  forwarded: 0,
  dropped: 1,
  audit: 2,
  lbTranslated: 3,
  dropPolicyDeny: 4,
  dropDefaultDeny: 5,
  dropNoBackend: 6,
  eventsLost: 7,
} as const;
export const COUNTER_SLOTS = 16;

export const VERDICTS = ['FORWARDED', 'DROPPED', 'AUDIT'] as const;
export const REASONS = ['NONE', 'POLICY_DENY', 'DEFAULT_DENY', 'NO_BACKEND'] as const;
export const HOOKS = ['connect4', 'sendmsg4', 'skb_egress'] as const;
export type Verdict = (typeof VERDICTS)[number];
export type DropReason = (typeof REASONS)[number];

/** Sizes and member offsets (bytes) of every struct the agent writes or reads. */
export const LAYOUT = {
  sl_svc_key: { size: 8, members: { vip: 0, port: 4, proto: 6, pad: 7 } },
  sl_svc_val: { size: 8, members: { svc_id: 0, count: 4, mode: 6, flags: 7 } },
  sl_lb_table: { size: 4 * LB_SLOTS, members: { backend_id: 0 } },
  sl_backend: { size: 8, members: { ip: 0, port: 4, proto: 6, flags: 7 } },
  sl_revnat_key: { size: 16, members: { cookie: 0, ip: 8, port: 12, pad: 14 } },
  sl_revnat_val: { size: 8, members: { vip: 0, port: 4, pad: 6 } },
  sl_ipcache_key: { size: 8, members: { prefixlen: 0, ip: 4 } },
  sl_ipcache_val: { size: 8, members: { identity: 0, flags: 4 } },
  sl_policy_key: { size: 16, members: { prefixlen: 0, local_id: 4, remote_id: 8, direction: 12, proto: 13, dport: 14 } },
  sl_policy_val: { size: 8, members: { rule_id: 0, flags: 4 } },
  sl_config: { size: 8, members: { flags: 0, pad: 4 } },
  sl_flow_event: {
    size: 56,
    members: {
      ts_ns: 0, cookie: 8, src_ip: 16, dst_ip: 20, vip: 24, src_port: 28, dst_port: 30, vip_port: 32,
      proto: 34, verdict: 35, reason: 36, hook: 37, direction: 38, pad: 39, src_id: 40, dst_id: 44, rule_id: 48, pad2: 52,
    },
  },
} as const;

export interface BtfStructLike {
  size: number;
  members: { name: string; offsetBits: number }[];
}

/** Differences between LAYOUT and an object's BTF, one line each; empty when they agree. */
export function checkCodec(btf: Record<string, BtfStructLike>): string[] {
  const problems: string[] = [];
  for (const [name, layout] of Object.entries(LAYOUT)) {
    const struct = btf[name];
    if (!struct) {
      problems.push(`struct ${name} is missing from the object's BTF`);
      continue;
    }
    if (struct.size !== layout.size) problems.push(`struct ${name}: size ${struct.size} in BTF, ${layout.size} in the agent`);
    for (const [member, offset] of Object.entries(layout.members)) {
      const found = struct.members.find((m) => m.name === member);
      if (!found) problems.push(`struct ${name}: member ${member} is missing from BTF`);
      else if (found.offsetBits !== offset * 8) problems.push(`struct ${name}.${member}: offset ${found.offsetBits / 8} in BTF, ${offset} in the agent`);
    }
  }
  return problems;
}

// ------------------------------------------------------------------ addresses

export function ipv4ToBytes(address: string): Buffer {
  const ip = parseIPv4(address);
  if (ip === null) throw new Error(`not an IPv4 address: ${address}`);
  const out = Buffer.alloc(4);
  out.writeUInt32BE(ip, 0);
  return out;
}

export function bytesToIpv4(buf: Buffer, offset: number): string {
  return formatIPv4(buf.readUInt32BE(offset));
}

export function isIpv4(address: string): boolean {
  return parseIPv4(address) !== null;
}

export function protocolNumber(protocol: string): number {
  const n = PROTO[protocol as keyof typeof PROTO];
  if (n === undefined) throw new Error(`unknown protocol ${protocol}`);
  return n;
}

// ------------------------------------------------------------------ services

export function svcKey(vip: string, port: number, protocol: string): Buffer {
  const b = Buffer.alloc(LAYOUT.sl_svc_key.size);
  ipv4ToBytes(vip).copy(b, 0);
  b.writeUInt16BE(port, 4);
  b.writeUInt8(protocolNumber(protocol), 6);
  return b;
}

export function svcVal(svcId: number, count: number, mode: number): Buffer {
  const b = Buffer.alloc(LAYOUT.sl_svc_val.size);
  b.writeUInt32LE(svcId, 0);
  b.writeUInt16LE(count, 4);
  b.writeUInt8(mode, 6);
  return b;
}

export function u32Key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

export function u64Key(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n, 0);
  return b;
}

export function lbTableVal(slots: Uint32Array): Buffer {
  if (slots.length !== LB_SLOTS) throw new Error(`a Maglev table has ${LB_SLOTS} slots, got ${slots.length}`);
  const b = Buffer.alloc(LAYOUT.sl_lb_table.size);
  for (let i = 0; i < LB_SLOTS; i++) b.writeUInt32LE(slots[i]!, i * 4);
  return b;
}

export function backendVal(address: string, port: number, protocol: string): Buffer {
  const b = Buffer.alloc(LAYOUT.sl_backend.size);
  ipv4ToBytes(address).copy(b, 0);
  b.writeUInt16BE(port, 4);
  b.writeUInt8(protocolNumber(protocol), 6);
  return b;
}

// ------------------------------------------------------------------ policy

export function ipcacheKey(cidr: string): Buffer {
  // A bare address is a /32. parseCidr clears the bits past the prefix: two spellings of one prefix stay one entry.
  const prefix = parseCidr(cidr.includes('/') ? cidr : `${cidr}/32`);
  if (!prefix) throw new Error(`not an IPv4 prefix: ${cidr}`);
  const b = Buffer.alloc(LAYOUT.sl_ipcache_key.size);
  b.writeUInt32LE(prefix.len, 0);
  b.writeUInt32BE(prefix.ip, 4);
  return b;
}

/** A map value that is one u32 at offset 0 (the rest of the struct zero). */
function u32Value(size: number, value: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(value, 0);
  return b;
}

export function ipcacheVal(identity: number): Buffer {
  return u32Value(LAYOUT.sl_ipcache_val.size, identity);
}

export interface PolicyKeyFields {
  local: number;
  remote: number;
  direction: number;
  /** 0 = any protocol (and so any port). */
  proto: number;
  /** With `portBits`: the first port of an aligned block of 2^(16-portBits) ports. */
  port: number;
  /** How many leading bits of the port are fixed (0 = any port). */
  portBits: number;
}

export function policyKey(f: PolicyKeyFields): Buffer {
  const b = Buffer.alloc(LAYOUT.sl_policy_key.size);
  const prefix = f.proto === 0 ? POLICY_PREFIX_FIXED : POLICY_PREFIX_PROTO + f.portBits;
  b.writeUInt32LE(prefix, 0);
  b.writeUInt32LE(f.local, 4);
  b.writeUInt32LE(f.remote, 8);
  b.writeUInt8(f.direction, 12);
  b.writeUInt8(f.proto, 13);
  if (f.proto !== 0 && f.portBits > 0) b.writeUInt16BE(f.port, 14);
  return b;
}

export function policyVal(ruleId: number): Buffer {
  return u32Value(LAYOUT.sl_policy_val.size, ruleId);
}

/**
 * An inclusive port range as the fewest prefix-aligned blocks an LPM trie can
 * hold: [80, 80] is one block of 16 fixed bits, [1024, 2047] one block of 6.
 */
export function portBlocks(from: number, to: number): { port: number; portBits: number }[] {
  if (from < 0 || to > 65535 || from > to) throw new Error(`bad port range ${from}-${to}`);
  const out: { port: number; portBits: number }[] = [];
  let start = from;
  while (start <= to) {
    let size = 1;
    // Grow the block while it stays aligned at `start` and inside the range.
    while (size < 65536 && start % (size * 2) === 0 && start + size * 2 - 1 <= to) size *= 2;
    out.push({ port: start, portBits: 16 - Math.log2(size) });
    start += size;
  }
  return out;
}

export function configVal(flags: number): Buffer {
  return u32Value(LAYOUT.sl_config.size, flags);
}

// ------------------------------------------------------------------ events

export interface FlowEvent {
  tsNs: bigint;
  cookie: bigint;
  srcIp: string;
  dstIp: string;
  vip: string | null;
  srcPort: number;
  dstPort: number;
  vipPort: number;
  proto: number;
  verdict: Verdict;
  reason: DropReason;
  hook: (typeof HOOKS)[number];
  direction: 'ingress' | 'egress';
  srcId: number;
  dstId: number;
  ruleId: number;
}

export function decodeFlowEvent(b: Buffer): FlowEvent {
  if (b.length < LAYOUT.sl_flow_event.size) throw new Error(`flow event of ${b.length} bytes, expected ${LAYOUT.sl_flow_event.size}`);
  const vipRaw = b.readUInt32LE(24);
  return {
    tsNs: b.readBigUInt64LE(0),
    cookie: b.readBigUInt64LE(8),
    srcIp: bytesToIpv4(b, 16),
    dstIp: bytesToIpv4(b, 20),
    vip: vipRaw === 0 ? null : bytesToIpv4(b, 24),
    srcPort: b.readUInt16BE(28),
    dstPort: b.readUInt16BE(30),
    vipPort: b.readUInt16BE(32),
    proto: b.readUInt8(34),
    verdict: VERDICTS[b.readUInt8(35)] ?? 'DROPPED',
    reason: REASONS[b.readUInt8(36)] ?? 'NONE',
    hook: HOOKS[b.readUInt8(37)] ?? 'connect4',
    direction: b.readUInt8(38) === DIRECTION.egress ? 'egress' : 'ingress',
    srcId: b.readUInt32LE(40),
    dstId: b.readUInt32LE(44),
    ruleId: b.readUInt32LE(48),
  };
}
