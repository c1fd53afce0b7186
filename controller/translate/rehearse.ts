// An idle-time rehearsal of a Translator's edit path (README "Route scale"). A process's first
// edits after start run code its start (one translation from scratch) never ran — the take-overs,
// the memo's re-sorts, share() — unoptimised: at 10 000 HTTPRoutes the translator's first edits
// cost 3-6x its later ones (in-process: hosts ~30-45 ms against ~6-10, paths ~40-65 against
// ~12-15). A rehearsal step is one such edit and its undo: one HTTPRoute replaced by an equal new
// object, then the snapshot as it was. Nothing of it is served or shown: the results are dropped,
// and what the translator keeps is what any edit followed by its undo leaves, whose later
// translations equal translate()'s from scratch (the incremental property tests). Each step is
// one macrotask apart, so a real change waits at most for the step running, and none starts once
// `stop()` says so.
import type { HTTPRouteObject, InputSnapshot } from '../sources/objects.ts';
import type { TranslateOptions, Translator } from './translate.ts';

/** Rehearsal steps (an edit and its undo each); measured: 3 bring the first edit near a later one's cost. */
export const REHEARSAL_STEPS = 3;

/** Appended to the rehearsed route's first path match: a path no route of a user's is likely to have. */
const MOVED_SUFFIX = '-sluice-rehearsal';

/**
 * A copy of `route` whose first path match is longer: as most edits do, it moves the rule in its
 * host's precedence order, so the code that follows a host's rules shifting by one (share(), the
 * re-sort, the version hash of a long host) runs too; an equal copy left every rule in place and
 * that code cold (at 10 000 HTTPRoutes in one host: ~20 ms more on the first edit, in-process).
 * An equal copy when the route has no path match.
 */
function movedCopy(route: HTTPRouteObject): HTTPRouteObject {
  const copy = structuredClone(route);
  for (const rule of copy.spec.rules ?? []) {
    for (const match of rule.matches ?? []) {
      if (typeof match.path?.value === 'string') {
        match.path.value += MOVED_SUFFIX;
        return copy;
      }
    }
  }
  return copy;
}

export interface Rehearsal {
  /** Resolves with the steps run (fewer when stopped). */
  done: Promise<number>;
}

/**
 * Rehearses `steps` edits of `snapshot` (the translator's last input, translated with `options`)
 * on `translator`, one step per macrotask while `stop()` is false. Nothing to rehearse without HTTPRoutes.
 */
export function rehearseEdits(translator: Translator, snapshot: InputSnapshot, options: TranslateOptions, stop: () => boolean, steps = REHEARSAL_STEPS): Rehearsal {
  const routes = snapshot.httpRoutes;
  const done = new Promise<number>((resolve, reject) => {
    let step = 0;
    const next = (): void => {
      if (step >= steps || routes.length === 0 || stop()) return resolve(step);
      // Routes spread over the list (a prime stride), as edits are.
      const r = (step * 7919) % routes.length;
      try {
        const copy = movedCopy(routes[r]!);
        translator.translate({ ...snapshot, httpRoutes: routes.map((route, i) => (i === r ? copy : route)) }, options);
        translator.translate(snapshot, options);
      } catch (err) {
        return reject(err);
      }
      step++;
      setImmediate(next);
    };
    setImmediate(next);
  });
  return { done };
}
