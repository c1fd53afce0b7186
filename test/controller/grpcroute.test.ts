// GRPCRoute method matches as the dataplane evaluates them (the IR path match compiled by the
// router), precedence between matches (the spec's order), and the CRD rule that needed RE2's (?i).
import { describe, expect, it } from '@jest/globals';
import type { Route } from '../../ir/types.ts';
import { celRule, rewriteFlagGroups } from '../../controller/schema/cel.ts';
import { toMethodMatch } from '../../controller/translate/grpcroute.ts';
import type { Placement } from '../../controller/translate/httproute.ts';
import { comparePrecedence } from '../../controller/translate/precedence.ts';
import { compileMatch, matches, type MatchableRequest } from '../../dataplane/router/match.ts';

type MethodSpec = Parameters<typeof toMethodMatch>[0];

function matcher(spec: MethodSpec) {
  const problems: string[] = [];
  const method = toMethodMatch(spec, 'test', (m) => problems.push(m));
  const compiled = compileMatch({ path: method.path, headers: [], queryParams: [] }, []);
  const call = (path: string): boolean => matches(compiled, { method: 'POST', path, query: '', headers: [], params: null } satisfies MatchableRequest);
  return { call, problems, method };
}

describe('GRPCRoute method matches on :path', () => {
  it('Exact service and method: that method only, case-sensitive', () => {
    const m = matcher({ service: 'echo.v1.Echo', method: 'Say' });
    expect(m.call('/echo.v1.Echo/Say')).toBe(true);
    expect(m.call('/echo.v1.Echo/SayMore')).toBe(false);
    expect(m.call('/echo.v1.echo/Say')).toBe(false);
    expect(m.call('/other.Echo/Say')).toBe(false);
  });

  it('Exact service only: every method of that service, not of a longer-named one', () => {
    const m = matcher({ service: 'echo.v1.Echo' });
    expect(m.call('/echo.v1.Echo/Say')).toBe(true);
    expect(m.call('/echo.v1.Echo/Other')).toBe(true);
    expect(m.call('/echo.v1.EchoTwo/Say')).toBe(false);
  });

  it('Exact method only: that method of any service; the dots of a service are not wildcards', () => {
    const m = matcher({ method: 'Health' });
    expect(m.call('/a.B/Health')).toBe(true);
    expect(m.call('/x/Health')).toBe(true);
    expect(m.call('/a.B/HealthCheck')).toBe(false);
    expect(m.call('/Health')).toBe(false);
    expect(m.call('/a/b/Health')).toBe(false);
  });

  it('RegularExpression: each part anchored to its segment, an omitted part any segment', () => {
    const m = matcher({ type: 'RegularExpression', service: 'echo\\.v[0-9]+\\.Echo', method: 'Say.*' });
    expect(m.call('/echo.v2.Echo/SayHello')).toBe(true);
    expect(m.call('/echo.v2.Echo/Hello')).toBe(false);
    expect(m.call('/xecho.v2.Echo/Say')).toBe(false);
    const methodOnly = matcher({ type: 'RegularExpression', method: 'Stream(In|Out)' });
    expect(methodOnly.call('/any.Service/StreamIn')).toBe(true);
    expect(methodOnly.call('/any.Service/StreamBoth')).toBe(false);
  });

  it('no method match: every call', () => {
    const m = matcher(undefined);
    expect(m.call('/a.B/C')).toBe(true);
    expect(m.method).toMatchObject({ tier: 2, service: 0, method: 0 });
  });

  it('a regular expression JavaScript cannot compile makes the route unsupported (not a crash)', () => {
    const m = matcher({ type: 'RegularExpression', service: '(unclosed' });
    expect(m.problems).toEqual([expect.stringContaining('invalid regular expression')]);
  });
});

describe('GRPCRoute precedence', () => {
  const placement = (name: string, spec: MethodSpec, headers = 0, creationTimestamp = '2025-01-01T00:00:00Z', ruleIndex = 0): Placement => {
    const method = toMethodMatch(spec, name, () => {});
    const route = {
      name,
      match: { path: method.path, headers: Array.from({ length: headers }, (_, i) => ({ name: `h${i}`, type: 'Exact' as const, value: 'v' })), queryParams: [] },
    } as unknown as Route;
    return {
      scope: 'gateway/default/g/listener/http',
      hostname: '*',
      route,
      order: { tier: 0, creationTimestamp, source: `ns/${name}`, ruleIndex, matchIndex: 0, grpc: { tier: method.tier, service: method.service, method: method.method } },
    };
  };
  const order = (list: Placement[]) => [...list].sort(comparePrecedence).map((p) => p.route.name);

  it('more characters of service, then of method, then more header matches; then the older route, then the name', () => {
    expect(
      order([
        placement('any', undefined, 3),
        placement('method-only', { method: 'Say' }),
        placement('service-only', { service: 'echo.v1.Echo' }),
        placement('both', { service: 'echo.v1.Echo', method: 'Say' }),
        placement('both-headers', { service: 'echo.v1.Echo', method: 'Say' }, 1),
        placement('short-service', { service: 'e.Echo', method: 'SayLonger' }),
        placement('older', { service: 'echo.v1.Echo', method: 'Say' }, 1, '2024-01-01T00:00:00Z'),
      ]),
    ).toEqual(['older', 'both-headers', 'both', 'service-only', 'short-service', 'method-only', 'any']);
  });

  it('regular expressions after every exact match, before matches without a method', () => {
    expect(order([placement('any', undefined), placement('regex', { type: 'RegularExpression', service: 'echo\\.v[0-9]+\\.Echo.*' }), placement('exact', { method: 'Say' })])).toEqual([
      'exact',
      'regex',
      'any',
    ]);
  });
});

describe('the GRPCRoute CRD rules under standalone validation', () => {
  it("RE2's (?i) becomes a JavaScript modifier group over the rest of the pattern", () => {
    expect(rewriteFlagGroups('self.matches(r"""^(?i)\\.?[a-z_]+$""")')).toBe('self.matches(r"""^(?i:\\.?[a-z_]+$)""")');
    const rule = celRule(`self.matches(r"""^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$""")`)!;
    expect(rule('gateway_api.Echo.GrpcEcho')).toBe(true);
    expect(rule('has/slash')).toBe(false);
  });
});
