// Gateway API durations (GEP-2257): `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, read as Go's
// time.ParseDuration reads it — units in any order, repeats summed ("1s1h" is 3601 s).
// Returns milliseconds, or null when the text is not one.
const DURATION = /^(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}$/;
const PART = /([0-9]{1,5})(h|ms|m|s)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

export function parseDurationMs(text: unknown): number | null {
  if (typeof text !== 'string' || !DURATION.test(text)) return null;
  let total = 0;
  for (const [, count, unit] of text.matchAll(PART)) total += Number(count) * UNIT_MS[unit!]!;
  return total;
}
