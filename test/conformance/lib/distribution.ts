// The statistical phase of weightedDistribution, for every protocol (HTTP, gRPC, TCP, UDP): send
// `totalRequests` requests, `concurrency` at a time; every one must succeed and name the pod that
// answered; the backends (pod name minus its last two '-' segments) must match the weights within
// the tolerance; up to `maxAttempts` attempts (suite README, "Special kinds").

import { backendFromPodName, checkWeightedDistribution } from './stats.ts';

export interface DistributionSpec {
  totalRequests?: number;
  concurrency?: number;
  absoluteTolerance?: number;
  maxAttempts?: number;
  zeroWeightBackendsMustGetNoTraffic?: boolean;
}

/** Runs `fn(0..count-1)` with at most `concurrency` in flight; results in index order. */
export async function runPool<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  return out;
}

/** One request of the distribution: the pod that answered, or why it failed. */
export type DistributionSample = { pod: string } | { problem: string };

export async function runWeightedAttempts(
  d: DistributionSpec | undefined,
  weights: Record<string, number>,
  one: () => Promise<DistributionSample>,
  verbose: (line: string) => void,
): Promise<string[]> {
  const total = d?.totalRequests ?? 500;
  const concurrency = d?.concurrency ?? 10;
  const tolerance = d?.absoluteTolerance ?? 0.05;
  const maxAttempts = d?.maxAttempts ?? 10;
  let last: string[] = [];
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const samples = await runPool(total, concurrency, () => one());
    const failed = samples.filter((s): s is { problem: string } => 'problem' in s);
    if (failed.length > 0) {
      last = [`${failed.length}/${total} requests failed, e.g. ${failed[0].problem}`];
      continue;
    }
    const counts: Record<string, number> = {};
    for (const s of samples as { pod: string }[]) {
      const backend = backendFromPodName(s.pod);
      counts[backend] = (counts[backend] ?? 0) + 1;
    }
    const verdict = checkWeightedDistribution(counts, weights, tolerance, d?.zeroWeightBackendsMustGetNoTraffic ?? true);
    verbose(`    distribution attempt ${attempt}: ${JSON.stringify(counts)}`);
    if (verdict.ok) return [];
    last = [`counts ${JSON.stringify(counts)}: ${verdict.problems.join('; ')}`];
  }
  return [`weighted distribution not within tolerance after ${maxAttempts} attempts: ${last.join('; ')}`];
}
