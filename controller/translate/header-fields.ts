// What an HTTP field name and value may hold, one rule for every input that puts them on the wire
// or compares them with a request's (HTTPRoute header modifiers, session header names, L7 network
// policy headers): the schemas bound only lengths, and what breaks here failed every request.

/** RFC 9110 token: what a field name (and an RFC 6265 cookie-name) must be. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * What no HTTP field value can carry: control characters but tab (CR, LF would split the field;
 * NUL, DEL and the rest are refused by HTTP parsers). Any other character goes out as its UTF-8
 * bytes, as Envoy sends the value as written (its config refuses only NUL, CR, LF).
 */
const INVALID_HEADER_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Why `value` cannot be an HTTP field value (the words of a problem: `value "…" holds …`), or null when it can. */
export function headerValueTrouble(value: string): string | null {
  // DEL escaped too (JSON leaves it raw): the message goes to logs and terminals.
  return INVALID_HEADER_VALUE.test(value) ? `value ${JSON.stringify(value).replaceAll('\x7f', '\\u007f')} holds a control character, which no HTTP header value can carry` : null;
}
