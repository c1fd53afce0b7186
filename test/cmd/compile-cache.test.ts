// Node's compile cache folder stays bounded (cmd/compile-cache.js): each installation has a folder
// of its own, a start keeps its own and the one used last before it, removes the rest (Node never
// removes anything), and starts its own afresh past MAX_ENTRIES. Real folders in a temp dir
// (TMPDIR), and real `sluice` processes for what bin/sluice.js does with them.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MAX_ENTRIES, compileCacheFolders, pruneSluiceCompileCache } from '../../cmd/compile-cache.js';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;

describe('compile cache folder bounds', () => {
  let tmp: string;
  let base: string;
  // The functions take the temp dir and the environment (a test's process.env does not reach node:os).
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, TMPDIR: tmp, NODE_COMPILE_CACHE: '' });
  const folders = () => compileCacheFolders(env(), tmp);
  const prune = (extra: NodeJS.ProcessEnv = {}) => pruneSluiceCompileCache({ ...env(), ...extra }, tmp);
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'sluice-cc-test-'));
    base = join(tmp, `sluice-compile-cache-${process.getuid!()}`);
  });
  afterEach(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  /** An installation's folder (or any in the base) holding Node's folder `cache` with `files` entries, last used `ageS` seconds ago. */
  const folder = (path: string, files: number, ageS = 0, cache: string | null = 'v24.0.0-x64-1-0'): void => {
    const inner = cache === null ? path : join(path, cache);
    mkdirSync(inner, { recursive: true, mode: 0o700 });
    for (let i = 0; i < files; i++) writeFileSync(join(inner, `e${i}`), 'x');
    const at = new Date(Date.now() - ageS * 1000);
    utimesSync(path, at, at);
  };
  const sluice = (extra: NodeJS.ProcessEnv = {}) => run(process.execPath, [join(ROOT, 'bin/sluice.js'), '--version'], { env: { ...env(), ...extra } });

  it('keeps its own folder and the one used last before it; removes older installations, the layout before and leftovers', async () => {
    const { key } = folders();
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    folder(join(base, 'aaaaaaaaaaaaaaaa'), 3, 3600);
    folder(join(base, 'bbbbbbbbbbbbbbbb'), 3, 60);
    folder(join(base, 'dddddddddddddddd'), 3, 7200);
    folder(join(base, 'v24.21.0-x64-964aae3f-0'), 5, 0, null); // Node's folder straight in ours: the layout before
    folder(join(base, key!), 10, 86_400, 'v24.21.0-x64-2-0'); // its own, however old
    prune();
    expect(readdirSync(base).sort()).toEqual(['bbbbbbbbbbbbbbbb', key].sort());
    expect(readdirSync(join(base, key!, 'v24.21.0-x64-2-0'))).toHaveLength(10); // under the bound: kept
  });

  it('starts its own folder afresh past MAX_ENTRIES', async () => {
    const { key } = folders();
    folder(join(base, key!), MAX_ENTRIES - 10, 0, 'v24.21.0-x64-2-0');
    folder(join(base, key!), 11, 0, 'v24.21.0-x64-3-0');
    prune();
    expect(readdirSync(base)).toEqual([key]);
    expect(readdirSync(join(base, key!))).toEqual([]);
  });

  it('NODE_COMPILE_CACHE is the user\'s folder: used as it is, nothing in it removed', async () => {
    const theirs = join(tmp, 'theirs');
    folder(join(theirs, 'v24.21.0-x64-964aae3f-0'), 3, 0, null);
    folder(join(theirs, 'aaaaaaaaaaaaaaaa'), 1, 3600);
    expect(compileCacheFolders({ NODE_COMPILE_CACHE: theirs }, tmp).folder).toBe(theirs);
    prune({ NODE_COMPILE_CACHE: theirs });
    expect(readdirSync(theirs).sort()).toEqual(['aaaaaaaaaaaaaaaa', 'v24.21.0-x64-964aae3f-0']);
    await sluice({ NODE_COMPILE_CACHE: theirs });
    expect(readdirSync(theirs)).toEqual(expect.arrayContaining(['aaaaaaaaaaaaaaaa', 'v24.21.0-x64-964aae3f-0']));
  });

  it('a real `sluice` start: its cache in its own folder (mode 0700), older installations gone', async () => {
    folder(join(base, 'aaaaaaaaaaaaaaaa'), 3, 7200);
    folder(join(base, 'bbbbbbbbbbbbbbbb'), 3, 3600);
    folder(join(base, 'v24.21.0-x64-964aae3f-0'), 5, 0, null);
    const { stdout } = await sluice();
    expect(stdout).toMatch(/^sluice /);
    const { key } = folders();
    expect(readdirSync(base).sort()).toEqual(['bbbbbbbbbbbbbbbb', key].sort());
    expect(statSync(join(base, key!)).mode & 0o777).toBe(0o700);
    // Node wrote the modules it compiled there.
    const caches = readdirSync(join(base, key!));
    expect(caches.length).toBeGreaterThan(0);
    expect(caches.reduce((n, c) => n + readdirSync(join(base, key!, c)).length, 0)).toBeGreaterThan(10);
  });

  it('a base folder others may write is not used: no cache, nothing removed', async () => {
    folder(join(base, 'aaaaaaaaaaaaaaaa'), 1, 7200);
    folder(join(base, 'bbbbbbbbbbbbbbbb'), 1, 3600);
    folder(join(base, 'cccccccccccccccc'), 1, 1800);
    chmodSync(base, 0o777);
    await sluice();
    expect(readdirSync(base).sort()).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb', 'cccccccccccccccc']);
    expect(existsSync(join(base, folders().key!))).toBe(false);
  });
});
