// eBPF benchmark: prints figures and ratios, asserts nothing.
//  1. agent map writes: ir.l4 with many services → entries written per second,
//     and the cost of re-applying an unchanged IR (nothing written);
//  2. connect() latency to a Service VIP (translated by connect4) versus to the
//     endpoint directly, from a client namespace, as a ratio;
//  3. the policy lookup: BPF_PROG_TEST_RUN of the cgroup_skb program with no
//     policy, and with 10 000 rules (a hit and a default-deny miss).
// Needs root and the built objects; otherwise prints why and exits 0.
//   node test/bench/bpf.ts [--connections N] [--repeat N]
import { mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { BpfAgent, OBJECTS_DIR, removePins } from '../../bpf/agent/agent.ts';
import { cgroup2Mount, ownCgroupPath } from '../../bpf/agent/environment.ts';
import { loadNative } from '../../bpf/native/index.ts';
import type { L4IR, L4PolicyEntry, L4Service } from '../../ir/types.ts';
import { ebpfSkipReason } from '../bpf/support/skip.ts';
import { makeTopology } from '../bpf/support/topology.ts';

const { values: args } = parseArgs({ options: { connections: { type: 'string', default: '2000' }, repeat: { type: 'string', default: '200000' } } });
const why = ebpfSkipReason();
if (why) {
  console.log(`bpf bench skipped: ${why}`);
  process.exit(0);
}
const logger = pino({ level: 'silent' });
const CLIENT = join(import.meta.dirname, '..', 'bpf', 'support', 'client.ts');
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;

// ------------------------------------------------------------ 1 and 3 run in a cgroup of our own
const mount = cgroup2Mount()!;
const home = ownCgroupPath()!;
const benchCgroup = join(mount, `sluice-bench-${process.pid}`);
const pinDir = `/sys/fs/bpf/sluice-bench-${process.pid}`;
mkdirSync(benchCgroup);
// BPF_PROG_TEST_RUN reports the caller's cgroup to the program: be the gateway.
writeFileSync(join(benchCgroup, 'cgroup.procs'), String(process.pid));
try {
  const started = BpfAgent.start({ pinDir, cgroupPath: benchCgroup, logger });
  if ('reason' in started) throw new Error(started.reason);
  const agent = started.agent;

  const services = (n: number, endpoints: number): L4Service[] => Array.from({ length: n }, (_, i) => ({
    name: `service/bench/svc-${i}/port/80`,
    origin: { kind: 'Service' as const, namespace: 'bench', name: `svc-${i}` },
    vip: `10.${96 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`,
    port: 80,
    protocol: 'TCP' as const,
    affinity: 'random' as const,
    endpoints: Array.from({ length: endpoints }, (_, j) => ({ address: `10.244.${i % 250}.${j + 1}`, port: 8080, weight: 1 })),
  }));
  const ir = { services: services(2000, 5) };
  let t0 = performance.now();
  const first = agent.apply(ir);
  const firstMs = performance.now() - t0;
  t0 = performance.now();
  const again = agent.apply(ir);
  const againMs = performance.now() - t0;
  const moved = { services: ir.services.map((s, i) => (i % 10 === 0 ? { ...s, endpoints: s.endpoints.slice(1) } : s)) };
  t0 = performance.now();
  const change = agent.apply(moved);
  const changeMs = performance.now() - t0;
  console.log('\n1. agent map writes (2000 services x 5 endpoints; tables of 1021 slots)');
  console.log(`   from empty: ${first.written} entries in ${firstMs.toFixed(0)} ms = ${Math.round(first.written / (firstMs / 1000))} entries/s (Maglev tables included)`);
  console.log(`   unchanged re-apply: ${again.written} written, ${again.unchanged} compared, ${againMs.toFixed(0)} ms`);
  console.log(`   200 services lose an endpoint: ${change.written} written, ${change.deleted} deleted, ${changeMs.toFixed(0)} ms`);

  // ---- 3. policy lookup cost
  const native = loadNative();
  if ('reason' in native) throw new Error(native.reason);
  const object = native.native.openObject(join(OBJECTS_DIR, 'policy.o'), join(pinDir, 'maps'));
  const prog = object.programs.sl_skb_egress!.fd;
  const repeat = Number(args.repeat);
  const packet = (dst: string, port: number) => {
    // An Ethernet header (test runs of cgroup_skb strip it), IPv4, TCP with only ports filled.
    const b = Buffer.alloc(14 + 20 + 20);
    b.writeUInt16BE(0x0800, 12);
    b[14] = 0x45;
    b.writeUInt16BE(40, 16);
    b[22] = 64;
    b[23] = 6;
    Buffer.from([10, 1, 1, 1]).copy(b, 26);
    Buffer.from(dst.split('.').map(Number)).copy(b, 30);
    b.writeUInt16BE(40000, 34);
    b.writeUInt16BE(port, 36);
    b[46] = 0x50;
    return b;
  };
  const run = (p: Buffer) => {
    const runs = [0, 1, 2].map(() => native.native.progTestRun(prog, p, repeat));
    return { retval: runs[0]!.retval, ns: Math.min(...runs.map((r) => r.durationNs)) };
  };
  agent.apply({ services: [] });
  const none = run(packet('10.250.0.1', 8080));
  const RULES = 10_000;
  const identities = 2000;
  const entries: L4PolicyEntry[] = Array.from({ length: RULES }, (_, i) => ({
    direction: 'ingress', action: 'allow', local: 1000 + (i % identities), remote: 8, protocol: 'TCP',
    ports: { from: 1000 + Math.floor(i / identities) * 7, to: 1000 + Math.floor(i / identities) * 7 + (i % 3) }, rule: i + 1,
  }));
  const policyIr: L4IR = {
    services: [],
    policy: {
      identities: Array.from({ length: identities }, (_, i) => ({ id: 1000 + i, labels: [`k8s:app=a${i}`] })),
      ipcache: Array.from({ length: identities }, (_, i) => ({ cidr: `10.250.${Math.floor(i / 250)}.${(i % 250) + 1}/32`, identity: 1000 + i })),
      enforcement: Array.from({ length: identities }, (_, i) => ({ identity: 1000 + i, ingress: true, egress: false, audit: false })),
      rules: entries.map((e) => ({ id: e.rule, name: `bench/rule/${e.rule}` })),
      entries,
    },
  };
  t0 = performance.now();
  const policyWrite = agent.apply(policyIr);
  const policyMs = performance.now() - t0;
  const hit = run(packet('10.250.0.1', 1000));
  const miss = run(packet('10.250.0.1', 9999));
  native.native.closeObject(object.handle);
  console.log(`\n3. policy lookup (cgroup_skb/egress under BPF_PROG_TEST_RUN, best of 3 x ${repeat} runs)`);
  console.log(`   ${RULES} rules over ${identities} identities: ${policyWrite.written} entries written in ${policyMs.toFixed(0)} ms`);
  console.log(`   no policy:              ${none.ns} ns/packet (verdict ${none.retval ? 'pass' : 'drop'})`);
  console.log(`   10k rules, allowed:     ${hit.ns} ns/packet (verdict ${hit.retval ? 'pass' : 'drop'}), +${hit.ns - none.ns} ns`);
  console.log(`   10k rules, default deny: ${miss.ns} ns/packet (verdict ${miss.retval ? 'pass' : 'drop'}), +${miss.ns - none.ns} ns`);
  agent.close();
} finally {
  writeFileSync(join(home, 'cgroup.procs'), String(process.pid));
  removePins(pinDir);
  rmdirSync(benchCgroup);
}

// ------------------------------------------------------------ 2. connect latency, VIP vs direct
const topo = makeTopology(1);
try {
  await topo.startBackends([8080]);
  const started = BpfAgent.start({ pinDir: topo.pinDir, cgroupPath: topo.cgroupPath, logger, traceForwarded: false });
  if ('reason' in started) throw new Error(started.reason);
  started.agent.apply({ services: [{ name: 'service/bench/web/port/80', origin: { kind: 'Service', namespace: 'bench', name: 'web' }, vip: '10.96.0.10', port: 80, protocol: 'TCP', affinity: 'random', endpoints: [{ address: topo.backendAddress(1), port: 8080, weight: 1 }] }] });
  const n = args.connections;
  const measure = async (host: string, port: number) => JSON.parse(await topo.runClient(CLIENT, [host, String(port), n])) as { connectMs: number[]; errors: Record<string, number> };
  const rounds: { vip: number; direct: number }[] = [];
  for (let r = 0; r < 3; r++) {
    const direct = await measure(topo.backendAddress(1), 8080);
    const vip = await measure('10.96.0.10', 80);
    if (Object.keys(direct.errors).length || Object.keys(vip.errors).length) throw new Error(`errors: ${JSON.stringify({ direct: direct.errors, vip: vip.errors })}`);
    rounds.push({ vip: p50(vip.connectMs), direct: p50(direct.connectMs) });
    if (r === 2) {
      console.log(`\n2. connect() latency, ${n} fresh connections per round, 3 rounds (client in its own namespace)`);
      console.log(`   last round p99: VIP ${p99(vip.connectMs).toFixed(3)} ms, direct ${p99(direct.connectMs).toFixed(3)} ms`);
    }
  }
  for (const [i, r] of rounds.entries()) console.log(`   round ${i + 1}: p50 VIP ${r.vip.toFixed(3)} ms, direct ${r.direct.toFixed(3)} ms, ratio ${(r.vip / r.direct).toFixed(2)}x`);
  const ratios = rounds.map((r) => r.vip / r.direct).sort((a, b) => a - b);
  console.log(`   median ratio VIP/direct: ${ratios[1]!.toFixed(2)}x`);
  started.agent.close();
} finally {
  topo.destroy();
}
