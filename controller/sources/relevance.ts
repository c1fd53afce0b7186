// Which source changes can change the translation. Secrets, ConfigMaps and
// Pods are the kinds that churn most in a cluster and that Sluice mostly does
// not read: a change to one the last translation did not look up (or to any
// Pod while no network policy exists) is dropped before it costs a translation.
// Everything else always counts.
import type { TranslateResult } from '../translate/translate.ts';

export interface ChangedObject {
  kind: string;
  namespace?: string;
  name: string;
}

export type Dependencies = TranslateResult['dependsOn'];

/** `last` is what the previous translation depended on; null before the first (everything counts). */
export function isRelevantChange(change: ChangedObject | undefined, last: Dependencies | null): boolean {
  if (!change || !last) return true;
  if (change.kind === 'Secret' || change.kind === 'ConfigMap') return last.references.includes(`${change.kind}/${change.namespace}/${change.name}`);
  if (change.kind === 'Pod') return last.pods;
  return true;
}
