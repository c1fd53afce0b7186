// BackendTLSPolicy translation beyond the golden case (test/golden/translate/BackendTLSPolicy):
// the golden inputs with 17 more Gateways routing to the policy's Service, which is more than the
// 16 entries `status.ancestors` may hold.
import { describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import type { GatewayObject, HTTPRouteObject } from '../../controller/sources/objects.ts';
import { translate } from '../../controller/translate/translate.ts';
import { TRANSLATE_CASES, loadInputs, translateOptionsOf } from '../golden/translate-case.ts';

describe('BackendTLSPolicy translation', () => {
  it('writes at most 16 ancestors, the first by name, and reports the rest', () => {
    const dir = join(TRANSLATE_CASES, 'BackendTLSPolicy');
    const { snapshot } = loadInputs(dir);
    const extra = Array.from({ length: 17 }, (_, i) => `extra-${String(i).padStart(2, '0')}`);
    const gateways: GatewayObject[] = extra.map((name, i) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name, namespace: 'infra', generation: 1 },
      spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', port: 9000 + i, protocol: 'HTTP' }] },
    }));
    const route: HTTPRouteObject = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'extra', namespace: 'infra', generation: 1 },
      spec: { parentRefs: extra.map((name) => ({ name })), rules: [{ backendRefs: [{ name: 'system', port: 443 }] }] },
    };
    const result = translate({ ...snapshot, gateways: [...snapshot.gateways, ...gateways], httpRoutes: [...snapshot.httpRoutes, route] }, translateOptionsOf(dir));

    const policy = result.statuses.find((s) => s.kind === 'BackendTLSPolicy' && s.name === 'system')!;
    const ancestors = (policy.status as { ancestors: { ancestorRef: { name: string } }[] }).ancestors;
    // 19 in all with gw and gw-bad of the golden case; by `namespace/name`, extra-* come first.
    expect(ancestors.map((a) => a.ancestorRef.name)).toEqual(extra.slice(0, 16));
    expect(result.problems.map((p) => p.message)).toContain(
      'BackendTLSPolicy infra/system: used through 19 Gateways; status.ancestors holds 16, the first 16 by name are written',
    );
    // Every Gateway's route still reaches the backend over TLS.
    expect(result.ir.http.backends['service/infra/system/port/443']?.tls?.origin).toEqual({ kind: 'BackendTLSPolicy', namespace: 'infra', name: 'system' });
  });
});
