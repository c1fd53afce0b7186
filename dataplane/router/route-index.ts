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

export class RouteIndex<T extends { match: CompiledMatch }> {
  readonly routes: readonly T[];
  private readonly linear: boolean;
  /** The routes with an Exact path, by that path. */
  private readonly exact = new Map<string, Positions>();
  /** The PathPrefix routes, by normalized prefix (`''` for `/`). */
  private readonly prefixes = new Map<string, Positions>();
  /** Counts and positions (ascending) of the keys with several routes. */
  private readonly shared: Int32Array;
  /** `prefixLengths[n]` is 1 when some prefix is n characters long: other lengths are never probed. */
  private readonly prefixLengths: Uint8Array;
  /** Positions of regular-expression routes: candidates for any path. */
  private readonly unindexed: Int32Array;

  /** `linearLimit`: tables up to this size are walked without the index (tests pass -1 to force it). */
  constructor(routes: readonly T[], linearLimit = LINEAR_SCAN_LIMIT) {
    this.routes = routes;
    this.linear = routes.length <= linearLimit;
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
            add(this.exact, several.get(this.exact)!, path.value, i);
            break;
          case 'PathPrefix':
            add(this.prefixes, several.get(this.prefixes)!, path.prefix, i);
            if (path.prefix.length > longest) longest = path.prefix.length;
            break;
          case 'RegularExpression':
            unindexed.push(i);
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

  /** The first route, in table order, whose match holds; null when none does. */
  find(request: MatchableRequest): T | null {
    const routes = this.routes;
    if (this.linear) {
      for (let i = 0; i < routes.length; i++) if (matches(routes[i].match, request)) return routes[i];
      return null;
    }
    const path = request.path;
    let count = 0;
    const exact = this.exact.get(path);
    if (exact !== undefined) count = this.gather(exact, count);
    if (this.unindexed.length > 0) count = gatherArray(this.unindexed, 0, this.unindexed.length, count);
    // A prefix p (no trailing slash) matches when the path is p or starts with p + '/': the
    // candidates are the path itself and the path cut at each '/'.
    const lengths = this.prefixLengths;
    const limit = Math.min(path.length, lengths.length - 1);
    for (let cut = path.indexOf('/'); cut >= 0 && cut <= limit; cut = path.indexOf('/', cut + 1)) {
      if (lengths[cut] === 1) {
        const positions = this.prefixes.get(cut === 0 ? '' : path.slice(0, cut));
        if (positions !== undefined) count = this.gather(positions, count);
      }
    }
    if (path.length <= limit && lengths[path.length] === 1) {
      const positions = this.prefixes.get(path);
      if (positions !== undefined) count = this.gather(positions, count);
    }
    if (count === 0) return null;
    if (count === 1) {
      const only = scratchArrays[0];
      for (let i = scratchStarts[0], end = scratchEnds[0]; i < end; i++) if (matches(routes[only[i]].match, request)) return routes[only[i]];
      return null;
    }
    return this.merge(count, request);
  }

  /** Adds a key's routes to the candidate lists; returns the new count. */
  private gather(positions: Positions, count: number): number {
    if (positions >= 0) {
      if (scratchSingles.length <= count) scratchSingles = grow(scratchSingles, count);
      scratchSingles[count] = positions;
      return gatherArray(scratchSingles, count, count + 1, count);
    }
    const offset = -1 - positions;
    return gatherArray(this.shared, offset + 1, offset + 1 + this.shared[offset], count);
  }

  /** Walks several ascending candidate lists as one, in table order. */
  private merge(count: number, request: MatchableRequest): T | null {
    const arrays = scratchArrays;
    const cursors = scratchStarts;
    const ends = scratchEnds;
    const routes = this.routes;
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
