// What the Kubernetes-mode process tests share: `sluice` child processes,
// polling, an HTTP GET with a chosen Host, and the one-route app they serve
// (a dataplane Service with a load-balancer address, a Gateway, an HTTPRoute
// to an echo backend whose EndpointSlice the test writes).
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import type { KubeClient } from './client.ts';
import type { NetnsEcho } from './netns-echo.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface Proc {
  child: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function sluice(args: string[]): Proc {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout!.on('data', (d) => (logs += d));
  child.stderr!.on('data', (d) => (logs += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    logs: () => logs,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One GET to 127.0.0.1:port with a chosen Host (node:http: fetch does not let a caller set Host). */
export function getWithHost(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, timeout: 2000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export const GATEWAY = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: 'app', name: 'gw' };
export const ROUTE = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: 'app', name: 'web' };

/**
 * Namespaces `app` and the dataplane Service's, the dataplane Service (LoadBalancer at 127.0.0.1),
 * GatewayClass `cilium`, Gateway app/gw (HTTP 80) and HTTPRoute app/web for web.example.com to
 * Service app/web, whose EndpointSlice points at the echo backend.
 */
export async function createWebApp(c: KubeClient, echo: NetnsEcho, dataplaneService: { namespace: string; name: string }): Promise<void> {
  await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app' } });
  if (!(await c.getOrUndefined({ apiVersion: 'v1', kind: 'Namespace', name: dataplaneService.namespace }))) {
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: dataplaneService.namespace } });
  }
  await c.create({ apiVersion: 'v1', kind: 'Service', metadata: dataplaneService, spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80 }] } });
  await c.mergePatch({ apiVersion: 'v1', kind: 'Service', ...dataplaneService }, { status: { loadBalancer: { ingress: [{ ip: '127.0.0.1' }] } } }, 'status');
  await c.create({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'cilium' }, spec: { controllerName: 'sluice.dev/gateway-controller' } });
  await c.create({ apiVersion: GATEWAY.apiVersion, kind: 'Gateway', metadata: { name: 'gw', namespace: 'app' }, spec: { gatewayClassName: 'cilium', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } });
  await c.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'app' }, spec: { ports: [{ port: 8080 }] } });
  await c.create({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'web-1', namespace: 'app', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4', ports: [{ port: echo.port }], endpoints: [{ addresses: [echo.address] }],
  });
  await c.create({
    apiVersion: ROUTE.apiVersion, kind: 'HTTPRoute', metadata: { name: 'web', namespace: 'app' },
    spec: { parentRefs: [{ name: 'gw' }], hostnames: ['web.example.com'], rules: [{ backendRefs: [{ name: 'web', port: 8080 }] }] },
  });
}
