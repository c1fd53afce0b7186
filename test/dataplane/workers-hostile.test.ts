// The shared connection table of --workers under a worker killed in the middle of a connection
// storm (connections being accepted, served and closed on both workers as it dies): afterwards the
// process count is exact — not leaked (fewer admitted than the limit) and not below zero (more
// admitted). Real worker threads, real sockets.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WorkerMetricsRegistry, WorkerPool } from '../../cmd/workers.ts';
import { DEFAULT_FRONT_DOOR_LIMITS } from '../../dataplane/front-door.ts';
import { request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { capturingLogger } from './support/harness.ts';
import { holdConnection, type HeldConnection } from './support/held-connection.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, done: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

describe('shared connection table under a killed worker', () => {
  let echo: EchoServer;
  beforeAll(async () => {
    echo = await startEchoServer('a');
  });
  afterAll(async () => {
    await echo.close();
  });

  it('a worker killed amid a connection storm: afterwards exactly MAX connections are admitted again, the rest refused', async () => {
    const port = await freePort();
    const MAX = 12;
    const registry = new WorkerMetricsRegistry();
    const pool = new WorkerPool({
      count: 2,
      logger: capturingLogger().logger,
      registry,
      onFlows: () => undefined,
      init: { logLevel: 'warn', portOffset: 0, redirectPortOffset: 0, frontDoor: { ...DEFAULT_FRONT_DOOR_LIMITS, maxConnections: MAX }, flows: null, rateLimit: { redisTimeoutMs: 50, replicas: 1, maxLocalKeys: 1000 } },
    });
    const openGauge = async () => (await registry.getSingleMetric('sluice_connections_open')!.get()).values.reduce((sum, v) => sum + v.value, 0);
    const held: HeldConnection[] = [];
    try {
      await pool.apply('v1', singleHostIR(port, [route('all', { path: prefix('/') }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]));
      const threads = pool.threadIds();

      // 8 clients, each opening, using and closing connections in a loop; some of them held open
      // while the worker dies (those on it are cut). Answers are not checked: refusals and cuts are expected.
      let storming = true;
      let served = 0;
      const storm = Array.from({ length: 8 }, async () => {
        // Bounded: a connection the dying worker took and never answered fails, it does not hang the storm.
        while (storming) if ((await request(port, '/storm', { timeoutMs: 5_000 }).catch(() => null))?.status === 200) served++;
      });
      held.push(...(await Promise.all(Array.from({ length: 6 }, () => holdConnection(port)))));
      await sleep(300);
      await pool.terminate(0);
      await sleep(300);
      storming = false;
      await Promise.all(storm);
      for (const c of held.splice(0)) c.socket.destroy();
      expect(served).toBeGreaterThan(0);

      // Worker 0 replaced, every connection closed: the table is back to zero.
      await until('the worker replaced', async () => pool.threadIds().length === 2 && pool.threadIds()[0] !== threads[0]);
      await pool.apply('v2', singleHostIR(port, [route('all', { path: prefix('/') }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]));
      await until('no connection open', async () => (await openGauge()) === 0);

      // MAX + 3 at once: exactly 3 refused (a leaked count refuses more, a count below zero fewer).
      held.push(...(await Promise.all(Array.from({ length: MAX + 3 }, () => holdConnection(port)))));
      await until('3 refused', async () => held.filter((c) => c.closed).length >= 3 && (await openGauge()) === MAX);
      await sleep(300); // no late refusal
      expect(held.filter((c) => c.closed)).toHaveLength(3);
      expect((await Promise.all(held.filter((c) => !c.closed).map((c) => c.get('/after')))).every((status) => status === 200)).toBe(true);
    } finally {
      for (const c of held) c.socket.destroy();
      await pool.close();
    }
  }, 60_000);
});
