// The manifest folder re-reads only what changed (issue #14): an unchanged folder gives the very same
// snapshot (nothing read, nothing re-stamped), an edit to one document of a big file parses that
// document only and leaves every other object the same JS object (what lets the Translator reuse
// its work), and positions in problems stay those of the whole file.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';

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
