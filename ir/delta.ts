// An IR version as a delta against the previous one, for receivers that keep the previous one: the
// worker threads of --workers (cmd/workers.ts). A structured clone (postMessage) makes new objects of
// everything, so a worker's RouteTableCompiler would recompile 50 000 rules for a one-rule change and
// the primary would serialise them all. Instead the sender numbers the IR's parts — listeners,
// scopes, virtual hosts, routes, backends, rate-limit policies, stream listeners, the L4 part — and
// sends a part the receivers already hold as its number; the receiver puts back the very object it
// decoded before, so identity (and with it the compiler's reuse) survives the thread boundary.
// A part is new or changed when it is not the same object as before (the controller keeps the
// objects of unchanged inputs), so the delta costs what the change costs.
//
// The sender refers only to parts every receiver holds (or defined earlier in the same message):
// those of the last version and, between prunes, parts of earlier ones too, so that a version costs
// a walk of what changed, not of the whole IR. Every so often (`prune`, once enough new parts were
// sent) both sides forget what the version does not contain. A full encoding (`full`) refers to
// nothing: for a new or restarted receiver, and to resynchronise one that failed to decode; the
// sender then holds only that version's parts, which the others hold too.

import type { HttpIR, L4IR } from './types.ts';

/** A part: its number alone when the receiver holds it, else its number and its content. */
type Part = number | { id: number; value: unknown };

export interface EncodedIR {
  /** Refers to no part of an earlier version: the receiver starts afresh. */
  full: boolean;
  /** After this version, hold only its parts. */
  prune: boolean;
  http: unknown;
  l4: Part | null;
}

/** The containers whose elements are parts, by field, top down; every other field is copied as it is. */
const NESTED: Record<string, readonly string[]> = {
  http: ['listeners', 'passthrough', 'tcp', 'udp'],
  listeners: ['scopes'],
  scopes: ['virtualHosts'],
  virtualHosts: ['routes'],
};
/** Record fields of HttpIR whose values are parts. */
const RECORDS = ['backends', 'rateLimits'] as const;

type Obj = Record<string, unknown>;

/** New parts sent before the held ones are pruned at the least. */
const PRUNE_AFTER = 4096;

export class IrDeltaEncoder {
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  /** What every receiver holds: the parts of the last version, and of earlier ones since the last prune. */
  private held = new Set<number>();
  private sentSincePrune = 0;
  private readonly pruneAfter: number;

  /** `pruneAfter`: new parts sent before held ones are pruned at the least (tests make it small). */
  constructor(options: { pruneAfter?: number } = {}) {
    this.pruneAfter = options.pruneAfter ?? PRUNE_AFTER;
  }

  /** The version as a delta against what the receivers hold (or full); it becomes the last one. */
  encode(http: HttpIR, l4: L4IR | undefined, full = false): EncodedIR {
    const refer = full ? new Set<number>() : this.held;
    // Old parts held cost memory on both sides: pruned once as many new parts went out as a quarter
    // of what is held (and at least PRUNE_AFTER), so pruning walks cost little per version.
    const prune = !full && this.sentSincePrune > Math.max(this.pruneAfter, this.held.size / 4);
    const sent = new Set<number>();
    const part = (value: object, encodeValue: (value: Obj) => unknown): Part => {
      let id = this.ids.get(value);
      if (id !== undefined && (refer.has(id) || sent.has(id))) return id;
      id ??= this.nextId++;
      this.ids.set(value, id);
      sent.add(id);
      return { id, value: encodeValue(value as Obj) };
    };
    const container = (field: string, value: Obj): Obj => {
      const nested = NESTED[field];
      if (nested === undefined) return value;
      const out: Obj = { ...value };
      for (const child of nested) {
        const items = value[child];
        if (Array.isArray(items)) out[child] = items.map((item: object) => part(item, (v) => container(child, v)));
      }
      return out;
    };
    const out = container('http', http as unknown as Obj);
    for (const field of RECORDS) {
      const record = http[field];
      if (record === undefined) continue;
      const encoded: Record<string, Part> = {};
      for (const [name, value] of Object.entries(record)) encoded[name] = part(value, (v) => v);
      out[field] = encoded;
    }
    const encoded: EncodedIR = { full, prune, http: out, l4: l4 === undefined ? null : part(l4, (v) => v) };
    if (full || prune) {
      this.held = this.partIds(http, l4);
      this.sentSincePrune = 0;
    } else {
      for (const id of sent) this.held.add(id);
      this.sentSincePrune += sent.size;
    }
    return encoded;
  }

  /** The numbers of every part of a version (each was numbered when encoded). */
  private partIds(http: HttpIR, l4: L4IR | undefined): Set<number> {
    const ids = new Set<number>();
    forEachPart(http, l4, (value) => {
      const id = this.ids.get(value);
      if (id !== undefined) ids.add(id);
    });
    return ids;
  }
}

export class IrDeltaDecoder {
  private byId = new Map<number, object>();
  private readonly idOf = new WeakMap<object, number>();

  /** Throws when the delta refers to a part this decoder does not hold (it needs a full encoding). */
  decode(encoded: EncodedIR): { http: HttpIR; l4: L4IR | undefined } {
    const held = encoded.full ? new Map<number, object>() : this.byId;
    const defined = new Map<number, object>();
    const part = (item: Part, decodeValue: (value: Obj) => object): object => {
      if (typeof item === 'number') {
        const value = defined.get(item) ?? held.get(item);
        if (value === undefined) throw new Error(`IR delta refers to part ${item}, which this receiver does not hold`);
        return value;
      }
      // A peer's message: a part is its number or {id, value: object}, nothing else (never half a version).
      if (typeof item !== 'object' || item === null || !Number.isInteger(item.id) || typeof item.value !== 'object' || item.value === null) {
        throw new Error(`IR delta has a malformed part ${JSON.stringify(item)?.slice(0, 100)}`);
      }
      const value = decodeValue(item.value as Obj);
      defined.set(item.id, value);
      this.idOf.set(value, item.id);
      return value;
    };
    const container = (field: string, value: Obj): Obj => {
      const nested = NESTED[field];
      if (nested === undefined) return value;
      for (const child of nested) {
        const items = value[child];
        if (Array.isArray(items)) value[child] = items.map((item: Part) => part(item, (v) => container(child, v)));
      }
      return value;
    };
    if (typeof encoded !== 'object' || encoded === null || typeof encoded.http !== 'object' || encoded.http === null) throw new Error('IR delta has no http part');
    const http = container('http', encoded.http as Obj);
    for (const field of RECORDS) {
      const record = http[field] as Record<string, Part> | undefined;
      if (record === undefined) continue;
      const decoded: Record<string, object> = {};
      for (const [name, item] of Object.entries(record)) decoded[name] = part(item, (v) => v);
      http[field] = decoded;
    }
    const l4 = encoded.l4 === null ? undefined : (part(encoded.l4, (v) => v) as unknown as L4IR);
    const ir = { http: http as unknown as HttpIR, l4 };
    if (encoded.full || encoded.prune) {
      // Exactly this version's parts, as the sender does.
      const next = new Map<number, object>();
      forEachPart(ir.http, ir.l4, (value) => {
        const id = this.idOf.get(value);
        if (id !== undefined) next.set(id, value);
      });
      this.byId = next;
    } else {
      for (const [id, value] of defined) this.byId.set(id, value);
    }
    return ir;
  }
}

/** Every part of a version, containers before their elements. */
function forEachPart(http: HttpIR, l4: L4IR | undefined, visit: (value: object) => void): void {
  const walk = (field: string, value: Obj): void => {
    const nested = NESTED[field];
    if (nested === undefined) return;
    for (const child of nested) {
      const items = value[child];
      if (!Array.isArray(items)) continue;
      for (const item of items as Obj[]) {
        visit(item);
        walk(child, item);
      }
    }
  };
  walk('http', http as unknown as Obj);
  for (const field of RECORDS) for (const value of Object.values(http[field] ?? {})) visit(value);
  if (l4 !== undefined) visit(l4);
}
