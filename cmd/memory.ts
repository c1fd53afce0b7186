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
//
// Heap growth after it: a memory-reducing GC sets the next full GC's limit at V8's minimal growth
// (1.1x the live heap), and V8 starts incremental marking as soon as less than the young
// generation's capacity (up to 2 x 32 MB with bin/sluice.js's semi-space cap) is left below that
// limit. With a large configuration (~200 MB live at 10 000 routes) that is at once: the first
// configuration edits after start ran while V8 marked the whole heap (~200 ms of marking steps on
// the main thread), for nothing — everything live had just been compacted. So this GC alone grows
// by STARTUP_HEAP_GROWTH_PERCENT (V8's --heap-growing-percent, set around it and reset after: the
// full GCs after it follow V8's own policy). The room costs no memory until garbage fills it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** The next full GC after the start-up one comes at 1.5x the live heap (V8's reducing GC leaves 1.1x). */
export const STARTUP_HEAP_GROWTH_PERCENT = 50;

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
    // A growth the user gave Node on its command line (NODE_OPTIONS does not take V8 flags) is theirs.
    const growthSet = process.execArgv.some((arg) => /^--heap[-_]growing[-_]percent/.test(arg));
    if (!growthSet) setFlagsFromString(`--heap-growing-percent=${STARTUP_HEAP_GROWTH_PERCENT}`);
    try {
      gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    } finally {
      if (!growthSet) setFlagsFromString('--heap-growing-percent=0');
    }
  }).unref();
}
