// The BPF programs (bpf/sock_lb.c, bpf/policy.c) on the real kernel, driven
// through bpftool (the N-API addon is built separately):
//  - every program passes this kernel's verifier and both objects share the
//    pinned maps;
//  - the policy verdict, case by case, with BPF_PROG_TEST_RUN on
//    cgroup_skb/egress and crafted packets;
//  - the sock_addr programs, which have no test-run support (ENOTSUPP), attached
//    to a throwaway cgroup and driven over loopback by a client process inside
//    it (test/bpf/programs/client.ts).
// Skipped, with the reason printed, without root, bpffs, cgroup2, BTF, bpftool
// or a BPF compiler.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { bpfUnavailableReason, cgroup2Mount, ownCgroupPath } from '../../bpf/agent/environment.ts';
import type { Command, TcpResult, UdpResult } from './programs/client.ts';
import { describeIfPossible } from '../support/suite.ts';
import { ebpfTestsRequired } from './support/skip.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BUILD_SCRIPT = join(ROOT, 'bpf', 'build-programs.sh');
const OBJECTS = { lb: join(ROOT, 'bpf', 'build', 'sock_lb.o'), policy: join(ROOT, 'bpf', 'build', 'policy.o') };
const CLIENT = join(import.meta.dirname, 'programs', 'client.ts');
const BPFFS = '/sys/fs/bpf';
const PIN = join(BPFFS, `sluice-test-${process.pid}`);
const run = promisify(execFile);

// ---------------------------------------------------------------- the ABI of bpf/include/maps.h, as far as used here

const SL_LB_SLOTS = 1021;
const ID = { ANY: 0, WORLD: 2 };
const TCP = 6;
const UDP = 17;
const DIR = { INGRESS: 0, EGRESS: 1 };
const PREFIX = { FIXED: 72, PROTO: 80, FULL: 96 };
const ENF = { INGRESS: 1, EGRESS: 2, AUDIT_INGRESS: 4, AUDIT_EGRESS: 8 };
const MODE = { RANDOM: 0, AFFINITY: 1 };
const COUNTERS = ['FORWARDED', 'DROPPED', 'AUDIT', 'LB_TRANSLATED', 'POLICY_DENY', 'DEFAULT_DENY', 'NO_BACKEND', 'EVENTS_LOST'];
const MAPS = [
  'sl_services', 'sl_lb_tables', 'sl_backends', 'sl_revnat', 'sl_ipcache', 'sl_policy_deny',
  'sl_policy_allow', 'sl_enforced', 'sl_cg_identity', 'sl_counters', 'sl_config', 'sl_events', 'sl_sk_outbound',
];
const PROGRAMS = {
  sl_connect4: { dir: 'progs-lb', type: 'cgroup_sock_addr', attach: 'connect4' },
  sl_sendmsg4: { dir: 'progs-lb', type: 'cgroup_sock_addr', attach: 'sendmsg4' },
  sl_recvmsg4: { dir: 'progs-lb', type: 'cgroup_sock_addr', attach: 'recvmsg4' },
  sl_getpeername4: { dir: 'progs-lb', type: 'cgroup_sock_addr', attach: 'getpeername4' },
  sl_skb_egress: { dir: 'progs-policy', type: 'cgroup_skb', attach: 'egress' },
};
type ProgramName = keyof typeof PROGRAMS;
const progPin = (name: ProgramName) => join(PIN, PROGRAMS[name].dir, name);
const mapPin = (name: string) => join(PIN, name);

const u16le = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
const be16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
const ip4 = (ip: string) => Buffer.from(ip.split('.').map(Number));

// ---------------------------------------------------------------- environment

/** The cgroup v2 id of a cgroup directory is its inode number. */
const cgroupId = (dir: string) => statSync(dir, { bigint: true }).ino;


/** Set when the compiler is there but the sources do not compile: the tests then fail, not skip. */
let buildError: string | null = null;

function skipReason(): string | null {
  const why = bpfUnavailableReason();
  if (why) return why;
  try {
    execFileSync('bpftool', ['version'], { stdio: 'ignore' });
  } catch {
    return 'bpftool not installed';
  }
  // Built here rather than in beforeAll: whether the file is skipped (no
  // compiler) has to be known when the tests are collected.
  try {
    execFileSync('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? '').trim();
    // build-programs.sh prints one "sluice: ..." line when the toolchain is
    // missing; objects built earlier are then still worth testing.
    if (stderr.startsWith('sluice:')) return Object.values(OBJECTS).every((o) => existsSync(o)) ? null : stderr;
    buildError = stderr || String(e);
  }
  return null;
}

// ---------------------------------------------------------------- bpftool

async function bpftool(...args: string[]): Promise<any> {
  try {
    const { stdout } = await run('bpftool', ['-j', ...args], { maxBuffer: 64 << 20 });
    return stdout.trim() ? JSON.parse(stdout) : null;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(`bpftool ${args.join(' ').slice(0, 200)}: ${err.stdout ?? ''} ${err.stderr ?? ''}`.trim());
  }
}

const hex = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0'));

/** Map entries written by the current test; afterEach deletes them. */
const written: Array<[string, Buffer]> = [];

async function put(map: string, key: Buffer, value: Buffer): Promise<void> {
  await bpftool('map', 'update', 'pinned', mapPin(map), 'key', 'hex', ...hex(key), 'value', 'hex', ...hex(value));
  written.push([map, key]);
}

async function remove(map: string, key: Buffer): Promise<void> {
  await bpftool('map', 'delete', 'pinned', mapPin(map), 'key', 'hex', ...hex(key)).catch(() => undefined);
}

/** sl_counters summed over CPUs, by name. */
async function counters(): Promise<Record<string, bigint>> {
  const sums: Record<string, bigint> = {};
  for (const entry of await bpftool('map', 'dump', 'pinned', mapPin('sl_counters'))) {
    const index = Buffer.from(entry.key.map((h: string) => parseInt(h, 16))).readUInt32LE();
    for (const cpu of entry.values) {
      const v = Buffer.from(cpu.value.map((h: string) => parseInt(h, 16))).readBigUInt64LE();
      const name = COUNTERS[index] ?? `#${index}`;
      sums[name] = (sums[name] ?? 0n) + v;
    }
  }
  return sums;
}

/** Runs `fn` and returns it with the counters that moved (name -> increase). */
async function counting<T>(fn: () => Promise<T>): Promise<[T, Record<string, number>]> {
  const before = await counters();
  const result = await fn();
  const after = await counters();
  const moved: Record<string, number> = {};
  for (const [name, v] of Object.entries(after)) if (v !== before[name]) moved[name] = Number(v - (before[name] ?? 0n));
  return [result, moved];
}

// ---------------------------------------------------------------- map entries

const setCgroupIdentity = (cgroup: bigint, identity: number) => put('sl_cg_identity', u64(cgroup), u32(identity));
const setIpIdentity = (ip: string, identity: number) => put('sl_ipcache', Buffer.concat([u32(32), ip4(ip)]), Buffer.concat([u32(identity), u32(0)]));
const enforce = (identity: number, flags: number) => put('sl_enforced', u32(identity), u32(flags));

interface Rule {
  local: number;
  remote: number;
  dir: number;
  /** Omitted: any protocol (and port). */
  proto?: number;
  /** Omitted: any port. */
  dport?: number;
  ruleId: number;
}

function ruleKey(r: Rule): Buffer {
  const prefix = r.dport !== undefined ? PREFIX.FULL : r.proto !== undefined ? PREFIX.PROTO : PREFIX.FIXED;
  return Buffer.concat([u32(prefix), u32(r.local), u32(r.remote), Buffer.from([r.dir, r.proto ?? 0]), be16(r.dport ?? 0)]);
}
const allow = (r: Rule) => put('sl_policy_allow', ruleKey(r), Buffer.concat([u32(r.ruleId), u32(0)]));
const deny = (r: Rule) => put('sl_policy_deny', ruleKey(r), Buffer.concat([u32(r.ruleId), u32(0)]));

async function setService(vip: string, port: number, proto: number, svcId: number, backends: Array<[string, number]>, slots: number[] | null, mode = MODE.RANDOM): Promise<void> {
  // Written in the agent's order: backends, table, service.
  for (const [i, [ip, bport]] of backends.entries()) await put('sl_backends', u32(svcId * 100 + i), Buffer.concat([ip4(ip), be16(bport), Buffer.from([proto, 0])]));
  if (slots) await put('sl_lb_tables', u32(svcId), Buffer.concat(slots.map((i) => u32(svcId * 100 + i))));
  await put('sl_services', Buffer.concat([ip4(vip), be16(port), Buffer.from([proto, 0])]), Buffer.concat([u32(svcId), u16le(backends.length), Buffer.from([mode, 0])]));
}

// ---------------------------------------------------------------- packets for BPF_PROG_TEST_RUN

/** Ethernet + IPv4 + TCP/UDP header. cgroup_skb test runs need the L2 header: the kernel strips it. */
function ipv4Packet(src: string, dst: string, proto: number, dport: number): Buffer {
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  const l4 = Buffer.alloc(proto === TCP ? 20 : 8);
  l4.writeUInt16BE(40000, 0);
  l4.writeUInt16BE(dport, 2);
  if (proto === TCP) {
    l4[12] = 0x50; // data offset 5 words
    l4[13] = 0x02; // SYN
  } else {
    l4.writeUInt16BE(8, 4);
  }
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4.length, 2);
  ip[8] = 64;
  ip[9] = proto;
  ip4(src).copy(ip, 12);
  ip4(dst).copy(ip, 16);
  return Buffer.concat([eth, ip, l4]);
}

function ipv6Packet(): Buffer {
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x86dd, 12);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(8, 4);
  ip[6] = UDP;
  ip[7] = 64;
  return Buffer.concat([eth, ip, Buffer.alloc(8)]);
}

let scratch = '';

/** The cgroup_skb/egress verdict for one packet: 1 pass, 0 drop. */
async function egressVerdict(packet: Buffer): Promise<number> {
  const file = join(scratch, 'packet');
  writeFileSync(file, packet);
  return (await bpftool('prog', 'run', 'pinned', progPin('sl_skb_egress'), 'data_in', file, 'repeat', '1')).retval;
}

// ---------------------------------------------------------------- the client inside the test cgroup

class Client {
  private readonly child: ChildProcess;
  private readonly waiting: Array<{ resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  private stderr = '';

  constructor(cgroup: string) {
    // The shell joins the cgroup before node starts, so every socket the client makes belongs to it.
    this.child = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec "$2" --disable-warning=ExperimentalWarning "$3"', 'sh', cgroup, process.execPath, CLIENT], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    this.child.once('exit', () => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`client exited: ${this.stderr}`));
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.waiting.shift()?.resolve(line));
  }

  async send<T>(cmd: Command): Promise<T> {
    const line = new Promise<string>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.child.stdin!.write(JSON.stringify(cmd) + '\n');
    return JSON.parse(await line) as T;
  }

  tcp = (host: string, port: number, count = 1) => this.send<TcpResult[]>({ op: 'tcp', host, port, count });
  udp = (id: string, host: string, port: number, connect: boolean) => this.send<UdpResult>({ op: 'udp', id, host, port, connect });

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}

async function tcpServer(label: string): Promise<[Server, number]> {
  const server = createServer((s) => s.end(label));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return [server, (server.address() as AddressInfo).port];
}

async function udpEcho(): Promise<[UdpSocket, number]> {
  const socket = createSocket('udp4');
  socket.on('message', (_msg, rinfo) => socket.send('pong', rinfo.port, rinfo.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return [socket, socket.address().port];
}

// ---------------------------------------------------------------- tests

const suite = describeIfPossible('BPF program tests', skipReason(), ebpfTestsRequired());

suite('BPF programs', () => {
  let cgroupMount = '';

  beforeAll(async () => {
    if (buildError) throw new Error(`bpf/build-programs.sh failed:\n${buildError}`);
    cgroupMount = cgroup2Mount()!;
    scratch = mkdtempSync(join(tmpdir(), 'sluice-bpf-test-'));
    mkdirSync(PIN);
    // LIBBPF_PIN_BY_NAME pins under libbpf's default root, /sys/fs/bpf, and
    // bpftool 7.1 cannot move that root ("pinmaps" fails: "already has pin
    // path"); the agent's addon sets pin_root_path instead. To keep this run's
    // maps out of the shared root, bpftool runs in a private mount namespace
    // where /sys/fs/bpf is a bind mount of this run's pin directory. The
    // second object finds the first one's pins there and reuses them.
    await run('unshare', [
      '--mount', '--propagation', 'private', 'sh', '-c',
      'mount --bind "$1" /sys/fs/bpf && bpftool prog loadall "$2" /sys/fs/bpf/progs-lb && bpftool prog loadall "$3" /sys/fs/bpf/progs-policy',
      'sh', PIN, OBJECTS.lb, OBJECTS.policy,
    ]).catch((e: { stderr?: string }) => {
      throw new Error(`loading the BPF objects failed (verifier log below):\n${e.stderr ?? e}`);
    });
  });

  afterEach(async () => {
    for (const [map, key] of written.splice(0).reverse()) await remove(map, key);
  });

  afterAll(() => {
    rmSync(PIN, { recursive: true, force: true });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('loads every program on this kernel, and both objects share the pinned maps', async () => {
    const mapIds = new Map<string, number>();
    for (const name of MAPS) mapIds.set(name, (await bpftool('map', 'show', 'pinned', mapPin(name))).id);
    const ids = new Set(mapIds.values());
    expect(ids.size).toBe(MAPS.length);

    for (const [name, { type }] of Object.entries(PROGRAMS)) {
      const prog = await bpftool('prog', 'show', 'pinned', progPin(name as ProgramName));
      expect({ name: prog.name, type: prog.type }).toEqual({ name, type });
      // Every map a program uses is one of the shared pins (no private copy).
      for (const id of prog.map_ids) expect(ids).toContain(id);
    }
    // One counter map for both objects.
    for (const name of ['sl_connect4', 'sl_skb_egress'] as const) {
      expect((await bpftool('prog', 'show', 'pinned', progPin(name))).map_ids).toContain(mapIds.get('sl_counters'));
    }
    // The agent checks its codec against each object's BTF, the ringbuf's event struct included.
    for (const object of Object.values(OBJECTS)) {
      const { types } = await bpftool('btf', 'dump', 'file', object);
      expect(types.find((t: { name?: string }) => t.name === 'sl_flow_event')?.size).toBe(56);
    }
  });

  describe('policy verdict (BPF_PROG_TEST_RUN on cgroup_skb/egress)', () => {
    // During BPF_PROG_TEST_RUN the packet belongs to a dummy socket that the
    // kernel allocates for the run; it takes the cgroup of the calling task.
    // bpftool is our child and inherits our cgroup, so bpf_skb_cgroup_id()
    // returns this process's cgroup v2 id (checked: a bpftool started in a
    // child cgroup gets that cgroup's id).
    const GATEWAY = 100;
    const BACKEND = 300;
    const SRC = '10.0.0.1';
    const DST = '10.1.0.2';
    let self = 0n;

    beforeAll(() => {
      self = cgroupId(ownCgroupPath()!);
    });

    const tcpTo = (dport: number, dst = DST) => ipv4Packet(SRC, dst, TCP, dport);

    it('forwards when neither side is enforced', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await setIpIdentity(DST, BACKEND);
      const [verdict, moved] = await counting(() => egressVerdict(tcpTo(8080)));
      expect(verdict).toBe(1);
      expect(moved).toEqual({ FORWARDED: 1 });
    });

    it('does not check a socket whose cgroup has no identity', async () => {
      await setIpIdentity(DST, BACKEND);
      await enforce(BACKEND, ENF.INGRESS);
      const [verdict, moved] = await counting(() => egressVerdict(tcpTo(8080)));
      expect(verdict).toBe(1);
      expect(moved).toEqual({ FORWARDED: 1 });
    });

    it('passes anything but IPv4', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await enforce(ID.WORLD, ENF.INGRESS);
      expect(await egressVerdict(ipv6Packet())).toBe(1);
    });

    it('default-denies at an enforced ingress without an allow rule', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await setIpIdentity(DST, BACKEND);
      await enforce(BACKEND, ENF.INGRESS);
      const [verdict, moved] = await counting(() => egressVerdict(tcpTo(8080)));
      expect(verdict).toBe(0);
      expect(moved).toEqual({ DROPPED: 1, DEFAULT_DENY: 1 });
    });

    it('allows by an exact-port rule for this remote, and only that port', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await setIpIdentity(DST, BACKEND);
      await enforce(BACKEND, ENF.INGRESS);
      await allow({ local: BACKEND, remote: GATEWAY, dir: DIR.INGRESS, proto: TCP, dport: 8080, ruleId: 7 });
      const [verdict, moved] = await counting(() => egressVerdict(tcpTo(8080)));
      expect(verdict).toBe(1);
      expect(moved).toEqual({ FORWARDED: 1 });
      expect(await egressVerdict(tcpTo(8081))).toBe(0);
      expect(await egressVerdict(ipv4Packet(SRC, DST, UDP, 8080))).toBe(0);
    });

    it('allows any port by a protocol-only rule for any remote', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await setIpIdentity(DST, BACKEND);
      await enforce(BACKEND, ENF.INGRESS);
      await allow({ local: BACKEND, remote: ID.ANY, dir: DIR.INGRESS, proto: TCP, ruleId: 8 });
      expect(await egressVerdict(tcpTo(1))).toBe(1);
      expect(await egressVerdict(tcpTo(65535))).toBe(1);
      expect(await egressVerdict(ipv4Packet(SRC, DST, UDP, 53))).toBe(0);
    });

    it('lets a deny rule beat an allow rule', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await setIpIdentity(DST, BACKEND);
      await enforce(BACKEND, ENF.INGRESS);
      await allow({ local: BACKEND, remote: GATEWAY, dir: DIR.INGRESS, proto: TCP, dport: 8080, ruleId: 7 });
      await deny({ local: BACKEND, remote: ID.ANY, dir: DIR.INGRESS, ruleId: 11 });
      const [verdict, moved] = await counting(() => egressVerdict(tcpTo(8080)));
      expect(verdict).toBe(0);
      expect(moved).toEqual({ DROPPED: 1, POLICY_DENY: 1 });
    });

    it('forwards and counts an audited denial', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await setIpIdentity(DST, BACKEND);
      await enforce(BACKEND, ENF.INGRESS | ENF.AUDIT_INGRESS);
      const [verdict, moved] = await counting(() => egressVerdict(tcpTo(8080)));
      expect(verdict).toBe(1);
      expect(moved).toEqual({ AUDIT: 1 });
    });

    it('enforces egress on the source identity; a destination in no prefix is the world', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await enforce(GATEWAY, ENF.EGRESS);
      const [verdict, moved] = await counting(() => egressVerdict(tcpTo(443, '192.0.2.1')));
      expect(verdict).toBe(0);
      expect(moved).toEqual({ DROPPED: 1, DEFAULT_DENY: 1 });

      await allow({ local: GATEWAY, remote: ID.WORLD, dir: DIR.EGRESS, proto: TCP, dport: 443, ruleId: 3 });
      expect(await egressVerdict(tcpTo(443, '192.0.2.1'))).toBe(1);
      // The egress allow does not open the backend's enforced ingress.
      await setIpIdentity(DST, BACKEND);
      await allow({ local: GATEWAY, remote: BACKEND, dir: DIR.EGRESS, proto: TCP, ruleId: 4 });
      await enforce(BACKEND, ENF.INGRESS);
      expect(await egressVerdict(tcpTo(443))).toBe(0);
    });

    it('an audited egress denial does not switch off an enforced ingress', async () => {
      await setCgroupIdentity(self, GATEWAY);
      await setIpIdentity(DST, BACKEND);
      await enforce(GATEWAY, ENF.EGRESS | ENF.AUDIT_EGRESS);
      await enforce(BACKEND, ENF.INGRESS);
      const [verdict, moved] = await counting(() => egressVerdict(tcpTo(8080)));
      expect(verdict).toBe(0);
      expect(moved).toEqual({ DROPPED: 1, DEFAULT_DENY: 1 });
    });
  });

  describe('sock_addr programs on a live cgroup (loopback)', () => {
    const VIP = '127.99.0.1';
    const GATEWAY = 100;
    const BACKEND = 300;
    let cgroup = '';
    let clientCgroup = 0n;
    let client: Client | null = null;
    const attached: ProgramName[] = [];
    const servers: Server[] = [];
    let echo: UdpSocket | null = null;
    const port = { be1: 0, be2: 0, echo: 0 };

    beforeAll(async () => {
      cgroup = join(cgroupMount, `sluice-test-${process.pid}`);
      mkdirSync(cgroup);
      clientCgroup = cgroupId(cgroup);
      for (const name of Object.keys(PROGRAMS) as ProgramName[]) {
        await bpftool('cgroup', 'attach', cgroup, PROGRAMS[name].attach, 'pinned', progPin(name));
        attached.push(name);
      }
      let server: Server;
      [server, port.be1] = await tcpServer('be1');
      servers.push(server);
      [server, port.be2] = await tcpServer('be2');
      servers.push(server);
      [echo, port.echo] = await udpEcho();
      client = new Client(cgroup);
    });

    afterAll(async () => {
      await client?.stop();
      for (const name of attached) await bpftool('cgroup', 'detach', cgroup, PROGRAMS[name].attach, 'pinned', progPin(name)).catch(() => undefined);
      if (cgroup && existsSync(cgroup)) rmdirSync(cgroup);
      for (const s of servers) await new Promise((resolve) => s.close(resolve));
      echo?.close();
    });

    it('connect4 spreads connections by the table and getpeername4 shows the VIP', async () => {
      // A 3:1 table, as weighted Maglev would fill it.
      const slots = Array.from({ length: SL_LB_SLOTS }, (_, i) => (i % 4 === 3 ? 1 : 0));
      await setService(VIP, 80, TCP, 1, [['127.0.0.1', port.be1], ['127.0.0.1', port.be2]], slots);
      const [results, moved] = await counting(() => client!.tcp(VIP, 80, 300));
      expect(results.filter((r) => r.error)).toEqual([]);
      expect(new Set(results.map((r) => r.peer))).toEqual(new Set([`${VIP}:80`]));
      const be1 = results.filter((r) => r.label === 'be1').length / results.length;
      expect(be1).toBeGreaterThan(0.62); // 0.75 expected, sigma 0.025
      expect(be1).toBeLessThan(0.88);
      expect(moved.LB_TRANSLATED).toBe(300);
      expect(moved.DROPPED).toBeUndefined();
    });

    it('affinity mode keeps one client on one endpoint', async () => {
      const slots = Array.from({ length: SL_LB_SLOTS }, (_, i) => i % 2);
      await setService(VIP, 80, TCP, 1, [['127.0.0.1', port.be1], ['127.0.0.1', port.be2]], slots, MODE.AFFINITY);
      const results = await client!.tcp(VIP, 80, 40);
      expect(results.filter((r) => r.error)).toEqual([]);
      expect(new Set(results.map((r) => r.label)).size).toBe(1);
    });

    it('refuses connect() to a service without endpoints, or whose table is missing', async () => {
      await setService(VIP, 80, TCP, 1, [], null);
      const [results, moved] = await counting(() => client!.tcp(VIP, 80));
      expect(results).toEqual([{ error: 'ECONNREFUSED' }]);
      expect(moved).toMatchObject({ DROPPED: 1, NO_BACKEND: 1 });

      await setService(VIP, 81, TCP, 2, [['127.0.0.1', port.be1]], null);
      const [missing, moved2] = await counting(() => client!.tcp(VIP, 81));
      expect(missing).toEqual([{ error: 'ECONNREFUSED' }]);
      expect(moved2).toMatchObject({ DROPPED: 1, NO_BACKEND: 1 });
    });

    it('translates UDP: sendmsg4/recvmsg4 per datagram, connect4/getpeername4 for a connected socket', async () => {
      await setService(VIP, 53, UDP, 3, [['127.0.0.1', port.echo]], new Array(SL_LB_SLOTS).fill(0));
      expect(await client!.udp('unconnected', VIP, 53, false)).toEqual({ from: `${VIP}:53` });
      expect(await client!.udp('connected', VIP, 53, true)).toEqual({ from: `${VIP}:53`, peer: `${VIP}:53` });
    });

    it('refuses a denied connect() at once; cgroup_skb drops a flow denied after it started', async () => {
      await setService(VIP, 80, TCP, 1, [['127.0.0.1', port.be1]], new Array(SL_LB_SLOTS).fill(0));
      await setService(VIP, 53, UDP, 3, [['127.0.0.1', port.echo]], new Array(SL_LB_SLOTS).fill(0));
      await setCgroupIdentity(clientCgroup, GATEWAY);
      await setIpIdentity('127.0.0.1', BACKEND);
      await enforce(BACKEND, ENF.INGRESS);

      // Through the VIP and straight to the endpoint: ECONNREFUSED from connect4, no SYN sent.
      const [refused, moved] = await counting(async () => [...(await client!.tcp(VIP, 80)), ...(await client!.tcp('127.0.0.1', port.be1))]);
      expect(refused).toEqual([{ error: 'ECONNREFUSED' }, { error: 'ECONNREFUSED' }]);
      expect(moved).toEqual({ DROPPED: 2, DEFAULT_DENY: 2 });
      // sendmsg4 refuses a datagram with EPERM.
      expect(await client!.udp('denied', VIP, 53, false)).toEqual({ error: 'EPERM' });

      // Allowed: the connection works, and cgroup_skb passes its packets.
      await allow({ local: BACKEND, remote: GATEWAY, dir: DIR.INGRESS, proto: TCP, dport: port.be1, ruleId: 5 });
      const udpRule: Rule = { local: BACKEND, remote: GATEWAY, dir: DIR.INGRESS, proto: UDP, dport: port.echo, ruleId: 6 };
      await allow(udpRule);
      expect(await client!.tcp(VIP, 80)).toEqual([{ label: 'be1', peer: `${VIP}:80` }]);
      expect(await client!.udp('held', VIP, 53, true)).toEqual({ from: `${VIP}:53`, peer: `${VIP}:53` });

      // The rule goes away: a connected socket sends without sendmsg4, so cgroup_skb drops it.
      await remove('sl_policy_allow', ruleKey(udpRule));
      const [late, moved2] = await counting(() => client!.udp('held', VIP, 53, true));
      expect(late).toEqual({ error: 'EPERM' });
      expect(moved2).toMatchObject({ DROPPED: 1, DEFAULT_DENY: 1 });
    });
  });
});
