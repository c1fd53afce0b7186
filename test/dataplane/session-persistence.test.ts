// Session persistence (GEP-1619, IR Route.sessionPersistence) on real sockets: a real Dataplane,
// echo upstreams that say which pod answered, and plain HTTP clients carrying the cookie or header
// the gateway handed out.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, HttpIR, L4IR, Route, SessionPersistence } from '../../ir/types.ts';
import { viaServiceVips } from '../../dataplane/config/kernel-lb.ts';
import { request, type Response } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { backend, forwardTo, prefix, route, singleHostIR, weighted } from './support/ir.ts';

const cookie = (name: string, scope: string, extra: Partial<SessionPersistence> = {}): SessionPersistence => ({ type: 'Cookie', name, scope, cookieLifetime: 'Session', ...extra });

function sticky(name: string, path: string, action: Route['action'], session: SessionPersistence): Route {
  return { ...route(name, { path: prefix(path) }, action), sessionPersistence: session };
}

/** `name=token` of the response's Set-Cookie for `name`, or null when it sets none. */
function setCookie(response: Response, name: string): string | null {
  const line = (response.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${name}=`));
  return line === undefined ? null : line;
}
const tokenOf = (line: string | null): string => line!.slice(line!.indexOf('=') + 1).split(';')[0]!;

describe('session persistence', () => {
  const pods: Record<string, EchoServer> = {};
  let port: number;
  let harness: TestDataplane;

  const backends = (): Backend[] => [
    backend('svc/abc', [pods.a!.endpoint, pods.b!.endpoint, pods.c!.endpoint]),
    backend('svc/one', [pods.one!.endpoint]),
    backend('svc/x', [pods.x!.endpoint]),
    backend('svc/de', [pods.d!.endpoint, pods.e!.endpoint]),
  ];
  const routes = (xWeight: number): Route[] => [
    sticky('sticky', '/sticky', forwardTo('svc/abc'), cookie('sid', 'httproute/default/sticky/rule/0', { cookiePath: '/sticky' })),
    sticky('other', '/other', forwardTo('svc/abc'), cookie('sid', 'httproute/default/other/rule/0', { cookiePath: '/other' })),
    sticky('split', '/split', forwardTo(weighted('svc/one', 3), weighted('svc/x', xWeight)), cookie('split', 'httproute/default/split/rule/0')),
    sticky('timed', '/timed', forwardTo('svc/abc'), cookie('timed', 'httproute/default/timed/rule/0', { absoluteTimeoutMs: 400, cookieLifetime: 'Permanent', cookiePath: '/timed' })),
    sticky('header', '/header', forwardTo('svc/abc'), { type: 'Header', name: 'x-session', scope: 'httproute/default/header/rule/0' }),
    sticky('fallback', '/fallback', forwardTo('svc/de'), cookie('fb', 'httproute/default/fallback/rule/0')),
  ];
  const ir = (xWeight: number, list: Backend[] = backends()): HttpIR => singleHostIR(port, routes(xWeight), list);

  beforeAll(async () => {
    for (const pod of ['a', 'b', 'c', 'one', 'x', 'd', 'e']) pods[pod] = await startEchoServer(pod);
    port = await freePort();
    harness = testDataplane();
    expect((await harness.dataplane.apply('v1', ir(1))).listeners).toEqual([{ name: `127.0.0.1:${port}`, ok: true }]);
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await Promise.all(Object.values(pods).map((p) => p.close().catch(() => undefined)));
  });

  it('hands out an opaque cookie on the first answer; 200 requests carrying it reach the same one of 3 endpoints', async () => {
    const first = await request(port, '/sticky/cart');
    expect(first.status).toBe(200);
    const line = setCookie(first, 'sid');
    expect(line).toMatch(/^sid=[A-Za-z0-9_-]{38}; Path=\/sticky; HttpOnly; SameSite=Strict$/);
    // Never the address in the clear (nor base64 of it).
    const token = tokenOf(line);
    expect(Buffer.from(token, 'base64url').toString('latin1')).not.toContain('127.0.0.1');
    expect(token).not.toContain(String(pods[first.echo!.pod]!.port));
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const r = await request(port, '/sticky/cart', { headers: { cookie: `theme=dark; sid=${token}` } });
      seen.add(r.echo!.pod);
      // The session holds: no new cookie.
      expect(setCookie(r, 'sid')).toBeNull();
    }
    expect([...seen]).toEqual([first.echo!.pod]);
  });

  it('new sessions are load balanced: three clients without a cookie land on the three endpoints', async () => {
    const fresh = await Promise.all([0, 1, 2].map(() => request(port, '/sticky/x')));
    expect(new Set(fresh.map((r) => r.echo!.pod))).toEqual(new Set(['a', 'b', 'c']));
    for (const r of fresh) {
      const again = await request(port, '/sticky/x', { headers: { cookie: `sid=${tokenOf(setCookie(r, 'sid'))}` } });
      expect(again.echo!.pod).toBe(r.echo!.pod);
    }
  });

  it('a tampered, forged or other rule\'s token is not honoured: load balanced and a new cookie', async () => {
    const first = await request(port, '/sticky/t');
    const token = tokenOf(setCookie(first, 'sid'));
    const flipped = token.slice(0, 20) + (token[20] === 'A' ? 'B' : 'A') + token.slice(21);
    const forged = Buffer.alloc(28, 7).toString('base64url');
    for (const bad of [flipped, forged, 'garbage', `${token}x`]) {
      // Over three requests a token that were honoured would pin all three to one pod.
      const answers = await Promise.all([0, 1, 2].map(() => request(port, '/sticky/t', { headers: { cookie: `sid=${bad}` } })));
      for (const r of answers) expect(setCookie(r, 'sid')).not.toBeNull();
      expect(new Set(answers.map((r) => r.echo!.pod)).size).toBe(3);
    }
    // Same cookie name on another rule: that rule's sessions are its own (GEP-1619).
    const elsewhere = await Promise.all([0, 1, 2].map(() => request(port, '/other', { headers: { cookie: `sid=${token}` } })));
    for (const r of elsewhere) expect(setCookie(r, 'sid')).toMatch(/Path=\/other/);
    expect(new Set(elsewhere.map((r) => r.echo!.pod)).size).toBe(3);
  });

  it('new sessions follow the weights; a session stays on its backend when that backend\'s weight becomes 0', async () => {
    const counts: Record<string, number> = {};
    let xToken = '';
    for (let i = 0; i < 400; i++) {
      const r = await request(port, '/split');
      counts[r.echo!.pod] = (counts[r.echo!.pod] ?? 0) + 1;
      if (r.echo!.pod === 'x') xToken = tokenOf(setCookie(r, 'split'));
    }
    expect(counts).toEqual({ one: 300, x: 100 });
    await harness.dataplane.apply('v2', ir(0));
    for (let i = 0; i < 20; i++) expect((await request(port, '/split', { headers: { cookie: `split=${xToken}` } })).echo!.pod).toBe('x');
    // New sessions no longer reach x.
    for (let i = 0; i < 20; i++) expect((await request(port, '/split')).echo!.pod).toBe('one');
    await harness.dataplane.apply('v3', ir(1));
  });

  it('an endpoint removed from the backend: its sessions are load balanced again and get a new cookie', async () => {
    const first = await request(port, '/sticky/r');
    const pod = first.echo!.pod;
    const token = tokenOf(setCookie(first, 'sid'));
    const without = backends().map((b) => (b.name === 'svc/abc' ? { ...b, endpoints: b.endpoints.filter((e) => e.port !== pods[pod]!.port) } : b));
    await harness.dataplane.apply('v4', ir(1, without));
    try {
      const moved = await request(port, '/sticky/r', { headers: { cookie: `sid=${token}` } });
      expect(moved.status).toBe(200);
      expect(moved.echo!.pod).not.toBe(pod);
      const next = tokenOf(setCookie(moved, 'sid'));
      for (let i = 0; i < 10; i++) expect((await request(port, '/sticky/r', { headers: { cookie: `sid=${next}` } })).echo!.pod).toBe(moved.echo!.pod);
    } finally {
      await harness.dataplane.apply('v5', ir(1));
    }
  });

  it('absoluteTimeout: a Permanent cookie carries Max-Age; once the time has passed the token starts a new session', async () => {
    const first = await request(port, '/timed');
    const line = setCookie(first, 'timed')!;
    expect(line).toMatch(/; Path=\/timed; HttpOnly; SameSite=Strict; Max-Age=1$/);
    const token = tokenOf(line);
    const held = await request(port, '/timed', { headers: { cookie: `timed=${token}` } });
    expect(held.echo!.pod).toBe(first.echo!.pod);
    expect(setCookie(held, 'timed')).toBeNull();
    await sleep(450);
    const expired = await Promise.all([0, 1, 2].map(() => request(port, '/timed', { headers: { cookie: `timed=${token}` } })));
    for (const r of expired) expect(setCookie(r, 'timed')).not.toBeNull();
    expect(new Set(expired.map((r) => r.echo!.pod)).size).toBe(3);
  });

  it('Header sessions: the token comes back in the header and is honoured in it', async () => {
    const first = await request(port, '/header');
    const token = first.headers['x-session'];
    expect(typeof token).toBe('string');
    expect(first.headers['set-cookie']).toBeUndefined();
    for (let i = 0; i < 30; i++) {
      const r = await request(port, '/header', { headers: { 'x-session': token as string } });
      expect(r.echo!.pod).toBe(first.echo!.pod);
      expect(r.headers['x-session']).toBeUndefined();
    }
    // As a cookie it means nothing here.
    const asCookie = await Promise.all([0, 1, 2].map(() => request(port, '/header', { headers: { cookie: `x-session=${token as string}` } })));
    expect(new Set(asCookie.map((r) => r.echo!.pod)).size).toBe(3);
  });

  it('a session whose endpoint refuses connections moves to another endpoint of the backend, with a new cookie', async () => {
    let dToken = '';
    for (let i = 0; i < 4 && dToken === ''; i++) {
      const r = await request(port, '/fallback');
      if (r.echo!.pod === 'd') dToken = tokenOf(setCookie(r, 'fb'));
    }
    expect(dToken).not.toBe('');
    await pods.d!.close();
    const moved = await request(port, '/fallback', { headers: { cookie: `fb=${dToken}` } });
    expect(moved.status).toBe(200);
    expect(moved.echo!.pod).toBe('e');
    const next = tokenOf(setCookie(moved, 'fb'));
    expect((await request(port, '/fallback', { headers: { cookie: `fb=${next}` } })).echo!.pod).toBe('e');
  });
});

describe('session persistence with kernel load balancing (eBPF)', () => {
  it('a sticky route\'s backends keep their endpoints; others are reached through the Service VIP', () => {
    const endpoints = [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }];
    const http = singleHostIR(8080, [
      sticky('sticky', '/s', forwardTo('service/ns/a/port/80'), cookie('sid', 'httproute/default/sticky/rule/0')),
      route('plain', { path: prefix('/p') }, forwardTo('service/ns/b/port/80')),
    ], [backend('service/ns/a/port/80', endpoints), backend('service/ns/b/port/80', endpoints)]);
    const l4: L4IR = {
      services: ['a', 'b'].map((name, i) => ({
        name: `service/ns/${name}/port/80`, origin: { kind: 'Service', namespace: 'ns', name }, vip: `10.96.0.${i + 1}`, port: 80, protocol: 'TCP', affinity: 'random',
        endpoints: endpoints.map((e) => ({ ...e, weight: 1 })),
      })),
    };
    const out = viaServiceVips(http, l4);
    // The token names an endpoint: the proxy must pick it, not the kernel.
    expect(out.backends['service/ns/a/port/80']!.endpoints).toEqual(endpoints);
    expect(out.backends['service/ns/b/port/80']!.endpoints).toEqual([{ address: '10.96.0.2', port: 80 }]);
  });
});
