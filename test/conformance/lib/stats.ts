// Distribution maths for weighted routing and percentage mirroring.

/** Derives the backend (Deployment) name from a pod name by dropping its last two '-' segments. */
export function backendFromPodName(pod: string): string {
  const parts = pod.split('-');
  return parts.length > 2 ? parts.slice(0, -2).join('-') : pod;
}

export interface DistributionVerdict {
  ok: boolean;
  /** Observed share per backend (0..1). */
  shares: Record<string, number>;
  problems: string[];
}

/**
 * Checks observed request counts per backend against expected weights:
 * every share within ±tolerance of weight/sum(weights); backends with weight
 * 0 (or not listed) must get nothing when `zeroMustGetNothing`.
 */
export function checkWeightedDistribution(
  counts: Record<string, number>,
  weights: Record<string, number>,
  tolerance: number,
  zeroMustGetNothing: boolean,
): DistributionVerdict {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const weightSum = Object.values(weights).reduce((a, b) => a + b, 0);
  const problems: string[] = [];
  const shares: Record<string, number> = {};
  for (const [backend, n] of Object.entries(counts)) shares[backend] = total === 0 ? 0 : n / total;
  if (total === 0) problems.push('no request was counted');
  if (weightSum <= 0) problems.push('expected weights sum to 0');
  for (const [backend, weight] of Object.entries(weights)) {
    const expected = weightSum > 0 ? weight / weightSum : 0;
    const actual = shares[backend] ?? 0;
    if (expected === 0) {
      if (zeroMustGetNothing && (counts[backend] ?? 0) > 0) {
        problems.push(`${backend}: weight 0 but received ${counts[backend]} request(s)`);
      }
      continue;
    }
    if (Math.abs(actual - expected) > tolerance + 1e-9) {
      problems.push(`${backend}: share ${actual.toFixed(3)} outside ${expected.toFixed(3)} ± ${tolerance}`);
    }
  }
  for (const [backend, n] of Object.entries(counts)) {
    if (!(backend in weights) && n > 0) problems.push(`${backend}: not an expected backend but received ${n} request(s)`);
  }
  return { ok: problems.length === 0, shares, problems };
}

/** Acceptance interval N·p ± k·sqrt(N·p·(1-p)) for a binomial count. */
export function binomialBounds(n: number, p: number, stdDevs: number): { low: number; high: number; mean: number } {
  const mean = n * p;
  const sd = Math.sqrt(n * p * (1 - p));
  return { low: mean - stdDevs * sd, high: mean + stdDevs * sd, mean };
}
