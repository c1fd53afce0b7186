// The parts of session persistence that are plain functions: the cookie Path a match gives
// (GEP-1619 "Path"), and the Set-Cookie attributes by listener and lifetime.
import { describe, expect, it } from '@jest/globals';
import type { PathMatchType } from '../../ir/types.ts';
import { cookiePathOf } from '../../controller/translate/session-persistence.ts';
import { newSessionKey, SessionPlan } from '../../dataplane/upstream/session.ts';
import type { UpstreamEndpoint } from '../../dataplane/upstream/pools.ts';

describe('cookie Path', () => {
  it.each<[PathMatchType, string, string]>([
    ['PathPrefix', '/', '/'],
    ['PathPrefix', '/cart', '/cart'],
    ['Exact', '/checkout/pay', '/checkout/pay'],
    ['RegularExpression', '/p1/p2/.*/p3', '/p1/p2'],
    ['RegularExpression', '/items/[0-9]+', '/items'],
    ['RegularExpression', '^/api', '/'],
    ['RegularExpression', '/.*', '/'],
    ['PathPrefix', '/a;b', '/'],
  ])('%s %s → %s', (type, value, path) => {
    expect(cookiePathOf({ type, value })).toBe(path);
  });
});

describe('Set-Cookie attributes', () => {
  const endpoint = { address: '10.0.0.1', port: 80, key: '10.0.0.1:80' } as UpstreamEndpoint;
  const cookieFor = (https: boolean, extra: object = {}) => {
    const plan = new SessionPlan({ type: 'Cookie', name: 'sid', scope: 'httproute/ns/r/rule/0', cookiePath: '/shop', ...extra }, newSessionKey(), [{ choice: 'c', backend: 'b', endpoints: [endpoint] }], https);
    return plan.responseHeader(plan.bind([], 0), 'c', endpoint, Date.now());
  };
  it('Secure on HTTPS listeners only; Max-Age for a Permanent cookie with an absolute timeout', () => {
    expect(cookieFor(false)![1]).toMatch(/^sid=[\w-]{38}; Path=\/shop; HttpOnly; SameSite=Strict$/);
    expect(cookieFor(true)![1]).toMatch(/; Path=\/shop; HttpOnly; SameSite=Strict; Secure$/);
    expect(cookieFor(true, { cookieLifetime: 'Permanent', absoluteTimeoutMs: 90_500 })![1]).toMatch(/; Secure; Max-Age=91$/);
    expect(cookieFor(false, { cookieLifetime: 'Session', absoluteTimeoutMs: 90_500 })![1]).not.toMatch(/Max-Age|Expires/);
  });
});
