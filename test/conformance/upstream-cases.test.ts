// Our own translations of the upstream Gateway API tests the shared case folders lack
// (test/conformance/gateway-api/upstream-cases/): every file is in the shared format and valid for
// the runner, names its upstream source, applies manifests that exist, and the default plan reads
// the folder after the shared ones without ever shadowing a shared test.
import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CLAIMED_FEATURES, loadUpstreamFeatures } from './claimed-features.ts';
import { validateCaseFile } from './gateway-api/schema.ts';
import { DEFAULT_CASE_FOLDERS, loadPlan, PROJECT_CASE_FOLDERS } from './gateway-api/suite.ts';
import type { CaseFile } from './gateway-api/types.ts';

const projectRoot = join(import.meta.dirname, '..', '..');
const sharedRoot = join(projectRoot, '..');
const sharedSuite = join(sharedRoot, 'shared', 'conformance', 'gateway-api');
const ours = PROJECT_CASE_FOLDERS.map((d) => join(projectRoot, d));
const files = ours.flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => join(dir, f)));
const read = (f: string): CaseFile & { description: string } => JSON.parse(readFileSync(f, 'utf8'));

describe('upstream-cases: our translations of the held-out upstream tests', () => {
  it('holds the upstream tests the shared folders lack', () => {
    expect(files.length).toBeGreaterThanOrEqual(40);
  });

  it.each(files.map((f) => [basename(f), f]))('%s is a valid case file named after its upstream source', (_name, f) => {
    const data = read(f);
    expect(validateCaseFile(data)).toEqual([]);
    expect(`${data.name}.json`).toBe(basename(f));
    const upstream = data.upstream as { goFile: string; commit: string };
    expect(upstream.goFile).toMatch(/^conformance\/tests\/[a-z0-9-]+\.go$/);
    expect(data.description).toContain(upstream.goFile);
    expect(data.description).toContain(upstream.commit);
    const known = new Set(loadUpstreamFeatures().features.map((x) => x.name));
    expect(data.features.map((x) => x.name).filter((n) => !known.has(n))).toEqual([]);
    // Manifests are the shared suite's, used in place (never copied into the project).
    if (existsSync(sharedSuite)) expect(data.manifests.filter((m) => !existsSync(join(sharedRoot, m)))).toEqual([]);
  });

  it('plans every file after the shared folders; a claimed test is runnable, none repeats a shared name', () => {
    if (!DEFAULT_CASE_FOLDERS.every((d) => existsSync(join(sharedSuite, d)))) return;
    const shared = loadPlan(DEFAULT_CASE_FOLDERS.map((d) => join(sharedSuite, d)), [], CLAIMED_FEATURES);
    const plan = loadPlan(DEFAULT_CASE_FOLDERS.map((d) => join(sharedSuite, d)), [], CLAIMED_FEATURES, ours);
    const added = plan.slice(shared.length);
    expect(added.map((t) => t.file).sort()).toEqual([...files].sort());
    expect(added.filter((t) => t.missing.length === 0 && (t.problems.length > 0 || !t.data)).map((t) => t.name)).toEqual([]);
    expect(new Set(plan.map((t) => t.name)).size).toBe(plan.length);
  });
});

describe('fallback case folders', () => {
  const folder = (names: string[]): string => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-fallback-'));
    for (const name of names) {
      writeFileSync(join(dir, `${name}.json`), JSON.stringify({ schema: 'gwapi-conformance-case/v1', name, features: [{ name: 'Gateway' }], manifests: [], statusChecks: [], cases: [] }));
    }
    return dir;
  };

  it('a test defined in a primary folder is read from there; the fallback adds only the others', () => {
    const primary = folder(['A', 'B']);
    const fallback = folder(['B', 'C']);
    const plan = loadPlan([primary], [], ['Gateway'], [fallback]);
    expect(plan.map((t) => [t.name, t.file])).toEqual([
      ['A', join(primary, 'A.json')],
      ['B', join(primary, 'B.json')],
      ['C', join(fallback, 'C.json')],
    ]);
    expect(plan.every((t) => t.problems.length === 0 && t.data)).toBe(true);
    expect(loadPlan([primary], ['C'], ['Gateway'], [fallback]).map((t) => t.file)).toEqual([join(fallback, 'C.json')]);
    // A missing fallback folder is no error (the project folder is optional to a foreign checkout).
    expect(loadPlan([primary], [], ['Gateway'], [join(fallback, 'missing')]).map((t) => t.name)).toEqual(['A', 'B']);
  });
});

describe('backendHeaderMatchesPod in the suite README spelling', () => {
  const file = (kase: Record<string, unknown>) => ({
    schema: 'gwapi-conformance-case/v1',
    name: 'T',
    features: [{ name: 'Gateway' }],
    manifests: [],
    cases: [
      {
        name: 'c',
        kind: 'backendHeaderMatchesPod',
        target: { gateway: 'ns/gw', port: 80, scheme: 'http' },
        request: { method: 'GET', host: null, path: '/', headers: {}, protocol: 'HTTP/1.1', followRedirects: true },
        ...kase,
      },
    ],
  });

  it('takes a case-level repeat and the expect flags exactlyOneValue / podNameMustStartWithHeaderValue', () => {
    const expect200 = { status: [200], header: 'Backend', exactlyOneValue: true, podNameMustStartWithHeaderValue: true };
    expect(validateCaseFile(file({ repeat: 100, expect: expect200 }))).toEqual([]);
    expect(validateCaseFile(file({ repeat: '100', expect: expect200 })).join('\n')).toContain('repeat');
    expect(validateCaseFile(file({ repeat: 100, expect: { ...expect200, oneValue: true } })).join('\n')).toContain('unknown field "oneValue"');
  });
});
