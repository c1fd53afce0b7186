// Path normalisation before matching (Envoy's normalize_path + merge_slashes): unit cases, then
// end to end, where the normalised path is also what the upstream receives.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { normalizePath } from '../../dataplane/router/path.ts';
import { request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { connect, h2request } from './support/http2-client.ts';
import { backend, exact, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';

describe('normalizePath', () => {
  it('leaves ordinary paths alone', () => {
    for (const path of ['/', '/a/b', '/a/b/', '/.well-known/acme', '/a/..b/c.', '/a/b..', '/...', '*', '/a;b=c', '/a/b c']) {
      expect(normalizePath(path)).toBe(path);
    }
  });

  it('resolves . and .. segments, never climbing above /', () => {
    expect(normalizePath('/x/../admin')).toBe('/admin');
    expect(normalizePath('/a/./b/.')).toBe('/a/b/');
    expect(normalizePath('/a/b/..')).toBe('/a/');
    expect(normalizePath('/a/b/../../..')).toBe('/');
    expect(normalizePath('/..')).toBe('/');
    expect(normalizePath('/.')).toBe('/');
    expect(normalizePath('/../../etc/passwd')).toBe('/etc/passwd');
  });

  it('decodes percent-encoded unreserved characters, and only those', () => {
    expect(normalizePath('/%61dmin')).toBe('/admin');
    expect(normalizePath('/%41%5a%30%2D%5f%7E')).toBe('/AZ0-_~');
    // Dots decoded are dot segments.
    expect(normalizePath('/x/%2e%2E/admin')).toBe('/admin');
    expect(normalizePath('/%2e/admin')).toBe('/admin');
    // Reserved and other characters stay encoded (hex upper-cased); %2F never becomes a slash.
    expect(normalizePath('/a%2fb')).toBe('/a%2Fb');
    expect(normalizePath('/a%2F..%2Fadmin')).toBe('/a%2F..%2Fadmin');
    expect(normalizePath('/caf%c3%a9')).toBe('/caf%C3%A9');
    expect(normalizePath('/100%')).toBe('/100%');
    expect(normalizePath('/a%zzb%4')).toBe('/a%zzb%4');
  });

  it('reads a backslash as a slash (Chromium URL canonicalisation, as Envoy)', () => {
    expect(normalizePath('/x\\..\\admin')).toBe('/admin');
    expect(normalizePath('/a\\b')).toBe('/a/b');
    expect(normalizePath('/a\\\\b\\')).toBe('/a/b/');
  });

  it('resolves dot segments with parameters (`..;x` is `..`, as Tomcat reads it; Envoy strips them too)', () => {
    expect(normalizePath('/x/..;/admin')).toBe('/admin');
    expect(normalizePath('/x/..;jsessionid=1/admin')).toBe('/admin');
    expect(normalizePath('/a/.;x/b')).toBe('/a/b');
    expect(normalizePath('/x/%2e%2e;/admin')).toBe('/admin');
    // Not dot segments: left as they are.
    expect(normalizePath('/a;x/b')).toBe('/a;x/b');
    expect(normalizePath('/a/...;x')).toBe('/a/...;x');
    expect(normalizePath('/a/x..;/b')).toBe('/a/x..;/b');
  });

  it('merges runs of slashes, after resolving dot segments (as Envoy)', () => {
    expect(normalizePath('//a//b')).toBe('/a/b');
    expect(normalizePath('///')).toBe('/');
    expect(normalizePath('/a//b/')).toBe('/a/b/');
    expect(normalizePath('/a//../b')).toBe('/a/b');
  });

  it('is idempotent', () => {
    for (const path of ['/x/../admin', '//a//b', '/%61/%2e%2e/%2f/./', '/a//../b//..', '/%7e%7E', '/x\\..;\\a', '/a/..;/..;x/b']) {
      expect(normalizePath(normalizePath(path))).toBe(normalizePath(path));
    }
  });
});

describe('routing on the normalised path', () => {
  let admin: EchoServer;
  let other: EchoServer;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    [admin, other] = await Promise.all([startEchoServer('admin'), startEchoServer('other')]);
    port = await freePort();
    harness = testDataplane();
    const result = await harness.dataplane.apply(
      'v1',
      singleHostIR(
        port,
        [
          route('admin', { path: prefix('/admin') }, forwardTo('svc/admin')),
          route('ab', { path: exact('/a/b') }, forwardTo('svc/admin')),
          route('rest', { path: prefix('/') }, forwardTo('svc/other')),
        ],
        [backend('svc/admin', [admin.endpoint]), backend('svc/other', [other.endpoint])],
      ),
    );
    expect(result.listeners[0].ok).toBe(true);
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await Promise.all([admin.close(), other.close()]);
  });

  it('a route for /admin catches /x/../admin and /%61dmin, and the upstream sees /admin', async () => {
    for (const path of ['/x/../admin', '/%61dmin', '/public/%2e%2e/admin', '/../../admin']) {
      const response = await request(port, path);
      expect(response.echo).toMatchObject({ pod: 'admin', path: '/admin' });
    }
    expect((await request(port, '/x/../admin/users/./1')).echo).toMatchObject({ pod: 'admin', path: '/admin/users/1' });
  });

  it('//a//b matches /a/b', async () => {
    expect((await request(port, '//a//b')).echo).toMatchObject({ pod: 'admin', path: '/a/b' });
  });

  it('keeps the raw query untouched', async () => {
    expect((await request(port, '/x/../admin?next=/x/../y&q=%2e%2e%2F&&')).echo?.path).toBe('/admin?next=/x/../y&q=%2e%2e%2F&&');
  });

  it('redirects an encoded slash to the path with it unescaped, never forwarding it (Envoy Gateway: UnescapeAndRedirect)', async () => {
    const response = await request(port, '/admin%2F..%2Fsecret?q=%2F');
    expect([response.status, response.headers.location, response.echo]).toEqual([307, '/secret?q=%2F', null]);
    expect((await request(port, '/x%5C..%5Cadmin')).headers.location).toBe('/admin');
  });

  it('normalises HTTP/2 :path the same way', async () => {
    const session = await connect(`http://127.0.0.1:${port}`);
    try {
      expect((await h2request(session, '/x/../%61dmin?a=..')).echo).toMatchObject({ pod: 'admin', path: '/admin?a=..' });
    } finally {
      session.close();
    }
  });
});
