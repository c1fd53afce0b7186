// One echo-basic "container", configured the way upstream's image is: by its environment. The
// mode follows GRPC_ECHO_SERVER / TCP_ECHO_SERVER / UDP_ECHO_SERVER (none: HTTP); identity from
// POD_NAME, NAMESPACE, SERVICE_NAME, INGRESS_NAME; ports and certificate files from the variables
// each mode reads (suite README, "Echo server contract"). The DNS backend (the base manifests'
// CoreDNS) is the one mode not chosen by environment.
// Used by the conformance runner (one per simulated pod, files from mounted Secrets/ConfigMaps)
// and by test/kube/echo-child.ts (a real process in a network namespace).

import { readFileSync } from 'node:fs';
import { identityFromEnv, startEchoServer, type EchoServer } from './echo-server.ts';
import { startGrpcEcho } from './grpc-echo.ts';
import { startTcpEcho } from './tcp-echo.ts';
import { startDnsServer, startUdpEcho } from './udp-echo.ts';

export const ECHO_MODES = ['http', 'grpc', 'tcp', 'udp', 'dns'] as const;
export type EchoMode = (typeof ECHO_MODES)[number];

export interface ContainerPort {
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP';
}

export interface EchoContainerSpec {
  /** Address every listener binds. */
  host: string;
  /** Variables as the container sees them (literal values; fieldRefs already resolved). */
  env: Record<string, string>;
  /** Overrides the mode the environment selects (the DNS backend). */
  mode?: EchoMode;
  /** File contents by path (mounted volumes); a path not listed is read from disk. */
  files?: Record<string, string>;
  log?: (line: string) => void;
}

export interface RunningEcho {
  mode: EchoMode;
  /** The HTTP echo (HTTP mode only): what it received, for mirror checks. */
  http: EchoServer | undefined;
  /** What listens, by the names suite.json uses (http, h2c, https, grpc, grpcTLS, tcp, tls, udp, dns). */
  ports: ContainerPort[];
  stop(): Promise<void>;
}

/** echo-basic's mode selection: the first of these variables that is set (no manifest sets two). */
export function modeFromEnv(env: Record<string, string | undefined>): EchoMode {
  if (env.GRPC_ECHO_SERVER) return 'grpc';
  if (env.TCP_ECHO_SERVER) return 'tcp';
  if (env.UDP_ECHO_SERVER) return 'udp';
  return 'http';
}

function portFrom(env: Record<string, string>, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  if (!/^\d+$/.test(text) || Number(text) > 65535) throw new Error(`non-integer value in ${name} '${text}'`);
  return Number(text);
}

export async function startEchoBasic(spec: EchoContainerSpec): Promise<RunningEcho> {
  const { env, host, log } = spec;
  const mode = spec.mode ?? modeFromEnv(env);
  const identity = identityFromEnv(env);
  const file = (name: string): string | undefined => {
    const path = env[name];
    if (!path) return undefined;
    if (spec.files && path in spec.files) return spec.files[path];
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  /** A certificate and key when both variables name readable files. */
  const pair = (certVar: string, keyVar: string) => {
    const certPem = file(certVar);
    const keyPem = file(keyVar);
    return certPem && keyPem ? { certPem, keyPem } : undefined;
  };
  const tcp = (name: string, port: number): ContainerPort => ({ name, port, protocol: 'TCP' });

  switch (mode) {
    case 'http': {
      const tls = pair('TLS_SERVER_CERT', 'TLS_SERVER_PRIVKEY');
      const ca = file('TLS_CLIENT_CACERTS');
      const server = await startEchoServer({
        host,
        httpPort: portFrom(env, 'HTTP_PORT', 3000),
        h2cPort: portFrom(env, 'H2C_PORT', 3001),
        httpsPort: tls ? portFrom(env, 'HTTPS_PORT', 8443) : null,
        ...(tls ? { tls: { cert: tls.certPem, key: tls.keyPem, ...(ca ? { ca } : {}) } } : {}),
        identity,
        log,
      });
      const ports = [tcp('http', server.httpPort), tcp('h2c', server.h2cPort!)];
      if (server.httpsPort !== undefined) ports.push(tcp('https', server.httpsPort));
      return { mode, http: server, ports, stop: () => server.close() };
    }
    case 'grpc': {
      const tls = pair('TLS_SERVER_CERT', 'TLS_SERVER_PRIV_KEY');
      const server = await startGrpcEcho({ host, port: portFrom(env, 'HTTP_PORT', 3000), tlsPort: portFrom(env, 'HTTPS_PORT', 8443), ...(tls ? { tls } : {}), identity, log });
      const ports = [tcp('grpc', server.port)];
      if (server.tlsPort !== undefined) ports.push(tcp('grpcTLS', server.tlsPort));
      return { mode, http: undefined, ports, stop: () => server.close() };
    }
    case 'tcp': {
      const tls = pair('TLS_SERVER_CERT', 'TLS_SERVER_PRIV_KEY');
      const server = await startTcpEcho({ host, tcpPort: portFrom(env, 'TCP_PORT', 3000), tlsPort: portFrom(env, 'TLS_PORT', 8443), ...(tls ? { tls } : {}), identity });
      const ports = [tcp('tcp', server.tcpPort)];
      if (server.tlsPort !== undefined) ports.push(tcp('tls', server.tlsPort));
      return { mode, http: undefined, ports, stop: () => server.close() };
    }
    case 'udp': {
      const server = await startUdpEcho({ host, port: portFrom(env, 'UDP_PORT', 8080), identity, log });
      return { mode, http: undefined, ports: [{ name: 'udp', port: server.port, protocol: 'UDP' }], stop: () => server.close() };
    }
    case 'dns': {
      const server = await startDnsServer({ host, port: portFrom(env, 'DNS_PORT', 53), log });
      return { mode, http: undefined, ports: [{ name: 'dns', port: server.port, protocol: 'UDP' }], stop: () => server.close() };
    }
  }
}
