// The IR version is a hash of its content: equal configuration, equal version.
import { hash } from 'node:crypto';
import type { HttpIR, HttpPolicy, HttpPolicyHeader, IR, L4IR } from './types.ts';

/** The version of an IR, hashed from scratch (a translator keeps an IrHasher to reuse the hashes of unchanged parts). */
export function irVersion(http: HttpIR, l4: L4IR): string {
  return new IrHasher().version(http, l4);
}

/**
 * Hashes IR content as JSON with sorted keys (undefined fields absent, as in JSON), in which a named
 * entity (an object with a string `name` and at least one object-valued field: a route, backend,
 * virtual host, scope, listener, l4 service...) may stand as the digest of its own encoding, cached
 * by identity, and a long array as the digests of its chunks, cached by the identity of their
 * elements: a new IR that shares unchanged parts with the previous one (structural sharing, see
 * controller/translate/memo.ts) is hashed in time proportional to what changed. Where a digest
 * stands is decided by content alone (an entity's place and the length of its encoding, see
 * element() and field()), so the value depends on content only: equal IRs, equal versions, whether
 * hashed from scratch or not. Sound only because IR objects are never mutated once a translation
 * returned them; an instance lives as long as the translator that owns it.
 */
export class IrHasher {
  /** Digests of named entities hashed apart wherever they stand (their encoding has digestFrom characters or more). */
  private readonly hashes = new WeakMap<object, string>();
  /** Digests of shorter ones, hashed apart only as a field's value (an array element of the same content stays inline). */
  private readonly fieldHashes = new WeakMap<object, string>();
  /** Chunks of long arrays (see chunked()) by their first element: the elements, by identity, and the chunk's digest. */
  private readonly chunks = new WeakMap<object, Chunk[]>();
  private readonly digestFrom: number;
  private readonly chunkedFrom: number;
  /** Set by record(): whether the object it encoded last has an object-valued field (see element()). */
  private objectField = false;

  /** `limits`: for tests only (small ones take small values through every path); other limits give other versions. */
  constructor(limits: { digestFrom?: number; chunkedFrom?: number } = {}) {
    this.digestFrom = limits.digestFrom ?? DIGEST_FROM;
    this.chunkedFrom = limits.chunkedFrom ?? CHUNKED_FROM;
  }

  version(http: HttpIR, l4: L4IR): string {
    return hash('sha256', this.record({ http, l4 }, shapeOf({ http, l4 })), 'hex').slice(0, 16);
  }

  private array(value: unknown[]): string {
    if (value.length > this.chunkedFrom) return this.chunked(value);
    if (value.length === 0) return '[]';
    let out = `[${this.element(value[0])}`;
    for (let i = 1; i < value.length; i++) out += `,${this.element(value[i])}`;
    return `${out}]`;
  }

  /** An object as JSON with its keys sorted; each key's text (`{"key":`, `,"key":`) made once per shape. */
  private record(record: Record<string, unknown>, shape: Shape): string {
    const { sorted, first, rest } = shape;
    let out = '';
    let objectField = false;
    for (let i = 0; i < sorted.length; i++) {
      const v = record[sorted[i]!];
      if (v === undefined || typeof v === 'function') continue;
      const key = out === '' ? first[i]! : rest[i]!;
      if (typeof v === 'object' && v !== null) {
        objectField = true;
        out += key + this.field(v);
      } else out += key + primitive(v);
    }
    this.objectField = objectField;
    return out === '' ? '{}' : `${out}}`;
  }

  /**
   * An object field's value: a named entity as its digest, whatever its length. A record's entries
   * (10 000 backends by name) are not chunked as an array's are: their digests, cached, spare
   * encoding them all again at each version.
   */
  private field(value: object): string {
    if (Array.isArray(value)) return this.array(value);
    const record = value as Record<string, unknown>;
    const shape = shapeOf(record);
    if (typeof record.name !== 'string') return this.record(record, shape);
    const cached = shape.digested ? (this.hashes.get(value) ?? this.fieldHashes.get(value)) : undefined;
    if (cached !== undefined) return cached;
    const text = this.record(record, shape);
    return this.objectField ? this.digest(value, shape, text) : text;
  }

  /**
   * An array element: a named entity as its digest only when its encoding has digestFrom
   * characters or more (a virtual host, a listener: encoding it again costs more than a digest
   * kept). A short one (a route of a few rules) stays inline: its array is either short (at most
   * chunkedFrom elements of under digestFrom characters to encode again) or chunked, and a digest
   * and cache entry for each of 50 000 routes cost more than encoding the few that a change touches.
   */
  private element(value: unknown): string {
    if (typeof value !== 'object' || value === null) return primitive(value);
    if (Array.isArray(value)) return this.array(value);
    const record = value as Record<string, unknown>;
    const shape = shapeOf(record);
    if (typeof record.name !== 'string') return this.record(record, shape);
    // Only shapes that were hashed apart before are looked up (a route's, a header match's never are).
    const cached = shape.digested ? this.hashes.get(value) : undefined;
    if (cached !== undefined) return cached;
    const text = this.record(record, shape);
    return this.objectField && text.length >= this.digestFrom ? this.digest(value, shape, text) : text;
  }

  /** A named entity as `#<its hash>` (unquoted: no string value reads the same), remembered where it counts (see hashes). */
  private digest(value: object, shape: Shape, text: string): string {
    const digest = `#${hash('sha256', text, 'base64url')}`;
    (text.length >= this.digestFrom ? this.hashes : this.fieldHashes).set(value, digest);
    shape.digested = true;
    return digest;
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
        const text = this.element(value[end]);
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
}

/** A chunk of a long array (IrHasher.chunked): its elements, its digest, and whether it ended only because its array did. */
interface Chunk {
  elements: unknown[];
  digest: string;
  byEnd: boolean;
}

/** Arrays longer than this are hashed in chunks (IrHasher.chunked); shorter ones as JSON arrays. */
const CHUNKED_FROM = 64;
/** A named array element whose encoding has at least this many characters is hashed apart (IrHasher.element). */
const DIGEST_FROM = 1024;
/** The most elements in one chunk (about 32 on average: see chunkEnds). */
const MAX_CHUNK = 256;

/**
 * Whether a chunk ends after an element of this encoding: about one in 32, by a hash (FNV-1a) of
 * its last CHUNK_TAIL characters (an element's end holds what tells it from its neighbours: its
 * name, its source; hashing all of 50 000 routes' text cost more than the rest of chunking).
 */
function chunkEnds(encoded: string): boolean {
  let h = 0x811c9dc5;
  for (let i = Math.max(0, encoded.length - CHUNK_TAIL); i < encoded.length; i++) h = Math.imul(h ^ encoded.charCodeAt(i), 0x01000193);
  return (h >>> 27) === 0;
}

const CHUNK_TAIL = 64;

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
  /** Whether an object of this shape was hashed apart (IrHasher.digest): only then is the cache looked up. */
  digested: boolean;
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
  const shape: Shape = { keys, sorted, first: sorted.map((k) => `{${JSON.stringify(k)}:`), rest: sorted.map((k) => `,${JSON.stringify(k)}:`), digested: false };
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
