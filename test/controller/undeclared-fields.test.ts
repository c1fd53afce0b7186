// Fields of another Gateway API channel (what an experimental-channel CRD lets the API server
// accept in Kubernetes mode) are named, never ignored quietly: on a route, Accepted=False
// UnsupportedValue; on a Gateway, a SLU_TRANSLATION problem. Fields Sluice reads, the experimental
// `retry` and `sessionPersistence` among them, are not reported; Gateway infrastructure labels, which have no effect, are said too.
import { describe, expect, it } from '@jest/globals';
import { undeclaredFields } from '../../controller/schema/validate.ts';
import { emptySnapshot, type GatewayClassObject, type GatewayObject, type HTTPRouteObject } from '../../controller/sources/objects.ts';
import { translate } from '../../controller/translate/translate.ts';

const route = (rule: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'r', namespace: 'ns', generation: 1 },
  spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }], ...rule }], ...extra },
});

describe('undeclared fields', () => {
  it('lists what the v1.6.1 standard schema does not declare, by path', () => {
    const r = route({ filters: [{ type: 'ExternalAuth', externalAuth: { protocol: 'HTTP' } }] }, { useDefaultGateways: 'All' });
    expect(undeclaredFields(r)).toEqual(['spec.rules[0].filters[0].externalAuth', 'spec.useDefaultGateways']);
    expect(undeclaredFields(route({ retry: { attempts: 2 }, timeouts: { request: '1s' }, sessionPersistence: { type: 'Cookie' } }))).toEqual([]);
    expect(undeclaredFields({ apiVersion: 'v1', kind: 'Service', spec: { whatever: 1 } })).toEqual([]);
  });

  it('a route asking for one is not accepted; a Gateway with one is served and the field named in a problem', () => {
    const snapshot = emptySnapshot();
    snapshot.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } } as GatewayClassObject);
    snapshot.gateways.push({
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'ns', generation: 1 },
      spec: { gatewayClassName: 'sluice', defaultScope: 'All', infrastructure: { labels: { team: 'a' } }, listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
    } as GatewayObject);
    snapshot.httpRoutes.push(route({}, { useDefaultGateways: 'All' }) as HTTPRouteObject);
    const result = translate(snapshot, { controllerName: 'sluice.dev/gateway-controller', bindAddress: '127.0.0.1' });
    const status = result.statuses.find((s) => s.kind === 'HTTPRoute')!.status as { parents: { conditions: { type: string; status: string; reason: string; message: string }[] }[] };
    expect(status.parents[0]!.conditions.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'False', reason: 'UnsupportedValue', message: expect.stringContaining('spec.useDefaultGateways') });
    expect(result.ir.http.listeners[0]!.scopes[0]!.virtualHosts).toEqual([]);
    expect(result.problems).toContainEqual(expect.objectContaining({ code: 'SLU_TRANSLATION', object: 'Gateway ns/gw', message: expect.stringContaining('spec.defaultScope') }));
    // A standard field with no effect here: served, and said.
    expect(result.problems).toContainEqual(expect.objectContaining({ object: 'Gateway ns/gw', message: expect.stringContaining('spec.infrastructure.labels not propagated') }));
    expect(result.statuses.find((s) => s.kind === 'Gateway')!.status).toMatchObject({ conditions: expect.arrayContaining([expect.objectContaining({ type: 'Accepted', status: 'True' })]) });
  });
});
