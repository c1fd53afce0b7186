// Incremental soundness (issue #14) from outside: sequences of manifest edits that change what a
// route depends on (a Secret, a ReferenceGrant, a Service port, a Namespace's labels, a listener, the
// GatewayClass, an older route, the file an object lives in, a policy, a CA ConfigMap) but often not
// the route itself. After each edit, two long-lived `sluice run` processes — one worker, and
// `--workers 2` (IR deltas to worker threads) — must serve exactly what a fresh `sluice run` on the
// same folder serves: IR and version, statuses, problems, and the answers to the scenario's requests
// (status, backend, headers, certificate). See incremental-harness.ts.
import { expect } from '@jest/globals';
import { createCertificateAuthority, createSelfSignedServerCertificate, createServerCertificate, type CertificateBundle } from '../support/demo/certs.ts';
import type { EchoServer } from '../support/demo/echo-server.ts';
import {
  backendTlsPolicy,
  caConfigMap,
  describeScenarios,
  echo,
  gateway,
  gatewayClass,
  gatewayCondition,
  grpcRoute,
  GW,
  HTTP_ALL,
  httpProbe,
  httpRoute,
  item,
  listenerCondition,
  manifestText,
  meta,
  rateLimit,
  routeCondition,
  service,
  T0,
  T1,
  T2,
  tlsSecret,
  type ListenerSpec,
  type Scenario,
} from './incremental-harness.ts';

let blue: EchoServer;
let green: EchoServer;
let tlsBackend: EchoServer;
let certA: CertificateBundle;
let certB: CertificateBundle;
let backendCa: string;
let otherCa: string;

function scenarios(): Scenario[] {
  const base = (listeners: ListenerSpec[] = [HTTP_ALL]) => [gatewayClass(), gateway(listeners), ...service('blue', blue), ...service('green', green)];
  return [
    {
      name: 'TLS Secret replaced in place',
      inPlace: true,
      files: {
        'base.yaml': [...base([HTTP_ALL, { name: 'https', port: 443, protocol: 'HTTPS', hostname: '*.example.com', tls: { certificateRefs: [{ name: 'cert' }] } }]), httpRoute('web', { hostnames: ['a.example.com'], backend: 'blue' })],
        'secret.yaml': [tlsSecret('cert', certA)],
      },
      probes: { https: { scheme: 'https', port: 443, host: 'a.example.com', path: '/' } },
      steps: [
        { what: 'the Secret holds another certificate', files: { 'secret.yaml': [tlsSecret('cert', certB)] }, expect: (o) => expect(o.answers.https!.backend).toBe('blue') },
        { what: 'the Secret is gone', files: { 'secret.yaml': '' }, expect: (o) => expect(listenerCondition(o, 'https', 'ResolvedRefs')).toBe('False InvalidCertificateRef') },
        { what: 'the first certificate is back', files: { 'secret.yaml': [tlsSecret('cert', certA)] }, expect: (o) => expect(listenerCondition(o, 'https', 'ResolvedRefs')).toBe('True ResolvedRefs') },
      ],
    },
    {
      name: 'ReferenceGrant added then removed',
      files: {
        'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...service('blue', blue, { namespace: 'backends' })],
        'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue', backendNamespace: 'backends' }, 'app')],
      },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        {
          what: 'a ReferenceGrant from app HTTPRoutes',
          files: { 'grant.yaml': [{ apiVersion: `${GW}/v1beta1`, kind: 'ReferenceGrant', metadata: meta('from-app', 'backends'), spec: { from: [{ group: GW, kind: 'HTTPRoute', namespace: 'app' }], to: [{ group: '', kind: 'Service' }] } }] },
          expect: (o) => expect([routeCondition(o, 'HTTPRoute', 'web', 'ResolvedRefs', 'app'), o.answers.x!.backend]).toEqual(['True ResolvedRefs', 'blue']),
        },
        {
          what: 'the grant names GRPCRoutes instead',
          files: { 'grant.yaml': [{ apiVersion: `${GW}/v1beta1`, kind: 'ReferenceGrant', metadata: meta('from-app', 'backends'), spec: { from: [{ group: GW, kind: 'GRPCRoute', namespace: 'app' }], to: [{ group: '', kind: 'Service' }] } }] },
          expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'ResolvedRefs', 'app')).toBe('False RefNotPermitted'),
        },
        { what: 'the grant names HTTPRoutes again', files: { 'grant.yaml': [{ apiVersion: `${GW}/v1beta1`, kind: 'ReferenceGrant', metadata: meta('from-app', 'backends'), spec: { from: [{ group: GW, kind: 'HTTPRoute', namespace: 'app' }], to: [{ group: '', kind: 'Service' }] } }] } },
        { what: 'the grant is deleted', files: { 'grant.yaml': null }, expect: (o) => expect([routeCondition(o, 'HTTPRoute', 'web', 'ResolvedRefs', 'app'), o.answers.x!.status]).toEqual(['False RefNotPermitted', 500]) },
      ],
    },
    {
      name: 'Service port renamed and removed',
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })], 'svc.yaml': service('blue', blue) },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'the Service port is renamed (the EndpointSlice still names the old one)', files: { 'svc.yaml': service('blue', blue, { portName: 'web', sliceName: 'http' }) }, expect: (o) => expect(o.answers.x!.status).toBe(503) },
        { what: 'the EndpointSlice follows', files: { 'svc.yaml': service('blue', blue, { portName: 'web' }) }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'the Service port number changes (the route names 80)', files: { 'svc.yaml': service('blue', blue, { portName: 'web', port: 8081 }) }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'ResolvedRefs')).toBe('False BackendNotFound') },
        { what: 'the Service is removed', files: { 'svc.yaml': null }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'ResolvedRefs')).toBe('False BackendNotFound') },
        { what: 'the Service is back', files: { 'svc.yaml': service('blue', blue) }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
      ],
    },
    {
      name: "allowedRoutes selector and a Namespace's labels",
      files: {
        'base.yaml': [gatewayClass(), gateway([{ name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'a' } } } } }]), ...service('blue', blue, { namespace: 'app' })],
        'ns.yaml': [{ apiVersion: 'v1', kind: 'Namespace', metadata: meta('app', undefined, { labels: { team: 'b' } }) }],
        'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' }, 'app')],
      },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'the Namespace gets team=a', files: { 'ns.yaml': [{ apiVersion: 'v1', kind: 'Namespace', metadata: meta('app', undefined, { labels: { team: 'a' } }) }] }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'the Namespace gets team=b again', files: { 'ns.yaml': [{ apiVersion: 'v1', kind: 'Namespace', metadata: meta('app', undefined, { labels: { team: 'b' } }) }] }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'Accepted', 'app')).toBe('False NotAllowedByListeners') },
        { what: 'the selector follows (team=b)', files: { 'base.yaml': [gatewayClass(), gateway([{ name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'b' } } } } }]), ...service('blue', blue, { namespace: 'app' })] } },
        { what: 'the Namespace object is removed', files: { 'ns.yaml': null } },
      ],
    },
    {
      name: 'listener hostname changed',
      files: {
        'base.yaml': [gatewayClass(), gateway([{ ...HTTP_ALL, hostname: 'a.example.com' }]), ...service('blue', blue), ...service('green', green)],
        'routes.yaml': [httpRoute('bc', { hostnames: ['b.example.com', 'c.example.com'], backend: 'blue' }), httpRoute('any', { backend: 'green' })],
      },
      probes: { a: httpProbe('a.example.com'), b: httpProbe('b.example.com'), c: httpProbe('c.example.com'), other: httpProbe('other.org') },
      steps: [
        { what: 'listener hostname b.example.com', files: { 'base.yaml': [gatewayClass(), gateway([{ ...HTTP_ALL, hostname: 'b.example.com' }]), ...service('blue', blue), ...service('green', green)] }, expect: (o) => expect([routeCondition(o, 'HTTPRoute', 'bc', 'Accepted'), o.answers.c!.status]).toEqual(['True Accepted', 404]) },
        { what: 'listener hostname *.example.com', files: { 'base.yaml': [gatewayClass(), gateway([{ ...HTTP_ALL, hostname: '*.example.com' }]), ...service('blue', blue), ...service('green', green)] }, expect: (o) => expect([o.answers.c!.backend, o.answers.a!.backend]).toEqual(['blue', 'green']) },
        { what: 'listener hostname other.org', files: { 'base.yaml': [gatewayClass(), gateway([{ ...HTTP_ALL, hostname: 'other.org' }]), ...service('blue', blue), ...service('green', green)] }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'bc', 'Accepted')).toBe('False NoMatchingListenerHostname') },
        { what: 'no listener hostname', files: { 'base.yaml': base() } },
      ],
    },
    {
      name: 'GatewayClass deleted and re-added',
      files: { 'class.yaml': [gatewayClass()], 'base.yaml': [gateway([HTTP_ALL]), ...service('blue', blue), httpRoute('web', { backend: 'blue' })] },
      probes: { x: httpProbe('x.example.com'), cilium: { scheme: 'http', port: 8080, host: 'x.example.com', path: '/' } },
      steps: [
        { what: 'the GatewayClass is deleted', files: { 'class.yaml': null }, expect: (o) => expect(o.answers.x!.status).toMatch(/^error/) },
        { what: 'the GatewayClass is back', files: { 'class.yaml': [gatewayClass()] }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'the GatewayClass names another controller', files: { 'class.yaml': [gatewayClass('example.com/other')] } },
        { what: 'the GatewayClass names Sluice again', files: { 'class.yaml': [gatewayClass()] } },
        { what: "a Gateway of the implicit class cilium (--gateway-classes)", files: { 'cilium.yaml': [{ ...gateway([{ ...HTTP_ALL, port: 8080 }], 'gw-cilium'), spec: { gatewayClassName: 'cilium', listeners: [{ ...HTTP_ALL, port: 8080 }] } }, httpRoute('on-cilium', { backend: 'blue', parent: { name: 'gw-cilium' } })] }, expect: (o) => expect(gatewayCondition(o, 'Accepted', 'gw-cilium')).toBe('True Accepted') },
        // --gateway-classes serves cilium whatever its controllerName: the folder's own definition replaces the implicit one.
        { what: 'the folder defines cilium, for another controller', files: { 'cilium-class.yaml': [{ ...gatewayClass('example.com/other'), metadata: meta('cilium') }] }, expect: (o) => expect(item(o, 'GatewayClass', 'cilium')?.status?.conditions?.[0]?.type).toBe('Accepted') },
        { what: 'that definition is removed (implicit again)', files: { 'cilium-class.yaml': null }, expect: (o) => expect(gatewayCondition(o, 'Accepted', 'gw-cilium')).toBe('True Accepted') },
      ],
    },
    {
      name: 'two routes swap a conflict (older wins)',
      files: {
        'base.yaml': base(),
        'one.yaml': [httpRoute('one', { hostnames: ['x.example.com'], backend: 'blue' }, 'default', T1)],
        'two.yaml': [httpRoute('two', { hostnames: ['x.example.com'], backend: 'green' }, 'default', T2)],
      },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'two becomes the older (metadata only: no new generation)', files: { 'two.yaml': [httpRoute('two', { hostnames: ['x.example.com'], backend: 'green' }, 'default', T0)] }, expect: (o) => expect(o.answers.x!.backend).toBe('green') },
        { what: 'one is as old as two: the name decides', files: { 'one.yaml': [httpRoute('one', { hostnames: ['x.example.com'], backend: 'blue' }, 'default', T0)] }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'one is renamed zzz', files: { 'one.yaml': [httpRoute('zzz', { hostnames: ['x.example.com'], backend: 'blue' }, 'default', T0)] }, expect: (o) => expect(o.answers.x!.backend).toBe('green') },
      ],
    },
    {
      name: 'a route moved between files',
      files: { 'base.yaml': base(), 'a.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })] },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'moved to b.yaml unchanged', files: { 'a.yaml': null, 'b.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })] } },
        { what: 'moved to sub/c.yaml and changed to green', files: { 'b.yaml': null, 'sub/c.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'green' })] }, expect: (o) => expect(o.answers.x!.backend).toBe('green') },
        { what: 'the folder is renamed', renames: [['sub', 'other']] },
        { what: 'renamed to a file that is not a manifest', renames: [['other/c.yaml', 'other/c.txt']], expect: (o) => expect(o.answers.x!.status).toBe(404) },
      ],
    },
    {
      name: 'the same object in two files',
      files: { 'base.yaml': base(), 'a.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })] },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'b.yaml defines it too (a.yaml wins)', files: { 'b.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'green' })] }, problems: ['SLU_MANIFEST_DUPLICATE'], expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'a.yaml no longer defines it', files: { 'a.yaml': [] }, expect: (o) => expect(o.answers.x!.backend).toBe('green') },
        { what: 'a.yaml defines it again', files: { 'a.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })] }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'a.yaml is deleted', files: { 'a.yaml': null }, expect: (o) => expect(o.answers.x!.backend).toBe('green') },
      ],
    },
    {
      name: 'a YAML error mid-edit, then fixed',
      files: { 'base.yaml': base(), 'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' }), httpRoute('two', { hostnames: ['y.example.com'], backend: 'blue' })] },
      probes: { x: httpProbe('x.example.com'), y: httpProbe('y.example.com') },
      steps: [
        { what: 'route.yaml stops parsing', files: { 'route.yaml': manifestText([httpRoute('web', { hostnames: ['x.example.com'], backend: 'green' })]) + 'spec: [unclosed\n' }, reference: 'previous', problems: ['SLU_MANIFEST_YAML'] },
        { what: 'route.yaml fixed, with the edit', files: { 'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'green' })] }, expect: (o) => expect([o.answers.x!.backend, o.answers.y!.status]).toEqual(['green', 404]) },
        { what: 'route.yaml stops parsing again', files: { 'route.yaml': 'kind: [\n' }, reference: 'previous', problems: ['SLU_MANIFEST_YAML'] },
        { what: 'the broken route.yaml is deleted (its last good objects go with it)', files: { 'route.yaml': null }, expect: (o) => expect(o.answers.x!.status).toBe(404) },
        {
          what: 'an invalid document, then one added before it',
          files: { 'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' }), { ...httpRoute('bad', { hostnames: ['z.example.com'], backend: 'blue' }), spec: { parentRefs: [{ name: 'gw', port: 70000 }] } }] },
          problems: ['SLU_MANIFEST_INVALID'],
        },
        {
          what: 'a document added before the invalid one (its position in the problem moves)',
          files: { 'route.yaml': [httpRoute('two', { hostnames: ['y.example.com'], backend: 'green' }), httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' }), { ...httpRoute('bad', { hostnames: ['z.example.com'], backend: 'blue' }), spec: { parentRefs: [{ name: 'gw', port: 70000 }] } }] },
          problems: ['SLU_MANIFEST_INVALID'],
          expect: (o) => expect(o.problems.find((p) => p.startsWith('SLU_MANIFEST_INVALID'))).toMatch(/document 3/),
        },
      ],
    },
    {
      name: 'a RateLimitPolicy edited',
      files: { 'base.yaml': [...base(), httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })], 'policy.yaml': [rateLimit('per-client', 1000, 'Minute')] },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'the limit changes', files: { 'policy.yaml': [rateLimit('per-client', 500, 'Hour')] }, expect: (o) => expect(o.answers.x!.headers['ratelimit-policy']).toBe('"per-client";q=500;w=3600') },
        { what: 'the rule is renamed', files: { 'policy.yaml': [rateLimit('other', 500, 'Hour')] } },
        { what: 'the policy is removed', files: { 'policy.yaml': null }, expect: (o) => expect(o.answers.x!.headers['ratelimit-policy']).toBeUndefined() },
      ],
    },
    {
      name: 'a BackendTLSPolicy CA ConfigMap changed',
      files: {
        'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...service('secure', tlsBackend, { portName: 'https', port: 443, https: true }), httpRoute('web', { hostnames: ['x.example.com'], backend: 'secure', port: 443 }), backendTlsPolicy()],
        'ca.yaml': [caConfigMap(otherCa)],
      },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'the ConfigMap holds the right CA', files: { 'ca.yaml': [caConfigMap(backendCa)] }, expect: (o) => expect(o.answers.x!.backend).toMatch(/^secure tls backend.example.com /) },
        { what: 'the ConfigMap holds a wrong CA again', files: { 'ca.yaml': [caConfigMap(otherCa)] }, expect: (o) => expect(o.answers.x!.status).toBe(502) },
        { what: 'the ConfigMap is removed', files: { 'ca.yaml': null } },
        { what: 'the ConfigMap is back, right', files: { 'ca.yaml': [caConfigMap(backendCa)] }, expect: (o) => expect(o.answers.x!.backend).toMatch(/^secure tls backend.example.com /) },
      ],
    },
    {
      name: 'GRPCRoute and HTTPRoute cross-serving',
      files: {
        'base.yaml': [...base(), ...service('grpc', green, { h2c: true, portName: 'grpc' })],
        'http.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' }, 'default', T1)],
        'grpc.yaml': [grpcRoute('rpc', ['x.example.com'], 'grpc', T2)],
      },
      probes: { http: httpProbe('x.example.com'), grpc: { scheme: 'grpc', port: 80, host: 'x.example.com', path: '/echo.Echo/Call' }, httpY: httpProbe('y.example.com') },
      steps: [
        { what: 'the HTTPRoute moves to y.example.com', files: { 'http.yaml': [httpRoute('web', { hostnames: ['y.example.com'], backend: 'blue' }, 'default', T1)] }, expect: (o) => expect([routeCondition(o, 'GRPCRoute', 'rpc', 'Accepted'), o.answers.httpY!.backend]).toEqual(['True Accepted', 'blue']) },
        { what: 'the GRPCRoute becomes the older, the HTTPRoute comes back', files: { 'grpc.yaml': [grpcRoute('rpc', ['x.example.com'], 'grpc', T0)], 'http.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' }, 'default', T1)] }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'Accepted')).toBe('False NotAllowedByListeners') },
        { what: 'the GRPCRoute is deleted', files: { 'grpc.yaml': null }, expect: (o) => expect(o.answers.http!.backend).toBe('blue') },
      ],
    },
    {
      name: 'a burst of edits, the last one wins',
      files: { 'base.yaml': base(), 'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })] },
      probes: { x: httpProbe('x.example.com'), y: httpProbe('y.example.com') },
      steps: [
        {
          what: 'the route flips six times in 120 ms, its file deleted and written again among them',
          burst: [
            { 'route.yaml': [httpRoute('web', { hostnames: ['y.example.com'], backend: 'green' })] },
            { 'route.yaml': null },
            { 'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'green' })], 'other.yaml': [httpRoute('other', { hostnames: ['y.example.com'], backend: 'blue' })] },
            { 'route.yaml': [httpRoute('web', { hostnames: ['x.example.com', 'y.example.com'], backend: 'blue' })] },
            { 'other.yaml': null },
          ],
          files: { 'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'green' })] },
          expect: (o) => expect([o.answers.x!.backend, o.answers.y!.status]).toEqual(['green', 404]),
        },
        {
          what: 'a burst that ends where it started',
          burst: [{ 'route.yaml': null }, { 'route.yaml': [httpRoute('web', { hostnames: ['y.example.com'], backend: 'blue' })] }],
          files: { 'route.yaml': [httpRoute('web', { hostnames: ['x.example.com'], backend: 'green' })] },
          expect: (o) => expect(o.answers.x!.backend).toBe('green'),
        },
      ],
    },
    {
      name: 'a multi-document file reordered while one object changes',
      files: { 'all.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...service('blue', blue), ...service('green', green), httpRoute('one', { hostnames: ['x.example.com'], backend: 'blue' }), httpRoute('two', { hostnames: ['y.example.com'], backend: 'green' })] },
      probes: { x: httpProbe('x.example.com'), y: httpProbe('y.example.com') },
      steps: [
        { what: 'documents reversed, route one now to green', files: { 'all.yaml': [httpRoute('two', { hostnames: ['y.example.com'], backend: 'green' }), httpRoute('one', { hostnames: ['x.example.com'], backend: 'green' }), ...service('green', green), ...service('blue', blue), gateway([HTTP_ALL]), gatewayClass()] }, expect: (o) => expect(o.answers.x!.backend).toBe('green') },
        { what: 'routes swap positions and hostnames', files: { 'all.yaml': [httpRoute('one', { hostnames: ['y.example.com'], backend: 'green' }), httpRoute('two', { hostnames: ['x.example.com'], backend: 'blue' }), ...service('green', green), ...service('blue', blue), gateway([HTTP_ALL]), gatewayClass()] }, expect: (o) => expect([o.answers.x!.backend, o.answers.y!.backend]).toEqual(['blue', 'green']) },
        { what: 'a document removed from the middle', files: { 'all.yaml': [httpRoute('one', { hostnames: ['y.example.com'], backend: 'green' }), ...service('green', green), ...service('blue', blue), gateway([HTTP_ALL]), gatewayClass()] }, expect: (o) => expect(o.answers.x!.status).toBe(404) },
      ],
    },
  ];
}

describeScenarios(
  'incremental pipeline against a fresh process, after each edit',
  [
    'TLS Secret replaced in place',
    'ReferenceGrant added then removed',
    'Service port renamed and removed',
    "allowedRoutes selector and a Namespace's labels",
    'listener hostname changed',
    'GatewayClass deleted and re-added',
    'two routes swap a conflict (older wins)',
    'a route moved between files',
    'the same object in two files',
    'a YAML error mid-edit, then fixed',
    'a RateLimitPolicy edited',
    'a BackendTLSPolicy CA ConfigMap changed',
    'GRPCRoute and HTTPRoute cross-serving',
    'a multi-document file reordered while one object changes',
    'a burst of edits, the last one wins',
  ],
  async () => {
    const ca = await createCertificateAuthority({ commonName: 'backend-ca' });
    const other = await createCertificateAuthority({ commonName: 'unrelated-ca' });
    backendCa = ca.certPem;
    otherCa = other.certPem;
    const serving = await createServerCertificate(ca, { dnsNames: ['backend.example.com'] });
    [certA, certB] = await Promise.all([createSelfSignedServerCertificate({ dnsNames: ['*.example.com'] }), createSelfSignedServerCertificate({ dnsNames: ['*.example.com'] })]);
    [blue, green, tlsBackend] = await Promise.all([echo('blue'), echo('green'), echo('secure', { cert: serving.certPem, key: serving.keyPem })]);
    return async () => {
      await Promise.all([blue, green, tlsBackend].map((b) => b.close()));
    };
  },
  scenarios,
);
