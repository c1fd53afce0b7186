// `sluice dataplane --workers 2`, a real process subscribed to a real snapshot server, sent a
// version on which every worker thread exits while it reads it — the two serving and each
// replacement (hooked through the process's own inspector, `--inspect=127.0.0.1:0`, before a new
// thread runs any of its code: no hook in the product). Its apply is first reported late
// (`ok:false`); once the version has ended the workers 3 times it is rejected for good,
// and the controller is told so by a second acknowledgement naming the rejection
// (SLU_VERSION_CRASHED, still serving the last good version). A newer version is applied. Then a
// version on which only worker 1 exits (it and its replacements), applied by worker 0 and so
// acknowledged as served: taken back from every worker once it ended worker 1 3 times, and
// acknowledged again, ok:false, serving the version before it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { SnapshotServer } from '../../controller/publish/server.ts';
import type { Ack } from '../../ir/protocol.ts';
import { condition, type Condition, type ObjectStatus } from '../../controller/status/conditions.ts';
import { foldAcknowledgements, type DataplaneAck } from '../../controller/status/kubernetes.ts';
import type { HttpIR, IR } from '../../ir/types.ts';
import { podCounts } from '../dataplane/support/client.ts';
import { startEchoServer, type EchoServer } from '../dataplane/support/echo-server.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from '../dataplane/support/ir.ts';
import { freePort } from '../support/ports.ts';
import { publishHttp, startDataplaneProcess, type DataplaneProcess } from '../support/dataplane-process.ts';
import { exitOnReading, hookWorkersOf, type WorkerHook } from '../support/thread-inspector.ts';
import { waitFor } from '../support/wait.ts';

describe('sluice dataplane --workers 2: a version that crashes its workers', () => {
  let a: EchoServer;
  let b: EchoServer;
  let server: SnapshotServer;
  let dataplane: DataplaneProcess;
  let hook: WorkerHook | null = null;
  let port: number;
  let adminPort: number;
  const name = 'dp-crashed';
  const acks: Ack[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([startEchoServer('a'), startEchoServer('b')]);
    server = new SnapshotServer({ address: '127.0.0.1:0', logger: pino({ level: 'silent' }), leader: () => ({ isLeader: true }) });
    await server.listen();
    server.onAck((_state, ack) => acks.push(ack));
    [port, adminPort] = [await freePort(), await freePort()];
    dataplane = startDataplaneProcess(server.url(), name, adminPort, 2, ['--inspect=127.0.0.1:0']);
  });

  afterAll(async () => {
    await hook?.stop();
    await dataplane?.stop();
    await server?.close();
    await Promise.all([a?.close(), b?.close()]);
  });

  const publish = (http: HttpIR): IR => publishHttp(server, http);
  const irTo = (to: EchoServer, routeName = 'all') => singleHostIR(port, [route(routeName, { path: prefix('/') }, forwardTo('svc/x'))], [backend('svc/x', [to.endpoint])]);
  const until = (what: string, done: () => boolean | Promise<boolean>) =>
    waitFor(what, async () => {
      if (dataplane.exitCode() !== null) throw new Error(`the dataplane exited:\n${dataplane.output()}`);
      return (await done()) || undefined;
    }, 60_000);
  const config = async () => (await (await fetch(`http://127.0.0.1:${adminPort}/api/config`)).json()) as { version: string; workers: { worker: number; version: string | null }[] };
  const acksOf = (version: string) => acks.filter((ack) => ack.name === name && ack.version === version);
  /** The controller's Programmed condition of a Gateway translation programmed, given these acks (the fold Kubernetes mode writes). */
  const programmed = (version: string, dataplanes: DataplaneAck[]): Condition | undefined => {
    const gateway: ObjectStatus = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: 'default', name: 'gw', status: { conditions: [condition('Programmed', true, 'Programmed', 'programmed', 1)] } };
    return (foldAcknowledgements([gateway], version, dataplanes)[0]!.status as { conditions: Condition[] }).conditions.find((c) => c.type === 'Programmed');
  };

  it('is acknowledged again once rejected as crashed (SLU_VERSION_CRASHED, still serving the last good version); a newer one is applied', async () => {
    const v1 = publish(irTo(a));
    await until('v1 served', () => acksOf(v1.version).some((ack) => ack.ok));
    // The process re-executes itself at start (bin/sluice.js): its inspector is the last one named.
    await until('the inspector listening', () => /Debugger listening on ws:\/\//.test(dataplane.output()));
    const url = [...dataplane.output().matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1];
    expect(url).toBeDefined();
    // Every worker thread of the process, the ones to come included, exits as it reads a version holding "crash-me".
    hook = await hookWorkersOf(url!, exitOnReading('crash-me'));

    const v2 = publish(irTo(b, 'crash-me'));
    await until('the rejection acknowledged', () => acksOf(v2.version).some((ack) => ack.error?.startsWith('SLU_VERSION_CRASHED ') === true));
    const seen = acksOf(v2.version);
    // First the late apply (not served yet), then the rejection for good: two acks, neither served.
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatchObject({ ok: false, serving: v1.version });
    // Every failed ack names its stable code: late first (Programmed stays Pending, naming it).
    expect(seen[0]!.error).toMatch(new RegExp(`^SLU_VERSION_LATE no worker applied version ${v2.version}: worker 0: .+; still serving ${v1.version} until every worker serves it$`));
    expect(programmed(v2.version, [{ name, connected: true, appliedVersion: seen[0]!.serving, lastAck: seen[0]! }])).toMatchObject({ status: 'False', reason: 'Pending', message: `dataplane ${name} did not apply version ${v2.version} (${seen[0]!.error}); it serves ${v1.version}` });
    expect(seen[1]).toMatchObject({ ok: false, serving: v1.version, listeners: [] });
    expect(seen[1]!.error).toMatch(new RegExp(`^SLU_VERSION_CRASHED version ${v2.version} ended its workers 3 times \\(within 120 s\\) while they applied it; still serving ${v1.version}$`));
    // What the controller shows of it: the dataplane's last ack (GET /v1/dataplanes, its log) and the version it serves.
    const state = server.acks().find((s) => s.name === name)!;
    expect(state.lastAck).toMatchObject({ version: v2.version, ok: false, error: seen[1]!.error });
    expect(state.appliedVersion).toBe(v1.version);
    expect(programmed(v2.version, server.acks())).toMatchObject({ status: 'False', reason: 'Invalid', message: `dataplane ${name} did not apply version ${v2.version} (${seen[1]!.error}); it serves ${v1.version}` });
    // The replacements start on the last good version and serve it.
    await until('both workers back on v1', async () => (await config()).workers.every((w) => w.version === v1.version));
    expect(await podCounts(port, '/r', 20)).toEqual({ a: 20 });
    expect(dataplane.output()).toMatch(/version \S+ rejected after its late apply; still serving /);

    const v3 = publish(irTo(b));
    await until('v3 served', () => acksOf(v3.version).some((ack) => ack.ok));
    expect(server.acks().find((s) => s.name === name)?.appliedVersion).toBe(v3.version);
    expect(await podCounts(port, '/r', 20)).toEqual({ b: 20 });
  }, 120_000);

  it('a version that crashes only worker 1 is acknowledged as served, then again as taken back (SLU_VERSION_CRASHED, serving the version before it)', async () => {
    const v3 = server.acks().find((s) => s.name === name)!.appliedVersion!;
    const url = [...dataplane.output().matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1];
    // Worker 1's threads only.
    const one = await hookWorkersOf(url!, exitOnReading('crash-one', 1));
    try {
      const v4 = publish(irTo(a, 'crash-one'));
      await until('the take-back acknowledged', () => acksOf(v4.version).some((ack) => !ack.ok));
      const seen = acksOf(v4.version);
      expect(seen).toHaveLength(2);
      expect(seen[0]).toMatchObject({ ok: true, serving: v4.version });
      expect(seen[1]).toMatchObject({ ok: false, serving: v3, listeners: [] });
      expect(seen[1]!.error).toBe(`SLU_VERSION_CRASHED version ${v4.version} ended its workers 3 times (within 120 s) while they applied it; still serving ${v3}`);
      const state = server.acks().find((s) => s.name === name)!;
      expect(state.lastAck).toMatchObject({ version: v4.version, ok: false, error: seen[1]!.error });
      expect(state.appliedVersion).toBe(v3);
      expect(programmed(v4.version, server.acks())).toMatchObject({ status: 'False', reason: 'Invalid', message: `dataplane ${name} did not apply version ${v4.version} (${seen[1]!.error}); it serves ${v3}` });
      // The dataplane's own view agrees: /api/config and every worker on v3, and v3's answers.
      await until('both workers back on v3', async () => (await config()).workers.every((w) => w.version === v3));
      expect((await config()).version).toBe(v3);
      expect(await podCounts(port, '/r', 20)).toEqual({ b: 20 });
      expect(dataplane.output()).toMatch(/version \S+ rejected after its apply \(taken back\); still serving /);

      // A newer version is served by both (a route name of its own: irTo(a) alone is v1 again, acknowledged long ago).
      const v5 = publish(irTo(a, 'after'));
      await until('v5 served', () => acksOf(v5.version).some((ack) => ack.ok));
      expect(await podCounts(port, '/r', 20)).toEqual({ a: 20 });
    } finally {
      await one.stop();
    }
  }, 120_000);
});
