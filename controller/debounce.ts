// Reconciles run one at a time; bursts of changes collapse into one run, 100 ms
// after the last change and at most 1 s after the first.
const DEBOUNCE_MS = 100;
const MAX_DELAY_MS = 1000;
const RETRY_MS = 2000;

export interface SerialDebouncer {
  /** Run soon (debounced). */
  schedule(): void;
  /** Run again in a while (a failed step that may succeed later), unless something schedules sooner. */
  scheduleRetry(): void;
  /** Run now (or right after the current run). */
  runNow(): Promise<void>;
  stop(): void;
}

/** Runs `task` one at a time; bursts of `schedule()` calls collapse into one run. */
export function serialDebouncer(task: () => Promise<void>, onError: (err: unknown) => void): SerialDebouncer {
  let timer: NodeJS.Timeout | null = null;
  let firstRequest = 0;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  const run = async (): Promise<void> => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = task().catch(onError);
    await running;
    running = null;
    if (again && !stopped) {
      again = false;
      schedule();
    }
  };
  const schedule = (): void => {
    if (stopped) return;
    const now = Date.now();
    if (timer) {
      if (now - firstRequest >= MAX_DELAY_MS) return; // already due soon enough
      clearTimeout(timer);
    } else firstRequest = now;
    const wait = Math.min(DEBOUNCE_MS, Math.max(0, firstRequest + MAX_DELAY_MS - now));
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
