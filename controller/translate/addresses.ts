// Gateway addresses in standalone mode. A plain bind address is shared by
// every Gateway; an IPv4 CIDR (for example 127.20.0.0/16) gives each Gateway
// its own address, chosen from a hash of its namespace/name so that it stays
// put when other Gateways come and go.
import { createHash } from 'node:crypto';
import { formatIPv4, parseCidr } from '../../ir/ipv4.ts';

export interface AddressPlan {
  /** `namespace/name` → address. */
  byGateway: Map<string, string>;
  /** Set when the pool is exhausted or the bind address is unusable. */
  problem?: string;
}

export function planGatewayAddresses(bindAddress: string, gateways: string[]): AddressPlan {
  const byGateway = new Map<string, string>();
  const cidr = poolOf(bindAddress);
  if (!cidr) {
    for (const g of gateways) byGateway.set(g, bindAddress);
    return { byGateway };
  }
  const size = 2 ** (32 - cidr.prefix);
  // Skip the network and broadcast addresses where the range has them.
  const first = size > 2 ? 1 : 0;
  const usable = size > 2 ? size - 2 : size;
  const taken = new Set<number>();
  for (const g of [...gateways].sort()) {
    if (taken.size >= usable) return { byGateway, problem: `address pool ${bindAddress} is exhausted` };
    let slot = createHash('sha256').update(g).digest().readUInt32BE(0) % usable;
    while (taken.has(slot)) slot = (slot + 1) % usable;
    taken.add(slot);
    byGateway.set(g, formatIPv4(cidr.base + first + slot));
  }
  return { byGateway };
}

/** An IPv4 CIDR of /8 or longer, as a pool of Gateway addresses; null for a plain address. */
function poolOf(text: string): { base: number; prefix: number } | null {
  const cidr = parseCidr(text);
  return cidr && cidr.len >= 8 ? { base: cidr.ip, prefix: cidr.len } : null;
}
