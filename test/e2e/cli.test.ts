// The CLI contract: `sluice translate` prints IR and statuses; bad flags exit 2 with a reason.
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const sluice = (...args: string[]) =>
  spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), ...args], { encoding: 'utf8' });

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

  it('translate serves implicit cilium GatewayClass for drop-in manifests', () => {
    const r = sluice('translate', '--manifests', join(ROOT, 'examples', 'quickstart'), '-o', 'json');
    const classes = JSON.parse(r.stdout).statuses.filter((s: any) => s.kind === 'GatewayClass').map((s: any) => s.name);
    expect(classes).toEqual(['sluice', 'cilium']);
  });

  it('rejects a missing folder, an unknown flag and an unknown command with exit code 2', () => {
    expect(sluice('run', '--manifests', '/no/such/folder')).toMatchObject({ status: 2, stderr: expect.stringContaining('not a folder') });
    expect(sluice('run', '--manifests', ROOT, '--frobnicate')).toMatchObject({ status: 2, stderr: expect.stringContaining('frobnicate') });
    expect(sluice('launch', '--manifests', ROOT)).toMatchObject({ status: 2, stderr: expect.stringContaining('unknown command launch') });
    expect(sluice('run', '--manifests', ROOT, '--listener-port-offset', 'x')).toMatchObject({ status: 2 });
  });

  it('prints usage with --help', () => {
    const r = sluice('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--listener-port-offset/);
  });
});

describe('README', () => {
  it('lists every flag of `sluice --help`, verbatim', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const usage = sluice('--help').stdout;
    const flags = usage.slice(usage.indexOf('sluice run --manifests DIR [flags]')).trimEnd();
    expect(readme).toContain(flags);
  });
});
