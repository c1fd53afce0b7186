// Leader election (controller/leader.ts) with a real coordination.k8s.io/v1 Lease on a real
// kube-apiserver + etcd: exactly one of two electors leads; a stopped leader hands over at once; a
// killed leader (a child process, SIGKILLed, so it never releases) is replaced within 15 s; the
// follower knows the leader's address; a leader cut off from the API server for longer than the
// renew deadline steps down, and someone leads again when the API server is back.
// The electors run with the production defaults (lease 10 s, renew deadline 7 s, retry 2 s).
import { afterAll, afterEach, beforeAll, expect, test } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import pino from 'pino';

import { LEADER_ADDRESS_ANNOTATION, LeaderElector } from '../../controller/leader.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';

const describeKube = describeIfPossible('leader election tests', binariesSkipReason(), kubeTestsRequired());

const NS = 'sluice-system';
const CHILD = join(import.meta.dirname, 'leader-child.ts');
const logger = pino({ level: process.env.SLUICE_TEST_LOG ?? 'silent' });

interface Candidate {
  identity: string;
  elector: LeaderElector;
  /** `started`/`stopped` with performance.now() of each callback. */
  events: { event: 'started' | 'stopped'; at: number }[];
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!(await condition())) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return performance.now() - start;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

describeKube('leader election with a real Lease (controller/leader.ts)', () => {
  let cluster: TestCluster;
  let kubeConfig: KubeConfig;
  const candidates: Candidate[] = [];
  const children: ChildProcess[] = [];

  const candidate = (lease: string, identity: string, address?: string): Candidate => {
    const c: Candidate = { identity, events: [], elector: undefined as unknown as LeaderElector };
    c.elector = new LeaderElector({
      kubeConfig,
      namespace: NS,
      name: lease,
      identity,
      ...(address ? { address } : {}),
      logger: logger.child({ identity }),
      onStartedLeading: () => c.events.push({ event: 'started', at: performance.now() }),
      onStoppedLeading: () => c.events.push({ event: 'stopped', at: performance.now() }),
    });
    candidates.push(c);
    return c;
  };
  const lease = (name: string) => cluster.client.get({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: NS, name });

  /** One elector in a child process; resolves once it leads. */
  const childLeader = async (leaseName: string, identity: string, address: string) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CHILD, cluster.kubeconfigPath, NS, leaseName, identity, address], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    await waitFor(`the child ${identity} to lead (stderr: ${stderr})`, () => {
      if (child.exitCode !== null) throw new Error(`the child exited with ${child.exitCode}: ${stderr}`);
      return stdout.includes('started-leading');
    }, 30_000);
    return child;
  };

  beforeAll(async () => {
    cluster = await startTestCluster();
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cluster.kubeconfigPath);
    await cluster.client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  }, 240_000);

  afterEach(async () => {
    await Promise.all(candidates.splice(0).map((c) => c.elector.stop()));
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
    }
  }, 30_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  test('refuses timings with which two replicas could lead at once', () => {
    const base = { kubeConfig: new KubeConfig(), namespace: NS, name: 'x', identity: 'a', logger, onStartedLeading() {}, onStoppedLeading() {} };
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 7, renewDeadlineSeconds: 7 })).toThrow(/leaseDurationSeconds/);
    expect(() => new LeaderElector({ ...base, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 })).toThrow(/renewDeadlineSeconds/);
  });

  test('of two electors exactly one leads; the follower knows the leader and its address; stop() hands over at once', async () => {
    const a = candidate('pair', 'replica-a', 'https://10.0.0.1:9443');
    const b = candidate('pair', 'replica-b', 'https://10.0.0.2:9443');
    a.elector.start();
    b.elector.start();
    await waitFor('a leader', () => a.elector.isLeader() || b.elector.isLeader(), 10_000);
    // Over a few renewals, never two leaders and never none.
    const until = performance.now() + 5_000;
    while (performance.now() < until) {
      expect(Number(a.elector.isLeader()) + Number(b.elector.isLeader())).toBe(1);
      await new Promise((r) => setTimeout(r, 50));
    }
    const [leader, follower] = a.elector.isLeader() ? [a, b] : [b, a];
    const address = leader === a ? 'https://10.0.0.1:9443' : 'https://10.0.0.2:9443';
    expect(leader.events.map((e) => e.event)).toEqual(['started']);
    expect(follower.events).toEqual([]);
    expect(leader.elector.leaderAddress()).toBe(address);
    expect(follower.elector.leaderAddress()).toBe(address);
    expect(follower.elector.leaderIdentity()).toBe(leader.identity);
    const l = await lease('pair');
    expect(l.spec).toMatchObject({ holderIdentity: leader.identity, leaseDurationSeconds: 10, leaseTransitions: 0 });
    expect(l.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(l.metadata.annotations[LEADER_ADDRESS_ANNOTATION]).toBe(address);

    // A clean stop releases the lease; the follower takes over at its next attempt.
    const stoppedAt = performance.now();
    await leader.elector.stop();
    expect(leader.elector.isLeader()).toBe(false);
    expect(leader.events.map((e) => e.event)).toEqual(['started', 'stopped']);
    const released = await lease('pair');
    expect(released.spec.holderIdentity ?? '').toBe('');
    expect(released.metadata.annotations?.[LEADER_ADDRESS_ANNOTATION]).toBeUndefined();
    const handover = await waitFor('the follower to lead', () => follower.elector.isLeader(), 10_000);
    console.log(`leader stopped (lease released): the other replica led ${seconds(performance.now() - stoppedAt)} after stop() was called`);
    // At its next attempt (retry 2 s × up to 1.2), not when the 10 s lease would have run out: the
    // bound sits between the two, with room for a loaded machine.
    expect(performance.now() - stoppedAt).toBeLessThan(7_000);
    expect(handover).toBeLessThan(7_000);
    expect(follower.elector.leaderAddress()).toBe(follower === a ? 'https://10.0.0.1:9443' : 'https://10.0.0.2:9443');
    const taken = await lease('pair');
    expect(taken.spec).toMatchObject({ holderIdentity: follower.identity, leaseTransitions: 1 });
  }, 30_000);

  test('a killed leader (SIGKILL, lease not released) is replaced within 15 s', async () => {
    const child = await childLeader('killed', 'replica-child', 'https://10.0.0.9:9443');
    const follower = candidate('killed', 'replica-follower', 'https://10.0.0.10:9443');
    follower.elector.start();
    // The follower has seen the lease and who holds it.
    await waitFor('the follower to see the leader', () => follower.elector.leaderIdentity() === 'replica-child', 10_000);
    expect(follower.elector.isLeader()).toBe(false);
    expect(follower.elector.leaderAddress()).toBe('https://10.0.0.9:9443');
    // Let it watch a few renewals, then kill the leader at an arbitrary point of its renew cycle.
    await new Promise((r) => setTimeout(r, 3_000 + Math.random() * 2_000));
    const killedAt = performance.now();
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const failover = await waitFor('the follower to take over', () => follower.elector.isLeader(), 20_000);
    console.log(`leader killed (SIGKILL): the follower led ${seconds(failover)} later (lease 10 s, retry 2 s; required: < 15 s)`);
    expect(failover).toBeLessThan(15_000);
    // Not before the lease could have expired: the follower waited for it.
    expect(failover).toBeGreaterThan(10_000 - 2_400);
    expect(follower.events.map((e) => e.event)).toEqual(['started']);
    expect(follower.events[0]!.at - killedAt).toBeLessThan(15_000);
    const l = await lease('killed');
    expect(l.spec).toMatchObject({ holderIdentity: 'replica-follower', leaseTransitions: 1 });
    expect(l.metadata.annotations[LEADER_ADDRESS_ANNOTATION]).toBe('https://10.0.0.10:9443');
  }, 60_000);

  test('a leader cut off from the API server longer than the renew deadline steps down; someone leads again when it is back', async () => {
    const a = candidate('outage', 'replica-a');
    const b = candidate('outage', 'replica-b');
    a.elector.start();
    b.elector.start();
    await waitFor('a leader', () => a.elector.isLeader() || b.elector.isLeader(), 10_000);
    const leader = a.elector.isLeader() ? a : b;
    // Let a renewal or two happen, so the step-down is timed from a real renewal.
    await new Promise((r) => setTimeout(r, 2_500));

    const downAt = performance.now();
    await cluster.stopApiServer();
    let restarted = false;
    try {
      const stepDown = await waitFor('the leader to step down', () => leader.events.some((e) => e.event === 'stopped'), 15_000);
      const after = leader.events.find((e) => e.event === 'stopped')!.at - downAt;
      console.log(`API server stopped: the leader stepped down ${seconds(after)} after it went away (renew deadline 7 s)`);
      expect(stepDown).toBeGreaterThan(0);
      // It stepped down within the renew deadline after its last renewal (≤ 2 s before the outage),
      // plus the length of one failing attempt: before anyone could take over (lease 10 s).
      expect(after).toBeLessThan(9_500);
      expect(after).toBeGreaterThan(4_000);
      expect(a.elector.isLeader() || b.elector.isLeader()).toBe(false);
      // Stay away a little longer, so the lease looks expired to everyone.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(a.elector.isLeader() || b.elector.isLeader()).toBe(false);

      const upAt = performance.now();
      await cluster.startApiServer();
      restarted = true;
      const ready = performance.now() - upAt;
      const back = await waitFor('a leader after the outage', () => a.elector.isLeader() || b.elector.isLeader(), 20_000);
      const next = a.elector.isLeader() ? a : b;
      console.log(
        `API server back (ready ${seconds(ready)} after start): ${next.identity} leads ${seconds(back)} later (the previous leader was ${leader.identity})`,
      );
      expect(back).toBeLessThan(5_000);
      expect(Number(a.elector.isLeader()) + Number(b.elector.isLeader())).toBe(1);
      expect((await lease('outage')).spec.holderIdentity).toBe(next.identity);
    } finally {
      if (!restarted) await cluster.startApiServer();
    }
  }, 90_000);
});
