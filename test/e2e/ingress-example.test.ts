// examples/ingress as the README runs it: Cilium's basic and TLS Ingress
// tutorials, unchanged, served standalone with demo backends.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { httpsGetText } from '../support/https-get.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';

const EXAMPLE = join(import.meta.dirname, '..', '..', 'examples', 'ingress');

describe('examples/ingress', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;
  const get = async (path: string, host: string) => {
    const res = await request(`http://127.0.0.1:${80 + offset}${path}`, { headers: { host } });
    const text = await res.body.text();
    return { status: res.statusCode, pod: /"pod": "([^"]+)"/.exec(text)?.[1] ?? null, location: res.headers.location };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-ingress-example-'));
    for (const f of readdirSync(EXAMPLE).filter((f) => f.endsWith('.yaml') && !f.startsWith('generated-'))) cpSync(join(EXAMPLE, f), join(dir, f));
    offset = await freePortOffset([80, 443]);
    sluice = await startSluice(['--manifests', dir, '--demo-backends', '--listener-port-offset', String(offset)]);
  });

  afterAll(async () => {
    await sluice?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('basic-ingress: /details to details, the rest to productpage, for any host', async () => {
    expect(await get('/details/1', 'anything.test')).toMatchObject({ status: 200, pod: expect.stringMatching(/^details-v1-/) });
    expect(await get('/', 'anything.test')).toMatchObject({ status: 200, pod: expect.stringMatching(/^productpage-v1-/) });
  });

  it('tls-ingress: plain HTTP to the TLS host is redirected to HTTPS', async () => {
    const r = await get('/details/1?x=1', 'bookinfo.cilium.rocks');
    expect(r.status).toBe(301);
    // Clients reach HTTPS at 443 + the offset: the redirect says so (`--redirect-port-offset` defaults to it).
    expect(r.location).toBe(`https://bookinfo.cilium.rocks:${443 + offset}/details/1?x=1`);
  });

  it('tls-ingress: HTTPS with the generated demo certificate reaches details', async () => {
    const body = await httpsGetText(443 + offset, '/details/1', 'bookinfo.cilium.rocks');
    expect(body).toMatch(/"pod": "details-v1-/);
  });

  it('reports the Ingress address in status.loadBalancer', async () => {
    const ingress = (await sluice.status()).find((o) => o.kind === 'Ingress' && o.metadata.name === 'basic-ingress');
    expect(ingress.status.loadBalancer.ingress).toEqual([{ ip: '127.0.0.1' }]);
  });
});
