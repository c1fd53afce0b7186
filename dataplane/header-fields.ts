// One reading of a request header for everything that looks at its value (route matches, rate-limit
// selectors, CORS, forwarding): RFC 9110 §5.3 — a field sent more than once is the comma-joined
// list of its lines, in order. Reading only the first line would let a client pick, by repeating a
// header, which value one component sees while another sees the whole list.

/** All values of `name` (lower-case) in a flat `[name, value, ...]` list, joined with ",", or undefined when absent. */
export function headerValue(headers: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) value = value === undefined ? headers[i + 1] : value + ',' + headers[i + 1];
  }
  return value;
}
