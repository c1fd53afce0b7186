// The RateLimitPolicy CRD: a structural schema (every node typed, no $ref, defaults inside
// their enums), and it agrees with the controller: the examples and the valid golden inputs
// pass it, schema-level mistakes fail it, and the translator rejects the same mistakes.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { compilePolicy } from '../../controller/translate/ratelimit.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const crd = parse(readFileSync(join(ROOT, 'crds', 'sluice.dev_ratelimitpolicies.yaml'), 'utf8'));
const schema = crd.spec.versions[0].schema.openAPIV3Schema;

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

/** Enough of OpenAPI v3 validation for this schema (types, enums, bounds, patterns, required, unknown fields). CEL rules are not run. */
function validate(value: unknown, node: Schema, path: string, out: string[]): string[] {
  if (value === undefined || value === null) return out;
  const type = node.type;
  if (type === 'object') {
    if (typeof value !== 'object' || Array.isArray(value)) return [...out, `${path}: expected an object`];
    const obj = value as Record<string, unknown>;
    for (const r of node.required ?? []) if (obj[r] === undefined) out.push(`${path}.${r}: required`);
    if (node.properties) {
      for (const [k, v] of Object.entries(obj)) {
        if (!(k in node.properties)) out.push(`${path}.${k}: unknown field`);
        else validate(v, node.properties[k], `${path}.${k}`, out);
      }
    }
  } else if (type === 'array') {
    if (!Array.isArray(value)) return [...out, `${path}: expected an array`];
    if (node.minItems !== undefined && value.length < node.minItems) out.push(`${path}: fewer than ${node.minItems} items`);
    if (node.maxItems !== undefined && value.length > node.maxItems) out.push(`${path}: more than ${node.maxItems} items`);
    value.forEach((item, i) => validate(item, node.items, `${path}[${i}]`, out));
  } else if (type === 'string') {
    if (typeof value !== 'string') return [...out, `${path}: expected a string`];
    if (node.enum && !node.enum.includes(value)) out.push(`${path}: ${value} not in ${node.enum.join(', ')}`);
    if (node.pattern && !new RegExp(node.pattern).test(value)) out.push(`${path}: does not match ${node.pattern}`);
    if (node.maxLength !== undefined && value.length > node.maxLength) out.push(`${path}: longer than ${node.maxLength}`);
    if (node.minLength !== undefined && value.length < node.minLength) out.push(`${path}: shorter than ${node.minLength}`);
  } else if (type === 'integer') {
    if (!Number.isInteger(value)) return [...out, `${path}: expected an integer`];
    if (node.minimum !== undefined && (value as number) < node.minimum) out.push(`${path}: below ${node.minimum}`);
    if (node.maximum !== undefined && (value as number) > node.maximum) out.push(`${path}: above ${node.maximum}`);
  } else if (type === 'boolean' && typeof value !== 'boolean') out.push(`${path}: expected a boolean`);
  return out;
}

function policiesIn(file: string): any[] {
  return parseAllDocuments(readFileSync(join(ROOT, file), 'utf8'))
    .map((d) => d.toJS())
    .filter((o) => o?.kind === 'RateLimitPolicy' && String(o.apiVersion).startsWith('sluice.dev/'));
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
      const { status: _status, ...withoutStatus } = p;
      expect({ name: p.metadata.name, problems: validate(withoutStatus, schema, '', []) }).toEqual({ name: p.metadata.name, problems: [] });
      expect(compilePolicy(p)).toHaveProperty('policy');
    }
  });

  it('rejects what the translator rejects', () => {
    const base = { apiVersion: 'sluice.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name: 'p', namespace: 'default' } };
    const target = [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }];
    const bad: Record<string, unknown>[] = [
      { targetRefs: target, local: { rules: [{ limit: { requests: 10, unit: 'Fortnight' } }] } },
      { targetRefs: target, local: { rules: [{ limit: { requests: 0, unit: 'Second' } }] } },
      { targetRefs: target, local: { rules: [{ limit: { requests: 1, unit: 'Second' }, burst: 0 }] } },
      { targetRefs: target, global: { failureMode: 'Maybe', rules: [{ limit: { requests: 1, unit: 'Second' } }] } },
      { targetRefs: target, local: { rules: [{ clientSelectors: [{ headers: [{ name: 'x', type: 'Prefix', value: 'a' }] }], limit: { requests: 1, unit: 'Second' } }] } },
      { targetRefs: target, local: { rules: [{ name: 'bad name', limit: { requests: 1, unit: 'Second' } }] } },
      { targetRefs: target, local: { rules: [] } },
      { targetRefs: target, responseHeaders: { draft: 'Draft3' }, local: { rules: [{ limit: { requests: 1, unit: 'Second' } }] } },
      { targetRefs: target, local: { rules: [{ clientSelectors: [{ methods: ['get'] }], limit: { requests: 1, unit: 'Second' } }] } },
    ];
    for (const spec of bad) {
      expect({ spec, schema: validate({ ...base, spec }, schema, '', []).length > 0 }).toEqual({ spec, schema: true });
      expect({ spec, translator: compilePolicy({ ...base, spec }) }).toEqual({ spec, translator: { error: expect.any(String) } });
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
