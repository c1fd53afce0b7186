// Gateway spec.addresses in Kubernetes mode with a dataplane Service (--dataplane-service): clients
// reach every Gateway through that Service, so a requested address is not bound by the dataplanes
// (they could not: it is the load balancer's) but looked for among the Service's addresses. One the
// Service carries: Programmed, reported; one it does not: Programmed=False AddressNotAssigned.
import { describe, expect, it } from '@jest/globals';
import { assembleStatuses } from '../../controller/status/assemble.ts';
import { dataplaneAddresses } from '../../controller/status/kubernetes.ts';
import { emptySnapshot, type GatewayClassObject, type GatewayObject, type ServiceObject } from '../../controller/sources/objects.ts';
import { translate } from '../../controller/translate/translate.ts';

const gateway = (name: string, address: string): GatewayObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name, namespace: 'app', generation: 1 },
  spec: { gatewayClassName: 'sluice', addresses: [{ type: 'IPAddress', value: address }], listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
});

describe('static addresses with a dataplane Service', () => {
  it('are matched against the Service, not bound', () => {
    const snapshot = emptySnapshot();
    snapshot.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } } as GatewayClassObject);
    snapshot.gateways.push(gateway('carried', '203.0.113.7'), gateway('not-carried', '198.51.100.1'));
    const service: ServiceObject = {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'dp', namespace: 'sluice-system' },
      spec: { type: 'LoadBalancer', ports: [{ port: 80 }] }, status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } },
    };
    snapshot.services.push(service);
    const result = translate(snapshot, { controllerName: 'sluice.dev/gateway-controller', bindAddress: '0.0.0.0', dataplaneService: 'sluice-system/dp' });

    // The dataplanes bind their own address; nothing is bound on a requested one.
    expect(result.ir.http.listeners.map((l) => l.name)).toEqual(['0.0.0.0:80']);
    const statuses = assembleStatuses(result, { socketFailures: [], service: { name: 'sluice-system/dp', addresses: dataplaneAddresses(service) } });
    const status = (name: string) => statuses.find((s) => s.kind === 'Gateway' && s.name === name)!.status as { addresses: unknown; conditions: { type: string; status: string; reason: string; message: string }[] };
    const programmed = (name: string) => status(name).conditions.find((c) => c.type === 'Programmed');

    expect(programmed('carried')).toMatchObject({ status: 'True', reason: 'Programmed' });
    expect(status('carried').addresses).toEqual([{ type: 'IPAddress', value: '203.0.113.7' }]);
    expect(programmed('not-carried')).toMatchObject({ status: 'False', reason: 'AddressNotAssigned' });
    expect(programmed('not-carried')!.message).toContain('198.51.100.1: not an address of the dataplane Service sluice-system/dp');
  });
});
