// The L4 case kinds of the Gateway API runner (tcpEcho, tlsConnectionRejected) against real
// sockets: the echo-basic TCP server stand-in, a TLS server and servers that hang up.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { createCertificateAuthority, createServerCertificate, type CertificateAuthority } from '../support/demo/certs.ts';
import { runL4Case } from './gateway-api/l4-traffic.ts';
import { validateCaseFile } from './gateway-api/schema.ts';
import type { TrafficEnv } from './gateway-api/traffic.ts';
import { directTrafficEnv } from './direct-env.ts';
import type { TcpEchoCase, TlsConnectionRejectedCase } from './gateway-api/types.ts';
import { startTcpEcho, TCP_ECHO_WELCOME, type TcpEchoServer } from '../support/demo/tcp-echo.ts';

const HOST = '127.0.0.1';
const LISTENER_PORT = 443;
const QUICK_RETRY = { intervalSeconds: 0.05, budgetSeconds: 0.6 };

/** The runner's view of the world: the Gateway "listens" on `port` of HOST (listener port + offset). */
function envFor(port: number, caPem: string): TrafficEnv {
  return directTrafficEnv(HOST, port - LISTENER_PORT, {
    convergence: { requiredSuccesses: 1, pollIntervalMs: 50, budgetMs: 1000 },
    configMapValue: (ref, key) => (ref === 'ns/ca' && key === 'ca.crt' ? caPem : undefined),
  });
}

async function listen(onConnection: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('L4 cases against real sockets', () => {
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let echo: TcpEchoServer;

  beforeAll(async () => {
    ca = await createCertificateAuthority({ commonName: 'CA C' });
    otherCa = await createCertificateAuthority({ commonName: 'another CA' });
    const leaf = await createServerCertificate(ca, { dnsNames: ['abc.example.com'] });
    echo = await startTcpEcho({ host: HOST, tcpPort: 0, tlsPort: 0, tls: leaf, identity: { pod: 'tcp-backend-6c8d9f7b5-x2k9p', namespace: 'infra' } });
  });
  afterAll(async () => {
    await echo.close();
  });

  const tcpEcho = (over: Partial<TcpEchoCase>): TcpEchoCase => ({
    name: 'c',
    kind: 'tcpEcho',
    target: { gateway: 'infra/gw', port: LISTENER_PORT, scheme: 'tls' },
    request: { tls: { serverName: 'abc.example.com', trustCACertificateFrom: 'ns/ca' } },
    expect: { backendIsTLS: true, backend: { podNamePrefix: 'tcp-backend-', namespace: 'infra' }, backendTLS: { serverName: 'abc.example.com' } },
    retry: QUICK_RETRY,
    ...over,
  });

  it('the echo server speaks the echo-basic TCP protocol', async () => {
    const socket = net.connect({ host: HOST, port: echo.tcpPort });
    socket.setEncoding('utf8');
    let received = '';
    socket.on('data', (d: string) => (received += d));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('PING\nIS_TLS\nNOISE\nTEST\n');
    const deadline = Date.now() + 5000;
    while (received.split('\n').length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    socket.destroy();
    const [welcome, pong, isTls, test] = received.split('\n');
    expect([welcome, pong, isTls]).toEqual([TCP_ECHO_WELCOME, 'PONG', 'false']);
    expect(JSON.parse(test)).toMatchObject({ pod: 'tcp-backend-6c8d9f7b5-x2k9p', namespace: 'infra', isTLS: false, tcpport: String(echo.tcpPort) });
  });

  it('passes a TLS exchange verified against the case CA, and sees the SNI at the backend', async () => {
    expect(await runL4Case(tcpEcho({}), envFor(echo.tlsPort!, ca.certPem))).toEqual([]);
  });

  it('passes a plain TCP exchange', async () => {
    const c = tcpEcho({ target: { gateway: 'infra/gw', port: LISTENER_PORT, scheme: 'tcp' }, request: undefined, expect: { backendIsTLS: false, backend: { podNamePrefix: 'tcp-backend-', namespace: 'infra' }, backendTLS: null } });
    expect(await runL4Case(c, envFor(echo.tcpPort, ca.certPem))).toEqual([]);
  });

  it('fails at once on the first complete exchange that does not match', async () => {
    const c = tcpEcho({ target: { gateway: 'infra/gw', port: LISTENER_PORT, scheme: 'tcp' }, request: undefined, retry: { intervalSeconds: 0.05, budgetSeconds: 30 } });
    const started = Date.now();
    const problems = await runL4Case({ ...c, expect: { backendIsTLS: true, backend: { podNamePrefix: 'other-', namespace: 'web' }, backendTLS: { serverName: 'abc.example.com' } } }, envFor(echo.tcpPort, ca.certPem));
    expect(problems).toEqual([
      'IS_TLS answered "false", expected "true"',
      'backend namespace "infra", expected "web"',
      'backend pod "tcp-backend-6c8d9f7b5-x2k9p", expected a name starting with "other-"',
      'the backend received SNI undefined, expected "abc.example.com"',
    ]);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('keeps retrying while the certificate does not chain to the case CA, then reports the last error', async () => {
    const problems = await runL4Case(tcpEcho({}), envFor(echo.tlsPort!, otherCa.certPem));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^no conclusive attempt within 0.6 s \(\d+ attempts\); last: tls connection to .*certificate/);
  });

  const rejected: TlsConnectionRejectedCase = {
    name: 'r',
    kind: 'tlsConnectionRejected',
    target: { gateway: 'infra/gw', port: LISTENER_PORT, scheme: 'tls' },
    request: { tls: { serverName: 'example.com' } },
    retry: QUICK_RETRY,
  };

  it('counts a close or a reset during the handshake as rejected', async () => {
    const closing = await listen((s) => s.end());
    const resetting = await listen((s) => s.once('data', () => s.resetAndDestroy()));
    try {
      expect(await runL4Case(rejected, envFor(closing.port, ca.certPem))).toEqual([]);
      expect(await runL4Case(rejected, envFor(resetting.port, ca.certPem))).toEqual([]);
    } finally {
      await closing.close();
      await resetting.close();
    }
  });

  it('does not count a certificate error or a refused connection', async () => {
    // The echo's certificate is not in the system roots: a certificate error, "not yet".
    expect((await runL4Case(rejected, envFor(echo.tlsPort!, ca.certPem)))[0]).toMatch(/^no conclusive attempt .*last: .*certificate/);
    const gone = await listen(() => {});
    await gone.close();
    expect((await runL4Case(rejected, envFor(gone.port, ca.certPem)))[0]).toMatch(/last: ECONNREFUSED/);
  });

  it('validates the L4 case shapes strictly', () => {
    const file = (cases: unknown[]) => ({ schema: 'gwapi-conformance-case/v1', name: 'T', features: [{ name: 'Gateway' }], manifests: ['x.yaml'], cases });
    const { retry: _retry, ...withoutRetry } = tcpEcho({});
    const { request: _request, ...withoutRequest } = tcpEcho({});
    expect(validateCaseFile(file([withoutRetry, rejected]))).toEqual([]);
    expect(validateCaseFile(file([{ ...rejected, target: { ...rejected.target, scheme: 'tcp' } }]))).toEqual(['case.cases[0]: tlsConnectionRejected needs scheme tls']);
    expect(validateCaseFile(file([withoutRequest]))).toEqual(['case.cases[0]: a tls target needs request.tls']);
    expect(validateCaseFile(file([{ ...tcpEcho({}), payload: 'x' }]))).toEqual(['case.cases[0]: unknown field "payload"']);
  });
});
