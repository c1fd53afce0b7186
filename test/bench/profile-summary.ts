// Summarises a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, self time by
// area (dataplane, controller, undici, fastify, Node internals, native/GC/idle), and the
// project's own functions by inclusive time. Given a window (monotonic microseconds), only the
// samples inside it count: the measured load, not start-up.
//
//   node test/bench/profile-summary.ts FILE.cpuprofile [--top 25]

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  name: string;
  location: string;
  area: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  /** Whether only the given load window was summarised. */
  window: boolean;
  totalMs: number;
  /** Total minus idle: the time the process was actually on the CPU (or in GC). */
  busyMs: number;
  topSelf: FunctionTime[];
  areas: { area: string; ms: number; percent: number }[];
  /** dataplane/, controller/ and test/bench/ functions by inclusive (self + callees) time. */
  ownInclusive: FunctionTime[];
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function location(frame: CallFrame): string {
  let url = frame.url;
  if (url.startsWith('file://')) {
    try {
      url = relative(ROOT, fileURLToPath(url));
    } catch {
      // leave as is
    }
  }
  if (!url) return '';
  return `${url}:${frame.lineNumber + 1}`;
}

export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)') return 'program (native, unattributed)';
    return 'native (bindings, builtins)';
  }
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (url.includes('/node_modules/fastify') || url.includes('/node_modules/@fastify/') || url.includes('/node_modules/avvio') || url.includes('/node_modules/find-my-way') || url.includes('/node_modules/light-my-request')) return 'fastify';
  if (url.includes('/node_modules/pino') || url.includes('/node_modules/sonic-boom')) return 'pino';
  if (url.includes('/node_modules/prom-client')) return 'prom-client';
  if (url.includes('/node_modules/')) return 'other node_modules';
  if (url.includes('/dataplane/')) return 'sluice dataplane/';
  if (url.includes('/controller/')) return 'sluice controller/';
  if (url.includes('/test/bench/')) return 'bench harness';
  if (url.startsWith('node:internal/streams') || url.startsWith('node:stream')) return 'node streams';
  if (url.startsWith('node:_http') || url.startsWith('node:http') || url.startsWith('node:internal/http')) return 'node http';
  if (url.startsWith('node:net') || url.startsWith('node:internal/net') || url.startsWith('node:internal/stream_base')) return 'node net';
  if (url.startsWith('node:')) return 'node other';
  return 'other';
}

/** A time window in the profile's clock (CLOCK_MONOTONIC microseconds, as `process.hrtime`). */
export interface Window {
  startUs: number;
  endUs: number;
}

/** Project code worth an inclusive breakdown: Sluice itself, and the bench's own forwarder. */
function isOwnCode(url: string): boolean {
  return url.includes('/dataplane/') || url.includes('/controller/') || url.includes('/test/bench/');
}

export function summarise(profile: CpuProfile, top = 25, window: Window | null = null): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (frame: CallFrame): string => `${frame.functionName || '(anonymous)'}\u0000${location(frame)}`;
  const self = new Map<string, { frame: CallFrame; us: number }>();
  const inclusive = new Map<string, { frame: CallFrame; us: number }>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  // Only the load window, when the samples' clock covers it (else the whole profile).
  const inWindow = window !== null && profile.startTime <= window.endUs && profile.endTime >= window.startUs;
  let timestamp = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time since the previous sample; attribute it to this sample's stack.
    const us = Math.max(0, profile.timeDeltas[i] ?? 0);
    timestamp += profile.timeDeltas[i] ?? 0;
    if (inWindow && (timestamp < window.startUs || timestamp > window.endUs)) continue;
    const node = byId.get(profile.samples[i]);
    if (!node) continue;
    total += us;
    const frame = node.callFrame;
    if (frame.functionName === '(idle)') idle += us;
    const key = keyOf(frame);
    const entry = self.get(key) ?? { frame, us: 0 };
    entry.us += us;
    self.set(key, entry);
    const area = areaOf(frame);
    areas.set(area, (areas.get(area) ?? 0) + us);
    // Inclusive: each function once per sample, however often it recurses.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!isOwnCode(f.url)) continue;
      const k = keyOf(f);
      if (seen.has(k)) continue;
      seen.add(k);
      const e = inclusive.get(k) ?? { frame: f, us: 0 };
      e.us += us;
      inclusive.set(k, e);
    }
  }
  const busy = total - idle;
  const pct = (us: number): number => (busy > 0 ? (100 * us) / busy : 0);
  const toTime = ({ frame, us }: { frame: CallFrame; us: number }): FunctionTime => ({
    name: frame.functionName || '(anonymous)',
    location: location(frame),
    area: areaOf(frame),
    ms: us / 1000,
    percent: pct(us),
  });
  return {
    window: inWindow,
    totalMs: total / 1000,
    busyMs: busy / 1000,
    topSelf: [...self.values()].filter((e) => e.frame.functionName !== '(idle)').sort((a, b) => b.us - a.us).slice(0, top).map(toTime),
    areas: [...areas.entries()].filter(([a]) => a !== 'idle').sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, ms: us / 1000, percent: pct(us) })),
    ownInclusive: [...inclusive.values()].sort((a, b) => b.us - a.us).slice(0, top).map(toTime),
  };
}

export function formatSummary(summary: ProfileSummary): string {
  const lines: string[] = [];
  const idlePct = summary.totalMs > 0 ? (100 * (summary.totalMs - summary.busyMs)) / summary.totalMs : 0;
  lines.push(
    `profile: ${(summary.totalMs / 1000).toFixed(1)} s sampled (${summary.window ? 'the measured load only' : 'whole process life, start-up included'}), ` +
      `${idlePct.toFixed(1)}% idle; percentages below are of the busy time`,
  );
  lines.push('');
  lines.push('self time by area:');
  for (const a of summary.areas) lines.push(`  ${a.percent.toFixed(1).padStart(5)}%  ${msText(a.ms)}  ${a.area}`);
  lines.push('');
  lines.push('top functions by self time:');
  for (const f of summary.topSelf) lines.push(`  ${f.percent.toFixed(1).padStart(5)}%  ${msText(f.ms)}  ${f.name}  ${f.location}  [${f.area}]`);
  lines.push('');
  if (summary.ownInclusive.length > 0) lines.push('project functions by inclusive time (self + callees):');
  for (const f of summary.ownInclusive) lines.push(`  ${f.percent.toFixed(1).padStart(5)}%  ${msText(f.ms)}  ${f.name}  ${f.location}`);
  return lines.join('\n');
}

/** Milliseconds beside the percentage: a short window (one manifest edit) reads better in time. */
function msText(ms: number): string {
  return `${ms.toFixed(1).padStart(8)} ms`;
}

export function summariseFile(file: string, top = 25, window: Window | null = null): ProfileSummary {
  return summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top, window);
}

/**
 * The profile of the process that served, in a folder `node --cpu-prof` wrote to: bin/sluice.js
 * replaces itself (execve) at start and each image writes a profile, so the one written last.
 */
export function lastProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
  return files.sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs).at(-1);
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const topIndex = args.indexOf('--top');
  const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
  const file = args.find((a, i) => !a.startsWith('--') && (topIndex < 0 || i !== topIndex + 1));
  if (!file) {
    process.stderr.write('usage: node test/bench/profile-summary.ts FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  process.stdout.write(`${formatSummary(summariseFile(file, top))}\n`);
}

/** CLOCK_MONOTONIC in microseconds: the clock V8 stamps .cpuprofile samples with (for a Window). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
