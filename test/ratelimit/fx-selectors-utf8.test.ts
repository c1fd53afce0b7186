// RateLimitPolicy header selectors on text beyond ASCII compare as HTTPRoute header matches do (and
// Envoy): an Exact value with the UTF-8 bytes that came (Node hands header bytes over as a latin1
// string), a regular expression over their UTF-8 text. Before, `café` never matched a client sending it.
import { describe, expect, it } from '@jest/globals';
import { compileSelectors, type ClientContext } from '../../dataplane/ratelimit/selectors.ts';
import type { ClientIPDetection } from '../../ir/types.ts';

const DETECTION: ClientIPDetection = { trustedHops: 0, trustedProxies: [] };

/** A request whose `x-tier` header arrived as the UTF-8 bytes of `text` (`bytes` false: latin1 bytes). */
const request = (text: string, bytes = true): ClientContext => ({
  request: { method: 'GET', path: '/', headers: ['x-tier', bytes ? Buffer.from(text, 'utf8').toString('latin1') : text] },
  remoteAddress: '127.0.0.1',
  address: undefined,
});

describe('rate-limit header selectors beyond ASCII', () => {
  it('Exact compares the UTF-8 bytes; RegularExpression reads their text', () => {
    const exact = compileSelectors([{ type: 'Header', name: 'x-tier', match: 'Exact', value: 'café →', invert: false }], DETECTION);
    expect(exact.keyFor(request('café →'))).not.toBeNull();
    expect(exact.keyFor(request('café', false))).toBeNull();
    const regex = compileSelectors([{ type: 'Header', name: 'x-tier', match: 'RegularExpression', value: 'caf. →', invert: false }], DETECTION);
    expect(regex.keyFor(request('café →'))).not.toBeNull();
    expect(regex.keyFor(request('cafe'))).toBeNull();
  });
});
