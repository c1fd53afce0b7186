// Gateway API durations (GEP-2257): a Go-style duration of h, m, s, ms units,
// e.g. "1h", "500ms", "1m30s", "0s". Returns milliseconds, or null when invalid.
const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;

export function parseDurationMs(text: unknown): number | null {
  if (typeof text !== 'string' || text === '') return null;
  const m = DURATION.exec(text);
  if (!m) return null;
  const [h, min, s, ms] = m.slice(1).map((v) => Number(v ?? 0)) as [number, number, number, number];
  return ((h * 60 + min) * 60 + s) * 1000 + ms;
}
