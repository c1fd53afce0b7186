// What a Translator (translate.ts) keeps from one translation to the next, so that a change to one
// object costs about what that object costs, and so that the IR parts made from unchanged inputs
// are the same JS objects as in the previous IR (structural sharing: the dataplane skips
// recompiling what kept its identity, the IrHasher rehashes only what is new).
//
// The result stays a pure function of the inputs: every cached value is keyed on the input object
// (identity: inputs are never mutated once given to translate()) plus a fingerprint of everything
// else it read, and `share` only swaps a new part for an old one that is deep-equal to it. A fresh
// translate() uses no memo at all; test/controller/translate-incremental.test.ts checks that both
// give deep-equal results over random edit sequences.
import type { Backend, HttpIR, L4IR, VirtualHost } from '../../ir/types.ts';
import { IrHasher } from '../../ir/version.ts';
import type { BackendRef } from '../schema/kinds.ts';

/** One backend reference a route's compilation resolved (by key: what the resolution reads of it), and what it got (backend name or problem). */
export interface ResolutionRead {
  key: string;
  ref: BackendRef | undefined;
  fingerprint: string;
}

interface CompileEntry {
  value: { backends: Backend[] };
  reads: ResolutionRead[];
}

interface RouteEntry {
  compiled: CompileEntry | null;
  attachment: unknown;
  /** The problem of the route's fields its schema does not declare (attachment.ts), once computed. */
  undeclared: string | null | undefined;
}

/** What resolving a backendRef gives (backends.ts BackendResolution; declared here so that this module imports none of translate/). */
export type Resolution = { backend: Backend } | { problem: { reason: string; message: string } };

export type Resolve<R extends Resolution = Resolution> = (ref: BackendRef | undefined) => R;

/** A Resolve that says under which key it caches each reference's resolution for the translation. */
export interface KeyedResolve<R extends Resolution = Resolution> {
  key(ref: BackendRef | undefined): string;
  resolve(key: string, ref: BackendRef | undefined): R;
}

export class TranslateMemo {
  readonly hasher = new IrHasher();
  /** The previous translation's IR, which the next one shares unchanged parts with. */
  previous: { http: HttpIR; l4: L4IR } | null = null;
  /** The previous translation's virtual hosts by scope and hostname, with the placements each was sorted from; and each scope's sort of them. */
  virtualHosts = new Map<string, { hosts: Map<string, { host: VirtualHost }>; order: Sort<VirtualHost>; singleLabelWildcards: boolean }>();
  /** The previous translation's served placements (translate.ts assembleListeners), in order. */
  servedPlacements: readonly object[] | null = null;
  /** What translate.ts servedPlacements and collectRouteResults made last time, to patch where few routes changed. */
  served: unknown = null;
  collected: unknown = null;
  /** Per route object: its compilation, what its attachment is reused from, its undeclared fields (one WeakMap entry a route, not three). */
  private readonly routes = new WeakMap<object, RouteEntry>();
  /** The previous input and output of each sorted() by name. */
  private readonly sorts = new Map<string, { input: readonly object[]; output: object[] }>();
  /** Pure functions of one input object (its undeclared fields...): by function name, then object (no Map per object). */
  private readonly ofObject = new Map<string, WeakMap<object, unknown>>();
  /** This translation's fingerprint of each backendRef key compile() checked or resolved (begin() clears it). */
  private readonly fingerprintsNow = new Map<string, string>();
  /** This translation's backends of the keys in fingerprintsNow, by name (see compile()). */
  private readonly backendsNow = new Map<string, Backend>();
  /** token(): texts seen lately, and the next token (never given twice, even after the map is cleared). */
  private readonly tokens = new Map<string, number>();
  private nextToken = 0;

  /**
   * A small number for `text`: equal numbers only for equal texts, as long as this memo lives
   * (so keys compared across translations can be short). Forgets texts past a bound: a forgotten
   * text gets a new number, which only makes the next comparison miss.
   */
  token(text: string): number {
    let token = this.tokens.get(text);
    if (token === undefined) {
      if (this.tokens.size >= 4096) this.tokens.clear();
      this.tokens.set(text, (token = this.nextToken++));
    }
    return token;
  }

  /** A new translation begins: what compile() learnt of the previous one's references is forgotten. */
  begin(): void {
    this.fingerprintsNow.clear();
    this.backendsNow.clear();
    // perObject's names carry policy names and upgrade types, which come and go: bounded, and only
    // between translations (within one, a route's copies must keep their identity: translate.ts dedupeRoutes).
    if (this.ofObject.size > 1024) this.ofObject.clear();
  }

  /**
   * A route's compilation, reused while the route object is the same and every backendRef it
   * resolved resolves to the same backend name or the same problem: what `compile` reads besides
   * the route is through `resolve` only (its type gives it nothing else). Each key is resolved and
   * fingerprinted once per translation, whichever routes read it. The reused value is the previous
   * one as it is: its backends may be an earlier translation's objects (endpoints and TLS may have
   * changed without changing anything the routes hold); backend() gives this translation's.
   */
  compile<T extends { backends: Backend[] }, R extends Resolution>(route: object, resolver: KeyedResolve<R>, compile: (resolve: Resolve<R>) => T): T {
    const record = this.routes.get(route);
    const entry = record?.compiled;
    if (entry) {
      let valid = true;
      for (const read of entry.reads) {
        if (this.fingerprintNow(resolver, read.key, read.ref) !== read.fingerprint) {
          valid = false;
          break;
        }
      }
      if (valid) return entry.value as T;
    }
    // A route reads a few distinct keys (often one, read by every rule): an array scanned, no Map per route.
    const reads: ResolutionRead[] = [];
    const value = compile((ref) => {
      const key = resolver.key(ref);
      const resolved = resolver.resolve(key, ref);
      if (!reads.some((read) => read.key === key)) reads.push({ key, ref, fingerprint: this.fingerprintNow(resolver, key, ref) });
      return resolved;
    });
    // Kept as long as the route: an array of the exact size (push left room for 16).
    const kept = reads.slice();
    if (record) record.compiled = { value, reads: kept };
    else this.routes.set(route, { compiled: { value, reads: kept }, attachment: undefined, undeclared: undefined });
    return value;
  }

  /** What each route kind's loop (httproute.ts translateRoutes) left for the next translation, by kind. */
  readonly routeLoops = new Map<string, unknown>();

  /** The backendRef keys `route`'s compilation read (with what they resolved to then), once compiled. */
  routeReads(route: object): readonly ResolutionRead[] | undefined {
    return this.routes.get(route)?.compiled?.reads;
  }

  /** Whether `read`'s key resolves in this translation to what it did when read (resolved once a translation). */
  readStands<R extends Resolution>(resolver: KeyedResolve<R>, read: ResolutionRead): boolean {
    return this.fingerprintNow(resolver, read.key, read.ref) === read.fingerprint;
  }

  /** What a route's attachment is reused from (httproute.ts attachCompiled), if it was attached before. */
  attachment(route: object): unknown {
    return this.routes.get(route)?.attachment;
  }

  setAttachment(route: object, attachment: unknown): void {
    const record = this.routes.get(route);
    if (record) record.attachment = attachment;
    else this.routes.set(route, { compiled: null, attachment, undeclared: undefined });
  }

  /** `compute()` (the route's undeclared fields' problem: a function of the route object alone) once per route, kept in its record. */
  undeclared(route: object, compute: () => string | null): string | null {
    const record = this.routes.get(route);
    if (record?.undeclared !== undefined) return record.undeclared;
    const value = compute();
    if (record) record.undeclared = value;
    else this.routes.set(route, { compiled: null, attachment: undefined, undeclared: value });
    return value;
  }

  /**
   * This translation's backend of a name that a route's compilation (compile()) holds: the backend
   * its reference resolved to in this translation.
   */
  backend(name: string): Backend | undefined {
    return this.backendsNow.get(name);
  }

  /** What `key` resolves to in this translation, fingerprinted (once a translation: the resolver's resolution is too). */
  private fingerprintNow<R extends Resolution>(resolver: KeyedResolve<R>, key: string, ref: BackendRef | undefined): string {
    let fp = this.fingerprintsNow.get(key);
    if (fp === undefined) {
      const resolved = resolver.resolve(key, ref);
      this.fingerprintsNow.set(key, (fp = fingerprint(resolved)));
      if ('backend' in resolved) this.backendsNow.set(resolved.backend.name, resolved.backend);
    }
    return fp;
  }

  /**
   * `objects` sorted by `compare`, which must order distinct objects strictly (no ties: then the
   * result is the same however it is reached). From the previous sort of the same `name` when the
   * input differs from the previous input in a few positions (the objects that changed): those
   * leave the previous output and are inserted where they belong.
   */
  sorted<T extends object>(name: string, objects: readonly T[], compare: (a: T, b: T) => number): T[] {
    const sort = sortFrom(this.sorts.get(name) as Sort<T> | undefined, objects, compare);
    this.sorts.set(name, sort);
    return sort.output;
  }

  /**
   * `compute(obj)` once per object: only for functions of that object alone. (Given `obj`, a pass
   * over every route hands the same function each time, not a closure made per route.)
   */
  perObject<O extends object, T>(obj: O, name: string, compute: (obj: O) => T): T {
    let values = this.ofObject.get(name);
    if (!values) this.ofObject.set(name, (values = new WeakMap()));
    const known = values.get(obj);
    if (known !== undefined || values.has(obj)) return known as T;
    const value = compute(obj);
    values.set(obj, value);
    return value;
  }
}

/** A sort's input and output (memo.sorted). */
export interface Sort<T> {
  input: readonly T[];
  output: T[];
}

/** `objects` sorted by `compare` (strict: see TranslateMemo.sorted), from `before` where they differ in a few positions. */
export function sortFrom<T>(before: Sort<T> | undefined, objects: readonly T[], compare: (a: T, b: T) => number): Sort<T> {
  let output: T[] | null = null;
  if (before && before.input.length === objects.length) {
    const changed: number[] = [];
    for (let i = 0; i < objects.length && changed.length <= 64; i++) if (objects[i] !== before.input[i]) changed.push(i);
    if (changed.length === 0) return before;
    if (changed.length <= 64) output = resort(before.output, changed.map((i) => before.input[i]!), changed.map((i) => objects[i]!), compare);
  }
  return { input: objects, output: output ?? [...objects].sort(compare) };
}

/**
 * `sorted` without `removed`, with `added` inserted in order; null where an insertion ties with an
 * element (then sort in full: a stable sort's order among ties is the input's, not ours).
 */
export function resort<T>(sorted: readonly T[], removed: T[], added: T[], compare: (a: T, b: T) => number): T[] | null {
  let out: T[];
  if (removed.length <= 8) {
    // A few: found and cut natively (indexOf, splice), not a call per element of a long array.
    out = sorted.slice();
    for (const item of removed) {
      const at = out.indexOf(item);
      if (at >= 0) out.splice(at, 1);
    }
  } else {
    const gone = new Set(removed);
    out = sorted.filter((o) => !gone.has(o));
  }
  for (const item of added) {
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compare(out[mid]!, item) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo < out.length && compare(item, out[lo]!) >= 0) return null;
    out.splice(lo, 0, item);
  }
  return out;
}

/** What a route's compilation takes from a resolution: the backend's name, or the problem. */
function fingerprint(resolved: Resolution): string {
  return 'problem' in resolved ? `P${resolved.problem.reason}\n${resolved.problem.message}` : `B${resolved.backend.name}`;
}

/**
 * `next`, with every part deep-equal to the part of `prev` at the same place replaced by that part
 * (array elements that carry a `name` are matched by name, others by position). The result is
 * deep-equal to `next`; where nothing changed it is `prev` itself. Plain objects and arrays only:
 * anything else is taken from `next` as it is.
 */
export function share<T>(prev: unknown, next: T): T {
  if (prev === next || typeof next !== 'object' || next === null || typeof prev !== 'object' || prev === null) return next;
  if (Array.isArray(next)) {
    if (!Array.isArray(prev)) return next;
    // A long array's loop in a function of its own: share() recurses over every shape of the IR and
    // is often deoptimised, and a 50 000-rule host's loop then ran in the interpreter.
    return (prev.length > MAX_NAME_INDEX ? shareLongArray(prev, next) : shareArray(prev, next)) as T;
  }
  if (Array.isArray(prev) || !isPlain(next) || !isPlain(prev)) return next;
  const p = prev as Record<string, unknown>;
  const keys = Object.keys(next);
  let same = keys.length === Object.keys(p).length;
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const s = share(p[key], (next as Record<string, unknown>)[key]);
    if (s !== p[key] || !(key in p)) same = false;
    out[key] = s;
  }
  return (same ? prev : out) as T;
}

/**
 * share() of arrays. Named elements are matched by name where the one at the same position has
 * another (a route moved in its host's order); the names of `prev` are looked at only then, once.
 * The result is made at the first element replaced by a part of `prev`: until then `next`'s own
 * elements are the result's, so an array that only moved is `next` itself, not a copy.
 */
function shareArray(prev: readonly unknown[], next: unknown[]): unknown[] {
  let byName: Map<string, unknown> | null = null;
  let same = prev.length === next.length;
  let out: unknown[] | null = null;
  for (let i = 0; i < next.length; i++) {
    const n: unknown = next[i];
    let p: unknown = prev[i];
    if (n !== p && hasName(n) && !(hasName(p) && p.name === n.name)) {
      if (byName === null) {
        byName = new Map();
        for (const q of prev) if (hasName(q) && !byName.has(q.name)) byName.set(q.name, q);
      }
      p = byName.get(n.name);
    }
    const s = n === p || p === undefined ? n : share(p, n);
    if (s !== prev[i]) same = false;
    out = placed(out, next, i, s);
  }
  return same ? (prev as unknown[]) : (out ?? next);
}

/**
 * shareArray() of a long array (a host of 50 000 rules, whose routes are the translator's memoised
 * objects already): no index of names. Its elements that are `prev`'s own objects, moved by the few
 * inserted or removed before them, are found by following the shift (as route-index.ts derive
 * does): array slots compared, not the objects read (scattered loads: where every rule after an
 * edited one had its name read twice, most of share()'s time at 10 000 routes). An element matched
 * neither way is shared with the one at its position when that one has its name.
 */
function shareLongArray(prev: readonly unknown[], next: unknown[]): unknown[] {
  let same = prev.length === next.length;
  let out: unknown[] | null = null;
  let shift = 0;
  for (let i = 0; i < next.length; i++) {
    const n: unknown = next[i];
    let p: unknown = prev[i];
    if (n !== p) {
      const at = i + shift;
      const step = prev[at] === n ? 0 : prev[at + 1] === n ? 1 : prev[at - 1] === n ? -1 : null;
      if (step !== null) {
        shift += step;
        p = n;
      } else if (hasName(n) && !(hasName(p) && p.name === n.name)) p = undefined;
    }
    const s = n === p || p === undefined ? n : share(p, n);
    if (s !== prev[i]) same = false;
    out = placed(out, next, i, s);
  }
  return same ? (prev as unknown[]) : (out ?? next);
}

/** `out` with `s` at `i`: made from `next` (its elements before `i`) at the first `s` that is not `next[i]`. */
function placed(out: unknown[] | null, next: unknown[], i: number, s: unknown): unknown[] | null {
  if (out !== null) out[i] = s;
  else if (s !== next[i]) {
    out = next.slice(0, i);
    out[i] = s;
  }
  return out;
}

/** Longest array whose elements share() matches by name (see there). */
const MAX_NAME_INDEX = 1024;

function hasName(v: unknown): v is { name: string } {
  return typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string';
}

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
