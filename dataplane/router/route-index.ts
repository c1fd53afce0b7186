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
 * Candidate lists gathered for one lookup and their cursors: reused by every lookup (the router
 * is synchronous, nothing interleaves), so a request allocates nothing here.
 */
const scratchLists: Int32Array[] = new Array<Int32Array>(16).fill(NO_POSITIONS);
let scratchCursors = new Int32Array(16);

export class RouteIndex<T extends { match: CompiledMatch }> {
  readonly routes: readonly T[];
  private readonly linear: boolean;
  /** Positions (ascending) of the routes with an Exact path, by that path. */
  private readonly exact = new Map<string, Int32Array>();
  /** Positions (ascending) of the PathPrefix routes, by normalized prefix (`''` for `/`). */
  private readonly prefixes = new Map<string, Int32Array>();
  /** `prefixLengths[n]` is 1 when some prefix is n characters long: other lengths are never probed. */
  private readonly prefixLengths: Uint8Array;
  /** Positions of regular-expression routes: candidates for any path. */
  private readonly unindexed: Int32Array;

  /** `linearLimit`: tables up to this size are walked without the index (tests pass -1 to force it). */
  constructor(routes: readonly T[], linearLimit = LINEAR_SCAN_LIMIT) {
    this.routes = routes;
    this.linear = routes.length <= linearLimit;
    const exact = new Map<string, number[]>();
    const prefixes = new Map<string, number[]>();
    const unindexed: number[] = [];
    let longest = -1;
    if (!this.linear) {
      for (let i = 0; i < routes.length; i++) {
        const path = routes[i].match.path;
        switch (path.type) {
          case 'Exact':
            push(exact, path.value, i);
            break;
          case 'PathPrefix':
            push(prefixes, path.prefix, i);
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
    for (const [key, positions] of exact) this.exact.set(key, Int32Array.from(positions));
    for (const [key, positions] of prefixes) this.prefixes.set(key, Int32Array.from(positions));
    this.prefixLengths = new Uint8Array(longest + 1);
    for (const key of prefixes.keys()) this.prefixLengths[key.length] = 1;
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
    const lists = scratchLists;
    const exact = this.exact.get(path);
    if (exact !== undefined) lists[count++] = exact;
    if (this.unindexed.length > 0) lists[count++] = this.unindexed;
    // A prefix p (no trailing slash) matches when the path is p or starts with p + '/': the
    // candidates are the path itself and the path cut at each '/'.
    const lengths = this.prefixLengths;
    const limit = Math.min(path.length, lengths.length - 1);
    for (let cut = path.indexOf('/'); cut >= 0 && cut <= limit; cut = path.indexOf('/', cut + 1)) {
      if (lengths[cut] === 1) {
        const positions = this.prefixes.get(cut === 0 ? '' : path.slice(0, cut));
        if (positions !== undefined) lists[count++] = positions;
      }
    }
    if (path.length <= limit && lengths[path.length] === 1) {
      const positions = this.prefixes.get(path);
      if (positions !== undefined) lists[count++] = positions;
    }
    if (count === 0) return null;
    if (count === 1) {
      const only = lists[0];
      for (let i = 0; i < only.length; i++) if (matches(routes[only[i]].match, request)) return routes[only[i]];
      return null;
    }
    return this.merge(lists, count, request);
  }

  /** Walks several ascending candidate lists as one, in table order. */
  private merge(lists: Int32Array[], count: number, request: MatchableRequest): T | null {
    if (scratchCursors.length < count) scratchCursors = new Int32Array(count * 2);
    const cursors = scratchCursors;
    cursors.fill(0, 0, count);
    const routes = this.routes;
    for (;;) {
      let best = -1;
      let bestList = -1;
      for (let l = 0; l < count; l++) {
        const cursor = cursors[l];
        if (cursor < lists[l].length && (best < 0 || lists[l][cursor] < best)) {
          best = lists[l][cursor];
          bestList = l;
        }
      }
      if (best < 0) return null;
      cursors[bestList]++;
      if (matches(routes[best].match, request)) return routes[best];
    }
  }
}

function push(map: Map<string, number[]>, key: string, position: number): void {
  const positions = map.get(key);
  if (positions === undefined) map.set(key, [position]);
  else positions.push(position);
}
