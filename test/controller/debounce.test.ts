// The reconcile scheduler: a change while idle runs at once; changes during or right after a run
// are a burst and collapse into one run 100 ms after the last (1 s after the first at most).
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { serialDebouncer } from '../../controller/debounce.ts';

describe('serialDebouncer', () => {
  beforeEach(() => {
    jest.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  /** A task that takes `ms` of (fake) time and records when each run started. */
  function recorder(ms: number) {
    const starts: number[] = [];
    const task = async () => {
      starts.push(Date.now());
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    };
    return { starts, scheduler: serialDebouncer(task, (err) => { throw err; }) };
  }

  it('runs a change made while idle at once, and events of the same moment share that run', async () => {
    const { starts, scheduler } = recorder(0);
    scheduler.schedule();
    scheduler.schedule(); // fs.watch reports one save as several events
    await jest.advanceTimersByTimeAsync(0);
    expect(starts).toEqual([1_000_000]);
    // Idle again after the debounce interval: the next change runs at once too.
    await jest.advanceTimersByTimeAsync(500);
    scheduler.schedule();
    await jest.advanceTimersByTimeAsync(0);
    expect(starts).toEqual([1_000_000, 1_000_500]);
    scheduler.stop();
  });

  it('collapses a burst (changes right after a run) into one run 100 ms after the last change', async () => {
    const { starts, scheduler } = recorder(0);
    scheduler.schedule();
    await jest.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 5; i++) {
      scheduler.schedule();
      await jest.advanceTimersByTimeAsync(30);
    }
    expect(starts).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(100);
    // Last change at +120 ms: the burst runs once, 100 ms later.
    expect(starts).toEqual([1_000_000, 1_000_220]);
    scheduler.stop();
  });

  it('a shorter wait asked during a run (a file still being written) is honoured, not stretched by later changes', async () => {
    const { starts, scheduler } = recorder(20);
    scheduler.schedule();
    await jest.advanceTimersByTimeAsync(5);
    scheduler.schedule(50);
    await jest.advanceTimersByTimeAsync(30);
    scheduler.schedule(); // another event of the same write
    await jest.advanceTimersByTimeAsync(20);
    expect(starts).toEqual([1_000_000, 1_000_055]);
    scheduler.stop();
  });

  it('a change during a run is applied by one more run after it, never by two at once; a long burst waits 1 s at most', async () => {
    const { starts, scheduler } = recorder(50);
    scheduler.schedule();
    await jest.advanceTimersByTimeAsync(10);
    scheduler.schedule();
    scheduler.schedule();
    await jest.advanceTimersByTimeAsync(300);
    expect(starts).toEqual([1_000_000, 1_000_110]);
    // Changes every 50 ms for 2 s: a run at least every second (+ its own 50 ms).
    for (let i = 0; i < 40; i++) {
      scheduler.schedule();
      await jest.advanceTimersByTimeAsync(50);
    }
    const during = starts.slice(2);
    expect(during.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < during.length; i++) expect(during[i]! - during[i - 1]!).toBeLessThanOrEqual(1_100);
    scheduler.stop();
  });
});
