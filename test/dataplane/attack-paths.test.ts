// Path and Host tricks that could make the router and the backend disagree, against a real
// `sluice run`: a route for `/admin` and a route for host admin.example.com go to the `admin`
// backend, everything else to `public` (support/attack-gateway.ts). For each trick the request is
// refused, redirected, or routed to the backend that the path or host the backend receives belongs
// to, and that backend receives exactly that normalised path: never an admin path at `public`.
// The choices follow Envoy Gateway's defaults (README "Front door: what is refused").

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http2 from 'node:http2';
import { ADMIN_HOST, useAttackGateway } from './support/attack-gateway.ts';
import { RawConnection, usingConnection } from './support/raw-http.ts';

const HOST = 'api.example.com';

type Outcome = { backend: 'admin' | 'public'; target: string } | { status: 400 | 431 } | { redirect: string };

const paths: Array<[string, Outcome]> = [
  ['/admin', { backend: 'admin', target: '/admin' }],
  // Gateway API path matches are case-sensitive, as Envoy's: `/ADMIN` is not `/admin`.
  ['/ADMIN', { backend: 'public', target: '/ADMIN' }],
  ['//admin', { backend: 'admin', target: '/admin' }],
  ['/./admin', { backend: 'admin', target: '/admin' }],
  ['/x/../admin', { backend: 'admin', target: '/admin' }],
  ['/x/%2e%2E/admin', { backend: 'admin', target: '/admin' }],
  ['/%61dmin', { backend: 'admin', target: '/admin' }],
  ['/adm%69n/users', { backend: 'admin', target: '/admin/users' }],
  ['/x\\..\\admin', { backend: 'admin', target: '/admin' }],
  ['/admin\\users', { backend: 'admin', target: '/admin/users' }],
  ['/x/..;/admin', { backend: 'admin', target: '/admin' }],
  ['/x/..;jsessionid=1/admin', { backend: 'admin', target: '/admin' }],
  ['/admin/.;x/users', { backend: 'admin', target: '/admin/users' }],
  // `;` is an ordinary path character (RFC 3986 §3.3); Envoy leaves it too.
  ['/admin;x', { backend: 'public', target: '/admin;x' }],
  // %00 stays encoded (only unreserved characters are decoded), as Envoy.
  ['/admin%00', { backend: 'public', target: '/admin%00' }],
  ['/admin?next=/x/../y&q=%2F', { backend: 'admin', target: '/admin?next=/x/../y&q=%2F' }],
  // Escaped slashes: Envoy Gateway's default UnescapeAndRedirect.
  ['/public%2F..%2Fadmin', { redirect: '/admin' }],
  ['/public%2f..%2fadmin?q=1', { redirect: '/admin?q=1' }],
  ['/x%5c..%5cadmin', { redirect: '/admin' }],
  ['/admin%2f..', { redirect: '/' }],
  ['/admin#x', { status: 400 }],
  ['/public?x#/admin', { status: 400 }],
  ['\\admin', { status: 400 }],
  [`/admin/${'a'.repeat(8_000)}`, { backend: 'admin', target: `/admin/${'a'.repeat(8_000)}` }],
  [`/${'a'.repeat(20_000)}`, { status: 431 }],
];

const hosts: Array<[string, Outcome]> = [
  [ADMIN_HOST, { backend: 'admin', target: '/h' }],
  [ADMIN_HOST.toUpperCase(), { backend: 'admin', target: '/h' }],
  [`${ADMIN_HOST}:80`, { backend: 'admin', target: '/h' }],
  // A trailing dot names the same host (RFC 1034 §3.1): routed as that host (Envoy Gateway's stripTrailingHostDot, on).
  [`${ADMIN_HOST}.`, { backend: 'admin', target: '/h' }],
  ['[::1]:80', { backend: 'public', target: '/h' }],
  [`public.example@${ADMIN_HOST}`, { status: 400 }],
  [`${ADMIN_HOST}/x`, { status: 400 }],
  [`${ADMIN_HOST}\\x`, { status: 400 }],
];

describe('paths and hosts the router and a backend could read differently', () => {
  const gateway = useAttackGateway();

  /** One request on a fresh connection; the status, and the Location if any. */
  async function send(target: string, host: string): Promise<{ status: number; location?: string }> {
    return usingConnection(
      () => RawConnection.open(gateway.port),
      async (connection) => {
        connection.send(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        const text = await connection.untilClosed();
        const location = /\r\nlocation: ([^\r]*)\r\n/i.exec(text)?.[1];
        return { status: connection.statuses()[0] ?? 0, ...(location === undefined ? {} : { location }) };
      },
    );
  }

  async function check(target: string, host: string, outcome: Outcome): Promise<void> {
    const admin = gateway.admin.requests.length;
    const pub = gateway.public.requests.length;
    const answer = await send(target, host);
    const reached = {
      admin: gateway.admin.requests.slice(admin).map((r) => r.target),
      public: gateway.public.requests.slice(pub).map((r) => r.target),
    };
    if ('backend' in outcome) {
      expect(answer.status).toBe(200);
      expect(reached).toEqual({ admin: [], public: [], [outcome.backend]: [outcome.target] });
    } else {
      expect(reached).toEqual({ admin: [], public: [] });
      if ('status' in outcome) expect(answer.status).toBe(outcome.status);
      else expect(answer).toEqual({ status: 307, location: outcome.redirect });
    }
  }

  it.each(paths)('HTTP/1.1 path %j', async (target, outcome) => {
    await check(target, HOST, outcome);
  });

  it.each(hosts)('HTTP/1.1 Host %j', async (host, outcome) => {
    await check('/h', host, outcome);
  });

  it('counts escaped-slash redirects and fragments among the front door refusals', async () => {
    expect(await gateway.metric('sluice_downstream_rejected_total', { reason: 'escaped_slash' })).toBeGreaterThanOrEqual(4);
    expect(await gateway.metric('sluice_downstream_rejected_total', { reason: 'invalid_target' })).toBeGreaterThanOrEqual(3);
  });

  describe('HTTP/2 (:path)', () => {
    /** The response head of one request (its body ended at once) on a fresh connection. */
    async function h2Response(request: http2.OutgoingHttpHeaders): Promise<http2.IncomingHttpHeaders> {
      const session = http2.connect(`http://127.0.0.1:${gateway.port}`);
      try {
        return await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
          const stream = session.request(request);
          stream.on('response', resolve);
          stream.on('error', reject);
          stream.end();
          stream.resume();
        });
      } finally {
        session.close();
      }
    }

    const h2paths: Array<[string, Outcome]> = [
      ['/x\\..\\admin', { backend: 'admin', target: '/admin' }],
      ['/x/..;/admin', { backend: 'admin', target: '/admin' }],
      ['/public%2F..%2Fadmin?q=1', { redirect: '/admin?q=1' }],
      ['/admin#x', { status: 400 }],
    ];

    it.each(h2paths)('%j', async (path, outcome) => {
      const admin = gateway.admin.requests.length;
      const pub = gateway.public.requests.length;
      const headers = await h2Response({ ':path': path, ':authority': HOST });
      const status = Number(headers[':status']);
      if ('backend' in outcome) {
        expect(status).toBe(200);
        expect(gateway[outcome.backend].requests.slice(outcome.backend === 'admin' ? admin : pub).map((r) => r.target)).toEqual([outcome.target]);
      } else if ('status' in outcome) {
        expect(status).toBe(outcome.status);
      } else {
        expect([status, headers.location]).toEqual([307, outcome.redirect]);
      }
      if (!('backend' in outcome) || outcome.backend === 'admin') expect(gateway.public.requests.length).toBe(pub);
    });

    it('answers a gRPC call with an escaped slash INTERNAL, as Envoy, not with a redirect', async () => {
      const headers = await h2Response({ ':method': 'POST', ':path': '/pkg.Svc%2FMethod', ':authority': HOST, 'content-type': 'application/grpc', te: 'trailers' });
      expect([headers[':status'], headers['grpc-status']]).toEqual([200, '13']);
    });
  });
});
