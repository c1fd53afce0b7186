// The manifest folder Sluice is benchmarked with: one Gateway (HTTP listener on port 80) and a
// "full routing" table of `rules` HTTPRoute rules spread over several HTTPRoutes (Gateway API
// allows at most 16 rules per route), with path prefixes, a few header matches, one
// RegularExpression path, a catch-all, and a RequestHeaderModifier on the benchmarked rule.
// Every Service's EndpointSlice points at the one nginx backend.
//
// In precedence order (regex, then prefixes longest first, header matches before none, then
// route name and rule order) the benchmarked rule sits in the middle of the table.

import { stringify } from 'yaml';

export const BENCH_HOST = 'api.bench.local';
const SERVICES = 5;
const RULES_PER_ROUTE = 16;

export interface BenchManifests {
  /** YAML documents, one file's worth. */
  yaml: string;
  /** Request path that hits the benchmarked rule. */
  path: string;
  /** Value the benchmarked rule's RequestHeaderModifier sets in `x-bench-route`. */
  routeMarker: string;
  /** What that modifier adds to the upstream request, `name:value` (the `minimal-headers` baseline sends the same). */
  routeHeaders: string[];
  /** Rule count, and the benchmarked rule's 1-based position in precedence order. */
  rules: number;
  position: number;
}

type Rule = Record<string, unknown>;

function backend(i: number): { name: string; port: number }[] {
  return [{ name: `bench-svc-${i % SERVICES}`, port: 80 }];
}

export function benchManifests(backendPort: number, rules = 50): BenchManifests {
  if (rules < 8) throw new Error('--rules: at least 8');
  // Fixed rules: 1 regex, 4 header-match rules, 1 catch-all; the rest are plain prefixes.
  const prefixes = rules - 6;
  const target = Math.floor(prefixes / 2);
  const pad = (n: number): string => String(n).padStart(String(prefixes).length, '0');
  const headerRules: Rule[] = [
    { path: 1, headers: [{ name: 'x-tenant', value: 'gold' }] },
    { path: 3, headers: [{ name: 'x-canary', value: 'true' }] },
    { path: prefixes - 4, headers: [{ type: 'RegularExpression', name: 'x-client-version', value: '2\\.[0-9]+' }] },
    { path: prefixes - 2, headers: [{ name: 'x-tenant', value: 'silver' }] },
  ].map(({ path, headers }, i) => ({
    matches: [{ path: { type: 'PathPrefix', value: `/api/s${pad(path)}` }, headers }],
    backendRefs: backend(i + 1),
  }));
  const all: Rule[] = [
    {
      matches: [{ path: { type: 'RegularExpression', value: '/static/[a-z0-9-]+\\.(css|js|png)' } }],
      backendRefs: backend(0),
    },
  ];
  for (let i = 0; i < prefixes; i++) {
    const rule: Rule = { matches: [{ path: { type: 'PathPrefix', value: `/api/s${pad(i)}` } }], backendRefs: backend(i) };
    if (i === target) {
      rule.filters = [
        {
          type: 'RequestHeaderModifier',
          requestHeaderModifier: {
            set: [{ name: 'x-bench-route', value: `s${pad(i)}` }],
            add: [{ name: 'x-gateway', value: 'sluice' }],
            remove: ['x-debug'],
          },
        },
      ];
    }
    all.push(rule);
    // Header-match rules interleaved with the prefixes they refine, as a person would write them.
    if (i % 10 === 9 && headerRules.length > 0) all.push(headerRules.shift()!);
  }
  all.push(...headerRules);
  all.push({ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: backend(0) });

  const docs: unknown[] = [
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice-bench' }, spec: { controllerName: 'sluice.dev/gateway-controller' } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'bench', namespace: 'default' },
      spec: { gatewayClassName: 'sluice-bench', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
    },
  ];
  for (let r = 0; r * RULES_PER_ROUTE < all.length; r++) {
    docs.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `bench-${String.fromCharCode(97 + r)}`, namespace: 'default' },
      spec: {
        parentRefs: [{ name: 'bench' }],
        hostnames: [BENCH_HOST],
        rules: all.slice(r * RULES_PER_ROUTE, (r + 1) * RULES_PER_ROUTE),
      },
    });
  }
  for (let s = 0; s < SERVICES; s++) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `bench-svc-${s}`, namespace: 'default' },
      spec: { selector: { app: `bench-${s}` }, ports: [{ name: 'http', port: 80, targetPort: backendPort }] },
    });
    docs.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `bench-svc-${s}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': `bench-svc-${s}` } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: backendPort, protocol: 'TCP' }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    });
  }
  return {
    yaml: docs.map((d) => stringify(d)).join('---\n'),
    path: `/api/s${pad(target)}/items/42`,
    routeMarker: `s${pad(target)}`,
    routeHeaders: [`x-bench-route:s${pad(target)}`, 'x-gateway:sluice'],
    rules: all.length,
    // regex first, then the 4 header-match rules (same prefix length, more header matches),
    // then the plain prefixes in route/rule order, the catch-all last.
    position: 1 + 4 + target + 1,
  };
}
