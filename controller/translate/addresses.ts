// Gateway addresses in standalone mode. A plain bind address is shared by
// every Gateway; an IPv4 CIDR (for example 127.20.0.0/16) gives each Gateway
// its own address, chosen from a hash of its namespace/name so that it stays
// put when other Gateways come and go.
import { createHash } from 'node:crypto';
import { addressInCidr, formatIPv4, parseCidr, parseIPv4 } from '../../ir/ipv4.ts';
import type { ServiceObject } from '../sources/objects.ts';
import { dataplaneAddresses } from '../status/kubernetes.ts';

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

/** Is `address` one the --bind-address gives (itself, or in its pool), rather than a Gateway's own spec.addresses? */
export function isPlannedAddress(bindAddress: string, address: string): boolean {
  const cidr = poolOf(bindAddress);
  const ip = parseIPv4(address);
  return cidr ? ip !== null && addressInCidr(ip, { ip: cidr.base, len: cidr.prefix }) : address === bindAddress;
}

/** An IPv4 CIDR of /8 or longer, as a pool of Gateway addresses; null for a plain address. */
function poolOf(text: string): { base: number; prefix: number } | null {
  const cidr = parseCidr(text);
  return cidr && cidr.len >= 8 ? { base: cidr.ip, prefix: cidr.len } : null;
}

/** One `spec.addresses` entry, as the Gateway CRD types it. */
export interface RequestedAddress {
  type?: string;
  value?: string;
}

/**
 * What a Gateway's `spec.addresses` asks of Sluice. IPAddress values are bound as they are (every
 * listener on every one of them, as the spec says); an IPAddress entry without a value, or no
 * entry at all, takes Sluice's own address (the --bind-address plan).
 * A Hostname is "a DNS based ingress point ... used for cloud load balancers where a DNS name is used
 * to expose a load balancer" (apis/v1 HostnameAddressType): something in front of the Gateway gives
 * it, not a socket. With a dataplane Service (Kubernetes mode, --dataplane-service) that is the
 * Service's load balancer, so a Hostname is requested like an IPAddress: the Gateway's when the
 * Service's status carries it, else Programmed=False AddressNotAssigned. Where Sluice binds the
 * addresses itself there is nothing to give the name: resolving it and binding whatever it
 * resolves to would serve on what an outside resolver says at that moment, not what the objects
 * say, and claim a name whose DNS records nobody here keeps. So it, NamedAddress (no names are
 * defined) and unknown types are `unsupported` (Accepted=False UnsupportedAddress, the spec's
 * reason for a type the implementation does not support), each with why.
 */
export interface AddressRequest {
  /** IPAddress values to bind, in spec order, duplicates removed (none when a Service carries them). */
  static: string[];
  /** Every IPAddress value asked for, bound or not. */
  requested: string[];
  /** Also take the planned address: no entries, or an IPAddress entry without a value. */
  planned: boolean;
  /** Why the request cannot be honoured, naming the entry; null when it can. */
  unsupported: string | null;
}

/**
 * `bind` false (Kubernetes mode with a dataplane Service): the requested values are the Service's
 * to carry, the dataplanes bind the planned address.
 */
export function addressRequest(entries: RequestedAddress[] | undefined, bind = true): AddressRequest {
  const list = entries ?? [];
  const values: string[] = [];
  let planned = list.length === 0;
  for (const [i, a] of list.entries()) {
    const type = a.type ?? 'IPAddress';
    if (type === 'Hostname' && !bind) {
      if (a.value) values.push(a.value);
      else planned = true;
      continue;
    }
    if (type !== 'IPAddress') {
      const why =
        type === 'Hostname'
          ? 'a load balancer or DNS record in front of a Gateway gives it a DNS name; here Sluice binds the addresses itself, so list them as IPAddress entries (in Kubernetes mode with --dataplane-service, a hostname the Service\'s load balancer reports is honoured)'
          : type === 'NamedAddress'
            ? 'Sluice defines no named addresses (IPAddress is supported)'
            : 'not a type Sluice knows (IPAddress is supported)';
      return { static: [], requested: [], planned: false, unsupported: `spec.addresses[${i}] type ${type}: ${why}` };
    }
    if (a.value) values.push(decimalIPv4Parts(a.value));
    else planned = true;
  }
  const requested = [...new Set(values)];
  return bind ? { static: requested, requested, planned, unsupported: null } : { static: [], requested, planned: true, unsupported: null };
}

/**
 * An address with IPv4 parts written with leading zeros (`010.0.0.1`, `::ffff:010.0.0.1`) as the
 * API server reads it, decimal (Go's ParseIPSloppy); the resolver a bind goes through would read
 * `010` as octal (inet_aton: 8.0.0.1). Any other value as written.
 */
function decimalIPv4Parts(value: string): string {
  const tail = value.slice(value.lastIndexOf(':') + 1);
  if (!/(^|\.)0\d/.test(tail) || !/^\d+(\.\d+){3}$/.test(tail)) return value;
  return value.slice(0, value.length - tail.length) + tail.split('.').map(Number).join('.');
}

/** Kubernetes mode with `--dataplane-service`: the Service every Gateway is reached through, and its addresses. */
export interface ServiceAddressing {
  /** `namespace/name`. */
  name: string;
  addresses: Set<string>;
}

/**
 * The dataplane Service's load-balancer and external addresses (as status reports them; a NodePort
 * Service's node addresses are not known to translation), or null without `--dataplane-service`.
 */
export function serviceAddressing(dataplaneService: string | undefined, services: ServiceObject[]): ServiceAddressing | null {
  if (!dataplaneService) return null;
  const [namespace, name] = dataplaneService.split('/');
  const service = services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
  return { name: dataplaneService, addresses: new Set(dataplaneAddresses(service).map((a) => a.value)) };
}
