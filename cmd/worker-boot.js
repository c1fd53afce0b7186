// Entry of a --workers thread: turns V8's compile cache on (node:module) before the worker loads
// its modules, then loads them. Plain JavaScript, as bin/sluice.js, so that nothing is
// type-stripped before the cache is on: a worker whose sources all come from the cache never
// starts Node's WebAssembly type stripper (measured: 2 workers add 117 MB of RSS with a warm
// cache, 123 MB with this file in TypeScript, 139 MB without the cache).
//
// A worker compiles its whole module graph afresh (a thread shares no code with the primary, and
// the primary's cache setting does not reach it); with the cache, a worker after the first — a
// replacement, the next process's — starts in about half the time (measured on a quiet 2-core
// box: 370–450 ms → 185–215 ms from spawn to its first applied version).
//
// The cache is code V8 will run, so it lives in a folder of this user's own that no one else may
// write (a shared /tmp lets another user create the folder first): otherwise there is no cache,
// which only costs the time. NODE_COMPILE_CACHE names another folder and
// NODE_DISABLE_COMPILE_CACHE=1 turns it off, as for any Node process.
import { lstatSync, mkdirSync } from 'node:fs';
import { constants, enableCompileCache, flushCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const uid = process.getuid?.() ?? 0;
const folder = process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), `sluice-compile-cache-${uid}`);
let cached = false;
try {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const stat = lstatSync(folder);
  if (stat.isDirectory() && stat.uid === uid && (stat.mode & 0o022) === 0) cached = enableCompileCache(folder).status === constants.compileCacheStatus.ENABLED;
} catch {
  // No folder to be had (read-only file system): start without the cache.
}
await import('./worker-thread.ts');
// Written now, not when the thread exits: the next worker to start (a replacement) reads it.
if (cached) flushCompileCache();
