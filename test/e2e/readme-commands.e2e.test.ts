// The README's commands, run exactly as written: the Examples table's `run` commands (`npm start`
// for the quickstart, `npx sluice run …` for the others) all at once, side by side as the README
// promises, then every request of the quickstart and Examples blocks, each answer compared with the
// one the README shows in its comment. Everything is parsed out of README.md, so editing a command
// or an answer there without making it true fails here.
//
// The commands use the README's fixed ports: each is checked free first, so a port taken on this
// machine fails the test with a line naming it (not a confusing answer from someone else's server).
// They run in a copy of the checkout (sources and examples, node_modules linked), so the
// certificates `--demo-backends` writes stay out of the checkout, and no eBPF objects are found
// there: the default `--bpf auto` then stays in userspace instead of attaching to the machine.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { userShellEnv } from '../support/user-shell.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** A shell command of a README block and the answer its comment shows. */
interface Check {
  command: string;
  answer: string;
}

interface Example {
  folder: string;
  run: string;
  ports: number[];
  adminAddress: string;
  checks: Check[];
}

function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README.md has no "## ${title}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

function shellBlocks(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** Commands with their answers: `command   # answer`, or the answer on the next line, indented. */
function checksOf(block: string): Check[] {
  const checks: Check[] = [];
  for (const line of block.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue; // blank, or the block's title
    const continuation = /^\s+#\s(.*)$/.exec(line);
    if (continuation) {
      const last = checks.at(-1);
      if (!last || last.answer) throw new Error(`README: an answer with no command before it: ${line}`);
      last.answer = continuation[1]!.trim();
      continue;
    }
    const withAnswer = /^(.*?)\s+#\s(.*)$/.exec(line);
    checks.push(withAnswer ? { command: withAnswer[1]!, answer: withAnswer[2]!.trim() } : { command: line, answer: '' });
  }
  for (const c of checks) if (!c.answer) throw new Error(`README: no answer shown for ${c.command}`);
  return checks;
}

/** The Examples table, with each row's requests (the quickstart's block, or the block titled `# <folder>`). */
function examplesOfReadme(): Example[] {
  const examples = section('Examples');
  const rows = examples.split('\n').filter((l) => l.startsWith('| `examples/'));
  if (rows.length === 0) throw new Error('README: the Examples table has no rows');
  const blocks = shellBlocks(examples);
  return rows.map((row) => {
    const cells = row.replace(/^\| | \|$/g, '').split(' | ').map((c) => c.replaceAll('`', '').trim());
    const [folder, , run, portsCell] = cells as [string, string, string, string];
    const ports = [...portsCell.matchAll(/\d+/g)].map((m) => Number(m[0]));
    const admin = /admin (\d+)/.exec(portsCell)?.[1];
    if (!admin) throw new Error(`README: no admin port in the Examples row of ${folder}`);
    const name = folder.replace(/\/$/, '');
    const block = name === 'examples/quickstart' ? shellBlocks(section('Quickstart'))[0] : blocks.find((b) => b.startsWith(`# ${name} `) || b.startsWith(`# ${name}\n`));
    if (!block) throw new Error(`README: no requests shown for ${name}`);
    return { folder: name, run, ports, adminAddress: `127.0.0.1:${admin}`, checks: checksOf(block) };
  });
}

/** Compares a command's output with the README's answer; an answer of no known shape fails. */
function expectAnswer(output: string, answer: string): void {
  let m: RegExpExecArray | null;
  if ((m = /^(\d{3}) ×(\d+), then (\d{3}) ×(\d+)/.exec(answer))) {
    const expected = [...Array<string>(Number(m[2])).fill(m[1]!), ...Array<string>(Number(m[4])).fill(m[3]!)];
    expect(output.trim().split(/\s+/)).toEqual(expected);
  } else if ((m = /^(\d+) answers from ([\w-]+), (\d+) from ([\w-]+)/.exec(answer))) {
    const pods = output.trim().split('\n');
    expect(pods.filter((l) => l.includes(`"pod": "${m![2]}-`))).toHaveLength(Number(m[1]));
    expect(pods.filter((l) => l.includes(`"pod": "${m![4]}-`))).toHaveLength(Number(m[3]));
    expect(pods).toHaveLength(Number(m[1]) + Number(m[3]));
  } else if ((m = /^"pod": "([\w-]+)…"/.exec(answer))) {
    expect(output).toContain(`"pod": "${m[1]}`);
  } else if ((m = /^pod ([\w-]+)…/.exec(answer))) {
    // A pod name picked out of a binary (gRPC) answer: the output is that name.
    expect(output.trim()).toMatch(new RegExp(`^${m[1]}[\\w-]*$`));
  } else if ((m = /^(grpc-status: \d+)/.exec(answer))) {
    expect(output.trim()).toBe(m[1]);
  } else if ((m = /^(\d{3})(?: (https?:\/\/\S+))?(?:[:\s]|$)/.exec(answer))) {
    expect(output.trim()).toBe(m[2] ? `${m[1]} ${m[2]}` : m[1]);
  } else if (answer.startsWith('{')) {
    // `{"kind": "List", "items": …}`: those keys, literal values equal.
    const body = JSON.parse(output) as Record<string, unknown>;
    for (const [, key, literal] of answer.matchAll(/"(\w+)": ("[^"]*"|…)/g)) {
      expect(body).toHaveProperty(key!);
      if (literal !== '…') expect(body[key!]).toBe(JSON.parse(literal!));
    }
  } else {
    throw new Error(`README: an answer this test cannot check (give it a known shape): ${answer}`);
  }
}

/** Resolves when nothing listens on 127.0.0.1:port; else rejects naming the port. */
function expectFree(port: number, owner: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err) => reject(new Error(`port ${port} (${owner}, fixed in README.md) is taken on this machine: ${(err as Error).message}`)));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/** Sources, the demo backends, examples and package files of the checkout (as they are now), node_modules linked. */
function copyOfCheckout(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-readme-'));
  const files = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\n');
  for (const file of files) {
    if (!file || !/^(bin|cmd|ir|controller|dataplane|bpf|examples|test\/support\/demo)\/|^package(-lock)?\.json$/.test(file) || file.includes('/generated-')) continue;
    mkdirSync(join(dir, dirname(file)), { recursive: true });
    try {
      copyFileSync(join(ROOT, file), join(dir, file));
    } catch {
      // listed but deleted in the working tree: the checkout does not have it either
    }
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

interface Running {
  example: Example;
  child: ChildProcess;
  output: () => string;
}

function start(example: Example, cwd: string): Running {
  // Its own process group: `npm start` is npm → sh → node, and stopping must reach all of them.
  const child = spawn('sh', ['-c', example.run], { cwd, env: userShellEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return { example, child, output: () => output };
}

async function untilReady(running: Running, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (running.child.exitCode !== null) throw new Error(`\`${running.example.run}\` exited with ${running.child.exitCode}:\n${running.output()}`);
    try {
      if ((await fetch(`http://${running.example.adminAddress}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`\`${running.example.run}\` not ready after ${timeoutMs} ms:\n${running.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stop(running: Running): Promise<void> {
  const { child } = running;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(-child.pid!, 'SIGTERM');
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

const examples = examplesOfReadme();

describe('README commands, as written', () => {
  let dir: string;
  const running: Running[] = [];

  beforeAll(async () => {
    // The README promises they all run at once: no port of one row is another's.
    const owners = new Map<number, string>();
    for (const e of examples) for (const p of e.ports) {
      if (owners.has(p)) throw new Error(`README: port ${p} is listed for ${owners.get(p)} and ${e.folder}`);
      owners.set(p, e.folder);
    }
    for (const [port, owner] of owners) await expectFree(port, owner);
    dir = copyOfCheckout();
    for (const e of examples) running.push(start(e, dir));
    await Promise.all(running.map((r) => untilReady(r, 90_000)));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(running.map(stop));
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('lists the quickstart and every example folder', () => {
    expect(examples.map((e) => e.folder)).toEqual(['examples/quickstart', 'examples/ingress', 'examples/rate-limit', 'examples/backend-tls', 'examples/grpc', 'examples/l4']);
  });

  describe.each(examples.map((e) => [e.folder, e] as const))('%s', (_folder, example) => {
    it.each(example.checks.map((c) => [c.command, c] as const))('%s', (_command, check) => {
      const r = spawnSync('sh', ['-c', check.command], { cwd: dir, env: userShellEnv(), encoding: 'utf8', timeout: 30_000 });
      expect(r.stderr).toBe('');
      expectAnswer(r.stdout, check.answer);
    });
  });

  it('every metric family the instances expose after answering is named in README (the Node process ones by their prefix)', async () => {
    const families = new Set<string>();
    for (const r of running) {
      const text = await (await fetch(`http://${r.example.adminAddress}/metrics`)).text();
      for (const m of text.matchAll(/^# TYPE (\S+)/gm)) families.add(m[1]!);
    }
    expect(families.size).toBeGreaterThan(30);
    const undocumented = [...families].filter((f) => !f.startsWith('sluice_process_') && !README.includes(f)).sort();
    expect(undocumented).toEqual([]);
  });

  it('every instance logged no error while answering', () => {
    for (const r of running) expect(r.output()).not.toMatch(/"level":50|EADDRINUSE|EBADENGINE/);
  });
});
