// Keeps process.nextTick on its fast path for the life of the isolate (issue #14).
//
// Node's nextTick builds each tick object with an object literal whose keys are computed (three
// symbols, then `callback` and `args`). V8 records, per computed key, the one object shape it saw
// there, held weakly. A garbage collection that reduces memory (Sluice's start-up GC, cmd/memory.ts,
// and V8's own memory reducer once a process goes idle) does not keep shapes no live object uses,
// and between event-loop turns no tick object is alive: the recorded shapes are cleared. V8's
// runtime then reads the next tick object's shape as a different one and marks those keys
// megamorphic for good, and from then on every nextTick defines its properties through the runtime
// with a shape-transition lookup each. Measured: nextTick + its run went 40 -> 440-1 190 ns in a
// bare Node 24 after one such GC; Sluice spent ~1 us per proxied request more in nextTick than the
// raw forwarder although it calls it less than half as often. One tick object kept alive keeps the
// shapes, so the recorded ones stay valid. Taken through async_hooks (the TickObject resource) with
// a hook enabled for one call only, so nothing else pays for it.

import { createHook } from 'node:async_hooks';

let pinned: object | null = null;

function noop(): void {}

/** Once per isolate (the main thread and each worker thread), before the first memory-reducing GC. */
export function pinTickObjectShape(): void {
  if (pinned !== null) return;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') pinned ??= resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
}
