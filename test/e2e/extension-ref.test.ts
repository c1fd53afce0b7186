// An HTTPRoute ExtensionRef filter through a real `sluice run` and a real backend: Sluice resolves
// no extension filters, so the rule carrying one is not skipped — its requests get 500 and never
// reach the backend — while the route's other rule is served, and the route says why
// (ResolvedRefs=False InvalidKind, still Accepted).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { httpGatewayYaml, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

describe('ExtensionRef filters', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let backend: NamedBackend;
  let port: number;
  const paths: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-extref-'));
    port = await freePort();
    backend = await startNamedBackend('web', (req) => paths.push(req.url ?? ''));
    writeFileSync(join(dir, 'objects.yaml'), `${httpGatewayYaml(port)}---
${serviceYaml('web', backend)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /guarded}}]
    filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Auth, name: strict}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /open}}]
    backendRefs: [{name: web, port: 80}]
`);
    sluice = await startSluice(['--manifests', dir]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answer 500 for their rule without reaching the backend; the other rule is served', async () => {
    const open = await waitFor('the open rule to be served', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/open`);
      return res.status === 200 ? res : undefined;
    }, 15_000);
    expect(await open.json()).toMatchObject({ backend: 'web', path: '/open' });
    const guarded = await fetch(`http://127.0.0.1:${port}/guarded`);
    expect(guarded.status).toBe(500);
    expect(paths).not.toContain('/guarded');

    const items = await sluice.status();
    const route = items.find((o) => o.kind === 'HTTPRoute' && o.metadata.name === 'web');
    const conditions: Condition[] = route.status.parents[0].conditions;
    expect(conditions.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'True' });
    expect(conditions.find((c) => c.type === 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'InvalidKind', message: expect.stringContaining('ExtensionRef filter example.com/Auth strict') });
  });
});
