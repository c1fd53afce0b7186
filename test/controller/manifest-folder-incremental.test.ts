// The manifest folder re-reads only what changed (issue #14): an unchanged folder gives the very same
// snapshot (nothing read, nothing re-stamped), an edit to one document of a big file parses that
// document only and leaves every other object the same JS object (what lets the Translator reuse
// its work), and positions in problems stay those of the whole file.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { LOSS_SETTLE_MS, ManifestFolder } from '../../controller/sources/manifest-folder.ts';

const route = (name: string, path: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}}
spec:
  rules: [{matches: [{path: {value: ${path}}}]}]
`;

const routes = (paths: string[]) => paths.map((p, i) => route(`r${i}`, p)).join('---\n');

describe('ManifestFolder, incrementally', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-folder-inc-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an unchanged folder loads as the same snapshot, not changed', () => {
    writeFileSync(join(dir, 'r.yaml'), routes(['/a', '/b']));
    const folder = new ManifestFolder(dir);
    const first = folder.load();
    const second = folder.load();
    expect(second.changed).toBe(false);
    expect(second.snapshot).toBe(first.snapshot);
    // Rewritten with the same bytes (new mtime): read and hashed again, still the same objects.
    writeFileSync(join(dir, 'r.yaml'), routes(['/a', '/b']));
    const third = folder.load();
    expect(third.changed).toBe(false);
    expect(third.snapshot.httpRoutes[0]).toBe(first.snapshot.httpRoutes[0]);
  });

  it('an edit to one document of a file changes that object only: the others stay the same objects, generation rises on the edited one', () => {
    writeFileSync(join(dir, 'r.yaml'), routes(['/a', '/b', '/c']));
    const folder = new ManifestFolder(dir);
    const before = folder.load().snapshot.httpRoutes;
    writeFileSync(join(dir, 'r.yaml'), routes(['/a', '/edited', '/c']));
    const load = folder.load();
    expect(load.changed).toBe(true);
    const after = load.snapshot.httpRoutes;
    expect(after.map((r) => r.spec.rules?.[0]?.matches?.[0]?.path?.value)).toEqual(['/a', '/edited', '/c']);
    expect(after[0]).toBe(before[0]);
    expect(after[2]).toBe(before[2]);
    expect(after[1]).not.toBe(before[1]);
    expect(after.map((r) => r.metadata.generation)).toEqual([1, 2, 1]);
  });

  it('documents inserted and removed in the middle of a long file: every other object stays the same object, the removed one is gone', () => {
    const paths = Array.from({ length: 100 }, (_, i) => `/p${i}`);
    const docs = paths.map((p, i) => route(`r${i}`, p));
    writeFileSync(join(dir, 'r.yaml'), docs.join('---\n'));
    const folder = new ManifestFolder(dir);
    const before = new Map(folder.load().snapshot.httpRoutes.map((r) => [r.metadata.name, r]));
    // r20 removed, a new route inserted after r49, r60 edited.
    const edited = [...docs.slice(0, 20), ...docs.slice(21, 50), route('new', '/new'), ...docs.slice(50, 60), route('r60', '/edited'), ...docs.slice(61)];
    writeFileSync(join(dir, 'r.yaml'), edited.join('---\n'));
    // As many objects as before: no loss to settle, taken at once.
    const after = folder.load().snapshot.httpRoutes;
    const names = after.map((r) => r.metadata.name);
    expect(names).toContain('new');
    const byName = new Map(after.map((r) => [r.metadata.name, r]));
    for (const [name, r] of before) {
      if (name === 'r20' || name === 'r60') continue;
      expect(byName.get(name)).toBe(r);
    }
    expect(byName.get('r60')!.spec.rules?.[0]?.matches?.[0]?.path?.value).toBe('/edited');
    expect(byName.get('r60')!.metadata.generation).toBe(2);
  });

  it('documents reordered throughout a file (more than a short stretch between unchanged ends) keep their objects', () => {
    const docs = Array.from({ length: 200 }, (_, i) => route(`r${i}`, `/p${i}`));
    writeFileSync(join(dir, 'r.yaml'), docs.join('---\n'));
    const folder = new ManifestFolder(dir);
    const before = folder.load().snapshot.httpRoutes;
    writeFileSync(join(dir, 'r.yaml'), [...docs].reverse().join('---\n'));
    const load = folder.load();
    expect(load.changed).toBe(true);
    const after = load.snapshot.httpRoutes;
    expect(after.map((r) => r.metadata.name)).toEqual(before.map((r) => r.metadata.name).reverse());
    // All but the two ends: the first document's text has no '---' line before it, so theirs changed.
    for (let i = 1; i < after.length - 1; i++) expect(after[i]).toBe(before[before.length - 1 - i]);
  });

  it('a document with a problem is named by its new position after documents are inserted before it', () => {
    const unknown = 'apiVersion: v1\nkind: Frobnicator\nmetadata: {name: f}\n';
    const docs = [route('r0', '/a'), route('r1', '/b'), unknown, route('r2', '/c')];
    writeFileSync(join(dir, 'r.yaml'), docs.join('---\n'));
    const folder = new ManifestFolder(dir);
    expect(folder.load().problems).toEqual([expect.objectContaining({ code: 'SLU_MANIFEST_OBJECT', message: expect.stringMatching(/^document 3: /) })]);
    writeFileSync(join(dir, 'r.yaml'), [route('x', '/x'), ...docs].join('---\n'));
    const load = folder.load();
    expect(load.problems).toEqual([expect.objectContaining({ code: 'SLU_MANIFEST_OBJECT', message: expect.stringMatching(/^document 4: /) })]);
    expect(load.snapshot.httpRoutes.map((r) => r.metadata.name)).toEqual(['x', 'r0', 'r1', 'r2']);
  });

  it('a duplicate in a later file is reported naming the file kept, and goes with it; an object removed and added again starts at generation 1', async () => {
    writeFileSync(join(dir, 'a.yaml'), route('r', '/a'));
    writeFileSync(join(dir, 'b.yaml'), `${route('r', '/b')}---\n${route('s', '/s')}`);
    const folder = new ManifestFolder(dir);
    const first = folder.load();
    expect(first.problems).toEqual([expect.objectContaining({ code: 'SLU_MANIFEST_DUPLICATE', file: 'b.yaml', object: 'HTTPRoute/default/r', message: expect.stringContaining('also defined in a.yaml') })]);
    expect(first.snapshot.httpRoutes.map((r) => r.spec.rules?.[0]?.matches?.[0]?.path?.value)).toEqual(['/a', '/s']);
    // a.yaml edited: r raised to generation 2, still from a.yaml, still the duplicate's problem.
    writeFileSync(join(dir, 'a.yaml'), route('r', '/a2'));
    const second = folder.load();
    expect(second.problems.map((p) => p.code)).toEqual(['SLU_MANIFEST_DUPLICATE']);
    expect(second.snapshot.httpRoutes.find((r) => r.metadata.name === 'r')!.metadata.generation).toBe(2);
    // a.yaml removed: b.yaml's r is taken (its spec differs: generation 3), no problem left.
    rmSync(join(dir, 'a.yaml'));
    const third = folder.load();
    expect(third.problems).toEqual([]);
    expect(third.snapshot.httpRoutes.find((r) => r.metadata.name === 'r')!.spec.rules?.[0]?.matches?.[0]?.path?.value).toBe('/b');
    // a.yaml's own objects stay until it has been gone LOSS_SETTLE_MS (an editor's save by rename).
    expect(third.settling).toEqual(['a.yaml']);
    await new Promise((r) => setTimeout(r, LOSS_SETTLE_MS));
    expect(folder.load().settling).toEqual([]);
    // r renamed away (no object lost: taken at once), then back: a new object again, generation 1.
    writeFileSync(join(dir, 'b.yaml'), `${route('q', '/bq')}---\n${route('s', '/s')}`);
    expect(folder.load().snapshot.httpRoutes.map((r) => r.metadata.name)).toEqual(['q', 's']);
    writeFileSync(join(dir, 'b.yaml'), `${route('r', '/b')}---\n${route('s', '/s')}`);
    expect(folder.load().snapshot.httpRoutes.map((r) => [r.metadata.name, r.metadata.generation])).toEqual([['r', 1], ['s', 1]]);
  });

  it('an edit to the copy that is not used of a duplicated object changes nothing served; an edit to the one used does, as a fresh read sees both', () => {
    writeFileSync(join(dir, 'a.yaml'), routes(['/a', '/b']));
    writeFileSync(join(dir, 'b.yaml'), route('r1', '/duplicate'));
    const folder = new ManifestFolder(dir);
    const paths = (f: ManifestFolder) => f.load().snapshot.httpRoutes.map((r) => r.spec.rules?.[0]?.matches?.[0]?.path?.value);
    expect(paths(folder)).toEqual(['/a', '/b']);
    writeFileSync(join(dir, 'b.yaml'), route('r1', '/duplicate-edited'));
    expect(paths(folder)).toEqual(['/a', '/b']);
    writeFileSync(join(dir, 'a.yaml'), routes(['/a', '/b-edited']));
    expect(paths(folder)).toEqual(['/a', '/b-edited']);
    expect(paths(folder)).toEqual(paths(new ManifestFolder(dir)));
  });

  it('watch hears a file that was replaced by a rename when it is edited again, and files in a folder made later (before the 2 s poll)', async () => {
    writeFileSync(join(dir, 'r.yaml'), routes(['/a']));
    const folder = new ManifestFolder(dir);
    let calls = 0;
    const stop = folder.watch(() => calls++);
    const heard = async (what: () => void) => {
      const before = calls;
      const started = Date.now();
      what();
      while (calls === before && Date.now() - started < 1500) await new Promise((r) => setTimeout(r, 10));
      return calls > before;
    };
    try {
      // Files the folder's reading skips: no call (first, well before the 2 s poll).
      writeFileSync(join(dir, 'notes.txt'), 'x');
      writeFileSync(join(dir, '.r.yaml.swp'), 'x');
      writeFileSync(join(dir, 'r.yaml.next'), 'x');
      await new Promise((r) => setTimeout(r, 300));
      expect(calls).toBe(0);
      for (const path of ['/b', '/c', '/d']) {
        // Written beside it, renamed over it: the file's inode changes every time.
        expect(await heard(() => {
          writeFileSync(join(dir, 'r.yaml.next'), routes([path]));
          renameSync(join(dir, 'r.yaml.next'), join(dir, 'r.yaml'));
        })).toBe(true);
      }
      expect(await heard(() => writeFileSync(join(dir, 'r.yaml'), routes(['/in-place'])))).toBe(true);
      expect(await heard(() => mkdirSync(join(dir, 'sub')))).toBe(true);
      await new Promise((r) => setTimeout(r, 50));
      expect(await heard(() => writeFileSync(join(dir, 'sub', 's.yaml'), routes(['/s'])))).toBe(true);
    } finally {
      stop();
    }
  });

  it('a YAML error in a later document is reported at its document and line in the file', () => {
    writeFileSync(join(dir, 'r.yaml'), routes(['/a', '/b']));
    const folder = new ManifestFolder(dir);
    folder.load();
    const text = `${routes(['/a', '/b'])}---\nkind: HTTPRoute\nmetadata: {name: [x}\n`;
    writeFileSync(join(dir, 'r.yaml'), text);
    const problems = folder.load().problems;
    // Where the yaml library puts it when it parses the whole text.
    const whole = parseAllDocuments(text)[2]!.errors[0]!.linePos![0];
    expect(whole.line).toBeGreaterThan(12);
    expect(problems).toEqual([expect.objectContaining({ code: 'SLU_MANIFEST_YAML', file: 'r.yaml', message: expect.stringMatching(new RegExp(`^invalid YAML in document 3 at line ${whole.line}, column ${whole.col}: `)) })]);
  });
});
