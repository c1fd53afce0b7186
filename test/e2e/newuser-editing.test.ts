// A new user edits the manifests of a running `sluice run` the ways editors and Kubernetes write
// files: an editor that saves by renaming the file away and writing it anew (Emacs's default, vim
// with backupcopy=no, `git checkout`), and a ConfigMap volume, whose files are symlinks through a
// `..data` symlink the kubelet swaps. Neither may refuse a request, and both are served promptly.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, versionedRouteYaml, type NamedBackend } from './backends.ts';

/** The Gateway, its Service and the route answering `x-version: v<version>`, all in one file (as a user keeps them). */
const appYaml = (backend: NamedBackend, version: number) => `${GATEWAY_YAML}---\n${serviceYaml('app', backend)}---\n${versionedRouteYaml(version)}`;

/** A second route, for host extra.example only, in a file of its own. */
const EXTRA_ROUTE_YAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: extra, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [extra.example]
  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-version, value: extra}]}}]
    backendRefs: [{name: app, port: 80}]
`;

/** One request on a new connection (as curl makes it): the x-version answered, or the error's code. */
function get(port: number, host?: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000, ...(host ? { headers: { host } } : {}) }, (res) => {
      res.resume();
      res.on('end', () => resolve(`${res.statusCode} ${res.headers['x-version'] ?? ''}`.trim()));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

/** Requests one after another until stopped: every answer, in order. */
function requestLoop(port: number): { stop(): Promise<string[]> } {
  const answers: string[] = [];
  let running = true;
  const done = (async () => {
    while (running) answers.push(await get(port));
  })();
  return {
    async stop() {
      running = false;
      await done;
      return answers;
    },
  };
}

describe('a new user editing a running sluice run', () => {
  let dir: string;
  let backend: NamedBackend;
  let sluice: SluiceProcess | undefined;
  let port: number;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-newuser-edit-'));
    backend = await startNamedBackend('app');
    port = await freePort();
  });

  afterEach(async () => {
    await sluice?.stop();
    sluice = undefined;
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a save that renames the file away and writes it anew (Emacs, git checkout) refuses no request and never serves an empty configuration', async () => {
    const file = join(dir, 'app.yaml');
    writeFileSync(file, appYaml(backend, 1));
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
    expect(await get(port)).toBe('200 v1');
    const loop = requestLoop(port);
    await waitFor('a few answers before the save', async () => ((await get(port)) === '200 v1' ? true : undefined));
    // The editor's steps: the old file becomes the backup, the new one is written, the backup goes.
    // The pause stands for an editor descheduled between two syscalls on a busy machine.
    renameSync(file, `${file}~`);
    await new Promise((r) => setTimeout(r, 200));
    writeFileSync(file, appYaml(backend, 2));
    unlinkSync(`${file}~`);
    await waitFor('v2 served', async () => ((await get(port)) === '200 v2' ? true : undefined));
    const answers = await loop.stop();
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.filter((a) => a !== '200 v1' && a !== '200 v2')).toEqual([]);
    // No version without the file's Gateway was applied in between.
    expect(sluice.logs()).not.toMatch(/"listeners":0,/);
  });

  it('sed -i (a temporary file beside, renamed over) refuses no request and is served', async () => {
    const file = join(dir, 'app.yaml');
    writeFileSync(file, appYaml(backend, 1));
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
    const loop = requestLoop(port);
    await waitFor('a few answers before the edit', async () => ((await get(port)) === '200 v1' ? true : undefined));
    execFileSync('sed', ['-i', 's/value: v1}/value: v2}/', file]);
    await waitFor('v2 served', async () => ((await get(port)) === '200 v2' ? true : undefined));
    const answers = await loop.stop();
    expect(answers.filter((a) => a !== '200 v1' && a !== '200 v2')).toEqual([]);
  });

  it('a file removed for good is taken away once it has stayed gone (LOSS_SETTLE_MS)', async () => {
    writeFileSync(join(dir, 'app.yaml'), appYaml(backend, 1));
    writeFileSync(join(dir, 'extra.yaml'), EXTRA_ROUTE_YAML);
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
    const extra = () => get(port, 'extra.example');
    expect(await extra()).toBe('200 extra');
    rmSync(join(dir, 'extra.yaml'));
    await waitFor('extra.example to fall back to the app route', async () => ((await extra()) === '200 v1' ? true : undefined));
  });

  it('a ConfigMap volume (files symlinked through ..data, updated by swapping ..data) is served, and its update is heard at once', async () => {
    // The kubelet's layout: ..<timestamp>/ holds the files, ..data points at it, each file is a
    // symlink through ..data. The manifest folder is itself reached through a symlink.
    const volume = join(dir, 'volume');
    mkdirSync(join(volume, '..2026_12_05_01'), { recursive: true });
    writeFileSync(join(volume, '..2026_12_05_01', 'app.yaml'), appYaml(backend, 1));
    symlinkSync('..2026_12_05_01', join(volume, '..data'));
    symlinkSync('..data/app.yaml', join(volume, 'app.yaml'));
    symlinkSync(volume, join(dir, 'mounted'));
    sluice = await startSluice(['--manifests', join(dir, 'mounted'), '--listener-port-offset', String(port - 80)]);
    expect(await get(port)).toBe('200 v1');
    // The update, as the kubelet's AtomicWriter makes it: a new timestamped folder, ..data swapped by a rename.
    const update = () => {
      mkdirSync(join(volume, '..2026_12_05_02'));
      writeFileSync(join(volume, '..2026_12_05_02', 'app.yaml'), appYaml(backend, 2));
      symlinkSync('..2026_12_05_02', join(volume, '..data_tmp'));
      renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
      rmSync(join(volume, '..2026_12_05_01'), { recursive: true });
    };
    // Heard by the folder's watch, not only by its 2 s safety poll: the first poll of a watch
    // started now comes 2 s later, so a call within 1 s is the watch's.
    const folder = new ManifestFolder(volume);
    let heard = false;
    const stopWatching = folder.watch(() => (heard = true));
    try {
      update();
      await waitFor('the ..data swap to be heard by the watch', () => (heard ? true : undefined), 1000);
    } finally {
      stopWatching();
    }
    await waitFor('v2 served', async () => ((await get(port)) === '200 v2' ? true : undefined));
  });

  it('--manifests on a project checkout reads neither node_modules nor hidden folders (.git, .github), says so in one line, and reads such a folder when it is the one named', async () => {
    mkdirSync(join(dir, 'deploy'));
    writeFileSync(join(dir, 'deploy', 'app.yaml'), appYaml(backend, 1));
    // What a checkout holds beside its manifests: packages' YAML, CI workflows, git's own files.
    const pkg = join(dir, 'node_modules', 'some-package');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, '.travis.yml'), 'language: node_js\n');
    writeFileSync(join(pkg, 'config.yaml'), 'settings: {a: 1}\n');
    writeFileSync(join(pkg, 'route.yaml'), EXTRA_ROUTE_YAML);
    mkdirSync(join(dir, '.github', 'workflows'), { recursive: true });
    writeFileSync(join(dir, '.github', 'workflows', 'ci.yml'), 'on: push\njobs: {}\n');
    mkdirSync(join(dir, '.git'));
    writeFileSync(join(dir, '.git', 'config.yaml'), 'core: {}\n');
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
    expect(await get(port)).toBe('200 v1');
    // The package's route is not served: extra.example falls to the app route.
    expect(await get(port, 'extra.example')).toBe('200 v1');
    const lines = sluice.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; file?: string });
    expect(lines.filter((l) => /node_modules|\.github|\.git\b/.test(JSON.stringify(l)))).toEqual([
      expect.objectContaining({ msg: `not read under ${dir}: .git, .github, node_modules (dependency and hidden folders; --manifests naming one reads it)` }),
    ]);
    // Edits under node_modules are not heard either (no folder of it is watched): nothing reloads.
    writeFileSync(join(pkg, 'route.yaml'), EXTRA_ROUTE_YAML.replace('value: extra', 'value: edited'));
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await get(port, 'extra.example')).toBe('200 v1');
    await sluice.stop();

    // Named itself, the folder is read (its own hidden files still are not).
    writeFileSync(join(pkg, 'app.yaml'), appYaml(backend, 2));
    sluice = await startSluice(['--manifests', pkg, '--listener-port-offset', String(port - 80)]);
    expect(await get(port)).toBe('200 v2');
    expect(await get(port, 'extra.example')).toBe('200 edited');
    expect(sluice.logs()).not.toMatch(/not read under/);
  });
});
