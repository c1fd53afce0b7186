// The two front-door refusals a user can turn off, against a real `sluice run` with raw-socket
// backends (support/attack-gateway.ts): `--escaped-slashes` (Envoy Gateway's escapedSlashesAction)
// and `--headers-with-underscores` (its withUnderscoresAction). An API whose resource names carry
// encoded slashes (GitLab's `/projects/group%2Fproject`) needs `keep`; the defaults are in
// attack-paths.test.ts and attack-http1.test.ts.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { useAttackGateway, type AttackGateway } from './support/attack-gateway.ts';

const get = (gateway: AttackGateway, path: string, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${gateway.port}${path}`, { headers: { host: 'api.example.com', ...headers }, redirect: 'manual' });

describe('--escaped-slashes keep --headers-with-underscores allow', () => {
  const gateway = useAttackGateway(['--escaped-slashes', 'keep', '--headers-with-underscores', 'allow']);

  it('routes and forwards a path with %2F as it came, unescaped nowhere', async () => {
    const res = await get(gateway, '/projects/group%2Fproject?x=1');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('public /projects/group%2Fproject?x=1\n');
    // The router too reads %2F as no slash: `/admin%2Fx` is not under the `/admin` prefix.
    expect(await (await get(gateway, '/admin%2Fx')).text()).toBe('public /admin%2Fx\n');
  });

  it('forwards a field name with an underscore', async () => {
    const res = await get(gateway, '/u', { x_api_key: 'k1' });
    expect(res.status).toBe(200);
    const request = gateway.public.requests.find((r) => r.target === '/u');
    expect(request?.headers).toContainEqual(['x_api_key', 'k1']);
  });
});

describe('--escaped-slashes reject', () => {
  const gateway = useAttackGateway(['--escaped-slashes', 'reject']);

  it('answers 400 to a path with %2F or %5C, reaching no backend, and counts it', async () => {
    const before = gateway.seen();
    for (const path of ['/public%2F..%2Fadmin', '/x%5cy']) {
      const res = await get(gateway, path);
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    }
    expect(gateway.seen()).toBe(before);
    expect(await gateway.metric('sluice_downstream_rejected_total', { reason: 'escaped_slash' })).toBe(2);
    // A field name with an underscore is still refused (the default).
    expect((await get(gateway, '/u', { x_api_key: 'k1' })).status).toBe(400);
  });
});
