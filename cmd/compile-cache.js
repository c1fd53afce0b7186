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
import { lstatSync, mkdirSync } from 'node:fs';
import { constants, enableCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** True when the cache is on. */
export function enableSluiceCompileCache() {
  const uid = process.getuid?.() ?? 0;
  const folder = process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), `sluice-compile-cache-${uid}`);
  try {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const stat = lstatSync(folder);
    return stat.isDirectory() && stat.uid === uid && (stat.mode & 0o022) === 0 && enableCompileCache(folder).status === constants.compileCacheStatus.ENABLED;
  } catch {
    // No folder to be had (read-only file system): start without the cache.
    return false;
  }
}
