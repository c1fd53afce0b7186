// The claim list against the facts: upstream's feature names (upstream-features.json) and the
// README's table of claimed and unclaimed features.

import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLAIMED_FEATURES, loadUpstreamFeatures, NOT_CLAIMED } from './claimed-features.ts';

const upstream = loadUpstreamFeatures();
const upstreamNames = upstream.features.map((f) => f.name);

describe('claimed Gateway API features', () => {
  it('records the upstream list it was read from', () => {
    expect(upstream.schema).toBe('sluice-upstream-features/v1');
    expect(upstream.release).toEqual({ tag: 'v1.6.1', commit: expect.stringMatching(/^[0-9a-f]{40}$/) });
    expect(new Set(upstreamNames).size).toBe(upstreamNames.length);
    for (const f of upstream.features) {
      expect([f.name, ['standard', 'experimental'].includes(f.channel)]).toEqual([f.name, true]);
    }
  });

  it('claims only upstream feature names, each once', () => {
    expect(CLAIMED_FEATURES.filter((f) => !upstreamNames.includes(f))).toEqual([]);
    expect(new Set(CLAIMED_FEATURES).size).toBe(CLAIMED_FEATURES.length);
  });

  it('decides on every upstream feature: claimed, or not claimed with a reason', () => {
    expect(upstreamNames.filter((n) => !(CLAIMED_FEATURES as readonly string[]).includes(n) && !NOT_CLAIMED[n])).toEqual([]);
    expect(Object.keys(NOT_CLAIMED).filter((n) => !upstreamNames.includes(n))).toEqual([]);
    expect(CLAIMED_FEATURES.filter((n) => n in NOT_CLAIMED)).toEqual([]);
  });

  it('lists every claimed and unclaimed feature in the README table', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    const start = readme.indexOf('### Claimed conformance features');
    expect(start).toBeGreaterThan(-1);
    const section = readme.slice(start, readme.indexOf('\n#', start + 1));
    const rows = section.split('\n').filter((l) => l.startsWith('| `'));
    const named = (claimed: boolean) =>
      rows.filter((r) => r.split('|')[2].trim().startsWith(claimed ? 'claimed' : 'not claimed')).flatMap((r) => [...r.split('|')[1].matchAll(/`([A-Za-z0-9]+)`/g)].map((m) => m[1]));
    expect(named(true).sort()).toEqual([...CLAIMED_FEATURES].sort());
    expect(named(false).sort()).toEqual(Object.keys(NOT_CLAIMED).sort());
  });
});
