// Which changes cost a translation: translate() reports the Secrets and
// ConfigMaps it looked up and whether Pods matter; other changes of those kinds are dropped.
import { describe, expect, it } from '@jest/globals';
import { emptySnapshot } from '../../controller/sources/objects.ts';
import { isRelevantChange } from '../../controller/sources/relevance.ts';
import { translate } from '../../controller/translate/translate.ts';

const GW = 'gateway.networking.k8s.io/v1';
const options = { controllerName: 'sluice.dev/gateway-controller', bindAddress: '127.0.0.1', servedClassNames: ['cilium'] };

function snapshotWithHttpsGateway() {
  const s = emptySnapshot();
  s.gatewayClasses.push({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'cilium' }, spec: { controllerName: 'sluice.dev/gateway-controller' } });
  s.gateways.push({
    apiVersion: GW, kind: 'Gateway', metadata: { name: 'gw', namespace: 'app', generation: 1 },
    spec: { gatewayClassName: 'cilium', listeners: [{ name: 'https', protocol: 'HTTPS', port: 443, tls: { certificateRefs: [{ name: 'gw-cert' }] } }] },
  });
  return s;
}

describe('source change relevance', () => {
  it('translate names the Secrets it looked up, found or not, and says Pods do not matter without policies', () => {
    const { dependsOn } = translate(snapshotWithHttpsGateway(), options);
    expect(dependsOn).toEqual({ references: ['Secret/app/gw-cert'], pods: false });
  });

  it('Pods matter once a network policy exists', () => {
    const s = snapshotWithHttpsGateway();
    s.networkPolicies.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'app' }, spec: { podSelector: {} } });
    expect(translate(s, options).dependsOn.pods).toBe(true);
  });

  it('drops changes to Secrets, ConfigMaps and Pods nothing depends on, keeps everything else', () => {
    const last = { references: ['Secret/app/gw-cert', 'ConfigMap/app/ca'], pods: false };
    expect(isRelevantChange({ kind: 'Secret', namespace: 'app', name: 'gw-cert' }, last)).toBe(true);
    expect(isRelevantChange({ kind: 'Secret', namespace: 'app', name: 'unrelated' }, last)).toBe(false);
    expect(isRelevantChange({ kind: 'ConfigMap', namespace: 'app', name: 'ca' }, last)).toBe(true);
    expect(isRelevantChange({ kind: 'ConfigMap', namespace: 'other', name: 'ca' }, last)).toBe(false);
    expect(isRelevantChange({ kind: 'Pod', namespace: 'app', name: 'web-1' }, last)).toBe(false);
    expect(isRelevantChange({ kind: 'Pod', namespace: 'app', name: 'web-1' }, { ...last, pods: true })).toBe(true);
    expect(isRelevantChange({ kind: 'EndpointSlice', namespace: 'app', name: 'web-1' }, last)).toBe(true);
    expect(isRelevantChange({ kind: 'Secret', namespace: 'app', name: 'x' }, null)).toBe(true);
    expect(isRelevantChange(undefined, last)).toBe(true);
  });
});
