// Path normalisation before matching, as Envoy does with `normalize_path` + `merge_slashes`:
// percent-encoded unreserved characters are decoded (the other escapes stay, hex upper-cased), a
// backslash is a slash (Chromium's URL canonicalisation, which Envoy's normalize_path uses:
// `/a/..\c` is `/c`), `.` and `..` segments are resolved (RFC 3986 §5.2.4) — also with
// parameters, `..;x` being `..` as Tomcat and Spring read it (Envoy's
// strip_dotdot_segments_with_parameters) — and runs of slashes merged. The normalised path is
// also what goes upstream, so the route that matched and the backend that answers agree on the
// path: `/x/../admin`, `/%61dmin`, `/x\..\admin` and `/x/..;/admin` are `/admin` to both.
// `%2F` and `%5C` stay encoded here (the front door redirects them first: see
// escapedSlashProblem in http1-strict.ts). The query is never touched.

const HEX_DIGITS = '0123456789ABCDEF';

/**
 * The path routes are matched on and the upstream receives. `path` has no query. Paths not in
 * origin form (`*`) are left alone. Costs one scan without allocating when nothing needs doing,
 * which is nearly always.
 */
export function normalizePath(path: string): string {
  if (path.charCodeAt(0) !== 0x2f /* / */ || !needsNormalizing(path)) return path;
  let normalized = path.indexOf('%') >= 0 ? decodeUnreserved(path) : path;
  if (normalized.indexOf('\\') >= 0) normalized = normalized.replaceAll('\\', '/');
  normalized = removeDotSegments(normalized);
  return normalized.includes('//') ? normalized.replace(/\/{2,}/g, '/') : normalized;
}

/** A `%`, a backslash, an empty segment (`//`) or a `.`/`..` segment (with parameters or not). */
function needsNormalizing(path: string): boolean {
  const length = path.length;
  for (let i = 0; i < length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x25 /* % */ || c === 0x5c /* \ */) return true;
    if (c !== 0x2f /* / */ || i + 1 === length) continue;
    const next = path.charCodeAt(i + 1);
    if (next === 0x2f) return true;
    if (next === 0x2e /* . */) {
      // `/.` or `/..`, ending the path or followed by `/` or `;`
      let end = i + 2;
      if (end < length && path.charCodeAt(end) === 0x2e) end++;
      if (end === length) return true;
      const after = path.charCodeAt(end);
      if (after === 0x2f || after === 0x3b /* ; */) return true;
    }
  }
  return false;
}

/** `%61` → `a`; `%2f` → `%2F`; a `%` not followed by two hex digits stays as it is. */
function decodeUnreserved(path: string): string {
  let out = '';
  let from = 0;
  let at = path.indexOf('%');
  while (at >= 0) {
    const high = at + 2 < path.length ? hexValue(path.charCodeAt(at + 1)) : -1;
    const low = high >= 0 ? hexValue(path.charCodeAt(at + 2)) : -1;
    if (low >= 0) {
      const byte = high * 16 + low;
      out += path.slice(from, at) + (isUnreserved(byte) ? String.fromCharCode(byte) : `%${HEX_DIGITS[high]}${HEX_DIGITS[low]}`);
      from = at + 3;
      at = path.indexOf('%', from);
    } else {
      at = path.indexOf('%', at + 1);
    }
  }
  return out + path.slice(from);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    (byte >= 0x30 && byte <= 0x39) ||
    byte === 0x2d ||
    byte === 0x2e ||
    byte === 0x5f ||
    byte === 0x7e
  );
}

/**
 * RFC 3986 §5.2.4 for an absolute path: `.` segments vanish, `..` removes the segment before it
 * (never climbing above `/`), and a path ending in either keeps its trailing slash. A dot segment
 * with parameters (`.;x`, `..;x`) is one too. Empty segments are kept here (merging slashes comes
 * after, as in Envoy).
 */
function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    let segment = segments[i];
    if (segment.startsWith('.;')) segment = '.';
    else if (segment.startsWith('..;')) segment = '..';
    if (segment === '.' || segment === '..') {
      if (segment === '..') out.pop();
      if (i === last) out.push('');
      continue;
    }
    out.push(segment);
  }
  return '/' + out.join('/');
}
