// The per-Gateway access log switch through a real `sluice run`: Gateway annotations
// sluice.dev/access-log ("true" | "false") and sluice.dev/access-log-fields. With --access-log, a
// Gateway may opt out or shape its own lines; without it, only the Gateways that opt in are
// logged, to stdout. Lines are asserted as written, per Gateway.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { GATEWAY_CLASS_YAML, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';

const PORTS = { logged: 8101, quiet: 8102, plain: 8103 };

const gatewayYaml = (name: keyof typeof PORTS, annotations: Record<string, string>) => `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ${name}
  namespace: default
  annotations: ${JSON.stringify(annotations)}
spec:
  gatewayClassName: sluice
  listeners: [{name: http, port: ${PORTS[name]}, protocol: HTTP}]
`;

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: logged}, {name: quiet}, {name: plain}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`;

/** Lines written asynchronously: waits (2 s at most) for `count` of them. */
async function lines(read: () => string, count: number): Promise<Record<string, unknown>[]> {
  const parse = () =>
    read()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      // Process log lines (pino) share stdout: access log lines have no level.
      .filter((l) => !('level' in l));
  for (let i = 0; i < 40 && parse().length < count; i++) await new Promise((r) => setTimeout(r, 50));
  return parse();
}

describe('per-Gateway access log through sluice run', () => {
  let dir: string;
  let backend: NamedBackend;
  let offset: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-access-log-'));
    backend = await startNamedBackend('web');
    offset = await freePortOffset(Object.values(PORTS));
  });

  afterAll(async () => {
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (folder: string, annotations: Record<keyof typeof PORTS, Record<string, string>>, args: string[]): Promise<SluiceProcess> => {
    const manifests = join(dir, folder);
    rmSync(manifests, { recursive: true, force: true });
    mkdirSync(manifests);
    const gateways = (Object.keys(PORTS) as (keyof typeof PORTS)[]).map((g) => gatewayYaml(g, annotations[g]));
    writeFileSync(join(manifests, 'all.yaml'), [GATEWAY_CLASS_YAML, ...gateways, serviceYaml('web', backend), ROUTE].join('---\n'));
    return startSluice(['--manifests', manifests, '--listener-port-offset', String(offset), '--bind-address', '127.0.0.1', ...args]);
  };

  const get = async (gateway: keyof typeof PORTS, path: string) => {
    const res = await fetch(`http://127.0.0.1:${PORTS[gateway] + offset}${path}`);
    await res.text();
    return res.status;
  };

  it('with --access-log: a Gateway opts out ("false") or shapes its own lines; the others follow the flag', async () => {
    const log = join(dir, 'access.log');
    const sluice = await start(
      'with-flag',
      { logged: { 'sluice.dev/access-log-fields': 'path,gateway,route_source' }, quiet: { 'sluice.dev/access-log': 'false' }, plain: {} },
      ['--access-log', log, '--access-log-fields', 'method,path,status'],
    );
    try {
      for (const g of ['logged', 'quiet', 'plain'] as const) expect(await get(g, `/${g}`)).toBe(200);
      const written = await lines(() => readFileSync(log, 'utf8'), 2);
      // Give a line the quiet Gateway should not write the same time to appear.
      await new Promise((r) => setTimeout(r, 200));
      expect(await lines(() => readFileSync(log, 'utf8'), 2)).toEqual(written);
      expect(written).toEqual([
        { path: '/logged', gateway: 'default/logged', route_source: 'default/web' },
        { method: 'GET', path: '/plain', status: 200 },
      ]);
    } finally {
      await sluice.stop();
    }
  });

  it('without --access-log: only the Gateways that opt in ("true") are logged, to stdout', async () => {
    const sluice = await start('no-flag', { logged: { 'sluice.dev/access-log': 'true', 'sluice.dev/access-log-fields': 'method,path,status,gateway' }, quiet: {}, plain: {} }, []);
    try {
      for (const g of ['quiet', 'logged', 'plain'] as const) expect(await get(g, `/${g}`)).toBe(200);
      expect(await get('logged', '/logged/again')).toBe(200);
      await lines(() => sluice.logs(), 2);
      await new Promise((r) => setTimeout(r, 200));
      expect(await lines(() => sluice.logs(), 2)).toEqual([
        { method: 'GET', path: '/logged', status: 200, gateway: 'default/logged' },
        { method: 'GET', path: '/logged/again', status: 200, gateway: 'default/logged' },
      ]);
    } finally {
      await sluice.stop();
    }
  });

  it('with --workers 2: a Gateway that opts in has the workers send each of its requests to the one log; the others are not logged', async () => {
    const sluice = await start('workers', { logged: { 'sluice.dev/access-log': 'true', 'sluice.dev/access-log-fields': 'path,gateway' }, quiet: {}, plain: {} }, ['--workers', '2']);
    try {
      for (let i = 0; i < 6; i++) for (const g of ['quiet', 'logged', 'plain'] as const) expect(await get(g, `/${g}/${i}`)).toBe(200);
      await lines(() => sluice.logs(), 6);
      await new Promise((r) => setTimeout(r, 200));
      // (Each worker sends its lines in batches: two workers' lines of one 20 ms may swap; compared in path order.)
      const written = (await lines(() => sluice.logs(), 6)).sort((a, b) => String(a.path).localeCompare(String(b.path)));
      expect(written).toEqual(Array.from({ length: 6 }, (_, i) => ({ path: `/logged/${i}`, gateway: 'default/logged' })));
    } finally {
      await sluice.stop();
    }
  }, 30_000);

  it('with --workers 2 and --access-log FILE: each worker appends its own lines, one per request, none torn', async () => {
    const log = join(dir, 'workers-access.log');
    const sluice = await start('workers-file', { logged: {}, quiet: { 'sluice.dev/access-log': 'false' }, plain: {} }, ['--workers', '2', '--access-log', log, '--access-log-fields', 'path,status']);
    try {
      // Each on a connection of its own, so that the kernel hands them to both workers.
      const once = (gateway: keyof typeof PORTS, path: string) =>
        new Promise<number>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port: PORTS[gateway] + offset, path, agent: false }, (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0))).on('error', reject);
        });
      const COUNT = 40;
      const statuses = await Promise.all(Array.from({ length: COUNT }, (_, i) => once(i % 2 === 0 ? 'logged' : 'quiet', `/file/${i}`)));
      expect(statuses.every((s) => s === 200)).toBe(true);
      await lines(() => readFileSync(log, 'utf8'), COUNT / 2);
      await new Promise((r) => setTimeout(r, 200));
      const written = (await lines(() => readFileSync(log, 'utf8'), COUNT / 2)).map((l) => l.path).sort();
      expect(written).toEqual(Array.from({ length: COUNT / 2 }, (_, i) => `/file/${2 * i}`).sort());
      const perWorker = [...(await (await fetch(`${sluice.admin}/metrics`)).text()).matchAll(/^sluice_worker_http_requests_total\{worker="\d"\} (\d+)$/gm)].map((m) => Number(m[1]));
      expect(Math.min(...perWorker)).toBeGreaterThan(0);
    } finally {
      await sluice.stop();
    }
  }, 30_000);
});
