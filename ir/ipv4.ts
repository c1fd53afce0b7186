// IPv4 addresses and prefixes as the IR writes them (`a.b.c.d`, `a.b.c.d/len`):
// the one parser and formatter for translation (addresses, network policy) and
// the BPF agent's codec.

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits cleared). */
  ip: number;
  len: number;
}

/** `a.b.c.d` → unsigned 32-bit number; null when it is not a dotted-quad IPv4 address. */
export function parseIPv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let ip = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    ip = ip * 256 + Number(p);
  }
  return ip;
}

/** `a.b.c.d/len` with host bits cleared; null when it is not an IPv4 prefix. */
export function parseCidr(text: string): Cidr | null {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text.trim());
  if (!m) return null;
  const ip = parseIPv4(m[1]!);
  const len = Number(m[2]);
  if (ip === null || len > 32) return null;
  return { ip: (ip & prefixMask(len)) >>> 0, len };
}

export function isIPv6(text: string): boolean {
  return text.includes(':');
}

/** The network mask of a prefix length, as an unsigned 32-bit number. */
export function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export function formatIPv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.ip)}/${c.len}`;
}

/** True when every address of `inner` is in `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.len >= outer.len && ((inner.ip & prefixMask(outer.len)) >>> 0) === outer.ip;
}

export function addressInCidr(ip: number, c: Cidr): boolean {
  return ((ip & prefixMask(c.len)) >>> 0) === c.ip;
}

/** Address order, then shorter prefix first. */
export function compareCidrs(a: Cidr, b: Cidr): number {
  return a.ip - b.ip || a.len - b.len;
}
