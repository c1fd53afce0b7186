// The incremental Translator against translate() from scratch (issue #14). Random sequences of edits
// to a snapshot — objects removed, added (from any golden case: Gateways, routes of every kind,
// Services, EndpointSlices, ReferenceGrants, policies, Secrets ...), a field changed to a value that
// field has somewhere in the golden inputs (names, namespaces, ports, hostnames, kinds ...), an
// object replaced by an equal copy, an earlier version of an object brought back — and after each
// edit the Translator's result must deep-equal a fresh translate() of the same snapshot, the version
// must change exactly when the IR does, and no translation may write into an IR it returned before
// (every IR is deep-frozen once returned: the next translation shares parts of it) or into its inputs.
// The last test breaks the memo's key on purpose (a route's compilation keyed on the route alone)
// and shows the property catches it.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { stableJson } from '../../ir/version.ts';
import { emptySnapshot, objectKey, SNAPSHOT_FIELD_BY_KIND, snapshotArrays, type HTTPRouteObject, type InputSnapshot, type KubeObject } from '../../controller/sources/objects.ts';
import { translate, Translator, type TranslateOptions, type TranslateResult } from '../../controller/translate/translate.ts';
import { TranslateMemo, type KeyedResolve, type Resolution, type Resolve } from '../../controller/translate/memo.ts';
import type { Backend, IR } from '../../ir/types.ts';
import { loadInputs, TRANSLATE_CASES, translateOptionsOf } from '../golden/translate-case.ts';

/** Fixed, so a failure replays; SLUICE_FUZZ_SEED explores others. */
const SEED = Number(process.env.SLUICE_FUZZ_SEED ?? 14_2026);
const OPTIONS: TranslateOptions = { controllerName: 'sluice.dev/gateway-controller', bindAddress: '127.0.0.1', servedClassNames: [], ingress: { classNames: [], controllers: [], enforceHttps: false } };

interface Case {
  name: string;
  snapshot: InputSnapshot;
  options: TranslateOptions;
}

const cases: Case[] = readdirSync(TRANSLATE_CASES)
  .sort()
  .map((name) => {
    const dir = join(TRANSLATE_CASES, name);
    return { name, snapshot: loadInputs(dir).snapshot, options: translateOptionsOf(dir) };
  });

const allObjects = (s: InputSnapshot): KubeObject[] => Object.values(snapshotArrays(s)).flat();

/** Every object of every case: what an edit may add. */
const pool: KubeObject[] = cases.flatMap((c) => allObjects(c.snapshot));

type Path = (string | number)[];

function leafPaths(value: unknown, prefix: Path = []): Path[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leafPaths(v, [...prefix, i]));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => leafPaths(v, [...prefix, k]));
  return [prefix];
}

/** The values each field name holds somewhere in the golden inputs: plausible replacements. */
const valuesByField = new Map<string, unknown[]>();
for (const obj of pool) {
  for (const path of leafPaths(obj)) {
    const field = String(path.findLast((p) => typeof p === 'string') ?? '');
    const value = path.reduce<unknown>((o, p) => (o as Record<string | number, unknown>)[p], obj);
    const list = valuesByField.get(field) ?? [];
    if (!list.includes(value)) list.push(value);
    valuesByField.set(field, list);
  }
}

interface Edit {
  op: 'remove' | 'add' | 'field' | 'field' | 'copy' | 'restore';
  a: number;
  b: number;
  c: number;
}

const edit: fc.Arbitrary<Edit> = fc.record({
  op: fc.constantFrom<Edit['op']>('remove', 'add', 'field', 'field', 'field', 'copy', 'restore'),
  a: fc.noBias(fc.nat()),
  b: fc.noBias(fc.nat()),
  c: fc.noBias(fc.nat()),
});

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** A new snapshot with `obj` in its kind's array, in place of an object with the same key. */
function put(snapshot: InputSnapshot, obj: KubeObject): InputSnapshot {
  const field = SNAPSHOT_FIELD_BY_KIND[obj.kind]!;
  const list = snapshotArrays(snapshot)[field];
  const at = list.findIndex((o) => objectKey(o) === objectKey(obj));
  const next = at >= 0 ? list.map((o, i) => (i === at ? obj : o)) : [...list, obj];
  return { ...snapshot, [field]: next };
}

function without(snapshot: InputSnapshot, obj: KubeObject): InputSnapshot {
  const field = SNAPSHOT_FIELD_BY_KIND[obj.kind]!;
  return { ...snapshot, [field]: snapshotArrays(snapshot)[field].filter((o) => o !== obj) };
}

/** Applies one edit (the snapshot and its objects are never changed in place: edits make new ones). */
function applyEdit(snapshot: InputSnapshot, e: Edit, seen: KubeObject[]): InputSnapshot {
  const objects = allObjects(snapshot);
  const target = objects.length > 0 ? objects[e.a % objects.length]! : undefined;
  switch (e.op) {
    case 'remove':
      return target ? without(snapshot, target) : snapshot;
    case 'add':
      return put(snapshot, structuredClone(pool[e.a % pool.length]!));
    case 'copy':
      return target ? put(snapshot, structuredClone(target)) : snapshot;
    case 'restore':
      return seen.length > 0 ? put(snapshot, seen[e.a % seen.length]!) : snapshot;
    case 'field': {
      if (!target) return snapshot;
      const copy = structuredClone(target) as Record<string | number, unknown>;
      const paths = leafPaths(copy).filter((p) => p[0] !== 'kind' && p[0] !== 'apiVersion');
      if (paths.length === 0) return snapshot;
      const path = paths[e.b % paths.length]!;
      const field = String(path.findLast((p) => typeof p === 'string') ?? '');
      const values = valuesByField.get(field) ?? [];
      const holder = path.slice(0, -1).reduce<Record<string | number, unknown>>((o, p) => o[p] as Record<string | number, unknown>, copy);
      holder[path.at(-1)!] = values[e.c % values.length];
      // The key may have changed (name, namespace): the copy is then an added object and the original stays.
      return put(snapshot, copy as KubeObject);
    }
  }
}

type Outcome = { result: TranslateResult } | { error: string };

function attempt(run: () => TranslateResult): Outcome {
  try {
    return { result: run() };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** The property, for the translator `make` gives: fails with the first step where it differs from translate(). */
function incrementalMatchesFresh(make: () => Translator, counts = { translated: 0, refused: 0 }): fc.IPropertyWithHooks<[number, Edit[]]> {
  return fc.property(fc.nat({ max: cases.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 14 }), (caseIndex, edits) => {
    const { options } = cases[caseIndex]!;
    let snapshot = cases[caseIndex]!.snapshot;
    const translator = make();
    const seen: KubeObject[] = [];
    let previous: { version: string; content: string } | null = null;
    for (const [step, e] of [null, ...edits].entries()) {
      const next = e === null ? snapshot : applyEdit(snapshot, e, seen);
      for (const obj of allObjects(next)) deepFreeze(obj);
      const fresh = attempt(() => translate(next, options));
      const incremental = attempt(() => translator.translate(next, options));
      if ('error' in fresh) {
        // Translation refused this snapshot (an edit the schema would have refused): both must refuse it.
        expect('error' in incremental ? incremental.error : 'no error').toBe(fresh.error);
        counts.refused++;
        continue;
      }
      if ('error' in incremental) throw new Error(`step ${step} (${JSON.stringify(e)}): the Translator threw ${incremental.error}`);
      const { result } = incremental;
      if (stableJson(result) !== stableJson(fresh.result)) {
        expect({ step, edit: e, result }).toEqual({ step, edit: e, result: fresh.result });
      }
      const content = stableJson({ http: result.ir.http, l4: result.ir.l4 });
      if (previous !== null) expect({ step, sameVersion: previous.version === result.ir.version }).toEqual({ step, sameVersion: previous.content === content });
      previous = { version: result.ir.version, content };
      counts.translated++;
      deepFreeze(result.ir);
      seen.push(...allObjects(next));
      snapshot = next;
    }
  });
}

describe('incremental translation', () => {
  it('deep-equals a fresh translate() after every edit of random edit sequences, the version changing exactly with the IR', () => {
    const counts = { translated: 0, refused: 0 };
    fc.assert(incrementalMatchesFresh(() => new Translator(), counts), { seed: SEED, numRuns: 150 });
    // Not vacuous: most edited snapshots translate.
    expect(counts.translated).toBeGreaterThan(4 * counts.refused);
    process.stdout.write(`incremental translation: ${counts.translated} snapshots compared, ${counts.refused} refused by both\n`);
  });

  it('virtual hosts many routes share: re-sorted from the previous order after random route edits, as a fresh sort orders them', () => {
    const spec = fc.record({
      host: fc.constantFrom('a.example.com', 'b.example.com'),
      type: fc.constantFrom<'Exact' | 'PathPrefix' | 'RegularExpression'>('Exact', 'PathPrefix', 'RegularExpression'),
      path: fc.constantFrom('/', '/a', '/a/b', '/ab', '/b'),
      headers: fc.nat({ max: 2 }),
      created: fc.constantFrom('2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),
      rules: fc.integer({ min: 1, max: 3 }),
      // Two parentRefs to the one listener: the same route placed twice on a host (a tie in the sort).
      twice: fc.boolean(),
    });
    type Spec = typeof spec extends fc.Arbitrary<infer S> ? S : never;
    const routeOf = (id: number, s: Spec): HTTPRouteObject => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `r${id}`, namespace: 'default', creationTimestamp: s.created, generation: 1 },
      spec: {
        parentRefs: s.twice ? [{ name: 'gw' }, { name: 'gw', sectionName: 'http' }] : [{ name: 'gw' }],
        hostnames: [s.host],
        rules: Array.from({ length: s.rules }, (_, i) => ({
          matches: [{ path: { type: s.type, value: `${s.path}${i > 0 ? `/${i}` : ''}` }, headers: Array.from({ length: s.headers }, (_, h) => ({ name: `x-${h}`, value: 'v' })) }],
          backendRefs: [{ name: 'svc', port: 80 }],
        })),
      },
    });
    const edit = fc.record({ op: fc.constantFrom('change', 'change', 'change', 'add', 'remove', 'copy'), at: fc.nat(), spec });
    fc.assert(
      fc.property(fc.array(spec, { minLength: 2, maxLength: 24 }), fc.array(edit, { minLength: 1, maxLength: 12 }), (initial, edits) => {
        const base = emptySnapshot();
        base.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'c' }, spec: { controllerName: OPTIONS.controllerName } });
        base.gateways.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'default' }, spec: { gatewayClassName: 'c', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } });
        base.services.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc', namespace: 'default' }, spec: { ports: [{ port: 80 }] } });
        let next = initial.length;
        let snapshot: InputSnapshot = { ...base, httpRoutes: initial.map((s, i) => routeOf(i, s)) };
        const translator = new Translator();
        translator.translate(snapshot, OPTIONS);
        for (const e of edits) {
          const routes = snapshot.httpRoutes;
          const at = e.at % routes.length;
          if (e.op === 'change') snapshot = { ...snapshot, httpRoutes: routes.map((r, i) => (i === at ? routeOf(Number(r.metadata.name.slice(1)), e.spec) : r)) };
          else if (e.op === 'add') snapshot = { ...snapshot, httpRoutes: [...routes, routeOf(next++, e.spec)] };
          else if (e.op === 'remove' && routes.length > 1) snapshot = { ...snapshot, httpRoutes: routes.filter((_, i) => i !== at) };
          else if (e.op === 'copy') snapshot = { ...snapshot, httpRoutes: routes.map((r, i) => (i === at ? structuredClone(r) : r)) };
          expect(stableJson(translator.translate(snapshot, OPTIONS))).toBe(stableJson(translate(snapshot, OPTIONS)));
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('a host of more rules than share() indexes by name (1 024), edited at random: the same results as translate(), the few changed results and placements read alone', () => {
    // share()'s long arrays follow the shift of moved rules (memo.ts shareLongArray), and the route
    // results and served placements are patched at the few that changed (translate.ts
    // collectRouteResults, servedPlacements): here one host holds ~1 200 rules, and the listener set
    // changes now and then (a TLS listener's scope takes no HTTP placements).
    const ROUTES = 400;
    const base = emptySnapshot();
    base.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'c' }, spec: { controllerName: OPTIONS.controllerName } });
    const gateway = (https: boolean): InputSnapshot['gateways'][number] => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: 'default' },
      spec: { gatewayClassName: 'c', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }, ...(https ? [{ name: 'tls', protocol: 'TLS' as const, port: 443, tls: { mode: 'Passthrough' as const } }] : [])] },
    });
    base.gateways.push(gateway(false));
    for (const name of ['svc', 'other']) base.services.push({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port: 80 }] } });
    const routeOf = (id: number, generation: number, backend = 'svc', section?: string): HTTPRouteObject => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `r${id}`, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z', generation: 1 },
      spec: {
        parentRefs: [{ name: 'gw', ...(section ? { sectionName: section } : {}) }],
        hostnames: ['one.example.com'],
        rules: [
          { matches: [{ path: { type: 'Exact', value: `/t${id}/health${'-g'.repeat(generation)}` } }], backendRefs: [{ name: backend, port: 80 }] },
          { matches: [{ path: { type: 'PathPrefix', value: `/t${id}/v1` } }], backendRefs: [{ name: backend, port: 80 }] },
          { matches: [{ path: { type: 'PathPrefix', value: `/t${id}/v2` } }], backendRefs: [{ name: 'svc', port: 80 }] },
        ],
      },
    });
    let snapshot: InputSnapshot = { ...base, httpRoutes: Array.from({ length: ROUTES }, (_, i) => routeOf(i, 0)) };
    const translator = new Translator();
    const memo = (translator as unknown as { memo: TranslateMemo }).memo;
    translator.translate(snapshot, OPTIONS);
    let seed = 14;
    const random = (n: number) => {
      seed = (seed * 48271) % 2147483647; // Park-Miller: the product stays exact in a double
      return seed % n;
    };
    let patched = 0;
    let next = ROUTES;
    for (let step = 0; step < 60; step++) {
      const routes = snapshot.httpRoutes;
      const at = random(routes.length);
      const id = Number(routes[at]!.metadata.name.slice(1));
      const op = random(8);
      if (op <= 2) snapshot = { ...snapshot, httpRoutes: routes.map((r, i) => (i === at ? routeOf(id, random(4)) : r)) }; // moved in the host
      else if (op === 3) snapshot = { ...snapshot, httpRoutes: routes.map((r, i) => (i === at ? routeOf(id, 0, random(2) === 0 ? 'other' : 'svc') : r)) };
      else if (op === 4) snapshot = { ...snapshot, httpRoutes: routes.map((r, i) => (i === at ? routeOf(id, 0, 'svc', 'tls') : r)) }; // onto the TLS listener: not served
      else if (op === 5) snapshot = { ...snapshot, httpRoutes: random(2) === 0 && routes.length > 1 ? routes.filter((_, i) => i !== at) : [...routes, routeOf(next++, 0)] };
      else if (op === 6) snapshot = { ...snapshot, gateways: [gateway(random(2) === 0)] };
      else snapshot = { ...snapshot, httpRoutes: routes.map((r, i) => (i === at ? structuredClone(r) : r)) };
      const statusAt = (memo.collected as { statusAt: Int32Array } | null)?.statusAt;
      const before = memo.previous;
      const incremental = translator.translate(snapshot, OPTIONS);
      if ((memo.collected as { statusAt: Int32Array }).statusAt === statusAt) patched++;
      expect({ step, result: stableJson(incremental) }).toEqual({ step, result: stableJson(translate(snapshot, OPTIONS)) });
      // A moved route's unchanged rules are still the previous IR's objects (what the dataplane reuses).
      if (op <= 2 && before !== null) {
        const rules = (http: IR['http']) => new Map(http.listeners.flatMap((l) => l.scopes.flatMap((sc) => sc.virtualHosts.flatMap((h) => h.routes))).map((r) => [r.name, r]));
        const [was, now] = [rules(before.http), rules(incremental.ir.http)];
        const kept = [...was.keys()].filter((name) => name.includes(`/r${id}/rule/1/`) && now.has(name));
        for (const name of kept) expect({ step, name, same: now.get(name) === was.get(name) }).toEqual({ step, name, same: true });
      }
    }
    expect(patched).toBeGreaterThan(20);
  });

  it('rate limits attach to a copy of the served placements: a RateLimitPolicy removed while its routes stay leaves none behind, and back again', () => {
    // translate.ts servedPlacements' list is the memo's, patched by the next translation: the
    // placements rate limits replace must go into a copy of it, never into it.
    const withPolicies = cases.filter((c) => c.snapshot.rateLimitPolicies.length > 0);
    expect(withPolicies.length).toBeGreaterThan(2);
    for (const { name, snapshot, options } of withPolicies) {
      const translator = new Translator();
      translator.translate(snapshot, options);
      for (const [step, next] of [{ ...snapshot, rateLimitPolicies: [] }, snapshot].entries()) {
        expect({ name, step, result: stableJson(translator.translate(next, options)) }).toEqual({ name, step, result: stableJson(translate(next, options)) });
      }
    }
  });

  it('shares every unchanged part with the previous IR: an edit to one route leaves the other routes, their hosts and the backends the same objects', () => {
    const snapshot = emptySnapshot();
    const meta = (name: string) => ({ name, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z', generation: 1 });
    snapshot.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'c' }, spec: { controllerName: OPTIONS.controllerName } });
    snapshot.gateways.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: meta('gw'), spec: { gatewayClassName: 'c', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } });
    snapshot.services.push({ apiVersion: 'v1', kind: 'Service', metadata: meta('svc'), spec: { ports: [{ port: 80 }] } });
    const route = (i: number, path: string): HTTPRouteObject => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: meta(`r${i}`),
      spec: { parentRefs: [{ name: 'gw' }], hostnames: [`r${i}.example.com`], rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }], backendRefs: [{ name: 'svc', port: 80 }] }] },
    });
    snapshot.httpRoutes.push(route(0, '/a'), route(1, '/b'), route(2, '/c'));
    const translator = new Translator();
    const before = translator.translate(snapshot, OPTIONS).ir;
    const edited = { ...snapshot, httpRoutes: [route(0, '/edited'), ...snapshot.httpRoutes.slice(1)] };
    const after = translator.translate(edited, OPTIONS).ir;
    expect(after).toEqual({ ...translate(edited, OPTIONS).ir });
    expect(after.version).not.toBe(before.version);
    const hostsOf = (ir: IR) => new Map(ir.http.listeners.flatMap((l) => l.scopes.flatMap((s) => s.virtualHosts)).map((h) => [h.hostname, h]));
    const [oldHosts, newHosts] = [hostsOf(before), hostsOf(after)];
    expect(newHosts.get('r0.example.com')).not.toBe(oldHosts.get('r0.example.com'));
    expect(newHosts.get('r1.example.com')).toBe(oldHosts.get('r1.example.com'));
    expect(newHosts.get('r2.example.com')).toBe(oldHosts.get('r2.example.com'));
    expect(after.http.backends['service/default/svc/port/80']).toBe(before.http.backends['service/default/svc/port/80']);
    // Nothing changed: the very same IR.
    const again = translator.translate({ ...edited }, OPTIONS).ir;
    expect(again.http).toBe(after.http);
    expect(again.version).toBe(after.version);
  });

  it('routes left as they were are taken over only while what they attach by stands: a namespace relabelled away from a listener selector detaches them', () => {
    const snapshot = emptySnapshot();
    const meta = (name: string, namespace = 'team') => ({ name, namespace, creationTimestamp: '2026-01-01T00:00:00Z', generation: 1 });
    const namespace = (team: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team', labels: { team } } });
    snapshot.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'c' }, spec: { controllerName: OPTIONS.controllerName } });
    snapshot.gateways.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: meta('gw', 'default'),
      spec: { gatewayClassName: 'c', listeners: [{ name: 'http', protocol: 'HTTP', port: 80, allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'a' } } } } }] },
    });
    snapshot.namespaces.push(namespace('a'));
    snapshot.services.push({ apiVersion: 'v1', kind: 'Service', metadata: meta('svc'), spec: { ports: [{ port: 80 }] } });
    const route = (i: number, path: string): HTTPRouteObject => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: meta(`r${i}`),
      spec: { parentRefs: [{ name: 'gw', namespace: 'default' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }], backendRefs: [{ name: 'svc', port: 80 }] }] },
    });
    snapshot.httpRoutes.push(route(0, '/a'), route(1, '/b'), route(2, '/c'));
    const translator = new Translator();
    const attached = (result: TranslateResult) => result.statuses.find((s) => s.kind === 'Gateway')!.status.listeners;
    expect(attached(translator.translate(snapshot, OPTIONS))).toEqual(attached(translate(snapshot, OPTIONS)));
    // One route edited, the namespace relabelled: no route of it attaches any more (attachedRoutes 0, the IR without them).
    const relabelled = { ...snapshot, namespaces: [namespace('b')], httpRoutes: [route(0, '/edited'), ...snapshot.httpRoutes.slice(1)] };
    const result = translator.translate(relabelled, OPTIONS);
    expect(stableJson(result)).toBe(stableJson(translate(relabelled, OPTIONS)));
    expect((attached(result) as { attachedRoutes: number }[])[0]!.attachedRoutes).toBe(0);
    // And back: all three attach again.
    const back = { ...relabelled, namespaces: [namespace('a')] };
    const again = translator.translate(back, OPTIONS);
    expect(stableJson(again)).toBe(stableJson(translate(back, OPTIONS)));
    expect((attached(again) as { attachedRoutes: number }[])[0]!.attachedRoutes).toBe(3);
  });

  it('the property catches a memo keyed on the route alone (what its backendRefs resolve to left out)', () => {
    /** Broken on purpose: reuses a route's compilation whatever its references now resolve to. */
    class RouteOnlyMemo extends TranslateMemo {
      private readonly byRoute = new WeakMap<object, { backends: Backend[] }>();
      override compile<T extends { backends: Backend[] }, R extends Resolution>(route: object, resolver: KeyedResolve<R>, compile: (resolve: Resolve<R>) => T): T {
        const hit = this.byRoute.get(route);
        if (hit) return hit as T;
        const value = compile((ref) => resolver.resolve(resolver.key(ref), ref));
        this.byRoute.set(route, value);
        return value;
      }
    }
    expect(() => fc.assert(incrementalMatchesFresh(() => new Translator(new RouteOnlyMemo())), { seed: SEED, numRuns: 150 })).toThrow(/Property failed/);
  });
});
