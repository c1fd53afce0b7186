// Gateway addresses in standalone mode. A plain bind address is shared by
// every Gateway; an IPv4 CIDR (for example 127.20.0.0/16) gives each Gateway
// its own address, chosen from a hash of its namespace/name so that it stays
// put when other Gateways come and go.
import { createHash } from 'node:crypto';

export interface AddressPlan {
  /** `namespace/name` → address. */
  byGateway: Map<string, string>;
  /** Set when the pool is exhausted or the bind address is unusable. */
  problem?: string;
}

export function planGatewayAddresses(bindAddress: string, gateways: string[]): AddressPlan {
  const byGateway = new Map<string, string>();
  const cidr = parseCidr(bindAddress);
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
    byGateway.set(g, intToIp(cidr.base + first + slot));
  }
  return { byGateway };
}

export function parseCidr(text: string): { base: number; prefix: number } | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(text);
  if (!m) return null;
  const prefix = Number(m[5]);
  const octets = m.slice(1, 5).map(Number);
  if (prefix < 8 || prefix > 32 || octets.some((o) => o > 255)) return null;
  const ip = octets.reduce((acc, o) => acc * 256 + o, 0);
  const blockSize = 2 ** (32 - prefix);
  return { base: ip - (ip % blockSize), prefix };
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}
