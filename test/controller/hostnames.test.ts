import { describe, expect, it } from '@jest/globals';
import { hostnameMatches, intersectHostnames } from '../../controller/translate/hostnames.ts';
import { planGatewayAddresses } from '../../controller/translate/addresses.ts';

describe('hostnameMatches', () => {
  it('matches a wildcard against one or more extra labels, never the bare domain', () => {
    expect(hostnameMatches('*.example.com', 'a.example.com')).toBe(true);
    expect(hostnameMatches('*.example.com', 'a.b.example.com')).toBe(true);
    expect(hostnameMatches('*.example.com', 'example.com')).toBe(false);
    expect(hostnameMatches('*.example.com', 'aexample.com')).toBe(false);
    expect(hostnameMatches('example.com', 'example.com')).toBe(true);
  });
});

describe('intersectHostnames', () => {
  it.each([
    [[], null, ['*']],
    [[], 'foo.com', ['foo.com']],
    [['a.com', 'b.com'], null, ['a.com', 'b.com']],
    [['*.foo.com'], 'bar.foo.com', ['bar.foo.com']],
    [['bar.foo.com'], '*.foo.com', ['bar.foo.com']],
    [['*.foo.com'], '*.foo.com', ['*.foo.com']],
    [['*.com'], '*.foo.com', ['*.foo.com']],
    [['baz.com'], 'bar.com', []],
  ])('route %j on listener %j serves %j', (route, listener, expected) => {
    expect(intersectHostnames(route as string[], listener as string | null)).toEqual(expected);
  });
});

describe('planGatewayAddresses', () => {
  it('shares a plain address between all Gateways', () => {
    const plan = planGatewayAddresses('0.0.0.0', ['a/x', 'b/y']);
    expect([...plan.byGateway.values()]).toEqual(['0.0.0.0', '0.0.0.0']);
  });

  it('gives each Gateway its own stable address from a CIDR', () => {
    const first = planGatewayAddresses('127.20.0.0/16', ['ns/one', 'ns/two']);
    const later = planGatewayAddresses('127.20.0.0/16', ['ns/zero', 'ns/two', 'ns/one']);
    expect(first.byGateway.get('ns/one')).not.toEqual(first.byGateway.get('ns/two'));
    expect(later.byGateway.get('ns/one')).toEqual(first.byGateway.get('ns/one'));
    expect(later.byGateway.get('ns/two')).toEqual(first.byGateway.get('ns/two'));
    for (const a of later.byGateway.values()) expect(a).toMatch(/^127\.20\.\d+\.\d+$/);
  });

  it('reports an exhausted pool instead of reusing an address', () => {
    const plan = planGatewayAddresses('127.0.0.8/31', ['a/1', 'a/2', 'a/3']);
    expect(plan.byGateway.size).toBe(2);
    expect(plan.problem).toMatch(/exhausted/);
  });
});
