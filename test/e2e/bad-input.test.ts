// Bad input never harms unrelated routes: a malformed YAML file, an unknown
// kind, an invalid regex and a route to a missing Service each give a log
// line or a status condition while the good route keeps serving.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';

const route = (name: string, path: string, service: string, pathType = 'PathPrefix') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: ${pathType}, value: "${path}"}}]
    backendRefs: [{name: ${service}, port: 80}]
`;

describe('bad input', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let backend: NamedBackend;
  let port: number;
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  };
  const parentConditions = async (name: string) => {
    const items = await sluice.status();
    const r = items.find((o) => o.kind === 'HTTPRoute' && o.metadata.name === name);
    return r?.status?.parents?.[0]?.conditions as { type: string; status: string; reason: string; message: string }[] | undefined;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-bad-'));
    backend = await startNamedBackend('good');
    writeFileSync(join(dir, 'gateway.yaml'), GATEWAY_YAML + '---\n' + serviceYaml('good', backend));
    writeFileSync(join(dir, 'good.yaml'), route('good', '/good', 'good'));
    port = await freePort();
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the good route to begin with', async () => {
    expect(await get('/good')).toMatchObject({ status: 200, body: expect.stringContaining('"backend":"good"') });
  });

  it('logs a malformed YAML file and keeps serving', async () => {
    writeFileSync(join(dir, 'broken.yaml'), 'apiVersion: v1\nkind: Service\n  metadata: [unclosed\n');
    await waitFor('a log line naming broken.yaml', async () => (sluice.logs().includes('broken.yaml: invalid YAML') ? true : undefined));
    expect((await get('/good')).status).toBe(200);
  });

  it('keeps the last good content of a file that becomes malformed', async () => {
    writeFileSync(join(dir, 'good.yaml'), route('good', '/good', 'good') + 'oops: [\n');
    await waitFor('a log line naming good.yaml', async () => (sluice.logs().includes('good.yaml: invalid YAML') ? true : undefined));
    expect((await get('/good')).status).toBe(200);
    writeFileSync(join(dir, 'good.yaml'), route('good', '/good', 'good'));
  });

  it('logs an unknown kind and keeps serving', async () => {
    writeFileSync(join(dir, 'widget.yaml'), 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n');
    await waitFor('a log line about Widget', async () => (sluice.logs().includes('Sluice does not read this kind') ? true : undefined));
    expect((await get('/good')).status).toBe(200);
  });

  it('rejects a route with an invalid regex by condition, other routes unharmed', async () => {
    writeFileSync(join(dir, 'regex.yaml'), route('regex', '/(unclosed', 'good', 'RegularExpression'));
    const conditions = await waitFor('the regex route status', () => parentConditions('regex'));
    expect(conditions).toContainEqual(expect.objectContaining({ type: 'Accepted', status: 'False', reason: 'UnsupportedValue' }));
    expect(conditions.find((c) => c.type === 'Accepted')!.message).toMatch(/invalid regular expression/);
    // The log arrives on another channel than the admin API's answer: wait for it.
    await waitFor('a log line about the regex route', async () => (/HTTPRoute\/default\/regex: .*Accepted=False UnsupportedValue/.test(sluice.logs()) ? true : undefined));
    expect((await get('/good')).status).toBe(200);
  });

  it('answers 500 for a route to a missing Service and says BackendNotFound', async () => {
    writeFileSync(join(dir, 'missing.yaml'), route('missing', '/missing', 'no-such-service'));
    const conditions = await waitFor('the missing-backend route status', async () => {
      const c = await parentConditions('missing');
      return c?.some((x) => x.reason === 'BackendNotFound') ? c : undefined;
    });
    expect(conditions).toContainEqual(expect.objectContaining({ type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound' }));
    await waitFor('500 on /missing', async () => ((await get('/missing')).status === 500 ? true : undefined));
    expect((await get('/good')).status).toBe(200);
  });
});
