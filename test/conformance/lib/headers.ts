// Header helpers with the semantics of the upstream Go conformance client.

// Go's textproto.CanonicalMIMEHeaderKey: one implementation, the echo server's.
export { canonicalHeaderName } from '../../support/demo/echo-server.ts';

/**
 * Groups raw header pairs (`[name, value, name, value, ...]`) by lower-case
 * name, keeping every value in arrival order. Node's own header objects join
 * repeated values with ", ", which is not what the suite compares.
 */
export function groupRawHeaders(raw: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name.startsWith(':')) continue;
    const list = out.get(name);
    if (list) list.push(raw[i + 1]);
    else out.set(name, [raw[i + 1]]);
  }
  return out;
}

/** Multiple values of one header are joined with "," (no space) before comparing. */
export function joinHeaderValues(values: readonly string[]): string {
  return values.join(',');
}

/** Case-insensitive lookup in a header map keyed by any casing (e.g. the echo JSON's canonical names). */
export function lookupHeader(headers: Record<string, string[]> | Map<string, string[]>, name: string): string[] | undefined {
  const lower = name.toLowerCase();
  if (headers instanceof Map) return headers.get(lower);
  let found: string[] | undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== lower) continue;
    found = found ? [...found, ...(Array.isArray(v) ? v : [String(v)])] : Array.isArray(v) ? v : [String(v)];
  }
  return found;
}

/** Strips spaces and tabs (the suite's `ignoreWhitespace`). */
export function stripWhitespace(s: string): string {
  return s.replace(/[ \t]+/g, '');
}
