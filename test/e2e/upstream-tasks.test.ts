// The projects' task walkthroughs (Envoy Gateway's HTTP URL rewrite task, the Gateway API guide on
// redirects and rewrites) through a real `sluice run`: what the docs' curl shows the backend
// receiving. A URLRewrite hostname rewrites Host and sends the client's Host in X-Forwarded-Host,
// as Envoy Gateway's answer in its task shows (and nginx does), appended to one the client sent.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';

const HOST = '127.0.0.1';

describe('task walkthroughs through sluice run: what the backend receives', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;
  let app: NamedBackend;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-upstream-tasks-'));
    app = await startNamedBackend('app');
    offset = await freePortOffset([80]);
    writeFileSync(
      join(dir, 'all.yaml'),
      `${GATEWAY_YAML}---
${serviceYaml('app', app)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rewrite, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [rewrite.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /cardamom}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: elsewhere.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /fennel}}}]
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /same}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: rewrite.example}}]
    backendRefs: [{name: app, port: 80}]
  - backendRefs: [{name: app, port: 80}]
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
});
