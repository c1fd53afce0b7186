// The idle-time rehearsal of a Translator's edit path (controller/translate/rehearse.ts): after it,
// the translator's results are the ones translate() from scratch gives — for the snapshot it
// rehearsed on and for edits after it — over every golden translation case with HTTPRoutes; and it
// stops when told to.
import { describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { stableJson } from '../../ir/version.ts';
import type { InputSnapshot } from '../../controller/sources/objects.ts';
import { translate, Translator, type TranslateOptions } from '../../controller/translate/translate.ts';
import { REHEARSAL_STEPS, rehearseEdits } from '../../controller/translate/rehearse.ts';
import { loadInputs, TRANSLATE_CASES, translateOptionsOf } from '../golden/translate-case.ts';

const cases = readdirSync(TRANSLATE_CASES)
  .sort()
  .map((name) => {
    const dir = join(TRANSLATE_CASES, name);
    return { name, snapshot: loadInputs(dir).snapshot, options: translateOptionsOf(dir) };
  })
  .filter((c) => c.snapshot.httpRoutes.length > 0);

/** translate() from scratch, or its error: a snapshot translation refuses is refused by both. */
function outcome(run: () => unknown): string {
  try {
    return stableJson(run());
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

describe('rehearseEdits', () => {
  it('leaves the translator giving translate()’s results: the same snapshot again, a route removed, then restored', async () => {
    expect(cases.length).toBeGreaterThan(20);
    let rehearsed = 0;
    for (const { name, snapshot, options } of cases) {
      const translator = new Translator();
      const first = outcome(() => translator.translate(snapshot, options));
      if (first.startsWith('error')) continue;
      const steps = await rehearseEdits(translator, snapshot, options, () => false).done;
      expect({ name, steps }).toEqual({ name, steps: REHEARSAL_STEPS });
      rehearsed++;
      const removed: InputSnapshot = { ...snapshot, httpRoutes: snapshot.httpRoutes.slice(1) };
      for (const [step, next] of [snapshot, removed, snapshot].entries()) {
        const fresh = outcome(() => translate(next, options as TranslateOptions));
        const incremental = outcome(() => translator.translate(next, options));
        if (incremental !== fresh) expect({ name, step, incremental }).toEqual({ name, step, incremental: fresh });
      }
      // The rehearsal's own translations changed nothing the snapshot translates to.
      expect({ name, same: outcome(() => translator.translate(snapshot, options)) === first }).toEqual({ name, same: true });
    }
    expect(rehearsed).toBeGreaterThan(20);
  });

  it('runs no step once stop() says so, and none without HTTPRoutes', async () => {
    const { snapshot, options } = cases[0]!;
    const translator = new Translator();
    translator.translate(snapshot, options);
    let calls = 0;
    expect(await rehearseEdits(translator, snapshot, options, () => ++calls > 1).done).toBe(1);
    expect(await rehearseEdits(translator, snapshot, options, () => true).done).toBe(0);
    expect(await rehearseEdits(translator, { ...snapshot, httpRoutes: [] }, options, () => false).done).toBe(0);
  });
});
