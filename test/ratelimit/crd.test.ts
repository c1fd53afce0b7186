// The RateLimitPolicy CRD: a structural schema (every node typed, no $ref, defaults inside
// their enums), and it agrees with the controller: the examples and the valid golden inputs pass
// the validator generated from it (controller/schema, what standalone mode runs; the API server runs
// the same CRD), schema-level mistakes fail it with their field path, and the translator keeps only
// the checks the schema cannot express.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { inputProblem } from '../../controller/schema/validate.ts';
import type { KubeObject } from '../../controller/sources/objects.ts';
import { compilePolicy } from '../../controller/translate/ratelimit.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const crd = parse(readFileSync(join(ROOT, 'crds', 'sluice.dev_ratelimitpolicies.yaml'), 'utf8'));
const schema = crd.spec.versions[0].schema.openAPIV3Schema;

// The CRD's schema as parsed YAML: read loosely, as the structural rules walk any node.
type Schema = Record<string, any>;

/** Structural-schema rules (Kubernetes "Specifying a structural schema"), the ones that apply here. */
function structuralProblems(node: Schema, path: string, out: string[]): string[] {
  for (const banned of ['$ref', 'definitions', 'dependencies', 'deprecated', 'id', 'patternProperties']) {
    if (banned in node) out.push(`${path}: ${banned} is not allowed`);
  }
  if (!node.type && !node['x-kubernetes-int-or-string'] && !node['x-kubernetes-preserve-unknown-fields']) out.push(`${path}: no type`);
  if (node.default !== undefined && node.enum && !node.enum.includes(node.default)) out.push(`${path}: default ${node.default} not in enum`);
  if (node['x-kubernetes-list-type'] === 'map') {
    for (const key of node['x-kubernetes-list-map-keys'] ?? []) if (!node.items?.required?.includes(key)) out.push(`${path}: map key ${key} must be required`);
  }
  for (const [name, child] of Object.entries<Schema>(node.properties ?? {})) structuralProblems(child, `${path}.${name}`, out);
  if (node.items) structuralProblems(node.items, `${path}[]`, out);
  return out;
}

function policiesIn(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(join(ROOT, file), 'utf8'))
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o?.kind === 'RateLimitPolicy' && String(o.apiVersion).startsWith('sluice.dev/'));
}

describe('RateLimitPolicy CRD', () => {
  it('is a structural schema', () => {
    expect(crd.spec.group).toBe('sluice.dev');
    expect(crd.spec.versions[0].subresources).toEqual({ status: {} });
    expect(structuralProblems(schema, 'schema', [])).toEqual([]);
  });

  it('accepts the example and the valid golden inputs', () => {
    const valid = [
      ...policiesIn('examples/rate-limit/policy.yaml'),
      ...policiesIn('test/golden/translate/RateLimitPolicyValid/input/test.yaml'),
      ...policiesIn('test/golden/translate/RateLimitPolicyPrecedence/input/test.yaml'),
      ...policiesIn('test/golden/translate/RateLimitPolicyConflicted/input/test.yaml'),
    ];
    expect(valid.length).toBeGreaterThan(5);
    for (const p of valid) {
      expect({ name: p.metadata.name, problem: inputProblem(p) }).toEqual({ name: p.metadata.name, problem: null });
      expect(compilePolicy(p)).toHaveProperty('policy');
    }
  });

  const base = { apiVersion: 'sluice.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name: 'p', namespace: 'default' } };
  const target = [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }];
  const limit = { requests: 1, unit: 'Second' };

  it('refuses schema-level mistakes with their field path (the translator does not check them again)', () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ targetRefs: target, local: { rules: [{ limit: { requests: 10, unit: 'Fortnight' } }] } }, 'spec.local.rules[0].limit.unit'],
      [{ targetRefs: target, local: { rules: [{ limit: { requests: 0, unit: 'Second' } }] } }, 'spec.local.rules[0].limit.requests'],
      [{ targetRefs: target, local: { rules: [{ limit: { requests: 1_000_000_001, unit: 'Second' } }] } }, 'spec.local.rules[0].limit.requests'],
      [{ targetRefs: target, local: { rules: [{ limit, burst: 0 }] } }, 'spec.local.rules[0].burst'],
      [{ targetRefs: target, global: { failureMode: 'Maybe', rules: [{ limit }] } }, 'spec.global.failureMode'],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ headers: [{ name: 'x', type: 'Prefix', value: 'a' }] }], limit }] } }, 'spec.local.rules[0].clientSelectors[0].headers[0].type'],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ headers: [{ name: 'x y', value: 'a' }] }], limit }] } }, 'spec.local.rules[0].clientSelectors[0].headers[0].name'],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ headers: [{ name: 'x', type: 'Distinct', value: 'a' }] }], limit }] } }, 'spec.local.rules[0].clientSelectors[0].headers[0]'],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ headers: [{ name: 'x' }] }], limit }] } }, 'spec.local.rules[0].clientSelectors[0].headers[0]'],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{}], limit }] } }, 'spec.local.rules[0].clientSelectors[0]'],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: Array(9).fill({ methods: ['GET'] }), limit }] } }, 'spec.local.rules[0].clientSelectors'],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ methods: ['get'] }], limit }] } }, 'spec.local.rules[0].clientSelectors[0].methods[0]'],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ sourceCIDR: { value: '10.0.0.0/33' } }], limit }] } }, 'spec.local.rules[0].clientSelectors[0].sourceCIDR.value'],
      [{ targetRefs: target, local: { rules: [{ name: 'bad name', limit }] } }, 'spec.local.rules[0].name'],
      [{ targetRefs: target, local: { rules: [] } }, 'spec.local.rules'],
      [{ targetRefs: target, local: { rules: Array(65).fill({ limit }) } }, 'spec.local.rules'],
      [{ targetRefs: target }, 'spec'],
      [{ targetRefs: [], local: { rules: [{ limit }] } }, 'spec.targetRefs'],
      [{ targetRefs: [{ group: '', kind: 'Service', name: 'web' }], local: { rules: [{ limit }] } }, 'spec.targetRefs[0]'],
      [{ targetRefs: [{ ...target[0], namespace: 'other' }], local: { rules: [{ limit }] } }, 'spec.targetRefs[0].namespace'],
      [{ targetRefs: target, clientIPDetection: { xForwardedFor: { numTrustedHops: 9 } }, local: { rules: [{ limit }] } }, 'spec.clientIPDetection.xForwardedFor.numTrustedHops'],
      [{ targetRefs: target, clientIPDetection: { xForwardedFor: { trustedCIDRs: ['10.0.0.1'] } }, local: { rules: [{ limit }] } }, 'spec.clientIPDetection.xForwardedFor.trustedCIDRs[0]'],
      [{ targetRefs: target, responseHeaders: { draft: 'Draft3' }, local: { rules: [{ limit }] } }, 'spec.responseHeaders.draft'],
    ];
    for (const [spec, path] of bad) {
      const policy: KubeObject = { ...base, spec };
      const problem = inputProblem(policy);
      expect({ spec, at: problem?.startsWith(`${path}: `) ? path : problem }).toEqual({ spec, at: path });
    }
  });

  it('leaves to the translator what the schema cannot express', () => {
    const schemaValid: [Record<string, unknown>, RegExp][] = [
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ headers: [{ name: 'x', type: 'RegularExpression', value: '(unclosed' }] }], limit }] } }, /headers\[0\]: invalid regular expression/],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ path: { type: 'RegularExpression', value: '[' } }], limit }] } }, /path: invalid regular expression/],
      [{ targetRefs: target, local: { rules: [{ clientSelectors: [{ path: { type: 'Exact', value: 'api' } }], limit }] } }, /path\.value must start with \//],
      [{ targetRefs: target, local: { rules: [{ name: 'a', limit }] }, global: { rules: [{ name: 'a', limit }] } }, /spec\.global\.rules\[0\]\.name a is used twice/],
    ];
    for (const [spec, error] of schemaValid) {
      const policy = { ...base, spec };
      expect({ spec, schema: inputProblem(policy), translator: compilePolicy(policy) }).toEqual({ spec, schema: null, translator: { error: expect.stringMatching(error) } });
    }
  });

  it('lists the same enums as the translator accepts', () => {
    const rule = schema.properties.spec.properties.local.properties.rules.items;
    expect(rule.properties.limit.properties.unit.enum).toEqual(['Second', 'Minute', 'Hour', 'Day']);
    expect(schema.properties.spec.properties.global.properties.failureMode.enum).toEqual(['FailOpen', 'FailClosed', 'Local']);
    expect(rule.properties.clientSelectors.items.properties.headers.items.properties.type.enum).toEqual(['Exact', 'RegularExpression', 'Distinct']);
    expect(schema.properties.spec.properties.global.properties.rules.items).toEqual(rule);
  });
});
