// Unusable Redis settings are never a quiet fall back to the failure mode: `--redis-type bogus`
// (or SLUICE_REDIS_TYPE, or the --redis-secret Secret's key `type`) is refused at start with the
// flag, variable or key named and the accepted values; a running `sluice run` whose Secret is
// edited to a bad type reports SLU_REDIS_SETTINGS and keeps deciding on the Redis it has.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startNamedBackend, type NamedBackend } from '../e2e/backends.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { appWithGlobalPolicy } from './support/manifests.ts';
import { RedisServer } from './support/redis-server.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const sluice = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });

const secretYaml = (url: string, type: string) => `apiVersion: v1
kind: Secret
metadata: {name: redis, namespace: default}
stringData: {url: "${url}", type: "${type}"}
`;

describe('an unusable Redis type', () => {
  let redis: RedisServer;
  let backend: NamedBackend;
  let dir: string;
  let running: SluiceProcess | null = null;

  beforeAll(async () => {
    redis = await RedisServer.start();
    backend = await startNamedBackend('app');
    dir = mkdtempSync(join(tmpdir(), 'sluice-redis-type-'));
    // FailClosed: were the Redis store dropped, every request would get 503.
    writeFileSync(join(dir, 'app.yaml'), `${appWithGlobalPolicy(backend, '    - limit: {requests: 1000, unit: Second}\n')}    failureMode: FailClosed\n`);
  });

  afterAll(async () => {
    await running?.stop();
    await backend?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--redis-type bogus: exit 2 before anything starts, naming the flag and the accepted values', () => {
    const r = sluice(['run', '--manifests', dir, '--redis-url', redis.url, '--redis-type', 'bogus']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('sluice: --redis-type "bogus": expected single or cluster');
    expect(r.stderr).toContain('Usage: sluice run');
  });

  it('SLUICE_REDIS_TYPE=bogus (the Helm chart passes the Secret key type so): sluice dataplane and sluice run exit 2 naming the variable', () => {
    const dataplane = sluice(['dataplane', '--controller', 'http://127.0.0.1:1'], { SLUICE_REDIS_URL: redis.url, SLUICE_REDIS_TYPE: 'bogus' });
    expect(dataplane.status).toBe(2);
    expect(dataplane.stderr).toContain('sluice: SLUICE_REDIS_TYPE "bogus": expected single or cluster');
    const run = sluice(['run', '--manifests', dir], { SLUICE_REDIS_TYPE: 'sentinel' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('SLUICE_REDIS_TYPE "sentinel": expected single or cluster');
    // A URL that is not redis:// is refused the same way (it, too, left global rules on their failure mode).
    const url = sluice(['dataplane', '--controller', 'http://127.0.0.1:1'], { SLUICE_REDIS_URL: 'http://127.0.0.1:6379' });
    expect(url.status).toBe(2);
    expect(url.stderr).toContain('SLUICE_REDIS_URL "http://127.0.0.1:6379": expected redis://HOST:PORT');
  });

  it('the --redis-secret Secret with type bogus at start: the startup check refuses (exit 3, SLU_REDIS_SETTINGS naming the key)', () => {
    const secretDir = mkdtempSync(join(tmpdir(), 'sluice-redis-type-secret-'));
    try {
      writeFileSync(join(secretDir, 'app.yaml'), `${appWithGlobalPolicy(backend, '    - limit: {requests: 1000, unit: Second}\n')}`);
      writeFileSync(join(secretDir, 'redis-secret.yaml'), secretYaml(redis.url, 'bogus'));
      const r = sluice(['run', '--manifests', secretDir, '--redis-secret', 'default/redis', '--bpf', 'off', '--admin-address', '127.0.0.1:0']);
      expect(r.status).toBe(3);
      expect(r.stderr).toContain('SLU_REDIS_SETTINGS');
      expect(r.stderr).toContain('Secret default/redis key type "bogus": expected single or cluster');
    } finally {
      rmSync(secretDir, { recursive: true, force: true });
    }
  });

  it('the Secret edited to a bad type at run time: SLU_REDIS_SETTINGS reported, Redis kept deciding (no FailClosed 503), cleared when fixed', async () => {
    writeFileSync(join(dir, 'redis-secret.yaml'), secretYaml(redis.url, 'single'));
    const offset = (await freePort()) - 80;
    running = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--redis-secret', 'default/redis']);
    const get = async () => {
      const res = await request(`http://127.0.0.1:${offset + 80}/`);
      await res.body.text();
      return { status: res.statusCode, ratelimit: res.headers.ratelimit };
    };
    const problems = async (): Promise<{ code: string; message: string }[]> => ((await (await fetch(`${running!.admin}/api/status`)).json()) as { problems: { code: string; message: string }[] }).problems;
    // Redis decides: admitted, with the bucket's state in RateLimit.
    await waitFor('Redis deciding', async () => ((await get()).ratelimit !== undefined ? true : undefined));

    writeFileSync(join(dir, 'redis-secret.yaml'), secretYaml(redis.url, 'bogus'));
    const reported = await waitFor('SLU_REDIS_SETTINGS reported', async () => (await problems()).find((p) => p.code === 'SLU_REDIS_SETTINGS'));
    expect(reported.message).toBe('Secret default/redis key type "bogus": expected single or cluster; the Redis settings in use are kept');
    for (let i = 0; i < 20; i++) {
      const r = await get();
      expect(r.status).toBe(200);
      expect(r.ratelimit).toMatch(/^"[^"]+";r=\d+;t=\d+$/);
    }
    expect(running.logs()).toContain('SLU_REDIS_SETTINGS');

    writeFileSync(join(dir, 'redis-secret.yaml'), secretYaml(redis.url, 'single'));
    await waitFor('SLU_REDIS_SETTINGS cleared', async () => ((await problems()).some((p) => p.code === 'SLU_REDIS_SETTINGS') ? undefined : true));
    expect((await get()).ratelimit).toBeDefined();
  });
});
