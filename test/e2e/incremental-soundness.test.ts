// Incremental soundness (issue #14) from outside: sequences of manifest edits that change what a
// route depends on (a Secret, a ReferenceGrant, a Service port, a Namespace's labels, a listener, the
// GatewayClass, an older route, the file an object lives in, a policy, a CA ConfigMap) but often not
// the route itself. After each edit, two long-lived `sluice run` processes — one worker, and
// `--workers 2` (IR deltas to worker threads) — must serve exactly what a fresh `sluice run` on the
// same folder serves: IR and version, statuses, problems, and the answers to the scenario's requests
// (status, backend, headers, certificate). See incremental-harness.ts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, createSelfSignedServerCertificate, createServerCertificate, tlsSecretData, type CertificateBundle } from '../support/demo/certs.ts';
import { startEchoServer, type EchoServer } from '../support/demo/echo-server.ts';
import { applyStep, comparable, converge, manifestText, observe, startOn, staleConditions, writeFiles, type FileContent, type Incremental, type Observation, type Probe, type Step } from './incremental-harness.ts';

const GW = 'gateway.networking.k8s.io';
const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-01-02T00:00:00Z';
const T2 = '2026-01-03T00:00:00Z';

// Objects carry a creationTimestamp: otherwise it is the time a process first saw them, and a route
// added later would be younger in the incremental process than in the fresh one (a legitimate
// difference in precedence, not a stale cache).
const meta = (name: string, namespace?: string, extra: Record<string, unknown> = {}) => ({ name, ...(namespace ? { namespace } : {}), creationTimestamp: T0, ...extra });

const gatewayClass = (controllerName = 'sluice.dev/gateway-controller') => ({ apiVersion: `${GW}/v1`, kind: 'GatewayClass', metadata: meta('sluice'), spec: { controllerName } });

interface ListenerSpec {
  name: string;
  port: number;
  protocol: string;
  hostname?: string;
  tls?: object;
  allowedRoutes?: object;
}
const gateway = (listeners: ListenerSpec[], name = 'gw', extra: Record<string, unknown> = {}) => ({
  apiVersion: `${GW}/v1`,
  kind: 'Gateway',
  metadata: meta(name, 'default'),
  spec: { gatewayClassName: 'sluice', listeners, ...extra },
});
const HTTP_ALL: ListenerSpec = { name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } };

/** A Service whose port `portName` reaches the echo server `backend` (its HTTP/1.1 port, or h2c for gRPC). */
function service(name: string, backend: EchoServer, opts: { namespace?: string; portName?: string; port?: number; sliceName?: string; h2c?: boolean; https?: boolean } = {}): object[] {
  const namespace = opts.namespace ?? 'default';
  const portName = opts.portName ?? 'http';
  const target = opts.https ? backend.httpsPort! : opts.h2c ? backend.h2cPort! : backend.httpPort;
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: meta(name, namespace), spec: { ports: [{ name: portName, port: opts.port ?? 80 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: meta(`${name}-1`, namespace, { labels: { 'kubernetes.io/service-name': name } }),
      addressType: 'IPv4',
      ports: [{ name: opts.sliceName ?? portName, port: target }],
      endpoints: [{ addresses: ['127.0.0.1'] }],
    },
  ];
}

const httpRoute = (name: string, spec: { hostnames?: string[]; backend: string; backendNamespace?: string; port?: number; path?: string; parent?: object }, namespace = 'default', created = T0) => ({
  apiVersion: `${GW}/v1`,
  kind: 'HTTPRoute',
  metadata: { ...meta(name, namespace), creationTimestamp: created },
  spec: {
    parentRefs: [spec.parent ?? { name: 'gw', namespace: 'default' }],
    ...(spec.hostnames ? { hostnames: spec.hostnames } : {}),
    rules: [{ ...(spec.path ? { matches: [{ path: { type: 'PathPrefix', value: spec.path } }] } : {}), backendRefs: [{ name: spec.backend, ...(spec.backendNamespace ? { namespace: spec.backendNamespace } : {}), port: spec.port ?? 80 }] }],
  },
});

const grpcRoute = (name: string, hostnames: string[], backend: string, created = T0) => ({
  apiVersion: `${GW}/v1`,
  kind: 'GRPCRoute',
  metadata: { ...meta(name, 'default'), creationTimestamp: created },
  spec: { parentRefs: [{ name: 'gw', namespace: 'default' }], hostnames, rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
});

const tlsSecret = (name: string, cert: CertificateBundle) => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: meta(name, 'default'), data: tlsSecretData(cert) });

// -- reading the fresh observation (each step's own expectation) --
type Item = { kind: string; metadata: { name: string; namespace?: string }; status?: any };
const item = (o: Observation, kind: string, name: string, namespace?: string): Item | undefined =>
  (o.statuses as Item[]).find((i) => i.kind === kind && i.metadata.name === name && (namespace === undefined || i.metadata.namespace === namespace));
const routeCondition = (o: Observation, kind: string, name: string, type: string, namespace = 'default'): string | undefined => {
  const parents = item(o, kind, name, namespace)?.status?.parents as { conditions: { type: string; status: string; reason: string }[] }[] | undefined;
  const c = parents?.[0]?.conditions.find((x) => x.type === type);
  return c ? `${c.status} ${c.reason}` : undefined;
};
const gatewayCondition = (o: Observation, type: string, name = 'gw'): string | undefined => {
  const c = (item(o, 'Gateway', name, 'default')?.status?.conditions as { type: string; status: string; reason: string }[] | undefined)?.find((x) => x.type === type);
  return c ? `${c.status} ${c.reason}` : undefined;
};
const listenerCondition = (o: Observation, listener: string, type: string): string | undefined => {
  const l = (item(o, 'Gateway', 'gw', 'default')?.status?.listeners as { name: string; conditions: { type: string; status: string; reason: string }[] }[] | undefined)?.find((x) => x.name === listener);
  const c = l?.conditions.find((x) => x.type === type);
  return c ? `${c.status} ${c.reason}` : undefined;
};

interface Scenario {
  name: string;
  files: Record<string, FileContent>;
  probes: Record<string, Probe>;
  steps: Step[];
  /** Steps whose files are written in place (truncate, then write), not renamed over. */
  inPlace?: boolean;
}

let blue: EchoServer;
let green: EchoServer;
let tlsBackend: EchoServer;
let certA: CertificateBundle;
let certB: CertificateBundle;
let backendCa: string;
let otherCa: string;

const echo = (pod: string, tls?: { cert: string; key: string }) =>
  startEchoServer({ httpPort: 0, h2cPort: 0, ...(tls ? { httpsPort: 0, tls } : {}), identity: { pod, namespace: 'default' } });

/** Runs a scenario: both incremental processes through every step, each step compared with a fresh process. */
async function runScenario(s: Scenario): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-incremental-'));
  const procs: Incremental[] = [];
  try {
    writeFiles(dir, s.files);
    const [one, two] = await Promise.all([startOn(dir), startOn(dir, ['--workers', '2'])]);
    procs.push({ label: 'sluice run', ...one! }, { label: 'sluice run --workers 2', ...two! });
    let previous = await observe(one!.sluice, one!.offset, s.probes, 1);
    for (const step of s.steps) {
      if (s.inPlace) for (const [path, content] of Object.entries(step.files ?? {})) writeFileSync(join(dir, path), content === null ? '' : manifestText(content));
      else applyStep(dir, step);
      let fresh: Observation;
      if (step.reference === 'previous') {
        fresh = previous;
      } else {
        const ref = await startOn(dir);
        try {
          fresh = await observe(ref.sluice, ref.offset, s.probes, 1);
        } finally {
          await ref.sluice.stop();
        }
      }
      step.expect?.(fresh);
      for (const proc of procs) {
        const seen = await converge(proc, fresh, s.probes, proc.label.includes('workers') ? 4 : 1);
        const context = `${s.name}: after "${step.what}", ${proc.label}`;
        expect({ context, ...(comparable(seen, step.reference !== 'previous') as object) }).toEqual({ context, ...(comparable(fresh, step.reference !== 'previous') as object) });
        for (const code of step.problems ?? []) expect({ context, problems: seen.problems.filter((p) => p.startsWith(code)).length > 0 }).toEqual({ context, problems: true });
        const status = (await (await fetch(`${proc.sluice.admin}/api/status`)).json()) as { items: any[] };
        expect({ context, stale: staleConditions(status.items) }).toEqual({ context, stale: [] });
      }
      previous = fresh;
    }
  } finally {
    await Promise.all(procs.map((p) => p.sluice.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

const httpProbe = (host: string, path = '/'): Probe => ({ scheme: 'http', port: 80, host, path });

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
      probes: { x: httpProbe('x.example.com') },
      steps: [
        { what: 'the GatewayClass is deleted', files: { 'class.yaml': null }, expect: (o) => expect(o.answers.x!.status).toMatch(/^error/) },
        { what: 'the GatewayClass is back', files: { 'class.yaml': [gatewayClass()] }, expect: (o) => expect(o.answers.x!.backend).toBe('blue') },
        { what: 'the GatewayClass names another controller', files: { 'class.yaml': [gatewayClass('example.com/other')] } },
        { what: 'the GatewayClass names Sluice again', files: { 'class.yaml': [gatewayClass()] } },
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
        { what: 'the ConfigMap holds the right CA', files: { 'ca.yaml': [caConfigMap(backendCa)] }, expect: (o) => expect(o.answers.x!.backend).toBe('secure') },
        { what: 'the ConfigMap holds a wrong CA again', files: { 'ca.yaml': [caConfigMap(otherCa)] }, expect: (o) => expect(o.answers.x!.status).toBe(502) },
        { what: 'the ConfigMap is removed', files: { 'ca.yaml': null } },
        { what: 'the ConfigMap is back, right', files: { 'ca.yaml': [caConfigMap(backendCa)] }, expect: (o) => expect(o.answers.x!.backend).toBe('secure') },
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

function rateLimit(rule: string, requests: number, unit: string) {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'RateLimitPolicy',
    metadata: meta('limits', 'default'),
    spec: { targetRefs: [{ group: GW, kind: 'HTTPRoute', name: 'web' }], local: { rules: [{ name: rule, limit: { requests, unit } }] } },
  };
}

function backendTlsPolicy() {
  return {
    apiVersion: `${GW}/v1`,
    kind: 'BackendTLSPolicy',
    metadata: meta('secure', 'default'),
    spec: { targetRefs: [{ group: '', kind: 'Service', name: 'secure' }], validation: { caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'ca' }], hostname: 'backend.example.com' } },
  };
}

const caConfigMap = (pem: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('ca', 'default'), data: { 'ca.crt': pem } });

describe('incremental pipeline against a fresh process, after each edit', () => {
  beforeAll(async () => {
    const ca = await createCertificateAuthority({ commonName: 'backend-ca' });
    const other = await createCertificateAuthority({ commonName: 'unrelated-ca' });
    backendCa = ca.certPem;
    otherCa = other.certPem;
    const serving = await createServerCertificate(ca, { dnsNames: ['backend.example.com'] });
    [certA, certB] = await Promise.all([createSelfSignedServerCertificate({ dnsNames: ['*.example.com'] }), createSelfSignedServerCertificate({ dnsNames: ['*.example.com'] })]);
    [blue, green, tlsBackend] = await Promise.all([echo('blue'), echo('green'), echo('secure', { cert: serving.certPem, key: serving.keyPem })]);
  });

  afterAll(async () => {
    await Promise.all([blue, green, tlsBackend].map((b) => b?.close()));
  });

  // Built after beforeAll (the backends' ports are in the manifests): one test per scenario, by index.
  const NAMES = [
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
  ];
  for (const name of NAMES) {
    it(name, async () => {
      const scenario = scenarios().find((s) => s.name === name);
      expect(scenario).toBeDefined();
      await runScenario(scenario!);
    }, 120_000);
  }
});
