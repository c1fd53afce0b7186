// The HTTP/1.1 front door refuses ambiguous framing (the request-smuggling matrix) and Host
// confusion, as nginx and Envoy do: raw bytes on a socket, the exact status, no second request at
// the backend, and every refusal counted and logged.

import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import pino from 'pino';
import { Registry } from 'prom-client';
import { LOG_INTERVAL_MS, RejectionReporter } from '../../dataplane/http1-strict.ts';
import { DataplaneMetrics } from '../../dataplane/metrics.ts';
import { freePort } from '../support/ports.ts';
import { irCertificate, selfSignedCertificate } from './support/certs.ts';
import { testDataplane, type LogLine, type TestDataplane } from './support/harness.ts';
import { backend, forwardTo, listener, prefix, route, scope } from './support/ir.ts';
import { rawExchange, RawConnection, startCountingBackend, usingConnection, type CountingBackend } from './support/raw-http.ts';

/** What follows each bad request in the same write: it must never reach a backend. */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: api.example.com\r\n\r\n';

describe('HTTP/1.1 strictness', () => {
  let api: CountingBackend;
  let admin: CountingBackend;
  let port: number;
  let tlsPort: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    api = await startCountingBackend();
    admin = await startCountingBackend();
    port = await freePort();
    tlsPort = await freePort();
    harness = testDataplane();
    const certificate = await selfSignedCertificate('api.example.com');
    const scopes = (name: string) => [
      scope(name, null, [
        ['api.example.com', [route('api', { path: prefix('/') }, forwardTo('svc/api'))]],
        ['admin.internal', [route('admin', { path: prefix('/') }, forwardTo('svc/admin'))]],
      ]),
    ];
    await harness.dataplane.apply('v1', {
      listeners: [
        listener(port, scopes('http')),
        listener(tlsPort, scopes('https'), { protocol: 'HTTPS', tls: { certificates: [irCertificate('secret/default/api', ['api.example.com'], certificate)] } }),
      ],
      backends: { 'svc/api': backend('svc/api', [api.endpoint]), 'svc/admin': backend('svc/admin', [admin.endpoint]) },
    });
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await api.close();
    await admin.close();
  });

  async function rejected(reason: string, listenerPort = port): Promise<number> {
    const metric = await harness.registry.getSingleMetric('sluice_downstream_rejected_total')?.get();
    return metric?.values.find((value) => value.labels.reason === reason && value.labels.listener === `127.0.0.1:${listenerPort}`)?.value ?? 0;
  }

  const post = (headers: string, body: string): string => `POST /upload HTTP/1.1\r\nHost: api.example.com\r\n${headers}\r\n\r\n${body}`;
  const chunked = (sizeLine: string): string => post('Transfer-Encoding: chunked', `${sizeLine}\r\nx\r\n0\r\n\r\n`);

  // [what, request bytes, status, reason label]
  const matrix: Array<[string, string, number, string]> = [
    ['CL.TE: Content-Length and Transfer-Encoding', post('Content-Length: 6\r\nTransfer-Encoding: chunked', '0\r\n\r\nX'), 400, 'invalid_transfer_encoding'],
    ['TE.CL: Transfer-Encoding and Content-Length', post('Transfer-Encoding: chunked\r\nContent-Length: 6', '0\r\n\r\nX'), 400, 'invalid_content_length'],
    ['two equal Content-Length headers', post('Content-Length: 4\r\nContent-Length: 4', 'abcd'), 400, 'invalid_content_length'],
    ['two differing Content-Length headers', post('Content-Length: 4\r\nContent-Length: 40', 'abcd'), 400, 'invalid_content_length'],
    ['a Content-Length list', post('Content-Length: 4, 4', 'abcd'), 400, 'invalid_content_length'],
    ['a signed Content-Length', post('Content-Length: +4', 'abcd'), 400, 'invalid_content_length'],
    ['Transfer-Encoding: chunked, chunked', post('Transfer-Encoding: chunked, chunked', '0\r\n\r\n'), 400, 'invalid_transfer_encoding'],
    ['two Transfer-Encoding: chunked headers', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked', '0\r\n\r\n'), 400, 'invalid_transfer_encoding'],
    ['Transfer-Encoding: identity, chunked', post('Transfer-Encoding: identity, chunked', '0\r\n\r\n'), 501, 'unsupported_transfer_encoding'],
    ['Transfer-Encoding: gzip, chunked', post('Transfer-Encoding: gzip, chunked', '0\r\n\r\n'), 501, 'unsupported_transfer_encoding'],
    ['Transfer-Encoding in an HTTP/1.0 request', 'POST /upload HTTP/1.0\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'invalid_transfer_encoding'],
    ['whitespace before the colon of Transfer-Encoding', post('Transfer-Encoding : chunked', '0\r\n\r\n'), 400, 'invalid_header'],
    ['an obs-fold continuation line', 'GET / HTTP/1.1\r\nHost: api.example.com\r\nX-Folded: a\r\n b\r\n\r\n', 400, 'invalid_header'],
    ['a negative chunk size', chunked('-1'), 400, 'invalid_chunk_size'],
    ['a chunk size overflowing 64 bits', chunked('FFFFFFFFFFFFFFFFF1'), 400, 'invalid_chunk_size'],
    ['a 0x chunk size', chunked('0x1'), 400, 'invalid_chunk_size'],
    ['a space before the chunk size', chunked(' 1'), 400, 'invalid_chunk_size'],
    ['a space after the chunk size', chunked('1 '), 400, 'invalid_chunk_size'],
    ['bare LF line endings', 'GET / HTTP/1.1\nHost: api.example.com\n\n', 400, 'invalid_version'],
    ['a bare LF between headers', 'GET / HTTP/1.1\r\nHost: api.example.com\nX-A: b\r\n\r\n', 400, 'invalid_line_ending'],
    ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: api.example.com\r\nX-A: a\0b\r\n\r\n', 400, 'invalid_header'],
    ['CR in a header value', 'GET / HTTP/1.1\r\nHost: api.example.com\r\nX-A: a\rb\r\n\r\n', 400, 'invalid_line_ending'],
    ['a space before the colon', 'GET / HTTP/1.1\r\nHost: api.example.com\r\nX-A : b\r\n\r\n', 400, 'invalid_header'],
    ['an invalid method token', 'G@T / HTTP/1.1\r\nHost: api.example.com\r\n\r\n', 400, 'invalid_method'],
    ['an unknown method', 'BREW / HTTP/1.1\r\nHost: api.example.com\r\n\r\n', 400, 'invalid_method'],
    ['a request head over the limit', `GET / HTTP/1.1\r\nHost: api.example.com\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'header_too_large'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: admin.internal\r\n\r\n', 400, 'duplicate_host'],
    ['no Host header', 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n', 400, 'missing_host'],
    ['a Host list', 'GET / HTTP/1.1\r\nHost: api.example.com, admin.internal\r\n\r\n', 400, 'invalid_host'],
    ['an empty Host', 'GET / HTTP/1.1\r\nHost: \r\n\r\n', 400, 'invalid_host'],
    ['a Host with a path', 'GET / HTTP/1.1\r\nHost: api.example.com/x\r\n\r\n', 400, 'invalid_host'],
    ['HTTP/2.0 in an HTTP/1 request line', 'GET / HTTP/2.0\r\nHost: api.example.com\r\n\r\n', 505, 'unsupported_version'],
    ['an absolute-form target that is not http(s)', 'GET ftp://api.example.com/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n', 400, 'invalid_target'],
    ['`*` with GET', 'GET * HTTP/1.1\r\nHost: api.example.com\r\n\r\n', 400, 'invalid_target'],
    ['CONNECT', 'CONNECT admin.internal:443 HTTP/1.1\r\nHost: admin.internal:443\r\n\r\n', 405, 'connect_method'],
  ];

  it.each(matrix)('refuses %s', async (_what, bytes, status, reason) => {
    const before = await rejected(reason);
    const seenBefore = api.requestLines().length + admin.requestLines().length;
    const answer = await rawExchange(port, bytes + SMUGGLED);
    // One answer, then the connection is closed: nothing behind the bad request is read.
    expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(answer.match(/^HTTP\/1\.1 /gm)).toHaveLength(1);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(api.raw() + admin.raw()).not.toContain('/smuggled');
    // Refused before routing, or (a bad chunk) after the head of the one request went up.
    expect(api.requestLines().length + admin.requestLines().length - seenBefore).toBeLessThanOrEqual(bytes.includes('chunked\r\n\r\n') ? 1 : 0);
    expect(await rejected(reason)).toBe(before + 1);
  });

  it('let no request behind a refused one reach a backend, not even late', async () => {
    // A request pipelined behind a refused one could still be dispatched after the connection
    // closed: give it the time a forward takes on this box.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(api.raw() + admin.raw()).not.toContain('/smuggled');
  });

  it('refuses the same over TLS, counted for that listener', async () => {
    await usingConnection(() => RawConnection.open(tlsPort, { tls: true, servername: 'api.example.com' }), async (connection) => {
      connection.send(post('Content-Length: 4\r\nTransfer-Encoding: chunked', '0\r\n\r\n') + SMUGGLED);
      await connection.untilClosed();
      expect(connection.statuses()).toEqual([400]);
      expect(await rejected('invalid_transfer_encoding', tlsPort)).toBe(1);
      expect(api.raw()).not.toContain('/smuggled');
    });
  });

  it('routes an absolute-form request on its authority and sends that authority as Host', async () => {
    const answer = await rawExchange(port, 'GET http://api.example.com/x?y=1 HTTP/1.1\r\nHost: admin.internal\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain('backend /x?y=1');
    expect(api.requests.at(-1)).toMatchObject({ url: '/x?y=1', headers: expect.objectContaining({ host: 'api.example.com' }) });
    expect(admin.requests).toHaveLength(0);
  });

  it('accepts `Transfer-Encoding: Chunked` (coding names are case-insensitive) and keeps the connection', async () => {
    await usingConnection(() => RawConnection.open(port), async (connection) => {
      connection.send(post('Transfer-Encoding: Chunked', '5\r\nhello\r\n0\r\n\r\n') + 'GET /after HTTP/1.1\r\nHost: api.example.com\r\n\r\n');
      await connection.untilResponses(2);
      expect(connection.statuses()).toEqual([200, 200]);
      expect(api.requests.slice(-2).map((r) => [r.url, r.body])).toEqual([
        ['/upload', 'hello'],
        ['/after', ''],
      ]);
    });
  });

  it('logs a refusal once per reason and interval, and counts every one', async () => {
    const before = await rejected('duplicate_host');
    for (let i = 0; i < 3; i++) await rawExchange(port, 'GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n');
    expect(await rejected('duplicate_host')).toBe(before + 3);
    // The matrix above already logged duplicate_host within the interval: these three are counted only.
    const lines = harness.logs.filter((line: LogLine) => line.msg === 'request rejected: duplicate_host');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ listener: `127.0.0.1:${port}`, status: 400, reason: 'duplicate_host' });
  });

  it('HTTP/2: routed by :authority; a host naming the same entity is served, one naming another is refused, reaching no backend (RFC 9113 §8.3.1)', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const get = (host: string) =>
      new Promise<number | string>((resolve) => {
        const stream = session.request({ ':method': 'GET', ':path': '/h2', ':authority': 'api.example.com', host });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        stream.resume();
      });
    try {
      const adminBefore = admin.requests.length;
      expect(await get('API.example.com:80')).toBe(200);
      expect(api.requests.at(-1)).toMatchObject({ url: '/h2', headers: expect.objectContaining({ host: 'api.example.com' }) });
      const apiBefore = api.requests.length;
      expect(await get('admin.internal')).toBe('ERR_HTTP2_STREAM_ERROR');
      expect({ api: api.requests.length, admin: admin.requests.length }).toEqual({ api: apiBefore, admin: adminBefore });
    } finally {
      session.close();
    }
  });
});

describe('RejectionReporter', () => {
  it('after the interval, logs the next refusal with the number left out', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    try {
      const lines: LogLine[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
      const metrics = new DataplaneMetrics(new Registry());
      const reporter = new RejectionReporter('l', logger, () => metrics.downstreamRejections('l'));
      const duplicateHost = { status: 400, reason: 'duplicate_host' };
      for (let i = 0; i < 4; i++) reporter.report(duplicateHost, '192.0.2.1');
      reporter.report({ status: 431, reason: 'header_too_large' }, '192.0.2.1');
      jest.setSystemTime(1_000_000 + LOG_INTERVAL_MS);
      reporter.report(duplicateHost, '192.0.2.1');
      expect(lines.map((line) => [line.reason, line.suppressed])).toEqual([
        ['duplicate_host', 0],
        ['header_too_large', 0],
        ['duplicate_host', 3],
      ]);
    } finally {
      jest.useRealTimers();
    }
  });
});
