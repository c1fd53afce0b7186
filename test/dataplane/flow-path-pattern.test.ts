// `--http-path` flow filters against hostile paths: the pattern is matched with RE2 (linear in the
// path), so a client's crafted path cannot stall the process that serves traffic while someone
// follows flows with a pattern a backtracking engine explodes on.
import { describe, expect, it } from '@jest/globals';
import { flowFilterOf } from '../../cmd/admin.ts';
import { FlowBuffer } from '../../dataplane/flows/flow-buffer.ts';
import type { Flow, FlowFilter } from '../../ir/flow.ts';

const request = (path: string): Flow => ({
  time: '2026-12-04T22:00:00.000Z',
  type: 'L7',
  verdict: 'FORWARDED',
  direction: 'ingress',
  protocol: 'TCP',
  source: { ip: '10.1.0.9', port: 41000, identity: 2, labels: ['reserved:world'] },
  destination: { ip: '10.0.9.91', port: 8080, identity: 300, labels: [] },
  l7: { method: 'GET', path, host: 'shop.example', protocol: 'HTTP/1.1', status: 200, latencyMs: 1 },
});

function filter(query: Record<string, string>): FlowFilter {
  const parsed = flowFilterOf(query);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

describe('http-path flow filters', () => {
  it('match a path crafted against a nested quantifier without backtracking (V8 RegExp: minutes for this path)', () => {
    const ring = new FlowBuffer(10);
    // 40 characters: a backtracking engine tries 2^38 ways before saying no.
    ring.push(request(`/${'a'.repeat(38)}!`));
    ring.push(request('/aaaa'));
    expect(ring.flows(filter({ 'http-path': '^/(a+)+$' })).map((f) => f.l7!.path)).toEqual(['/aaaa']);
  });

  it('are RE2, as hubble\'s Go regexps: syntax RE2 lacks (backreferences, lookarounds) is refused, not run', () => {
    expect(flowFilterOf({ 'http-path': '^/(a)\\1$' })).toMatch(/http-path .*not a regular expression \(RE2 syntax/);
    expect(flowFilterOf({ 'http-path': '^/(?=api)' })).toMatch(/not a regular expression/);
    expect(filter({ 'http-path': '^/api/(v1|v2)/' }).httpPath).toEqual(['^/api/(v1|v2)/']);
  });
});
