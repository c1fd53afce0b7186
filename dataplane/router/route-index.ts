// A virtual host's routes indexed by path, so a lookup costs about the same with 10 000 routes as
// with 10. The controller has sorted routes by Gateway API precedence and the answer must stay
// exactly "the first route in that order whose match holds": the index only narrows the
// candidates (exact paths by one Map probe, prefixes by one probe per path element), then walks
// the candidates in table order and returns the first that matches. Regular expressions cannot be
// indexed; they are candidates for every path.

import { matches, type CompiledMatch, type MatchableRequest } from './match.ts';

/**
 * Up to this many routes a plain walk is as cheap as the index: measured on prefix tables, the
 * index costs ~65 ns whatever the size, a walk ~14 ns per route passed (8 routes: ~55 ns to the
 * middle one, ~110 ns to the last).
 */
export const LINEAR_SCAN_LIMIT = 8;

const NO_POSITIONS = new Int32Array(0);

/**
 * Candidate lists gathered for one lookup, as (array, start, end) triples, and their cursors:
 * reused by every lookup (the router is synchronous, nothing interleaves), so a request allocates
 * nothing here. A key with one route has its position written to `scratchSingles`.
 */
let scratchArrays: Int32Array[] = new Array<Int32Array>(16).fill(NO_POSITIONS);
let scratchStarts: Int32Array = new Int32Array(16);
let scratchEnds: Int32Array = new Int32Array(16);
let scratchSingles: Int32Array = new Int32Array(16);

/**
 * A key's routes in a Map value: a position (≥ 0) when the key has one route — nearly every key —
 * else `-1 - offset` into the index's `shared` array, which holds the count and then the positions.
 * One small integer per key instead of a typed array per key: at 50 000 rules that was most of the
 * index's memory and of its build time.
 */
type Positions = number;

/**
 * A fresh index numbers its routes GAP/2, GAP/2 + GAP…: a route inserted later takes a free number
 * between its neighbours, so the routes after it keep theirs and their keys are not touched.
 */
const GAP = 4;

/** Rule i's position in a fresh index: free numbers before the first rule too (an edit may sort a rule first). */
function firstPosition(i: number): number {
  return i * GAP + GAP / 2;
}

/**
 * A derived index (see `derive`) keeps its base's maps and adds an overlay of the keys changed
 * since; past this many changed keys, or removed and added routes in one edit, it is built afresh.
 */
export const MAX_OVERLAY_KEYS = 256;

/** An overlay value for a key whose routes are all gone: `-1 - 0`, the count 0 at offset 0. */
const NONE: Positions = -1;

export class RouteIndex<T extends { match: CompiledMatch }> {
  readonly routes: readonly T[];
  private readonly linear: boolean;
  private readonly linearLimit: number;
  /**
   * The routes by position (what the maps hold): `slots[positionOf[i]]` is `routes[i]`; the
   * numbers in between are free (holes).
   */
  private readonly slots: T[];
  private readonly positionOf: Int32Array;
  /** The routes with an Exact path, by that path. */
  private readonly exact: Map<string, Positions>;
  /** The PathPrefix routes, by normalized prefix (`''` for `/`). */
  private readonly prefixes: Map<string, Positions>;
  /** Counts and positions (ascending) of the keys with several routes. */
  private readonly shared: Int32Array;
  /** `prefixLengths[n]` is 1 when some prefix is n characters long: other lengths are never probed. */
  private readonly prefixLengths: Uint8Array;
  /** Positions of regular-expression routes: candidates for any path. */
  private readonly unindexed: Int32Array;
  /**
   * Keys changed since the base maps were built (derived indexes): probed before them, their
   * several-route lists in `overlayShared` (offset 0 holds the count 0, for NONE). Empty when fresh.
   */
  private readonly overlayExact: Map<string, Positions>;
  private readonly overlayPrefixes: Map<string, Positions>;
  private readonly overlayShared: Int32Array;
  /** `overlayPrefixLengths[n]` is 1 when some overlay prefix is n characters long. */
  private readonly overlayPrefixLengths: Uint8Array;

  /** `linearLimit`: tables up to this size are walked without the index (tests pass -1 to force it). */
  constructor(routes: readonly T[], linearLimit = LINEAR_SCAN_LIMIT, derived?: Derived<T>) {
    this.routes = routes;
    this.linearLimit = linearLimit;
    this.linear = routes.length <= linearLimit;
    if (derived !== undefined) {
      this.slots = derived.slots;
      this.positionOf = derived.positionOf;
      this.exact = derived.base.exact;
      this.prefixes = derived.base.prefixes;
      this.shared = derived.base.shared;
      this.prefixLengths = derived.prefixLengths;
      this.unindexed = derived.unindexed;
      this.overlayExact = derived.overlayExact;
      this.overlayPrefixes = derived.overlayPrefixes;
      this.overlayShared = derived.overlayShared;
      this.overlayPrefixLengths = derived.overlayPrefixLengths;
      return;
    }
    this.exact = new Map();
    this.prefixes = new Map();
    this.overlayExact = EMPTY_OVERLAY;
    this.overlayPrefixes = EMPTY_OVERLAY;
    this.overlayShared = NO_POSITIONS;
    this.overlayPrefixLengths = NO_LENGTHS;
    this.positionOf = new Int32Array(this.linear ? 0 : routes.length);
    // Filled in ascending order, not `new Array(length)`: V8 makes a long one a dictionary.
    this.slots = [];
    for (let i = 0; i < this.positionOf.length; i++) {
      this.positionOf[i] = firstPosition(i);
      this.slots[firstPosition(i)] = routes[i];
    }
    const several = new Map<Map<string, Positions>, Map<string, number[]>>([
      [this.exact, new Map()],
      [this.prefixes, new Map()],
    ]);
    const unindexed: number[] = [];
    let longest = -1;
    if (!this.linear) {
      for (let i = 0; i < routes.length; i++) {
        const path = routes[i].match.path;
        switch (path.type) {
          case 'Exact':
            add(this.exact, several.get(this.exact)!, path.value, firstPosition(i));
            break;
          case 'PathPrefix':
            add(this.prefixes, several.get(this.prefixes)!, path.prefix, firstPosition(i));
            if (path.prefix.length > longest) longest = path.prefix.length;
            break;
          case 'RegularExpression':
            unindexed.push(firstPosition(i));
            break;
          default:
          // 'Never': no request can select it, so it is no candidate either.
        }
      }
    }
    let size = 0;
    for (const lists of several.values()) for (const positions of lists.values()) size += 1 + positions.length;
    this.shared = size === 0 ? NO_POSITIONS : new Int32Array(size);
    let offset = 0;
    for (const [map, lists] of several) {
      for (const [key, positions] of lists) {
        map.set(key, -1 - offset);
        this.shared[offset++] = positions.length;
        for (const position of positions) this.shared[offset++] = position;
      }
    }
    this.prefixLengths = new Uint8Array(longest + 1);
    for (const key of this.prefixes.keys()) this.prefixLengths[key.length] = 1;
    this.unindexed = unindexed.length === 0 ? NO_POSITIONS : Int32Array.from(unindexed);
  }

  /**
   * The index of `routes`, a new version of this index's routes: when only a few rules changed
   * place or match (the usual edit), the keys of the unchanged ones are not touched — they keep
   * their positions and the maps are shared with this index (which stays as it is: the live table
   * serves with it until the swap); otherwise built afresh. The same answers either way (property
   * test in test/dataplane/route-index.test.ts).
   *
   * `head` and `tail`: the caller knows the first `head` and the last `tail` routes to be the
   * previous ones (same objects, same places): only the routes between are compared and touched,
   * so an edit among 50 000 rules makes no pass of calls over them all.
   */
  derive(routes: readonly T[], head = 0, tail = 0): RouteIndex<T> {
    const previous = this.routes;
    if (this.linear || routes.length <= this.linearLimit) return new RouteIndex(routes, this.linearLimit);
    const shift = previous.length - routes.length;
    // Unchanged rules (same compiled match) are where they were, or one further or nearer for each
    // rule that moved past them: followed with a running offset, as compile.ts finds its entries.
    const kept = new Int32Array(routes.length).fill(-1);
    const keptPrevious = new Uint8Array(previous.length);
    for (let i = 0; i < head; i++) {
      kept[i] = i;
      keptPrevious[i] = 1;
    }
    for (let i = routes.length - tail; i < routes.length; i++) {
      kept[i] = i + shift;
      keptPrevious[i + shift] = 1;
    }
    // What was touched: the routes between, and kept neighbours renumbered with them.
    let first = head;
    let end = routes.length - tail;
    let previousFirst = head;
    let previousEnd = previous.length - tail;
    let offset = 0;
    let last = head - 1;
    let added = 0;
    for (let i = head; i < end; i++) {
      const match = routes[i].match;
      let at = i + offset;
      if (previous[at]?.match !== match) {
        if (previous[at + 1]?.match === match) at++;
        else if (previous[at - 1]?.match === match) at--;
        else at = -1;
      }
      if (at >= previousEnd) at = -1; // a tail rule's place is taken
      if (at > last) {
        offset = at - i;
        kept[i] = at;
        keptPrevious[at] = 1;
        last = at;
      } else if (++added > MAX_OVERLAY_KEYS) {
        return new RouteIndex(routes, this.linearLimit);
      }
    }
    if (previous.length - (routes.length - added) > MAX_OVERLAY_KEYS) return new RouteIndex(routes, this.linearLimit);

    // Positions: a kept rule keeps its own, an added run takes free numbers between its neighbours.
    // The head's and the tail's are the previous ones (copied whole).
    const positionOf = new Int32Array(routes.length);
    positionOf.set(this.positionOf.subarray(0, head));
    positionOf.set(this.positionOf.subarray(previous.length - tail), routes.length - tail);
    let lower = head > 0 ? positionOf[head - 1] : -1;
    for (let i = head; i < end; ) {
      if (kept[i] >= 0) {
        lower = positionOf[i] = this.positionOf[kept[i]];
        i++;
        continue;
      }
      let runEnd = i;
      while (runEnd < routes.length && kept[runEnd] < 0) runEnd++;
      // Too few free numbers (edits keep landing in one place): the kept neighbours are taken into
      // the run, alternately after and before it, renumbered like added rules until it has room
      // for twice its length.
      let upper = runEnd < routes.length ? this.positionOf[kept[runEnd]] : lower + 1 + (runEnd - i) * GAP;
      for (let after = true; upper - lower - 1 < 2 * (runEnd - i); after = !after) {
        if (after && runEnd < routes.length) {
          previousEnd = Math.max(previousEnd, kept[runEnd] + 1);
          keptPrevious[kept[runEnd]] = 0;
          kept[runEnd] = -1;
          while (++runEnd < routes.length && kept[runEnd] < 0);
          upper = runEnd < routes.length ? this.positionOf[kept[runEnd]] : lower + 1 + (runEnd - i) * GAP;
        } else if (!after && i > 0) {
          keptPrevious[kept[--i]] = 0;
          previousFirst = Math.min(previousFirst, kept[i]);
          kept[i] = -1;
          lower = i > 0 ? positionOf[i - 1] : -1;
        }
      }
      for (let k = i; k < runEnd; k++) positionOf[k] = lower + Math.floor(((k - i + 1) * (upper - lower)) / (runEnd - i + 1));
      first = Math.min(first, i);
      end = Math.max(end, runEnd);
      lower = positionOf[runEnd - 1];
      i = runEnd;
    }
    // The previous slots copied (one copy of a packed array; filling a new one with holes grew it
    // step by step, most of this function's time), the removed ones emptied first: an added rule
    // may take a removed one's number. Outside [first, end) every route is the previous one, in its place.
    const slots = this.slots.slice();
    for (let p = previousFirst; p < previousEnd; p++) if (keptPrevious[p] === 0) slots[this.positionOf[p]] = undefined as unknown as T;
    for (let i = first; i < end; i++) if (slots[positionOf[i]] !== routes[i]) slots[positionOf[i]] = routes[i];

    // The changed keys' lists: their previous positions without the removed, with the added.
    const changes = new Map<Map<string, Positions>, Map<string, { removed: Set<number>; added: number[] }>>([
      [this.exact, new Map()],
      [this.prefixes, new Map()],
    ]);
    let regexChanged = false;
    const change = (match: CompiledMatch, position: number, removed: boolean): void => {
      const path = match.path;
      if (path.type === 'RegularExpression') regexChanged = true;
      if (path.type !== 'Exact' && path.type !== 'PathPrefix') return;
      const byKey = changes.get(path.type === 'Exact' ? this.exact : this.prefixes)!;
      const key = path.type === 'Exact' ? path.value : path.prefix;
      let entry = byKey.get(key);
      if (entry === undefined) byKey.set(key, (entry = { removed: new Set(), added: [] }));
      if (removed) entry.removed.add(position);
      else entry.added.push(position);
    };
    for (let p = previousFirst; p < previousEnd; p++) if (keptPrevious[p] === 0) change(previous[p].match, this.positionOf[p], true);
    for (let i = first; i < end; i++) if (kept[i] < 0) change(routes[i].match, positionOf[i], false);

    const overlayExact = new Map(this.overlayExact);
    const overlayPrefixes = new Map(this.overlayPrefixes);
    if (overlayExact.size + overlayPrefixes.size + changes.get(this.exact)!.size + changes.get(this.prefixes)!.size > MAX_OVERLAY_KEYS) {
      return new RouteIndex(routes, this.linearLimit);
    }
    const lists: Array<{ overlay: Map<string, Positions>; key: string; positions: number[] }> = [];
    let prefixLengths = this.prefixLengths;
    let overlayPrefixLengths = this.overlayPrefixLengths;
    for (const [base, byKey] of changes) {
      const overlay = base === this.exact ? overlayExact : overlayPrefixes;
      for (const [key, { removed, added: addedPositions }] of byKey) {
        const positions = this.positionsOf(base, key).filter((position) => !removed.has(position));
        for (const position of addedPositions) positions.push(position);
        positions.sort((a, b) => a - b);
        if (positions.length === 1) overlay.set(key, positions[0]);
        else if (positions.length === 0) overlay.set(key, NONE);
        else lists.push({ overlay, key, positions });
        if (base === this.prefixes) {
          if (prefixLengths.length <= key.length) prefixLengths = grownBytes(prefixLengths, key.length);
          else if (prefixLengths[key.length] === 0 && prefixLengths === this.prefixLengths) prefixLengths = prefixLengths.slice();
          prefixLengths[key.length] = 1;
          if (overlayPrefixLengths.length <= key.length) overlayPrefixLengths = grownBytes(overlayPrefixLengths, key.length);
          else if (overlayPrefixLengths === this.overlayPrefixLengths) overlayPrefixLengths = overlayPrefixLengths.slice();
          overlayPrefixLengths[key.length] = 1;
        }
      }
    }
    // Lists of keys changed before and not now are copied from the previous overlay's array.
    for (const overlay of [overlayExact, overlayPrefixes]) {
      for (const [key, value] of overlay) {
        if (value < -1 && !lists.some((list) => list.overlay === overlay && list.key === key)) lists.push({ overlay, key, positions: Array.from(listAt(this.overlayShared, value)) });
      }
    }
    let size = 1;
    for (const list of lists) size += 1 + list.positions.length;
    const overlayShared = new Int32Array(size);
    let at = 1;
    for (const { overlay, key, positions } of lists) {
      overlay.set(key, -1 - at);
      overlayShared[at++] = positions.length;
      for (const position of positions) overlayShared[at++] = position;
    }
    let unindexed = this.unindexed;
    if (regexChanged) {
      const regexes: number[] = [];
      for (let i = 0; i < routes.length; i++) if (routes[i].match.path.type === 'RegularExpression') regexes.push(positionOf[i]);
      unindexed = regexes.length === 0 ? NO_POSITIONS : Int32Array.from(regexes);
    }
    return new RouteIndex(routes, this.linearLimit, {
      slots,
      positionOf,
      base: { exact: this.exact, prefixes: this.prefixes, shared: this.shared },
      prefixLengths,
      unindexed,
      overlayExact,
      overlayPrefixes,
      overlayShared,
      overlayPrefixLengths,
    });
  }

  /** Keys changed since this index's maps were built (0 for an index built afresh): for tests. */
  get changedKeys(): number {
    return this.overlayExact.size + this.overlayPrefixes.size;
  }

  /** The positions a key of `base` (this.exact or this.prefixes) has in this index. */
  private positionsOf(base: Map<string, Positions>, key: string): number[] {
    const overlay = base === this.exact ? this.overlayExact : this.overlayPrefixes;
    const inOverlay = overlay.get(key);
    const positions = inOverlay ?? base.get(key);
    if (positions === undefined) return [];
    if (positions >= 0) return [positions];
    return Array.from(listAt(inOverlay !== undefined ? this.overlayShared : this.shared, positions));
  }

  /** The first route, in table order, whose match holds; null when none does. */
  find(request: MatchableRequest): T | null {
    if (this.linear) {
      const routes = this.routes;
      for (let i = 0; i < routes.length; i++) if (matches(routes[i].match, request)) return routes[i];
      return null;
    }
    const routes = this.slots;
    const path = request.path;
    let count = 0;
    const overlaid = this.overlayExact.size > 0 ? this.overlayExact.get(path) : undefined;
    if (overlaid !== undefined) count = this.gather(overlaid, count, this.overlayShared);
    else {
      const exact = this.exact.get(path);
      if (exact !== undefined) count = this.gather(exact, count, this.shared);
    }
    if (this.unindexed.length > 0) count = gatherArray(this.unindexed, 0, this.unindexed.length, count);
    // A prefix p (no trailing slash) matches when the path is p or starts with p + '/': the
    // candidates are the path itself and the path cut at each '/'.
    const lengths = this.prefixLengths;
    const limit = Math.min(path.length, lengths.length - 1);
    for (let cut = path.indexOf('/'); cut >= 0 && cut <= limit; cut = path.indexOf('/', cut + 1)) {
      if (lengths[cut] === 1) count = this.gatherPrefix(cut === 0 ? '' : path.slice(0, cut), count);
    }
    if (path.length <= limit && lengths[path.length] === 1) count = this.gatherPrefix(path, count);
    if (count === 0) return null;
    if (count === 1) {
      const only = scratchArrays[0];
      for (let i = scratchStarts[0], end = scratchEnds[0]; i < end; i++) if (matches(routes[only[i]].match, request)) return routes[only[i]];
      return null;
    }
    return this.merge(count, request);
  }

  /** Adds a prefix's routes (the overlay's when it changed the prefix) to the candidate lists. */
  private gatherPrefix(prefix: string, count: number): number {
    if (this.overlayPrefixLengths[prefix.length] === 1) {
      const overlaid = this.overlayPrefixes.get(prefix);
      if (overlaid !== undefined) return this.gather(overlaid, count, this.overlayShared);
    }
    const positions = this.prefixes.get(prefix);
    return positions === undefined ? count : this.gather(positions, count, this.shared);
  }

  /** Adds a key's routes (several ones in `shared`) to the candidate lists; returns the new count. */
  private gather(positions: Positions, count: number, shared: Int32Array): number {
    if (positions >= 0) {
      if (scratchSingles.length <= count) scratchSingles = grow(scratchSingles, count);
      scratchSingles[count] = positions;
      return gatherArray(scratchSingles, count, count + 1, count);
    }
    const offset = -1 - positions;
    return shared[offset] === 0 ? count : gatherArray(shared, offset + 1, offset + 1 + shared[offset], count);
  }

  /** Walks several ascending candidate lists as one, in table order. */
  private merge(count: number, request: MatchableRequest): T | null {
    const arrays = scratchArrays;
    const cursors = scratchStarts;
    const ends = scratchEnds;
    const routes = this.slots;
    for (;;) {
      let best = -1;
      let bestList = -1;
      for (let l = 0; l < count; l++) {
        const cursor = cursors[l];
        if (cursor < ends[l] && (best < 0 || arrays[l][cursor] < best)) {
          best = arrays[l][cursor];
          bestList = l;
        }
      }
      if (best < 0) return null;
      cursors[bestList]++;
      if (matches(routes[best].match, request)) return routes[best];
    }
  }
}

/** What `derive` hands a derived index. */
interface Derived<T> {
  slots: T[];
  positionOf: Int32Array;
  base: { exact: Map<string, Positions>; prefixes: Map<string, Positions>; shared: Int32Array };
  prefixLengths: Uint8Array;
  unindexed: Int32Array;
  overlayExact: Map<string, Positions>;
  overlayPrefixes: Map<string, Positions>;
  overlayShared: Int32Array;
  overlayPrefixLengths: Uint8Array;
}

const EMPTY_OVERLAY: Map<string, Positions> = new Map();
const NO_LENGTHS = new Uint8Array(0);

/** A several-route list of `shared` (value `-1 - offset`). */
function listAt(shared: Int32Array, positions: Positions): Int32Array {
  const offset = -1 - positions;
  return shared.subarray(offset + 1, offset + 1 + shared[offset]);
}

function grownBytes(array: Uint8Array, index: number): Uint8Array {
  const grown = new Uint8Array(index + 1);
  grown.set(array);
  return grown;
}

function gatherArray(array: Int32Array, start: number, end: number, count: number): number {
  if (scratchStarts.length <= count) {
    scratchStarts = grow(scratchStarts, count);
    scratchEnds = grow(scratchEnds, count);
    scratchArrays = scratchArrays.concat(new Array<Int32Array>(scratchArrays.length).fill(NO_POSITIONS));
  }
  scratchArrays[count] = array;
  scratchStarts[count] = start;
  scratchEnds[count] = end;
  return count + 1;
}

function grow(array: Int32Array, needed: number): Int32Array {
  const grown = new Int32Array(Math.max(needed + 1, array.length * 2));
  grown.set(array);
  return grown;
}

/** A key's first route is its value; a second moves it to `several`, which is packed after the walk. */
function add(map: Map<string, Positions>, several: Map<string, number[]>, key: string, position: number): void {
  const known = map.get(key);
  if (known === undefined) {
    map.set(key, position);
    return;
  }
  const list = several.get(key);
  if (list === undefined) several.set(key, [known, position]);
  else list.push(position);
}
