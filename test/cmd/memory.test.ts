// Memory settings every Sluice process gets (README "Memory"), checked on a real `sluice run`
// serving the benchmark's 50-rule table: bin/sluice.js starts the process with a bounded young
// generation (--max-semi-space-size, SLUICE_MAX_SEMI_SPACE_MB), and once the first version is
// served a memory-reducing GC gives back what start-up grew (cmd/memory.ts).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchManifests } from '../bench/manifests.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { describeIfPossible } from '../support/suite.ts';
import { waitFor } from '../support/wait.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MB = 1024 * 1024;

/** The node flags the process runs with now (after bin/sluice.js replaced itself), from /proc. */
function commandLine(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

/** prom-client's default metric: the committed size of one V8 heap space, bytes. */
async function heapSpaceBytes(admin: string, space: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const line = new RegExp(`^sluice_process_nodejs_heap_space_size_total_bytes\\{space="${space}"\\} (\\d+)`, 'm').exec(text);
  if (!line) throw new Error(`no heap space ${space} in /metrics`);
  return Number(line[1]);
}

describeIfPossible('sluice run memory settings', process.platform === 'linux' ? null : 'reads /proc/PID/cmdline (Linux only)')('sluice run memory settings', () => {
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-memory-'));
    writeFileSync(join(dir, 'bench.yaml'), benchManifests(await freePort()).yaml);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** `sluice run` on the table, with these variables set (undefined: unset). */
  async function start(vars: Record<string, string | undefined>): Promise<SluiceProcess> {
    const env = { ...process.env, ...vars };
    for (const [k, v] of Object.entries(vars)) if (v === undefined) delete env[k];
    return startSluice(['--manifests', dir, '--listener-port-offset', String((await freePort()) - 80)], 15000, { env });
  }

  it('runs with a 32 MB semi-space and gives back the young generation start-up grew', async () => {
    const sluice = await start({ SLUICE_MAX_SEMI_SPACE_MB: undefined, NODE_OPTIONS: undefined });
    try {
      expect(commandLine(sluice.pid)).toContain('--max-semi-space-size=32');
      // Start-up grows the young generation to 32 MB with this table; after the GC it is V8's minimum (1 MB).
      const young = await waitFor('the young generation to shrink', async () => {
        const bytes = await heapSpaceBytes(sluice.admin, 'new');
        return bytes <= 2 * MB ? bytes : undefined;
      });
      expect(young).toBeLessThanOrEqual(2 * MB);
    } finally {
      await sluice.stop();
    }
  });

  it("SLUICE_MAX_SEMI_SPACE_MB=0 leaves V8's sizing; a semi-space size given to Node is kept", async () => {
    const own = await start({ SLUICE_MAX_SEMI_SPACE_MB: '0', NODE_OPTIONS: undefined });
    try {
      expect(commandLine(own.pid).some((a) => a.startsWith('--max-semi-space-size'))).toBe(false);
    } finally {
      await own.stop();
    }
    const given = await start({ SLUICE_MAX_SEMI_SPACE_MB: undefined, NODE_OPTIONS: '--max-semi-space-size=8' });
    try {
      // Not replaced by a process with Sluice's size: NODE_OPTIONS keeps the user's.
      expect(commandLine(given.pid).some((a) => a.startsWith('--max-semi-space-size'))).toBe(false);
      expect(readFileSync(`/proc/${given.pid}/environ`, 'utf8').split('\0')).toContain('NODE_OPTIONS=--max-semi-space-size=8');
    } finally {
      await given.stop();
    }
  });

  it('refuses a SLUICE_MAX_SEMI_SPACE_MB that is not a number of MB', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'sluice.js'), '--version'], { env: { ...process.env, SLUICE_MAX_SEMI_SPACE_MB: '32m' }, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('SLUICE_MAX_SEMI_SPACE_MB must be a whole number of MB');
  });
});

/**
 * A Node process with a large live heap (as a large configuration leaves) runs the start-up GC,
 * then promotes a third of that heap in garbage (arrays large enough to be allocated in the old
 * generation, as an edit's lists of every route are): the number of full GCs that garbage caused.
 * `nodeArgs`: more flags on Node's command line; `expectOne`: wait for a full GC to end (10 s at most).
 */
function fullGcsAfterStartup(nodeArgs: string[], expectOne = false): number {
  const script = `
    import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
    import { releaseStartupMemory } from ${JSON.stringify(join(ROOT, 'cmd', 'memory.ts'))};
    const live = [];
    for (let i = 0; i < 1_200_000; i++) live.push({ n: i, list: [i] });
    const liveMb = process.memoryUsage().heapUsed / 1048576;
    const fullStarts = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullStarts.push(e.startTime);
    }).observe({ entryTypes: ['gc'] });
    releaseStartupMemory();
    // It runs in the next setImmediate, synchronously.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const from = performance.now();
    // 50 000 small integers: 200 KB, allocated in the old generation's large-object space.
    let last = null;
    for (let i = 0; i < Math.ceil(liveMb / 3 / 0.2); i++) last = new Array(50_000).fill(i);
    // A full GC is counted when it ends: marking runs concurrently and, on a loaded machine, ends
    // well after the garbage was made (none seen 300 ms later at load 8 + nice 5 with 5 %). One
    // expected is waited for (10 s at most); where none is, 300 ms.
    const counted = () => fullStarts.filter((t) => t >= from).length;
    for (const until = performance.now() + (${JSON.stringify(expectOne)} ? 10_000 : 300); counted() === 0 && performance.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 50));
    process.stdout.write(JSON.stringify({ full: counted(), live: live.length, last: last.length }));
  `;
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', ...nodeArgs, '--input-type=module', '-e', script], { env, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`the script failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { full: number }).full;
}

describe('heap growth after the start-up GC', () => {
  it('leaves room for a third of the live heap before the next full GC (a reducing GC alone leaves a tenth)', () => {
    expect(fullGcsAfterStartup([])).toBe(0);
  });

  it('keeps a --heap-growing-percent the user gave Node (the control: that small growth collects the garbage)', () => {
    expect(fullGcsAfterStartup(['--heap-growing-percent=5'], true)).toBeGreaterThanOrEqual(1);
  });
});
