// The admin API refuses a Host a DNS-rebinding page would send (a public name pointing at the
// admin address) and answers what its real clients send: IPs, localhost, cluster-internal names.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { adminHostAllowed, startAdminServer } from '../../cmd/admin.ts';
import { freePort } from '../support/sluice-process.ts';

function get(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin API Host check (DNS rebinding)', () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    app = await startAdminServer(`127.0.0.1:${port}`, { ready: () => true, objects: () => [], ir: () => null }, new Registry());
  });
  afterAll(async () => {
    await app?.close();
  });

  it.each(['127.0.0.1', '10.0.3.7:9901', '[::1]:9901', 'localhost:9901', 'sluice-admin', 'sluice-admin.sluice-system.svc:9901', 'sluice-admin.sluice-system.svc.cluster.local', 'gw.localhost'])(
    'answers Host %s',
    async (host) => {
      const r = await get(port, '/api/status', host);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).kind).toBe('List');
    },
  );

  it.each(['attacker.example.com', 'attacker.example.com:9901', '127.0.0.1.nip.io', 'localhost.attacker.com', 'svc.attacker.com'])('refuses Host %s with 403 and nothing of the state', async (host) => {
    for (const path of ['/api/status', '/api/config', '/metrics', '/ui', '/api/flows']) {
      const r = await get(port, path, host);
      expect(r.status).toBe(403);
      expect(r.body).toMatch(/DNS rebinding/);
    }
  });

  it('reads the Host as clients write it', () => {
    expect(adminHostAllowed(undefined)).toBe(true);
    expect(adminHostAllowed('[fe80::1]')).toBe(true);
    expect(adminHostAllowed('evil.com.')).toBe(false);
    expect(adminHostAllowed('LOCALHOST')).toBe(true);
  });
});
