// A real `sluice run`: listeners added while the process runs, on ports the test already holds.
// The ListenerSet listener and the TLS passthrough listener cannot be bound, so their
// Programmed turns False with the socket's error; the Gateway listener that was bound stays
// served, and so does the Gateway. (Ports taken before startup are refused by the startup checks,
// test/e2e/startup.e2e.test.ts, so the ports are taken after it.)
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_CLASS_YAML } from './backends.ts';

interface Condition {
  type: string;
  status: string;
  message: string;
}
interface ListenerStatus {
  name: string;
  conditions: Condition[];
}

const gatewayYaml = (httpPort: number, tlsPort: number | null) => `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  allowedListeners: {namespaces: {from: Same}}
  listeners:
  - {name: http, port: ${httpPort}, protocol: HTTP}
${tlsPort === null ? '' : `  - {name: passthrough, port: ${tlsPort}, protocol: TLS, tls: {mode: Passthrough}}\n`}`;

const listenerSetYaml = (port: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: extra, namespace: default}
spec:
  parentRef: {name: gw}
  listeners:
  - {name: extra-http, port: ${port}, protocol: HTTP}
`;

function listen(port: number): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  return new Promise((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve(server)));
}

const programmed = (conditions: Condition[] | undefined) => conditions?.find((c) => c.type === 'Programmed');

describe('listeners whose port is taken', () => {
  let dir: string;
  let sluice: SluiceProcess;
  const taken: Server[] = [];
  let ports: { http: number; listenerSet: number; tls: number };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-bind-'));
    ports = { http: await freePort(), listenerSet: await freePort(), tls: await freePort() };
    writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(ports.http, null));
    sluice = await startSluice(['--manifests', dir]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await Promise.all(taken.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  });

  it('report Programmed=False, ListenerSet and TLS passthrough alike, while the bound listener stays served', async () => {
    taken.push(await listen(ports.listenerSet), await listen(ports.tls));
    writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(ports.http, ports.tls));
    writeFileSync(join(dir, 'listenerset.yaml'), listenerSetYaml(ports.listenerSet));

    const objects = await waitFor('the new listeners to report their bind failure', async () => {
      const items = await sluice.status();
      const gateway = items.find((o) => o.kind === 'Gateway' && o.metadata.name === 'gw');
      const set = items.find((o) => o.kind === 'ListenerSet' && o.metadata.name === 'extra');
      const passthrough = (gateway?.status?.listeners as ListenerStatus[] | undefined)?.find((l) => l.name === 'passthrough');
      const extra = (set?.status?.listeners as ListenerStatus[] | undefined)?.find((l) => l.name === 'extra-http');
      return programmed(passthrough?.conditions)?.status === 'False' && programmed(extra?.conditions)?.status === 'False' ? { gateway, set } : undefined;
    }, 15_000);

    const gatewayListeners = objects.gateway.status.listeners as ListenerStatus[];
    const setListeners = objects.set.status.listeners as ListenerStatus[];
    expect(programmed(gatewayListeners.find((l) => l.name === 'passthrough')!.conditions)?.message).toMatch(/^the dataplane cannot listen: .*EADDRINUSE/);
    expect(programmed(setListeners[0]!.conditions)?.message).toMatch(/^the dataplane cannot listen: .*EADDRINUSE/);
    // The ListenerSet has no listener served; the Gateway still serves its HTTP listener.
    expect(programmed(objects.set.status.conditions)).toMatchObject({ status: 'False', message: 'no listener of this ListenerSet could be served' });
    expect(programmed(gatewayListeners.find((l) => l.name === 'http')!.conditions)?.status).toBe('True');
    expect(programmed(objects.gateway.status.conditions)?.status).toBe('True');
    const res = await fetch(`http://127.0.0.1:${ports.http}/`);
    expect(res.status).toBe(404); // served by Sluice: no route attached
    expect(sluice.logs()).toMatch(/ListenerSet\/default\/extra: .*Programmed=False/);
  });
});
