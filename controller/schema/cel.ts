// The CRDs' `x-kubernetes-validations` rules, evaluated the way the API server does
// (https://kubernetes.io/docs/reference/using-api/cel/), with @marcbachmann/cel-js.
//
// What the API server adds to standard CEL and the Gateway API rules use: `isIP` and `isCIDR`
// (Kubernetes IP library), registered here; `split` and `substring` (Kubernetes strings library)
// come with cel-js, as do `matches`, `size`, the macros and `duration`. Property names that are CEL keywords or hold
// `_ . - /` are escaped as the API server escapes them (`namespace` → `__namespace__`).
// Transition rules (those reading `oldSelf`) only apply to updates of a stored object: standalone
// mode stores nothing, so they are not evaluated.
import { isIP as netIsIP } from 'node:net';
import { Environment } from '@marcbachmann/cel-js';

/** Kubernetes' isIP: an IPv4 or IPv6 address, without a zone (`%eth0`); IPv4 without leading zeros. */
function isIP(text: string): boolean {
  return !text.includes('%') && netIsIP(text) !== 0;
}

/** Kubernetes' isCIDR: an address and a prefix length within its family's bits. */
function isCIDR(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0) return false;
  const address = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  if (!isIP(address) || !/^(0|[1-9]\d{0,2})$/.test(bits)) return false;
  return Number(bits) <= (netIsIP(address) === 4 ? 32 : 128);
}

const environment = new Environment({ homogeneousAggregateLiterals: false })
  .registerVariable('self', 'dyn')
  .registerFunction('isIP(string): bool', isIP)
  .registerFunction('isCIDR(string): bool', isCIDR);

// Reserved words of CEL (https://github.com/google/cel-spec/blob/master/doc/langdef.md#syntax) the API server escapes.
const CEL_RESERVED = new Set([
  'true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if',
  'import', 'let', 'loop', 'package', 'namespace', 'return', 'var', 'void', 'while',
]);

const escapedNames = new Map<string, string>();

/** How a property name reads in a rule (Kubernetes' escaping of field names); schema names only, so the cache stays small. */
export function celFieldName(name: string): string {
  let escaped = escapedNames.get(name);
  if (escaped === undefined) {
    escaped = CEL_RESERVED.has(name) ? `__${name}__` : name.replace(/__|[./-]/g, (m) => ({ __: '__underscores__', '.': '__dot__', '-': '__dash__', '/': '__slash__' })[m]!);
    escapedNames.set(name, escaped);
  }
  return escaped;
}

/**
 * cel-js's has() takes only a field of an identifier chain (`has(a.b.c)`); CEL allows any operand
 * (`has(self.matches[0].path)`, used by the HTTPRoute rules). On a map — every object here is one —
 * `has(e.f)` is `'f' in e`, which is what such a has() becomes.
 */
export function rewriteHas(rule: string): string {
  let out = '';
  let i = 0;
  while (i < rule.length) {
    const at = rule.indexOf('has(', i);
    if (at < 0 || (at > 0 && /[\w.]/.test(rule[at - 1]!))) {
      if (at < 0) return out + rule.slice(i);
      out += rule.slice(i, at + 4);
      i = at + 4;
      continue;
    }
    const close = matchingParen(rule, at + 3);
    const arg = rewriteHas(rule.slice(at + 4, close));
    const field = /^([\s\S]*)\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(arg.trim());
    out += rule.slice(i, at);
    out += field && !/^[A-Za-z_][\w.]*$/.test(field[1]!) ? `('${field[2]}' in ${field[1]})` : `has(${arg})`;
    i = close + 1;
  }
  return out;
}

/**
 * RE2's flag group `(?i)` sets a flag to the end of the pattern (the GRPCRoute rules use it); a
 * JavaScript RegExp knows only the scoped modifier `(?i:...)`, so the rest of the raw-string pattern
 * becomes its scope: `r"""^(?i)\.?[a-z]$"""` → `r"""^(?i:\.?[a-z]$)"""`.
 */
export function rewriteFlagGroups(rule: string): string {
  return rule.replace(/\(\?([ims]+)\)([\s\S]*?)"""/g, '(?$1:$2)"""');
}

/** The index of the parenthesis closing the one at `open`, skipping quoted text. */
function matchingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1);
      if (end < 0) break;
      i = end;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  throw new Error(`unbalanced parentheses in rule: ${text}`);
}

export type CelRule = (self: unknown) => unknown;

const compiled = new Map<string, CelRule | null>();

/** The rule compiled (once per text), or null for a transition rule (`oldSelf`), not evaluated here. */
export function celRule(rule: string): CelRule | null {
  let fn = compiled.get(rule);
  if (fn === undefined) {
    if (/\boldSelf\b/.test(rule)) fn = null;
    else {
      const evaluate = environment.parse(rewriteFlagGroups(rewriteHas(rule)));
      fn = (self: unknown) => evaluate({ self });
    }
    compiled.set(rule, fn);
  }
  return fn;
}
