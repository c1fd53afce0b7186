// Token buckets in shared memory (--workers): the same decisions as the in-process LocalBuckets,
// and exact when real threads take from one bucket at the same time.
import { describe, expect, it } from '@jest/globals';
import { Worker } from 'node:worker_threads';
import { SharedBuckets, sharedBucketMemory } from '../../dataplane/ratelimit/shared-buckets.ts';
import type { BucketItem, BucketSpec } from '../../dataplane/ratelimit/token-bucket.ts';

const item = (key: string, spec: BucketSpec, enforced = true): BucketItem => ({ key, spec, enforced, report: null, taken: false, lacked: false });
const perMinute = (n: number): BucketSpec => ({ capacity: n, ratePerMs: n / 60_000 });

describe('SharedBuckets', () => {
  it('takes from every bucket of a decision or from none (the all-or-nothing rule), and refills continuously', () => {
    const buckets = new SharedBuckets(sharedBucketMemory(100));
    const small = perMinute(1);
    const large = perMinute(10);
    expect(buckets.takeAll([item('a', small), item('b', large)], 0)).toBe(true);
    // `a` is empty: `b` must keep its token.
    const denied = [item('a', small), item('b', large)];
    expect(buckets.takeAll(denied, 1)).toBe(false);
    expect(denied.map((d) => [d.taken, d.lacked])).toEqual([[false, true], [false, false]]);
    expect(buckets.peek('b', large, 1)).toBeCloseTo(9, 3);
    // A shadow bucket never denies, and is taken only with the enforced group.
    const shadow = [item('c', small), item('a', small, false)];
    expect(buckets.takeAll(shadow, 2)).toBe(true);
    expect(shadow.map((d) => d.taken)).toEqual([true, false]);
    // One minute later `a` holds its token again.
    expect(buckets.takeAll([item('a', small)], 60_001)).toBe(true);
    buckets.refund('a', small, 60_002);
    expect(buckets.peek('a', small, 60_002)).toBeCloseTo(1, 6);
    expect(buckets.size).toBe(3);
  });

  it('stays within its slots with more keys than it holds, and keeps a drained bucket that is in use', () => {
    const buckets = new SharedBuckets(sharedBucketMemory(64));
    const spec = perMinute(2);
    buckets.takeAll([item('hot', spec)], 0);
    buckets.takeAll([item('hot', spec)], 0);
    for (let i = 0; i < 10_000; i++) {
      buckets.takeAll([item(`client-${i}`, spec)], i / 1000);
      if (i % 16 === 0) expect(buckets.takeAll([item('hot', spec)], i / 1000)).toBe(false);
    }
    expect(buckets.size).toBeLessThanOrEqual(128);
  });

  it('admits exactly the capacity when 4 threads take from one bucket at once', async () => {
    const memory = sharedBucketMemory(1000);
    const url = new URL('../../dataplane/ratelimit/shared-buckets.ts', import.meta.url).href;
    // Each thread: 2 000 decisions on one bucket of 1 000 that does not refill within the run.
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.url).then(({ SharedBuckets }) => {
        const buckets = new SharedBuckets(workerData.memory);
        const spec = { capacity: 1000, ratePerMs: 1e-12 };
        let admitted = 0;
        for (let i = 0; i < 2000; i++) {
          const items = [{ key: 'one', spec, enforced: true, report: null, taken: false, lacked: false }, { key: 'two', spec, enforced: true, report: null, taken: false, lacked: false }];
          if (buckets.takeAll(items, 1)) admitted++;
        }
        parentPort.postMessage(admitted);
      });`;
    const counts = await Promise.all(
      Array.from({ length: 4 }, () => new Promise<number>((resolve, reject) => {
        const worker = new Worker(code, { eval: true, workerData: { url, memory } });
        worker.once('message', (n: number) => resolve(n));
        worker.once('error', reject);
      })),
    );
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1000);
    // Both buckets gave exactly the same tokens: no decision took from one and not the other.
    const buckets = new SharedBuckets(memory);
    expect(buckets.peek('one', { capacity: 1000, ratePerMs: 1e-12 }, 1)).toBeCloseTo(0, 6);
    expect(buckets.peek('two', { capacity: 1000, ratePerMs: 1e-12 }, 1)).toBeCloseTo(0, 6);
  });
});
