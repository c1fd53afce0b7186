// A real `sluice run` started with 256 descriptors (`prlimit --nofile=256`, as `ulimit -n 256`)
// meets 300 idle client connections: with the default limits it holds what its descriptor budget
// allows and refuses the rest with a 503, keeps reading its manifests and serving its listeners;
// with the limits lifted it really runs out of descriptors (EMFILE) and still survives. Either way,
// once the connections close, requests are served again by the right backend.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';

const DESCRIPTOR_LIMIT = 256;
const CLIENTS = 300;

const route = (name: string, path: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: ${path}}}]
    backendRefs: [{name: good, port: 80}]
`;

interface Held {
  sockets: net.Socket[];
  /** Sockets the server closed, with what it sent first. */
  closed: string[];
}

/** Opens `count` connections that each send one byte and then say nothing. */
async function openIdleClients(port: number, count: number): Promise<Held> {
  const held: Held = { sockets: [], closed: [] };
  await Promise.all(
    Array.from({ length: count }, () => new Promise<void>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', () => undefined); // a reset is a close too
      socket.once('close', () => {
        held.closed.push(Buffer.concat(chunks).toString('latin1'));
        resolve();
      });
      socket.once('connect', () => {
        socket.write('G');
        resolve();
      });
      held.sockets.push(socket);
    })),
  );
  // Let the refusals (503, close) arrive.
  await new Promise((r) => setTimeout(r, 1_000));
  return held;
}

function release(held: Held | null): void {
  for (const socket of held?.sockets ?? []) socket.destroy();
}

/** GET on a fresh connection (no keep-alive pool: a held connection must not answer it); null when refused or cut. */
function get(port: number, path: string): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** The first 200 on a fresh connection, once the held connections are gone. */
function servedAgain(port: number, path: string): Promise<{ status: number; body: string }> {
  return waitFor(
    `${path} served again`,
    async () => {
      const response = await get(port, path);
      return response?.status === 200 ? response : undefined;
    },
    15_000,
  );
}

async function listenerNames(sluice: SluiceProcess): Promise<string[]> {
  const config = (await (await fetch(`${sluice.admin}/api/config`, { signal: AbortSignal.timeout(5_000) })).json()) as { ir: { http: { listeners: Array<{ name: string }> } } };
  return config.ir.http.listeners.map((l) => l.name);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe(`sluice run with ${DESCRIPTOR_LIMIT} descriptors and ${CLIENTS} idle clients`, () => {
  let dir: string;
  let backend: NamedBackend;
  let sluice: SluiceProcess | null = null;
  let held: Held | null = null;
  let port: number;

  beforeAll(async () => {
    backend = await startNamedBackend('good');
  });

  afterEach(async () => {
    release(held);
    held = null;
    await sluice?.stop();
    sluice = null;
    rmSync(dir, { recursive: true, force: true });
  });

  afterAll(async () => {
    await backend?.close();
  });

  async function start(flags: string[]): Promise<SluiceProcess> {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-front-door-'));
    writeFileSync(join(dir, 'gateway.yaml'), `${GATEWAY_YAML}---\n${serviceYaml('good', backend)}`);
    writeFileSync(join(dir, 'good.yaml'), route('good', '/good'));
    port = await freePort();
    // A long headers timeout: the one-byte clients must stay until the test lets them go.
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80), '--request-headers-timeout', '120000', ...flags], 15_000, { descriptorLimit: DESCRIPTOR_LIMIT });
    expect(await get(port, '/good')).toMatchObject({ status: 200, body: expect.stringContaining('"backend":"good"') });
    return sluice;
  }

  it('by default holds what its descriptors allow, refuses the rest with 503, keeps reading manifests, and serves again', async () => {
    const run = await start([]);
    const listeners = await listenerNames(run);
    held = await openIdleClients(port, CLIENTS);

    // (256 − 100) / 2 = 78 connections: the rest were answered 503 and closed.
    const refused = held.closed.filter((text) => text.startsWith('HTTP/1.1 503 '));
    expect(refused.length).toBeGreaterThanOrEqual(CLIENTS - 78 - 5);
    expect(held.closed.length).toBe(refused.length);
    expect((await get(port, '/good'))?.status).toBe(503);
    expect(run.logs().match(/refusing new connections on/g)).toHaveLength(1);

    // Descriptors are left for the manifest folder and the admin port: a new route applies.
    writeFileSync(join(dir, 'more.yaml'), route('more', '/more'));
    await waitFor('the new configuration', async () => ((await (await fetch(`${run.admin}/api/config`)).text()).includes('/more') ? true : undefined), 15_000);
    expect(await listenerNames(run)).toEqual(listeners);
    const metrics = await (await fetch(`${run.admin}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_connections_refused_total\{listener="[^"]+",reason="global_limit"\} [1-9]\d*$/m);

    release(held);
    expect((await servedAgain(port, '/more')).body).toContain('"backend":"good"');
    expect(alive(run.pid)).toBe(true);
  });

  it('with the limits lifted runs out of descriptors (EMFILE), keeps its listeners and configuration, and serves again once clients leave', async () => {
    const run = await start(['--max-connections', '100000', '--shed-descriptors-percent', '100']);
    const listeners = await listenerNames(run);
    held = await openIdleClients(port, CLIENTS);
    // The process could not take them all: libuv closed what it could not accept.
    expect(held.closed.length).toBeGreaterThan(0);
    // Several manifest polls (every 2 s) meet EMFILE meanwhile.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(alive(run.pid)).toBe(true);
    expect(run.logs()).toMatch(/SLU_SOURCE_READ .*EMFILE/);

    release(held);
    expect((await servedAgain(port, '/good')).body).toContain('"backend":"good"');
    expect(await listenerNames(run)).toEqual(listeners);
    expect(run.logs()).not.toMatch(/"listeners":0/);
  });
});

describe('front-door flags of sluice run', () => {
  it('--request-headers-timeout and --idle-timeout bound slow and idle clients of the real process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-front-door-flags-'));
    const backend = await startNamedBackend('good');
    let run: SluiceProcess | null = null;
    try {
      writeFileSync(join(dir, 'gateway.yaml'), `${GATEWAY_YAML}---\n${serviceYaml('good', backend)}---\n${route('good', '/good')}`);
      const port = await freePort();
      run = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80), '--request-headers-timeout', '1000', '--idle-timeout', '1000']);
      const closedAfter = async (send: string): Promise<{ text: string; ms: number }> => {
        const started = Date.now();
        const socket = net.connect(port, '127.0.0.1', () => socket.write(send));
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('error', () => undefined);
        await new Promise((resolve) => socket.once('close', resolve));
        return { text, ms: Date.now() - started };
      };
      const slow = await closedAfter('GET /good HTTP/1.1\r\nHost: a\r\n');
      expect(slow.text).toMatch(/^HTTP\/1\.1 408 /);
      expect(slow.ms).toBeLessThan(6_000);
      const idle = await closedAfter('GET /good HTTP/1.1\r\nHost: a\r\n\r\n');
      expect(idle.text).toMatch(/^HTTP\/1\.1 200 /);
      expect(idle.ms).toBeGreaterThanOrEqual(900);
      expect(idle.ms).toBeLessThan(6_000);
    } finally {
      await run?.stop();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
