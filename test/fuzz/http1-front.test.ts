// Fuzzing the HTTP/1.1 front door of a real `sluice run` over raw sockets: a corpus of known-bad
// request shapes (smuggling matrix, obs-fold, bare LF, bad chunks, NUL bytes, huge heads,
// absolute-form targets, duplicate Host, bad methods, upgrades, HTTP/0.9, HTTP/2 preface
// fragments), then fast-check mutations of valid requests (byte flips, insertions, deletions,
// truncations, repetitions). With the front door's timeouts set short by flags, every connection
// must be closed by the server soon after the case's last byte (whether or not the client sent a
// FIN), any answer must start with a well-formed HTTP/1.1 status line (or be HTTP/2 frames where
// the bytes are no request line), and no request may reach a backend its Host does not route to.
// After every batch the process is alive and the other route still answers from its own backend.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from '../e2e/backends.ts';

/** Fixed, so a failure names a case that replays; SLUICE_FUZZ_SEED explores others. */
const SEED = Number(process.env.SLUICE_FUZZ_SEED ?? 20261204);
const MUTATED_CASES = 400;
/** Cases in flight at once: enough to finish in seconds, few enough for a shared 2-core box. */
const CONCURRENCY = 24;
/**
 * Every front-door wait on a client (request head, body, keep-alive idle, HTTP/2 idle and acks),
 * set short through the flags so that every case must end by itself soon after its last byte.
 */
const FRONT_DOOR_TIMEOUT_MS = 500;
const FRONT_DOOR_FLAGS = ['request-headers-timeout', 'request-body-timeout', 'idle-timeout', 'http2-idle-timeout', 'http2-ack-timeout'].flatMap((flag) => [
  `--${flag}`,
  String(FRONT_DOOR_TIMEOUT_MS),
]);
/** The server must have closed the connection by then (ten times its timeouts: the box is shared). */
const CLOSE_BOUND_MS = 10 * FRONT_DOOR_TIMEOUT_MS;

/** Requests for this host match no route: no backend may ever see it. */
const UNROUTED = 'unrouted.test';
/** Which backend a Host may reach (the route table of this test). */
const ROUTES: Record<string, string> = { 'alpha.test': 'alpha', 'beta.test': 'beta' };

const routeYaml = (name: string, hostname: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [${hostname}]
  rules: [{backendRefs: [{name: ${name}, port: 80}]}]
`;

interface Exchange {
  received: Buffer;
  /** From the last byte written to the server's FIN or close; null: still open after CLOSE_BOUND_MS. */
  closedAfterMs: number | null;
}

/**
 * Writes `bytes` (then a FIN when `fin`) and waits for the server to close the connection: it
 * must, either because it answered and its idle timeout ran out, or because it refused the bytes,
 * or because the head or body it waits for never comes.
 */
function exchange(port: number, bytes: Buffer, fin: boolean): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let sentAt = 0;
    let hang: NodeJS.Timeout | undefined;
    const finish = (closedAfterMs: number | null): void => {
      clearTimeout(hang);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closedAfterMs });
    };
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {
      // A reset is an acceptable end of a malformed exchange; 'close' follows.
    });
    // The server's FIN ends the exchange as a close does (the client, half-open, would answer it).
    const ended = (): void => finish(sentAt === 0 ? 0 : performance.now() - sentAt);
    socket.on('end', ended);
    socket.on('close', ended);
    socket.on('connect', () => {
      socket.write(bytes, () => {
        sentAt = performance.now();
        hang = setTimeout(() => finish(null), CLOSE_BOUND_MS);
      });
      if (fin) socket.end();
    });
  });
}

const STATUS_LINE = /^HTTP\/1\.1 [1-5]\d\d [\x20-\x7e]*\r\n/;
const HTTP2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

/** Why an answer is unacceptable, or null. */
function answerProblem(request: Buffer, received: Buffer): string | null {
  if (received.length === 0) return null;
  // A client that sent the whole HTTP/2 preface speaks HTTP/2: binary frames are its answer.
  if (request.subarray(0, HTTP2_PREFACE.length).toString('latin1') === HTTP2_PREFACE) return null;
  // A first line that is no HTTP/1.x request line (nor the whole preface) is a broken HTTP/2
  // preface on a cleartext port (RFC 9113 §3.4; h2spec 3.5/2): SETTINGS, then GOAWAY
  // PROTOCOL_ERROR (SETTINGS_TIMEOUT for a preface that stalls half-way).
  if (isHttp2ConnectionError(received)) return null;
  const text = received.toString('latin1');
  if (!STATUS_LINE.test(text)) return `answer does not start with an HTTP/1.1 status line: ${JSON.stringify(text.slice(0, 80))}`;
  if (!text.includes('\r\n\r\n')) return `answer head never ends: ${JSON.stringify(text.slice(0, 200))}`;
  return null;
}

/** Whether `received` is HTTP/2 frames: a SETTINGS frame, then a GOAWAY with PROTOCOL_ERROR (0x1) or SETTINGS_TIMEOUT (0x4). */
function isHttp2ConnectionError(received: Buffer): boolean {
  let sawSettings = false;
  for (let offset = 0; offset + 9 <= received.length; offset += 9 + received.readUIntBE(offset, 3)) {
    const type = received[offset + 3];
    if (type === 0x4) sawSettings = true;
    if (type === 0x7) return sawSettings && offset + 17 <= received.length && [0x1, 0x4].includes(received.readUInt32BE(offset + 13));
  }
  return false;
}

function firstStatus(received: Buffer): number | null {
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(received.toString('latin1'));
  return match ? Number(match[1]) : null;
}

/** Every request head a backend receives, with the backend that got it. */
interface Seen {
  backend: string;
  host: string;
  url: string;
}

/** Host as routing sees it: case-insensitive, without port or trailing dot. */
function routingHost(host: string): string {
  return host.toLowerCase().replace(/:\d*$/, '').replace(/\.$/, '');
}

interface Case {
  name: string;
  bytes: Buffer;
  /** rejected: no 2xx/3xx answer. `status`: the first answer must carry one of these. */
  expect?: 'rejected' | number[];
}

const crlf = (...lines: string[]): string => lines.join('\r\n');
const head = (requestLine: string, ...headers: string[]): string => crlf(requestLine, ...headers, '', '');
/** A request for a host no route serves: if any backend sees it, routing was bypassed. */
const SMUGGLED = head('GET /smuggled HTTP/1.1', `Host: ${UNROUTED}`);
const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Known-bad shapes. Expectations follow RFC 9112 and what nginx/Envoy answer. */
const CORPUS: Case[] = [
  // Smuggling matrix (RFC 9112 §6.1, §6.3).
  { name: 'CL.TE', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Content-Length: 6', 'Transfer-Encoding: chunked') + '0\r\n\r\n' + SMUGGLED), expect: [400] },
  { name: 'TE.CL', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked', 'Content-Length: 3') + '8\r\nSMUGGLED\r\n0\r\n\r\n'), expect: [400] },
  { name: 'TE identity, chunked', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: identity, chunked') + '0\r\n\r\n'), expect: [400, 501] },
  { name: 'TE chunked, identity', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked, identity') + '0\r\n\r\n' + SMUGGLED), expect: [400, 501] },
  { name: 'TE chunked twice in one line', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked, chunked') + '0\r\n\r\n'), expect: [400, 501] },
  { name: 'TE xchunked', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: xchunked') + '0\r\n\r\n' + SMUGGLED), expect: [400, 501] },
  { name: 'TE with space before colon', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding : chunked', 'Content-Length: 5') + '0\r\n\r\n' + SMUGGLED), expect: [400] },
  { name: 'TE obs-folded', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding:', ' chunked', 'Content-Length: 5') + '0\r\n\r\n' + SMUGGLED), expect: [400] },
  { name: 'TE in HTTP/1.0', bytes: bytes(head('POST / HTTP/1.0', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '0\r\n\r\n' + SMUGGLED), expect: 'rejected' },
  { name: 'duplicate Content-Length, different values', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Content-Length: 5', 'Content-Length: 42') + 'hello' + SMUGGLED), expect: [400] },
  { name: 'Content-Length list', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Content-Length: 5, 42') + 'hello' + SMUGGLED), expect: [400] },
  { name: 'Content-Length negative', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Content-Length: -1') + SMUGGLED), expect: [400] },
  { name: 'Content-Length plus sign', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Content-Length: +5') + 'hello'), expect: [400] },
  { name: 'Content-Length hex', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Content-Length: 0x5') + 'hello'), expect: [400] },
  { name: 'Content-Length overflow', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Content-Length: 99999999999999999999999') + 'hello'), expect: [400, 413] },
  { name: 'Connection names Content-Length', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Connection: content-length', 'Content-Length: 5') + 'hello' + SMUGGLED) },
  { name: 'Connection names Transfer-Encoding', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Connection: transfer-encoding', 'Transfer-Encoding: chunked') + '5\r\nhello\r\n0\r\n\r\n' + SMUGGLED) },
  // Line endings and folding (RFC 9112 §2.2, §5.2).
  { name: 'obs-fold', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'X-Folded: a', ' b')), expect: [400] },
  { name: 'bare LF everywhere', bytes: bytes('GET / HTTP/1.1\nHost: alpha.test\n\n'), expect: [400] },
  { name: 'bare LF after a header', bytes: bytes('GET / HTTP/1.1\r\nHost: alpha.test\nX-A: b\r\n\r\n'), expect: [400] },
  { name: 'bare CR in a value', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'X-A: a\rb')), expect: [400] },
  { name: 'bare LF in chunk framing', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '5\nhello\n0\n\n' + SMUGGLED), expect: [400] },
  // Chunks (RFC 9112 §7.1).
  { name: 'chunk size not hex', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + 'zz\r\nhello\r\n0\r\n\r\n'), expect: [400] },
  { name: 'chunk size negative', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '-5\r\nhello\r\n0\r\n\r\n'), expect: [400] },
  { name: 'chunk size overflow', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + 'fffffffffffffffff0\r\nhello\r\n0\r\n\r\n'), expect: [400, 413] },
  { name: 'chunk size with trailing space', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '5 \r\nhello\r\n0\r\n\r\n' + SMUGGLED) },
  { name: 'chunk data longer than its size', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '3\r\nhello\r\n0\r\n\r\n' + SMUGGLED), expect: 'rejected' },
  { name: 'chunk without CRLF after data', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '5\r\nhelloXX0\r\n\r\n' + SMUGGLED), expect: 'rejected' },
  { name: 'chunk extension with bare LF', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '5;a\nb\r\nhello\r\n0\r\n\r\n' + SMUGGLED), expect: 'rejected' },
  // NUL and control bytes.
  { name: 'NUL in the target', bytes: bytes(head('GET /a\0b HTTP/1.1', 'Host: alpha.test')), expect: [400] },
  { name: 'NUL in a header value', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'X-A: a\0b')), expect: [400] },
  { name: 'NUL in a header name', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'X-\0A: b')), expect: [400] },
  { name: 'NUL in the method', bytes: bytes(head('G\0T / HTTP/1.1', 'Host: alpha.test')), expect: [400] },
  { name: 'NUL in Host', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test\0.evil')), expect: [400] },
  // Size bounds.
  { name: 'one 100 KB header', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', `X-Big: ${'a'.repeat(100_000)}`)), expect: [431, 400] },
  { name: '5000 small headers', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', ...Array.from({ length: 5000 }, (_, i) => `X-${i}: v`))), expect: [431, 400] },
  { name: '100 KB target', bytes: bytes(head(`GET /${'a'.repeat(100_000)} HTTP/1.1`, 'Host: alpha.test')), expect: [414, 431, 400] },
  // Targets and Host (RFC 9112 §3.2).
  { name: 'absolute-form: the authority wins over Host', bytes: bytes(head('GET http://beta.test/x HTTP/1.1', 'Host: alpha.test')) },
  { name: 'absolute-form to an unrouted authority', bytes: bytes(head(`GET http://${UNROUTED}/x HTTP/1.1`, 'Host: alpha.test')), expect: 'rejected' },
  { name: 'absolute-form with userinfo', bytes: bytes(head(`GET http://alpha.test@${UNROUTED}/x HTTP/1.1`, 'Host: alpha.test')), expect: 'rejected' },
  { name: 'absolute-form with a broken authority', bytes: bytes(head('GET http://[::1/x HTTP/1.1', 'Host: alpha.test')), expect: 'rejected' },
  { name: 'absolute-form with an unknown scheme', bytes: bytes(head(`GET gopher://${UNROUTED}/x HTTP/1.1`, 'Host: alpha.test')), expect: 'rejected' },
  { name: 'asterisk-form with GET', bytes: bytes(head('GET * HTTP/1.1', 'Host: alpha.test')), expect: 'rejected' },
  { name: 'authority-form CONNECT', bytes: bytes(head(`CONNECT ${UNROUTED}:80 HTTP/1.1`, `Host: ${UNROUTED}:80`) + SMUGGLED), expect: 'rejected' },
  { name: 'duplicate Host, different values', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', `Host: ${UNROUTED}`)), expect: [400] },
  { name: 'duplicate Host, same value', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'Host: alpha.test')), expect: [400] },
  // RFC 9112 §3.2 asks 400 for a Host with an invalid value; Sluice answers 404 (no route has
  // that host), which keeps it from every backend just as well.
  { name: 'Host list', bytes: bytes(head('GET / HTTP/1.1', `Host: alpha.test, ${UNROUTED}`)), expect: 'rejected' },
  { name: 'no Host in HTTP/1.1', bytes: bytes(head('GET / HTTP/1.1')), expect: [400] },
  { name: 'empty Host', bytes: bytes(head('GET / HTTP/1.1', 'Host: ')), expect: 'rejected' },
  { name: 'Host with a path', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test/x')), expect: 'rejected' },
  { name: 'Host with a space', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test evil')), expect: 'rejected' },
  // Methods and request line (RFC 9112 §3).
  { name: 'method with a space', bytes: bytes(head('G ET / HTTP/1.1', 'Host: alpha.test')), expect: [400] },
  { name: 'tab for space', bytes: bytes(head('GET\t/\tHTTP/1.1', 'Host: alpha.test')), expect: [400] },
  // RFC 9112 §3 lets a recipient split the request line on any whitespace: no expectation.
  { name: 'two spaces', bytes: bytes(head('GET  / HTTP/1.1', 'Host: alpha.test')) },
  { name: 'high bytes as a method', bytes: Buffer.concat([Buffer.from([0xff, 0xfe, 0x80]), bytes(' / HTTP/1.1\r\nHost: alpha.test\r\n\r\n')]), expect: [400] },
  { name: 'empty method', bytes: bytes(head(' / HTTP/1.1', 'Host: alpha.test')), expect: [400] },
  { name: '10 KB method', bytes: bytes(head(`${'A'.repeat(10_000)} / HTTP/1.1`, 'Host: alpha.test')), expect: 'rejected' },
  { name: 'no version', bytes: bytes(head('GET /', 'Host: alpha.test')), expect: 'rejected' },
  { name: 'HTTP/1.2', bytes: bytes(head('GET / HTTP/1.2', 'Host: alpha.test')), expect: 'rejected' },
  { name: 'HTTP/2.0 in an HTTP/1 line', bytes: bytes(head('GET / HTTP/2.0', 'Host: alpha.test')), expect: 'rejected' },
  { name: 'HTTP/9.9', bytes: bytes(head('GET / HTTP/9.9', 'Host: alpha.test')), expect: 'rejected' },
  { name: 'lowercase version', bytes: bytes(head('GET / http/1.1', 'Host: alpha.test')), expect: [400] },
  { name: 'HTTP/0.9', bytes: bytes('GET /\r\n'), expect: 'rejected' },
  { name: 'HTTP/0.9 with a blank line', bytes: bytes('GET /\r\n\r\n'), expect: 'rejected' },
  { name: 'header without a colon', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'X-No-Colon')), expect: [400] },
  { name: 'header with an empty name', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', ': v')), expect: [400] },
  { name: 'header name with a space', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'X A: v')), expect: [400] },
  { name: 'leading blank lines then a request', bytes: bytes('\r\n\r\n' + head('GET / HTTP/1.1', 'Host: alpha.test')) },
  { name: 'Expect: unknown', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Expect: teleport', 'Content-Length: 5') + 'hello'), expect: [417] },
  // Upgrades: tunnel only after a 101; anything pipelined behind a refused upgrade is routed.
  { name: 'WebSocket upgrade refused, request pipelined behind', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==') + SMUGGLED) },
  { name: 'h2c upgrade, request pipelined behind', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA') + SMUGGLED) },
  { name: 'unknown upgrade, request pipelined behind', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test', 'Connection: Upgrade', 'Upgrade: smuggle/1') + SMUGGLED) },
  { name: 'upgrade with a body', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Connection: Upgrade', 'Upgrade: websocket', 'Content-Length: ' + SMUGGLED.length) + SMUGGLED) },
  { name: 'upgrade to an unrouted host', bytes: bytes(head('GET / HTTP/1.1', `Host: ${UNROUTED}`, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')), expect: 'rejected' },
  // HTTP/2 preface fragments on a cleartext listener (RFC 9113 §3.4).
  { name: 'half an HTTP/2 preface', bytes: bytes(HTTP2_PREFACE.slice(0, 14)) },
  { name: 'HTTP/2 preface without its SM part', bytes: bytes(HTTP2_PREFACE.slice(0, 18)), expect: 'rejected' },
  { name: 'HTTP/2 preface with a wrong tail', bytes: bytes('PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n'), expect: 'rejected' },
  { name: 'HTTP/2 preface then garbage frames', bytes: Buffer.concat([bytes(HTTP2_PREFACE), Buffer.alloc(64, 0xff)]) },
  { name: 'HTTP/2 preface then an HTTP/1.1 request', bytes: bytes(HTTP2_PREFACE + SMUGGLED) },
  { name: 'PRI method with HTTP/1.1', bytes: bytes(head('PRI * HTTP/1.1', 'Host: alpha.test')), expect: 'rejected' },
  // Controls: well-formed traffic that must still be served normally.
  { name: 'control: GET', bytes: bytes(head('GET / HTTP/1.1', 'Host: alpha.test')), expect: [200] },
  { name: 'control: pipelined request for an unrouted host', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Content-Length: 5') + 'hello' + SMUGGLED), expect: [200] },
  { name: 'control: chunked POST', bytes: bytes(head('POST / HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '5\r\nhello\r\n0\r\n\r\n'), expect: [200] },
];

/** Valid requests the mutations start from; each ends with a request no backend may see. */
const SEEDS: Buffer[] = [
  bytes(head('GET /seed HTTP/1.1', 'Host: alpha.test', 'User-Agent: fuzz', 'Accept: */*') + SMUGGLED),
  bytes(head('POST /seed HTTP/1.1', 'Host: alpha.test', 'Content-Type: text/plain', 'Content-Length: 11') + 'hello world' + SMUGGLED),
  bytes(head('POST /seed HTTP/1.1', 'Host: alpha.test', 'Transfer-Encoding: chunked') + '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n' + SMUGGLED),
  bytes(head('GET /seed HTTP/1.1', 'Host: alpha.test', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==') + SMUGGLED),
];

/** One edit of a request; `at` is taken modulo the current length, so any edit fits any seed. */
interface Mutation {
  kind: 'flip' | 'insert' | 'delete' | 'truncate' | 'repeat';
  at: number;
  byte: number;
  insert: Uint8Array;
  length: number;
  times: number;
}

// Unbiased: fast-check's default bias towards small numbers would edit the first bytes every time.
const position = fc.noBias(fc.nat());
/** Bytes that matter to an HTTP/1.1 parser, weighted above random ones. */
const interestingByte = fc.oneof(
  fc.constantFrom(0x00, 0x09, 0x0a, 0x0d, 0x20, 0x3a, 0x3b, 0x2c, 0x2f, 0x7f, 0x80, 0xff, 0x30, 0x66),
  fc.integer({ min: 0, max: 255 }),
);
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom<Mutation['kind']>('flip', 'insert', 'delete', 'truncate', 'repeat'),
  at: position,
  byte: interestingByte,
  insert: fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 16 }),
    fc.constantFrom(...['\r\n', '\n', '\r', ' ', '\r\n ', ':', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 3\r\n', 'Host: beta.test\r\n', '0\r\n\r\n'].map((s) => new Uint8Array(bytes(s)))),
  ),
  length: fc.integer({ min: 1, max: 40 }),
  times: fc.integer({ min: 2, max: 200 }),
});

function mutate(seed: Buffer, mutations: readonly Mutation[]): Buffer {
  let data = seed;
  for (const m of mutations) {
    const at = m.at % data.length;
    switch (m.kind) {
      case 'flip':
        data = Buffer.from(data);
        data[at] = m.byte;
        break;
      case 'insert':
        data = Buffer.concat([data.subarray(0, at), m.insert, data.subarray(at)]);
        break;
      case 'delete':
        data = Buffer.concat([data.subarray(0, at), data.subarray(at + m.length)]);
        break;
      case 'truncate':
        data = data.subarray(0, Math.max(1, at));
        break;
      case 'repeat': {
        const slice = data.subarray(at, at + m.length);
        data = Buffer.concat([data.subarray(0, at), ...Array.from({ length: m.times }, () => slice), data.subarray(at + m.length)]);
        break;
      }
    }
  }
  return data;
}

function mutatedCases(): Case[] {
  const arbitrary = fc.record({ seed: fc.nat({ max: SEEDS.length - 1 }), mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }) });
  return fc.sample(arbitrary, { seed: SEED, numRuns: MUTATED_CASES }).map(({ seed, mutations }, i) => ({
    name: `mutation ${i} of seed ${seed}: ${mutations.map((m) => m.kind).join('+')}`,
    bytes: mutate(SEEDS[seed]!, mutations),
  }));
}

/**
 * Half the cases end with the client's FIN, half leave the connection open: both must end. Not
 * those that expect a backend's answer: a FIN aborts a request in flight (Node's default, as
 * nginx answers 499 to a client that closes while it waits upstream).
 */
function endsWithFin(c: Case, index: number): boolean {
  return index % 2 === 0 && !(Array.isArray(c.expect) && c.expect.some((status) => status < 400));
}

/** Runs `work` over `items` with at most `limit` at once. */
async function inBatches<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

describe('HTTP/1.1 front door under malformed and mutated requests', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let backends: NamedBackend[];
  let port: number;
  const seen: Seen[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-fuzz-http1-'));
    const record = (backend: string) => (req: IncomingMessage) => seen.push({ backend, host: String(req.headers.host), url: req.url ?? '' });
    backends = [await startNamedBackend('alpha', record('alpha')), await startNamedBackend('beta', record('beta'))];
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [GATEWAY_YAML, serviceYaml('alpha', backends[0]!), serviceYaml('beta', backends[1]!), routeYaml('alpha', 'alpha.test'), routeYaml('beta', 'beta.test')].join('---\n'),
    );
    port = await freePort();
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80), ...FRONT_DOOR_FLAGS]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await Promise.all((backends ?? []).map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** The route nobody fuzzed still answers from its own backend. */
  async function expectOtherRouteServes(): Promise<void> {
    const res = await request(`http://127.0.0.1:${port}/after-batch`, { headers: { host: 'beta.test' }, headersTimeout: 5000, bodyTimeout: 5000 });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { backend: string }).backend).toBe('beta');
  }

  /** Sends every case; returns one line per violated rule. Prints how the cases ended. */
  async function run(what: string, cases: Case[]): Promise<string[]> {
    const failures: string[] = [];
    const outcomes = new Map<string, number>();
    const BATCH = 40;
    const seenBefore = seen.length;
    for (let start = 0; start < cases.length; start += BATCH) {
      const batch = cases.slice(start, start + BATCH);
      const results = await inBatches(batch, CONCURRENCY, (c) => exchange(port, c.bytes, endsWithFin(c, cases.indexOf(c))));
      batch.forEach((c, i) => {
        const { received, closedAfterMs } = results[i]!;
        const label = `${c.name} (${JSON.stringify(c.bytes.subarray(0, 120).toString('latin1'))}${c.bytes.length > 120 ? '…' : ''})`;
        if (closedAfterMs === null) failures.push(`${label}: still open ${CLOSE_BOUND_MS} ms after its last byte (front-door timeouts ${FRONT_DOOR_TIMEOUT_MS} ms)`);
        const problem = answerProblem(c.bytes, received);
        if (problem) failures.push(`${label}: ${problem}`);
        const status = firstStatus(received);
        const outcome = status !== null ? String(status) : received.length > 0 ? 'HTTP/2 frames' : 'closed without an answer';
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (c.expect === 'rejected' && status !== null && status < 400) failures.push(`${label}: answered ${status}, expected a rejection`);
        if (Array.isArray(c.expect) && (status === null || !c.expect.includes(status))) failures.push(`${label}: answered ${status ?? 'nothing'}, expected ${c.expect.join(' or ')}`);
      });
      try {
        await expectOtherRouteServes();
      } catch (error) {
        throw new Error(`after cases ${start}..${start + batch.length - 1} (${batch.map((c) => c.name).join('; ')}), the other route failed: ${String(error)}\nsluice said:\n${sluice.logs().slice(-4000)}`);
      }
    }
    // Routing held: every request a backend saw carried a Host routed to that backend (checked
    // after the last batch's probe, so that a request smuggled late is seen too).
    for (const s of seen.slice(seenBefore)) {
      if (ROUTES[routingHost(s.host)] !== s.backend) failures.push(`backend ${s.backend} received ${s.url} for Host ${JSON.stringify(s.host)}, which does not route there`);
    }
    const summary = [...outcomes].sort((a, b) => b[1] - a[1]).map(([outcome, n]) => `${outcome}: ${n}`);
    console.log(`${what}: ${cases.length} cases, ${failures.length} violations; first answers ${summary.join(', ')}`);
    return failures;
  }

  it('serves both routes to begin with', async () => {
    await expectOtherRouteServes();
    const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'alpha.test' } });
    expect(((await res.body.json()) as { backend: string }).backend).toBe('alpha');
  });

  it('answers the corpus of known-bad requests within bounds, with well-formed rejections', async () => {
    expect(await run('corpus', CORPUS)).toEqual([]);
  });

  it(`survives ${MUTATED_CASES} mutated requests (seed ${SEED})`, async () => {
    expect(await run('mutations', mutatedCases())).toEqual([]);
  });
});
