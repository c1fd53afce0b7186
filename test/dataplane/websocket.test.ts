// WebSocket upgrades through the dataplane: routed like requests, then tunnelled.

import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WebSocket, WebSocketServer } from 'ws';
import { request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { backend, forwardTo, prefix, requestHeaders, route, singleHostIR } from './support/ir.ts';

describe('WebSocket upgrades', () => {
  let upstream: http.Server;
  let sockets: WebSocketServer;
  let upgradeHeaders: http.IncomingHttpHeaders | null = null;
  let echo: EchoServer;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    upstream = http.createServer();
    sockets = new WebSocketServer({ server: upstream });
    sockets.on('connection', (socket, req) => {
      upgradeHeaders = req.headers;
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    echo = await startEchoServer('echo');
    port = await freePort();
    harness = testDataplane();
    const wsEndpoint = { address: '127.0.0.1', port: (upstream.address() as net.AddressInfo).port };
    await harness.dataplane.apply(
      'v1',
      singleHostIR(
        port,
        [
          route('ws', { path: prefix('/ws') }, forwardTo('svc/ws'), [requestHeaders({ set: [{ name: 'x-through', value: 'sluice' }] })]),
          route('empty', { path: prefix('/empty') }, forwardTo('svc/empty')),
          route('plain', { path: prefix('/') }, forwardTo('svc/echo')),
        ],
        [backend('svc/ws', [wsEndpoint]), backend('svc/empty', []), backend('svc/echo', [echo.endpoint])],
      ),
    );
  });

  afterAll(async () => {
    await harness.dataplane.close();
    sockets.close();
    upstream.closeAllConnections();
    upstream.close();
    await echo.close();
  });

  it('tunnels a WebSocket session: text and binary frames echo back', async () => {
    const client = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { host: 'chat.example.com' } });
    const received: Array<{ data: string | number[]; binary: boolean }> = [];
    await new Promise<void>((resolve, reject) => {
      client.on('error', reject);
      client.on('open', () => client.send('Websocket Support!'));
      client.on('message', (data: Buffer, isBinary: boolean) => {
        received.push({ data: isBinary ? [...data] : data.toString(), binary: isBinary });
        if (received.length === 1) client.send(Buffer.from([1, 2, 3, 4, 5, 6, 7]));
        else resolve();
      });
    });
    client.close();
    expect(received).toEqual([
      { data: 'Websocket Support!', binary: false },
      { data: [1, 2, 3, 4, 5, 6, 7], binary: true },
    ]);
    expect(upgradeHeaders).toMatchObject({ host: 'chat.example.com', 'x-through': 'sluice', 'x-forwarded-proto': 'http', upgrade: 'websocket' });
  });

  it('answers an upgrade it cannot route with a plain status', async () => {
    const status = await new Promise<number>((resolve) => {
      const client = new WebSocket(`ws://127.0.0.1:${port}/empty`);
      client.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      client.on('error', () => resolve(-1));
    });
    expect(status).toBe(503);
  });

  it('serves other Upgrade requests as plain requests', async () => {
    const response = await request(port, '/plain', { headers: { connection: 'upgrade', upgrade: 'h2c' } });
    expect(response.status).toBe(200);
    expect(response.echo?.headers.upgrade).toBeUndefined();
  });
});
