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
    expect(resolveRedisSettings({}, {}, snapshot)).toEqual({ settings: null, problem: null, invalid: false });
  });

  it('flag beats environment beats Secret, field by field', () => {
    expect(resolveRedisSettings({ secret: 'infra/redis' }, {}, snapshot).settings).toEqual({ url: 'rediss://redis.infra:6380', password: 'from-secret', tlsCA: '-----BEGIN CERTIFICATE-----' });
    expect(resolveRedisSettings({ secret: 'infra/redis' }, { SLUICE_REDIS_URL: 'redis://env:6379', SLUICE_REDIS_PASSWORD: 'from-env' }, snapshot).settings).toMatchObject({ url: 'redis://env:6379', password: 'from-env' });
    expect(resolveRedisSettings({ url: 'redis://flag:1', secret: 'infra/redis' }, { SLUICE_REDIS_URL: 'redis://env:6379' }, snapshot).settings).toMatchObject({ url: 'redis://flag:1', password: 'from-secret' });
  });

  it('reports a missing Secret and a URL that is not redis://', () => {
    // A missing Secret is not invalid: global rules use their failure mode until it exists.
    expect(resolveRedisSettings({ secret: 'infra/nope' }, {}, snapshot)).toEqual({ settings: null, problem: expect.stringContaining('no such Secret'), invalid: false });
    const bad = resolveRedisSettings({ url: 'http://user:secret@host:1' }, {}, snapshot);
    expect(bad.settings).toBeNull();
    expect(bad.problem).toContain('--redis-url "http://***@host:1": expected redis://');
    expect(bad.problem).not.toContain('secret@');
    expect(bad.invalid).toBe(true);
  });

  it('Redis Cluster: --redis-type cluster (or SLUICE_REDIS_TYPE, or the Secret key type) and seed nodes separated by commas', () => {
    const seeds = 'redis://10.0.0.1:7000, redis://10.0.0.2:7000';
    expect(resolveRedisSettings({ url: seeds, type: 'cluster', batchLimit: 64 }, {}, snapshot).settings).toEqual({ url: seeds, cluster: true, batchLimit: 64 });
    expect(resolveRedisSettings({ url: 'redis://a:1' }, { SLUICE_REDIS_TYPE: 'cluster' }, snapshot).settings).toMatchObject({ cluster: true });
    expect(resolveRedisSettings({ url: 'redis://a:1' }, {}, snapshot).settings).not.toHaveProperty('cluster');
    expect(resolveRedisSettings({ url: 'redis://a:1', type: 'sentinel' }, {}, snapshot).problem).toContain('expected single or cluster');
    expect(resolveRedisSettings({ url: seeds }, {}, snapshot).problem).toContain('--redis-type cluster');
    expect(resolveRedisSettings({ url: 'redis://a:1,rediss://b:2', type: 'cluster' }, {}, snapshot).problem).toContain('mix');
    expect(resolveRedisSettings({ url: 'redis://a:1,b:2', type: 'cluster' }, {}, snapshot).problem).toContain('seed nodes');
  });

  it('an unusable type names where it came from and the accepted values, and is invalid (refused at start, kept over at run time)', () => {
    const secret = emptySnapshot();
    secret.secrets.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'redis', namespace: 'infra' }, stringData: { url: 'redis://r:6379', type: 'sentinel' } });
    expect(resolveRedisSettings({ url: 'redis://a:1', type: 'bogus' }, {}, snapshot)).toEqual({ settings: null, problem: '--redis-type "bogus": expected single or cluster', invalid: true });
    expect(resolveRedisSettings({ url: 'redis://a:1' }, { SLUICE_REDIS_TYPE: 'Cluster' }, snapshot)).toEqual({ settings: null, problem: 'SLUICE_REDIS_TYPE "Cluster": expected single or cluster', invalid: true });
    expect(resolveRedisSettings({ secret: 'infra/redis' }, {}, secret)).toEqual({ settings: null, problem: 'Secret infra/redis key type "sentinel": expected single or cluster', invalid: true });
    // The flag wins over the Secret's bad value.
    expect(resolveRedisSettings({ secret: 'infra/redis', type: 'single' }, {}, secret)).toMatchObject({ settings: { url: 'redis://r:6379' }, invalid: false });
  });
});
