// /api/flows?follow=true over real sockets: each follower's filter runs on every flow on the
// serving thread, so followers are bounded (503 beyond, as /ui/events), and a place frees when one
// goes.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { MAX_FLOW_FOLLOWERS, startAdminServer } from '../../cmd/admin.ts';
import { FlowBuffer } from '../../dataplane/flows/flow-buffer.ts';
import { freePort } from '../support/sluice-process.ts';

function follow(port: number): Promise<{ status: number; req: ClientRequest; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/flows?follow=true', agent: false }, (res) => resolve({ status: res.statusCode ?? 0, req, res }));
    req.on('error', reject);
    req.end();
  });
}

describe('/api/flows followers', () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    const flows = new FlowBuffer(10);
    app = await startAdminServer(`127.0.0.1:${port}`, { ready: () => true, objects: () => [], ir: () => null, flows: { flows: (f, last) => flows.flows(f, last), follow: (l) => flows.subscribeFlows(l) } }, new Registry());
  });
  afterAll(async () => {
    await app?.close();
  });

  it(`holds at most ${MAX_FLOW_FOLLOWERS}; the next gets 503 until one leaves`, async () => {
    const held = await Promise.all(Array.from({ length: MAX_FLOW_FOLLOWERS }, () => follow(port)));
    expect(held.map((h) => h.status)).toEqual(Array(MAX_FLOW_FOLLOWERS).fill(200));
    const refused = await follow(port);
    expect(refused.status).toBe(503);
    refused.res.resume();
    held[0]!.req.destroy();
    // The server sees the close asynchronously: the freed place shows within a few tries.
    let status = 503;
    for (let i = 0; i < 50 && status === 503; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const next = await follow(port);
      status = next.status;
      if (status === 503) next.res.resume();
      else held.push(next);
    }
    expect(status).toBe(200);
    for (const h of held.slice(1)) h.req.destroy();
  });
});
