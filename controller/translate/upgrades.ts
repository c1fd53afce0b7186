// Which HTTP/1.1 upgrades a route tunnels: the annotation `sluice.dev/upgrade-types` on an
// HTTPRoute or Ingress, e.g. "websocket, spdy/3.1" (or "" for none). Gateway API has no field for
// it; Envoy Gateway says it per route in BackendTrafficPolicy `httpUpgrade`, nginx per location
// by copying Upgrade/Connection. Without the annotation a route tunnels WebSocket only
// (ir DEFAULT_UPGRADE_TYPES). h2c is never tunnelled: an HTTP/2 upgrade is for the hop, not a tunnel.

import type { Route } from '../../ir/types.ts';
import { UPGRADE_PROTOCOL } from '../../ir/upgrades.ts';
import { namespacedName, type InputSnapshot } from '../sources/objects.ts';
import type { InputIndex } from './index-inputs.ts';

export const UPGRADE_TYPES_ANNOTATION = 'sluice.dev/upgrade-types';

/** The annotation's protocols, or a problem naming the bad entry (then the default applies). */
export function parseUpgradeTypes(value: string): { types: string[] } | { problem: string } {
  const types = value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
  for (const t of types) {
    if (!UPGRADE_PROTOCOL.test(t)) return { problem: `${JSON.stringify(t)} is not an upgrade protocol (token or token/version)` };
    if (t === 'h2c') return { problem: 'h2c is never tunnelled (an HTTP/2 upgrade belongs to one hop)' };
  }
  return { types: [...new Set(types)] };
}

/**
 * Replaces (`replace`) in `served` every placement whose HTTPRoute or Ingress carries the annotation by a copy
 * whose route is a copy with `upgradeTypes` (copies: placements and routes may be shared with the
 * previous translation, see memo.ts); returns one problem line per bad annotation (those routes keep the default).
 */
export function applyUpgradeTypes<P extends { route: Route }>(served: readonly P[], replace: (i: number, placement: P) => void, snapshot: InputSnapshot, index: InputIndex): string[] {
  const byObject = new Map<string, { types: string[] } | { problem: string }>();
  for (const [kind, objects] of [
    ['HTTPRoute', snapshot.httpRoutes],
    ['Ingress', snapshot.ingresses],
  ] as const) {
    for (const obj of objects) {
      const value = obj.metadata.annotations?.[UPGRADE_TYPES_ANNOTATION];
      if (value !== undefined) byObject.set(`${kind} ${namespacedName(obj)}`, parseUpgradeTypes(value));
    }
  }
  if (byObject.size === 0) return [];
  const problems = new Set<string>();
  const visit = (route: Route): Route => {
    const key = `${route.origin.kind} ${route.origin.namespace}/${route.origin.name}`;
    const parsed = byObject.get(key);
    if (parsed === undefined) return route;
    if ('types' in parsed) return index.perObject(route, `upgradeTypes ${JSON.stringify(parsed.types)}`, () => ({ ...route, upgradeTypes: parsed.types }));
    problems.add(`${key}: annotation ${UPGRADE_TYPES_ANNOTATION}: ${parsed.problem}; WebSocket only is tunnelled`);
    return route;
  };
  for (let i = 0; i < served.length; i++) {
    const placement = served[i]!;
    const route = visit(placement.route);
    if (route !== placement.route) replace(i, { ...placement, route });
  }
  return [...problems].sort();
}
