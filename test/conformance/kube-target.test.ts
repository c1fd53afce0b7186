// The kubernetes target's pieces that need no API server: the applier's order and bookkeeping
// (against a fake client), when a listed object counts as caught up, and the --target flag.
import { describe, expect, it } from '@jest/globals';
import { KubeApiError, type KubeClient, type KubeObject } from '../kube/client.ts';
import { ArgsError, parseRunnerArgs } from './lib/args.ts';
import { KubeApplier, listedCaughtUp, rankOf } from './lib/kube-applier.ts';
import type { KObject } from './lib/manifest-store.ts';

/** Records every call; `refuse` names objects the "API server" answers 422 for. */
function fakeClient(refuse: string[] = []) {
  const calls: string[] = [];
  const live = new Map<string, KubeObject>();
  let rv = 100;
  const client = {
    async apply(obj: KubeObject) {
      calls.push(`apply ${obj.kind}/${obj.metadata.name}`);
      if (refuse.includes(obj.metadata.name)) throw new KubeApiError('PATCH', '/x', 422, { reason: 'Invalid', message: 'spec.x: Invalid value' });
      const result = { ...structuredClone(obj), metadata: { ...obj.metadata, namespace: obj.metadata.namespace ?? (obj.kind === 'Namespace' ? undefined : 'default'), resourceVersion: String(++rv) } };
      if (obj.kind === 'Namespace') (result as any).spec = { finalizers: ['kubernetes'] };
      live.set(`${obj.kind}/${obj.metadata.name}`, result);
      return result;
    },
    async delete(ref: { kind: string; name: string }) {
      calls.push(`delete ${ref.kind}/${ref.name}`);
      if (ref.kind !== 'Namespace') live.delete(`${ref.kind}/${ref.name}`);
    },
    async getOrUndefined(ref: { kind: string; name: string }) {
      return live.get(`${ref.kind}/${ref.name}`);
    },
    async call(method: string, path: string) {
      calls.push(`${method} ${path}`);
      const name = /namespaces\/([^/]+)\/finalize/.exec(path)?.[1];
      if (name) live.delete(`Namespace/${name}`);
      return {};
    },
  };
  return { client: client as unknown as KubeClient, calls };
}

const obj = (kind: string, name: string, spec: unknown = {}, namespace: string | undefined = 'ns'): KObject => ({
  apiVersion: 'x/v1',
  kind,
  metadata: { name, ...(kind === 'Namespace' || kind === 'GatewayClass' ? {} : { namespace }) },
  spec,
});

describe('KubeApplier', () => {
  it('applies in dependency order, skips unchanged objects, deletes in reverse and finalizes namespaces', async () => {
    const { client, calls } = fakeClient();
    const applier = new KubeApplier(client);
    const route = obj('HTTPRoute', 'r');
    const set = [route, obj('Gateway', 'gw'), obj('EndpointSlice', 's'), obj('Service', 'svc'), obj('Secret', 'tls'), obj('GatewayClass', 'gc'), obj('Namespace', 'ns')];
    await applier.sync(set);
    expect(calls).toEqual(['apply Namespace/ns', 'apply GatewayClass/gc', 'apply Secret/tls', 'apply Service/svc', 'apply EndpointSlice/s', 'apply Gateway/gw', 'apply HTTPRoute/r']);
    expect(applier.result(route)?.metadata.resourceVersion).toBeDefined();

    calls.length = 0;
    await applier.sync(structuredClone(set));
    expect(calls).toEqual([]);

    calls.length = 0;
    const svc = obj('Service', 'svc', { ports: [{ port: 81 }] });
    await applier.sync([svc, obj('GatewayClass', 'gc')]);
    expect(calls).toEqual([
      'delete HTTPRoute/r',
      'delete Gateway/gw',
      'delete EndpointSlice/s',
      'delete Secret/tls',
      'apply Service/svc',
      'delete Namespace/ns',
      'PUT /api/v1/namespaces/ns/finalize',
    ]);
    expect(applier.takeProblems()).toEqual([]);
  });

  it('records refusals once, for the suite to report, and retries only changed content', async () => {
    const { client, calls } = fakeClient(['bad']);
    const applier = new KubeApplier(client);
    const bad = obj('HTTPRoute', 'bad');
    await applier.sync([obj('Namespace', 'ns'), bad]);
    expect(applier.takeProblems()).toEqual(['the API server refused HTTPRoute/ns/bad: 422 Invalid: spec.x: Invalid value']);
    expect(applier.refusal(bad)).toMatch(/422/);
    expect(applier.result(bad)).toBeUndefined();
    calls.length = 0;
    await applier.sync([obj('Namespace', 'ns'), bad]);
    expect(calls).toEqual([]);
    await applier.sync([obj('Namespace', 'ns'), obj('HTTPRoute', 'bad', { changed: true })]);
    expect(calls).toEqual(['apply HTTPRoute/bad']);
    // A refused object was never created: removing it deletes nothing.
    calls.length = 0;
    await applier.sync([obj('Namespace', 'ns')]);
    expect(calls).toEqual([]);
  });

  it('ranks classes before Services before Gateways before routes', () => {
    expect(rankOf('Namespace')).toBeLessThan(rankOf('GatewayClass'));
    expect(rankOf('Service')).toBeLessThan(rankOf('EndpointSlice'));
    expect(rankOf('Gateway')).toBeLessThan(rankOf('ListenerSet'));
    expect(rankOf('ReferenceGrant')).toBeLessThan(rankOf('HTTPRoute'));
    expect(rankOf('Ingress')).toBe(rankOf('HTTPRoute'));
  });
});

describe('listedCaughtUp', () => {
  const applied: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'ns', resourceVersion: '50' }, spec: { ports: [{ port: 80 }] } };
  it('takes the same or a later resourceVersion', () => {
    expect(listedCaughtUp(applied, { ...applied })).toBe(true);
    expect(listedCaughtUp(applied, { ...applied, metadata: { ...applied.metadata, resourceVersion: '51' }, status: { x: 1 } })).toBe(true);
  });
  it('takes an older resourceVersion only with the same content', () => {
    const older = { ...applied, metadata: { ...applied.metadata, resourceVersion: '49' } };
    expect(listedCaughtUp(applied, older)).toBe(true);
    expect(listedCaughtUp(applied, { ...older, spec: { ports: [{ port: 81 }] } })).toBe(false);
  });
  it('ignores Secret data, which /api/status redacts', () => {
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 't', namespace: 'ns', resourceVersion: '60' }, data: { 'tls.crt': 'QQ==' } };
    expect(listedCaughtUp(secret, { ...secret, metadata: { ...secret.metadata, resourceVersion: '10' }, data: { 'tls.crt': '<redacted>' } })).toBe(true);
  });
});

describe('--target', () => {
  it('defaults to standalone and accepts kubernetes', () => {
    expect(parseRunnerArgs(['--suite', 'ingress']).target).toBe('standalone');
    expect(parseRunnerArgs(['--suite', 'ingress', '--target', 'kubernetes']).target).toBe('kubernetes');
    expect(() => parseRunnerArgs(['--suite', 'ingress', '--target', 'cluster'])).toThrow(ArgsError);
  });
});
