// L7 HTTP policy holds for byte streams too, through a real `sluice run` and real sockets: a
// CiliumNetworkPolicy allowing only the seed requests on the api pods' port is not bypassed by a
// TCPRoute or a TLSRoute (passthrough or terminate) to the same pods. The gateway does not parse
// those streams, so — as Cilium, whose Envoy lets only HTTP it can parse and allow through such a
// port — it closes them before connecting: the pods never see a connection, the flow is DROPPED
// with reason POLICY_L7 and the rule. In audit mode the stream is relayed and recorded AUDIT; a
// stream to pods without HTTP rules is relayed as before.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import type { Flow } from '../../ir/flow.ts';
import { createSelfSignedServerCertificate } from '../support/demo/certs.ts';
import { SEED_HTTP_RULES, httpPolicyYaml } from '../support/http-policy-yaml.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { GATEWAY_CLASS_YAML, tlsSecretYaml } from './backends.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const PORTS = { http: 80, api: 9000, legacy: 9001, open: 9002, passthrough: 9443, terminate: 9444 };

/** An HTTP backend on its own loopback address (its own identity) counting connections and requests. */
interface Pod {
  name: string;
  address: string;
  port: number;
  connections: number;
  seen: string[];
  close(): Promise<void>;
}

async function startPod(name: string, address: string): Promise<Pod> {
  const pod: Pod = { name, address, port: 0, connections: 0, seen: [], close: async () => undefined };
  const server: Server = createServer((req, res) => {
    pod.seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end(`hello from ${name}`));
  });
  server.on('connection', () => pod.connections++);
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  pod.port = (server.address() as { port: number }).port;
  pod.close = () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())));
  return pod;
}

const serviceYaml = (pod: Pod, vip: string) => `apiVersion: v1
kind: Service
metadata: {name: ${pod.name}, namespace: default}
spec:
  clusterIP: ${vip}
  selector: {app: ${pod.name}}
  ports: [{name: p, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${pod.name}-1, namespace: default, labels: {kubernetes.io/service-name: ${pod.name}}}
addressType: IPv4
ports: [{name: p, port: ${pod.port}}]
endpoints: [{addresses: [${pod.address}]}]
`;

const routeYaml = (kind: 'HTTPRoute' | 'TCPRoute' | 'TLSRoute', name: string, section: string, backend: string, hostname?: string) => `apiVersion: gateway.networking.k8s.io/${kind === 'TCPRoute' ? 'v1alpha2' : 'v1'}
kind: ${kind}
metadata: {name: ${name}, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: ${section}}]
${hostname ? `  hostnames: [${hostname}]\n` : ''}  rules:
  - backendRefs: [{name: ${backend}, port: 80}]
`;

/** Sends `bytes` on a fresh TCP connection; what came back before the gateway or the pod closed it. */
function exchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    let text = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer and no close within 5 s')));
    socket.on('data', (d) => {
      text += d;
      if (text.includes('hello from')) socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve(text) : reject(e)));
    socket.on('close', () => resolve(text));
  });
}

/** A TLS handshake with `servername`: 'established', or how it failed. */
function handshake(port: number, servername: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    socket.setTimeout(5_000, () => socket.destroy(new Error('timeout')));
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve('established');
    });
    socket.once('error', (e) => resolve(`failed: ${e.message}`));
  });
}

const REQUEST = 'DELETE /api/products HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n';

describe('L7 HTTP policy on TCPRoute and TLSRoute streams through sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let api: Pod;
  let legacy: Pod;
  let open: Pod;
  let offset: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-l7-streams-'));
    [api, legacy, open] = await Promise.all([startPod('api', '127.0.0.2'), startPod('legacy', '127.0.0.3'), startPod('open', '127.0.0.4')]);
    const cert = await createSelfSignedServerCertificate({ dnsNames: ['term.example.com'] });
    offset = await freePortOffset(Object.values(PORTS));
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        GATEWAY_CLASS_YAML,
        tlsSecretYaml('cert', cert),
        `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: ${PORTS.http}, protocol: HTTP}
  - {name: api, port: ${PORTS.api}, protocol: TCP}
  - {name: legacy, port: ${PORTS.legacy}, protocol: TCP}
  - {name: open, port: ${PORTS.open}, protocol: TCP}
  - {name: pass, port: ${PORTS.passthrough}, protocol: TLS, hostname: pass.example.com, tls: {mode: Passthrough}}
  - {name: term, port: ${PORTS.terminate}, protocol: TLS, hostname: term.example.com, tls: {mode: Terminate, certificateRefs: [{name: cert}]}}
`,
        serviceYaml(api, '10.96.0.20'),
        serviceYaml(legacy, '10.96.0.21'),
        serviceYaml(open, '10.96.0.22'),
      ].join('---\n'),
    );
    writeFileSync(
      join(dir, 'routes.yaml'),
      [
        routeYaml('HTTPRoute', 'api-http', 'http', 'api'),
        routeYaml('TCPRoute', 'api-tcp', 'api', 'api'),
        routeYaml('TCPRoute', 'legacy-tcp', 'legacy', 'legacy'),
        routeYaml('TCPRoute', 'open-tcp', 'open', 'open'),
        routeYaml('TLSRoute', 'api-pass', 'pass', 'api', 'pass.example.com'),
        routeYaml('TLSRoute', 'api-term', 'term', 'api', 'term.example.com'),
      ].join('---\n'),
    );
    writeFileSync(
      join(dir, 'policy.yaml'),
      [
        httpPolicyYaml({ name: 'api-l7', app: 'api', port: api.port, rules: SEED_HTTP_RULES }),
        httpPolicyYaml({ name: 'legacy-l7', app: 'legacy', port: legacy.port, rules: ['{method: GET}'], audit: true }),
      ].join('---\n'),
    );
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--bind-address', '127.0.0.1']);
  });

  afterAll(async () => {
    await sluice?.stop();
    await Promise.all([api, legacy, open].filter(Boolean).map((p) => p.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('the HTTP path enforces the rules (the policy is in force)', async () => {
    const res = await fetch(`http://127.0.0.1:${PORTS.http + offset}/api/products`, { method: 'DELETE' });
    expect([res.status, await res.text()]).toEqual([403, 'Access denied\r\n']);
    const ok = await fetch(`http://127.0.0.1:${PORTS.http + offset}/api/products`);
    expect([ok.status, await ok.text()]).toEqual([200, 'hello from api']);
  });

  it('closes TCPRoute and TLSRoute streams to the pods the HTTP rules govern before connecting to them', async () => {
    const before = { connections: api.connections, seen: [...api.seen] };
    expect(await exchange(PORTS.api + offset, REQUEST)).toBe('');
    expect(await handshake(PORTS.passthrough + offset, 'pass.example.com')).toMatch(/^failed/);
    expect(await handshake(PORTS.terminate + offset, 'term.example.com')).toMatch(/^failed/);
    // Nothing reached the pods: no connection was even opened.
    expect(api.connections).toBe(before.connections);
    expect(api.seen).toEqual(before.seen);
    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^sluice_l4_connections_total\\{listener="127\\.0\\.0\\.1:${PORTS.api}",protocol="TCP",outcome="policy_denied"\\} 1$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^sluice_l4_connections_total\\{listener="127\\.0\\.0\\.1:${PORTS.passthrough}",protocol="TLS",outcome="policy_denied"\\} 1$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^sluice_l4_connections_total\\{listener="127\\.0\\.0\\.1:${PORTS.terminate}",protocol="TLS",outcome="policy_denied"\\} 1$`, 'm'));
  });

  it('relays streams in audit mode and to pods without HTTP rules', async () => {
    expect(await exchange(PORTS.legacy + offset, REQUEST)).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*hello from legacy$/);
    expect(legacy.seen).toEqual(['DELETE /api/products']);
    expect(await exchange(PORTS.open + offset, REQUEST)).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*hello from open$/);
    expect(open.seen).toEqual(['DELETE /api/products']);
  });

  it('records the refused streams DROPPED (POLICY_L7) with the rule and route, the audited one AUDIT', async () => {
    const flows = async (query: string): Promise<Flow[]> =>
      (await (await fetch(`${sluice.admin}/api/flows?${query}`)).text())
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Flow);
    const streams = (await flows('verdict=DROPPED&type=l7')).filter((f) => f.l7 === undefined);
    expect(streams.map((f) => `${f.route?.source} ${f.dropReason} ${f.rule?.name} ${f.destination.ip}:${f.destination.port}`)).toEqual([
      `default/api-tcp POLICY_L7 ciliumnetworkpolicy/default/api-l7/ingress/0 127.0.0.2:${api.port}`,
      `default/api-pass POLICY_L7 ciliumnetworkpolicy/default/api-l7/ingress/0 127.0.0.2:${api.port}`,
      `default/api-term POLICY_L7 ciliumnetworkpolicy/default/api-l7/ingress/0 127.0.0.2:${api.port}`,
    ]);
    expect(streams[0]).toMatchObject({ type: 'L7', direction: 'ingress', protocol: 'TCP', service: { namespace: 'default', name: 'api', port: 80 }, source: { ip: '127.0.0.1' } });
    expect(streams[0]!.destination.labels).toContain('k8s:app=api');
    const audited = await flows('verdict=AUDIT');
    expect(audited.map((f) => `${f.route?.source} ${f.dropReason} ${f.rule?.name}`)).toEqual(['default/legacy-tcp POLICY_L7 ciliumnetworkpolicy/default/legacy-l7/ingress/0']);
  });

  it('`sluice observe --verdict DROPPED --type l7` prints them as L7 streams, with route and rule', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), 'observe', '--admin-address', sluice.admin.replace('http://', ''), '--verdict', 'DROPPED', '--type', 'l7', '-o', 'compact']);
    const streams = stdout.split('\n').filter((l) => l.includes('l7-stream'));
    expect(streams).toHaveLength(3);
    expect(streams[0]).toMatch(/l7-stream DROPPED \(POLICY_L7\) \(ingress TCP stream to a port with L7 HTTP rules\) route default\/api-tcp rule ciliumnetworkpolicy\/default\/api-l7\/ingress\/0$/);
  });
});
