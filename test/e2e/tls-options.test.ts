// Gateway listener `tls.options` through a real `sluice run`: versions and HSTS as written, an
// invalid key reported on the listener, and a live edit of the options applied without a restart.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { request as httpRequest } from 'undici';
import { freePort, freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';

const HTTPS_PORT = 8443;
const HTTP_PORT = 8080;

function manifests(backendPort: number, options: Record<string, string>): string {
  const yaml = (o: unknown) => JSON.stringify(o); // JSON is YAML
  return [
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: 'default' },
      spec: {
        gatewayClassName: 'sluice',
        listeners: [
          { name: 'http', port: HTTP_PORT, protocol: 'HTTP' },
          { name: 'https', port: HTTPS_PORT, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'site-tls' }], options } },
          { name: 'typo', port: HTTPS_PORT + 1, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'site-tls' }], options: { 'sluice.dev/tls-min-versoin': '1.3' } } },
        ],
      },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web', namespace: 'default' },
      spec: { parentRefs: [{ name: 'gw' }], hostnames: ['www.example.com'], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80, targetPort: backendPort }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-demo', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: backendPort }],
      endpoints: [{ addresses: ['127.0.0.1'], targetRef: { kind: 'Pod', namespace: 'default', name: 'web-1' } }],
    },
  ]
    .map(yaml)
    .join('\n---\n');
}

/** The protocol a handshake settled on, or `refused`. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'www.example.com', rejectUnauthorized: false, ...options }, () => {
      resolve(socket.getProtocol() ?? 'unknown');
      socket.end();
    });
    socket.on('error', () => resolve('refused'));
  });
}

function stsOverHttps(port: number): Promise<{ status: number; sts: string | undefined }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/', servername: 'www.example.com', headers: { host: 'www.example.com' }, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sts: res.headers['strict-transport-security'] }));
    })
      .on('error', reject)
      .end();
  });
}

async function eventually<T>(probe: () => Promise<T>, wanted: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!wanted(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await probe();
  }
  return value;
}

describe('Gateway tls.options in a real sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;
  let backendPort: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-tls-options-'));
    backendPort = await freePort();
    writeFileSync(join(dir, 'gateway.yaml'), manifests(backendPort, { 'sluice.dev/tls-profile': 'modern', 'sluice.dev/hsts': 'max-age=600; includeSubDomains' }));
    offset = await freePortOffset([HTTP_PORT, HTTPS_PORT, HTTPS_PORT + 1]);
    // --demo-backends: the echo backend, and the certificate for the missing site-tls Secret.
    sluice = await startSluice(['--manifests', dir, '--demo-backends', '--listener-port-offset', String(offset)]);
  });

  afterAll(async () => {
    await sluice?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the modern profile with HSTS on HTTPS only, and refuses the listener with an unknown key', async () => {
    const https = HTTPS_PORT + offset;
    expect(await eventually(() => handshake(https, {}), (p) => p !== 'refused')).toBe('TLSv1.3');
    expect(await handshake(https, { maxVersion: 'TLSv1.2' })).toBe('refused');
    expect(await stsOverHttps(https)).toEqual({ status: 200, sts: 'max-age=600; includeSubDomains' });

    // undici's request, not fetch: fetch drops the Host header.
    const plain = await httpRequest(`http://127.0.0.1:${HTTP_PORT + offset}/`, { headers: { host: 'www.example.com' } });
    await plain.body.dump();
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['strict-transport-security']).toBeUndefined();

    const gateway = (await sluice.status()).find((o) => o.kind === 'Gateway' && o.metadata.name === 'gw');
    const typo = gateway.status.listeners.find((l: { name: string }) => l.name === 'typo');
    expect(typo.conditions).toContainEqual(
      expect.objectContaining({ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: expect.stringContaining('sluice.dev/tls-min-versoin') }),
    );
    expect(await handshake(HTTPS_PORT + 1 + offset, {})).toBe('refused'); // not served at all
  });

  it('applies edited options on reload, without a restart', async () => {
    const https = HTTPS_PORT + offset;
    writeFileSync(join(dir, 'gateway.yaml'), manifests(backendPort, { 'sluice.dev/tls-max-version': '1.2' }));
    expect(await eventually(() => handshake(https, {}), (p) => p === 'TLSv1.2')).toBe('TLSv1.2');
    expect(await handshake(https, { minVersion: 'TLSv1.3' })).toBe('refused');
    expect(await stsOverHttps(https)).toEqual({ status: 200, sts: undefined });
  });
});
