// The IR version is a hash of its content: equal configuration, equal version.
import { hash } from 'node:crypto';
import type { HttpIR, HttpPolicy, HttpPolicyHeader, IR, L4IR } from './types.ts';

/** The version of an IR, hashed from scratch (a translator keeps an IrHasher to reuse the hashes of unchanged parts). */
export function irVersion(http: HttpIR, l4: L4IR): string {
  return new IrHasher().version(http, l4);
}

/**
 * Hashes IR content with the hash of each named entity (an object with a string `name` and at least
 * one object-valued field: a route, backend, virtual host, scope, listener, l4 service...) cached by
 * identity, so a new IR that shares unchanged parts with the previous one (structural sharing, see
 * controller/translate/memo.ts) is hashed in time proportional to what changed. The value depends
 * on content only (keys sorted, undefined fields absent as in JSON): equal IRs, equal versions,
 * whether hashed from scratch or not. Sound only because IR objects are never mutated once a
 * translation returned them; an instance lives as long as the translator that owns it.
 */
export class IrHasher {
  private readonly hashes = new WeakMap<object, string>();
  /** Chunks of long arrays (see chunked()) by their first element: the elements, by identity, and the chunk's digest. */
  private readonly chunks = new WeakMap<object, Chunk[]>();

  version(http: HttpIR, l4: L4IR): string {
    return hash('sha256', this.encode({ http, l4 }), 'hex').slice(0, 16);
  }

  private encode(value: unknown): string {
    if (typeof value !== 'object' || value === null) return primitive(value);
    if (Array.isArray(value)) {
      if (value.length > CHUNKED_FROM) return this.chunked(value);
      if (value.length === 0) return '[]';
      let out = `[${this.child(value[0])}`;
      for (let i = 1; i < value.length; i++) out += `,${this.child(value[i])}`;
      return `${out}]`;
    }
    return this.encodeRecord(value as Record<string, unknown>);
  }

  /** Set by encodeRecord: whether the record it encoded last has an object-valued field (see child()). */
  private objectField = false;

  /** An object as JSON with its keys sorted, each key's text (`{"key":`, `,"key":`) made once per shape. */
  private encodeRecord(record: Record<string, unknown>): string {
    const { sorted, first, rest } = shapeOf(record);
    let out = '';
    let objectField = false;
    for (let i = 0; i < sorted.length; i++) {
      const v = record[sorted[i]!];
      if (v === undefined || typeof v === 'function') continue;
      const key = out === '' ? first[i]! : rest[i]!;
      if (typeof v === 'object' && v !== null) {
        objectField = true;
        out += key + this.child(v);
      } else out += key + primitive(v);
    }
    this.objectField = objectField;
    return out === '' ? '{}' : `${out}}`;
  }

  /**
   * A long array (a virtual host of 50 000 routes, a scope of 10 000 hosts) as `[@` and the digests
   * of its chunks: a new array that shares most elements with an earlier one (one route changed)
   * then costs an identity comparison per element, and hashes only the chunks that changed. A chunk
   * ends where an element's encoding says so (chunkEnds), after MAX_CHUNK elements, or with the
   * array: boundaries follow content, so an element inserted or removed changes only its chunk, and
   * a chunk starting where an earlier one with the same elements started ends where it ended (then
   * its digest is taken without encoding its elements). Content only, as the rest:
   * equal arrays, equal chunks, equal digests. (`@` starts no element's encoding: no other array reads the same.)
   */
  private chunked(value: unknown[]): string {
    let out = '[@';
    const encoded: string[] = [];
    for (let start = 0; start < value.length; ) {
      const known = this.knownChunk(value, start);
      if (known !== undefined) {
        out += `${start === 0 ? '' : ','}${known.digest}`;
        start += known.elements.length;
        continue;
      }
      encoded.length = 0;
      let end = start;
      let byEnd = false;
      for (;;) {
        // Elements in full (a named one too: the chunk's digest covers it, no digest of its own to
        // make and keep for each of 50 000 routes).
        const element = value[end];
        const text = typeof element === 'object' && element !== null ? this.encode(element) : primitive(element);
        encoded.push(text);
        end += 1;
        if (end - start >= MAX_CHUNK || chunkEnds(text)) break;
        if (end === value.length) {
          byEnd = true;
          break;
        }
      }
      const digest = hash('sha256', encoded.join(','), 'base64url');
      this.remember(value, start, end, digest, byEnd);
      out += `${start === 0 ? '' : ','}${digest}`;
      start = end;
    }
    return `${out}]`;
  }

  /**
   * A chunk made earlier that starts with value[start] and holds the same elements (by identity)
   * as value from there: the chunk the scan would make. One that ended only with its array serves
   * only where this array ends there too.
   */
  private knownChunk(value: unknown[], start: number): Chunk | undefined {
    const head = value[start];
    if (typeof head !== 'object' || head === null) return undefined;
    for (const chunk of this.chunks.get(head) ?? []) {
      const end = start + chunk.elements.length;
      if (end > value.length || (chunk.byEnd && end !== value.length)) continue;
      if (sameRange(chunk.elements, value, start, end)) return chunk;
    }
    return undefined;
  }

  private remember(value: unknown[], start: number, end: number, digest: string, byEnd: boolean): void {
    const head = value[start];
    if (typeof head !== 'object' || head === null) return;
    const chunk: Chunk = { elements: value.slice(start, end), digest, byEnd };
    const known = this.chunks.get(head);
    if (known === undefined) this.chunks.set(head, [chunk]);
    else {
      // A few per first element (it may start chunks in several arrays); the oldest goes.
      if (known.length >= 4) known.shift();
      known.push(chunk);
    }
  }

  /** A named entity as `#<its hash>` (unquoted: no string value reads the same), anything else inline. */
  private child(value: unknown): string {
    if (typeof value !== 'object' || value === null) return primitive(value);
    if (Array.isArray(value)) return this.encode(value);
    if (typeof (value as { name?: unknown }).name !== 'string') return this.encodeRecord(value as Record<string, unknown>);
    const cached = this.hashes.get(value);
    if (cached !== undefined) return cached;
    const text = this.encodeRecord(value as Record<string, unknown>);
    // Hashed apart only with an object field (a header match { name, type, value } stays inline).
    if (!this.objectField) return text;
    const digest = `#${hash('sha256', text, 'base64url')}`;
    this.hashes.set(value, digest);
    return digest;
  }
}

/** A chunk of a long array (IrHasher.chunked): its elements, its digest, and whether it ended only because its array did. */
interface Chunk {
  elements: unknown[];
  digest: string;
  byEnd: boolean;
}

/** Arrays longer than this are hashed in chunks (IrHasher.chunked); shorter ones as JSON arrays. */
const CHUNKED_FROM = 1024;
/** The most elements in one chunk (about 32 on average: see chunkEnds). */
const MAX_CHUNK = 256;

/** Whether a chunk ends after an element of this encoding: about one in 32, by a hash (FNV-1a) of all of it. */
function chunkEnds(encoded: string): boolean {
  let h = 0x811c9dc5;
  for (let i = 0; i < encoded.length; i++) h = Math.imul(h ^ encoded.charCodeAt(i), 0x01000193);
  return (h >>> 27) === 0;
}

function sameRange(elements: unknown[], value: unknown[], start: number, end: number): boolean {
  if (elements.length !== end - start) return false;
  for (let i = start; i < end; i++) if (elements[i - start] !== value[i]) return false;
  return true;
}

/** What JSON.stringify escapes in a string: `"`, `\\`, control characters, surrogates (a lone one is escaped). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON of a value that is not an object (as JSON.stringify: `null` for what it leaves out). */
function primitive(value: unknown): string {
  // Most IR strings (names, hosts, paths) need no escaping: quoted directly, the same text.
  if (typeof value === 'string') return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return JSON.stringify(value) ?? 'null';
}

/** An object's shape: its keys as Object.keys gives them, sorted, and each sorted key's JSON text after `{` and after `,`. */
interface Shape {
  keys: string[];
  sorted: string[];
  first: string[];
  rest: string[];
}

/**
 * The shape of an object. IR objects come in a few shapes: each is remembered per list of keys
 * (looked up by its first key, then compared key by key: Object.keys gives the same interned
 * strings for the same names, so that is a few pointer comparisons). Bounded: at most 1000 first
 * keys, 16 shapes each; others are made every time.
 */
const shapes = new Map<string, Shape[]>();
function shapeOf(record: Record<string, unknown>): Shape {
  const keys = Object.keys(record);
  const bucket = keys.length === 0 ? '' : keys[0]!;
  let known = shapes.get(bucket);
  if (known) {
    for (let i = 0; i < known.length; i++) if (sameKeys(known[i]!.keys, keys)) return known[i]!;
  } else if (shapes.size < 1000) shapes.set(bucket, (known = []));
  const sorted = [...keys].sort();
  const shape: Shape = { keys, sorted, first: sorted.map((k) => `{${JSON.stringify(k)}:`), rest: sorted.map((k) => `,${JSON.stringify(k)}:`) };
  if (known && known.length < 16) known.push(shape);
  return shape;
}

function sameKeys(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The IR with key material replaced by references: for golden files, the admin API and `sluice translate`. */
export function redactIR(ir: IR): IR {
  return {
    ...ir,
    http: {
      ...ir.http,
      listeners: ir.http.listeners.map((l) => {
        const redacted = l.tls ? { ...l, tls: { ...l.tls, certificates: l.tls.certificates.map(redactKeyPair) } } : l;
        return redacted.scopes.some((s) => s.backendClientCertificate)
          ? { ...redacted, scopes: redacted.scopes.map((s) => (s.backendClientCertificate ? { ...s, backendClientCertificate: redactKeyPair(s.backendClientCertificate) } : s)) }
          : redacted;
      }),
      ...(ir.http.passthrough
        ? { passthrough: ir.http.passthrough.map((p) => ({ ...p, routes: p.routes.map((r) => (r.terminate ? { ...r, terminate: { ...r.terminate, certificates: r.terminate.certificates.map(redactKeyPair) } } : r)) })) }
        : {}),
      backends: Object.fromEntries(
        Object.entries(ir.http.backends).map(([name, b]) => [
          name,
          b.tls?.caCertificates ? { ...b, tls: { ...b.tls, caCertificates: b.tls.caCertificates.map((c) => ({ ...c, pem: `<redacted: ${c.source}>` })) } } : b,
        ]),
      ),
    },
    l4: ir.l4.policy?.http ? { ...ir.l4, policy: { ...ir.l4.policy, http: ir.l4.policy.http.map(redactHttpPolicy) } } : ir.l4,
  };
}

/** Header values that came from a Secret (CiliumNetworkPolicy headerMatches) are shown as references. */
function redactHttpPolicy(policy: HttpPolicy): HttpPolicy {
  const header = <T extends HttpPolicyHeader>(h: T): T => (h.secret ? { ...h, value: `<redacted: secret/${h.secret}>` } : h);
  return {
    ...policy,
    grants: policy.grants.map((g) => (g.http ? { ...g, http: g.http.map((r) => ({ ...r, headers: r.headers.map(header), headerActions: r.headerActions.map(header) })) } : g)),
  };
}

function redactKeyPair<T extends { secret: string; certPem: string; keyPem: string }>(c: T): T {
  return { ...c, certPem: `<redacted: ${c.secret}>`, keyPem: `<redacted: ${c.secret}>` };
}

/** JSON with object keys sorted, so equal content hashes equally. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v,
  );
}
