// Compares V8 heap snapshots (as the soak writes them with --heap-snapshots) by constructor: the
// count and self size of every object kind in each snapshot, and the kinds whose count grew the
// most from the first to the last. A leak shows as a kind that keeps growing from snapshot to
// snapshot; a plateau as counts that stay level while RSS was still settling.
//
//   node --max-old-space-size=8192 test/bench/heap-diff.ts A.heapsnapshot B.heapsnapshot [C ...] [--top 25]
//
// Self sizes only (no retained sizes: those need the dominator tree, and a growing count of one
// kind is what points at a leak; DevTools shows the retainers once you know what to look for).

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

/** The parts of the .heapsnapshot JSON this reads (V8's format: flat node array + field names). */
interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

interface KindTotals {
  count: number;
  selfSize: number;
}

/** Strings, code and the like are grouped by node type; objects and closures by constructor or function name. */
const NAMED_TYPES = new Set(['object', 'closure', 'native', 'array', 'hidden', 'object shape']);

export function summarize(file: HeapSnapshotFile): Map<string, KindTotals> {
  const fields = file.snapshot.meta.node_fields;
  const types = file.snapshot.meta.node_types[0];
  const stride = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const totals = new Map<string, KindTotals>();
  for (let i = 0; i < file.nodes.length; i += stride) {
    const type = types[file.nodes[i + typeAt]!] ?? 'unknown';
    const key = NAMED_TYPES.has(type) ? `${type}:${file.strings[file.nodes[i + nameAt]!]}` : `(${type})`;
    const entry = totals.get(key) ?? { count: 0, selfSize: 0 };
    entry.count++;
    entry.selfSize += file.nodes[i + sizeAt]!;
    totals.set(key, entry);
  }
  return totals;
}

function main(): void {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
  if (positionals.length < 2) {
    console.error('usage: heap-diff.ts A.heapsnapshot B.heapsnapshot [C ...] [--top N]');
    process.exit(2);
  }
  const summaries = positionals.map((path) => {
    const totals = summarize(JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshotFile);
    const all = [...totals.values()].reduce((sum, t) => ({ count: sum.count + t.count, selfSize: sum.selfSize + t.selfSize }), { count: 0, selfSize: 0 });
    console.log(`${basename(path)}: ${all.count} objects, ${(all.selfSize / 1024 / 1024).toFixed(1)} MiB self size`);
    return totals;
  });
  const first = summaries[0]!;
  const last = summaries.at(-1)!;
  const keys = new Set([...first.keys(), ...last.keys()]);
  const growth = [...keys]
    .map((key) => ({ key, counts: summaries.map((s) => s.get(key)?.count ?? 0), sizes: summaries.map((s) => s.get(key)?.selfSize ?? 0) }))
    .sort((a, b) => b.sizes.at(-1)! - b.sizes[0]! - (a.sizes.at(-1)! - a.sizes[0]!));
  const kib = (bytes: number): string => `${(bytes / 1024).toFixed(0)} KiB`;
  console.log(`\nlargest growth of self size, first -> last snapshot (counts and sizes per snapshot):`);
  for (const g of growth.slice(0, Number(values.top))) {
    console.log(`  ${g.key.slice(0, 60).padEnd(60)} count ${g.counts.join(' -> ')}   size ${g.sizes.map(kib).join(' -> ')}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
