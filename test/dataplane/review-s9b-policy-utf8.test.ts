// Review s9b: L7 HTTP policy header values beyond ASCII (CiliumNetworkPolicy `headers` and
// `headerMatches`), as FX made HTTPRoute header matches and modifiers (b8ea227, 5e9e7c7): Cilium's
// Envoy compares a request's header bytes with the value's UTF-8 bytes and ADD/REPLACE send those
// bytes. Node hands header bytes over as latin1 strings and undici writes strings as latin1, so the
// value as written never matched a client sending it (denied: 403), `é` went out as the byte E9,
// and a character above U+00FF (→) was refused by undici at dispatch: every request to the endpoint
// answered 400. Real policy code on the IR the translator writes.
import { describe, expect, it } from '@jest/globals';
import { type HttpPolicyRule, type L4Policy } from '../../ir/types.ts';
import { HttpPolicyIndex } from '../../dataplane/policy/http-policy.ts';

const API = 300;
/** A header value as Node hands it over: the latin1 string of the bytes that came. */
const onTheWire = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

function index(rule: Partial<HttpPolicyRule>): HttpPolicyIndex {
  const policy: L4Policy = {
    identities: [],
    ipcache: [{ cidr: '10.0.9.91/32', identity: API }],
    enforcement: [],
    rules: [],
    entries: [],
    http: [{ direction: 'ingress', identity: API, audit: false, grants: [{ rule: 1, http: [{ headers: [], headerActions: [], ...rule }] }] }],
  };
  return new HttpPolicyIndex(policy);
}

describe('review s9b: L7 policy header values beyond ASCII', () => {
  it('an exact header value matches the UTF-8 bytes a client sends; the latin1 byte alone does not', () => {
    const policy = index({ headers: [{ name: 'x-team', value: 'café' }] });
    const decide = (value: string) => policy.forEndpoint('10.0.9.91', 80)?.decide('GET', '/', ['host', 'a', 'x-team', value]).verdict;
    expect(decide(onTheWire('café'))).toBe('FORWARDED');
    expect(decide('caf\xe9')).toBe('DROPPED');
    // ASCII unchanged.
    expect(index({ headers: [{ name: 'x-team', value: 'blue' }] }).forEndpoint('10.0.9.91', 80)?.decide('GET', '/', ['host', 'a', 'x-team', 'blue']).verdict).toBe('FORWARDED');
  });

  it('ADD and REPLACE send the UTF-8 bytes (a string every byte of which undici can write), a matching value is left alone', () => {
    const policy = index({
      headerActions: [
        { name: 'x-route', value: 'a→b', mismatch: 'ADD' },
        { name: 'x-env', value: 'préprod', mismatch: 'REPLACE' },
        { name: 'x-kept', value: 'déjà', mismatch: 'REPLACE' },
      ],
    });
    const headers = ['host', 'a', 'x-env', 'dev', 'x-kept', onTheWire('déjà')];
    expect(policy.forEndpoint('10.0.9.91', 80)?.decide('GET', '/', headers).verdict).toBe('FORWARDED');
    expect(headers).toEqual(['host', 'a', 'x-kept', onTheWire('déjà'), 'x-route', onTheWire('a→b'), 'x-env', onTheWire('préprod')]);
    // Every value is a byte string: nothing above U+00FF reaches undici (which refuses it: 400).
    for (let i = 1; i < headers.length; i += 2) expect(/[^\x00-\xff]/.test(headers[i]!)).toBe(false);
  });
});
