import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';

const route = (path: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules: [{matches: [{path: {value: ${path}}}]}]
`;

describe('ManifestFolder', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-folder-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads multi-document files in sub-folders and defaults the namespace', () => {
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'a.yaml'), `${route('/a')}---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n`);
    const { snapshot, problems } = new ManifestFolder(dir).load();
    expect(problems).toEqual([]);
    expect(snapshot.httpRoutes[0]!.metadata.namespace).toBe('default');
    expect(snapshot.namespaces[0]!.metadata.labels).toEqual({ 'kubernetes.io/metadata.name': 'team' });
  });

  it('raises metadata.generation only when the spec changes', () => {
    const folder = new ManifestFolder(dir);
    writeFileSync(join(dir, 'r.yaml'), route('/a'));
    expect(folder.load().snapshot.httpRoutes[0]!.metadata.generation).toBe(1);
    writeFileSync(join(dir, 'r.yaml'), `# a comment only\n${route('/a')}`);
    expect(folder.load().snapshot.httpRoutes[0]!.metadata.generation).toBe(1);
    writeFileSync(join(dir, 'r.yaml'), route('/b'));
    expect(folder.load().snapshot.httpRoutes[0]!.metadata.generation).toBe(2);
  });

  it('keeps the last good objects of a file that stops parsing, and says why', () => {
    const folder = new ManifestFolder(dir);
    writeFileSync(join(dir, 'r.yaml'), route('/good'));
    folder.load();
    writeFileSync(join(dir, 'r.yaml'), 'kind: HTTPRoute\n  bad: [indent\n');
    const { snapshot, problems } = folder.load();
    expect(snapshot.httpRoutes.map((r) => r.spec.rules[0].matches[0].path.value)).toEqual(['/good']);
    expect(problems[0]!.file).toBe('r.yaml');
    expect(problems[0]!.message).toMatch(/invalid YAML.*keeping this file's last good objects/);
  });

  it('reports unknown kinds and objects without a name, and reads the rest', () => {
    writeFileSync(
      join(dir, 'mixed.yaml'),
      `apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: v1\nkind: Service\nmetadata: {}\n---\n${route('/x')}`,
    );
    const { snapshot, problems } = new ManifestFolder(dir).load();
    expect(snapshot.httpRoutes).toHaveLength(1);
    expect(problems.map((p) => p.message)).toEqual([
      'document 1: ignoring example.com/v1 Widget w: Sluice does not read this kind',
      'document 2: Service needs metadata.name',
    ]);
  });

  it('reports the same object defined twice and keeps the first file', () => {
    writeFileSync(join(dir, 'a.yaml'), route('/a'));
    writeFileSync(join(dir, 'b.yaml'), route('/b'));
    const { snapshot, problems } = new ManifestFolder(dir).load();
    expect(snapshot.httpRoutes.map((r) => r.spec.rules[0].matches[0].path.value)).toEqual(['/a']);
    expect(problems[0]!.message).toMatch(/also defined in a.yaml/);
  });
});
