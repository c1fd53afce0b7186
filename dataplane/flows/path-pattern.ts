// `--http-path` flow filters (hubble observe's, Go regexps: RE2 syntax) matched with RE2JS, in time
// linear in the path whatever the pattern. The paths are clients'; a backtracking RegExp given a
// pattern such as ^/(a+)+$ spends seconds on one 30-character path, on the thread serving traffic.
import { RE2JS } from 're2js';
import type { PathMatcher } from '../../ir/flow.ts';

/** Compiled patterns: a follower's filter runs on every flow. Bounded; beyond, patterns compile per use. */
const COMPILED = new Map<string, RE2JS>();
const MAX_COMPILED = 100;

/** The compiled pattern; throws (with RE2's message) when it is not an RE2 regular expression. */
export function compilePathPattern(pattern: string): RE2JS {
  let re = COMPILED.get(pattern);
  if (re === undefined) {
    re = RE2JS.compile(pattern);
    if (COMPILED.size < MAX_COMPILED) COMPILED.set(pattern, re);
  }
  return re;
}

/** Whether `path` contains a match of `pattern` (unanchored, as Go's MatchString). */
export const pathPatternMatches: PathMatcher = (pattern, path) => compilePathPattern(pattern).matcher(path).find();
