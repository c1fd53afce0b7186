import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { LOSS_SETTLE_MS, ManifestFolder, type ReadError, type SourceProblem } from '../../controller/sources/manifest-folder.ts';
import { describeIfPossible } from '../support/suite.ts';

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

  it('follows a creationTimestamp the manifest sets or edits (a fresh read would take it), else keeps the first sight', () => {
    // Route precedence (older wins) reads it: a reader that kept the first value served another
    // route than a fresh `sluice run` on the same folder (test/e2e/incremental-soundness.test.ts).
    let now = new Date('2026-03-01T00:00:00Z');
    const folder = new ManifestFolder(dir, () => now);
    const stamped = () => folder.load().snapshot.httpRoutes[0]!.metadata;
    writeFileSync(join(dir, 'r.yaml'), route('/a'));
    expect(stamped().creationTimestamp).toBe('2026-03-01T00:00:00Z');
    now = new Date('2026-03-02T00:00:00Z');
    writeFileSync(join(dir, 'r.yaml'), route('/a').replace('metadata: {', 'metadata: {creationTimestamp: "2020-01-01T00:00:00Z", '));
    expect(stamped()).toMatchObject({ creationTimestamp: '2020-01-01T00:00:00Z', generation: 1 });
    writeFileSync(join(dir, 'r.yaml'), route('/a'));
    expect(stamped().creationTimestamp).toBe('2026-03-01T00:00:00Z');
  });

  it('a file truncated and written again by a slow writer never loses its objects, however late the read', async () => {
    const folder = new ManifestFolder(dir);
    const two = `${route('/a')}---\n${route('/b').replace('name: r', 'name: r2')}`;
    writeFileSync(join(dir, 'r.yaml'), two);
    expect(folder.load().snapshot.httpRoutes).toHaveLength(2);
    writeFileSync(join(dir, 'r.yaml'), '');
    // The watcher's read comes 150 ms after the truncate (a loaded machine): the file looks settled by its age.
    await new Promise((r) => setTimeout(r, 150));
    expect(folder.load().snapshot.httpRoutes).toHaveLength(2);
    writeFileSync(join(dir, 'r.yaml'), `${two}# rewritten\n`);
    const rewritten = folder.load();
    expect(rewritten.snapshot.httpRoutes).toHaveLength(2);
    expect(rewritten.settling).toEqual([]);
  });

  it('a file caught mid-write (truncated in place a moment ago) keeps its objects until it settles', async () => {
    const folder = new ManifestFolder(dir);
    const two = `${route('/a')}---\n${route('/b').replace('name: r', 'name: r2')}`;
    writeFileSync(join(dir, 'r.yaml'), two);
    expect(folder.load().snapshot.httpRoutes).toHaveLength(2);
    writeFileSync(join(dir, 'r.yaml'), ''); // what an in-place writer leaves between truncate and write
    const caught = folder.load();
    expect(caught.snapshot.httpRoutes).toHaveLength(2);
    expect(caught.settling).toEqual(['r.yaml']);
    expect(caught.changed).toBe(false);
    // Read again later but still within LOSS_SETTLE_MS of first seeing the loss: still kept,
    // however old the file's modification time (a writer descheduled between truncate and write).
    await new Promise((r) => setTimeout(r, 120));
    expect(folder.load().snapshot.httpRoutes).toHaveLength(2);
    // A file that really was emptied is read as empty once the loss has stood for LOSS_SETTLE_MS.
    await new Promise((r) => setTimeout(r, LOSS_SETTLE_MS));
    const settled = folder.load();
    expect(settled.snapshot.httpRoutes).toHaveLength(0);
    expect(settled.settling).toEqual([]);
    expect(settled.changed).toBe(true);
    // Objects added are taken at once, however fresh the file.
    writeFileSync(join(dir, 'r.yaml'), two);
    expect(folder.load().snapshot.httpRoutes).toHaveLength(2);
  });

  it('keeps the last good objects of a file that stops parsing, and says why', () => {
    const folder = new ManifestFolder(dir);
    writeFileSync(join(dir, 'r.yaml'), route('/good'));
    folder.load();
    writeFileSync(join(dir, 'r.yaml'), 'kind: HTTPRoute\n  bad: [indent\n');
    const { snapshot, problems } = folder.load();
    expect(snapshot.httpRoutes.map((r) => r.spec.rules?.[0].matches?.[0].path?.value)).toEqual(['/good']);
    expect(problems).toEqual([
      {
        code: 'SLU_MANIFEST_YAML',
        file: 'r.yaml',
        message: "invalid YAML in document 1 at line 1, column 7: Nested mappings are not allowed in compact mappings; keeping this file's last good objects until it parses again",
      },
    ]);
  });

  it('refuses a repeated key, block or flow, naming its line and column, as the parser did; merge keys are no repeat', () => {
    const base = `apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec:\n  ports: [{port: 80}]\n`;
    const cases: [string, string][] = [
      [`${base}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  name: c\n`, 'invalid YAML in document 2 at line 11, column 3: Map keys must be unique'],
      [`${base}---\napiVersion: v1\nkind: Service\nmetadata: {name: b, labels: {x: "1", x: "2"}}\n`, 'invalid YAML in document 2 at line 9, column 38: Map keys must be unique'],
    ];
    for (const [text, message] of cases) {
      writeFileSync(join(dir, 'dup.yaml'), text);
      expect(new ManifestFolder(dir).load().problems.map((p) => p.message)).toEqual([`${message}; its objects are left out until it parses again`]);
    }
    writeFileSync(join(dir, 'dup.yaml'), `${base}---\nbase: &base {apiVersion: v1, kind: Service}\n---\n<<: {apiVersion: v1, kind: Service}\nmetadata: {name: m, namespace: default}\nspec: {ports: [{port: 81}]}\n`);
    const merged = new ManifestFolder(dir).load();
    expect(merged.snapshot.services.map((svc) => svc.metadata.name).sort()).toEqual(['a', 'm']);
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
    expect(snapshot.httpRoutes.map((r) => r.spec.rules?.[0].matches?.[0].path?.value)).toEqual(['/a']);
    expect(problems[0]!.message).toMatch(/also defined in a.yaml/);
  });

  describe('read errors keep the last good objects', () => {
    it('a folder renamed away and back: kept while gone, then read again', () => {
      const folder = new ManifestFolder(dir);
      writeFileSync(join(dir, 'r.yaml'), route('/a'));
      expect(folder.load().snapshot.httpRoutes).toHaveLength(1);
      renameSync(dir, `${dir}.away`);
      try {
        const gone = folder.load();
        expect(gone.snapshot.httpRoutes).toHaveLength(1);
        expect(gone.changed).toBe(true);
        expect(gone.readErrors).toEqual([{ file: dir, cause: 'ENOENT' }]);
        expect(gone.problems).toEqual([
          { code: 'SLU_SOURCE_READ', file: dir, message: 'cannot read: ENOENT: no such file or directory; keeping the last good objects of every file under it until it reads again' },
        ]);
        expect(folder.load().changed).toBe(false);
      } finally {
        renameSync(`${dir}.away`, dir);
      }
      const back = folder.load();
      expect(back).toMatchObject({ problems: [], readErrors: [], changed: true });
      expect(back.snapshot.httpRoutes.map((r) => r.spec.rules?.[0].matches?.[0].path?.value)).toEqual(['/a']);
    });

    it('a folder replaced by a file: kept (ENOTDIR)', () => {
      const folder = new ManifestFolder(dir);
      writeFileSync(join(dir, 'r.yaml'), route('/a'));
      folder.load();
      rmSync(dir, { recursive: true });
      writeFileSync(dir, 'not a folder');
      const load = folder.load();
      expect(load.snapshot.httpRoutes).toHaveLength(1);
      expect(load.readErrors).toEqual([{ file: dir, cause: 'ENOTDIR' }]);
      rmSync(dir);
      mkdirSync(dir);
    });
  });
});

/** A ManifestFolder in its own process (test/support/folder-reader.ts), started through `wrapper`. */
class FolderReader {
  private readonly child: ChildProcess;
  private readonly lines: AsyncIterator<string>;

  constructor(dir: string, wrapper: string[] = []) {
    const command = [...wrapper, process.execPath, join(import.meta.dirname, '..', 'support', 'folder-reader.ts'), dir];
    this.child = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.child.stdout! })[Symbol.asyncIterator]();
  }

  get pid(): number {
    return this.child.pid!;
  }

  async ready(): Promise<void> {
    expect(await this.next()).toBe('ready');
  }

  async load(): Promise<{ routes: string[]; problems: SourceProblem[]; readErrors: ReadError[]; changed: boolean }> {
    this.child.stdin!.write('load\n');
    return JSON.parse(await this.next());
  }

  stop(): void {
    this.child.stdin!.end();
    this.child.kill();
  }

  private async next(): Promise<string> {
    const { value, done } = await this.lines.next();
    if (done) throw new Error('the folder reader exited');
    return value;
  }
}

const asRoot = process.getuid?.() === 0;
const has = (tool: string) => {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

// As root, chmod denies nothing: the reader runs as nobody (setpriv), and the test, as root, changes modes.
describeIfPossible('manifest folder read errors as another user', asRoot && has('setpriv') ? null : 'needs root and setpriv (util-linux) to run the reader as nobody')(
  'ManifestFolder: unreadable files and folders (EACCES, as nobody)',
  () => {
    let dir: string;
    let reader: FolderReader;
    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sluice-folder-'));
      chmodSync(dir, 0o755);
      mkdirSync(join(dir, 'team'), { mode: 0o755 });
      writeFileSync(join(dir, 'a.yaml'), route('/a').replace('name: r', 'name: a'), { mode: 0o644 });
      writeFileSync(join(dir, 'team', 'b.yaml'), route('/b').replace('name: r', 'name: b'), { mode: 0o644 });
      writeFileSync(join(dir, 'team', 'c.yaml'), route('/c').replace('name: r', 'name: c'), { mode: 0o644 });
      reader = new FolderReader(dir, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
      await reader.ready();
      expect(await reader.load()).toMatchObject({ routes: ['a', 'b', 'c'], problems: [] });
    });
    afterEach(() => {
      reader.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('a file made unreadable keeps its objects, and reads again when allowed', async () => {
      chmodSync(join(dir, 'a.yaml'), 0o000);
      const denied = await reader.load();
      expect(denied).toMatchObject({ routes: ['a', 'b', 'c'], readErrors: [{ file: 'a.yaml', cause: 'EACCES' }], changed: true });
      expect(denied.problems).toEqual([
        { code: 'SLU_SOURCE_READ', file: 'a.yaml', message: "cannot read: EACCES: permission denied; keeping this file's last good objects until it reads again" },
      ]);
      // Meanwhile another file changes and is read: only the unreadable one is frozen.
      writeFileSync(join(dir, 'team', 'c.yaml'), route('/c').replace('name: r', 'name: c2'));
      expect(await reader.load()).toMatchObject({ routes: ['a', 'b', 'c2'], readErrors: [{ file: 'a.yaml', cause: 'EACCES' }] });
      chmodSync(join(dir, 'a.yaml'), 0o644);
      expect(await reader.load()).toMatchObject({ routes: ['a', 'b', 'c2'], problems: [], readErrors: [], changed: true });
    });

    it('a sub-folder made unreadable keeps every file under it', async () => {
      chmodSync(join(dir, 'team'), 0o000);
      const denied = await reader.load();
      expect(denied).toMatchObject({ routes: ['a', 'b', 'c'], readErrors: [{ file: 'team', cause: 'EACCES' }] });
      expect(denied.problems[0]!.message).toBe('cannot read: EACCES: permission denied; keeping the last good objects of every file under it until it reads again');
      chmodSync(join(dir, 'team'), 0o755);
      rmSync(join(dir, 'team', 'c.yaml'));
      // A file gone keeps its objects until it has stayed gone LOSS_SETTLE_MS (an editor's save by rename).
      expect(await reader.load()).toMatchObject({ routes: ['a', 'b', 'c'] });
      await new Promise((r) => setTimeout(r, LOSS_SETTLE_MS));
      expect(await reader.load()).toMatchObject({ routes: ['a', 'b'], problems: [], readErrors: [] });
    });
  },
);

describeIfPossible('manifest folder out of descriptors', asRoot && has('prlimit') ? null : 'needs root and prlimit (util-linux) to lower a running reader\'s descriptor limit')(
  'ManifestFolder: out of file descriptors (EMFILE)',
  () => {
    it('keeps the whole folder while the listing fails, and reads it again once descriptors are back', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-folder-'));
      writeFileSync(join(dir, 'a.yaml'), route('/a').replace('name: r', 'name: a'));
      const reader = new FolderReader(dir);
      try {
        await reader.ready();
        expect(await reader.load()).toMatchObject({ routes: ['a'], problems: [] });
        // Soft limit 3: stdin, stdout and stderr take 0-2, so every new descriptor fails with EMFILE.
        execFileSync('prlimit', ['--pid', String(reader.pid), '--nofile=3:']);
        const starved = await reader.load();
        expect(starved).toMatchObject({ routes: ['a'], readErrors: [{ file: dir, cause: 'EMFILE' }], changed: true });
        expect(starved.problems).toEqual([
          { code: 'SLU_SOURCE_READ', file: dir, message: 'cannot read: EMFILE: too many open files; keeping the last good objects of every file under it until it reads again' },
        ]);
        execFileSync('prlimit', ['--pid', String(reader.pid), '--nofile=1024:']);
        expect(await reader.load()).toMatchObject({ routes: ['a'], problems: [], readErrors: [], changed: true });
      } finally {
        reader.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
