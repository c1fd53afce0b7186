// Polling and convergence helpers.

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface ConvergenceOptions {
  requiredSuccesses: number;
  pollIntervalMs: number;
  budgetMs: number;
}

/** An attempt whose outcome ends the case at once (a negative case saw a listed answer). */
export interface FatalProblems {
  fatal: string[];
}

export interface ConvergenceResult {
  ok: boolean;
  /** Ended by an attempt that returned {fatal}. */
  fatal?: boolean;
  attempts: number;
  /** Mismatches of the last failed attempt (empty when ok). */
  lastProblems: string[];
  elapsedMs: number;
}

/**
 * Runs `attempt` until it returns no problems `requiredSuccesses` times in a
 * row (a failure resets the streak; successes are not delayed, failures wait
 * `pollIntervalMs`), or until `budgetMs` is exhausted; an attempt returning {fatal} ends it at once.
 */
export async function awaitConvergence(
  attempt: () => Promise<string[] | FatalProblems>,
  opts: ConvergenceOptions,
): Promise<ConvergenceResult> {
  const start = Date.now();
  let successes = 0;
  let attempts = 0;
  let lastProblems: string[] = [];
  for (;;) {
    if (Date.now() - start > opts.budgetMs) {
      return { ok: false, attempts, lastProblems: lastProblems.length ? lastProblems : [`only ${successes}/${opts.requiredSuccesses} consecutive successes`], elapsedMs: Date.now() - start };
    }
    const verdict = await attempt();
    attempts++;
    if (!Array.isArray(verdict)) return { ok: false, fatal: true, attempts, lastProblems: verdict.fatal, elapsedMs: Date.now() - start };
    const problems = verdict;
    if (problems.length === 0) {
      successes++;
      if (successes >= opts.requiredSuccesses) return { ok: true, attempts, lastProblems: [], elapsedMs: Date.now() - start };
      continue;
    }
    successes = 0;
    lastProblems = problems;
    await sleep(opts.pollIntervalMs);
  }
}

/** Polls `check` until it returns no problems or `timeoutMs` passes. */
export async function pollUntil(
  check: () => Promise<string[]>,
  timeoutMs: number,
  intervalMs: number,
): Promise<{ ok: boolean; problems: string[]; elapsedMs: number }> {
  const start = Date.now();
  let problems: string[] = [];
  for (;;) {
    problems = await check();
    if (problems.length === 0) return { ok: true, problems, elapsedMs: Date.now() - start };
    if (Date.now() - start >= timeoutMs) return { ok: false, problems, elapsedMs: Date.now() - start };
    await sleep(intervalMs);
  }
}
