// The web view's graph from real translations: golden cases' inputs through translate() and the
// status assembly, as `sluice run` computes them, then buildGraph. Checks what the page draws:
// nodes, edges and weights, and which are red with which reason.
import { describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { translate } from '../../controller/translate/translate.ts';
import { assembleStatuses } from '../../controller/status/assemble.ts';
import { StatusStore } from '../../controller/status/store.ts';
import { SNAPSHOT_FIELD_BY_KIND } from '../../controller/sources/objects.ts';
import { buildGraph } from '../../cmd/ui/graph.ts';
import type { UiGraph } from '../../cmd/ui/view-types.ts';
import { FIXED_CLOCK, loadInputs, TRANSLATE_CASES, translateOptionsOf } from '../golden/translate-case.ts';

/** The graph `sluice run` shows for a golden case (`dataplane`: the graph `sluice dataplane` shows, the IR alone). */
function graphOf(name: string, dataplane = false): UiGraph {
  const dir = join(TRANSLATE_CASES, name);
  const options = translateOptionsOf(dir);
  const { snapshot } = loadInputs(dir);
  const result = translate(snapshot, options);
  const store = new StatusStore();
  store.update(assembleStatuses(result, { socketFailures: [] }), FIXED_CLOCK());
  const objects = store.withStatus(Object.values(SNAPSHOT_FIELD_BY_KIND).flatMap((f) => snapshot[f]));
  return buildGraph({ ir: result.ir, objects: dataplane ? [] : objects, controllerName: options.controllerName });
}

const node = (g: UiGraph, id: string) => {
  const n = g.nodes.find((x) => x.id === id);
  if (!n) throw new Error(`no node ${id} in ${g.nodes.map((x) => x.id).join(', ')}`);
  return n;
};
const edge = (g: UiGraph, from: string, to: string) => g.edges.find((e) => e.from === from && e.to === to);

describe('web view graph', () => {
  it('weights per rule, an invalid backendRef red, the route red with its ResolvedRefs reason', () => {
    const g = graphOf('HTTPRouteWeightAndInvalidBackends');
    const route = node(g, 'HTTPRoute/infra/weights');
    expect(route.health).toBe('failing');
    expect(route.problem).toMatch(/^ResolvedRefs=False BackendNotFound/);
    const web = g.nodes.find((n) => n.column === 'backend' && n.label.includes('web'))!;
    expect(web.health).toBe('ok');
    // Rule 0 names web twice (70 and 0) beside missing (30): web's share of that rule is 70%.
    expect(edge(g, route.id, web.id)?.weight).toBe('70 (70%)');
    const invalid = node(g, `invalid:${route.id}`);
    expect(invalid.health).toBe('failing');
    expect(edge(g, route.id, invalid.id)?.health).toBe('failing');
    expect(edge(g, 'Gateway/infra/gw/http', route.id)).toBeDefined();
    expect(node(g, 'Gateway/infra/gw').health).toBe('ok');
  });

  it('ListenerSet listeners under their Gateway; a ListenerSet the Gateway does not allow is red', () => {
    const g = graphOf('ListenerSetAttachment');
    expect(edge(g, 'Gateway/infra/gw', 'ListenerSet/infra/ls-1/b')).toBeDefined();
    expect(edge(g, 'ListenerSet/infra/ls-1/b', 'HTTPRoute/infra/to-listenerset')).toBeDefined();
    expect(node(g, 'ListenerSet/infra/ls-1/b').health).toBe('ok');
    const refused = g.nodes.filter((n) => n.id.startsWith('ListenerSet/apps/ls-other/'));
    expect(refused.length).toBeGreaterThan(0);
    for (const n of refused) expect(n.problem).toMatch(/^Accepted=False NotAllowed: Gateway infra\/gw does not allow ListenerSets from namespace apps/);
  });

  it('TLS passthrough listeners and their TLSRoutes', () => {
    const g = graphOf('TLSRoutePassthrough');
    const tls = g.nodes.filter((n) => n.column === 'route' && n.kind === 'TLSRoute');
    expect(tls.length).toBeGreaterThan(0);
    const listeners = g.nodes.filter((n) => n.column === 'listener' && n.detail.startsWith('TLS passthrough'));
    expect(listeners.length).toBeGreaterThan(0);
    expect(g.edges.some((e) => listeners.some((l) => l.id === e.from) && tls.some((t) => t.id === e.to))).toBe(true);
  });

  it('TCP and UDP listeners with the one route each serves, weights, and the routes with a problem red', () => {
    const g = graphOf('TCPRouteUDPRoute');
    const older = node(g, 'TCPRoute/infra/older');
    // Served, with its cross-namespace backendRef refused (no ReferenceGrant): red for that, its share refused.
    expect(older.problem).toMatch(/^ResolvedRefs=False RefNotPermitted/);
    expect(edge(g, older.id, `invalid:${older.id}`)?.weight).toBe('30 (30%)');
    expect(edge(g, 'Gateway/infra/l4/tcp', older.id)).toBeDefined();
    expect(node(g, 'Gateway/infra/l4/tcp').detail).toMatch(/^TCP :9000/);
    const weights = g.edges.filter((e) => e.from === older.id).map((e) => e.weight).sort();
    expect(weights).toEqual(['30 (30%)', '70 (70%)']);
    // A TCP listener serves one route, the oldest: the newer one is drawn without an edge to it.
    expect(g.edges.filter((e) => e.to === 'TCPRoute/infra/newer')).toEqual([]);
    expect(g.nodes.some((n) => n.column === 'listener' && n.detail.startsWith('UDP :'))).toBe(true);
  });

  it('from the IR alone (sluice dataplane): the same served graph, no conditions to judge by', () => {
    const full = graphOf('HTTPRouteWeightAndInvalidBackends');
    const g = graphOf('HTTPRouteWeightAndInvalidBackends', true);
    expect(node(g, 'HTTPRoute/infra/weights').health).toBe('unknown');
    expect(node(g, 'HTTPRoute/infra/weights').conditions).toEqual([]);
    // What is served is drawn the same; only what the statuses add (unserved objects) is missing.
    const served = (graph: UiGraph) => graph.edges.filter((e) => e.health === 'ok' || e.id.includes('invalid:')).map((e) => e.id);
    expect(served(g)).toEqual(served(full));
  });
});
