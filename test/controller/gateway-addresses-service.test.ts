// Gateway spec.addresses in Kubernetes mode with a dataplane Service (--dataplane-service): clients
// reach every Gateway through that Service, so a requested address is not bound by the dataplanes
// (they could not: it is the load balancer's) but looked for among the Service's addresses. One the
// Service carries: Programmed, reported; one it does not: Programmed=False AddressNotAssigned.
import { describe, expect, it } from '@jest/globals';
import { assembleStatuses } from '../../controller/status/assemble.ts';
import { dataplaneAddresses } from '../../controller/status/kubernetes.ts';
import { emptySnapshot, type GatewayClassObject, type GatewayObject, type ServiceObject } from '../../controller/sources/objects.ts';
import { translate } from '../../controller/translate/translate.ts';

const gateway = (name: string, address: string, type: 'IPAddress' | 'Hostname' = 'IPAddress'): GatewayObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name, namespace: 'app', generation: 1 },
  spec: { gatewayClassName: 'sluice', addresses: [{ type, ...(address ? { value: address } : {}) }], listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
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

  it('a Hostname is the load balancer\'s to give: honoured when the Service reports it, AddressNotAssigned otherwise; refused without a Service', () => {
    const snapshot = emptySnapshot();
    snapshot.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } } as GatewayClassObject);
    const gateways = [gateway('elb', 'gw-123.elb.example.com', 'Hostname'), gateway('other-name', 'shop.example.com', 'Hostname'), gateway('any-name', '', 'Hostname')];
    // One port each: Gateways on one dataplane address and port would conflict.
    gateways.forEach((g, i) => (g.spec.listeners[0]!.port = 80 + i));
    snapshot.gateways.push(...gateways);
    const service: ServiceObject = {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'dp', namespace: 'sluice-system' },
      spec: { type: 'LoadBalancer', ports: [{ port: 80 }] }, status: { loadBalancer: { ingress: [{ hostname: 'gw-123.elb.example.com' }] } },
    };
    snapshot.services.push(service);
    const result = translate(snapshot, { controllerName: 'sluice.dev/gateway-controller', bindAddress: '0.0.0.0', dataplaneService: 'sluice-system/dp' });
    const statuses = assembleStatuses(result, { socketFailures: [], service: { name: 'sluice-system/dp', addresses: dataplaneAddresses(service) } });
    const status = (name: string) => statuses.find((s) => s.kind === 'Gateway' && s.name === name)!.status as { addresses: unknown; conditions: { type: string; status: string; reason: string; message: string }[] };
    const programmed = (name: string) => status(name).conditions.find((c) => c.type === 'Programmed');
    expect(programmed('elb')).toMatchObject({ status: 'True', reason: 'Programmed' });
    expect(status('elb').addresses).toEqual([{ type: 'Hostname', value: 'gw-123.elb.example.com' }]);
    expect(programmed('other-name')).toMatchObject({ status: 'False', reason: 'AddressNotAssigned', message: expect.stringContaining('shop.example.com: not an address of the dataplane Service') });
    // No value: whatever the load balancer gives.
    expect(programmed('any-name')).toMatchObject({ status: 'True', reason: 'Programmed' });

    // Standalone (Sluice binds the addresses itself): no one to give the name; refused, saying why.
    const alone = translate(snapshot, { controllerName: 'sluice.dev/gateway-controller', bindAddress: '127.0.0.1' });
    const accepted = (alone.statuses.find((s) => s.kind === 'Gateway' && s.name === 'elb')!.status as { conditions: { type: string; reason: string; message: string }[] }).conditions.find((c) => c.type === 'Accepted');
    expect(accepted).toMatchObject({ status: 'False', reason: 'UnsupportedAddress', message: expect.stringContaining('a load balancer or DNS record in front of a Gateway gives it a DNS name; here Sluice binds the addresses itself') });
  });
});
