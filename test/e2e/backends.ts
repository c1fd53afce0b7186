// Minimal named HTTP backends for end-to-end tests: each answers
// {"backend": name, "path": ..., "headers": ...} so a test can tell who served.
import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface NamedBackend {
  name: string;
  port: number;
  close(): Promise<void>;
}

/** `onRequest` sees every request head the backend receives (a test can assert what got through). */
export async function startNamedBackend(name: string, onRequest?: (req: IncomingMessage) => void, address = '127.0.0.1'): Promise<NamedBackend> {
  const server: Server = createServer((req, res) => {
    onRequest?.(req);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ backend: name, path: req.url, headers: req.headers }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return {
    name,
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Service + EndpointSlice YAML pointing a Service at a local backend. */
export function serviceYaml(service: string, backend: Pick<NamedBackend, 'port'>, namespace = 'default'): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${service}, namespace: ${namespace}}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${service}-1, namespace: ${namespace}, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv4
ports: [{name: http, port: ${backend.port}}]
endpoints: [{addresses: [127.0.0.1]}]
`;
}

/** A kubernetes.io/tls Secret YAML holding a certificate and its key (PEM). */
export function tlsSecretYaml(name: string, cert: { certPem: string; keyPem: string }, namespace = 'default'): string {
  return `apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: ${namespace}}
type: kubernetes.io/tls
stringData:
  tls.crt: ${JSON.stringify(cert.certPem)}
  tls.key: ${JSON.stringify(cert.keyPem)}
`;
}

/** The GatewayClass `sluice`, served by Sluice's default controllerName. */
export const GATEWAY_CLASS_YAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec: {controllerName: sluice.dev/gateway-controller}
`;

/** GatewayClass `sluice` and Gateway default/`name` of that class with `listeners` (each a flow-style YAML mapping). */
export function gatewayYaml(listeners: string[], name = 'gw'): string {
  return `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
${listeners.map((listener) => `  - ${listener}`).join('\n')}
`;
}

/** GatewayClass `sluice` and Gateway default/gw with one HTTP listener `http` on `port`. */
export function httpGatewayYaml(port: number): string {
  return gatewayYaml([`{name: http, port: ${port}, protocol: HTTP}`]);
}

export const GATEWAY_YAML = httpGatewayYaml(80);

/** Gateway gw (HTTP, port 80), Service app at `backend`, and HTTPRoute default/app sending every request there. */
export function appGatewayYaml(backend: Pick<NamedBackend, 'port'>): string {
  return `${GATEWAY_YAML}---
${serviceYaml('app', backend)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`;
}

/** HTTPRoute default/app to Service app behind Gateway gw, answering with `x-version: v<version>`: which version served a request. */
export const versionedRouteYaml = (version: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-version, value: v${version}}]}}]
    backendRefs: [{name: app, port: 80}]
`;
