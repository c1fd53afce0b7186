// Fields found SILENT by the field-by-field survey of every schema Sluice reads (helper FS: a
// non-default value per field in a minimal manifest, translated as `sluice run` reads a folder):
// each case below was accepted and ignored, or refused without saying what was meant, and must now
// be served or said. Read the way `sluice run` reads a folder (ManifestFolder, implicit classes,
// translate).
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withImplicitGatewayClasses } from '../../controller/sources/implicit-classes.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { translate } from '../../controller/translate/translate.ts';
import { redactIR } from '../../ir/version.ts';
import { emptySnapshot } from '../../controller/sources/objects.ts';
import type { ObjectStatus } from '../../controller/status/conditions.ts';

const CONTROLLER = 'sluice.dev/gateway-controller';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-field-survey-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function run(text: string) {
  writeFileSync(join(dir, 'all.yaml'), text);
  const load = new ManifestFolder(dir).load();
  const result = translate(withImplicitGatewayClasses(load.snapshot, ['cilium'], CONTROLLER), {
    controllerName: CONTROLLER,
    bindAddress: '127.0.0.1',
    servedClassNames: ['cilium'],
    ingress: { classNames: ['cilium'], controllers: ['sluice.dev/ingress-controller'], enforceHttps: true },
    standalone: true,
  });
  return {
    result,
    sourceProblems: load.problems.map((p) => `${p.code} ${p.message}`),
    problems: result.problems.map((p) => `${p.code} ${p.message}`),
  };
}

const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: cilium
  listeners:
  - {name: http, protocol: HTTP, port: 8080}
`;
const ROUTE = (kind = 'HTTPRoute', apiVersion = 'gateway.networking.k8s.io/v1', backend = 'svc') => `apiVersion: ${apiVersion}
kind: ${kind}
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: ${backend}, namespace: default, port: 8080}]
`;
const SERVICE = (spec = '', port = '') => `apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec:
  selector: {app: svc}
  ports: [{name: http, port: 8080${port}}]
${spec}`;
const SLICE = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-1, namespace: default, labels: {kubernetes.io/service-name: svc}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{name: http, port: 8080}]
`;
const docs = (...d: string[]) => d.join('---\n');

const statusOfGateway = (statuses: ObjectStatus[]) => statuses.find((s) => s.kind === 'Gateway')!.status;

/** `reason: message` of condition `type` of the first parent in the status of the one `kind` object. */
function parentCondition(statuses: ObjectStatus[], type: string, kind: string): string {
  const status = statuses.find((s) => s.kind === kind);
  const parents = (status?.status.parents ?? []) as { conditions: { type: string; reason: string; message: string }[] }[];
  const c = parents[0]?.conditions.find((x) => x.type === type);
  return c ? `${c.reason}: ${c.message}` : `no ${type} on ${kind}`;
}

describe('kinds and versions', () => {
  it('a kind in the wrong case is named with the kind meant', () => {
    const { sourceProblems } = run(docs(GATEWAY, ROUTE('HttpRoute'), SERVICE(), SLICE));
    expect(sourceProblems).toContainEqual(expect.stringMatching(/SLU_MANIFEST_OBJECT .*HttpRoute r: kinds are case-sensitive; did you mean kind: HTTPRoute\?/));
  });

  it('an extensions/v1beta1 Ingress says it was removed and how to write it', () => {
    const { sourceProblems } = run(`apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: old, namespace: default}
spec:
  rules: [{http: {paths: [{path: /, backend: {serviceName: svc, servicePort: 8080}}]}}]
`);
    expect(sourceProblems).toContainEqual(expect.stringMatching(/extensions\/v1beta1 Ingress old: extensions\/v1beta1 Ingress was removed in Kubernetes 1\.22; write it as networking\.k8s\.io\/v1/));
  });

  it('v1beta1 GatewayClass, Gateway, HTTPRoute and ReferenceGrant are read as their v1 (same IR)', () => {
    const grant = (v: string) => `apiVersion: gateway.networking.k8s.io/${v}
kind: ReferenceGrant
metadata: {name: g, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
`;
    const other = SERVICE().replace('namespace: default', 'namespace: other');
    const objects = (v: string) =>
      docs(
        `apiVersion: gateway.networking.k8s.io/${v}\nkind: GatewayClass\nmetadata: {name: cilium}\nspec: {controllerName: ${CONTROLLER}}\n`,
        GATEWAY.replace('/v1\n', `/${v}\n`),
        ROUTE('HTTPRoute', `gateway.networking.k8s.io/${v}`).replace('namespace: default, port', 'namespace: other, port'),
        other,
        grant(v),
      );
    const v1 = run(objects('v1'));
    const beta = run(objects('v1beta1'));
    expect(beta.sourceProblems).toEqual([]);
    expect(JSON.stringify(redactIR(beta.result.ir))).toBe(JSON.stringify(redactIR(v1.result.ir)));
    expect(JSON.stringify(v1.result.ir.http)).toContain('service/other/svc/port/8080');
  });
});

describe('Gateway', () => {
  it('an IPAddress value that is no IP address is refused, as the API server checks its format (it was bound and reported as served)', () => {
    const { sourceProblems } = run(GATEWAY.replace('  listeners:', '  addresses: [{type: IPAddress, value: 999.1.1.1}]\n  listeners:'));
    expect(sourceProblems).toContainEqual(expect.stringMatching(/Gateway default\/gw refused: spec\.addresses\[0\]\.value: Invalid value: string "999\.1\.1\.1": must be of format ipv4 or ipv6/));
    for (const value of ['127.0.0.2', '::1']) {
      expect(run(GATEWAY.replace('  listeners:', `  addresses: [{type: IPAddress, value: "${value}"}]\n  listeners:`)).sourceProblems).toEqual([]);
    }
    // No value (assigned by Sluice), and other types (their own status), still reach translation.
    expect(run(GATEWAY.replace('  listeners:', '  addresses: [{type: IPAddress}, {type: example.com/named, value: x}]\n  listeners:')).sourceProblems).toEqual([]);
  });

  it('certificateRefs on a TLS Passthrough listener (Gateway or ListenerSet) are said to be unused', () => {
    const passthrough = '  - {name: tls, protocol: TLS, port: 9443, tls: {mode: Passthrough, certificateRefs: [{name: cert}]}}\n';
    const set = `apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: ls, namespace: default}
spec:
  parentRef: {name: gw}
  listeners:
${passthrough.replace('9443', '9444')}`;
    const { problems } = run(docs(GATEWAY + passthrough, set));
    expect(problems).toContainEqual('SLU_TRANSLATION Gateway default/gw: spec.listeners[1].tls.certificateRefs not used: a TLS Passthrough listener never ends TLS (the backend does); ignored');
    expect(problems).toContainEqual('SLU_TRANSLATION ListenerSet default/ls: spec.listeners[0].tls.certificateRefs not used: a TLS Passthrough listener never ends TLS (the backend does); ignored');
  });

  it('a tls.frontend.perPort entry for a port where no listener ends TLS is said', () => {
    const frontend = `  tls:
    frontend:
      default: {}
      perPort:
      - {port: 8080, tls: {validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}}}
      - {port: 7777, tls: {validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}}}
  listeners:`;
    const { problems } = run(GATEWAY.replace('  listeners:', frontend));
    expect(problems).toContainEqual(
      'SLU_TRANSLATION Gateway default/gw: spec.tls.frontend.perPort[0] (port 8080), spec.tls.frontend.perPort[1] (port 7777) applies to no listener: no HTTPS or TLS Terminate listener of the Gateway or its ListenerSets is on that port; ignored',
    );
  });
});

describe('Kubernetes mode (a CRD of another channel or release let a field through)', () => {
  it('a field of our GatewayClass that Sluice does not read is said', () => {
    const snapshot = emptySnapshot();
    snapshot.gatewayClasses.push({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'ours', generation: 1 }, spec: { controllerName: CONTROLLER, futureField: 'x' } as never });
    const { problems } = translate(snapshot, { controllerName: CONTROLLER, bindAddress: '127.0.0.1' });
    expect(problems.map((p) => p.message)).toEqual(['GatewayClass ours: spec.futureField not read by Sluice (not in the Gateway API v1.6.1 standard channel); ignored']);
  });
});

describe('ReferenceGrant', () => {
  it('a from or to kind in the wrong case (or group) is said, naming the field and what was meant', () => {
    const { problems } = run(`apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: g, namespace: other}
spec:
  from:
  - {group: gateway.networking.k8s.io, kind: httproute, namespace: default}
  - {group: "", kind: HTTPRoute, namespace: default}
  - {group: example.com, kind: FooRoute, namespace: default}
  to: [{group: "", kind: service}]
`);
    expect(problems.filter((p) => p.includes('ReferenceGrant other/g'))).toEqual([
      expect.stringMatching(/spec\.from\[0\] \(group "gateway\.networking\.k8s\.io", kind httproute\) matches no reference: .*did you mean group: "gateway\.networking\.k8s\.io", kind: HTTPRoute\?/),
      expect.stringMatching(/spec\.from\[1\] \(group "", kind HTTPRoute\) .*did you mean group: "gateway\.networking\.k8s\.io", kind: HTTPRoute\?/),
      expect.stringMatching(/spec\.to\[0\] \(group "", kind service\) .*did you mean group: "", kind: Service\?/),
    ]);
  });

  it('a reference kind in the wrong case names the kind meant: parentRefs (route, ListenerSet), allowedRoutes kinds, certificateRefs, BackendTLSPolicy targetRefs', () => {
    const gateway = GATEWAY.replace('  - {name: http, protocol: HTTP, port: 8080}', '  - {name: http, protocol: HTTP, port: 8080, allowedRoutes: {kinds: [{kind: httproute}]}}\n  - {name: https, protocol: HTTPS, port: 8443, tls: {certificateRefs: [{kind: secret, name: cert}]}}');
    const set = 'apiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata: {name: ls, namespace: default}\nspec:\n  parentRef: {name: gw, kind: gateway}\n  listeners: [{name: x, protocol: HTTP, port: 8081}]\n';
    const policy = 'apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: b, namespace: default}\nspec:\n  targetRefs: [{group: "", kind: service, name: svc}]\n  validation: {wellKnownCACertificates: System, hostname: svc.example}\n';
    const { result, problems } = run(docs(gateway, set, policy, ROUTE().replace('parentRefs: [{name: gw}]', 'parentRefs: [{name: gw, kind: gateway}]'), SERVICE(), SLICE));
    expect(problems).toContainEqual('SLU_TRANSLATION HTTPRoute default/r: spec.parentRefs[0] kind gateway names no kind (kinds are case-sensitive: kind: Gateway), so the route is not attached there');
    expect(problems).toContainEqual('SLU_TRANSLATION ListenerSet default/ls: spec.parentRef kind gateway names no kind (kinds are case-sensitive: kind: Gateway), so it attaches to nothing');
    expect(problems).toContainEqual('SLU_TRANSLATION BackendTLSPolicy default/b: targetRef core/service svc is not supported (only core Services are) (kinds are case-sensitive: kind: Service); ignored');
    const listeners = (statusOfGateway(result.statuses).listeners as { name: string; conditions: { type: string; message: string }[] }[]);
    const message = (name: string) => listeners.find((l) => l.name === name)!.conditions.find((c) => c.type === 'ResolvedRefs')!.message;
    expect(message('http')).toBe('unsupported route kinds: gateway.networking.k8s.io/httproute (kinds are case-sensitive: kind: HTTPRoute)');
    expect(message('https')).toBe('certificateRefs[0] secret default/cert: only core Secrets are supported (kinds are case-sensitive: kind: Secret)');
  });

  it('a backendRef kind in the wrong case is InvalidKind with the kind meant', () => {
    const { result } = run(docs(GATEWAY, ROUTE().replace('{name: svc,', '{kind: service, name: svc,'), SERVICE(), SLICE));
    expect(parentCondition(result.statuses, 'ResolvedRefs', 'HTTPRoute')).toMatch(/^InvalidKind: .*\(kinds are case-sensitive: kind: Service\)$/);
  });
});

describe('Ingress and IngressClass', () => {
  const INGRESS = (extra = '', path = 'pathType: Prefix, ') => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing, namespace: default}
spec:
  ingressClassName: mine
  rules: [{host: i.example, http: {paths: [{path: /, ${path}backend: {service: {name: svc, port: {number: 8080}}}}]}}]
${extra}`;
  const CLASS = (extra = '') => `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: mine}
spec:
  controller: sluice.dev/ingress-controller
${extra}`;

  it('IngressClass parameters are said to be not read', () => {
    const { problems } = run(docs(CLASS('  parameters: {apiGroup: k8s.example.com, kind: IngressParameters, name: p}\n'), INGRESS(), SERVICE(), SLICE));
    expect(problems).toContainEqual(expect.stringMatching(/IngressClass mine: spec\.parameters \(k8s\.example\.com\/IngressParameters p\) not read/));
    expect(run(docs(CLASS(), INGRESS(), SERVICE(), SLICE)).problems.filter((p) => p.includes('IngressClass'))).toEqual([]);
  });

  it('a tls entry without secretName, with no certificate on the HTTPS listener, says HTTPS is not served for its hosts', () => {
    const { problems } = run(docs(CLASS(), INGRESS('  tls: [{hosts: [i.example]}]\n'), SERVICE(), SLICE));
    expect(problems).toContainEqual(expect.stringMatching(/Ingress default\/ing: tls\[0\] has no secretName .*HTTPS to i\.example is not served/));
  });

  it('a host that is an IP address, an unknown pathType and a relative path are refused, as the API server does', () => {
    const refused = (text: string) => run(docs(CLASS(), text, SERVICE(), SLICE)).sourceProblems.filter((p) => p.startsWith('SLU_MANIFEST_INVALID'));
    expect(refused(INGRESS().replace('host: i.example', 'host: 10.0.0.1'))).toEqual([expect.stringContaining('spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address')]);
    expect(refused(INGRESS('', 'pathType: Regex, '))).toEqual([expect.stringContaining('spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"')]);
    expect(refused(INGRESS().replace('path: /,', 'path: api,'))).toEqual([expect.stringContaining('spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path')]);
    expect(refused(INGRESS())).toEqual([]);
  });

  it('an ExternalName Service without externalName is refused (its EndpointSlices were used instead)', () => {
    const { sourceProblems } = run(docs(GATEWAY, ROUTE(), SERVICE('  type: ExternalName\n'), SLICE));
    expect(sourceProblems).toContainEqual(expect.stringMatching(/Service default\/svc refused: spec\.externalName: Required value/));
  });

  it('a Secret whose data is not base64 is refused (it read as a Secret without that key)', () => {
    const secret = (data: string) => `apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: default}\ndata: {tls.crt: "${data}"}\n`;
    expect(run(secret('-----BEGIN CERTIFICATE-----')).sourceProblems).toContainEqual(expect.stringContaining('Secret default/s refused: data[tls.crt]: Invalid value: illegal base64 data'));
    expect(run(secret('aGVsbG8=')).sourceProblems).toEqual([]);
  });

  it('a path without pathType is refused, as the API server does (it was read as ImplementationSpecific)', () => {
    const { sourceProblems, result } = run(docs(CLASS(), INGRESS('', ''), SERVICE(), SLICE));
    expect(sourceProblems).toContainEqual(expect.stringMatching(/SLU_MANIFEST_INVALID .*Ingress default\/ing refused: spec\.rules\[0\]\.http\.paths\[0\]\.pathType: Required value/));
    expect(JSON.stringify(result.ir.http)).not.toContain('ingress/default/ing');
  });
});

describe('header modifier values', () => {
  it('a value no HTTP header can carry (CR, LF) is Accepted=False UnsupportedValue; every request of the route got 500, said nowhere', () => {
    const filter = '    filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-A, value: "a\\r\\nb"}]}}]\n';
    const { result } = run(docs(GATEWAY, ROUTE().replace('  - backendRefs:', `  - backendRefs:`).replace('port: 8080}]\n', `port: 8080}]\n${filter}`), SERVICE(), SLICE));
    expect(parentCondition(result.statuses, 'Accepted', 'HTTPRoute')).toBe('UnsupportedValue: rule 0 ResponseHeaderModifier X-A: value "a\\r\\nb" holds a control character, which no HTTP header value can carry');
    const grpc = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: svc, port: 8080, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-B, value: "c\\u0000"}]}}]}]
`;
    expect(parentCondition(run(docs(GATEWAY, grpc, SERVICE(), SLICE)).result.statuses, 'Accepted', 'GRPCRoute')).toMatch(/^UnsupportedValue: rule 0 backendRef svc RequestHeaderModifier X-B: value "c\\u0000" holds a control character/);
    // Any other text is a valid header value: it goes out as its UTF-8 bytes, as Envoy sends it (test/dataplane/fx-header-utf8.test.ts).
    for (const text of ['café', 'café → ok', '日本']) {
      const http = run(docs(GATEWAY, ROUTE().replace('port: 8080}]\n', `port: 8080}]\n${filter.replace('a\\r\\nb', text)}`), SERVICE(), SLICE));
      expect(parentCondition(http.result.statuses, 'Accepted', 'HTTPRoute')).toMatch(/^Accepted/);
      const grpcText = run(docs(GATEWAY, grpc.replace('c\\u0000', text), SERVICE(), SLICE));
      expect(parentCondition(grpcText.result.statuses, 'Accepted', 'GRPCRoute')).toMatch(/^Accepted/);
    }
    // A redirect or rewrite path with a control character: refused alike (it answered 500 or 400 to each request).
    const rewrite = (path: string) => run(docs(GATEWAY, ROUTE().replace('port: 8080}]\n', `port: 8080}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: "${path}"}}}]\n`), SERVICE(), SLICE)).result.statuses;
    expect(parentCondition(rewrite('/a\\r\\nb'), 'Accepted', 'HTTPRoute')).toBe('UnsupportedValue: rule 0 URLRewrite: path.replaceFullPath "/a\\r\\nb" holds a control character, which no URL path can carry');
    expect(parentCondition(rewrite('/café → x'), 'Accepted', 'HTTPRoute')).toMatch(/^Accepted/);
    const redirect = run(docs(GATEWAY, ROUTE().replace(/  - backendRefs:.*\n/, '  - filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: "/a\\tb"}}}]\n'), SERVICE(), SLICE)).result.statuses;
    expect(parentCondition(redirect, 'Accepted', 'HTTPRoute')).toMatch(/^UnsupportedValue: rule 0 RequestRedirect: path.replacePrefixMatch "\/a\\tb" holds a control character/);
  });
});

describe('a Service port of the route\'s transport', () => {
  const L4 = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: l4, namespace: default}
spec:
  gatewayClassName: cilium
  listeners:
  - {name: tcp, protocol: TCP, port: 9000}
  - {name: udp, protocol: UDP, port: 9001}
`;
  const route = (kind: string, section: string, port: number) => `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: ${kind}
metadata: {name: ${kind.toLowerCase()}, namespace: default}
spec:
  parentRefs: [{name: l4, sectionName: ${section}}]
  rules: [{backendRefs: [{name: svc, port: ${port}}]}]
`;
  const service = (ports: string) => `apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec:
  ports: ${ports}
`;
  it('a UDPRoute to a TCP-only port and a TCPRoute or HTTPRoute to a UDP-only port are BackendNotFound, as Envoy Gateway has them (they were forwarded)', () => {
    const { result } = run(docs(L4, GATEWAY, route('UDPRoute', 'udp', 53), route('TCPRoute', 'tcp', 54), ROUTE().replace('port: 8080', 'port: 54'), service('[{name: a, port: 53, protocol: TCP}, {name: b, port: 54, protocol: UDP}]')));
    expect(parentCondition(result.statuses, 'ResolvedRefs', 'UDPRoute')).toBe('BackendNotFound: backendRef Service default/svc: the Service has no UDP port 53 (it is TCP): UDPRoute traffic is UDP');
    expect(parentCondition(result.statuses, 'ResolvedRefs', 'TCPRoute')).toBe('BackendNotFound: backendRef Service default/svc: the Service has no TCP port 54 (it is UDP): TCPRoute traffic is TCP');
    expect(parentCondition(result.statuses, 'ResolvedRefs', 'HTTPRoute')).toBe('BackendNotFound: backendRef Service default/svc: the Service has no TCP port 54 (it is UDP): HTTPRoute traffic is TCP');
    expect(result.ir.http.udp?.[0]?.route?.backends).toEqual([{ backend: null, weight: 1, filters: [] }]);
  });

  it('a port number listed for both (DNS) resolves for either kind, a port without protocol is TCP', () => {
    const { result } = run(docs(L4, route('UDPRoute', 'udp', 53), route('TCPRoute', 'tcp', 53), service('[{name: tcp, port: 53}, {name: udp, port: 53, protocol: UDP}]')));
    expect(parentCondition(result.statuses, 'ResolvedRefs', 'UDPRoute')).toMatch(/^ResolvedRefs/);
    expect(parentCondition(result.statuses, 'ResolvedRefs', 'TCPRoute')).toMatch(/^ResolvedRefs/);
  });
});

describe('Service fields routes do not follow', () => {
  it('sessionAffinity, trafficDistribution, internalTrafficPolicy and an appProtocol Sluice does not speak are said for a Service routes forward to', () => {
    const { problems } = run(docs(GATEWAY, ROUTE(), SERVICE('  sessionAffinity: ClientIP\n  trafficDistribution: PreferClose\n  internalTrafficPolicy: Local\n', ', appProtocol: https'), SLICE));
    const line = problems.find((p) => p.startsWith('SLU_TRANSLATION Service default/svc:'));
    expect(line).toContain('spec.sessionAffinity ClientIP holds for its ClusterIP only');
    expect(line).toContain('spec.trafficDistribution PreferClose is not applied');
    expect(line).toContain('spec.internalTrafficPolicy Local is not applied');
    const annotated = run(docs(GATEWAY, ROUTE(), SERVICE().replace('metadata: {name: svc, namespace: default}', 'metadata: {name: svc, namespace: default, annotations: {service.kubernetes.io/topology-mode: Auto}}'), SLICE));
    expect(annotated.problems).toContainEqual('SLU_TRANSLATION Service default/svc: annotation service.kubernetes.io/topology-mode: Auto is not applied: routed requests go to every ready endpoint, whatever its zone');
    expect(line).toContain('spec.ports[0].appProtocol https is not one Sluice speaks: HTTP routes speak HTTP/1.1 to port 8080');
  });

  it('says nothing for a Service no route uses, nor for the appProtocol values Sluice speaks', () => {
    expect(run(docs(GATEWAY, SERVICE('  sessionAffinity: ClientIP\n'), SLICE)).problems.filter((p) => p.includes('Service default/svc:'))).toEqual([]);
    for (const value of ['http', 'kubernetes.io/h2c', 'kubernetes.io/ws']) {
      expect(run(docs(GATEWAY, ROUTE(), SERVICE('', `, appProtocol: ${value}`), SLICE)).problems.filter((p) => p.includes('Service default/svc:'))).toEqual([]);
    }
  });
});

describe('network policies', () => {
  it('an IPv6 ipBlock is said to be left out (the policy datapath is IPv4 only); it was dropped without a word', () => {
    const { problems } = run(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: default}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}, {ipBlock: {cidr: "fd00::/8"}}]}]
`);
    expect(problems).toEqual(['SLU_TRANSLATION NetworkPolicy default/p: spec.ingress[0].from[1].ipBlock: fd00::/8 is IPv6, which the policy datapath does not see (IPv4 only); peer left out']);
  });

  it('a CiliumNetworkPolicy field Sluice does not read (a typo, the other direction, a spec field) is said; its spec.labels (a list) is read, not refused', () => {
    const { problems, sourceProblems } = run(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: default}
spec:
  endpointSelector: {}
  description: read by people
  labels: [{key: team, value: a}]
  egressDefaultDeny: true
  ingress: [{fromEndpoint: [{matchLabels: {app: a}}], toEndpoints: [{}], fromEntities: [world]}]
  egress: [{toEntities: [world], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
`);
    expect(problems).toEqual([
      'SLU_TRANSLATION CiliumNetworkPolicy default/c: spec.egressDefaultDeny is not a field Sluice reads; ignored',
      'SLU_TRANSLATION CiliumNetworkPolicy default/c: spec.ingress[0].fromEndpoint is not a field of a Cilium ingress rule that Sluice reads; ignored',
      'SLU_TRANSLATION CiliumNetworkPolicy default/c: spec.ingress[0].toEndpoints is not a field of a Cilium ingress rule that Sluice reads; ignored',
    ]);
    expect(sourceProblems).toEqual([]);
  });

  it('an L7 rule whose header name or value no HTTP request can carry (CR, LF, NUL, other control characters) allows nothing and is said, as an HTTPRoute header value is refused; before, ADD answered every request 400 and the match never matched, unsaid', () => {
    const secret = (name: string, value: string) => `apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: default}
data: {token: ${Buffer.from(value).toString('base64')}}
`;
    const { result, problems } = run(docs(`apiVersion: v1
kind: Pod
metadata: {name: api-0, namespace: default, labels: {app: api}}
status: {phase: Running, podIP: 10.0.9.91}
`, secret('crlf', 'abc\n'), secret('fine', 'abc'), `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEntities: [ingress]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
        - {path: /lf, headers: ["X-Team a\\nb"]}
        - {path: /nul, headerMatches: [{name: X-A, value: "a\\0"}]}
        - {path: /add, headerMatches: [{name: X-B, value: "x\\r", mismatch: ADD}]}
        - {path: /del, headerMatches: [{name: X-C, value: "\\x7f", mismatch: REPLACE}]}
        - {path: /secret, headerMatches: [{name: X-D, secret: {name: crlf}}]}
        - {path: /name, headerMatches: [{name: "X\\rE", value: e}]}
        - {path: /ok, headers: ["X-Tab a\\tb"], headerMatches: [{name: X-F, secret: {name: fine}}, {name: X-G, value: "é→"}]}
`));
    const at = 'SLU_TRANSLATION CiliumNetworkPolicy default/c: spec.ingress[0].toPorts[0].rules.http';
    expect(problems).toEqual([
      `${at}[0].headers[0]: value "a\\nb" holds a control character, which no HTTP header value can carry; the rule allows nothing`,
      `${at}[1].headerMatches[0]: value "a\\u0000" holds a control character, which no HTTP header value can carry; the rule allows nothing`,
      `${at}[2].headerMatches[0]: value "x\\r" holds a control character, which no HTTP header value can carry; the rule allows nothing`,
      `${at}[3].headerMatches[0]: value "\\u007f" holds a control character, which no HTTP header value can carry; the rule allows nothing`,
      `${at}[4].headerMatches[0] (Secret default/crlf): value "abc\\n" holds a control character, which no HTTP header value can carry; the rule allows nothing`,
      `${at}[5].headerMatches[0]: header name "X\\rE" is not a valid HTTP field name (RFC 9110 token characters only); the rule allows nothing`,
    ]);
    // Only the rule every part of which can be matched and sent is left: a tab, a Secret's value and UTF-8 are fine.
    const grants = result.ir.l4?.policy?.http?.flatMap((p) => p.grants.flatMap((g) => g.http ?? [])) ?? [];
    expect(grants.map((r) => r.path)).toEqual(['/ok']);
    expect(grants[0]!.headers).toEqual([{ name: 'x-tab', value: 'a\tb' }, { name: 'x-f', value: 'abc', secret: 'default/fine' }, { name: 'x-g', value: 'é→' }]);
  });
});
