// The projects' task walkthroughs (Envoy Gateway's HTTP URL rewrite task, the Gateway API guide on
// redirects and rewrites) through a real `sluice run`: what the docs' curl shows the backend
// receiving. A URLRewrite hostname rewrites Host and sends the client's Host in X-Forwarded-Host,
// as Envoy Gateway's answer in its task shows (and nginx does), appended to one the client sent.
// An HTTPS listener without a hostname and one certificate per site (Envoy Gateway's secure
// gateways task) answers each SNI with the certificate whose DNS names cover it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { request } from 'undici';
import { createSelfSignedServerCertificate, type CertificateBundle } from '../support/demo/certs.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { gatewayYaml, serviceYaml, startNamedBackend, tlsSecretYaml, type NamedBackend } from './backends.ts';

const HOST = '127.0.0.1';

describe('task walkthroughs through sluice run: what the backend receives', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;
  let app: NamedBackend;
  let example: CertificateBundle;
  let sample: CertificateBundle;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-upstream-tasks-'));
    app = await startNamedBackend('app');
    example = await createSelfSignedServerCertificate({ dnsNames: ['www.example.com'] });
    sample = await createSelfSignedServerCertificate({ dnsNames: ['www.sample.com', '*.sample.org'] });
    offset = await freePortOffset([80, 443]);
    writeFileSync(
      join(dir, 'all.yaml'),
      `${gatewayYaml(['{name: http, port: 80, protocol: HTTP}', '{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: example}, {name: sample}]}}'])}---
${tlsSecretYaml('example', example)}---
${tlsSecretYaml('sample', sample)}---
${serviceYaml('app', app)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rewrite, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [rewrite.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /cardamom}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: elsewhere.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /fennel}}}]
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /same}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: rewrite.example}}]
    backendRefs: [{name: app, port: 80}]
  - backendRefs: [{name: app, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sites, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: https}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`,
    );
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--bind-address', HOST]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(`http://${HOST}:${80 + offset}${path}`, { headers: { host: 'rewrite.example', ...headers } });
    expect(res.statusCode).toBe(200);
    return (await res.body.json()) as { backend: string; path: string; headers: Record<string, string | undefined> };
  };

  it('a URLRewrite hostname sends the rewritten Host and the client\'s in X-Forwarded-Host', async () => {
    const seen = await get('/cardamom/smidgen');
    expect(seen).toMatchObject({ backend: 'app', path: '/fennel/smidgen' });
    expect(seen.headers.host).toBe('elsewhere.example');
    expect(seen.headers['x-forwarded-host']).toBe('rewrite.example');
  });

  it('appends to an X-Forwarded-Host the client sent, as a proxy in a chain does', async () => {
    const seen = await get('/cardamom', { 'x-forwarded-host': 'outer.example' });
    expect(seen.headers['x-forwarded-host']).toBe('outer.example,rewrite.example');
  });

  it('adds none when the Host is not changed: no rewrite, or a rewrite to the same name', async () => {
    for (const path of ['/plain', '/same']) {
      const seen = await get(path);
      expect(seen.headers.host).toBe('rewrite.example');
      expect(seen.headers['x-forwarded-host']).toBeUndefined();
    }
  });

  /** The DNS names of the certificate the listener answers `servername` with, once it verifies against `ca`. */
  const servedNames = (servername: string | undefined, ca: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: HOST, port: 443 + offset, servername, ca, checkServerIdentity: () => undefined }, () => {
        resolve(socket.getPeerCertificate().subjectaltname ?? '');
        socket.destroy();
      });
      socket.on('error', reject);
    });

  it('an HTTPS listener without a hostname answers each SNI with the certificate that names it', async () => {
    expect(await servedNames('www.example.com', example.certPem)).toBe('DNS:www.example.com');
    expect(await servedNames('www.sample.com', sample.certPem)).toContain('DNS:www.sample.com');
    expect(await servedNames('api.sample.org', sample.certPem)).toContain('DNS:*.sample.org');
    // Any other name, and a client without SNI, get the first certificate.
    expect(await servedNames('other.example', example.certPem)).toBe('DNS:www.example.com');
    expect(await servedNames(undefined, example.certPem)).toBe('DNS:www.example.com');
  });
});
