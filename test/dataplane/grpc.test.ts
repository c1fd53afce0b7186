// The gateway's own gRPC answers on the wire (a real node:http2 server and client): trailers-only
// (one HEADERS frame with END_STREAM), the status mapped from the HTTP status as Envoy maps it,
// grpc-message percent-encoded; and the grpc-timeout grammar.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { encodeGrpcMessage, grpcStatusForHttp, grpcTimeoutMs, isGrpcContentType, sendTrailersOnly } from '../../dataplane/grpc/grpc.ts';

describe('grpc-timeout', () => {
  it.each([
    ['1S', 1000],
    ['250m', 250],
    ['2M', 120_000],
    ['1H', 3_600_000],
    ['1500u', 2],
    ['1n', 1],
    ['99999999H', 2 ** 31 - 1],
  ])('%s is %d ms', (value, ms) => {
    expect(grpcTimeoutMs(['grpc-timeout', value])).toBe(ms);
  });

  it.each(['', '1', 'S', '123456789S', '1s', '-1S', '1.5S', ' 1S'])('%j is ignored', (value) => {
    expect(grpcTimeoutMs(['grpc-timeout', value])).toBe(0);
  });
});

describe('gRPC statuses and content types', () => {
  it('maps gateway HTTP statuses as Envoy does', () => {
    expect([400, 401, 403, 404, 429, 500, 502, 503, 504, 415].map(grpcStatusForHttp)).toEqual([13, 16, 7, 12, 14, 2, 14, 14, 14, 2]);
  });

  it('knows gRPC content types (not gRPC-Web)', () => {
    expect(['application/grpc', 'application/grpc+proto', 'application/grpc;charset=utf-8'].map(isGrpcContentType)).toEqual([true, true, true]);
    expect(['application/grpc-web', 'application/grpcx', 'application/json', undefined].map(isGrpcContentType)).toEqual([false, false, false, false]);
  });

  it('percent-encodes grpc-message', () => {
    expect(encodeGrpcMessage('no route: 100% é\n')).toBe('no route: 100%25 %C3%A9%0A');
  });
});

describe('trailers-only answers on the wire', () => {
  let server: http2.Http2Server;
  let port: number;
  beforeAll(async () => {
    server = http2.createServer((_req, res) => sendTrailersOnly(res, 14, 'Service Unavailable', ['server', 'sluice', 'x-extra', 'a', 'content-length', '20', 'te', 'trailers']));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('one HEADERS frame with END_STREAM: 200, application/grpc, the status and message, no DATA', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const stream = session.request({ ':method': 'POST', ':path': '/a.B/C', 'content-type': 'application/grpc' });
    const { headers, flags, data } = await new Promise<{ headers: http2.IncomingHttpHeaders; flags: number; data: number }>((resolve, reject) => {
      let head: { headers: http2.IncomingHttpHeaders; flags: number } | null = null;
      let data = 0;
      stream.on('response', (h, f) => (head = { headers: h, flags: f }));
      stream.on('data', (chunk: Buffer) => (data += chunk.length));
      stream.on('close', () => (head ? resolve({ ...head, data }) : reject(new Error('no response'))));
      stream.end();
    });
    session.close();
    expect(flags & http2.constants.NGHTTP2_FLAG_END_STREAM).toBeTruthy();
    expect(data).toBe(0);
    expect(headers).toMatchObject({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'Service Unavailable', 'x-extra': 'a' });
    expect(headers['content-length']).toBeUndefined();
  });
});
