// An HTTP/1.1 endpoint's connections (dataplane/upstream/pools.ts ClientStack): one connection per
// concurrent request, an idle one reused (the last freed), none reused after it failed, closing
// lets requests under way finish. On real sockets against a node:http upstream that counts its
// connections and says which one answered; and over TLS (a BackendTLSPolicy endpoint) against a
// node:https upstream that also says whether the connection resumed an earlier TLS session.

import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request } from 'undici';
import type { BackendTls } from '../../ir/types.ts';
import { ClientStack, UpstreamPools } from '../../dataplane/upstream/pools.ts';
import { createCertificateAuthority, createServerCertificate, type CertificateAuthority } from '../support/demo/certs.ts';
import { freePort } from '../support/ports.ts';

interface Upstream {
  server: http.Server;
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Requests held now (`/hold`): a connection is accepted before its request is read. */
  held(): number;
  /** Answers the requests held now (`/hold`). */
  release(): void;
}

async function upstream(): Promise<Upstream> {
  let accepted = 0;
  let held: (() => void)[] = [];
  const ids = new WeakMap<net.Socket, number>();
  const server = http.createServer((req, res) => {
    req.resume();
    const answer = (): void => {
      res.writeHead(200, { 'x-connection': String(ids.get(req.socket)) });
      res.end(req.url);
    };
    if (req.url === '/hold') held.push(answer);
    else answer();
  });
  server.on('connection', (socket: net.Socket) => ids.set(socket, ++accepted));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    held: () => held.length,
    release: () => {
      for (const answer of held) answer();
      held = [];
    },
  };
}

/** Waits, bounded, until `holding` requests are held upstream: released before they arrive, they would wait forever. */
async function untilHeld(up: Upstream, holding: number): Promise<void> {
  for (const deadline = Date.now() + 15_000; up.held() < holding; ) {
    if (Date.now() > deadline) throw new Error(`${up.held()} of ${holding} requests held upstream after 15 s (${up.accepted()} connections accepted so far)`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function get(stack: ClientStack, path: string): Promise<{ status: number; connection: string; body: string }> {
  const { statusCode, headers, body } = await request(`http://example.com${path}`, { dispatcher: stack });
  return { status: statusCode, connection: String(headers['x-connection']), body: await body.text() };
}

const OPTIONS = { connectTimeout: 2_000, headersTimeout: 0, bodyTimeout: 0 };

describe('ClientStack', () => {
  let up: Upstream;

  beforeAll(async () => {
    up = await upstream();
  });

  afterAll(async () => {
    up.server.closeAllConnections();
    await new Promise<void>((resolve) => up.server.close(() => resolve()));
  });

  it('opens a connection per concurrent request, then serves on the idle ones, the last freed first', async () => {
    const stack = new ClientStack(`http://127.0.0.1:${up.port}`, OPTIONS);
    const before = up.accepted();
    try {
      const held = [get(stack, '/hold'), get(stack, '/hold'), get(stack, '/hold')];
      // Bounded, and saying what the requests came to: a CI run once waited out jest's 60 s here.
      for (const deadline = Date.now() + 15_000; up.accepted() - before < 3; ) {
        if (Date.now() > deadline) {
          const settled = await Promise.race([Promise.allSettled(held), new Promise((resolve) => setTimeout(() => resolve('pending'), 100))]);
          throw new Error(`${up.accepted() - before} of 3 connections after 15 s (stack size ${stack.size}); requests: ${JSON.stringify(settled, (_k, v) => (v instanceof Error ? `${v.name}: ${v.message}` : v))}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await untilHeld(up, 3);
      up.release();
      const answers = await Promise.all(held);
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
      expect(new Set(answers.map((a) => a.connection)).size).toBe(3);
      expect(stack.size).toBe(3);
      // One at a time now (undici frees a connection a loop turn after its answer: setImmediate):
      // always the one freed last, kept alive, no new one.
      const turn = async (): Promise<void> => {
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setImmediate(resolve));
      };
      await turn();
      const again = [];
      for (const path of ['/a', '/b', '/c']) {
        again.push(await get(stack, path));
        await turn();
      }
      expect(again.map((a) => a.body)).toEqual(['/a', '/b', '/c']);
      expect(new Set(again.map((a) => a.connection)).size).toBe(1);
      expect({ accepted: up.accepted() - before, size: stack.size }).toEqual({ accepted: 3, size: 3 });
    } finally {
      await stack.close();
    }
  });

  it('retires a client whose connection failed: none is kept for the next request', async () => {
    // A port nobody listens on: refused at once.
    const deadPort = await freePort();
    const dead = new ClientStack(`http://127.0.0.1:${deadPort}`, OPTIONS);
    try {
      await expect(get(dead, '/x')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(dead.size).toBe(0);
      await expect(get(dead, '/y')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(dead.size).toBe(0);
    } finally {
      await dead.close();
    }
  });

  it('close() lets a request under way finish, then refuses new ones', async () => {
    const stack = new ClientStack(`http://127.0.0.1:${up.port}`, OPTIONS);
    const before = up.accepted();
    const held = get(stack, '/hold');
    await untilHeld(up, 1);
    expect(up.accepted() - before).toBe(1);
    const closed = stack.close();
    await expect(get(stack, '/late')).rejects.toMatchObject({ name: 'ClientClosedError' });
    up.release();
    expect((await held).status).toBe(200);
    await closed;
  });

  it('destroy() ends requests under way with the error', async () => {
    const stack = new ClientStack(`http://127.0.0.1:${up.port}`, OPTIONS);
    const before = up.accepted();
    const held = get(stack, '/hold');
    await untilHeld(up, 1);
    expect(up.accepted() - before).toBe(1);
    await stack.destroy(new Error('going away'));
    await expect(held).rejects.toThrow('going away');
    up.release();
  });
});

describe('ClientStack over TLS (a BackendTLSPolicy endpoint through UpstreamPools)', () => {
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let server: https.Server;
  let port: number;
  let accepted = 0;
  /** TLS connections open now, server side. */
  let open = 0;
  let held: (() => void)[] = [];
  const pools = new UpstreamPools(1_000, 2_000);

  function policy(authority: CertificateAuthority): { settings: BackendTls; client: undefined } {
    const base = { origin: { kind: 'BackendTLSPolicy' as const, namespace: 'default', name: 'p' }, serverName: 'backend.example.com', caCertificates: [{ source: 'configmap/default/ca', pem: authority.certPem }], subjectAltNames: [] };
    return { settings: { ...base, hash: createHash('sha256').update(JSON.stringify(base)).digest('hex').slice(0, 16) }, client: undefined };
  }

  beforeAll(async () => {
    ca = await createCertificateAuthority({ commonName: 'stack-ca' });
    otherCa = await createCertificateAuthority({ commonName: 'unrelated-ca' });
    const serving = await createServerCertificate(ca, { dnsNames: ['backend.example.com'] });
    const ids = new WeakMap<net.Socket, number>();
    server = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      req.resume();
      const socket = req.socket as TLSSocket;
      const answer = (): void => {
        res.writeHead(200, { 'x-connection': String(ids.get(socket)), 'x-resumed': String(socket.isSessionReused()) });
        res.end(req.url);
      };
      if (req.url === '/hold') held.push(answer);
      else answer();
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      ids.set(socket, ++accepted);
      open++;
      socket.once('close', () => open--);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await pools.closeAll();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function tlsGet(stack: ClientStack, path: string): Promise<{ status: number; connection: string; resumed: string; body: string }> {
    const { statusCode, headers, body } = await request(`https://backend.example.com${path}`, { dispatcher: stack });
    return { status: statusCode, connection: String(headers['x-connection']), resumed: String(headers['x-resumed']), body: await body.text() };
  }

  it('a connection per concurrent request, later ones resuming the TLS session of the first, then the idle ones reused', async () => {
    const upstream = pools.acquire({ address: '127.0.0.1', port }, 'http', policy(ca));
    expect(upstream.pool).toBeInstanceOf(ClientStack);
    const stack = upstream.pool as ClientStack;
    // One full handshake first: undici's connector caches the session it gets (per server name).
    const first = await tlsGet(stack, '/first');
    expect(first).toMatchObject({ status: 200, resumed: 'false', body: '/first' });
    // undici frees a connection a loop turn after its answer (setImmediate).
    const turn = async (): Promise<void> => {
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    };
    await turn();
    const before = accepted;
    const concurrent = [tlsGet(stack, '/hold'), tlsGet(stack, '/hold'), tlsGet(stack, '/hold')];
    for (const deadline = Date.now() + 15_000; accepted - before < 2; ) {
      if (Date.now() > deadline) throw new Error(`${accepted - before} of 2 new TLS connections after 15 s (stack size ${stack.size})`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // The idle first connection took one of the three; two new ones took the others. Released only
    // once all three are read: a request released before it arrives would be held forever.
    for (const deadline = Date.now() + 15_000; held.length < 3; ) {
      if (Date.now() > deadline) throw new Error(`${held.length} of 3 requests held upstream after 15 s`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    held.forEach((answer) => answer());
    held = [];
    const answers = await Promise.all(concurrent);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(new Set(answers.map((a) => a.connection)).size).toBe(3);
    expect(accepted - before).toBe(2);
    expect(stack.size).toBe(3);
    // Each new connection resumed the first one's session (no full handshake), as Pool's clients do.
    expect(answers.filter((a) => a.connection !== first.connection).map((a) => a.resumed)).toEqual(['true', 'true']);
    await turn();
    const again = await tlsGet(stack, '/again');
    expect(again.status).toBe(200);
    expect(accepted - before).toBe(2); // kept alive: no new connection
  });

  it('an endpoint that leaves the configuration (pods replaced): its TLS connections are closed', async () => {
    const upstream = pools.acquire({ address: '127.0.0.1', port }, 'http', policy(ca));
    await Promise.all([tlsGet(upstream.pool as ClientStack, '/a'), tlsGet(upstream.pool as ClientStack, '/b')]);
    expect(open).toBeGreaterThan(0);
    pools.retainOnly(new Set());
    expect(pools.size).toBe(0);
    for (const deadline = Date.now() + 2_500; open > 0; ) {
      if (Date.now() > deadline) throw new Error(`${open} TLS connections still open 2.5 s after the endpoint left`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  it('a connection whose certificate fails verification is retired: the request fails, no client is kept', async () => {
    const upstream = pools.acquire({ address: '127.0.0.1', port }, 'http', policy(otherCa));
    const stack = upstream.pool as ClientStack;
    await expect(tlsGet(stack, '/x')).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/) });
    expect(stack.size).toBe(0);
    await expect(tlsGet(stack, '/y')).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/) });
    expect(stack.size).toBe(0);
  });
});
