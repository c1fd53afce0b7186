// Two dataplane processes sharing one Redis (scenarios 10 and 11 of rate-limit-canary.md §12):
// each offered 50 rps, evenly paced, for about 10 s. What each bucket admits is checked against the
// window the load really took (capacity + rate × window, see expectBucketAdmitted), so a loaded
// machine changes the numbers, not the verdict:
//   10: global, capacity 50, 50/s, one bucket for both    ⇒ ≈ 550 in total over 10 s
//   11: local, capacity 30, 30/s, a bucket per replica    ⇒ ≈ 330 per replica;
//       the global rule with Redis down and failureMode Local (÷ 2 replicas: capacity 25, 25/s)
//                                                         ⇒ ≈ 275 per replica
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expectBucketAdmitted, type LoadWindow } from './support/policies.ts';
import { freePort, RedisServer } from './support/redis-server.ts';

interface ReplicaResult {
  admitted: { live: number; local: number; fallback: number };
  offered: number;
  window: LoadWindow;
}

function runReplica(job: object): Promise<ReplicaResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', join(import.meta.dirname, 'support', 'replica.ts'), JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`replica exited with ${code}:\n${err}${out}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!) as ReplicaResult);
    });
  });
}

describe('two replicas sharing Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('10 and 11: global is one bucket for both replicas, local one per replica, the Local fallback half of the global rate each', async () => {
    const job = { redisUrl: redis.url, deadRedisUrl: `redis://127.0.0.1:${await freePort()}`, startAt: Date.now() + 1500, durationMs: 10_000, rps: 50 };
    const [a, b] = await Promise.all([runReplica(job), runReplica(job)]);
    const both: LoadWindow = { lastSentMs: Math.max(a.window.lastSentMs, b.window.lastSentMs), answeredMs: Math.max(a.window.answeredMs, b.window.answeredMs) };
    const ratios = {
      global: expectBucketAdmitted(a.admitted.live + b.admitted.live, { capacity: 50, perSecond: 50 }, both),
      localA: expectBucketAdmitted(a.admitted.local, { capacity: 30, perSecond: 30 }, a.window),
      localB: expectBucketAdmitted(b.admitted.local, { capacity: 30, perSecond: 30 }, b.window),
      fallbackA: expectBucketAdmitted(a.admitted.fallback, { capacity: 25, perSecond: 25 }, a.window),
      fallbackB: expectBucketAdmitted(b.admitted.fallback, { capacity: 25, perSecond: 25 }, b.window),
    };
    process.stdout.write(`replicas: ${JSON.stringify({ a, b, ratios })}\n`);
  });
});
