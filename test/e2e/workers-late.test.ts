// `sluice run --workers 2`, a real process whose two worker threads get stuck (blocked through
// the process's own inspector, `--inspect=127.0.0.1:0`: a thread that really does not turn its
// event loop) just as a change arrives. Neither acknowledges the version within the 30 s bound,
// the watchdog ends both, their replacements start on the newest version — and the process takes
// it: /api/config and /readyz converge on it without another change to the files. Meanwhile it is
// listed in /api/status with its stable code (SLU_VERSION_LATE), resolved once served.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { versionedRouteYaml } from './backends.ts';
import type { SluiceProcess } from '../support/sluice-process.ts';
import { startWorkersRun, type WorkersRun } from './workers-run.ts';
import { request } from '../dataplane/support/client.ts';
import { inspectWorkersOf, type InspectedThread } from '../support/thread-inspector.ts';

interface Config {
  version: string;
  workers: { worker: number; version: string | null }[];
}

describe('sluice run --workers 2: a version the workers serve only after the bounded wait', () => {
  let run: WorkersRun;
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  let threads: InspectedThread[] = [];
  beforeAll(async () => {
    run = await startWorkersRun('workers-late', 1, { nodeArgs: ['--inspect=127.0.0.1:0'] });
    ({ dir, sluice, port } = run);
  }, 90_000);
  afterAll(async () => {
    for (const thread of threads) await thread.detach();
    await run?.stop();
  });

  const config = async (): Promise<Config> => (await (await fetch(`${sluice.admin}/api/config`)).json()) as Config;

  it('/api/config and /readyz converge on it once the workers serve it (here their replacements: the watchdog ended both stuck threads)', async () => {
    const first = await config();
    expect(first.workers.map((w) => w.version)).toEqual([first.version, first.version]);
    // The process re-executes itself at start (bin/sluice.js): its inspector is the last one named.
    const url = [...sluice.logs().matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1];
    expect(url).toBeDefined();
    threads = await inspectWorkersOf(url!, 2);
    await Promise.all(threads.map((t) => t.block(120_000)));
    writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(2));
    // Stuck: the change is not served, and the version shown stays the one every worker serves.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect((await config()).version).toBe(first.version);
    const deadline = Date.now() + 60_000;
    let now = first;
    while (Date.now() < deadline) {
      now = await config();
      if (now.version !== first.version && now.workers.every((w) => w.version === now.version)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(now.version).not.toBe(first.version);
    expect(now.workers).toEqual([{ worker: 0, version: now.version }, { worker: 1, version: now.version }]);
    const ready = await fetch(`${sluice.admin}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
    // What it says is what is served: the new route's answers, from either worker.
    const versions = await Promise.all(Array.from({ length: 10 }, async () => (await request(port, '/')).headers['x-version']));
    expect(versions).toEqual(Array(10).fill('v2'));
    // How it got there is in the log: the version failed first, then was taken.
    expect(sluice.logs()).toMatch(/has answered nothing for \d+ ms \(its thread is stuck\)/);
    expect(sluice.logs()).toMatch(/every worker serves version \S+ now \(applied late\)/);
    // Listed meanwhile with its stable code (the problem log's line), and resolved once served.
    expect(sluice.logs()).toMatch(new RegExp(`"SLU_VERSION_LATE no worker applied version ${now.version}: worker 0: [^"]+; still serving ${first.version} until every worker serves it"`));
    expect(sluice.logs()).toMatch(new RegExp(`"resolved: SLU_VERSION_LATE no worker applied version ${now.version}: `));
    const problems = ((await (await fetch(`${sluice.admin}/api/status`)).json()) as { problems: { code: string }[] }).problems;
    expect(problems.map((p) => p.code)).not.toContain('SLU_VERSION_LATE');
  }, 120_000);
});
