// Fuzzing the translator: every translation golden case's inputs, mutated by fast-check (values
// of the wrong type, deleted fields, huge/negative numbers, long and odd strings, unicode, empty
// arrays, null, duplicated elements and objects, names shared across kinds, cross-namespace
// references), go through the manifest folder as YAML as a user's files would, then translate().
// translate() must return; the dataplane must compile the IR it returns (a compile that throws
// rejects the whole version, every route with it); and a reference Gateway + HTTPRoute in a
// namespace of their own, added to every snapshot, must translate to the same listener, backends
// and statuses whatever the mutation.
import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import type { IR } from '../../ir/types.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import type { HTTPRouteObject, InputSnapshot, KubeObject } from '../../controller/sources/objects.ts';
import type { ObjectStatus } from '../../controller/status/conditions.ts';
import { translate, type TranslateOptions } from '../../controller/translate/translate.ts';
import { compileRouteTable } from '../../dataplane/config/compile.ts';
import { DataplaneMetrics } from '../../dataplane/metrics.ts';
import { SecureContextCache } from '../../dataplane/tls/certificates.ts';
import { UpstreamPools } from '../../dataplane/upstream/pools.ts';
import { PickerStates } from '../../dataplane/upstream/weighted.ts';
import { FIXED_CLOCK, loadInputs, TRANSLATE_CASES, translateOptionsOf } from '../golden/translate-case.ts';

/** Fixed, so a failure names a case that replays; SLUICE_FUZZ_SEED explores others. */
const SEED = Number(process.env.SLUICE_FUZZ_SEED ?? 11_2026);
const MUTATIONS_PER_CASE = 40;

const REFERENCE_NAMESPACE = 'fuzz-reference';
/** A port no golden case uses, so only a mutation aimed at it could share the listener. */
const REFERENCE_PORT = 47123;

/** The untouched bystander: its own class, Gateway, route, Service and endpoints. */
function referenceObjects(options: TranslateOptions): KubeObject[] {
  const meta = (name: string) => ({ name, namespace: REFERENCE_NAMESPACE, creationTimestamp: '2020-01-01T00:00:00Z' });
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: REFERENCE_NAMESPACE } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'fuzz-reference-class', creationTimestamp: '2020-01-01T00:00:00Z' },
      spec: { controllerName: options.controllerName },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: meta('reference'),
      spec: { gatewayClassName: 'fuzz-reference-class', listeners: [{ name: 'http', port: REFERENCE_PORT, protocol: 'HTTP', hostname: 'reference.fuzz.test' }] },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: meta('reference'),
      spec: {
        parentRefs: [{ name: 'reference' }],
        hostnames: ['reference.fuzz.test'],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-fuzz', value: 'yes' }] }],
            filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-reference', value: '1' }] } }],
            backendRefs: [{ name: 'reference', port: 80, weight: 3 }],
          },
        ],
      },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: meta('reference'), spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { ...meta('reference-1'), labels: { 'kubernetes.io/service-name': 'reference' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: ['10.9.9.9'], conditions: { ready: true } }],
    },
  ];
}

/** What the reference translates to: its listener, the backends it uses, its objects' statuses. */
function referencePart(ir: IR, statuses: ObjectStatus[]): unknown {
  const listener = ir.http.listeners.find((l) => l.port === REFERENCE_PORT);
  const backendNames = new Set<string>();
  const collect = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(collect);
    else if (value !== null && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        if (key === 'backend' && typeof v === 'string') backendNames.add(v);
        else collect(v);
      }
    }
  };
  collect(listener);
  return {
    listener,
    backends: [...backendNames].sort().map((name) => ir.http.backends[name]),
    statuses: statuses.filter((s) => JSON.stringify(s).includes(REFERENCE_NAMESPACE) || JSON.stringify(s).includes('fuzz-reference-class')),
  };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
const isMapping = (v: Json | undefined): v is { [key: string]: Json } => typeof v === 'object' && v !== null && !Array.isArray(v);
type Path = (string | number)[];

function pathsOf(value: Json, prefix: Path = []): Path[] {
  const here = prefix.length > 0 ? [prefix] : [];
  if (Array.isArray(value)) return [...here, ...value.flatMap((v, i) => pathsOf(v, [...prefix, i]))];
  if (value !== null && typeof value === 'object') return [...here, ...Object.entries(value).flatMap(([k, v]) => pathsOf(v, [...prefix, k]))];
  return here;
}

function parentOf(root: Json, path: Path): Json {
  let node = root;
  for (const step of path.slice(0, -1)) node = (node as Record<string | number, Json>)[step]!;
  return node;
}

/** The values a field should never hold, and some it might. */
const oddValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.constantFrom(0, -1, 1, 65535, 65536, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 + 2, 1e308, -1e308, 0.5, -0.000001, Number.NaN, Infinity, -Infinity),
  fc.integer(),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.constantFrom('', ' ', '*', '*.*', '/', '//', '..', '/../../etc', '\u0000', '\u202e', 'Ünïcödé.example', '🚀.example.com', 'UPPER.Example.COM', 'a'.repeat(254), 'x'.repeat(70_000), '[', '(?<', '^$', '-1', '1e9', 'true', 'null'),
  fc.constant<Json>([]),
  fc.constant<Json>({}),
  fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
);

interface Mutation {
  kind: 'replace' | 'delete' | 'emptyArray' | 'duplicateElement' | 'crossNamespace' | 'shareName' | 'copyToNamespace';
  /** Which object and which path in it, taken modulo the count: fits any snapshot. */
  object: number;
  path: number;
  value: Json;
  namespace: string;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom<Mutation['kind']>('replace', 'replace', 'replace', 'delete', 'delete', 'emptyArray', 'duplicateElement', 'crossNamespace', 'shareName', 'copyToNamespace'),
  // Unbiased: fast-check's default bias towards small numbers would pick the first object every time.
  object: fc.noBias(fc.nat()),
  path: fc.noBias(fc.nat()),
  value: oddValue,
  namespace: fc.constantFrom('default', 'other', 'kube-system', 'no-such-namespace', 'UPPER', ''),
});

const at = (n: number, length: number): number => n % length;

/** Applies one mutation in place to `objects` (plain JSON from the snapshot, never the reference); says what it did. */
function apply(objects: Json[], m: Mutation): string {
  if (objects.length === 0) return 'nothing';
  const target = objects[at(m.object, objects.length)] as Record<string, Json>;
  const paths = pathsOf(target);
  const path = paths[at(m.path, paths.length)]!;
  const parent = parentOf(target, path) as Record<string | number, Json>;
  const key = path.at(-1)!;
  // An earlier mutation may have replaced metadata itself.
  const metaOf = (o: Json): Record<string, Json> => (o !== null && typeof o === 'object' && !Array.isArray(o) && isMapping((o as Record<string, Json>).metadata) ? ((o as Record<string, Json>).metadata as Record<string, Json>) : {});
  const meta = metaOf(target);
  const show = (v: Json | undefined): string =>
    typeof v === 'string' ? v : (JSON.stringify(v, (_k, x) => (typeof x === 'string' && x.length > 40 ? `${x.slice(0, 20)}…(${x.length})` : x)) ?? '');
  const said = `${m.kind} ${show(target.kind)} ${show(meta.namespace ?? '')}/${show(meta.name)} ${path.join('.')}${m.kind === 'replace' ? ` ← ${show(m.value)}` : ''}${/Namespace|Name/.test(m.kind) ? ` (${m.namespace})` : ''}`;
  switch (m.kind) {
    case 'replace':
      parent[key] = m.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      break;
    case 'emptyArray':
    case 'duplicateElement': {
      // The nearest array at or above the path.
      for (let depth = path.length; depth > 0; depth--) {
        const holder = parentOf(target, path.slice(0, depth)) as Record<string | number, Json>;
        const array = holder[path[depth - 1]!];
        if (!Array.isArray(array)) continue;
        if (m.kind === 'emptyArray') holder[path[depth - 1]!] = [];
        else if (array.length > 0) array.push(structuredClone(array[0]!));
        break;
      }
      break;
    }
    case 'crossNamespace': {
      // A namespace on the object the path ends in (a parentRef, backendRef, metadata...).
      const holder = parent[key];
      const object = holder !== null && typeof holder === 'object' && !Array.isArray(holder) ? holder : Array.isArray(parent) ? null : parent;
      if (object) (object as Record<string, Json>).namespace = m.namespace;
      break;
    }
    case 'shareName': {
      // Another object's name, whatever its kind: names that collide across kinds and namespaces.
      const name = metaOf(objects[at(m.path, objects.length)]!).name;
      if (name !== undefined) meta.name = name;
      break;
    }
    case 'copyToNamespace': {
      const copy = structuredClone(target);
      if (isMapping(copy.metadata)) (copy.metadata as Record<string, Json>).namespace = m.namespace || 'other';
      objects.push(copy);
      break;
    }
  }
  return said;
}

function allObjects(snapshot: InputSnapshot): KubeObject[] {
  return Object.values(snapshot).flat();
}

/** A fresh manifest folder per translation: the user's path, YAML parsing and checks included. */
function loadAsFiles(dir: string, objects: unknown[]): InputSnapshot {
  for (const file of readdirSync(dir)) rmSync(join(dir, file));
  writeFileSync(join(dir, 'all.yaml'), objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n'));
  return new ManifestFolder(dir, FIXED_CLOCK).load().snapshot;
}

const pools = new UpstreamPools(1000, 1000);
afterAll(() => pools.closeAll());

/** Compiles the IR as the dataplane would on apply; throws where the dataplane would reject the version. */
function compile(ir: IR): void {
  compileRouteTable(ir.version, ir.http, {
    pools,
    certificates: new SecureContextCache(),
    pickerStates: new PickerStates().begin(),
    metrics: new DataplaneMetrics(new Registry()),
  });
}

/** The result as a whole, to count mutations that changed something. */
function fingerprint(result: { ir: IR; statuses: ObjectStatus[] }): string {
  return `${result.ir.version}/${JSON.stringify(result.statuses)}`;
}

describe('translate under mutated golden inputs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-fuzz-translate-'));
  let translations = 0;
  let changed = 0;
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    console.log(`translator fuzz (seed ${SEED}): ${translations} mutated snapshots, ${changed} of them changed the IR or a status`);
  });

  it('sees a change to the reference itself (the comparison can fail)', () => {
    const options = translateOptionsOf(join(TRANSLATE_CASES, 'HTTPRouteSimpleSameNamespace'));
    const reference = referenceObjects(options);
    const alone = translate(loadAsFiles(dir, reference), options);
    const touched = structuredClone(reference);
    (touched.find((o) => o.kind === 'HTTPRoute') as HTTPRouteObject).spec.rules![0].backendRefs![0].weight = 4;
    const result = translate(loadAsFiles(dir, touched), options);
    expect(referencePart(result.ir, result.statuses)).not.toEqual(referencePart(alone.ir, alone.statuses));
  });
  const cases = readdirSync(TRANSLATE_CASES).sort();
  const plans = fc.sample(fc.array(mutation, { minLength: 1, maxLength: 3 }), { seed: SEED, numRuns: cases.length * MUTATIONS_PER_CASE });

  cases.forEach((name, caseIndex) => {
    it(`${name}: ${MUTATIONS_PER_CASE} mutations, no throw, the reference unharmed`, () => {
      const caseDir = join(TRANSLATE_CASES, name);
      const options = translateOptionsOf(caseDir);
      const reference = referenceObjects(options);
      const alone = translate(loadAsFiles(dir, reference), options);
      const expected = referencePart(alone.ir, alone.statuses);
      expect((expected as { listener: unknown }).listener).toBeDefined();
      const inputs = allObjects(loadInputs(caseDir).snapshot);
      const unmutated = fingerprint(translate(loadAsFiles(dir, [...structuredClone(inputs), ...reference]), options));
      const failures: string[] = [];
      for (const plan of plans.slice(caseIndex * MUTATIONS_PER_CASE, (caseIndex + 1) * MUTATIONS_PER_CASE)) {
        const objects = structuredClone(inputs) as unknown as Json[];
        const described = plan.map((m) => apply(objects, m)).join('; ');
        try {
          const result = translate(loadAsFiles(dir, [...objects, ...reference]), options);
          translations++;
          if (fingerprint(result) !== unmutated) changed++;
          compile(result.ir);
          expect(referencePart(result.ir, result.statuses)).toEqual(expected);
        } catch (error) {
          // Not `instanceof Error`: errors from Node's own classes come from another realm than jest's.
          const stack = (error as { stack?: unknown }).stack;
          failures.push(`${described}: ${typeof stack === 'string' ? stack.split('\n').slice(0, 6).join('\n') : String(error)}`);
        }
      }
      expect(failures).toEqual([]);
    });
  });
});
