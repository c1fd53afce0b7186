// Building rate-limit IR the way the controller does (through the translator's own
// validation), and reading the answers.
import pino from 'pino';
import { Registry } from 'prom-client';
import type { RateLimitPolicy } from '../../../ir/types.ts';
import { compilePolicy } from '../../../controller/translate/ratelimit.ts';
import { RateLimitService, type RateLimitDecision, type RateLimitServiceOptions, type RateLimitRequest } from '../../../dataplane/ratelimit/limiter.ts';

export function policy(name: string, spec: Record<string, unknown>): RateLimitPolicy {
  const result = compilePolicy({ apiVersion: 'sluice.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name, namespace: 'default' }, spec });
  if ('error' in result) throw new Error(result.error);
  return result.policy;
}

/** The research note's tutorial rule: 10 per 60 s per x-client-id. */
export function tutorialRule(extra: Record<string, unknown> = {}) {
  return { clientSelectors: [{ headers: [{ name: 'x-client-id', type: 'Distinct' }] }], limit: { requests: 10, unit: 'Minute' }, ...extra };
}

export class FakeClock {
  t = 1_000_000;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export function service(options: Partial<RateLimitServiceOptions> = {}): { service: RateLimitService; registry: Registry; logs: LogLine[] } {
  const registry = new Registry();
  const logs: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  return { service: new RateLimitService({ registry, logger, ...options }), registry, logs };
}

export function req(headers: Record<string, string> = {}, method = 'GET', path = '/'): RateLimitRequest {
  return { method, path, headers: Object.entries(headers).flatMap(([k, v]) => [k.toLowerCase(), v]) };
}

export function header(d: RateLimitDecision, name: string): string | undefined {
  for (let i = 0; i < d.headers.length; i += 2) if (d.headers[i] === name) return d.headers[i + 1];
  return undefined;
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val)).reduce((sum, v) => sum + v.value, 0);
}

/**
 * RFC 9651 List of Items whose values are Strings or Tokens with Integer/String/Token parameters
 * (enough for RateLimit and RateLimit-Policy). Throws on anything malformed.
 */
export function parseSfList(text: string): { value: string; params: Record<string, number | string> }[] {
  const out: { value: string; params: Record<string, number | string> }[] = [];
  let i = 0;
  const ws = () => {
    while (text[i] === ' ' || text[i] === '\t') i++;
  };
  const bare = (): number | string => {
    if (text[i] === '"') {
      let s = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\') i++;
        s += text[i++];
      }
      if (text[i] !== '"') throw new Error(`unterminated string in ${text}`);
      i++;
      return s;
    }
    const m = /^-?\d{1,15}/.exec(text.slice(i)) ?? /^[A-Za-z*][A-Za-z0-9_\-.:%*/]*/.exec(text.slice(i));
    if (!m) throw new Error(`bad item at ${i} in ${JSON.stringify(text)}`);
    i += m[0].length;
    return /^-?\d/.test(m[0]) ? Number(m[0]) : m[0];
  };
  while (i < text.length) {
    const value = bare();
    if (typeof value !== 'string') throw new Error('expected a String item');
    const params: Record<string, number | string> = {};
    while (text[i] === ';') {
      i++;
      const m = /^[a-z*][a-z0-9_\-.*]*/.exec(text.slice(i));
      if (!m) throw new Error(`bad parameter key in ${JSON.stringify(text)}`);
      i += m[0].length;
      if (text[i] === '=') {
        i++;
        params[m[0]] = bare();
      } else params[m[0]] = 1;
    }
    out.push({ value, params });
    ws();
    if (i >= text.length) break;
    if (text[i] !== ',') throw new Error(`expected , at ${i} in ${JSON.stringify(text)}`);
    i++;
    ws();
  }
  return out;
}

/** When a paced load ran: from its start to its last request sent, and to its last answer. */
export interface LoadWindow {
  lastSentMs: number;
  answeredMs: number;
}

/**
 * A token bucket offered more than its rate admits its capacity plus what refilled meanwhile. The
 * expectation is taken from the window the load really took, not the nominal duration, so a loaded
 * machine that sends late moves the expectation instead of failing the test: at least what refilled
 * up to the last request sent, at most what refilled up to the last answer (2 % + 2 of slack for
 * the clocks of Redis and of several processes). Returns the ratio admitted / expected, to print.
 */
export function expectBucketAdmitted(admitted: number, bucket: { capacity: number; perSecond: number }, window: LoadWindow): number {
  const expected = (ms: number) => bucket.capacity + (bucket.perSecond * ms) / 1000;
  const low = expected(window.lastSentMs) * 0.98 - 2;
  const high = expected(window.answeredMs) * 1.02 + 2;
  if (admitted < low || admitted > high) {
    throw new Error(`admitted ${admitted}, expected ${low.toFixed(1)} to ${high.toFixed(1)} (capacity ${bucket.capacity}, ${bucket.perSecond}/s, sent over ${window.lastSentMs.toFixed(0)} ms, answered by ${window.answeredMs.toFixed(0)} ms)`);
  }
  return admitted / expected(window.lastSentMs);
}
