// `sluice dataplane --workers 2`, a real process subscribed to a real snapshot server: a version
// is acknowledged once both workers applied it, both serve the listener, and the dataplane's
// /metrics sums them.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { SnapshotServer } from '../../controller/publish/server.ts';
import { request } from '../dataplane/support/client.ts';
import { startEchoServer, type EchoServer } from '../dataplane/support/echo-server.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from '../dataplane/support/ir.ts';
import { freePort } from '../support/ports.ts';
import { publishHttp, startDataplaneProcess, type DataplaneProcess } from '../support/dataplane-process.ts';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('sluice dataplane --workers 2', () => {
  let echo: EchoServer;
  let server: SnapshotServer;
  let dataplane: DataplaneProcess;
  let port: number;
  let adminPort: number;

  beforeAll(async () => {
    echo = await startEchoServer('a');
    server = new SnapshotServer({ address: '127.0.0.1:0', logger: pino({ level: 'silent' }), leader: () => ({ isLeader: true }) });
    await server.listen();
    [port, adminPort] = [await freePort(), await freePort()];
    dataplane = startDataplaneProcess(server.url(), 'dp-workers', adminPort, 2);
  });

  afterAll(async () => {
    await dataplane?.stop();
    await server?.close();
    await echo?.close();
  });

  it('acknowledges a version once both workers serve it, and /metrics sums them', async () => {
    const ir = publishHttp(server, singleHostIR(port, [route('all', { path: prefix('/') }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]));
    const deadline = Date.now() + 60_000;
    const state = () => server.acks().find((s) => s.name === 'dp-workers');
    while (state()?.appliedVersion !== ir.version) {
      if (dataplane.exitCode() !== null || Date.now() > deadline) throw new Error(`no acknowledgement of ${ir.version}:\n${dataplane.output()}`);
      await sleep(50);
    }
    expect(state()!.listeners).toEqual([expect.objectContaining({ name: `127.0.0.1:${port}`, ok: true })]);

    const statuses = [];
    for (let i = 0; i < 40; i++) statuses.push((await request(port, '/dp')).status);
    expect(statuses).toEqual(Array(40).fill(200));
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const perWorker = [...metrics.matchAll(/^sluice_worker_http_requests_total\{worker="(\d)"\} (\d+)$/gm)].map((m) => Number(m[2]));
    expect(perWorker).toHaveLength(2);
    expect(perWorker.reduce((a, b) => a + b, 0)).toBe(40);
    expect(Math.min(...perWorker)).toBeGreaterThan(0);
  }, 90_000);
});
