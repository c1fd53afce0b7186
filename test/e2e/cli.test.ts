// The CLI contract: `sluice translate` prints IR and statuses; bad or foreign flags exit 2 with a reason
// and the command's usage; the README's CLI block is what `--help` prints.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_BEGIN, CLI_END, COMMANDS } from '../../cmd/cli-flags.ts';
import { describeIfPossible } from '../support/suite.ts';
import { userShellEnv } from '../support/user-shell.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_YAML } from './backends.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const sluice = (...args: string[]) =>
  spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), ...args], { encoding: 'utf8' });

// The machine's own Node (what a bare `node` finds in a user's shell): npm runs on it.
const machineNode = spawnSync('node', ['--version'], { env: userShellEnv(), encoding: 'utf8' });
const machineNodeMajor = machineNode.error ? null : Number(machineNode.stdout.slice(1).split('.')[0]);

describe('sluice CLI', () => {
  it('translate prints the IR and every status as JSON', () => {
    // The quickstart's manifests alone: its TLS Secret is written by `--demo-backends` on first start.
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
    for (const f of readdirSync(join(ROOT, 'examples', 'quickstart')).filter((f) => !f.startsWith('generated-'))) {
      cpSync(join(ROOT, 'examples', 'quickstart', f), join(dir, f));
    }
    const r = sluice('translate', '--manifests', dir, '-o', 'json');
    rmSync(dir, { recursive: true, force: true });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.version).toMatch(/^[0-9a-f]{16}$/);
    expect(out.ir.http.listeners.map((l: any) => l.name)).toEqual(['127.0.0.1:8080']);
    const gateway = out.statuses.find((s: any) => s.kind === 'Gateway');
    expect(gateway.status.listeners[1].conditions).toContainEqual(expect.objectContaining({ type: 'ResolvedRefs', status: 'False', reason: 'InvalidCertificateRef' }));
    const route = out.statuses.find((s: any) => s.kind === 'HTTPRoute');
    expect(route.status.parents[0].conditions.map((c: any) => `${c.type}=${c.status}`)).toEqual(['Accepted=True', 'ResolvedRefs=True']);
    expect(r.stdout).not.toMatch(/PRIVATE KEY/);
  });

  it('translate of a checkout leaves node_modules and hidden folders out, in one info line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
    cpSync(join(ROOT, 'examples', 'quickstart', 'quickstart.yaml'), join(dir, 'quickstart.yaml'));
    mkdirSync(join(dir, 'node_modules', 'pkg'), { recursive: true });
    writeFileSync(join(dir, 'node_modules', 'pkg', 'config.yml'), 'settings: {a: 1}\n');
    mkdirSync(join(dir, '.github'));
    writeFileSync(join(dir, '.github', 'ci.yml'), 'on: push\n');
    const r = sluice('translate', '--manifests', dir, '-o', 'json');
    rmSync(dir, { recursive: true, force: true });
    expect(r.status).toBe(0);
    expect(r.stderr.split('\n').filter((l) => /node_modules|\.github/.test(l))).toEqual([`info: not read under ${dir}: .github, node_modules (dependency and hidden folders; --manifests naming one reads it)`]);
  });

  it('translate serves implicit cilium GatewayClass for drop-in manifests', () => {
    const r = sluice('translate', '--manifests', join(ROOT, 'examples', 'quickstart'), '-o', 'json');
    const classes = JSON.parse(r.stdout).statuses.filter((s: any) => s.kind === 'GatewayClass').map((s: any) => s.name);
    expect(classes).toEqual(['sluice', 'cilium']);
  });

  it('translate exits 1 when a file does not parse, saying its objects are left out', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
    try {
      cpSync(join(ROOT, 'examples', 'quickstart', 'quickstart.yaml'), join(dir, 'quickstart.yaml'));
      writeFileSync(join(dir, 'broken.yaml'), 'kind: HTTPRoute\n  spec: [\n');
      const broken = sluice('translate', '--manifests', dir, '-o', 'json');
      expect(broken.status).toBe(1);
      expect(broken.stderr).toMatch(/^error: SLU_MANIFEST_YAML broken\.yaml: .*; its objects are left out until it parses again$/m);
      // The rest is still translated and printed.
      expect(JSON.parse(broken.stdout).statuses.some((s: { kind: string }) => s.kind === 'Gateway')).toBe(true);
      rmSync(join(dir, 'broken.yaml'));
      expect(sluice('translate', '--manifests', dir).status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a missing folder, an unknown flag and an unknown command with exit code 2', () => {
    expect(sluice('run', '--manifests', '/no/such/folder')).toMatchObject({ status: 2, stderr: expect.stringContaining('not a folder') });
    expect(sluice('run', '--manifests', ROOT, '--frobnicate')).toMatchObject({ status: 2, stderr: expect.stringContaining('frobnicate') });
    expect(sluice('launch', '--manifests', ROOT)).toMatchObject({ status: 2, stderr: expect.stringContaining('unknown command launch') });
    expect(sluice('run', '--manifests', ROOT, '--listener-port-offset', 'x')).toMatchObject({ status: 2 });
  });

  it("refuses another command's flag with this command's usage, before doing anything", () => {
    const r = sluice('translate', '--manifests', join(ROOT, 'examples', 'quickstart'), '--redis-url', 'redis://127.0.0.1:1');
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('sluice translate does not take --redis-url (a flag of run, dataplane)');
    expect(r.stderr).toContain('Usage: sluice translate --manifests DIR [flags]');
    expect(r.stderr).not.toContain('Usage: sluice run');
    // --demo-backends is run's: the dataplane must not accept (and ignore) it.
    expect(sluice('dataplane', '--controller', 'http://127.0.0.1:1', '--demo-backends')).toMatchObject({
      status: 2,
      stderr: expect.stringContaining('sluice dataplane does not take --demo-backends (a flag of run)'),
    });
    // A positional where a flag belongs (a forgotten `--manifests`) is refused too.
    expect(sluice('translate', 'examples/quickstart')).toMatchObject({ status: 2, stderr: expect.stringContaining('examples/quickstart') });
  });

  it('prints the overview with --help and a command\'s own flags with <command> --help', () => {
    const overview = sluice('--help');
    expect(overview.status).toBe(0);
    for (const command of ['run', 'translate', 'status', 'controller', 'dataplane', 'observe']) expect(overview.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    const run = sluice('run', '--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^Usage: sluice run --manifests DIR/);
    expect(run.stdout).toMatch(/^  --listener-port-offset N /m);
    expect(run.stdout).toMatch(/^  --demo-backends /m);
    expect(sluice('help', 'run').stdout).toBe(run.stdout);
    const translate = sluice('translate', '-h');
    expect(translate.status).toBe(0);
    expect(translate.stdout).toMatch(/^  -o, --output yaml\|json /m);
    expect(translate.stdout).not.toMatch(/--listener-port-offset|--redis-url|--demo-backends/);
    const observe = sluice('observe', '--help');
    expect(observe.stdout).toMatch(/^  --verdict FORWARDED\|DROPPED\|AUDIT\s/m);
    expect(observe.stdout).not.toMatch(/--manifests/);
  });

  it('`npx sluice --help`, as a user types it in a fresh checkout, prints the usage and no npm warning', () => {
    // A user's shell and an empty npm cache, as on a first run (npx links the checkout into its cache then, which is
    // when npm checked package.json `engines` against its own Node and printed EBADENGINE).
    const cache = mkdtempSync(join(tmpdir(), 'sluice-npx-cache-'));
    try {
      const r = spawnSync('npx', ['sluice', '--help'], { cwd: ROOT, env: userShellEnv({ npm_config_cache: cache }), encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).not.toMatch(/EBADENGINE|^npm warn/m);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^Usage: sluice <command> \[flags\]/);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('--version names the versions of Sluice and of the runtime', () => {
    const r = sluice('--version');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`sluice ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version} (Node.js ${process.version})\n`);
  });
});

describeIfPossible(
  'bin/sluice.js under an older Node',
  machineNodeMajor === null ? 'no `node` on the PATH besides the pinned one' : machineNodeMajor >= 24 ? `the machine's Node is ${machineNode.stdout.trim()}, not older than 24` : null,
)('bin/sluice.js under an older Node', () => {
  it('refuses to start with one line saying which Node to use', () => {
    const r = spawnSync('node', [join(ROOT, 'bin', 'sluice.js'), '--help'], { env: userShellEnv(), encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`sluice: needs Node.js 24 or later to run, this is ${machineNode.stdout.trim()}`);
  });
});

describe('sluice status', () => {
  let dir: string;
  let running: SluiceProcess;
  const status = (admin: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      // Not spawnSync: a blocked event loop stops draining the running sluice's output pipes.
      execFile(process.execPath, [join(ROOT, 'bin', 'sluice.js'), 'status', '--admin-address', admin], { encoding: 'utf8' }, (err, stdout, stderr) =>
        resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }),
      );
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-status-'));
    writeFileSync(join(dir, 'gateway.yaml'), GATEWAY_YAML);
    writeFileSync(join(dir, 'broken.yaml'), 'kind: Service\nmetadata: {name: [\n');
    running = await startSluice(['--manifests', dir, '--listener-port-offset', String((await freePort()) - 80)]);
  });

  afterAll(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("prints the running instance's problems, one line each, exit 1; once fixed, none and exit 0", async () => {
    const admin = running.admin.replace('http://', '');
    const before = await status(admin);
    expect(before.code).toBe(1);
    const lines = before.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^SLU_MANIFEST_YAML broken\.yaml: /);
    writeFileSync(join(dir, 'broken.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: fixed, namespace: default}\nspec: {ports: [{port: 80}]}\n');
    let last = before;
    const after = await waitFor(`the problem to resolve (last answer: ${JSON.stringify(last)})`, async () => {
      last = await status(admin);
      return last.code === 0 ? last : undefined;
    }).catch(() => last);
    expect(after.stdout).toBe('no problems\n');
    // A broken file that never parsed, then removed: its problem goes with it.
    writeFileSync(join(dir, 'stray.yaml'), 'kind: [\n');
    await waitFor('the stray file to be reported', async () => ((await status(admin)).stdout.startsWith('SLU_MANIFEST_YAML stray.yaml: ') ? true : undefined));
    rmSync(join(dir, 'stray.yaml'));
    await waitFor('the stray file to be forgotten', async () => ((await status(admin)).code === 0 ? true : undefined));
  });

  it('says so, exit 1, when nothing answers at --admin-address', async () => {
    const r = await status(`127.0.0.1:${await freePort()}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sluice status: cannot read http:\/\/127\.0\.0\.1:\d+\/api\/status: /);
  });
});

describe('README', () => {
  it("holds `sluice --help` and every command's `--help`, verbatim, between the generated markers", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = readme.slice(readme.indexOf(CLI_BEGIN) + CLI_BEGIN.length, readme.indexOf(CLI_END));
    const printed = [sluice('--help').stdout, ...COMMANDS.map((c) => sluice(c.name, '--help').stdout)].join('\n');
    // A mismatch: run `npm run docs:cli`.
    expect(block).toBe(`\n\`\`\`\n${printed}\`\`\`\n`);
  });
});
