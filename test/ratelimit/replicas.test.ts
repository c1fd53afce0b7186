// Two dataplane processes sharing one Redis (scenarios 10 and 11 of rate-limit-canary.md §12):
// each offered 50 rps, evenly paced, for 10 s.
//   10: global, capacity 50, 50/s  ⇒ 550 ± 2 % admitted in total
//   11: local, capacity 30, 30/s   ⇒ 330 ± 2 % per replica, 660 ± 2 % in total;
//       the global rule with Redis down and failureMode Local (÷ 2 replicas)
//                                  ⇒ 275 ± 2 % per replica, 550 ± 2 % in total
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort, RedisServer } from './support/redis-server.ts';

interface ReplicaResult {
  admitted: { live: number; local: number; fallback: number };
  offered: number;
  elapsedMs: number;
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

const within = (value: number, expected: number, fraction: number) => expect(Math.abs(value - expected)).toBeLessThanOrEqual(expected * fraction);

describe('two replicas sharing Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('10 and 11: global admits 550 ± 2 % in total; local 330 per replica; Local fallback 275 per replica', async () => {
    const job = { redisUrl: redis.url, deadRedisUrl: `redis://127.0.0.1:${await freePort()}`, startAt: Date.now() + 1500, durationMs: 10_000, rps: 50 };
    const [a, b] = await Promise.all([runReplica(job), runReplica(job)]);
    const report = { a: a.admitted, b: b.admitted, elapsed: [a.elapsedMs, b.elapsedMs] };
    process.stdout.write(`replicas: ${JSON.stringify(report)}\n`);
    within(a.admitted.live + b.admitted.live, 550, 0.02);
    within(a.admitted.local, 330, 0.02);
    within(b.admitted.local, 330, 0.02);
    within(a.admitted.local + b.admitted.local, 660, 0.02);
    within(a.admitted.fallback, 275, 0.02);
    within(b.admitted.fallback, 275, 0.02);
    within(a.admitted.fallback + b.admitted.fallback, 550, 0.02);
  });
});
