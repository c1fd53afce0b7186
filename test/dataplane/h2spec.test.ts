// HTTP/2 conformance: h2spec (github.com/summerwind/h2spec, built by test/h2spec/build.sh) against a
// real `sluice run`, on the HTTPS listener (h2 by ALPN) and on the cleartext listener (prior
// knowledge). Every one of its 145 tests must pass on both; the assertion names the failing ids
// (e.g. http2/5.1/8) and h2spec's own words for them.

import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { describeIfPossible, requiredByEnvironment } from '../support/suite.ts';
import { startH2Gateway, type H2Gateway } from './support/h2-gateway.ts';
import { H2SPEC_TESTS, failures, runH2spec, skipReason } from './support/h2spec.ts';

describeIfPossible('h2spec against sluice run', skipReason(), requiredByEnvironment('SLUICE_H2SPEC_REQUIRED'))('h2spec against sluice run', () => {
  let gateway: H2Gateway;

  beforeAll(async () => {
    gateway = await startH2Gateway();
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('passes every test on the HTTPS listener (h2 by ALPN)', async () => {
    const cases = await runH2spec(gateway.tlsPort, true);
    expect(failures(cases)).toEqual([]);
    expect(cases.filter((c) => c.outcome === 'passed')).toHaveLength(H2SPEC_TESTS);
    expect(gateway.sluice.logs()).not.toMatch(/ERR_INTERNAL_ASSERTION|uncaught/i);
  }, 300_000);

  it('passes every test on the cleartext listener (prior knowledge)', async () => {
    const cases = await runH2spec(gateway.plainPort, false);
    expect(failures(cases)).toEqual([]);
    expect(cases.filter((c) => c.outcome === 'passed')).toHaveLength(H2SPEC_TESTS);
    expect(gateway.sluice.logs()).not.toMatch(/ERR_INTERNAL_ASSERTION|uncaught/i);
  }, 300_000);

  it('still serves HTTP/1.1 and HTTP/2 after all of that', async () => {
    const res = await fetch(`http://127.0.0.1:${gateway.plainPort}/after-h2spec`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { path: string }).path).toBe('/after-h2spec');
  });
});
