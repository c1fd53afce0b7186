// Where global rate limits find Redis: a flag, an environment variable, or a Secret. Pure: the
// caller passes the flags, the environment and the snapshot (the Secret comes from the
// manifest folder in standalone mode). Kept out of the IR: the password must not reach
// golden files, the admin API or the configuration hash.
//
// Each field is taken from the first source that has it: flag, then environment, then Secret.
//   URL       --redis-url            SLUICE_REDIS_URL        Secret key `url`
//   username  --redis-username       SLUICE_REDIS_USERNAME   Secret key `username`
//   password  --redis-password-file  SLUICE_REDIS_PASSWORD   Secret key `password`
//   TLS CA    --redis-tls-ca FILE    SLUICE_REDIS_TLS_CA=FILE Secret key `ca.crt`   (the caller reads the file)
//   type      --redis-type           SLUICE_REDIS_TYPE       Secret key `type`      single | cluster
// `rediss://` URLs use TLS. --redis-secret NAMESPACE/NAME names the Secret. With type cluster
// the URL lists seed nodes separated by commas (Envoy ratelimit's REDIS_TYPE=cluster, REDIS_URL).
// A value that is not usable (a type other than single/cluster, a URL that is not redis://) is
// refused at start (a usage error naming the flag, variable or Secret key) and, in a running
// `sluice run` whose Secret changed, reported while the Redis in use is kept.
import type { RedisSettings } from '../dataplane/ratelimit/redis-store.ts';
import type { InputSnapshot, KubeObject } from '../controller/sources/objects.ts';

export interface RedisSources {
  url?: string;
  /** `single` (default) or `cluster`. */
  type?: string;
  /** --redis-batch-limit (a flag only: not a connection secret). */
  batchLimit?: number;
  username?: string;
  /** Already read from --redis-password-file. */
  password?: string;
  /** Already read from --redis-tls-ca. */
  tlsCA?: string;
  tlsInsecure?: boolean;
  /** `namespace/name` of a Secret in the snapshot. */
  secret?: string;
}

export const REDIS_ENV = {
  url: 'SLUICE_REDIS_URL',
  username: 'SLUICE_REDIS_USERNAME',
  password: 'SLUICE_REDIS_PASSWORD',
  type: 'SLUICE_REDIS_TYPE',
} as const;

/** Accepted values of --redis-type, SLUICE_REDIS_TYPE and the Secret key `type`. */
export const REDIS_TYPES = ['single', 'cluster'] as const;

export interface ResolvedRedis {
  settings: RedisSettings | null;
  problem: string | null;
  /**
   * The sources name a Redis but a value is not usable (type, URL): no settings. At start that is
   * refused; a running process keeps the Redis it has (never a quiet fall back to the failure mode).
   */
  invalid: boolean;
}

export function resolveRedisSettings(flags: RedisSources, env: Record<string, string | undefined>, snapshot: InputSnapshot | null): ResolvedRedis {
  let secret: Record<string, string> = {};
  let problem: string | null = null;
  if (flags.secret) {
    const [ns, name] = flags.secret.includes('/') ? flags.secret.split('/', 2) : ['default', flags.secret];
    const obj = snapshot?.secrets.find((s) => s.metadata.namespace === ns && s.metadata.name === name);
    if (obj) secret = secretData(obj);
    else problem = `--redis-secret ${ns}/${name}: no such Secret; global rate limits use their failure mode until it exists`;
  }
  const pick = (field: keyof typeof REDIS_ENV, secretKey: string): string | undefined =>
    nonEmpty(flags[field]) ?? nonEmpty(env[REDIS_ENV[field]]) ?? nonEmpty(secret[secretKey]);
  /** Where a field's value came from, for a problem that names it. */
  const source = (field: keyof typeof REDIS_ENV, secretKey: string): string =>
    nonEmpty(flags[field]) !== undefined ? `--redis-${field}` : nonEmpty(env[REDIS_ENV[field]]) !== undefined ? REDIS_ENV[field] : `Secret ${flags.secret} key ${secretKey}`;
  const url = pick('url', 'url');
  if (url === undefined) return { settings: null, problem, invalid: false };
  const type = pick('type', 'type') ?? 'single';
  if (!(REDIS_TYPES as readonly string[]).includes(type)) {
    return { settings: null, problem: `${source('type', 'type')} ${JSON.stringify(type)}: expected ${REDIS_TYPES.join(' or ')}`, invalid: true };
  }
  const redacted = JSON.stringify(url.replace(/\/\/[^@/]*@/g, '//***@'));
  const items = type === 'cluster' ? url.split(',').map((u) => u.trim()) : [url];
  if (!items.every((u) => /^rediss?:\/\/[^/,\s]+/.test(u)) || (type === 'single' && /,\s*rediss?:\/\//.test(url))) {
    const expected = type === 'cluster' ? 'seed nodes redis://HOST:PORT separated by commas (rediss:// for TLS)' : 'redis://HOST:PORT or rediss://HOST:PORT (several nodes: --redis-type cluster)';
    return { settings: null, problem: `${source('url', 'url')} ${redacted}: expected ${expected}`, invalid: true };
  }
  if (new Set(items.map((u) => u.startsWith('rediss://'))).size > 1) return { settings: null, problem: `${source('url', 'url')} ${redacted}: seed nodes mix redis:// and rediss://`, invalid: true };
  const username = pick('username', 'username');
  const password = pick('password', 'password');
  const tlsCA = nonEmpty(flags.tlsCA) ?? nonEmpty(secret['ca.crt']);
  return {
    settings: {
      url,
      ...(type === 'cluster' ? { cluster: true } : {}),
      ...(flags.batchLimit !== undefined ? { batchLimit: flags.batchLimit } : {}),
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(tlsCA !== undefined ? { tlsCA } : {}),
      ...(flags.tlsInsecure ? { tlsInsecure: true } : {}),
    },
    problem,
    invalid: false,
  };
}

function secretData(secret: KubeObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(String(v), 'base64').toString('utf8');
  for (const [k, v] of Object.entries((secret.stringData ?? {}) as Record<string, string>)) out[k] = String(v);
  return out;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
