// The one retry backoff (ir/backoff.ts), with the random source fixed: the exponential ceiling,
// the cap, and the equal-jitter range [ceiling/2, ceiling].
import { describe, expect, it } from '@jest/globals';
import { backoffDelay, type Backoff } from '../../ir/backoff.ts';

const DATAPLANE: Backoff = { initialMs: 200, maxMs: 5_000 };
const lowest = () => 0;
const highest = () => 1 - Number.EPSILON;

describe('backoffDelay', () => {
  it('doubles from initialMs per consecutive failure and stops at maxMs', () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 50].map((failures) => backoffDelay(failures, DATAPLANE, highest));
    expect(ceilings).toEqual([200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
  });

  it('waits at least half the ceiling: equal jitter', () => {
    expect([1, 2, 3, 6].map((failures) => backoffDelay(failures, DATAPLANE, lowest))).toEqual([100, 200, 400, 2500]);
    expect(backoffDelay(3, DATAPLANE, () => 0.5)).toBe(600);
  });

  it('treats 0 failures like the first and survives huge counts', () => {
    expect(backoffDelay(0, { initialMs: 1000, maxMs: 30_000 }, highest)).toBe(1000);
    expect(backoffDelay(10_000, { initialMs: 1000, maxMs: 30_000 }, highest)).toBe(30_000);
  });

  it('spreads peers that failed together over the whole range', () => {
    // A deterministic sequence standing in for Math.random: 11 evenly spaced draws.
    let i = 0;
    const evenly = () => (i++ % 11) / 10.000001;
    const delays = Array.from({ length: 11 }, () => backoffDelay(4, DATAPLANE, evenly));
    expect(new Set(delays).size).toBe(11);
    expect(Math.min(...delays)).toBe(800);
    expect(Math.max(...delays)).toBe(1600);
  });
});
