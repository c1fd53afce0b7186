// Filters and the weighted picker as pure functions.

import { describe, expect, it } from '@jest/globals';
import type { RedirectAction } from '../../ir/types.ts';
import { applyHeaderModifiers, compileHeaderModifier } from '../../dataplane/filters/header-modifier.ts';
import { headerValue } from '../../dataplane/header-fields.ts';
import { compileRedirect, redirectLocation, type RedirectRequest } from '../../dataplane/filters/redirect.ts';
import { PickerStates, weightedPicker } from '../../dataplane/upstream/weighted.ts';
import { exact, prefix } from './support/ir.ts';

describe('redirect Location', () => {
  const base: RedirectRequest = { scheme: 'http', host: 'shop.example.com', listenerPort: 8080, portOffset: 0, path: '/a/b', query: '', hasQuery: false };
  const location = (action: Partial<RedirectAction>, request: Partial<RedirectRequest> = {}, match = prefix('/a')) =>
    redirectLocation(compileRedirect({ type: 'Redirect', statusCode: 302, ...action }, match), { ...base, ...request });

  it('keeps scheme, host and the listener port when nothing is set', () => {
    expect(location({})).toBe('http://shop.example.com:8080/a/b');
  });

  it('omits the port when it is the default for the scheme', () => {
    expect(location({}, { listenerPort: 80 })).toBe('http://shop.example.com/a/b');
    expect(location({}, { scheme: 'https', listenerPort: 443 })).toBe('https://shop.example.com/a/b');
    expect(location({}, { scheme: 'https', listenerPort: 80 })).toBe('https://shop.example.com:80/a/b');
  });

  it('uses the well-known port of a scheme the redirect names', () => {
    expect(location({ scheme: 'https' })).toBe('https://shop.example.com/a/b');
    expect(location({ scheme: 'http' }, { scheme: 'https', listenerPort: 8443 })).toBe('http://shop.example.com/a/b');
  });

  it('uses an explicit port, omitted only when it is the default', () => {
    expect(location({ port: 9090 })).toBe('http://shop.example.com:9090/a/b');
    expect(location({ scheme: 'https', port: 8443 })).toBe('https://shop.example.com:8443/a/b');
    expect(location({ scheme: 'https', port: 443 })).toBe('https://shop.example.com/a/b');
  });

  it('adds the offset clients see to a derived port, never to an explicit one', () => {
    // `sluice run --listener-port-offset 8000`: Gateway port 80 is served on 8080, 443 on 8443.
    const offset = { portOffset: 8000, listenerPort: 80 };
    expect(location({ scheme: 'https' }, offset)).toBe('https://shop.example.com:8443/a/b'); // force-https
    expect(location({ scheme: 'http' }, { ...offset, scheme: 'https', listenerPort: 443 })).toBe('http://shop.example.com:8080/a/b');
    expect(location({ hostname: 'other.example.org' }, offset)).toBe('http://other.example.org:8080/a/b'); // same scheme: the port used
    expect(location({ path: { type: 'ReplaceFullPath', value: '/x' } }, { ...offset, scheme: 'https', listenerPort: 443 })).toBe('https://shop.example.com:8443/x');
    expect(location({ scheme: 'https', port: 9443 }, offset)).toBe('https://shop.example.com:9443/a/b'); // as written
  });

  it('replaces the hostname and keeps the query string', () => {
    expect(location({ hostname: 'other.example.org' }, { query: 'x=1&y', hasQuery: true })).toBe('http://other.example.org:8080/a/b?x=1&y');
    expect(location({}, { query: '', hasQuery: true })).toBe('http://shop.example.com:8080/a/b?');
  });

  it('replaces the full path', () => {
    expect(location({ path: { type: 'ReplaceFullPath', value: '/elsewhere' } }, { query: 'q', hasQuery: true })).toBe('http://shop.example.com:8080/elsewhere?q');
  });

  // The table from the Gateway API spec (HTTPPathModifier.ReplacePrefixMatch).
  it.each([
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
    ['/anything', '/', '/bar', '/bar/anything'],
  ])('ReplacePrefixMatch: %s with prefix %s → %s gives %s', (path, matched, replacement, expected) => {
    expect(location({ path: { type: 'ReplacePrefixMatch', value: replacement } }, { path, listenerPort: 80 }, prefix(matched))).toBe(`http://shop.example.com${expected}`);
  });

  it('treats ReplacePrefixMatch on a non-prefix match as a full replacement', () => {
    expect(location({ path: { type: 'ReplacePrefixMatch', value: '/new' } }, { path: '/exact', listenerPort: 80 }, exact('/exact'))).toBe('http://shop.example.com/new');
  });
});

describe('header modifiers', () => {
  it('removes, then sets, then appends with ","', () => {
    const headers = ['host', 'h', 'x-a', '1', 'x-b', 'old', 'x-b', 'older', 'x-c', 'c', 'x-d', 'd1', 'x-d', 'd2'];
    applyHeaderModifiers(headers, [
      compileHeaderModifier({ remove: ['X-C'], set: [{ name: 'X-B', value: 'new' }, { name: 'x-new', value: 'n' }], add: [{ name: 'x-a', value: '2' }, { name: 'x-d', value: 'd3' }, { name: 'x-e', value: 'e' }] }),
    ]);
    expect(headerValue(headers, 'x-a')).toBe('1,2');
    expect(headerValue(headers, 'x-b')).toBe('new');
    expect(headerValue(headers, 'x-c')).toBeUndefined();
    expect(headerValue(headers, 'x-d')).toBe('d1,d2,d3');
    expect(headers.filter((name) => name === 'x-d')).toHaveLength(1);
    expect(headerValue(headers, 'x-e')).toBe('e');
    expect(headerValue(headers, 'x-new')).toBe('n');
    expect(headerValue(headers, 'host')).toBe('h');
  });

  it('adds Set-Cookie as its own line', () => {
    const headers = ['set-cookie', 'a=1'];
    applyHeaderModifiers(headers, [compileHeaderModifier({ remove: [], set: [], add: [{ name: 'Set-Cookie', value: 'b=2' }] })]);
    expect(headers).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2']);
  });
});

describe('smooth weighted round robin', () => {
  function picker(weights: number[], states = new PickerStates(), key = 'route') {
    const generation = states.begin();
    const result = weightedPicker(key, weights.map((weight, i) => ({ item: String.fromCharCode(97 + i), weight, id: String(i) })), generation);
    states.commit(generation);
    return result;
  }

  it('interleaves like nginx (5/1/1 → a a b a c a a)', () => {
    const p = picker([5, 1, 1])!;
    expect(Array.from({ length: 7 }, () => p.pick()).join(' ')).toBe('a a b a c a a');
  });

  it('is exact over every window of sum(weights) picks, and never picks weight 0', () => {
    const p = picker([3, 0, 1, 2])!;
    const counts: Record<string, number> = {};
    for (let i = 0; i < 6 * 50 + 4; i++) {
      if (i < 4) {
        p.pick(); // start mid-cycle: any window of 6 is still exact
        continue;
      }
      const pick = p.pick()!;
      counts[pick] = (counts[pick] ?? 0) + 1;
    }
    expect(counts).toEqual({ a: 150, c: 50, d: 100 });
  });

  it('is null when every weight is zero', () => {
    expect(picker([0, 0])).toBeNull();
  });

  it('keeps its state across a recompile with the same weights, restarts when they change', () => {
    const states = new PickerStates();
    const first = picker([1, 1], states)!;
    expect(first.pick()).toBe('a');
    const same = picker([1, 1], states)!;
    expect(same.pick()).toBe('b');
    const changed = picker([1, 2], states)!;
    expect([changed.pick(), changed.pick(), changed.pick()]).toEqual(['b', 'a', 'b']);
  });
});
