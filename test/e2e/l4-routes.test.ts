// TCPRoute, UDPRoute and TLSRoute Terminate through a real `sluice run` and real echo-basic
// backends (TCP and UDP modes): weights measured over fresh connections and UDP sessions, TLS
// ended at the gateway, a backend outage (its share is closed, never hangs; the rest is served),
// and a route rewritten under traffic (no connection fails, new ones move, an open one keeps its backend).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tcpExchange, udpExchange, type Exchange } from '../conformance/gateway-api/l4-traffic.ts';
import { createSelfSignedServerCertificate } from '../support/demo/certs.ts';
import { startEchoBasic, type RunningEcho } from '../support/demo/echo-basic.ts';
import { freePortOffset, freePorts } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_CLASS_YAML, tlsSecretYaml } from './backends.ts';

const HOST = '127.0.0.1';
const TCP_PORT = 9000;
const TLS_PORT = 9443;

interface Pod {
  name: string;
  echo: RunningEcho;
  port: number;
}

/** An echo-basic pod in TCP or UDP mode on `port` (a free one when absent), named `<name>-abc-1`. */
async function echoPod(name: string, mode: 'tcp' | 'udp', port?: number): Promise<Pod> {
  port ??= (await freePorts(1))[0]!;
  const env = { [mode === 'tcp' ? 'TCP_ECHO_SERVER' : 'UDP_ECHO_SERVER']: '1', [mode === 'tcp' ? 'TCP_PORT' : 'UDP_PORT']: String(port), POD_NAME: `${name}-abc-1`, NAMESPACE: 'default' };
  return { name, echo: await startEchoBasic({ host: HOST, env }), port };
}

function serviceYaml(pod: Pod, protocol: 'TCP' | 'UDP'): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${pod.name}, namespace: default}
spec:
  ports: [{name: p, port: 80, protocol: ${protocol}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${pod.name}-1, namespace: default, labels: {kubernetes.io/service-name: ${pod.name}}}
addressType: IPv4
ports: [{name: p, port: ${pod.port}, protocol: ${protocol}}]
endpoints: [{addresses: [${HOST}]}]
`;
}

const routeYaml = (kind: 'TCPRoute' | 'UDPRoute' | 'TLSRoute', name: string, section: string, backends: [string, number][], hostnames?: string[]) => `apiVersion: gateway.networking.k8s.io/${kind === 'TLSRoute' ? 'v1' : 'v1alpha2'}
kind: ${kind}
metadata: {name: ${name}, namespace: default}
spec:
  parentRefs: [{name: l4, sectionName: ${section}}]
${hostnames ? `  hostnames: [${hostnames.join(', ')}]\n` : ''}  rules:
  - backendRefs: [${backends.map(([b, w]) => `{name: ${b}, port: 80, weight: ${w}}`).join(', ')}]
`;

function backendOf(exchange: Exchange): string {
  return 'pod' in exchange ? exchange.pod.split('-')[0]! : `error: ${exchange.error}`;
}

async function tally(count: number, exchange: () => Promise<Exchange>): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const backend = backendOf(await exchange());
    seen[backend] = (seen[backend] ?? 0) + 1;
  }
  return seen;
}

describe('TCPRoute, UDPRoute and TLSRoute Terminate through sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let pods: Record<string, Pod>;
  let offset: number;
  let gatewayCertPem: string;

  const tcp = () => tcpExchange(HOST, TCP_PORT + offset, 5_000);
  // Each exchange from a local port not used before: a reused one would continue its session.
  const udpSources = new Set<number>();
  const udp = () => udpExchange(HOST, TCP_PORT + offset, 'hello', 2_000, udpSources);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-l4-'));
    pods = {
      blue: await echoPod('blue', 'tcp'),
      green: await echoPod('green', 'tcp'),
      red: await echoPod('red', 'udp'),
      yellow: await echoPod('yellow', 'udp'),
    };
    const cert = await createSelfSignedServerCertificate({ dnsNames: ['tls.example.com'] });
    gatewayCertPem = cert.certPem;
    offset = await freePortOffset([TCP_PORT, TLS_PORT]);
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        GATEWAY_CLASS_YAML,
        tlsSecretYaml('cert', cert),
        `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: l4, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: tcp, port: ${TCP_PORT}, protocol: TCP}
  - {name: udp, port: ${TCP_PORT}, protocol: UDP}
  - {name: tls, port: ${TLS_PORT}, protocol: TLS, hostname: tls.example.com, tls: {mode: Terminate, certificateRefs: [{name: cert}]}}
`,
        serviceYaml(pods.blue!, 'TCP'),
        serviceYaml(pods.green!, 'TCP'),
        serviceYaml(pods.red!, 'UDP'),
        serviceYaml(pods.yellow!, 'UDP'),
      ].join('---\n'),
    );
    writeFileSync(join(dir, 'tcp.yaml'), routeYaml('TCPRoute', 'split', 'tcp', [['blue', 3], ['green', 1]]));
    writeFileSync(join(dir, 'udp.yaml'), routeYaml('UDPRoute', 'split', 'udp', [['red', 1], ['yellow', 1]]));
    writeFileSync(join(dir, 'tls.yaml'), routeYaml('TLSRoute', 'terminated', 'tls', [['green', 1]], ['tls.example.com']));
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--bind-address', HOST, '--backend-connect-timeout', '1000']);
  });

  afterAll(async () => {
    await sluice?.stop();
    await Promise.all(Object.values(pods ?? {}).map((p) => p.echo.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('splits TCP connections 3:1 and UDP sessions 1:1 (measured over fresh connections and sockets)', async () => {
    const tcpSeen = await tally(200, tcp);
    const udpSeen = await tally(100, udp);
    process.stderr.write(`l4 weights: TCP ${JSON.stringify(tcpSeen)} (3:1), UDP ${JSON.stringify(udpSeen)} (1:1)\n`);
    // Smooth weighted round robin in one process: the split is exact, not just close.
    expect(tcpSeen).toEqual({ blue: 150, green: 50 });
    expect(udpSeen).toEqual({ red: 50, yellow: 50 });
  });

  it('terminates TLS with the listener certificate and forwards plaintext to the TCP backend', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: HOST, port: TLS_PORT + offset, servername: 'tls.example.com', ca: gatewayCertPem });
      let text = '';
      socket.on('data', (d) => {
        text += d;
        if (text.split('\n').length === 3) {
          socket.destroy();
          resolve(text);
        }
        if (text === 'Gateway API Test TCP Server\n') socket.write('IS_TLS\n');
      });
      socket.on('error', reject);
    });
    expect(answer).toBe('Gateway API Test TCP Server\nfalse\n');
    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    expect(metrics).toMatch(/sluice_l4_connections_total\{listener="127\.0\.0\.1:9443",protocol="TLS",outcome="forwarded"\} [1-9]/);
  });

  it('closes the share of a stopped backend at once and keeps serving the rest', async () => {
    await pods.green!.echo.stop();
    try {
      const seen = await tally(40, tcp);
      // Every fourth connection goes to the stopped pod: refused by the kernel, closed by Sluice.
      expect(seen.blue).toBe(30);
      expect(Object.keys(seen).filter((k) => k !== 'blue')).toHaveLength(1);
      expect(seen[Object.keys(seen).find((k) => k !== 'blue')!]).toBe(10);
      const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
      expect(metrics).toMatch(/sluice_l4_connections_total\{listener="127\.0\.0\.1:9000",protocol="TCP",outcome="connect_failed"\} 10/);
    } finally {
      pods.green = await echoPod('green', 'tcp', pods.green!.port);
    }
  });

  it('moves new connections to a rewritten route under traffic (none fails) while an open connection keeps its backend', async () => {
    const open = net.connect({ host: HOST, port: TCP_PORT + offset });
    const lines: string[] = [];
    let buffer = '';
    open.on('data', (d) => {
      buffer += d;
      while (buffer.includes('\n')) {
        lines.push(buffer.slice(0, buffer.indexOf('\n')));
        buffer = buffer.slice(buffer.indexOf('\n') + 1);
      }
    });
    await waitFor('the welcome line', () => lines.length >= 1 || undefined, 5_000);
    open.write('TEST\n');
    await waitFor('the pod line', () => lines.length >= 2 || undefined, 5_000);
    const before = (JSON.parse(lines[1]!) as { pod: string }).pod.split('-')[0];

    const target = before === 'blue' ? 'green' : 'blue';
    // Steady traffic across the reload: no connection may fail while the route changes.
    const during: string[] = [];
    let loading = true;
    const load = (async () => {
      while (loading) during.push(backendOf(await tcp()));
    })();
    writeFileSync(join(dir, 'tcp.yaml'), routeYaml('TCPRoute', 'split', 'tcp', [[target, 1]]));
    // The manifest folder is re-read and applied within a few seconds; traffic keeps flowing meanwhile.
    // The old split sends a quarter of connections to green: only a run of 8 on the target shows the new route.
    await waitFor(`new connections on ${target}`, async () => ((await tally(8, tcp))[target] === 8 ? true : undefined), 15_000);
    expect(await tally(20, tcp)).toEqual({ [target]: 20 });
    loading = false;
    await load;
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((d) => d.startsWith('error'))).toEqual([]);

    open.write('TEST\n');
    await waitFor('the open connection answering', () => lines.length >= 3 || undefined, 5_000);
    expect((JSON.parse(lines[2]!) as { pod: string }).pod.split('-')[0]).toBe(before);
    open.destroy();
  });
});
