// The README's quickstart, as a newcomer runs it: `sluice run --demo-backends`
// on examples/quickstart (a copy, so the generated certificate stays out of the
// checkout), then the README's requests and their answers.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { httpsGetText } from '../support/https-get.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';

const QUICKSTART = join(import.meta.dirname, '..', '..', 'examples', 'quickstart');

describe('quickstart', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;

  // undici's request, not fetch: fetch drops the Host header.
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(`http://127.0.0.1:${8080 + offset}${path}`, { headers: { host: 'api.example.com', ...headers } });
    const text = await res.body.text();
    return { status: res.statusCode, pod: /"pod": "([^"]+)"/.exec(text)?.[1] ?? null };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-quickstart-'));
    for (const f of readdirSync(QUICKSTART).filter((f) => !f.startsWith('generated-'))) cpSync(join(QUICKSTART, f), join(dir, f));
    offset = await freePortOffset([8080, 8443]);
    sluice = await startSluice(['--manifests', dir, '--demo-backends', '--listener-port-offset', String(offset)]);
  });

  afterAll(async () => {
    await sluice?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('routes /api/v1 and /api/v2 by path prefix', async () => {
    expect(await get('/api/v1/users')).toEqual({ status: 200, pod: expect.stringMatching(/^api-v1-/) });
    expect(await get('/api/v2/users')).toEqual({ status: 200, pod: expect.stringMatching(/^api-v2-/) });
  });

  it('routes by the X-API-Version header', async () => {
    expect(await get('/anything', { 'x-api-version': 'v1' })).toEqual({ status: 200, pod: expect.stringMatching(/^api-v1-/) });
    expect(await get('/anything', { 'x-api-version': 'v2' })).toEqual({ status: 200, pod: expect.stringMatching(/^api-v2-/) });
  });

  it('splits /canary exactly 90/10', async () => {
    const pods: string[] = [];
    for (let i = 0; i < 100; i++) pods.push((await get('/canary')).pod ?? 'none');
    expect(pods.filter((p) => p.startsWith('api-v1-'))).toHaveLength(90);
    expect(pods.filter((p) => p.startsWith('api-v2-'))).toHaveLength(10);
  });

  it('answers 404 for an unknown host', async () => {
    expect((await get('/', { host: 'other.example.com' })).status).toBe(404);
  });

  it('serves HTTPS with the certificate it generated on first start', async () => {
    expect(readdirSync(dir)).toContain('generated-tls-default-quickstart-tls.yaml');
    const body = await httpsGetText(8443 + offset, '/api/v1', 'api.example.com');
    expect(body).toMatch(/"pod": "api-v1-/);
  });

  it('reports Programmed status through the admin API', async () => {
    const gateway = (await sluice.status()).find((o) => o.kind === 'Gateway' && o.metadata.name === 'quickstart');
    expect(gateway.status.conditions).toContainEqual(expect.objectContaining({ type: 'Programmed', status: 'True' }));
    expect(gateway.status.listeners.map((l: any) => [l.name, l.attachedRoutes])).toEqual([['http', 1], ['https', 1]]);
  });
});
