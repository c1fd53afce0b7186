// HTTP/1.1 request smuggling against a real `sluice run`, beyond http1-strict.test.ts's matrix:
// obfuscated Transfer-Encoding (PortSwigger's and HTTP Request Smuggler's permutations),
// Content-Length forms, chunk framing, trailers, odd versions, Expect, upgrades the backend
// refused, and header counts. Each request is followed in the same write by a smuggled one. The
// backends are raw sockets with a strict parser of their own (support/raw-backend.ts): for each
// vector the client gets the status RFC 9110/9112 call for and the connection is closed where they
// say it must be, or, where the request is legitimate, the backend reads exactly that one
// well-formed request; no backend ever reads the smuggled one, nothing hangs, and the gateway
// serves other clients throughout.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ADMIN_HOST, useAttackGateway } from './support/attack-gateway.ts';
import { RawConnection, usingConnection } from './support/raw-http.ts';

const HOST = 'api.example.com';
/** Sent behind every request of the matrix, in the same write. */
const SMUGGLED = `GET /admin/smuggled HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;

const post = (headers: string, body: string, version = '1.1'): string => `POST /upload HTTP/${version}\r\nHost: ${HOST}\r\n${headers}\r\n\r\n${body}`;
const chunkedPost = (body: string): string => post('Transfer-Encoding: chunked', body);

/** A refusal: the status, the metric reason, and that the connection is closed after it. */
interface Refused {
  status: number;
  reason: string;
}
/** A legitimate request: one well-formed request with this body reaches `public`, answered 200. */
interface Served {
  body: string;
}

const refusals: Array<[string, string, Refused]> = [
  // Transfer-Encoding obfuscations (HTTP Request Smuggler's permutations).
  ['TE: xchunked', post('Transfer-Encoding: xchunked', '0\r\n\r\n'), { status: 501, reason: 'unsupported_transfer_encoding' }],
  ['TE: chunked, identity', post('Transfer-Encoding: chunked, identity', '0\r\n\r\n'), { status: 400, reason: 'invalid_transfer_encoding' }],
  ['TE: chunked then TE: identity', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity', '0\r\n\r\n'), { status: 400, reason: 'invalid_transfer_encoding' }],
  ['TE: identity then TE: chunked', post('Transfer-Encoding: identity\r\nTransfer-Encoding: chunked', '0\r\n\r\n'), { status: 501, reason: 'unsupported_transfer_encoding' }],
  ['TE: chunked with CL, TE obfuscated by a tab before the colon', post('Transfer-Encoding\t: chunked\r\nContent-Length: 5', '0\r\n\r\n'), { status: 400, reason: 'invalid_header' }],
  ['TE with a vertical tab', post('Transfer-Encoding: \u000bchunked', '0\r\n\r\n'), { status: 400, reason: 'invalid_header' }],
  ['TE: "chunked" quoted', post('Transfer-Encoding: "chunked"', '0\r\n\r\n'), { status: 501, reason: 'unsupported_transfer_encoding' }],
  ['TE: chunked;q=1 (a parameter)', post('Transfer-Encoding: chunked;q=1', '0\r\n\r\n'), { status: 501, reason: 'unsupported_transfer_encoding' }],
  ['TE: ch\\x00unked', post('Transfer-Encoding: ch\u0000unked', '0\r\n\r\n'), { status: 400, reason: 'invalid_header' }],
  ['TE as an obs-fold continuation', post('X-A: b\r\n Transfer-Encoding: chunked', '0\r\n\r\n'), { status: 400, reason: 'invalid_header' }],
  ['TE and CL in an HTTP/1.0 request', post('Transfer-Encoding: chunked\r\nContent-Length: 5', '0\r\n\r\n', '1.0'), { status: 400, reason: 'invalid_content_length' }],
  // Content-Length forms.
  ['CL: 1e3', post('Content-Length: 1e3', 'x'), { status: 400, reason: 'invalid_content_length' }],
  ['CL: 0x10', post('Content-Length: 0x10', 'x'), { status: 400, reason: 'invalid_content_length' }],
  ['CL: -1', post('Content-Length: -1', 'x'), { status: 400, reason: 'invalid_content_length' }],
  ['CL: empty', post('Content-Length: ', 'x'), { status: 400, reason: 'invalid_content_length' }],
  ['CL: 5 5 (a space inside)', post('Content-Length: 5 5', 'hello'), { status: 400, reason: 'invalid_content_length' }],
  ['CL overflowing 64 bits', post('Content-Length: 99999999999999999999999', 'x'), { status: 400, reason: 'invalid_content_length' }],
  ['CL: 5 and CL: 05', post('Content-Length: 5\r\nContent-Length: 05', 'hello'), { status: 400, reason: 'invalid_content_length' }],
  // Chunk framing.
  ['a chunk size overflowing (16 hex digits)', chunkedPost('10000000000000001\r\nx\r\n0\r\n\r\n'), { status: 400, reason: 'invalid_chunk_size' }],
  ['a chunk size line ending in a bare LF', chunkedPost('5\nhello\r\n0\r\n\r\n'), { status: 400, reason: 'invalid_line_ending' }],
  ['chunk data longer than its size', chunkedPost('3\r\nhello\r\n0\r\n\r\n'), { status: 400, reason: 'invalid_line_ending' }],
  ['a chunk extension with a bare CR', chunkedPost('5;a=\rb\r\nhello\r\n0\r\n\r\n'), { status: 400, reason: 'invalid_line_ending' }],
  // The smuggled request line is read as a trailer field, and refused as one.
  ['a last chunk without the final CRLF, then a request', chunkedPost('0\r\n'), { status: 400, reason: 'invalid_header' }],
  // Trailer fields are dropped, never forwarded (RFC 9110 §6.5.1 lets a recipient discard them), but
  // the parser refuses framing fields among them: the body already on its way upstream is cut.
  ['a content-length trailer', chunkedPost('5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n'), { status: 400, reason: 'invalid_content_length' }],
  ['a transfer-encoding trailer', chunkedPost('5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n'), { status: 400, reason: 'invalid_transfer_encoding' }],
  // Request line and versions.
  ['HTTP/0.9 (no version)', 'GET /\r\n\r\n', { status: 505, reason: 'unsupported_version' }],
  // llhttp knows 1.0, 1.1 and 2.0 only (RFC 9110 §6.2 would have 1.2 read as 1.1): refused, never misread.
  ['HTTP/1.2', `GET / HTTP/1.2\r\nHost: ${HOST}\r\n\r\n`, { status: 400, reason: 'invalid_version' }],
  ['HTTP/3.0', `GET / HTTP/3.0\r\nHost: ${HOST}\r\n\r\n`, { status: 400, reason: 'invalid_version' }],
  ['a lower-case protocol name', `GET / http/1.1\r\nHost: ${HOST}\r\n\r\n`, { status: 400, reason: 'invalid_request_line' }],
  ['a tab between method and target', `GET\t/ HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, { status: 400, reason: 'invalid_method' }],
  ['a fragment in the target', `GET /admin#x HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, { status: 400, reason: 'invalid_target' }],
  // Fields.
  ['a header name with a DEL', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A\u007f: b\r\n\r\n`, { status: 400, reason: 'invalid_header' }],
  ['a header without a colon', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A b\r\n\r\n`, { status: 400, reason: 'invalid_header' }],
  ['a Host with userinfo (a.com@b.com)', `GET / HTTP/1.1\r\nHost: public.example@${ADMIN_HOST}\r\n\r\n`, { status: 400, reason: 'invalid_host' }],
  ['a Host with a bare CR', `GET / HTTP/1.1\r\nHost: ${HOST}\rX: y\r\n\r\n`, { status: 400, reason: 'invalid_line_ending' }],
  ['Host and an absolute-form target with userinfo', `GET http://x@${ADMIN_HOST}/ HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, { status: 400, reason: 'invalid_target' }],
  // CGI-style backends read X_Forwarded_For as the gateway's X-Forwarded-For (Envoy Gateway refuses it).
  ['a field name with an underscore (X_Forwarded_For)', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX_Forwarded_For: 10.0.0.1\r\n\r\n`, { status: 400, reason: 'underscore_in_header' }],
  ['Transfer_Encoding beside Content-Length', post('Content-Length: 5\r\nTransfer_Encoding: chunked', 'hello'), { status: 400, reason: 'underscore_in_header' }],
  // Node's bound of 1000 fields (maxHeadersCount 2000 names and values), in a head well under 16 KiB.
  ['1001 header fields', `GET / HTTP/1.1\r\nHost: ${HOST}\r\n${'a: b\r\n'.repeat(1000)}\r\n`, { status: 431, reason: 'header_too_large' }],
];

const served: Array<[string, string, Served]> = [
  ['TE with a leading space ( chunked)', post('Transfer-Encoding:  chunked', '5\r\nhello\r\n0\r\n\r\n'), { body: 'hello' }],
  ['TE with a tab before the value', post('Transfer-Encoding:\tchunked', '5\r\nhello\r\n0\r\n\r\n'), { body: 'hello' }],
  ['TE in upper case (CHUNKED)', post('Transfer-Encoding: CHUNKED', '5\r\nhello\r\n0\r\n\r\n'), { body: 'hello' }],
  ['CL with leading zeros', post('Content-Length: 005', 'hello'), { body: 'hello' }],
  ['a chunk extension', chunkedPost('5;name=value;x="a b"\r\nhello\r\n0\r\n\r\n'), { body: 'hello' }],
  ['chunk sizes with leading zeros', chunkedPost('0005\r\nhello\r\n000\r\n\r\n'), { body: 'hello' }],
  ['1000 header fields', `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\n${'a: b\r\n'.repeat(999)}\r\n`, { body: '' }],
  ['a host trailer (dropped)', chunkedPost(`5\r\nhello\r\n0\r\nHost: ${ADMIN_HOST}\r\nX-Trailer: 1\r\n\r\n`), { body: 'hello' }],
  // RFC 9112 §3 lets a recipient split the request line on any whitespace; the backend gets a line Sluice wrote.
  ['two spaces after the method', `GET  /upload HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, { body: '' }],
];

describe('HTTP/1.1 smuggling through a running gateway', () => {
  const gateway = useAttackGateway();

  const open = (): Promise<RawConnection> => RawConnection.open(gateway.port);

  it.each(refusals)('refuses %s and closes the connection', async (_what, bytes, refused) => {
    const before = await gateway.metric('sluice_downstream_rejected_total', { reason: refused.reason });
    const seen = gateway.seen();
    await usingConnection(open, async (connection) => {
      connection.send(bytes + SMUGGLED);
      await connection.untilClosed();
      expect(connection.statuses()).toEqual([refused.status]);
      expect(connection.text).toMatch(/\r\nconnection: close\r\n/i);
    });
    expect(gateway.seen()).toBe(seen);
    expect(await gateway.metric('sluice_downstream_rejected_total', { reason: refused.reason })).toBe(before + 1);
  });

  it.each(served)('forwards %s as one well-formed request and nothing else', async (_what, bytes, expected) => {
    const seen = gateway.public.requests.length;
    await usingConnection(open, async (connection) => {
      connection.send(bytes);
      await connection.untilResponses(1);
      expect(connection.statuses()).toEqual([200]);
    });
    expect(gateway.public.requests.slice(seen).map((r) => [r.target, r.body])).toEqual([['/upload', expected.body]]);
    expect(gateway.public.malformed).toEqual([]);
  });

  it('answers an Expect: 100-continue request the gateway itself answers without waiting for the body, and never reads that body as a request', async () => {
    const seen = gateway.seen();
    await usingConnection(open, async (connection) => {
      connection.send(`POST /redirect HTTP/1.1\r\nHost: ${HOST}\r\nExpect: 100-continue\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n`);
      // Node answers 100 at once, then the redirect (RFC 9110 §10.1.1 allows either): no wait for the body.
      await connection.until((text) => /^HTTP\/1\.1 302 /m.test(text), 2_000);
      // The client sends the body anyway (it may not have seen the answer in time): it is a body.
      connection.send(SMUGGLED);
      connection.send(`GET /after HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      await connection.until((text, closed) => closed || connection.statuses().length >= 2);
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(gateway.admin.raw()).not.toContain('/admin/smuggled');
    expect(gateway.seen() - seen).toBeLessThanOrEqual(1);
  });

  it('forwards an Expect: 100-continue request once the client sends its body', async () => {
    const seen = gateway.public.requests.length;
    await usingConnection(open, async (connection) => {
      connection.send(`POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`);
      await connection.until((text) => /^HTTP\/1\.1 100 /m.test(text));
      connection.send('hello');
      await connection.until((text) => /^HTTP\/1\.1 200 /m.test(text));
    });
    expect(gateway.public.requests.slice(seen).map((r) => [r.target, r.body])).toEqual([['/upload', 'hello']]);
  });

  it('never opens a tunnel the backend did not agree to: bytes behind a refused upgrade are requests, routed on their own', async () => {
    const seen = gateway.public.requests.length;
    await usingConnection(open, async (connection) => {
      // A WebSocket upgrade the public backend answers 200, and in the same write what a client
      // hoping for a blind tunnel would send: a request for the admin path.
      connection.send(`GET /chat HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n` + `GET /admin/through-tunnel HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      await connection.untilResponses(2);
      expect(connection.statuses()).toEqual([200, 200]);
      expect(connection.text).toContain('public /chat');
      expect(connection.text).toContain('admin /admin/through-tunnel');
    });
    expect(gateway.public.requests.slice(seen).map((r) => r.target)).toEqual(['/chat']);
    expect(gateway.public.raw()).not.toContain('/admin/through-tunnel');
    expect(gateway.public.malformed).toEqual([]);
  });

  it('let nothing smuggled reach a backend, not even late, and still serves', async () => {
    await new Promise((r) => setTimeout(r, 300));
    expect(gateway.admin.raw()).not.toContain('/admin/smuggled');
    expect(gateway.public.raw()).not.toContain('/admin/smuggled');
    expect(gateway.admin.malformed).toEqual([]);
    expect(gateway.public.malformed).toEqual([]);
    const response = await fetch(`http://127.0.0.1:${gateway.port}/still`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('public /still\n');
  });
});
