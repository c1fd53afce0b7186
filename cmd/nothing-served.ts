// `sluice run` and `sluice translate` on a folder with nothing to listen for — the wrong folder, an
// empty one, files that are not *.yaml, *.yml or *.json, or routes and Services without a Gateway —
// say so in one line, rather than starting quietly with no listener.
import type { Problem } from '../controller/problems.ts';
import { SNAPSHOT_FIELD_BY_KIND, type InputSnapshot } from '../controller/sources/objects.ts';

/** `watched`: `sluice run`, which reads the folder again when it changes (`sluice translate` reads it once). */
export function nothingServed(snapshot: InputSnapshot, dir: string, watched: boolean): Problem[] {
  if (snapshot.gateways.length > 0 || snapshot.ingresses.length > 0) return [];
  const read = Object.values(SNAPSHOT_FIELD_BY_KIND).reduce((n, field) => n + snapshot[field].length, 0);
  const what = read === 0 ? `no object was read from ${dir} (files ending in .yaml, .yml or .json, in sub-folders too)` : `no Gateway or Ingress among the ${read} objects read from ${dir}`;
  return [{ code: 'SLU_NOTHING_SERVED', message: `${what}: ${watched ? 'no listener is served until one is added (the folder is watched)' : 'no listener would be served'}` }];
}
