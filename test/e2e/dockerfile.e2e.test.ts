// The Dockerfile's steps, run as a script: no image registry is reachable here, so its
// `FROM node:24-bookworm` base cannot be pulled and `docker build` cannot run. This test reads the
// Dockerfile and .dockerignore and does what a builder would, stage by stage, in temp folders:
// COPY from the build context (the checkout minus .dockerignore) or from an earlier stage, RUN
// with Node 24 first on the PATH (the base image's Node), ENV for the entrypoint. What it cannot
// do is the base image and its apt-get steps: the packages those install must be installed on this
// machine instead (checked with dpkg; the suite is skipped, saying so, when they are not). Then
// the entrypoint runs from the runtime stage as the image's user: `--version`, `translate`, and
// `run --demo-backends`, which must fail with one clear line, since test doubles are left out.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, matchesGlob } from 'node:path';
import { describeIfPossible, requiredByEnvironment } from '../support/suite.ts';
import { userShellEnv } from '../support/user-shell.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NODE_24_BIN = dirname(process.execPath);

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions with continuation lines joined; comments and blank lines dropped. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\n(\s*#.*\n)*/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const space = l.indexOf(' ');
      return { keyword: l.slice(0, space).toUpperCase(), args: l.slice(space + 1).trim() };
    });
}

const INSTRUCTIONS = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));

/** Packages the Dockerfile's `apt-get install` steps install (the base image's part we cannot run). */
const APT_PACKAGES = INSTRUCTIONS.filter((i) => i.keyword === 'RUN' && /apt-get install/.test(i.args)).flatMap((i) =>
  /apt-get install ([^&]*)/
    .exec(i.args)![1]!
    .split(/\s+/)
    .filter((w) => w && !w.startsWith('-')),
);
const missingPackages = APT_PACKAGES.filter((p) => spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout !== 'install ok installed');

/** .dockerignore's rules: a path is left out when it or a folder above it matches a pattern. */
function dockerIgnored(): (path: string) => boolean {
  const patterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (patterns.some((p) => p.startsWith('!'))) throw new Error('.dockerignore exceptions (!) are not handled by this test');
  return (path) => {
    const parts = path.split('/');
    return parts.some((_, i) => patterns.some((p) => matchesGlob(parts.slice(0, i + 1).join('/'), p)));
  };
}

/** The build context: the checkout's files (tracked and untracked, not git-ignored) minus .dockerignore. */
function buildContext(into: string): void {
  const ignored = dockerIgnored();
  const files = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\n');
  for (const file of files) {
    if (!file || ignored(file) || !existsSync(join(ROOT, file))) continue;
    mkdirSync(join(into, dirname(file)), { recursive: true });
    cpSync(join(ROOT, file), join(into, file));
  }
}

interface Stage {
  name: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: string | null;
  entrypoint: string[];
  cmd: string[];
}

/** Runs the Dockerfile's stages; returns the last one (the image). */
function build(dir: string): { stage: Stage; log: string[] } {
  const context = join(dir, 'context');
  buildContext(context);
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  const log: string[] = [];
  const expand = (s: string) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get((a ?? b)!) ?? '');
  let stage: Stage | null = null;
  const inStage = (path: string) => join(stage!.root, path.startsWith('/') ? path : join(stage!.workdir, path));
  for (const { keyword, args: raw } of INSTRUCTIONS) {
    const text = expand(raw);
    if (keyword === 'ARG') {
      const [name, value] = raw.split('=') as [string, string | undefined];
      if (!stage) args.set(name, value ?? '');
    } else if (keyword === 'FROM') {
      const [, name] = /\bAS (\S+)/i.exec(text) ?? [];
      const root = join(dir, `stage-${stages.length}`);
      mkdirSync(root, { recursive: true });
      chmodSync(root, 0o755);
      stage = { name: name ?? String(stages.length), root, workdir: '/', env: {}, user: null, entrypoint: [], cmd: [] };
      stages.push(stage);
      log.push(`FROM ${text} (stands in: this machine's Debian and Node 24)`);
    } else if (keyword === 'WORKDIR') {
      stage!.workdir = text;
      mkdirSync(inStage('.'), { recursive: true });
    } else if (keyword === 'COPY') {
      const words = text.split(/\s+/);
      const from = words[0]!.startsWith('--from=') ? stages.find((s) => s.name === words.shift()!.slice('--from='.length))! : null;
      const dest = words.pop()!;
      for (const src of words) {
        const source = from ? join(from.root, src) : join(context, src);
        if (!existsSync(source)) throw new Error(`COPY ${text}: ${src} is not in the ${from ? `stage ${from.name}` : 'build context'}`);
        const target = dest.endsWith('/') && !statSync(source).isDirectory() ? join(inStage(dest), src.split('/').pop()!) : inStage(dest);
        mkdirSync(dirname(target), { recursive: true });
        cpSync(source, target, { recursive: true });
      }
      log.push(`COPY ${text}`);
    } else if (keyword === 'RUN') {
      if (/apt-get/.test(text)) {
        log.push(`RUN (skipped: the packages are this machine's) ${APT_PACKAGES.join(' ')}`);
        continue;
      }
      const options: SpawnSyncOptions = {
        cwd: inStage('.'),
        // This machine's network settings (proxy, CA) pass through, as a builder passes its proxy
        // variables; the npm cache stands in for the registry where it can: same packages, less waiting.
        env: userShellEnv({ ...stage!.env, PATH: `${NODE_24_BIN}:/usr/local/bin:/usr/bin:/bin`, npm_config_prefer_offline: 'true' }),
        encoding: 'utf8',
        timeout: 600_000,
      };
      const r = spawnSync('sh', ['-c', text], options);
      log.push(`RUN ${text} → ${r.status}`);
      if (r.status !== 0) throw new Error(`RUN ${text} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    } else if (keyword === 'ENV') {
      for (const [, key, value] of text.matchAll(/(\w+)=(\S+)/g)) stage!.env[key!] = value!;
    } else if (keyword === 'USER') {
      stage!.user = text;
    } else if (keyword === 'ENTRYPOINT') {
      stage!.entrypoint = JSON.parse(text) as string[];
    } else if (keyword === 'CMD') {
      stage!.cmd = JSON.parse(text) as string[];
    } else if (keyword !== 'EXPOSE') {
      throw new Error(`Dockerfile instruction ${keyword} is not handled by this test`);
    }
  }
  return { stage: stages.at(-1)!, log };
}

/** Every path under `root`, relative, folders included. */
function walk(root: string, prefix = ''): string[] {
  return readdirSync(join(root, prefix), { withFileTypes: true }).flatMap((e) => {
    const path = prefix ? `${prefix}/${e.name}` : e.name;
    return e.isDirectory() ? [path, ...walk(root, path)] : [path];
  });
}

describeIfPossible(
  'the Dockerfile run as a script',
  missingPackages.length > 0 ? `the packages its apt-get steps install are missing here: ${missingPackages.join(' ')}` : null,
  requiredByEnvironment('SLUICE_DOCKERFILE_REQUIRED'),
)('the Dockerfile run as a script', () => {
  let dir: string;
  let image: Stage;
  let files: string[];
  const app = () => join(image.root, image.workdir);

  /** The entrypoint with `args`, as the image's user, with the image's environment. */
  const entrypoint = (...args: string[]) => {
    const [uid, gid] = (image.user ?? '0:0').split(':').map(Number) as [number, number];
    const [command, ...rest] = image.entrypoint;
    return spawnSync(command === 'node' ? process.execPath : command!, [...rest, ...args], {
      cwd: app(),
      env: { ...image.env, PATH: `${NODE_24_BIN}:/usr/bin:/bin` },
      uid,
      gid,
      encoding: 'utf8',
      timeout: 60_000,
    });
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-dockerfile-'));
    chmodSync(dir, 0o755);
    ({ stage: image } = build(dir));
    files = walk(app());
  }, 900_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('builds the eBPF objects and the addon, and the image holds them', () => {
    for (const f of ['bpf/build/sock_lb.o', 'bpf/build/policy.o', 'bpf/native/build/sluice_bpf.node', 'bpf/native/index.ts', 'bin/sluice.js', 'cmd/cli.ts', 'ir/types.ts']) expect(files).toContain(f);
  });

  it('holds no test doubles, tests or development tools', () => {
    expect(files.filter((f) => /^(test|examples|charts|scripts)(\/|$)/.test(f))).toEqual([]);
    for (const dev of ['@peculiar/x509', 'reflect-metadata', 'tsyringe', 'jest', 'typescript', 'fast-check', 'node']) {
      expect(files).not.toContain(`node_modules/${dev}`);
    }
    // Runtime dependencies are there.
    for (const dep of ['fastify', 'undici', 'pino', 'yaml', '@kubernetes/client-node']) expect(files).toContain(`node_modules/${dep}`);
  });

  it('runs `sluice --version` (the default CMD is --help)', () => {
    expect(image.cmd).toEqual(['--help']);
    const help = entrypoint(...image.cmd);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sluice <command>/);
    const r = entrypoint('--version');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`sluice ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version} (Node.js ${process.version})\n`);
  });

  it('runs `sluice translate` on manifests mounted into it', () => {
    const manifests = join(dir, 'manifests');
    cpSync(join(ROOT, 'examples', 'ingress'), manifests, { recursive: true, filter: (f) => !f.includes('generated-') });
    chmodSync(manifests, 0o755);
    const r = entrypoint('translate', '--manifests', manifests, '-o', 'json');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { ir: { http: { listeners: Array<{ port: number }> } } };
    expect(out.ir.http.listeners.map((l) => l.port)).toContain(80);
  });

  it('refuses --demo-backends with one clear line', () => {
    const r = entrypoint('run', '--manifests', join(dir, 'manifests'), '--demo-backends', '--bpf', 'off');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'sluice: --demo-backends is not available here: the demo echo backends are test doubles, left out of the container image; run the quickstart from a source checkout\n',
    );
  });
});
