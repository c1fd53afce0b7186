// IR versions to worker threads as deltas (ir/delta.ts), through a real structured
// clone as postMessage makes it: the receiver gets every version equal to the sender's, and a part
// that is the same object in the sender's consecutive versions is the same object in the
// receiver's (what lets a worker's compiler reuse it); a changed part is never the old object.
// Property over random edit sequences (reverts to earlier versions among them), with a receiver
// that starts late on a full encoding, and prunes of held parts early and often.

import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { HttpIR, L4IR } from '../../ir/types.ts';
import { IrDeltaDecoder, IrDeltaEncoder, type EncodedIR } from '../../ir/delta.ts';
import { edit, editArb, initialIR } from './support/ir-edits.ts';

const SEED = Number(process.env.SLUICE_FUZZ_SEED ?? 14_2028);

const L4: L4IR = { services: [{ name: 'default/s', vip: '10.96.0.1', port: 80, protocol: 'TCP', endpoints: [{ address: '10.0.0.1', port: 8080 }] }] } as unknown as L4IR;

/** Every part of a version in walk order, paired by position with the other side's. */
function parts(http: HttpIR, l4: L4IR | undefined): object[] {
  const out: object[] = [];
  for (const listener of http.listeners) {
    out.push(listener);
    for (const scope of listener.scopes) {
      out.push(scope);
      for (const virtualHost of scope.virtualHosts) {
        out.push(virtualHost);
        out.push(...virtualHost.routes);
      }
    }
  }
  out.push(...Object.values(http.backends));
  if (l4 !== undefined) out.push(l4);
  return out;
}

/** What postMessage does to a message. */
const post = (encoded: EncodedIR): EncodedIR => structuredClone(encoded);

describe('IR deltas', () => {
  it('deliver equal versions and keep the identity of unchanged parts across a structured clone', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.array(editArb, { minLength: 1, maxLength: 20 }), fc.nat(20), fc.integer({ min: 1, max: 40 }), (seed, edits, lateAt, pruneAfter) => {
        const encoder = new IrDeltaEncoder({ pruneAfter });
        const history: HttpIR[] = [];
        const early = new IrDeltaDecoder();
        let late: IrDeltaDecoder | null = null;
        let ir = initialIR(seed);
        let sent = { http: ir, l4: L4 as L4IR | undefined };
        let received = early.decode(post(encoder.encode(ir, L4)));
        let lateReceived: ReturnType<IrDeltaDecoder['decode']> | null = null;
        for (let step = 0; step < edits.length; step++) {
          history.push(ir);
          // Now and then a version from before comes back (an edit reverted): old parts reappear.
          ir = edits[step].kind % 7 === 6 ? history[edits[step].a % history.length] : edit(ir, edits[step]);
          const l4 = step % 3 === 2 ? structuredClone(L4) : sent.l4;
          const delta = post(encoder.encode(ir, l4));
          if (step === lateAt % edits.length) {
            // A worker started now: the current version in full, deltas after it.
            late = new IrDeltaDecoder();
            lateReceived = late.decode(post(encoder.encode(ir, l4, true)));
          } else if (late !== null) {
            lateReceived = late.decode(structuredClone(delta));
          }
          const next = early.decode(delta);
          expect(next).toEqual({ http: ir, l4 });
          if (lateReceived !== null) expect(lateReceived).toEqual({ http: ir, l4 });

          // Same object before and after on the sender ⇔ same object on the receiver.
          const before = new Set(parts(sent.http, sent.l4));
          const receivedBefore = new Set(parts(received.http, received.l4));
          const now = parts(ir, l4);
          const receivedNow = parts(next.http, next.l4);
          for (let i = 0; i < now.length; i++) expect(receivedBefore.has(receivedNow[i])).toBe(before.has(now[i]));
          sent = { http: ir, l4 };
          received = next;
        }
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('sends only the changed path: one rule edited among 2 000 is a few parts, the rest numbers', () => {
    const encoder = new IrDeltaEncoder();
    const decoder = new IrDeltaDecoder();
    let ir = initialIR(1);
    const listener = ir.listeners[0];
    const scope = listener.scopes[0];
    const routes = Array.from({ length: 2000 }, (_, i) => ({ ...scope.virtualHosts[0].routes[0] ?? initialIR(2).listeners[0].scopes[0].virtualHosts[0].routes[0], name: `r${i}` }));
    const virtualHost = { ...scope.virtualHosts[0], routes };
    ir = { ...ir, listeners: [{ ...listener, scopes: [{ ...scope, virtualHosts: [virtualHost, ...scope.virtualHosts.slice(1)] }, ...listener.scopes.slice(1)] }, ...ir.listeners.slice(1)] };
    decoder.decode(post(encoder.encode(ir, undefined)));

    const changed = { ...routes[1234], filters: [] };
    const next: HttpIR = { ...ir, listeners: [{ ...ir.listeners[0], scopes: [{ ...ir.listeners[0].scopes[0], virtualHosts: [{ ...virtualHost, routes: routes.map((r, i) => (i === 1234 ? changed : r)) }, ...ir.listeners[0].scopes[0].virtualHosts.slice(1)] }, ...ir.listeners[0].scopes.slice(1)] }, ...ir.listeners.slice(1)] };
    const delta = encoder.encode(next, undefined);
    // Defined parts: the listener, its scope, the virtual host, the rule; everything else by number.
    expect(JSON.stringify(delta).match(/"id":/g)).toHaveLength(4);
    expect(decoder.decode(post(delta))).toEqual({ http: next, l4: undefined });
  });

  it('a receiver that missed a version refuses the next delta (the pool then sends it in full)', () => {
    const encoder = new IrDeltaEncoder();
    const decoder = new IrDeltaDecoder();
    const v1 = initialIR(3);
    decoder.decode(post(encoder.encode(v1, undefined)));
    const v2 = edit(v1, { kind: 0, a: 0, b: 0, c: 1 });
    encoder.encode(v2, undefined); // never delivered
    const v3 = edit(v2, { kind: 2, a: 1, b: 1, c: 2 });
    expect(() => decoder.decode(post(encoder.encode(v3, undefined)))).toThrow(/does not hold/);
    expect(decoder.decode(post(encoder.encode(v3, undefined, true)))).toEqual({ http: v3, l4: undefined });
  });
});
