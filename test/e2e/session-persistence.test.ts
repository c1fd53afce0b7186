// Session persistence (GEP-1619) through a real `sluice run --workers 2 --session-key-file`: an
// HTTPRoute rule splitting over three Services with a Cookie session and one with a Header session.
// Fresh connections (spread over both workers by SO_REUSEPORT) keep reaching the backend their
// token names; a restart with the same key file keeps the sessions, one with another key does not.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { httpGatewayYaml, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';

interface Answer {
  backend: string;
  setCookie: string | null;
  session: string | null;
}

describe('session persistence through sluice run', () => {
  let dir: string;
  let keyFile: string;
  let sluice: SluiceProcess | undefined;
  let port: number;
  const backends: NamedBackend[] = [];

  const get = async (path: string, headers: Record<string, string> = {}): Promise<Answer> => {
    // A new connection each time: the kernel spreads them over the workers.
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { ...headers, connection: 'close' } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { backend: string };
    return { backend: body.backend, setCookie: res.headers.get('set-cookie'), session: res.headers.get('x-session') };
  };
  const cookieOf = (answer: Answer): string => answer.setCookie!.split(';')[0]!;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-session-'));
    keyFile = join(dir, 'session.key');
    writeFileSync(keyFile, randomBytes(32));
    port = await freePort();
    for (const name of ['a', 'b', 'c']) backends.push(await startNamedBackend(name));
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    writeFileSync(join(manifests, 'objects.yaml'), `${httpGatewayYaml(port)}---
${backends.map((b) => serviceYaml(b.name, b)).join('---\n')}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /cart}}]
    backendRefs: [{name: a, port: 80}, {name: b, port: 80}, {name: c, port: 80}]
    sessionPersistence: {sessionName: cart, absoluteTimeout: 1h}
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: a, port: 80}, {name: b, port: 80}, {name: c, port: 80}]
    sessionPersistence: {type: Header, sessionName: X-Session}
`);
  });

  afterAll(async () => {
    await sluice?.stop();
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (key: string | null) => {
    sluice = await startSluice(['--manifests', join(dir, 'manifests'), '--workers', '2', ...(key ? ['--session-key-file', key] : [])]);
    await waitFor('the route to be served', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/cart`).catch(() => null);
      return res?.status === 200 ? true : undefined;
    }, 15_000);
  };

  it('the route is Accepted; each session stays on its backend across workers; new sessions spread over the three', async () => {
    await start(keyFile);
    const route = (await sluice!.status()).find((o) => o.kind === 'HTTPRoute' && o.metadata.name === 'shop');
    expect(route.status.parents[0].conditions.find((c: { type: string }) => c.type === 'Accepted')).toMatchObject({ status: 'True' });

    // Each worker load balances new sessions on its own: within a few, every backend has some.
    const starts = new Map<string, Answer>();
    for (let i = 0; i < 30 && starts.size < 3; i++) {
      const s = await get('/cart');
      starts.set(s.backend, s);
    }
    expect([...starts.keys()].sort()).toEqual(['a', 'b', 'c']);
    for (const s of starts.values()) {
      expect(s.setCookie).toMatch(/^cart=[A-Za-z0-9_-]{38}; Path=\/cart; HttpOnly; SameSite=Strict$/);
      for (let i = 0; i < 30; i++) {
        const again = await get('/cart/items', { cookie: cookieOf(s) });
        expect(again.backend).toBe(s.backend);
        expect(again.setCookie).toBeNull();
      }
    }
    const header = await get('/api');
    expect(header.session).toMatch(/^[A-Za-z0-9_-]{38}$/);
    for (let i = 0; i < 30; i++) expect((await get('/api', { 'x-session': header.session! })).backend).toBe(header.backend);
  });

  it('a restart with the same --session-key-file keeps the sessions; without it they start again', async () => {
    const before = await get('/cart');
    await sluice!.stop();
    await start(keyFile);
    for (let i = 0; i < 10; i++) {
      const kept = await get('/cart', { cookie: cookieOf(before) });
      expect(kept.backend).toBe(before.backend);
      expect(kept.setCookie).toBeNull();
    }
    await sluice!.stop();
    await start(null);
    // Another key: the token is one this process never signed, so every request starts a session.
    for (let i = 0; i < 5; i++) expect((await get('/cart', { cookie: cookieOf(before) })).setCookie).toMatch(/^cart=/);
  });
});
