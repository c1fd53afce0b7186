// The libbpf N-API addon (bpf/native) against the real kernel, no mocks: load
// a fixture object of our own (test/bpf/native/fixture.bpf.c, compiled here
// with clang), share its pinned maps between loads, read and write maps,
// reject bad input, report a verifier rejection, read BTF, run programs,
// consume the ring buffer and attach to a cgroup through a pinned link.
// Skipped, with the reason printed, where it cannot run (not root, no bpffs,
// no BTF, no clang, addon not built).
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bpfUnavailableReason, cgroup2Mount } from '../../bpf/agent/environment.ts';
import { loadNative } from '../../bpf/native/index.ts';
import type { LoadedObject, NativeError, SluiceBpfNative } from '../../bpf/native/index.ts';
import { describeIfPossible } from '../support/suite.ts';
import { ebpfTestsRequired } from './support/skip.ts';

const FIXTURES = path.join(import.meta.dirname, 'native');
const BPF_PROG_TYPE_SCHED_CLS = 3;
const BPF_PROG_TYPE_CGROUP_SKB = 8;
const BPF_CGROUP_INET_EGRESS = 1;
const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_RINGBUF = 27;
const BPF_NOEXIST = 1;
const FX_MAGIC = 0x51c3e7a1;

function skipReason(): string | null {
  const why = bpfUnavailableReason();
  if (why) return why;
  if (spawnSync('clang', ['--version']).status !== 0) return 'clang is missing (it compiles the test fixtures)';
  const loaded = loadNative();
  return 'reason' in loaded ? loaded.reason : null;
}


// "key:\tvalue" lines of /proc/self/fdinfo/<fd>: the kernel's view of a BPF fd.
function fdinfo(fd: number): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) info[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return info;
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: bigint | number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
function thrown(fn: () => unknown): NativeError {
  try {
    fn();
  } catch (err) {
    return err as NativeError;
  }
  throw new Error('expected a throw');
}
// The addon's TypeError comes from Node's realm, not jest's, so
// toThrow(TypeError) cannot match it by constructor: compare names.
function typeError(fn: () => unknown): string {
  const err = thrown(fn);
  expect(err.constructor.name).toBe('TypeError');
  return err.message;
}

const suite = describeIfPossible('BPF addon tests', skipReason(), ebpfTestsRequired());

suite('libbpf addon (root, real kernel)', () => {
  let native: SluiceBpfNative;
  const pinRoot = `/sys/fs/bpf/sluice-native-test-${process.pid}`;
  let tmp: string;
  let fixture: string;
  let bad: string;
  let a: LoadedObject; // the fixture, loaded once for most tests
  const open = new Set<number>(); // handles still to close
  const cgroups: string[] = [];

  const load = (objectPath = fixture): LoadedObject => {
    const obj = native.openObject(objectPath, pinRoot);
    open.add(obj.handle);
    return obj;
  };
  const unload = (obj: LoadedObject): void => {
    native.closeObject(obj.handle);
    open.delete(obj.handle);
  };
  // Sum of a per-CPU u64 slot.
  const perCpuSum = (fd: number, index: number): bigint => {
    const cpus = native.numPossibleCpus();
    const raw = native.mapLookup(fd, u32(index), cpus * 8)!;
    let sum = 0n;
    for (let cpu = 0; cpu < cpus; cpu++) sum += raw.readBigUInt64LE(cpu * 8);
    return sum;
  };

  beforeAll(() => {
    native = (loadNative() as { native: SluiceBpfNative }).native;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-native-'));
    const cflags = ['-O2', '-g', '-target', 'bpf', '-Wall', `-I/usr/include/${os.machine()}-linux-gnu`];
    fixture = path.join(tmp, 'fixture.o');
    bad = path.join(tmp, 'bad.o');
    execFileSync('clang', [...cflags, '-c', path.join(FIXTURES, 'fixture.bpf.c'), '-o', fixture]);
    execFileSync('clang', [...cflags, '-c', path.join(FIXTURES, 'bad.bpf.c'), '-o', bad]);
    a = load();
  });

  afterAll(() => {
    // Links first (unpinning detaches), then objects, pins, cgroups, files.
    fs.rmSync(path.join(pinRoot, 'links'), { recursive: true, force: true });
    for (const handle of open) native.closeObject(handle);
    fs.rmSync(pinRoot, { recursive: true, force: true });
    for (const cgroup of cgroups.reverse()) if (fs.existsSync(cgroup)) fs.rmdirSync(cgroup); // plain rmdir: cgroupfs refuses unlink
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('loads the fixture: programs and maps with their kernel shapes, by-name maps pinned under pinRoot', () => {
    expect(a.programs.fx_emit).toMatchObject({ type: BPF_PROG_TYPE_SCHED_CLS });
    expect(a.programs.fx_cg_egress).toMatchObject({ type: BPF_PROG_TYPE_CGROUP_SKB, attachType: BPF_CGROUP_INET_EGRESS });
    expect(a.maps.fx_hash).toMatchObject({ type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 8, maxEntries: 65536 });
    expect(a.maps.fx_pairs).toMatchObject({ keySize: 4, valueSize: 24, maxEntries: 64 });
    expect(a.maps.fx_events).toMatchObject({ type: BPF_MAP_TYPE_RINGBUF, maxEntries: 1 << 20 });
    for (const name of ['fx_hash', 'fx_pairs', 'fx_percpu', 'fx_events']) expect(fs.existsSync(path.join(pinRoot, name))).toBe(true);
    for (const name of ['fx_scratch', 'fx_seq']) expect(fs.existsSync(path.join(pinRoot, name))).toBe(false);
  });

  it('a second openObject reuses the pinned maps (and only those)', () => {
    native.mapUpdate(a.maps.fx_hash.fd, u32(7), u64(0x1122334455667788n));
    native.mapUpdate(a.maps.fx_scratch.fd, u32(7), u64(1));
    const b = load();
    try {
      expect(native.mapLookup(b.maps.fx_hash.fd, u32(7), 8)).toEqual(u64(0x1122334455667788n));
      expect(native.mapLookup(b.maps.fx_scratch.fd, u32(7), 8)).toBeNull(); // not pinned: a new map
      // And the other way round.
      native.mapUpdate(b.maps.fx_hash.fd, u32(8), u64(9));
      expect(native.mapLookup(a.maps.fx_hash.fd, u32(8), 8)).toEqual(u64(9));
    } finally {
      unload(b);
    }
    // The pins outlive the object.
    const fd = native.objGet(path.join(pinRoot, 'fx_hash'));
    expect(native.mapLookup(fd, u32(8), 8)).toEqual(u64(9));
    native.closeFd(fd);
  });

  it('update, lookup, delete and nextKey iteration', () => {
    const fd = a.maps.fx_pairs.fd;
    const pair = (n: number): Buffer => {
      const v = Buffer.alloc(24);
      v.writeUInt32LE(n, 0);
      v.writeUInt16LE(n + 1, 4);
      v.writeUInt8(n + 2, 6);
      v.writeBigUInt64LE(BigInt(n) << 32n, 8);
      v.writeUInt32LE(n * 3, 16);
      return v;
    };
    const keys = [3, 1, 4, 15, 9];
    for (const k of keys) native.mapUpdate(fd, u32(k), pair(k));
    for (const k of keys) expect(native.mapLookup(fd, u32(k), 24)).toEqual(pair(k));
    expect(native.mapLookup(fd, u32(2), 24)).toBeNull();

    const seen: number[] = [];
    for (let key = native.mapNextKey(fd, null, 4); key; key = native.mapNextKey(fd, key, 4)) seen.push(key.readUInt32LE());
    expect(seen.sort((x, y) => x - y)).toEqual([1, 3, 4, 9, 15]);

    const exists = thrown(() => native.mapUpdate(fd, u32(3), pair(0), BPF_NOEXIST));
    expect(exists.code).toBe('EEXIST');
    expect(exists.errno).toBe(-17);
    expect(exists.message).toMatch(/^mapUpdate: File exists/);

    expect(native.mapDelete(fd, u32(4))).toBe(true);
    expect(native.mapDelete(fd, u32(4))).toBe(false);
    expect(native.mapLookup(fd, u32(4), 24)).toBeNull();
    expect(native.mapNextKey(fd, null, 4)).not.toBeNull();
    for (const k of keys) native.mapDelete(fd, u32(k));
    expect(native.mapNextKey(fd, null, 4)).toBeNull(); // empty: the end at once
  });

  it('batch update of 10 000 entries', () => {
    const fd = a.maps.fx_scratch.fd;
    const count = 10_000;
    const keys = Buffer.alloc(count * 4);
    const values = Buffer.alloc(count * 8);
    for (let i = 0; i < count; i++) {
      keys.writeUInt32LE(i + 100, i * 4);
      values.writeBigUInt64LE(BigInt(i) * 3n, i * 8);
    }
    expect(native.mapUpdateBatch(fd, keys, values, count)).toBe(count);
    for (const i of [0, 1, 4999, 9999]) expect(native.mapLookup(fd, u32(i + 100), 8)).toEqual(u64(i * 3));
    let n = 0;
    for (let key = native.mapNextKey(fd, null, 4); key; key = native.mapNextKey(fd, key, 4)) if (key.readUInt32LE() >= 100) n++;
    expect(n).toBe(count);
    expect(native.mapUpdateBatch(fd, Buffer.alloc(0), Buffer.alloc(0), 0)).toBe(0);
    // A kernel refusal is an errno Error: index 9 of a 4-entry array.
    const err = thrown(() => native.mapUpdateBatch(a.maps.fx_percpu.fd, u32(9), Buffer.alloc(8 * native.numPossibleCpus()), 1));
    expect(err.code).toBe('E2BIG');
    expect(err.message).toBe('mapUpdateBatch: Argument list too long');
  });

  it('per-CPU values are numPossibleCpus × round8(value size) bytes', () => {
    const cpus = native.numPossibleCpus();
    expect(cpus).toBeGreaterThanOrEqual(1);
    const fd = a.maps.fx_percpu.fd;
    const value = Buffer.alloc(cpus * 8);
    for (let cpu = 0; cpu < cpus; cpu++) value.writeBigUInt64LE(BigInt(cpu + 10), cpu * 8);
    native.mapUpdate(fd, u32(2), value);
    expect(native.mapLookup(fd, u32(2), cpus * 8)).toEqual(value);
    typeError(() => native.mapLookup(fd, u32(2), cpus * 8 + 8));
    typeError(() => native.mapUpdate(fd, u32(2), Buffer.alloc(8 * cpus - 8)));
  });

  it('bad input throws a TypeError (or an errno Error) and never crashes', () => {
    const fd = a.maps.fx_hash.fd;
    expect(typeError(() => native.mapUpdate(fd, Buffer.alloc(3), u64(1)))).toBe('mapUpdate: key must be 4 bytes, got 3');
    expect(typeError(() => native.mapUpdate(fd, u32(1), Buffer.alloc(4)))).toBe('mapUpdate: value must be 8 bytes, got 4');
    typeError(() => native.mapLookup(fd, Buffer.alloc(8), 8));
    typeError(() => native.mapLookup(fd, u32(1), 4));
    typeError(() => native.mapDelete(fd, Buffer.alloc(0)));
    typeError(() => native.mapNextKey(fd, Buffer.alloc(2), 4));
    typeError(() => native.mapNextKey(fd, null, 8));
    typeError(() => native.mapUpdateBatch(fd, Buffer.alloc(8), Buffer.alloc(8), 2));
    typeError(() => native.mapUpdateBatch(fd, Buffer.alloc(8), Buffer.alloc(16), 3));
    const loose = native as unknown as Record<string, (...args: unknown[]) => unknown>;
    typeError(() => loose.mapUpdate!(fd, 'key', u64(1)));
    typeError(() => loose.mapUpdate!(-1, u32(1), u64(1)));
    typeError(() => loose.mapLookup!(1.5, u32(1), 8));
    typeError(() => loose.openObject!(fixture));
    typeError(() => loose.progTestRun!(a.programs.fx_emit.fd, Buffer.alloc(64), -1));
    typeError(() => new native.RingBuf(a.maps.fx_events.fd, 'not a function' as unknown as () => void));

    // Wrong kinds of fd: errno Errors from the kernel, not crashes.
    const file = fs.openSync(fixture, 'r');
    try {
      expect(thrown(() => native.mapLookup(file, u32(1), 8)).code).toBe('EINVAL');
    } finally {
      fs.closeSync(file);
    }
    expect(() => native.mapUpdate(a.programs.fx_emit.fd, u32(1), u64(1))).toThrow();
    expect(thrown(() => new native.RingBuf(fd, () => {})).message).toMatch(/^RingBuf: ring_buffer__new/);
    expect(thrown(() => native.openObject(path.join(tmp, 'missing.o'), pinRoot)).code).toBe('ENOENT');
    expect(thrown(() => native.objGet(path.join(pinRoot, 'missing'))).code).toBe('ENOENT');
    expect(thrown(() => native.closeObject(987654)).code).toBe('EBADF');
    expect(thrown(() => native.closeFd(fd)).code).toBe('EBUSY'); // an object's fd: closeObject owns it
    expect(native.mapLookup(fd, u32(7), 8)).not.toBeNull(); // and it is still open
  });

  it('a program the verifier rejects: openObject throws with the verifier message', () => {
    const err = thrown(() => native.openObject(bad, pinRoot));
    expect(err.code).toBe('EACCES');
    expect(err.errno).toBe(-13);
    expect(err.message).toContain(`openObject(${bad}): load: Permission denied`);
    expect(err.message).toContain("invalid mem access 'map_value_or_null'");
  });

  it('btfStructs reports a struct layout from the object BTF', () => {
    const structs = native.btfStructs(fixture);
    expect(structs.fx_pair).toEqual({
      size: 24,
      members: [
        { name: 'a', offsetBits: 0, sizeBits: 32 },
        { name: 'b', offsetBits: 32, sizeBits: 16 },
        { name: 'c', offsetBits: 48, sizeBits: 8 },
        { name: 'pad', offsetBits: 56, sizeBits: 8 },
        { name: 'd', offsetBits: 64, sizeBits: 64 },
        { name: 'e', offsetBits: 128, sizeBits: 32 },
        { name: 'pad2', offsetBits: 160, sizeBits: 32 },
      ],
    });
    expect(thrown(() => native.btfStructs(path.join(tmp, 'missing.o'))).code).toBe('ENOENT');
  });

  it('progTestRun returns the program retval and the packet', () => {
    const packet = Buffer.alloc(72, 0);
    for (let i = 14; i < packet.length; i++) packet[i] = i;
    const run = native.progTestRun(a.programs.fx_emit.fd, packet, 1);
    expect(run.retval).toBe(72); // fx_emit returns skb->len
    expect(run.dataOut).toEqual(packet);
    expect(run.durationNs).toBeGreaterThanOrEqual(0);
  });

  it('ring buffer round trip: every event with its bytes, batches of at most 4096, nothing after close()', async () => {
    const seqStart = Number(native.mapLookup(a.maps.fx_seq.fd, u32(0), 8)!.readBigUInt64LE());
    const events: Buffer[] = [];
    const batches: number[] = [];
    const ring = new native.RingBuf(a.maps.fx_events.fd, (samples) => {
      batches.push(samples.length);
      // Earlier tests' runs of fx_emit left events in the (pinned) ring.
      for (const s of samples) if (s.readUInt32LE(0) >= seqStart) events.push(s);
    });
    const total = 5000;
    native.progTestRun(a.programs.fx_emit.fd, Buffer.alloc(60), total);
    await until(() => events.length >= total, `${total} events`);
    // struct fx_event { seq, magic, len, pad }, in order and whole.
    const expected = Array.from({ length: total }, (_, i) => {
      const e = Buffer.alloc(16);
      e.writeUInt32LE(seqStart + i, 0);
      e.writeUInt32LE(FX_MAGIC, 4);
      e.writeUInt32LE(60, 8);
      return e.toString('hex');
    });
    expect(events.map((e) => e.toString('hex'))).toEqual(expected);
    // All 5000 were in the ring before the loop polled: more than one batch.
    expect(Math.max(...batches)).toBeLessThanOrEqual(4096);
    expect(batches.length).toBeGreaterThanOrEqual(2);

    ring.close();
    const callbacks = batches.length;
    native.progTestRun(a.programs.fx_emit.fd, Buffer.alloc(60), 10);
    await sleep(100);
    expect(batches.length).toBe(callbacks);
    ring.close(); // again: harmless

    // close() from inside the callback: no further call, though data remains.
    let calls = 0;
    const ring2 = new native.RingBuf(a.maps.fx_events.fd, () => {
      calls++;
      ring2.close();
    });
    native.progTestRun(a.programs.fx_emit.fd, Buffer.alloc(60), 5000);
    await until(() => calls > 0, 'the first batch');
    await sleep(100);
    expect(calls).toBe(1);
  });

  it('an open RingBuf keeps the process alive; a closed one does not', () => {
    const child = spawnSync(process.execPath, [path.join(FIXTURES, 'ringbuf-child.ts'), path.join(pinRoot, 'fx_events')], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('closed\n');
    expect(child.status).toBe(0);
  });

  // (The suite only runs with a cgroup v2 mount: bpfUnavailableReason checks it.)
  const cgroupRoot = cgroup2Mount();
  it('attachCgroup: created, updated in place by a new load, replaced when on another cgroup or defunct', async () => {
    const cgA = path.join(cgroupRoot!, `sluice-native-test-${process.pid}-a`);
    const cgB = path.join(cgroupRoot!, `sluice-native-test-${process.pid}-b`);
    for (const cg of [cgA, cgB]) {
      fs.mkdirSync(cg);
      cgroups.push(cg);
    }
    const linkPin = path.join(pinRoot, 'links', 'egress');
    // What the pinned link is attached to, as the kernel says.
    const linkState = () => {
      const fd = native.objGet(linkPin);
      try {
        const info = fdinfo(fd);
        return { linkId: info.link_id, progId: info.prog_id, cgroupId: info.cgroup_id, attachType: info.attach_type };
      } finally {
        native.closeFd(fd);
      }
    };
    const progId = (obj: LoadedObject) => fdinfo(obj.programs.fx_cg_egress.fd).prog_id;
    const cgroupId = (cg: string) => String(fs.statSync(cg, { bigint: true }).ino);
    // A process in cgA sends one datagram to the loopback discard port.
    const sendFrom = (cg: string) =>
      execFileSync('bash', ['-c', 'echo $$ > "$1/cgroup.procs" && echo ping > /dev/udp/127.0.0.1/9', 'sender', cg]);

    expect(native.attachCgroup(a.handle, 'fx_cg_egress', cgA, linkPin)).toBe('created');
    const first = linkState();
    expect(first).toMatchObject({ progId: progId(a), cgroupId: cgroupId(cgA), attachType: String(BPF_CGROUP_INET_EGRESS) });
    const before = perCpuSum(a.maps.fx_percpu.fd, 1);
    sendFrom(cgA);
    expect(perCpuSum(a.maps.fx_percpu.fd, 1)).toBeGreaterThan(before); // live: it saw the packet

    // A restarted agent: a new load, the same link switched to its program.
    const c = load();
    expect(progId(c)).not.toBe(progId(a));
    expect(native.attachCgroup(c.handle, 'fx_cg_egress', cgA, linkPin)).toBe('updated');
    expect(linkState()).toEqual({ ...first, progId: progId(c) });
    unload(a); // the link, not the object, keeps the program attached
    a = c;
    const middle = perCpuSum(c.maps.fx_percpu.fd, 1);
    sendFrom(cgA);
    expect(perCpuSum(c.maps.fx_percpu.fd, 1)).toBeGreaterThan(middle);

    // The same pin path for another cgroup: the old link is dropped, a new one made.
    expect(native.attachCgroup(c.handle, 'fx_cg_egress', cgB, linkPin)).toBe('created');
    const moved = linkState();
    expect(moved.cgroupId).toBe(cgroupId(cgB));
    expect(moved.linkId).not.toBe(first.linkId);

    // Its cgroup removed, the link turns defunct (cgroup id 0) but stays
    // pinned; attaching again replaces it.
    fs.rmdirSync(cgB);
    await until(() => linkState().cgroupId === '0', 'the link to turn defunct');
    expect(native.attachCgroup(c.handle, 'fx_cg_egress', cgA, linkPin)).toBe('created');
    expect(linkState()).toMatchObject({ progId: progId(c), cgroupId: cgroupId(cgA) });

    // Something that is not a link at the pin path is left alone.
    expect(thrown(() => native.attachCgroup(c.handle, 'fx_cg_egress', cgA, path.join(pinRoot, 'fx_hash'))).code).toBe('EEXIST');
    expect(thrown(() => native.attachCgroup(c.handle, 'nope', cgA, linkPin)).code).toBe('ENOENT');
  });
});
