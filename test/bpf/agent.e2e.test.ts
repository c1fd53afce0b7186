// The BPF agent end to end on the real kernel: backends in network namespaces,
// a client in its own namespace and cgroup, Service VIPs translated at
// connect() and network policy enforced there, flows read back in Node.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { pino } from 'pino';
import { BpfAgent } from '../../bpf/agent/agent.ts';
import type { L4Endpoint, L4IR, L4Policy, L4Service } from '../../ir/types.ts';
import { ebpfSkipReason, ebpfTestsRequired } from './support/skip.ts';
import { makeTopology, type Topology } from './support/topology.ts';
import { describeIfPossible } from '../support/suite.ts';

const CLIENT = join(import.meta.dirname, 'support', 'client.ts');
const suite = describeIfPossible('eBPF agent tests', ebpfSkipReason(), ebpfTestsRequired());

interface ClientResult {
  answers: Record<string, number>;
  errors: Record<string, number>;
  peers: Record<string, number>;
  connectMs: number[];
}

suite('BPF agent (root, network namespaces)', () => {
  let topo: Topology;
  let agent: BpfAgent;
  const logger = pino({ level: 'silent' });

  const startAgent = (): BpfAgent => {
    const started = BpfAgent.start({ pinDir: topo.pinDir, cgroupPath: topo.cgroupPath, logger });
    if ('reason' in started) throw new Error(started.reason);
    return started.agent;
  };
  const connect = async (host: string, port: number, count: number, ...extra: string[]): Promise<ClientResult> =>
    JSON.parse(await topo.runClient(CLIENT, [host, String(port), String(count), ...extra])) as ClientResult;
  const endpoint = (i: number, port = 8080, weight = 1): L4Endpoint => ({ address: topo.backendAddress(i), port, weight });
  const service = (name: string, vip: string, port: number, endpoints: L4Endpoint[], affinity: 'random' | 'client' = 'random'): L4Service => ({
    name: `service/default/${name}/port/${port}`,
    origin: { kind: 'Service', namespace: 'default', name },
    vip,
    port,
    protocol: 'TCP',
    affinity,
    endpoints,
  });

  beforeAll(async () => {
    topo = makeTopology(3);
    await topo.startBackends([8080, 9090]);
    agent = startAgent();
  });

  afterAll(() => {
    agent?.close();
    topo?.destroy();
  });

  it('splits connections to a VIP 3:1 by endpoint weight, and getpeername shows the VIP', async () => {
    agent.apply({ services: [service('web', '10.96.0.10', 80, [endpoint(1, 8080, 3), endpoint(2, 8080, 1)])] });
    const r = await connect('10.96.0.10', 80, 1000);
    expect(r.errors).toEqual({});
    const share = (r.answers['be1:8080'] ?? 0) / 1000;
    expect(share).toBeGreaterThanOrEqual(0.71);
    expect(share).toBeLessThanOrEqual(0.79);
    expect(r.answers['be2:8080']).toBe(1000 - (r.answers['be1:8080'] ?? 0));
    expect(r.peers).toEqual({ '10.96.0.10:80': 1000 });
  });

  it('keeps a client on one endpoint in client-affinity mode, also when another endpoint goes', async () => {
    const all = [endpoint(1), endpoint(2), endpoint(3)];
    agent.apply({ services: [service('sticky', '10.96.0.11', 80, all, 'client')] });
    const first = await connect('10.96.0.11', 80, 200);
    expect(first.errors).toEqual({});
    const chosen = Object.keys(first.answers);
    expect(chosen).toHaveLength(1);
    const label = (e: L4Endpoint) => `be${e.address.split('.')[2]}:8080`;
    const gone = all.find((e) => label(e) !== chosen[0]);
    const survivors = all.filter((e) => e !== gone);
    agent.apply({ services: [service('sticky', '10.96.0.11', 80, survivors, 'client')] });
    const after = await connect('10.96.0.11', 80, 200);
    expect(after.answers).toEqual({ [chosen[0]!]: 200 });
  });

  it('refuses a VIP with no endpoints at once', async () => {
    agent.apply({ services: [service('empty', '10.96.0.12', 80, [])] });
    const r = await connect('10.96.0.12', 80, 20);
    // Refused (a reset), not a dropped SYN that would time out. How fast is a figure, printed here.
    expect(r.errors).toEqual({ ECONNREFUSED: 20 });
    console.log(`VIP without endpoints: refused in ${median(r.connectMs).toFixed(2)} ms (median of 20)`);
    expect(agent.flows({ verdict: 'DROPPED' }).filter((f) => f.dropReason === 'NO_BACKEND').length).toBeGreaterThanOrEqual(20);
  });

  const policy = (audit: boolean): L4Policy => ({
    identities: [{ id: 1000, labels: ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=default'], namespace: 'default' }],
    ipcache: [{ cidr: `${'10.201.1.2'}/32`, identity: 1000 }],
    enforcement: [{ identity: 1000, ingress: true, egress: false, audit }],
    rules: [
      { id: 1, name: 'ciliumnetworkpolicy/default/web/ingress/0' },
      { id: 2, name: 'ciliumnetworkpolicy/default/web/ingressDeny/0' },
    ],
    entries: [
      { direction: 'ingress', action: 'allow', local: 1000, remote: 8, protocol: 'TCP', ports: { from: 9090, to: 9090 }, rule: 1 },
      { direction: 'ingress', action: 'deny', local: 1000, remote: 0, protocol: 'TCP', ports: { from: 8080, to: 8080 }, rule: 2 },
    ],
  });
  const policed = (audit: boolean): L4IR => ({
    services: [service('web', '10.96.0.20', 80, [endpoint(1, 8080)]), service('web', '10.96.0.20', 90, [endpoint(1, 9090)])],
    policy: policy(audit),
  });

  it('refuses a denied port at once (a reset) and reports one drop per connection with its 5-tuple, verdict and rule', async () => {
    agent.apply(policed(false));
    const before = agent.flows({ verdict: 'DROPPED' }).length;
    // Refused (a reset), not a dropped SYN that would time out. How fast is a figure, printed here.
    const denied = await connect('10.96.0.20', 80, 20);
    expect(denied.errors).toEqual({ ECONNREFUSED: 20 });
    console.log(`denied port: refused in ${median(denied.connectMs).toFixed(2)} ms (median of 20)`);
    const allowed = await connect('10.96.0.20', 90, 1);
    expect(allowed.answers).toEqual({ 'be1:9090': 1 });
    await waitFor(() => agent.flows({ verdict: 'DROPPED' }).length >= before + 20);
    await sleep(50);
    const drops = agent.flows({ verdict: 'DROPPED' }).slice(before);
    expect(drops).toHaveLength(20);
    for (const drop of drops) {
      expect(drop).toMatchObject({
        verdict: 'DROPPED',
        dropReason: 'POLICY_DENY',
        direction: 'ingress',
        protocol: 'TCP',
        source: { ip: '0.0.0.0', port: 0, identity: 8 },
        destination: { ip: '10.201.1.2', port: 8080, identity: 1000, namespace: 'default' },
        service: { namespace: 'default', name: 'web', vip: '10.96.0.20', port: 80 },
        rule: { id: 2, name: 'ciliumnetworkpolicy/default/web/ingressDeny/0' },
      });
    }
    const counters = agent.counters();
    expect(counters[1]).toBeGreaterThanOrEqual(20); // DROPPED
  });

  it('forwards in audit mode and reports AUDIT', async () => {
    agent.apply(policed(true));
    const before = agent.flows({ verdict: 'AUDIT' }).length;
    const r = await connect('10.96.0.20', 80, 3);
    expect(r.answers).toEqual({ 'be1:8080': 3 });
    await waitFor(() => agent.flows({ verdict: 'AUDIT' }).length >= before + 3);
    expect(agent.flows({ verdict: 'AUDIT' }).slice(before)[0]).toMatchObject({ dropReason: 'POLICY_DENY', rule: { id: 2 } });
  });

  it('applies deny rules of an identity without default deny (enableDefaultDeny: false), and nothing else', async () => {
    const p = policy(false);
    agent.apply({ ...policed(false), policy: { ...p, enforcement: [], entries: p.entries.filter((e) => e.action === 'deny') } });
    expect((await connect('10.96.0.20', 80, 1)).errors).toEqual({ ECONNREFUSED: 1 });
    expect((await connect('10.96.0.20', 90, 1)).answers).toEqual({ 'be1:9090': 1 });
  });

  it('enforces egress default deny on connections the gateway opens, never on replies to connections it accepted', async () => {
    agent.apply({
      services: [service('web', '10.96.0.21', 80, [endpoint(1, 8080)])],
      policy: { identities: [], ipcache: [], enforcement: [{ identity: 8, ingress: false, egress: true, audit: false }], rules: [], entries: [] },
    });
    // A server in the gateway's cgroup, reached from a backend namespace (outside the cgroup).
    const server = topo.spawnClient(join(import.meta.dirname, 'support', 'backend.ts'), ['gateway', '7070']);
    try {
      await new Promise((resolve) => server.stdout!.once('data', resolve));
      const inbound = JSON.parse(await topo.runInBackend(1, CLIENT, ['10.201.1.1', '7070', '5'])) as ClientResult;
      expect(inbound.answers).toEqual({ 'gateway:7070': 5 });
      const outbound = await connect('10.96.0.21', 80, 1);
      expect(outbound.errors).toEqual({ ECONNREFUSED: 1 });
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('loses no connection while the agent restarts 20 times during 3000 connections', async () => {
    const ir = (w: number): L4IR => ({ services: [service('web', '10.96.0.30', 80, [endpoint(1, 8080, w), endpoint(2, 8080, 1)])] });
    agent.apply(ir(1));
    const client = topo.spawnClient(CLIENT, ['10.96.0.30', '80', '3000']);
    let out = '';
    client.stdout!.on('data', (d) => (out += d));
    const done = new Promise<void>((resolve) => client.once('exit', () => resolve()));
    const restartMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      await sleep(60);
      const t0 = performance.now();
      agent.close();
      agent = startAgent();
      agent.apply(ir(1 + (i % 3)));
      restartMs.push(performance.now() - t0);
    }
    await done;
    const r = JSON.parse(out) as ClientResult;
    expect(r.errors).toEqual({});
    expect((r.answers['be1:8080'] ?? 0) + (r.answers['be2:8080'] ?? 0)).toBe(3000);
    console.log(`agent restart: p50 ${median(restartMs).toFixed(1)} ms, max ${Math.max(...restartMs).toFixed(1)} ms`);
  });

  it('loses no connection to surviving endpoints while endpoints change under load', async () => {
    const all = [endpoint(1), endpoint(2), endpoint(3)];
    agent.apply({ services: [service('web', '10.96.0.40', 80, all)] });
    const client = topo.spawnClient(CLIENT, ['10.96.0.40', '80', '2000']);
    let out = '';
    client.stdout!.on('data', (d) => (out += d));
    const done = new Promise<void>((resolve) => client.once('exit', () => resolve()));
    const versions = [[0, 1], [0, 1, 2], [1, 2], [2], [0, 2], [0, 1, 2]];
    for (let i = 0; i < 30; i++) {
      await sleep(40);
      agent.apply({ services: [service('web', '10.96.0.40', 80, versions[i % versions.length]!.map((k) => all[k]!))] });
    }
    await done;
    const r = JSON.parse(out) as ClientResult;
    expect(r.errors).toEqual({});
    expect(Object.values(r.answers).reduce((a, b) => a + b, 0)).toBe(2000);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return;
    await sleep(10);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
