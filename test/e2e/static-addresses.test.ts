// Gateway spec.addresses through a real `sluice run`: the dataplane binds every listener on each
// requested IPAddress. 192.0.2.10 (TEST-NET-1) is on no interface, so its bind fails for real
// with EADDRNOTAVAIL: the Gateway is Programmed=False AddressNotUsable and reports only the
// address it serves on, which answers; once the unusable address is removed it is Programmed.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_CLASS_YAML } from './backends.ts';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

const USABLE = '127.0.0.42';
const UNUSABLE = '192.0.2.10';

const gatewayYaml = (port: number, addresses: string[]) => `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  addresses: [${addresses.map((a) => `{type: IPAddress, value: ${a}}`).join(', ')}]
  listeners:
  - {name: http, port: ${port}, protocol: HTTP}
`;

describe('Gateway static addresses', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;

  async function gateway(): Promise<{ conditions: Condition[]; addresses?: { type: string; value: string }[]; generation: number }> {
    const items = await sluice.status();
    const gw = items.find((o) => o.kind === 'Gateway' && o.metadata.name === 'gw');
    return { ...(gw?.status ?? { conditions: [] }), generation: gw?.metadata?.generation };
  }
  const condition = (conditions: Condition[], type: string) => conditions.find((c) => c.type === type);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-addresses-'));
    port = await freePort();
    writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(port, [UNUSABLE, USABLE]));
    sluice = await startSluice(['--manifests', dir]);
  });

  afterAll(async () => {
    await sluice?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an address the host cannot bind: Accepted, Programmed=False AddressNotUsable, served on the other', async () => {
    const status = await waitFor('the unusable address to be reported', async () => {
      const s = await gateway();
      return condition(s.conditions, 'Programmed')?.reason === 'AddressNotUsable' ? s : undefined;
    }, 15_000);
    expect(condition(status.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(condition(status.conditions, 'Programmed')).toMatchObject({ status: 'False' });
    expect(condition(status.conditions, 'Programmed')!.message).toContain(`${UNUSABLE} (`);
    expect(condition(status.conditions, 'Programmed')!.message).toContain('EADDRNOTAVAIL');
    expect(status.addresses).toEqual([{ type: 'IPAddress', value: USABLE }]);
    // The listener is still served, on the usable address.
    const res = await fetch(`http://${USABLE}:${port}/`);
    expect(res.status).toBe(404); // Sluice answering: no route attached
  });

  it('without it, Programmed with exactly the usable address', async () => {
    writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(port, [USABLE]));
    const status = await waitFor('the Gateway to be programmed', async () => {
      const s = await gateway();
      return condition(s.conditions, 'Programmed')?.status === 'True' ? s : undefined;
    }, 15_000);
    expect(status.addresses).toEqual([{ type: 'IPAddress', value: USABLE }]);
    // Bound on the requested address only, not on the default bind address.
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    expect((await fetch(`http://${USABLE}:${port}/`)).status).toBe(404);
  });

  it('an address type Sluice cannot bind: Accepted=False UnsupportedAddress, nothing served', async () => {
    writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(port, [USABLE]).replace(`{type: IPAddress, value: ${USABLE}}`, '{type: Hostname, value: gw.example.com}'));
    const status = await waitFor('the Gateway to be refused', async () => {
      const s = await gateway();
      return condition(s.conditions, 'Accepted')?.status === 'False' ? s : undefined;
    }, 15_000);
    expect(condition(status.conditions, 'Accepted')).toMatchObject({ reason: 'UnsupportedAddress' });
    expect(status.addresses).toBeUndefined();
    await waitFor('the listener to close', async () => fetch(`http://${USABLE}:${port}/`).then(() => undefined, () => true), 15_000);
  });
});
