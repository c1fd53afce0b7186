// More incremental soundness sequences (issue #14), as in incremental-soundness.test.ts: the
// Gateway's backend client certificate, a listener's HSTS, a cross-namespace listener certificate,
// EndpointSlices, TCPRoute (the l4 side), two Gateways sharing a port, ListenerSets, Ingress classes,
// and a route switching listeners. Each edit is compared with a fresh `sluice run` on the same folder,
// for one worker and for --workers 2.
import { expect } from '@jest/globals';
import { createCertificateAuthority, createClientCertificate, createSelfSignedServerCertificate, createServerCertificate, type CertificateBundle } from '../support/demo/certs.ts';
import type { EchoServer } from '../support/demo/echo-server.ts';
import { httpPolicyYaml } from '../support/http-policy-yaml.ts';
import {
  backendTlsPolicy,
  caConfigMap,
  describeScenarios,
  echo,
  gateway,
  gatewayClass,
  grpcRoute,
  GW,
  HTTP_ALL,
  httpProbe,
  httpRoute,
  listenerCondition,
  meta,
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
let mtlsBackend: EchoServer;
let certA: CertificateBundle;
let certB: CertificateBundle;
let clientA: CertificateBundle;
let clientB: CertificateBundle;
let backendCa: string;

const https = (hostname: string, secret: string, options?: Record<string, string>, namespace?: string): ListenerSpec => ({
  name: 'https',
  port: 443,
  protocol: 'HTTPS',
  hostname,
  tls: { certificateRefs: [{ name: secret, ...(namespace ? { namespace } : {}) }], ...(options ? { options } : {}) },
  allowedRoutes: { namespaces: { from: 'All' } },
});

const slice = (name: string, backend: EchoServer, ready = true, sliceName = `${name}-1`) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: meta(sliceName, 'default', { labels: { 'kubernetes.io/service-name': name } }),
  addressType: 'IPv4',
  ports: [{ name: 'http', port: backend.httpPort }],
  endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready } }],
});

const tcpRoute = (backend: string, port = 80) => ({
  apiVersion: `${GW}/v1`,
  kind: 'TCPRoute',
  metadata: meta('tcp', 'default'),
  spec: { parentRefs: [{ name: 'gw', sectionName: 'tcp' }], rules: [{ backendRefs: [{ name: backend, port }] }] },
});

const tlsRoute = (hostnames: string[], backend: string) => ({
  apiVersion: `${GW}/v1`,
  kind: 'TLSRoute',
  metadata: meta('tls', 'default'),
  spec: { parentRefs: [{ name: 'gw', sectionName: 'tls' }], hostnames, rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
});

/** HTTPRoute web to blue, every request mirrored to Service `copy` in `namespace`. */
const mirrored = (namespace: string) => {
  const route = httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' });
  const mirror = { type: 'RequestMirror', requestMirror: { backendRef: { name: 'copy', port: 80, ...(namespace === 'default' ? {} : { namespace }) } } };
  return { ...route, spec: { ...route.spec, rules: route.spec.rules.map((r) => ({ ...r, filters: [mirror] })) } };
};

const listenerSet = (port: number, hostname: string) => ({
  apiVersion: `${GW}/v1`,
  kind: 'ListenerSet',
  metadata: meta('extra', 'default'),
  spec: { parentRef: { name: 'gw' }, listeners: [{ name: 'extra', port, protocol: 'HTTP', hostname }] },
});

const ingressClass = (name: string, isDefault: boolean) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'IngressClass',
  metadata: meta(name, undefined, isDefault ? { annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } } : {}),
  spec: { controller: 'sluice.dev/ingress-controller' },
});
const ingress = (className?: string) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: meta('ing', 'default'),
  spec: { ...(className ? { ingressClassName: className } : {}), rules: [{ host: 'i.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'blue', port: { number: 80 } } } }] } }] },
});

/** Service `name` selecting Pods app=`app`, one such Pod at 127.0.0.1, and its EndpointSlice to the echo server. */
const selected = (name: string, app: string) => {
  const [svc, endpoints] = service(name, name === 'blue' ? blue : green) as [{ spec: object }, object];
  return [
    { ...svc, spec: { ...svc.spec, selector: { app } } },
    endpoints,
    { apiVersion: 'v1', kind: 'Pod', metadata: meta(`${name}-pod`, 'default', { labels: { app } }), spec: { containers: [{ name: 'c', image: 'echo' }] }, status: { podIP: '127.0.0.1', podIPs: [{ ip: '127.0.0.1' }] } },
  ];
};

/** Service blue with its port's appProtocol (h2c: the slice points at the echo server's h2c port). */
const protocolService = (appProtocol?: string) => {
  const [svc, slice] = service('blue', blue, { h2c: appProtocol === 'kubernetes.io/h2c' }) as [{ spec: { ports: object[] } }, object];
  return [{ ...svc, spec: { ports: [{ ...svc.spec.ports[0], ...(appProtocol ? { appProtocol } : {}) }] } }, slice];
};

const l7Policy = (rules: string[], audit = false, app?: string) => httpPolicyYaml({ name: 'l7', port: blue.httpPort, rules, audit, ...(app ? { app } : {}) });

function scenarios(): Scenario[] {
  const services = [...service('blue', blue), ...service('green', green)];
  return [
    {
      name: "the Gateway's backend client certificate replaced in place",
      inPlace: true,
      files: {
        'base.yaml': [
          gatewayClass(),
          gateway([HTTP_ALL], 'gw', { tls: { backend: { clientCertificateRef: { name: 'client' } } } }),
          ...service('secure', mtlsBackend, { portName: 'https', port: 443, https: true }),
          httpRoute('web', { hostnames: ['x.example.com'], backend: 'secure', port: 443 }),
          backendTlsPolicy(),
          caConfigMap(backendCa),
        ],
        'client.yaml': [tlsSecret('client', clientA)],
      },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'the client Secret holds another certificate', files: { 'client.yaml': [tlsSecret('client', clientB)] }, expect: (o) => expect(o.answers.x!.backend).toMatch(/^secure tls backend.example.com client [0-9a-f]{12}$/) },
        { what: 'the client Secret is gone', files: { 'client.yaml': '' }, expect: (o) => expect(o.statuses.some((s: any) => s.kind === 'Gateway' && s.status.conditions.some((c: any) => c.reason === 'InvalidClientCertificateRef'))).toBe(true) },
        { what: 'the first client certificate is back', files: { 'client.yaml': [tlsSecret('client', clientA)] } },
      ],
    },
    {
      name: "a listener's HSTS option edited",
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL, https('*.example.com', 'cert')]), tlsSecret('cert', certA), ...services, httpRoute('web', { hostnames: ['a.example.com'], backend: 'blue' })] },
      probes: { https: { scheme: 'https', port: 443, host: 'a.example.com', path: '/' }, http: httpProbe('a.example.com') },
      steps: [
        { what: 'HSTS on', files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL, https('*.example.com', 'cert', { 'sluice.dev/hsts': 'max-age=600' })]), tlsSecret('cert', certA), ...services, httpRoute('web', { hostnames: ['a.example.com'], backend: 'blue' })] }, expect: (o) => expect(o.answers.https!.headers['strict-transport-security']).toBe('max-age=600') },
        { what: 'HSTS changed', files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL, https('*.example.com', 'cert', { 'sluice.dev/hsts': 'max-age=31536000; includeSubDomains' })]), tlsSecret('cert', certA), ...services, httpRoute('web', { hostnames: ['a.example.com'], backend: 'blue' })] } },
        { what: 'HSTS off', files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL, https('*.example.com', 'cert')]), tlsSecret('cert', certA), ...services, httpRoute('web', { hostnames: ['a.example.com'], backend: 'blue' })] }, expect: (o) => expect(o.answers.https!.headers['strict-transport-security']).toBeUndefined() },
      ],
    },
    {
      name: 'a cross-namespace listener certificate and its ReferenceGrant',
      files: {
        'base.yaml': [gatewayClass(), gateway([HTTP_ALL, https('*.example.com', 'cert', undefined, 'certs')]), { ...tlsSecret('cert', certA), metadata: meta('cert', 'certs') }, ...services, httpRoute('web', { hostnames: ['a.example.com'], backend: 'blue' })],
      },
      probes: { https: { scheme: 'https', port: 443, host: 'a.example.com', path: '/' } },
      steps: [
        {
          what: 'a ReferenceGrant for Secrets from Gateways in default',
          files: { 'grant.yaml': [{ apiVersion: `${GW}/v1beta1`, kind: 'ReferenceGrant', metadata: meta('gw-certs', 'certs'), spec: { from: [{ group: GW, kind: 'Gateway', namespace: 'default' }], to: [{ group: '', kind: 'Secret' }] } }] },
          expect: (o) => expect(listenerCondition(o, 'https', 'ResolvedRefs')).toBe('True ResolvedRefs'),
        },
        {
          what: 'the grant is for another Secret name',
          files: { 'grant.yaml': [{ apiVersion: `${GW}/v1beta1`, kind: 'ReferenceGrant', metadata: meta('gw-certs', 'certs'), spec: { from: [{ group: GW, kind: 'Gateway', namespace: 'default' }], to: [{ group: '', kind: 'Secret', name: 'other' }] } }] },
          expect: (o) => expect(listenerCondition(o, 'https', 'ResolvedRefs')).toBe('False RefNotPermitted'),
        },
        { what: 'the grant is deleted', files: { 'grant.yaml': null } },
      ],
    },
    {
      name: 'EndpointSlices changed under a Service',
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...service('blue', blue), httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })] },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: "the slice points at green's port", files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), { apiVersion: 'v1', kind: 'Service', metadata: meta('blue', 'default'), spec: { ports: [{ name: 'http', port: 80 }] } }, httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })], 'slices.yaml': [slice('blue', green)] }, expect: (o) => expect(o.answers.x!.backend).toBe('green') },
        { what: 'its endpoint not ready', files: { 'slices.yaml': [slice('blue', green, false)] }, expect: (o) => expect(o.answers.x!.status).toBe(503) },
        { what: 'a second slice, ready, to blue', files: { 'slices.yaml': [slice('blue', green, false), slice('blue', blue, true, 'blue-2')] }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'the first slice is removed', files: { 'slices.yaml': [slice('blue', blue, true, 'blue-2')] } },
      ],
    },
    {
      name: 'a TCPRoute and its Service',
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL, { name: 'tcp', port: 8080, protocol: 'TCP' }]), ...services], 'tcp.yaml': [tcpRoute('blue')] },
      probes: { tcp: { scheme: 'http', port: 8080, host: 'anything', path: '/' } },
      steps: [
        { what: 'the TCPRoute goes to green', files: { 'tcp.yaml': [tcpRoute('green')] }, expect: (o) => expect(o.answers.tcp!.backend).toBe('green') },
        { what: "green's Service port changes (the route names 80)", files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL, { name: 'tcp', port: 8080, protocol: 'TCP' }]), ...service('blue', blue), ...service('green', green, { port: 81 })] }, expect: (o) => expect(routeCondition(o, 'TCPRoute', 'tcp', 'ResolvedRefs')).toBe('False BackendNotFound') },
        { what: 'the TCPRoute follows (port 81)', files: { 'tcp.yaml': [tcpRoute('green', 81)] }, expect: (o) => expect(o.answers.tcp!.backend).toBe('green') },
        { what: 'the TCPRoute is deleted', files: { 'tcp.yaml': null } },
      ],
    },
    {
      name: 'two Gateways on one port: the older keeps the hostname',
      files: {
        'gw.yaml': [gatewayClass(), { ...gateway([{ ...HTTP_ALL, hostname: 'x.example.com' }]), metadata: { ...meta('gw', 'default'), creationTimestamp: T1 } }],
        'gw2.yaml': [{ ...gateway([{ ...HTTP_ALL, hostname: 'x.example.com' }], 'gw2'), metadata: { ...meta('gw2', 'default'), creationTimestamp: T2 } }],
        'routes.yaml': [...services, httpRoute('one', { backend: 'blue' }), httpRoute('two', { backend: 'green', parent: { name: 'gw2', namespace: 'default' } })],
      },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'gw2 becomes the older', files: { 'gw2.yaml': [{ ...gateway([{ ...HTTP_ALL, hostname: 'x.example.com' }], 'gw2'), metadata: { ...meta('gw2', 'default'), creationTimestamp: T0 } }] }, expect: (o) => expect(o.answers.x!.backend).toBe('green') },
        { what: 'gw2 moves to y.example.com', files: { 'gw2.yaml': [{ ...gateway([{ ...HTTP_ALL, hostname: 'y.example.com' }], 'gw2'), metadata: { ...meta('gw2', 'default'), creationTimestamp: T0 } }] }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'gw2 is deleted', files: { 'gw2.yaml': null } },
      ],
    },
    {
      name: 'a ListenerSet allowed, moved and removed',
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...services, httpRoute('web', { backend: 'green', parent: { group: GW, kind: 'ListenerSet', name: 'extra' } })], 'set.yaml': [listenerSet(8080, 'ls.example.com')] },
      probes: { ls: { scheme: 'http', port: 8080, host: 'ls.example.com', path: '/' } },
      steps: [
        { what: 'the Gateway allows ListenerSets of its namespace', files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL], 'gw', { allowedListeners: { namespaces: { from: 'Same' } } }), ...services, httpRoute('web', { backend: 'green', parent: { group: GW, kind: 'ListenerSet', name: 'extra' } })] }, expect: (o) => expect(o.answers.ls!.backend).toBe('green') },
        { what: "the ListenerSet's hostname changes", files: { 'set.yaml': [listenerSet(8080, 'other.example.com')] }, expect: (o) => expect(o.answers.ls!.status).toBe(404) },
        { what: 'the ListenerSet is removed', files: { 'set.yaml': null } },
        { what: 'the ListenerSet is back', files: { 'set.yaml': [listenerSet(8080, 'ls.example.com')] }, expect: (o) => expect(o.answers.ls!.backend).toBe('green') },
      ],
    },
    {
      name: 'Ingress classes changed',
      files: { 'base.yaml': [...services], 'class.yaml': [ingressClass('ours', false)], 'ingress.yaml': [ingress('ours')] },
      probes: { i: httpProbe('i.example.com') },
      steps: [
        { what: 'the IngressClass is deleted', files: { 'class.yaml': null } },
        { what: 'it is back, as the default class, and the Ingress names none', files: { 'class.yaml': [ingressClass('ours', true)], 'ingress.yaml': [ingress()] }, expect: (o) => expect(o.answers.i!.backend).toBe('blue') },
        { what: 'no longer the default', files: { 'class.yaml': [ingressClass('ours', false)] }, problems: ['SLU_INGRESS_NO_CLASS'] },
      ],
    },
    {
      name: 'an L7 network policy edited, and the Service selector it depends on',
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...selected('blue', 'blue'), httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })] },
      probes: { root: httpProbe('x.example.com'), allowed: httpProbe('x.example.com', '/allowed') },
      steps: [
        { what: 'a policy allows GET /allowed only', files: { 'policy.yaml': l7Policy(['{method: GET, path: /allowed}']) }, expect: (o) => expect([o.answers.root!.status, o.answers.allowed!.backend]).toEqual([403, 'blue']) },
        { what: 'the policy allows every GET', files: { 'policy.yaml': l7Policy(['{method: GET, path: "/.*"}']) }, expect: (o) => expect(o.answers.root!.backend).toBe('blue') },
        { what: 'back to /allowed only, in audit mode', files: { 'policy.yaml': l7Policy(['{method: GET, path: /allowed}'], true) }, expect: (o) => expect(o.answers.root!.backend).toBe('blue') },
        { what: 'enforced again, selecting app=blue', files: { 'policy.yaml': l7Policy(['{method: GET, path: /allowed}'], false, 'blue') } },
        { what: "the Service's selector and Pod label change to app=other", files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...selected('blue', 'other'), httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' })] } },
        { what: 'the policy is deleted', files: { 'policy.yaml': null }, expect: (o) => expect(o.answers.root!.backend).toBe('blue') },
      ],
    },
    {
      name: "a Service port's appProtocol changed under an HTTPRoute and a GRPCRoute",
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), httpRoute('web', { hostnames: ['x.example.com'], backend: 'blue' }), grpcRoute('rpc', ['g.example.com'], 'blue')], 'svc.yaml': protocolService() },
      probes: { http: httpProbe('x.example.com'), grpc: { scheme: 'grpc', port: 80, host: 'g.example.com', path: '/echo.Echo/Call' } },
      steps: [
        { what: 'appProtocol kubernetes.io/h2c (the slice to the h2c port)', files: { 'svc.yaml': protocolService('kubernetes.io/h2c') }, expect: (o) => expect(o.answers.http!.backend).toBe('blue') },
        { what: 'appProtocol kubernetes.io/ws', files: { 'svc.yaml': protocolService('kubernetes.io/ws') }, expect: (o) => expect(routeCondition(o, 'GRPCRoute', 'rpc', 'ResolvedRefs')).toBe('False UnsupportedProtocol') },
        { what: 'appProtocol unset again', files: { 'svc.yaml': protocolService() } },
      ],
    },
    {
      name: 'a TLS Terminate listener: its Secret replaced, the TLSRoute moved',
      files: {
        'base.yaml': [gatewayClass(), gateway([HTTP_ALL, { name: 'tls', port: 443, protocol: 'TLS', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert' }] }, allowedRoutes: { namespaces: { from: 'All' } } }]), ...services],
        'secret.yaml': [tlsSecret('cert', certA)],
        'route.yaml': [tlsRoute(['t.example.com'], 'blue')],
      },
      probes: { t: { scheme: 'https', port: 443, host: 't.example.com', path: '/' }, u: { scheme: 'https', port: 443, host: 'u.example.com', path: '/' } },
      steps: [
        { what: 'the Secret holds another certificate', files: { 'secret.yaml': [tlsSecret('cert', certB)] }, expect: (o) => expect(o.answers.t!.backend).toBe('blue') },
        { what: 'the TLSRoute moves to u.example.com and green', files: { 'route.yaml': [tlsRoute(['u.example.com'], 'green')] }, expect: (o) => expect(o.answers.u!.backend).toBe('green') },
        { what: 'the Secret is gone', files: { 'secret.yaml': null }, expect: (o) => expect(listenerCondition(o, 'tls', 'ResolvedRefs')).toBe('False InvalidCertificateRef') },
        { what: 'the first certificate is back', files: { 'secret.yaml': [tlsSecret('cert', certA)] } },
      ],
    },
    {
      name: "a RequestMirror filter's backend appears, moves namespace and gets its grant",
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...service('blue', blue), mirrored('default')] },
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'the mirror Service appears', files: { 'mirror.yaml': service('copy', green) }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'ResolvedRefs')).toBe('True ResolvedRefs') },
        { what: 'the filter names it in another namespace', files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL]), ...service('blue', blue), mirrored('mirrors')], 'mirror.yaml': service('copy', green, { namespace: 'mirrors' }) }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'ResolvedRefs')).toBe('False RefNotPermitted') },
        { what: 'a ReferenceGrant allows it', files: { 'grant.yaml': [{ apiVersion: `${GW}/v1beta1`, kind: 'ReferenceGrant', metadata: meta('mirrors', 'mirrors'), spec: { from: [{ group: GW, kind: 'HTTPRoute', namespace: 'default' }], to: [{ group: '', kind: 'Service' }] } }] }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'ResolvedRefs')).toBe('True ResolvedRefs') },
        { what: 'the mirror Service is removed', files: { 'mirror.yaml': null } },
      ],
    },
    {
      name: 'a route switches listeners (sectionName)',
      files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL, { name: 'alt', port: 8080, protocol: 'HTTP' }]), ...services], 'route.yaml': [httpRoute('web', { backend: 'blue', parent: { name: 'gw', sectionName: 'http' } })] },
      probes: { http: httpProbe('x.example.com'), alt: { scheme: 'http', port: 8080, host: 'x.example.com', path: '/' } },
      steps: [
        { what: 'to the alt listener', files: { 'route.yaml': [httpRoute('web', { backend: 'blue', parent: { name: 'gw', sectionName: 'alt' } })] }, expect: (o) => expect([o.answers.http!.status, o.answers.alt!.backend]).toEqual([404, 'blue']) },
        { what: 'to a listener that does not exist', files: { 'route.yaml': [httpRoute('web', { backend: 'blue', parent: { name: 'gw', sectionName: 'nope' } })] }, expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'web', 'Accepted')).toBe('False NoMatchingParent') },
        { what: 'the alt listener is renamed nope', files: { 'base.yaml': [gatewayClass(), gateway([HTTP_ALL, { name: 'nope', port: 8080, protocol: 'HTTP' }]), ...services] }, expect: (o) => expect(o.answers.alt!.backend).toBe('blue') },
      ],
    },
  ];
}

describeScenarios(
  'incremental pipeline against a fresh process, after each edit (more kinds)',
  [
    "the Gateway's backend client certificate replaced in place",
    "a listener's HSTS option edited",
    'a cross-namespace listener certificate and its ReferenceGrant',
    'EndpointSlices changed under a Service',
    'a TCPRoute and its Service',
    'two Gateways on one port: the older keeps the hostname',
    'a ListenerSet allowed, moved and removed',
    'Ingress classes changed',
    'a route switches listeners (sectionName)',
    'an L7 network policy edited, and the Service selector it depends on',
    "a Service port's appProtocol changed under an HTTPRoute and a GRPCRoute",
    'a TLS Terminate listener: its Secret replaced, the TLSRoute moved',
    "a RequestMirror filter's backend appears, moves namespace and gets its grant",
  ],
  async () => {
    const ca = await createCertificateAuthority({ commonName: 'backend-ca' });
    backendCa = ca.certPem;
    const serving = await createServerCertificate(ca, { dnsNames: ['backend.example.com'] });
    [certA, certB, clientA, clientB] = await Promise.all([
      createSelfSignedServerCertificate({ dnsNames: ['*.example.com'] }),
      createSelfSignedServerCertificate({ dnsNames: ['*.example.com'] }),
      createClientCertificate(ca, { commonName: 'gateway-a' }),
      createClientCertificate(ca, { commonName: 'gateway-b' }),
    ]);
    [blue, green, mtlsBackend] = await Promise.all([echo('blue'), echo('green'), echo('secure', { cert: serving.certPem, key: serving.keyPem, ca: ca.certPem })]);
    return async () => {
      await Promise.all([blue, green, mtlsBackend].map((b) => b.close()));
    };
  },
  scenarios,
);
