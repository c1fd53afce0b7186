// RequestHeaderModifier / ResponseHeaderModifier over a flat header list
// (`[name, value, name, value, ...]`, names lower-case): the form the proxy builds for undici
// and hands to `res.writeHead`, so no header object is materialised per request.

import type { HeaderModifier } from '../../ir/types.ts';

/** A HeaderModifier prepared once at compile time: names lower-cased, pairs flattened. */
export interface HeaderModifierPlan {
  remove: readonly string[];
  /** Flat `[name, value, ...]`. */
  set: readonly string[];
  /** Flat `[name, value, ...]`. */
  add: readonly string[];
}

export function compileHeaderModifier(modifier: HeaderModifier): HeaderModifierPlan {
  const flatten = (values: HeaderModifier['set']): string[] =>
    values.flatMap(({ name, value }) => [name.toLowerCase(), wireHeaderValue(value)]);
  return {
    remove: modifier.remove.map((name) => name.toLowerCase()),
    set: flatten(modifier.set),
    add: flatten(modifier.add),
  };
}

/**
 * A configured header value as the string Node must be given for its UTF-8 bytes to go out: Node
 * (HTTP/1.1 and HTTP/2) and undici write header strings as latin1, one byte per character, so
 * `é` would leave as the single byte E9 and `→` could not be sent at all. Envoy (and so Envoy
 * Gateway and Cilium) sends the value's UTF-8 bytes as written in the manifest; so does Sluice.
 * Made once here, at compile time; incoming header values are latin1 strings of their bytes too,
 * so `add` joins byte strings with byte strings.
 */
export function wireHeaderValue(value: string): string {
  return NON_ASCII.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value;
}
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * The text a header value's bytes spell in UTF-8: a configured value back from `wireHeaderValue`
 * (for showing a plan), or a request's value for a regular expression written as text (Envoy's
 * RE2 reads UTF-8: `caf.` matches `café`, two bytes at its end).
 */
export function headerText(wire: string): string {
  return NON_ASCII.test(wire) ? Buffer.from(wire, 'latin1').toString('utf8') : wire;
}

/**
 * Applies modifiers in order, each as remove → set → add (Envoy's order, which Gateway API
 * implementations follow): `set` replaces every occurrence, `add` appends to the existing
 * value joined with "," (Set-Cookie gets its own line instead: it cannot be comma-joined).
 */
export function applyHeaderModifiers(headers: string[], plans: readonly HeaderModifierPlan[]): void {
  for (let p = 0; p < plans.length; p++) {
    const plan = plans[p];
    for (let i = 0; i < plan.remove.length; i++) removeHeader(headers, plan.remove[i]);
    for (let i = 0; i < plan.set.length; i += 2) {
      removeHeader(headers, plan.set[i]);
      headers.push(plan.set[i], plan.set[i + 1]);
    }
    for (let i = 0; i < plan.add.length; i += 2) appendHeader(headers, plan.add[i], plan.add[i + 1]);
  }
}

export function removeHeader(headers: string[], name: string): void {
  let write = 0;
  for (let read = 0; read < headers.length; read += 2) {
    if (headers[read] === name) continue;
    if (write !== read) {
      headers[write] = headers[read];
      headers[write + 1] = headers[read + 1];
    }
    write += 2;
  }
  // Only when something went: setting the length costs even when it is unchanged.
  if (write !== headers.length) headers.length = write;
}

export function appendHeader(headers: string[], name: string, value: string): void {
  if (name === 'set-cookie') {
    headers.push(name, value);
    return;
  }
  let first = -1;
  let folded = false;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== name) continue;
    if (first < 0) {
      first = i;
    } else {
      headers[first + 1] += ',' + headers[i + 1];
      headers[i] = ''; // folded into the first occurrence; dropped below
      folded = true;
    }
  }
  if (first < 0) {
    headers.push(name, value);
    return;
  }
  headers[first + 1] += ',' + value;
  if (folded) removeHeader(headers, '');
}

