// `sluice dataplane --workers 2`, a real process subscribed to a real snapshot server: a version
// is acknowledged once both workers applied it, both serve the listener, and the dataplane's
// /metrics sums them.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import pino from 'pino';
import { SnapshotServer } from '../../controller/publish/server.ts';
import type { IR } from '../../ir/types.ts';
import { irVersion } from '../../ir/version.ts';
import { request } from '../dataplane/support/client.ts';
import { startEchoServer, type EchoServer } from '../dataplane/support/echo-server.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from '../dataplane/support/ir.ts';
import { freePort } from '../support/ports.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('sluice dataplane --workers 2', () => {
  let echo: EchoServer;
  let server: SnapshotServer;
  let child: ChildProcess;
  let output = '';
  let port: number;
  let adminPort: number;

  beforeAll(async () => {
    echo = await startEchoServer('a');
    server = new SnapshotServer({ address: '127.0.0.1:0', logger: pino({ level: 'silent' }), leader: () => ({ isLeader: true }) });
    await server.listen();
    [port, adminPort] = [await freePort(), await freePort()];
    child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), 'dataplane', '--controller', server.url(), '--name', 'dp-workers', '--workers', '2', '--bpf', 'off', '--admin-address', `127.0.0.1:${adminPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await server?.close();
    await echo?.close();
  });

  it('acknowledges a version once both workers serve it, and /metrics sums them', async () => {
    const http = singleHostIR(port, [route('all', { path: prefix('/') }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]);
    const l4 = { services: [] };
    const ir: IR = { version: irVersion(http, l4), http, l4 };
    server.publish(ir);
    const deadline = Date.now() + 60_000;
    const state = () => server.acks().find((s) => s.name === 'dp-workers');
    while (state()?.appliedVersion !== ir.version) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no acknowledgement of ${ir.version}:\n${output}`);
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
