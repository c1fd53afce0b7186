// One "dataplane replica" for the accuracy test: its own RateLimitService (own process, own
// memory, own Redis connection), offered evenly paced load. Reads a JSON job from argv, waits
// for the shared start time, prints the admitted counts and the window the load took as JSON.
//
//   live:     global rule, capacity 50, 50/s, on the shared Redis
//   local:    local rule, capacity 30, 30/s
//   fallback: the live rule with failureMode Local on a Redis that is down, `replicas` = 2
import pino from 'pino';
import { Registry } from 'prom-client';
import { RateLimitService } from '../../../dataplane/ratelimit/limiter.ts';
import { policy } from './policies.ts';

interface Job {
  redisUrl: string;
  deadRedisUrl: string;
  startAt: number;
  durationMs: number;
  rps: number;
}

const job = JSON.parse(process.argv[2]!) as Job;
const logger = pino({ level: 'silent' });
const live = new RateLimitService({ registry: new Registry(), logger, redis: { url: job.redisUrl } });
const dead = new RateLimitService({ registry: new Registry(), logger, redis: { url: job.deadRedisUrl }, replicas: 2 });
const globalRule = { limit: { requests: 50, unit: 'Second' } };
const pLive = policy('live', { global: { rules: [globalRule] } });
const pLocal = policy('local', { local: { rules: [{ limit: { requests: 30, unit: 'Second' } }] } });
const pFallback = policy('fallback', { global: { failureMode: 'Local', rules: [globalRule] } });
const liveLimiter = live.compile({ [pLive.name]: pLive }).limiter(pLive.name, 'r')!;
const localLimiter = live.compile({ [pLocal.name]: pLocal }).limiter(pLocal.name, 'r')!;
const fallbackLimiter = dead.compile({ [pFallback.name]: pFallback }).limiter(pFallback.name, 'r')!;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
while (!live.redis?.ready) await sleep(10);
const request = { method: 'GET', path: '/', headers: [] };
const admitted = { live: 0, local: 0, fallback: 0 };
const pending: Promise<unknown>[] = [];
const interval = 1000 / job.rps;
const total = Math.round((job.durationMs / 1000) * job.rps);
const count = (which: keyof typeof admitted) => (d: { allowed: boolean }) => {
  if (d.allowed) admitted[which] += 1;
};
await sleep(Math.max(0, job.startAt - Date.now()));
const started = performance.now();
let lastSentMs = 0;
for (let i = 0; i < total; i++) {
  const wait = started + i * interval - performance.now();
  if (wait > 0) await sleep(wait);
  lastSentMs = performance.now() - started;
  pending.push(Promise.resolve(liveLimiter.check(request, '127.0.0.1')).then(count('live')));
  pending.push(Promise.resolve(localLimiter.check(request, '127.0.0.1')).then(count('local')));
  pending.push(Promise.resolve(fallbackLimiter.check(request, '127.0.0.1')).then(count('fallback')));
}
await Promise.all(pending);
process.stdout.write(`${JSON.stringify({ admitted, offered: total, window: { lastSentMs, answeredMs: performance.now() - started } })}\n`);
await live.close();
await dead.close();
process.exit(0);
