// A Redis that answers the batch script wrongly. A real redis-server runs the script Sluice loaded
// under its SHA and cannot be made to reply short, long, with non-numbers or with another type, so
// the Redis here is a fake for that failure only: a small TCP server speaking RESP (the same
// socket, protocol and ioredis client as in production), answering the ready check like Redis and
// each script call with what the test scripts. Every wrong reply must end in the policy's failure
// mode for exactly that call's decisions, counted with reason `script` (a late one: `timeout`),
// once each, with no unhandled rejection, and the next call must be answered normally.
import net from 'node:net';
import { afterAll, afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { RateLimitPolicy } from '../../ir/types.ts';
import type { RateLimitDecision, RateLimitService } from '../../dataplane/ratelimit/limiter.ts';
import { metricValue, policy, req, service } from './support/policies.ts';
import { redisConnected, sleep } from './support/redis-server.ts';

/** One script call's answer: raw RESP bytes, or a delay before them. */
type Answer = { resp: string; delayMs?: number };

class FakeRedis {
  readonly server: net.Server;
  /** Answers for the next script calls, in order; past them, a good one. */
  answers: Answer[] = [];
  /** Decisions per script call seen (its ARGV count). */
  calls: number[] = [];
  private readonly sockets = new Set<net.Socket>();

  constructor() {
    this.server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      let buffered = '';
      socket.on('data', (chunk) => {
        buffered += chunk.toString('latin1');
        for (;;) {
          const parsed = parseCommand(buffered);
          if (parsed === null) break;
          buffered = buffered.slice(parsed.length);
          this.answer(socket, parsed.args);
        }
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `redis://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(socket: net.Socket, args: string[]): void {
    const command = (args[0] ?? '').toLowerCase();
    if (command === 'info') {
      socket.write(bulk('# Server\r\nredis_version:7.2.0\r\nloading:0\r\n'));
    } else if (command === 'evalsha' || command === 'eval') {
      // EVALSHA sha numkeys key… arg…: one ARGV item per decision.
      const numKeys = Number(args[2]);
      const decisions = args.length - 3 - numKeys;
      this.calls.push(decisions);
      const next = this.answers.shift() ?? { resp: bulk(Array.from({ length: decisions }, () => '1,99,0').join(',')) };
      if (next.delayMs === undefined) socket.write(next.resp);
      else setTimeout(() => socket.writable && socket.write(next.resp), next.delayMs);
    } else {
      socket.write('+OK\r\n');
    }
  }
}

const bulk = (text: string): string => `$${Buffer.byteLength(text, 'latin1')}\r\n${text}\r\n`;

/** One RESP command (an array of bulk strings) from the front of `text`, or null while incomplete. */
function parseCommand(text: string): { args: string[]; length: number } | null {
  let at = 0;
  const line = (): string | null => {
    const end = text.indexOf('\r\n', at);
    if (end < 0) return null;
    const value = text.slice(at, end);
    at = end + 2;
    return value;
  };
  const head = line();
  if (head === null) return null;
  if (!head.startsWith('*')) return { args: head.split(' '), length: at }; // inline command
  const args: string[] = [];
  for (let i = 0; i < Number(head.slice(1)); i++) {
    const size = line();
    if (size === null) return null;
    const n = Number(size.slice(1));
    if (text.length < at + n + 2) return null;
    args.push(text.slice(at, at + n));
    at += n + 2;
  }
  return { args, length: at };
}

const TIMEOUT_MS = 300;
const perClient = (failureMode: string): RateLimitPolicy =>
  policy(`hostile-${failureMode.toLowerCase()}`, {
    global: { failureMode, rules: [{ clientSelectors: [{ headers: [{ name: 'x-client-id', type: 'Distinct' }] }], limit: { requests: 100, unit: 'Hour' } }] },
  });

let fake: FakeRedis;
let url: string;
const services: RateLimitService[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

beforeEach(async () => {
  fake = new FakeRedis();
  url = await fake.listen();
  unhandled.length = 0;
  process.on('unhandledRejection', onUnhandled);
});

afterEach(async () => {
  process.off('unhandledRejection', onUnhandled);
  for (const s of services.splice(0)) await s.close();
  await fake.close();
});

afterAll(async () => {
  await sleep(10);
});

async function limiterFor(failureMode = 'FailOpen') {
  const p = perClient(failureMode);
  const s = service({ redis: { url }, redisTimeoutMs: TIMEOUT_MS });
  services.push(s.service);
  await redisConnected(s.service);
  const limiter = s.service.compile({ [p.name]: p }).limiter(p.name, 'default/route')!;
  /** `n` decisions asked in one event-loop turn (one script call). */
  const burst = (n: number): Promise<RateLimitDecision[]> =>
    Promise.all(Array.from({ length: n }, (_, i) => limiter.check(req({ 'x-client-id': `c${i}` }), '127.0.0.1')));
  const errors = (reason: string) => metricValue(s.registry, 'sluice_ratelimit_backend_errors_total', { reason });
  const results = (result: string) => metricValue(s.registry, 'sluice_ratelimit_decisions_total', { result });
  return { burst, errors, results, registry: s.registry };
}

const statuses = (list: RateLimitDecision[]) => list.map((d) => d.status);

const wrongReplies: [string, (n: number) => string][] = [
  ['short (one value missing)', (n) => bulk(Array.from({ length: n }, () => '1,99,0').join(',').replace(/,0$/, ''))],
  ['short (one decision answered of several)', () => bulk('1,99,0')],
  ['long (a value too many)', (n) => bulk(Array.from({ length: n }, () => '1,99,0').join(',') + ',7')],
  ['long (a decision too many)', (n) => bulk(Array.from({ length: n + 1 }, () => '1,99,0').join(','))],
  ['not numbers', (n) => bulk(Array.from({ length: n }, () => '1,x9,0').join(','))],
  ['negative numbers', (n) => bulk(Array.from({ length: n }, () => '1,-5,0').join(','))],
  ['empty items', (n) => bulk(Array.from({ length: n }, () => '1,,0').join(','))],
  ['a number too large to be exact', (n) => bulk(Array.from({ length: n }, () => `1,${'9'.repeat(400)},0`).join(','))],
  ['a verdict that is not one', (n) => bulk(Array.from({ length: n }, () => '9,99,0').join(','))],
  ['an empty string', () => bulk('')],
  ['an integer instead of the string', () => ':1\r\n'],
  ['an array instead of the string', (n) => `*${n}\r\n${':1\r\n'.repeat(n)}`],
  ['a nil', () => '$-1\r\n'],
  ['an error', () => '-ERR something went wrong in the script\r\n'],
];

describe('a Redis that answers the batch script wrongly (fake RESP server)', () => {
  it.each(wrongReplies)('%s: every decision of the call fails open, counted once as script, and the next call is answered', async (_, reply) => {
    const { burst, errors, results } = await limiterFor('FailOpen');
    fake.answers = [{ resp: reply(3) }];
    const answers = await burst(3);
    expect(fake.calls).toEqual([3]);
    expect(statuses(answers)).toEqual([200, 200, 200]);
    expect(await errors('script')).toBe(3);
    expect(await results('fail_open')).toBe(3);
    expect(await results('allowed')).toBe(0);
    // The lane is free again: the next call is sent and its good reply read.
    const next = await burst(2);
    expect(statuses(next)).toEqual([200, 200]);
    expect(await results('allowed')).toBe(2);
    expect(await errors('script')).toBe(3);
    expect(unhandled).toEqual([]);
  });

  it('FailClosed: a long reply refuses every decision of the call with 503', async () => {
    const { burst, errors, results } = await limiterFor('FailClosed');
    fake.answers = [{ resp: bulk('1,99,0,1,99,0,1') }];
    expect(statuses(await burst(2))).toEqual([503, 503]);
    expect(await errors('script')).toBe(2);
    expect(await results('fail_closed')).toBe(2);
    expect(statuses(await burst(1))).toEqual([200]);
  });

  it('a reply after the deadline: the decisions time out once each (failure mode), the late reply is dropped, the lane goes on', async () => {
    const { burst, errors, results } = await limiterFor('FailClosed');
    fake.answers = [{ resp: bulk('1,99,0,1,99,0'), delayMs: TIMEOUT_MS + 200 }];
    const started = performance.now();
    expect(statuses(await burst(2))).toEqual([503, 503]);
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS + 200);
    expect(await errors('timeout')).toBe(2);
    await sleep(400); // the late reply arrives and is read
    expect(await results('fail_closed')).toBe(2);
    expect(await results('allowed')).toBe(0);
    expect(await errors('script')).toBe(0);
    expect(statuses(await burst(1))).toEqual([200]);
    expect(await results('allowed')).toBe(1);
    expect(unhandled).toEqual([]);
  });
});
