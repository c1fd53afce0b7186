// CiliumNetworkPolicy YAML with L7 HTTP rules for the tests and benchmarks of issue 16: the seed
// rules (GET /api/products, POST /api/orders, GET /api/users/[0-9]+) and others, on one port of
// the endpoints an app label selects (or every endpoint of the namespace), from the gateway.

export const SEED_HTTP_RULES: readonly string[] = ['{method: GET, path: /api/products}', '{method: POST, path: /api/orders}', '{method: GET, path: "/api/users/[0-9]+"}'];

export interface HttpPolicyYaml {
  name: string;
  namespace?: string;
  /** The `app` label of the endpoints it selects; absent: every endpoint of the namespace. */
  app?: string;
  port: number;
  /** `rules.http[]` entries, as YAML flow mappings. */
  rules: readonly string[];
  /** `sluice.dev/policy-audit-mode: "true"`. */
  audit?: boolean;
}

export function httpPolicyYaml(p: HttpPolicyYaml): string {
  return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${p.name}
  namespace: ${p.namespace ?? 'default'}
${p.audit ? '  annotations: {sluice.dev/policy-audit-mode: "true"}\n' : ''}spec:
  endpointSelector: ${p.app ? `{matchLabels: {app: ${p.app}}}` : '{}'}
  ingress:
  - fromEntities: [ingress]
    toPorts:
    - ports: [{port: "${p.port}", protocol: TCP}]
      rules:
        http:
${p.rules.map((r) => `        - ${r}\n`).join('')}`;
}
