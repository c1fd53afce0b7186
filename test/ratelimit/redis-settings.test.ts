// Where Redis comes from: flag, then environment variable, then Secret, field by field.
import { describe, expect, it } from '@jest/globals';
import { emptySnapshot } from '../../controller/sources/objects.ts';
import { resolveRedisSettings } from '../../cmd/redis-settings.ts';

const snapshot = emptySnapshot();
snapshot.secrets.push({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'redis', namespace: 'infra' },
  data: { url: Buffer.from('rediss://redis.infra:6380').toString('base64'), password: Buffer.from('from-secret').toString('base64') },
  stringData: { 'ca.crt': '-----BEGIN CERTIFICATE-----' },
});

describe('Redis settings', () => {
  it('none: no Redis, no problem', () => {
    expect(resolveRedisSettings({}, {}, snapshot)).toEqual({ settings: null, problem: null });
  });

  it('flag beats environment beats Secret, field by field', () => {
    expect(resolveRedisSettings({ secret: 'infra/redis' }, {}, snapshot).settings).toEqual({ url: 'rediss://redis.infra:6380', password: 'from-secret', tlsCA: '-----BEGIN CERTIFICATE-----' });
    expect(resolveRedisSettings({ secret: 'infra/redis' }, { SLUICE_REDIS_URL: 'redis://env:6379', SLUICE_REDIS_PASSWORD: 'from-env' }, snapshot).settings).toMatchObject({ url: 'redis://env:6379', password: 'from-env' });
    expect(resolveRedisSettings({ url: 'redis://flag:1', secret: 'infra/redis' }, { SLUICE_REDIS_URL: 'redis://env:6379' }, snapshot).settings).toMatchObject({ url: 'redis://flag:1', password: 'from-secret' });
  });

  it('reports a missing Secret and a URL that is not redis://', () => {
    expect(resolveRedisSettings({ secret: 'infra/nope' }, {}, snapshot)).toEqual({ settings: null, problem: expect.stringContaining('no such Secret') });
    const bad = resolveRedisSettings({ url: 'http://user:secret@host:1' }, {}, snapshot);
    expect(bad.settings).toBeNull();
    expect(bad.problem).toContain('expected redis://');
    expect(bad.problem).not.toContain('secret@');
  });
});
