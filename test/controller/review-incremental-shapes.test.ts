// Review of the incremental Translator (issue #14 take-overs: routes, virtual hosts): edit sequences
// of shapes the random-edit property draws rarely from the golden cases — a namespace relabelled
// under a ListenerSet's allowedListeners selector, ReferenceGrants coming and going, a route moving
// between Gateways, a listener's hostname changing, delete and re-add of a name in one edit, a
// Service port and a BackendTLSPolicy changing under unchanged routes, a GRPCRoute coming and going
// on the HTTPRoutes' hostname — each step with one route edited besides, so the take-over paths are
// the ones tried. Objects unchanged between steps are the same objects (as the manifest folder
// hands them); after each step the Translator's result must equal a fresh translate().
import { describe, expect, it } from '@jest/globals';
import { stableJson } from '../../ir/version.ts';
import { parseManifest } from '../../controller/sources/manifest-folder.ts';
import { emptySnapshot, objectKey, SNAPSHOT_FIELD_BY_KIND, snapshotArrays, type InputSnapshot, type KubeObject } from '../../controller/sources/objects.ts';
import { translate, Translator, type TranslateOptions } from '../../controller/translate/translate.ts';

const OPTIONS: TranslateOptions = { controllerName: 'sluice.dev/gateway-controller', bindAddress: '127.0.0.1', servedClassNames: [], ingress: { classNames: [], controllers: [], enforceHttps: false } };

type Docs = Record<string, string>;

const namespace = (name: string, team: string) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}, labels: {team: ${team}}}\n`;
const route = (n: number, parent: string, path = `/p${n}`, backend = 'web', extra = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r${n}, namespace: team, creationTimestamp: '2026-01-01T00:00:${String(10 + n)}Z'}
spec:
  parentRefs: [${parent}]
  hostnames: [x.a.com]
  rules: [{matches: [{path: {type: PathPrefix, value: ${path}}}], backendRefs: [${backend === 'web' ? '{name: web, port: 8080}' : `{name: ${backend}, namespace: apps, port: 80}`}]}]
${extra}`;
const TO_LS = '{name: ls, kind: ListenerSet}';
const TO_GW = '{name: gw, namespace: infra}';
const TO_GW2 = '{name: gw2, namespace: infra}';
const gateway = (name: string, hostname: string, from = 'All') => `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: infra, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  gatewayClassName: sluice
  allowedListeners: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: '${hostname}', allowedRoutes: {namespaces: {from: ${from}}}}]
`;

const BASE: Docs = {
  class: 'apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: sluice}\nspec: {controllerName: sluice.dev/gateway-controller}\n',
  infra: namespace('infra', 'infra'),
  team: namespace('team', 'a'),
  apps: namespace('apps', 'apps'),
  gw: gateway('gw', '*.a.com'),
  gw2: gateway('gw2', '*.a.com'),
  ls: `apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: ls, namespace: team, creationTimestamp: '2026-01-01T00:00:01Z'}
spec:
  parentRef: {name: gw, namespace: infra}
  listeners: [{name: x, port: 8080, protocol: HTTP, hostname: x.a.com}]
`,
  web: 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: team}\nspec: {ports: [{port: 8080}]}\n',
  api: 'apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: apps}\nspec: {ports: [{port: 80}]}\n',
  ...Object.fromEntries(Array.from({ length: 10 }, (_, n) => [`r${n}`, route(n, n % 2 === 0 ? TO_LS : TO_GW, `/p${n}`, n === 9 ? 'api' : 'web')])),
};

const GRANT = `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-team, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: team}]
  to: [{group: '', kind: Service}]
`;
const POLICY = (hostname: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: web-tls, namespace: team}
spec:
  targetRefs: [{group: '', kind: Service, name: web}]
  validation: {wellKnownCACertificates: System, hostname: ${hostname}}
`;
const GRPC = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: team, creationTimestamp: '2025-01-01T00:00:00Z'}
spec:
  parentRefs: [${TO_LS}]
  hostnames: [x.a.com]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
`;

/** Each step's changes to the documents (null: removed), one route edited besides in most. */
const STEPS: { name: string; change: Record<string, string | null> }[] = [
  { name: 'team relabelled out of the ListenerSet selector, r0 edited', change: { team: namespace('team', 'b'), r0: route(0, TO_LS, '/edited0') } },
  { name: 'relabelled back, r1 edited', change: { team: namespace('team', 'a'), r1: route(1, TO_GW, '/edited1') } },
  { name: 'a ReferenceGrant for r9 appears, r2 edited', change: { grant: GRANT, r2: route(2, TO_LS, '/edited2') } },
  { name: 'the ReferenceGrant goes, nothing else', change: { grant: null } },
  { name: 'the grant back and r3 edited', change: { grant: GRANT, r3: route(3, TO_GW, '/edited3') } },
  { name: 'r4 moves from the ListenerSet to gw2', change: { r4: route(4, TO_GW2) } },
  { name: 'r5 moves to gw2, r6 too', change: { r5: route(5, TO_GW2), r6: route(6, TO_GW2) } },
  { name: "gw2's listener hostname changes, r7 edited", change: { gw2: gateway('gw2', '*.b.com'), r7: route(7, TO_GW, '/edited7') } },
  { name: 'r8 deleted and re-added with other content (same key)', change: { r8: route(8, TO_LS, '/readded8', 'web', '  # re-added\n') } },
  { name: "web's port changes under unchanged routes, r0 edited", change: { web: 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: team}\nspec: {ports: [{port: 8081}]}\n', r0: route(0, TO_LS, '/again0') } },
  { name: 'web back, a BackendTLSPolicy on it', change: { web: BASE.web!, policy: POLICY('web.team') } },
  { name: "the policy's hostname changes, r1 edited", change: { policy: POLICY('other.team'), r1: route(1, TO_GW, '/again1') } },
  { name: 'a GRPCRoute on the same hostname and listener, older', change: { grpc: GRPC } },
  { name: 'r2 edited while the GRPCRoute stands', change: { r2: route(2, TO_LS, '/again2') } },
  { name: 'the GRPCRoute goes, r3 edited', change: { grpc: null, r3: route(3, TO_GW, '/again3') } },
  { name: "gw's listener allows Same only, r4 edited", change: { gw: gateway('gw', '*.a.com', 'Same'), r4: route(4, TO_GW) } },
  { name: 'apps relabelled (nothing selects it), r5 edited', change: { apps: namespace('apps', 'x'), r5: route(5, TO_LS) } },
  { name: 'the ListenerSet removed, r6 edited', change: { ls: null, r6: route(6, TO_LS) } },
  { name: 'the ListenerSet back', change: { ls: BASE.ls! } },
];

/** The snapshot of `docs`, objects equal to the previous step's being the previous objects (as the manifest folder keeps them). */
function snapshotOf(docs: Docs, previous: Map<string, { json: string; obj: KubeObject }>): InputSnapshot {
  const parsed = parseManifest(Object.values(docs).join('---\n'));
  if ('error' in parsed) throw new Error(parsed.error);
  expect(parsed.problems).toEqual([]);
  const snapshot = emptySnapshot();
  const arrays = snapshotArrays(snapshot);
  const seen = new Map<string, { json: string; obj: KubeObject }>();
  for (const obj of parsed.objects) {
    const key = objectKey(obj);
    const json = stableJson(obj);
    const kept = previous.get(key);
    const use = kept !== undefined && kept.json === json ? kept.obj : obj;
    seen.set(key, { json, obj: use });
    arrays[SNAPSHOT_FIELD_BY_KIND[obj.kind]!].push(use);
  }
  previous.clear();
  for (const [k, v] of seen) previous.set(k, v);
  return snapshot;
}

describe('review: incremental translation on edit shapes the property rarely draws', () => {
  it('equals a fresh translate() after every step', () => {
    const docs: Docs = { ...BASE };
    const objects = new Map<string, { json: string; obj: KubeObject }>();
    const translator = new Translator();
    const differs: string[] = [];
    /** Per step, the routes accepted and those with refs resolved (the steps must change them: not vacuous). */
    const summary: string[] = [];
    for (const [i, step] of [{ name: 'start', change: {} }, ...STEPS].entries()) {
      for (const [name, text] of Object.entries(step.change)) {
        if (text === null) delete docs[name];
        else docs[name] = text;
      }
      const snapshot = snapshotOf(docs, objects);
      const incremental = stableJson(translator.translate(snapshot, OPTIONS));
      const freshResult = translate(snapshot, OPTIONS);
      const fresh = stableJson(freshResult);
      if (incremental !== fresh) differs.push(`step ${i}: ${step.name}`);
      const conditions = freshResult.statuses.filter((s) => s.kind === 'HTTPRoute').flatMap((s) => ((s.status as { parents?: { conditions: { type: string; status: string }[] }[] }).parents ?? []).flatMap((p) => p.conditions));
      summary.push(['Accepted', 'ResolvedRefs'].map((type) => conditions.filter((c) => c.type === type && c.status === 'True').length).join('/'));
    }
    expect(differs).toEqual([]);
    expect(summary[0]).toBe('10/9'); // every route accepted; r9's Service in apps needs the grant
    expect(new Set(summary).size).toBeGreaterThan(3);
  });
});
