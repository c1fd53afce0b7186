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
// (tens of ms of one thread, once).
// Bytecode is kept through it: run as is, that GC flushed live bytecode (and with it feedback) of
// functions start-up ran and the first edits run again — at 10 000 routes 2.5 -> 1.4 MB of bytecode
// (V8: last-resort GCs may treat all code as old; its two to seven mark-compacts in a row each age
// every function not run since). Code flushing is off for this one GC only (--no-flush-bytecode,
// --no-flush-baseline-code: no ageing, no flushing; 2.5 -> 2.0 MB, the rest dead code such as
// module top levels and cleared caches), set back as the process started right after it.
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
    setFlagsFromString('--no-flush-bytecode');
    setFlagsFromString('--no-flush-baseline-code');
    try {
      gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    } finally {
      for (const flag of codeFlushingFlags()) setFlagsFromString(flag);
    }
  }).unref();
}

/** V8's code-flushing flags as this process started: V8's defaults unless node's command line set them. */
export function codeFlushingFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return (
    [
      ['flush-bytecode', true],
      ['flush-baseline-code', false],
    ] as const
  ).map(([name, byDefault]) => {
    let on: boolean = byDefault;
    for (const arg of execArgv) {
      const flag = arg.replaceAll('_', '-');
      if (flag === `--${name}`) on = true;
      else if (flag === `--no-${name}`) on = false;
    }
    return on ? `--${name}` : `--no-${name}`;
  });
}
