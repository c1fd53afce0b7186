// Reconciles run one at a time. A change while idle (no run in progress or within the last
// 100 ms) runs at once: a single edit is served without waiting. Changes while a run is in
// progress or right after one are a burst: they collapse into one run, 100 ms after the last
// change and at most 1 s after the first (the trailing debounce every change used to wait for).
const DEBOUNCE_MS = 100;
const MAX_DELAY_MS = 1000;
const RETRY_MS = 2000;

export interface SerialDebouncer {
  /** Run soon (debounced); `withinMs`: a burst waits at most this long instead of the debounce interval. */
  schedule(withinMs?: number): void;
  /** Run again in a while (a failed step that may succeed later), unless something schedules sooner. */
  scheduleRetry(): void;
  /** Run now (or right after the current run). */
  runNow(): Promise<void>;
  stop(): void;
}

/**
 * Runs `task` one at a time; bursts of `schedule()` calls collapse into one run. A task that
 * resolves `false` found nothing to do (a poll that saw no change): it does not start a burst.
 */
export function serialDebouncer(task: () => Promise<void | boolean>, onError: (err: unknown) => void): SerialDebouncer {
  let timer: NodeJS.Timeout | null = null;
  /** The pending timer runs at once (an idle change): later changes until it fires ride along. */
  let immediate = false;
  let lastEnded = -Infinity;
  /** The pending run happens by then at the latest (1 s after the first change, or sooner if asked). */
  let latest = 0;
  let running: Promise<void | boolean> | null = null;
  let again = false;
  let stopped = false;
  const run = async (): Promise<void> => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = task().catch(onError);
    const outcome = await running;
    running = null;
    if (outcome !== false) lastEnded = Date.now();
    if (again && !stopped) {
      again = false;
      schedule();
    }
  };
  const schedule = (withinMs = DEBOUNCE_MS): void => {
    if (stopped) return;
    const now = Date.now();
    if (timer) {
      if (immediate || now >= latest) return; // already due soon enough
      clearTimeout(timer);
    } else latest = now + MAX_DELAY_MS;
    // A shorter wait asked (a file still being written) bounds the run: later changes never postpone it.
    if (withinMs < DEBOUNCE_MS) latest = Math.min(latest, now + withinMs);
    immediate = !running && now - lastEnded >= DEBOUNCE_MS && !timer;
    // Still a timer when idle: changes made in the same turn (one save, several events) share the run.
    const wait = immediate ? 0 : Math.max(0, Math.min(DEBOUNCE_MS, latest - now));
    timer = setTimeout(run, wait);
  };
  let retry: NodeJS.Timeout | null = null;
  return {
    schedule,
    scheduleRetry(): void {
      if (stopped || retry) return;
      retry = setTimeout(() => {
        retry = null;
        schedule();
      }, RETRY_MS);
    },
    runNow: run,
    stop(): void {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (retry) clearTimeout(retry);
    },
  };
}
