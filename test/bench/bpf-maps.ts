// Map write rates through the libbpf addon (bpf/native): single mapUpdate calls
// and mapUpdateBatch, on a 60k-entry hash map (u32 -> 8 bytes), the fixture's
// unpinned fx_scratch (test/bpf/native/fixture.bpf.c). Prints figures, asserts
// nothing, and exits 0 with the reason when BPF cannot be used here.
//
//   node test/bench/bpf-maps.ts [--rounds 5]

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { machine, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bpfUnavailableReason } from '../../bpf/agent/environment.ts';
import { loadNative } from '../../bpf/native/index.ts';

const ENTRIES = 60_000;
const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const rounds = Math.max(1, Number(args.rounds));

function unavailable(): string | null {
  const why = bpfUnavailableReason();
  if (why) return why;
  if (spawnSync('clang', ['--version']).status !== 0) return 'clang is missing (it compiles the fixture)';
  const loaded = loadNative();
  return 'reason' in loaded ? loaded.reason : null;
}

const why = unavailable();
if (why) {
  console.log(`bpf-maps bench skipped: ${why}`);
  process.exit(0);
}
const { native } = loadNative() as Extract<ReturnType<typeof loadNative>, { native: unknown }>;

const tmp = mkdtempSync(join(tmpdir(), 'sluice-bpf-bench-'));
const pinRoot = `/sys/fs/bpf/sluice-bench-${process.pid}`;
let handle: number | undefined;
try {
  const object = join(tmp, 'fixture.o');
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${machine()}-linux-gnu`, '-c', join(import.meta.dirname, '..', 'bpf', 'native', 'fixture.bpf.c'), '-o', object]);
  const loaded = native.openObject(object, pinRoot);
  handle = loaded.handle;
  const fd = loaded.maps.fx_scratch!.fd;

  const keys = Buffer.alloc(ENTRIES * 4);
  const values = Buffer.alloc(ENTRIES * 8);
  for (let i = 0; i < ENTRIES; i++) {
    keys.writeUInt32LE(i, i * 4);
    values.writeBigUInt64LE(BigInt(i), i * 8);
  }
  // One Buffer per entry, made up front so the loop times only the calls.
  const keyOf = Array.from({ length: ENTRIES }, (_, i) => keys.subarray(i * 4, i * 4 + 4));
  const valueOf = Array.from({ length: ENTRIES }, (_, i) => values.subarray(i * 8, i * 8 + 8));
  const clear = () => {
    for (const k of keyOf) native.mapDelete(fd, k);
  };
  const rate = (count: number, fn: () => void): number => {
    const start = process.hrtime.bigint();
    fn();
    return count / (Number(process.hrtime.bigint() - start) / 1e9);
  };

  const figures: Record<string, number[]> = { 'mapUpdate, new keys': [], 'mapUpdate, existing keys': [], 'mapLookup': [], 'mapUpdateBatch, new keys': [], 'mapUpdateBatch, existing keys': [] };
  for (let round = 0; round < rounds; round++) {
    clear();
    figures['mapUpdate, new keys']!.push(rate(ENTRIES, () => { for (let i = 0; i < ENTRIES; i++) native.mapUpdate(fd, keyOf[i]!, valueOf[i]!); }));
    figures['mapUpdate, existing keys']!.push(rate(ENTRIES, () => { for (let i = 0; i < ENTRIES; i++) native.mapUpdate(fd, keyOf[i]!, valueOf[i]!); }));
    figures['mapLookup']!.push(rate(ENTRIES, () => { for (let i = 0; i < ENTRIES; i++) native.mapLookup(fd, keyOf[i]!, 8); }));
    clear();
    figures['mapUpdateBatch, new keys']!.push(rate(ENTRIES, () => native.mapUpdateBatch(fd, keys, values, ENTRIES)));
    figures['mapUpdateBatch, existing keys']!.push(rate(ENTRIES, () => native.mapUpdateBatch(fd, keys, values, ENTRIES)));
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const k = (n: number) => `${Math.round(n / 1000)}k`;
  console.log(`BPF hash map, u32 -> 8 bytes, ${ENTRIES} entries, ${rounds} rounds (per second: median, min-max)`);
  for (const [name, xs] of Object.entries(figures)) {
    console.log(`  ${name.padEnd(32)} ${k(median(xs)).padStart(6)}/s   (${k(Math.min(...xs))}-${k(Math.max(...xs))})`);
  }
} finally {
  if (handle !== undefined) native.closeObject(handle);
  rmSync(pinRoot, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
}
