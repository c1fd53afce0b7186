// Node's compile cache for Sluice's processes and worker threads (bin/sluice.js, cmd/worker-boot.js):
// stripped TypeScript and V8's code cache on disk, keyed by content. Without it Node strips every
// source with a WebAssembly compiler whose memory grows to the largest file and is never given
// back (~40 MB of RSS per thread), and compiles everything afresh. Plain JavaScript: it must run
// before anything is type-stripped. A thread does not inherit its parent's setting: each calls this.
//
// The cache is code V8 will run, so it lives in a folder of this user's own that no one else may
// write (a shared /tmp lets another user create the folder first): otherwise there is no cache,
// which only costs the memory and the time. NODE_COMPILE_CACHE names another folder and
// NODE_DISABLE_COMPILE_CACHE=1 turns it off, as for any Node process.
//
// Bounded: Node never removes anything from the folder ("to clean up the generated compile cache,
// simply remove the cache directory", its documentation says) and keys entries by content, so
// every edited source, every checkout and every release adds entries (80 MB / 12 400 entries were
// seen on a development box). So each Sluice installation (the checkout's real path and its
// version) has a folder of its own under that folder, and each `sluice` process at its start
// (pruneSluiceCompileCache, not the worker threads) keeps its own and the one used most recently
// before it (a rollback, another checkout), removes the others, and starts its own afresh once it
// holds more than MAX_ENTRIES entries (about two full sets of Sluice's and its libraries' modules).
// A folder given with NODE_COMPILE_CACHE is the user's: used as it is, never pruned.
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, utimesSync } from 'node:fs';
import { constants, enableCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Entries (one per module compiled) past which an installation's folder is started afresh. */
export const MAX_ENTRIES = 3000;
/** Installations' folders kept besides the running one's (the most recently used first). */
export const KEEP_OTHERS = 1;
/** An installation's folder name: 16 hex digits (sha256 of its real path and version). */
const INSTALLATION = /^[0-9a-f]{16}$/;

/**
 * Where this installation's cache goes: `folder`, inside `base` (ours to prune), or the user's
 * NODE_COMPILE_CACHE as it is (`base` null). `env` and `tmp`: the process's (tests give others).
 */
export function compileCacheFolders(env = process.env, tmp = tmpdir()) {
  if (env.NODE_COMPILE_CACHE) return { base: null, folder: env.NODE_COMPILE_CACHE, key: null };
  const base = join(tmp, `sluice-compile-cache-${process.getuid?.() ?? 0}`);
  const root = fileURLToPath(new URL('..', import.meta.url));
  let version = 'unknown';
  try {
    version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  } catch {
    // (an installation without its package.json: its path alone names it)
  }
  let where = root;
  try {
    where = realpathSync(root);
  } catch {
    // as given
  }
  const key = createHash('sha256').update(`${where}\0${version}`).digest('hex').slice(0, 16);
  return { base, folder: join(base, key), key };
}

/** A folder this user owns that nobody else may write (made so when missing), or false. */
function ownFolder(folder) {
  const uid = process.getuid?.() ?? 0;
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const stat = lstatSync(folder);
  return stat.isDirectory() && stat.uid === uid && (stat.mode & 0o022) === 0;
}

/** True when the cache is on. */
export function enableSluiceCompileCache() {
  try {
    const { base, folder } = compileCacheFolders();
    // The base folder checked, then this installation's in it (only its owner can have made that one).
    if (base !== null && !ownFolder(base)) return false;
    return ownFolder(folder) && enableCompileCache(folder).status === constants.compileCacheStatus.ENABLED;
  } catch {
    // No folder to be had (read-only file system): start without the cache.
    return false;
  }
}

/**
 * At a process's start, before enableSluiceCompileCache: the bounds above. Removes synchronously:
 * it has work only after an upgrade, a checkout switch or once the bound is passed, and a process
 * that ends soon after starting (`sluice --version`) would otherwise never finish it. Never throws.
 */
export function pruneSluiceCompileCache(env = process.env, tmp = tmpdir()) {
  try {
    const { base, folder, key } = compileCacheFolders(env, tmp);
    if (base === null || !ownFolder(base) || !ownFolder(folder)) return;
    const now = new Date();
    utimesSync(folder, now, now); // used now: the most recent
    const remove = (path) => {
      try {
        rmSync(path, { recursive: true, force: true });
      } catch {
        // (another process removing it too, or not ours to remove: left)
      }
    };
    // Node's own folders in ours (one per Node version and V8 flags), each an entry per module.
    const caches = readdirSync(folder, { withFileTypes: true }).filter((e) => e.isDirectory());
    if (caches.reduce((sum, e) => sum + readdirSync(join(folder, e.name)).length, 0) > MAX_ENTRIES) for (const e of caches) remove(join(folder, e.name));
    const others = readdirSync(base, { withFileTypes: true })
      .filter((e) => e.name !== key)
      .map((e) => ({ path: join(base, e.name), installation: e.isDirectory() && INSTALLATION.test(e.name), mtime: lstatSync(join(base, e.name)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    let kept = 0;
    // Anything else in the folder is not ours to keep (Node's folders of the layout before this one).
    for (const other of others) if (!other.installation || kept++ >= KEEP_OTHERS) remove(other.path);
  } catch {
    // Pruning is housekeeping: a folder that cannot be read is left as it is.
  }
}
