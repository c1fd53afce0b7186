// One memory-reducing garbage collection once a process serves its first version (README "Memory").
// Start-up (module loading, YAML parsing, validation, the first translation and compile) allocates
// far more than serving keeps: V8 grows the young generation for it (to 32 MB in `sluice run` with
// the bench's 50-rule table) and leaves start-up garbage and bytecode in the old generation, and
// nothing gives that back while the process stays idle. V8 gives it back on a memory-pressure GC,
// which embedders such as Chrome request and Node has no API for; its gc() extension's
// "last-resort" flavour is that GC (CollectAllAvailableGarbage: shrinks the young generation,
// compacts, flushes unused bytecode). jest's leak detector reaches gc() the same way: the flag,
// then a fresh context that has it, without exposing gc() to Sluice's own global scope.
// Measured on `sluice run` with the bench table, idle: RSS 157 -> 118 MB; it costs one full GC
// (tens of ms of one thread, once). At 10 000 routes it drops 2.5 -> 1.4 MB of bytecode, some of it
// code the first edits run again; keeping it (--no-flush-bytecode around this GC) was measured and
// did not make the first edits after start faster (they are slow without any start-up GC too: their
// translation runs cold), so the GC stays as V8 makes it. The flavour matters for memory: a
// regular major GC leaves idle RSS at 10 000 routes ~500 MB, this one ~315 MB.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let done = false;

/** Runs the collection on the next turn of the event loop, once per process. */
export function releaseStartupMemory(): void {
  if (done) return;
  done = true;
  setImmediate(() => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as GcFunction;
    // Contexts made later (worker threads) get no gc() global.
    setFlagsFromString('--no-expose-gc');
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  }).unref();
}
