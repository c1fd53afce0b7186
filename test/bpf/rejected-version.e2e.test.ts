// A version the proxy does not serve leaves nothing of itself in the kernel, on the real kernel:
// a DataplaneNode with the real BPF agent attached to a cgroup the test makes, and a client in its
// own network namespace and that cgroup connecting to a Service VIP (answered only through the
// kernel's translation) and to a backend straight (refused only by the kernel's policy). The
// refused version is provoked for real: a route without its match, which every compile throws on
// (what a controller with a bug, or of another release, could send); with --workers 2 also a
// version on which every worker thread exits (hooked through the inspector before each thread
// runs: no hook in the product).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DataplaneNode } from '../../cmd/node.ts';
import { VersionLate, VersionRejected, WorkerMetricsRegistry } from '../../cmd/workers.ts';
import type { HttpIR, IR, L4IR, L4Service } from '../../ir/types.ts';
import { capturingLogger } from '../dataplane/support/harness.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from '../dataplane/support/ir.ts';
import { freePort } from '../support/ports.ts';
import { describeIfPossible } from '../support/suite.ts';
import { hookWorkers } from '../support/thread-inspector.ts';
import { ebpfSkipReason, ebpfTestsRequired } from './support/skip.ts';
import { makeTopology, type Topology } from './support/topology.ts';

const CLIENT = join(import.meta.dirname, 'support', 'client.ts');
const suite = describeIfPossible('eBPF rejected-version tests', ebpfSkipReason(), ebpfTestsRequired());
const VIP = '10.96.0.40';
const NEW_VIP = '10.96.0.41';

interface ClientResult {
  answers: Record<string, number>;
  errors: Record<string, number>;
}

suite('a refused version leaves the kernel on the version served (root, network namespaces)', () => {
  let topo: Topology;
  beforeAll(async () => {
    topo = makeTopology(2);
    await topo.startBackends([8080]);
  });
  afterAll(() => topo?.destroy());

  const connect = async (host: string, count = 6): Promise<ClientResult> => JSON.parse(await topo.runClient(CLIENT, [host, host === VIP || host === NEW_VIP ? '80' : '8080', String(count)])) as ClientResult;
  const service = (vip: string, to: number): L4Service => ({
    name: `service/default/app-${vip}/port/80`,
    origin: { kind: 'Service', namespace: 'default', name: `app-${vip}` },
    vip,
    port: 80,
    protocol: 'TCP',
    affinity: 'random',
    endpoints: [{ address: topo.backendAddress(to), port: 8080, weight: 1 }],
  });
  /** The VIP to backend `to`; `denyBe1`: be1 default-denied to the gateway (no allow rule). */
  const l4 = (to: number, extra: { newVip?: boolean; denyBe1?: boolean } = {}): L4IR => ({
    services: [service(VIP, to), ...(extra.newVip ? [service(NEW_VIP, to)] : [])],
    ...(extra.denyBe1
      ? { policy: { identities: [{ id: 1000, labels: ['k8s:app=be1'], namespace: 'default' }], ipcache: [{ cidr: `${topo.backendAddress(1)}/32`, identity: 1000 }], enforcement: [{ identity: 1000, ingress: true, egress: false, audit: false }], rules: [], entries: [] } }
      : {}),
  });

  describe.each([1, 2])('--workers %s', (workers) => {
    let node: DataplaneNode;
    let logs: ReturnType<typeof capturingLogger>['logs'];
    let port: number;
    beforeAll(async () => {
      // Each case starts from unpinned maps (the pins outlive an agent on purpose).
      rmSync(topo.pinDir, { recursive: true, force: true });
      port = await freePort();
      const captured = capturingLogger();
      logs = captured.logs;
      node = new DataplaneNode({
        portOffset: 0,
        logger: captured.logger,
        registry: new WorkerMetricsRegistry(),
        rateLimit: { redisTimeoutMs: 50, replicas: 1, maxLocalKeys: 1000 },
        bpf: { mode: 'on', pinDir: topo.pinDir, cgroupPath: topo.cgroupPath, traceForwarded: false },
        workers,
      });
      expect(node.agent).not.toBeNull();
    });
    afterAll(async () => {
      await node?.close();
    });

    const http = (path = '/'): HttpIR => singleHostIR(port, [route('all', { path: prefix(path) }, forwardTo('svc/x'))], [backend('svc/x', [{ address: '127.0.0.1', port: 9 }])]);
    const version = (name: string, httpIR: HttpIR, l4IR: L4IR): IR => ({ version: `${name}-${workers}`, http: httpIR, l4: l4IR });
    /** A version every compile throws on (its route has no match). */
    const broken = (name: string, l4IR: L4IR): IR => {
      const ir = version(name, http(), l4IR);
      (ir.http.listeners[0]!.scopes[0]!.virtualHosts[0]!.routes[0] as { match: unknown }).match = null;
      return ir;
    };
    const refusal = (ir: IR) => node.apply(ir).then(() => null, (error: unknown) => error);
    const rolledBack = (v: string) => logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(`eBPF: version ${v}-${workers} is not served`));

    it('a first version refused programs nothing: the kernel holds no version, as the proxy serves none', async () => {
      const refused = await refusal(broken('v0', l4(1)));
      expect(refused).toBeInstanceOf(VersionRejected);
      expect(node.version).toBeNull();
      // Untranslated, the VIP goes nowhere (no route out of the client namespace).
      expect((await connect(VIP)).answers).toEqual({});
      expect(rolledBack('v0')[0]?.msg).toMatch(/taken out of the kernel again \(no version is served\)$/);
    }, 60_000);

    it('a refused version (a compile error): its VIPs, endpoints and policy are taken out of the kernel again; the next good version is programmed', async () => {
      const v1 = version('v1', http(), l4(1));
      await node.apply(v1);
      expect(await connect(VIP)).toEqual(expect.objectContaining({ answers: { 'be1:8080': 6 }, errors: {} }));

      // The refused version moves the VIP to be2, adds a VIP, and default-denies be1.
      const refused = await refusal(broken('v2', l4(2, { newVip: true, denyBe1: true })));
      expect((refused as VersionRejected).code).toBe('SLU_VERSION_REJECTED');
      expect(node.version).toBe(v1.version);
      // The kernel serves v1's part: the VIP still to be1 (not denied), the new VIP untranslated.
      expect(await connect(VIP)).toEqual(expect.objectContaining({ answers: { 'be1:8080': 6 }, errors: {} }));
      expect((await connect(topo.backendAddress(1))).answers).toEqual({ 'be1:8080': 6 });
      expect((await connect(NEW_VIP)).answers).toEqual({});
      expect(rolledBack('v2')[0]?.msg).toBe(`eBPF: version v2-${workers} is not served; its Service VIPs and network policy were taken out of the kernel again (back to version v1-${workers}, the one served)`);

      const v3 = version('v3', http(), l4(2, { newVip: true, denyBe1: true }));
      await node.apply(v3);
      expect(node.version).toBe(v3.version);
      expect((await connect(VIP)).answers).toEqual({ 'be2:8080': 6 });
      expect((await connect(NEW_VIP)).answers).toEqual({ 'be2:8080': 6 });
      expect((await connect(topo.backendAddress(1), 2)).errors).toEqual({ ECONNREFUSED: 2 });
    }, 60_000);

    if (workers === 2) {
      it('a version that crashes every worker (rejected late, or at once): its kernel part is taken out again, and a version known to crash is not written at all', async () => {
        const hook = await hookWorkers(`{ const parse = JSON.parse; JSON.parse = function (text, ...rest) { if (typeof text === 'string' && text.includes('/crash-me')) process.exit(70); return parse.call(this, text, ...rest); }; }`);
        try {
          const v4 = version('v4', http('/crash-me'), l4(1));
          const failed = await refusal(v4);
          // Both workers end at once: late first, rejected when a replacement dies on it too.
          const rejected = failed instanceof VersionLate ? await failed.settled : failed;
          expect((rejected as VersionRejected).code).toBe('SLU_VERSION_CRASHED');
          expect(node.version).toBe(`v3-${workers}`);
          // v3's part: the VIP to be2, be1 denied.
          expect((await connect(VIP)).answers).toEqual({ 'be2:8080': 6 });
          expect((await connect(topo.backendAddress(1), 2)).errors).toEqual({ ECONNREFUSED: 2 });
          expect(rolledBack('v4')).toHaveLength(1);

          // Sent again: refused before the kernel is written (no second roll back).
          expect(((await refusal(v4)) as VersionRejected).code).toBe('SLU_VERSION_CRASHED');
          expect(rolledBack('v4')).toHaveLength(1);
          expect((await connect(VIP)).answers).toEqual({ 'be2:8080': 6 });
        } finally {
          await hook.stop();
        }
      }, 60_000);
    }
  });
});
