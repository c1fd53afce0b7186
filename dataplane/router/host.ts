// Host selection with Gateway API specificity: an exact name beats any wildcard, a longer
// wildcard beats a shorter one, and a catch-all (a scope without hostname, or a virtual host
// `*`) comes last. Used twice per request: Host → listener scope, then Host → virtual host.

/**
 * Host header → the name routes are matched on: port removed, lower-cased, one trailing dot
 * removed. IPv6 literals keep their brackets (`[::1]:8080` → `[::1]`).
 */
export function normalizeHost(host: string | undefined): string {
  if (host === undefined || host === '') return '';
  let end = host.length;
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    const close = host.indexOf(']');
    if (close > 0) end = close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 0x2e /* . */) end--;
  return (end === host.length ? host : host.slice(0, end)).toLowerCase();
}

/** Lower-cased, trailing dot removed: the form patterns are stored in. */
export function normalizeHostnamePattern(pattern: string): string {
  const lower = pattern.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Entries keyed by host pattern: `example.com` (exact), `*.example.com` (one or more extra
 * labels) or a catch-all. Lookup costs one Map probe for exact names and one per label for
 * wildcards, whatever the number of entries.
 */
export class HostIndex<T> {
  private exact = new Map<string, T>();
  /** Keyed by the suffix after `*`, dot included: `*.example.com` → `.example.com`. */
  private wildcards = new Map<string, { value: T; singleLabel: boolean }>();
  private catchAll: T | undefined = undefined;

  /**
   * A copy with `value` where `old` is for each pattern (the same patterns, new values: an edit
   * among thousands of hosts copies the maps, a native copy, instead of adding every entry again);
   * null when a pattern's entry is not `old` (the caller builds afresh). This index is unchanged.
   */
  replacing(replacements: readonly { pattern: string | null; old: T; value: T }[]): HostIndex<T> | null {
    const next = new HostIndex<T>();
    next.exact = new Map(this.exact);
    next.wildcards = this.wildcards.size === 0 ? next.wildcards : new Map(this.wildcards);
    next.catchAll = this.catchAll;
    for (const { pattern, old, value } of replacements) {
      if (pattern === null || pattern === '*') {
        if (next.catchAll !== old) return null;
        next.catchAll = value;
        continue;
      }
      const name = normalizeHostnamePattern(pattern);
      if (name.startsWith('*.')) {
        const wildcard = next.wildcards.get(name.slice(1));
        if (wildcard?.value !== old) return null;
        next.wildcards.set(name.slice(1), { value, singleLabel: wildcard.singleLabel });
      } else {
        if (next.exact.get(name) !== old) return null;
        next.exact.set(name, value);
      }
    }
    return next;
  }

  /**
   * Adds an entry; the first entry for a pattern wins (inputs arrive in precedence order).
   * `null` and `*` are catch-alls. `singleLabel`: Ingress semantics, the wildcard stands for
   * exactly one label (`*.foo.com` matches `a.foo.com`, not `a.b.foo.com`).
   */
  add(pattern: string | null, value: T, singleLabel = false): void {
    if (pattern === null || pattern === '*') {
      if (this.catchAll === undefined) this.catchAll = value;
      return;
    }
    const name = normalizeHostnamePattern(pattern);
    if (name.startsWith('*.')) {
      const suffix = name.slice(1);
      if (!this.wildcards.has(suffix)) this.wildcards.set(suffix, { value, singleLabel });
    } else if (!this.exact.has(name)) {
      this.exact.set(name, value);
    }
  }

  /**
   * Every entry in lookup precedence: exact names, wildcards longest suffix first, then the
   * catch-all (pattern `*`). For descriptions (golden files, debugging), not the request path.
   */
  entries(): Array<{ pattern: string; value: T; singleLabel: boolean }> {
    const entries: Array<{ pattern: string; value: T; singleLabel: boolean }> = [];
    for (const [name, value] of this.exact) entries.push({ pattern: name, value, singleLabel: false });
    const wildcards = [...this.wildcards].sort(([a], [b]) => b.length - a.length);
    for (const [suffix, wildcard] of wildcards) entries.push({ pattern: `*${suffix}`, value: wildcard.value, singleLabel: wildcard.singleLabel });
    if (this.catchAll !== undefined) entries.push({ pattern: '*', value: this.catchAll, singleLabel: false });
    return entries;
  }

  /** `host` must already be normalized (see normalizeHost). */
  find(host: string): T | undefined {
    const exact = this.exact.get(host);
    if (exact !== undefined) return exact;
    if (this.wildcards.size > 0) {
      // Suffixes are tried longest first, so the most specific wildcard wins. Starting at the
      // first dot guarantees at least one label before the suffix: `example.com` never
      // matches `*.example.com`.
      const firstDot = host.indexOf('.');
      for (let dot = firstDot; dot >= 0; dot = host.indexOf('.', dot + 1)) {
        const wildcard = this.wildcards.get(host.slice(dot));
        if (wildcard !== undefined && (dot === firstDot || !wildcard.singleLabel)) return wildcard.value;
      }
    }
    return this.catchAll;
  }
}
