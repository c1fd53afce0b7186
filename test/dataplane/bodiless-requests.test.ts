// Requests without Content-Length or Transfer-Encoding have no body (RFC 9112 §6.3), and the
// HTTP/1.1 front hands them over with their body stream already ended (server.ts,
// optimizeEmptyRequests: no 'end'/'close' events per GET). Pipelined on one raw connection between
// requests that do carry bodies, each must reach the backend with exactly its own bytes and be
// answered in order, on a connection that stays open; a client leaving a bodiless request early
// still ends its upstream request.

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';
import { RawConnection, startCountingBackend, usingConnection, type CountingBackend } from './support/raw-http.ts';

const HOST = 'Host: app.example.com\r\n';

describe('requests without a body', () => {
  let app: CountingBackend;
  /** An upstream that reads requests and never answers: its connections end only when the proxy cancels. */
  let silent: net.Server;
  let silentRequests = 0;
  let silentClosed = 0;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    app = await startCountingBackend();
    silent = net.createServer((socket) => {
      socket.on('data', () => silentRequests++);
      socket.on('error', () => undefined);
      socket.on('close', () => silentClosed++);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentPort = (silent.address() as net.AddressInfo).port;
    port = await freePort();
    harness = testDataplane();
    const ir = singleHostIR(
      port,
      [route('silent', { path: prefix('/silent') }, forwardTo('svc/silent')), route('app', { path: prefix('/') }, forwardTo('svc/app'))],
      [backend('svc/app', [app.endpoint]), backend('svc/silent', [{ address: '127.0.0.1', port: silentPort }])],
    );
    expect((await harness.dataplane.apply('v1', ir)).listeners[0]?.ok).toBe(true);
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await app.close();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('pipelined between requests with bodies: each reaches the backend with its own bytes, answered in order', async () => {
    const pipelined = [
      `GET /a HTTP/1.1\r\n${HOST}\r\n`,
      `POST /b HTTP/1.1\r\n${HOST}Content-Length: 5\r\n\r\nhello`,
      `GET /c HTTP/1.1\r\n${HOST}Content-Length: 0\r\n\r\n`,
      `PUT /d HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      // A GET may carry a body when it says so: it is sent on.
      `GET /e HTTP/1.1\r\n${HOST}Content-Length: 4\r\n\r\ndata`,
      `DELETE /f HTTP/1.1\r\n${HOST}\r\n`,
      `HEAD /g HTTP/1.1\r\n${HOST}\r\n`,
    ].join('');
    const seenBefore = app.requests.length;
    await usingConnection(() => RawConnection.open(port), async (connection) => {
      connection.send(pipelined);
      const text = await connection.untilResponses(6);
      // The HEAD's answer has a Content-Length and no body: wait for its head too.
      await connection.until((all) => all.split('HTTP/1.1 200 ').length - 1 === 7);
      expect(connection.statuses()).toEqual([200, 200, 200, 200, 200, 200, 200]);
      expect([...text.matchAll(/backend (\/[a-g])\n/g)].map((m) => m[1])).toEqual(['/a', '/b', '/c', '/d', '/e', '/f']);
      expect(connection.isClosed).toBe(false);
    });
    // Pipelined requests go upstream concurrently (one upstream connection each): compared by path.
    const seen = app.requests.slice(seenBefore).map((r) => [r.method, r.url, r.body]).sort((x, y) => x[1]!.localeCompare(y[1]!));
    expect(seen).toEqual([
      ['GET', '/a', ''],
      ['POST', '/b', 'hello'],
      ['GET', '/c', ''],
      ['PUT', '/d', 'abc'],
      ['GET', '/e', 'data'],
      ['DELETE', '/f', ''],
      ['HEAD', '/g', ''],
    ]);
  });

  it('a client that leaves before the answer ends the upstream request of its GET', async () => {
    const connection = await RawConnection.open(port);
    connection.send(`GET /silent HTTP/1.1\r\n${HOST}\r\n`);
    await waitFor('the request upstream', () => (silentRequests > 0 ? true : undefined), 3_000);
    expect(silentClosed).toBe(0);
    connection.close();
    await waitFor('the upstream connection to end', () => (silentClosed > 0 ? true : undefined), 3_000);
    expect(silentClosed).toBe(1);
  });
});
