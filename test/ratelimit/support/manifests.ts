// The manifests of the end-to-end tests with Redis: a Gateway, an HTTPRoute `app` to one
// backend, and a RateLimitPolicy `shared` with the given global rules on it.
import { appGatewayYaml, type NamedBackend } from '../../e2e/backends.ts';

/** `rules`: the YAML of `global.rules` list items, indented by four spaces. */
export function appWithGlobalPolicy(backend: Pick<NamedBackend, 'port'>, rules: string): string {
  return `${appGatewayYaml(backend)}---
apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: shared, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}]
  global:
    rules:
${rules}`;
}
