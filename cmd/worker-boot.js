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
// The folder and its checks: cmd/compile-cache.js.
import { flushCompileCache } from 'node:module';
import { enableSluiceCompileCache } from './compile-cache.js';

const cached = enableSluiceCompileCache();
await import('./worker-thread.ts');
// Written now, not when the thread exits: the next worker to start (a replacement) reads it.
if (cached) flushCompileCache();
