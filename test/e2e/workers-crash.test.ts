// `sluice run --workers 2`, a real process, given a version that makes every worker thread exit
// while it reads it — the two serving and each replacement (hooked through the process's own
// inspector, `--inspect=127.0.0.1:0`, before a new thread runs any of its code: no hook in the
// product). After 3 deaths the version is rejected (SLU_VERSION_CRASHED): the
// replacements start on the last good version, /api/config and /readyz stay on it, its answers
// are served, and the next change to the files is applied; the same version again is refused at
// once and listed among the problems (/api/status). Then a version on which only worker 1 exits
// (it and its replacements), served by worker 0 meanwhile: taken back from both once it ended
// worker 1 3 times — /api/config, the answers and the metrics back on the version before it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { versionedRouteYaml } from './backends.ts';
import type { SluiceProcess } from '../support/sluice-process.ts';
import { startWorkersRun, type WorkersRun } from './workers-run.ts';
import { request } from '../dataplane/support/client.ts';
import { exitOnReading, hookWorkersOf, type WorkerHook } from '../support/thread-inspector.ts';
import { waitFor } from '../support/wait.ts';

interface Config {
  version: string;
  workers: { worker: number; version: string | null }[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('sluice run --workers 2: a version that crashes its workers', () => {
  let run: WorkersRun;
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  let hook: WorkerHook | null = null;
  beforeAll(async () => {
    run = await startWorkersRun('workers-crash', 1, { nodeArgs: ['--inspect=127.0.0.1:0'] });
    ({ dir, sluice, port } = run);
  }, 90_000);
  afterAll(async () => {
    await hook?.stop();
    await run?.stop();
  });

  const config = async (): Promise<Config> => (await (await fetch(`${sluice.admin}/api/config`)).json()) as Config;
  const answers = async () => Promise.all(Array.from({ length: 10 }, async () => (await request(port, '/')).headers['x-version']));
  const until = (what: string, done: () => boolean | Promise<boolean>) => waitFor(what, async () => (await done()) || undefined, 30_000);

  it('is rejected after 3 deaths: the last good version keeps serving and stays the one shown; the next change is applied', async () => {
    const first = await config();
    expect(await answers()).toEqual(Array(10).fill('v1'));
    // The process re-executes itself at start (bin/sluice.js): its inspector is the last one named.
    const url = [...sluice.logs().matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1];
    expect(url).toBeDefined();
    // Every worker thread of the process, the ones to come included, exits as it reads a version holding "crash-me".
    hook = await hookWorkersOf(url!, exitOnReading('crash-me'));
    writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(1).replace('value: v1', 'value: crash-me'));
    await until('the version rejected', () => /SLU_VERSION_CRASHED version \S+ ended its workers 3 times \(within 120 s\) while they applied it: rejected; replacements start on \S+, the version served/.test(sluice.logs()));
    await until('both workers back on the last good version', async () => (await config()).workers.every((w) => w.version === first.version));
    expect((await config()).version).toBe(first.version);
    const ready = await fetch(`${sluice.admin}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
    expect(await answers()).toEqual(Array(10).fill('v1'));
    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_worker_versions_rejected_total\{reason="crashed"\} 1$/m);
    // Once per version, however many workers (and replacements) applied or died on it.
    const applies = (text: string) => Object.fromEntries([...text.matchAll(/^sluice_config_applies_total\{result="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    expect(applies(metrics)).toEqual({ applied: 1, rejected: 1 });
    // Listed among the problems from its first rejection (it came as a late apply that gave up), until a version is applied.
    const problems = async () => ((await (await fetch(`${sluice.admin}/api/status`)).json()) as { problems: { code: string; message: string }[] }).problems;
    await until('the first rejection listed', async () => (await problems()).some((p) => p.code === 'SLU_VERSION_CRASHED'));
    expect((await problems()).find((p) => p.code === 'SLU_VERSION_CRASHED')?.message).toBe(`version ${/SLU_VERSION_CRASHED version (\S+) ended/.exec(sluice.logs())?.[1]} ended its workers 3 times (within 120 s) while they applied it; still serving ${first.version}`);
    // No restart loop: the replacements on the last good version stay up.
    const exits = (text: string) => Number(/^sluice_worker_restarts_total\{reason="exit"\} (\d+)$/m.exec(text)?.[1]);
    expect(exits(metrics)).toBeGreaterThanOrEqual(3);
    await sleep(1_500);
    expect(exits(await (await fetch(`${sluice.admin}/metrics`)).text())).toBe(exits(metrics));

    writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(3));
    await until('the next change served by both workers', async () => {
      const now = await config();
      return now.version !== first.version && now.workers.every((w) => w.version === now.version);
    });
    expect(await answers()).toEqual(Array(10).fill('v3'));
    const served = (await config()).version;
    await until('the first rejection resolved', async () => !(await problems()).some((p) => p.code === 'SLU_VERSION_CRASHED'));

    // The crashing version again (the files changed back to it): refused at once — no worker
    // ends — and listed among the problems until a version is applied.
    writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(1).replace('value: v1', 'value: crash-me'));
    await until('the refusal listed', async () => (await problems()).some((p) => p.code === 'SLU_VERSION_CRASHED'));
    expect((await problems()).find((p) => p.code === 'SLU_VERSION_CRASHED')?.message).toMatch(/^version \S+ ended its workers 3 times before: not sent again; still serving \S+$/);
    expect((await config()).version).toBe(served);
    const later = await (await fetch(`${sluice.admin}/metrics`)).text();
    expect(exits(later)).toBe(exits(metrics));
    expect(applies(later)).toEqual({ applied: 2, rejected: 2 });
    expect(await answers()).toEqual(Array(10).fill('v3'));
    writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(4));
    await until('a newer version applied, the problem resolved', async () => (await config()).version !== served && !(await problems()).some((p) => p.code === 'SLU_VERSION_CRASHED'));
  }, 120_000);

  it('a version that crashes only worker 1 is taken back from both once it ended worker 1 3 times: answers, /api/config and metrics on the version before it', async () => {
    const before = await config();
    expect(await answers()).toEqual(Array(10).fill('v4'));
    const url = [...sluice.logs().matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1];
    // Worker 1's threads only.
    const one = await hookWorkersOf(url!, exitOnReading('crash-one', 1));
    try {
      writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(5).replace('value: v5', 'value: crash-one'));
      // Requests go on the whole time, one at a time: only one in flight when the first worker 1
      // dies can fail with it (its replacements die before they bind); worker 0 answers the rest.
      const seen: string[] = [];
      const failures: string[] = [];
      const problems = async () => ((await (await fetch(`${sluice.admin}/api/status`)).json()) as { problems: { code: string; message: string }[] }).problems;
      await waitFor('the version taken back and listed', async () => {
        // Not `instanceof Error`: an error made by Node's core is of another realm than jest's test code.
        const r = await request(port, '/', { timeoutMs: 5_000 }).then((response) => response, (error: Error) => ({ failed: error.message }));
        if ('failed' in r) failures.push(r.failed);
        else seen.push(String(r.headers['x-version']));
        const now = await config();
        return (now.version === before.version && now.workers.every((w) => w.version === before.version) && (await problems()).some((p) => p.code === 'SLU_VERSION_CRASHED')) || undefined;
      }, 30_000);
      expect(failures.length).toBeLessThanOrEqual(1);
      expect(seen).toContain('crash-one');
      expect(seen.at(-1)).toBe('v4');
      expect(await answers()).toEqual(Array(10).fill('v4'));
      const line = /SLU_VERSION_CRASHED version (\S+) ended its workers 3 times \(within 120 s\) while they applied it: rejected; every worker goes back to (\S+), the version served before it/.exec(sluice.logs());
      expect(line?.[2]).toBe(before.version);
      expect((await problems()).find((p) => p.code === 'SLU_VERSION_CRASHED')?.message).toBe(`version ${line?.[1]} ended its workers 3 times before: not sent again; still serving ${before.version}`);
      const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
      expect(metrics).toMatch(/^sluice_worker_versions_rejected_total\{reason="crashed"\} 2$/m);
      expect([...metrics.matchAll(/^sluice_config_version_info\{version="([^"]+)"\} 1$/gm)].map((m) => m[1])).toEqual([before.version]);

      writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(6));
      await until('a newer version served by both, the problem resolved', async () => {
        const now = await config();
        return now.version !== before.version && now.workers.every((w) => w.version === now.version) && !(await problems()).some((p) => p.code === 'SLU_VERSION_CRASHED');
      });
      expect(await answers()).toEqual(Array(10).fill('v6'));
    } finally {
      await one.stop();
    }
  }, 120_000);
});
