// Gateway API durations (GEP-2257) as the translator reads them: the HTTPRoute CRD's pattern, with
// Go's time.ParseDuration meaning (what the API server and other implementations use).
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDurationMs } from '../../controller/translate/durations.ts';

const CRD = readFileSync(join(import.meta.dirname, '..', '..', '..', 'shared', 'gateway-api-crds', 'v1.6.1', 'gateway.networking.k8s.io_httproutes.yaml'), 'utf8');

describe('parseDurationMs', () => {
  it('reads every value the CRD pattern admits, units in any order, as Go does', () => {
    expect(CRD).toContain('pattern: ^([0-9]{1,5}(h|m|s|ms)){1,4}$');
    expect(parseDurationMs('0s')).toBe(0);
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('1m30s')).toBe(90_000);
    expect(parseDurationMs('1h2m3s4ms')).toBe(3_723_004);
    expect(parseDurationMs('1s1h')).toBe(3_601_000);
    expect(parseDurationMs('1ms1m')).toBe(60_001);
    expect(parseDurationMs('99999h')).toBe(99_999 * 3_600_000);
  });

  it('refuses what the pattern refuses', () => {
    for (const bad of ['', '1', '1d', '1.5s', '-1s', '100000s', '1s1s1s1s1s', ' 1s', '1S', 10]) expect({ bad, ms: parseDurationMs(bad) }).toEqual({ bad, ms: null });
  });
});
