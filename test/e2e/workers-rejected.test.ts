// `sluice dataplane`, a real process subscribed to a real snapshot server, sent a version its
// dataplane cannot compile (a route without its match: what a controller with a bug, or of another
// release, could send; it passes the stream's checks). With one thread and with --workers 2 alike:
// the version is acknowledged as rejected (SLU_VERSION_REJECTED, still serving the last good one),
// /api/config and the answers stay on the last good version, and a newer version is applied.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { SnapshotServer } from '../../controller/publish/server.ts';
import type { HttpIR, IR } from '../../ir/types.ts';
import { podCounts } from '../dataplane/support/client.ts';
import { startEchoServer, type EchoServer } from '../dataplane/support/echo-server.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from '../dataplane/support/ir.ts';
import { freePort } from '../support/ports.ts';
import { publishHttp, startDataplaneProcess, type DataplaneProcess } from '../support/dataplane-process.ts';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(['1', '2'])('sluice dataplane --workers %s: a version its dataplane refuses', (workers) => {
  let a: EchoServer;
  let b: EchoServer;
  let server: SnapshotServer;
  let dataplane: DataplaneProcess;
  let port: number;
  let adminPort: number;
  const name = `dp-rejected-${workers}`;

  beforeAll(async () => {
    [a, b] = await Promise.all([startEchoServer('a'), startEchoServer('b')]);
    server = new SnapshotServer({ address: '127.0.0.1:0', logger: pino({ level: 'silent' }), leader: () => ({ isLeader: true }) });
    await server.listen();
    [port, adminPort] = [await freePort(), await freePort()];
    dataplane = startDataplaneProcess(server.url(), name, adminPort, Number(workers));
  });

  afterAll(async () => {
    await dataplane?.stop();
    await server?.close();
    await Promise.all([a?.close(), b?.close()]);
  });

  const publish = (http: HttpIR): IR => publishHttp(server, http);
  const irTo = (to: EchoServer) => singleHostIR(port, [route('all', { path: prefix('/') }, forwardTo('svc/x'))], [backend('svc/x', [to.endpoint])]);
  const ackOf = async (version: string) => {
    const deadline = Date.now() + 60_000;
    const state = () => server.acks().find((s) => s.name === name);
    while (state()?.lastAck?.version !== version) {
      if (dataplane.exitCode() !== null || Date.now() > deadline) throw new Error(`no acknowledgement of ${version}:\n${dataplane.output()}`);
      await sleep(50);
    }
    return state()!;
  };
  const config = async () => (await (await fetch(`http://127.0.0.1:${adminPort}/api/config`)).json()) as { version: string; workers?: { worker: number; version: string | null }[] };

  it('is acknowledged as rejected with SLU_VERSION_REJECTED; the last good version keeps serving and is the one reported; a newer one is applied', async () => {
    const v1 = publish(irTo(a));
    expect((await ackOf(v1.version)).lastAck?.ok).toBe(true);

    const broken = irTo(b);
    (broken.listeners[0]!.scopes[0]!.virtualHosts[0]!.routes[0] as { match: unknown }).match = null;
    const v2 = publish(broken);
    const refused = await ackOf(v2.version);
    expect(refused.lastAck).toMatchObject({ ok: false, error: expect.stringMatching(/^SLU_VERSION_REJECTED .*configuration rejected: .*still serving /) });
    // The controller learns the dataplane still serves v1 (its Programmed is made of this).
    expect(refused.appliedVersion).toBe(v1.version);
    const shown = await config();
    expect(shown.version).toBe(v1.version);
    if (workers === '2') expect(shown.workers).toEqual([{ worker: 0, version: v1.version }, { worker: 1, version: v1.version }]);
    expect(await podCounts(port, '/r', 20)).toEqual({ a: 20 });
    expect(dataplane.output()).toMatch(/version \S+ rejected; still serving /);

    const v3 = publish(irTo(b));
    expect((await ackOf(v3.version)).lastAck?.ok).toBe(true);
    expect((await config()).version).toBe(v3.version);
    expect(await podCounts(port, '/r', 20)).toEqual({ b: 20 });
  }, 90_000);
});
