// A real `sluice run` with one Gateway (a cleartext and an HTTPS listener) routing everything to an
// echo backend, for the HTTP/2 front door tests (h2spec, raw frames). The manifests live in a
// temporary folder, the TLS Secret is a fresh self-signed certificate.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayYaml, serviceYaml } from '../../e2e/backends.ts';
import { freePortOffset } from '../../support/ports.ts';
import { startSluice, type SluiceProcess } from '../../support/sluice-process.ts';
import { selfSignedCertificate } from './certs.ts';
import { startEchoServer, type EchoServer } from './echo-server.ts';

export interface H2Gateway {
  sluice: SluiceProcess;
  echo: EchoServer;
  /** Cleartext listener (HTTP/1.1 and HTTP/2 with prior knowledge). */
  plainPort: number;
  /** HTTPS listener (h2 or http/1.1 by ALPN). */
  tlsPort: number;
  /** The certificate's name (and the Host the route serves, like any other). */
  hostname: string;
  stop(): Promise<void>;
}

const HOSTNAME = 'h2.sluice.test';

/** The route every request takes unless a test gives its own: everything to the echo backend. */
const ALL_TO_ECHO = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all, namespace: default}
spec:
  parentRefs: [{name: h2}]
  rules:
  - backendRefs: [{name: echo, port: 80}]
`;

/**
 * Starts the Gateway; `flags` go to `sluice run` (e.g. `--http2-idle-timeout 500`), `extraManifests`
 * (YAML) join the folder, e.g. a route with more specific matches to another backend on parent `h2`;
 * `route` replaces the HTTPRoute that sends everything to the echo backend (e.g. a GRPCRoute).
 */
export async function startH2Gateway(flags: string[] = [], extraManifests = '', route = ALL_TO_ECHO): Promise<H2Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-h2-'));
  const echo = await startEchoServer('h2-echo');
  try {
    const certificate = await selfSignedCertificate(HOSTNAME);
    const base64 = (text: string): string => Buffer.from(text).toString('base64');
    writeFileSync(
      join(dir, 'gateway.yaml'),
      `${gatewayYaml(['{name: http, protocol: HTTP, port: 80}', '{name: https, protocol: HTTPS, port: 443, tls: {mode: Terminate, certificateRefs: [{kind: Secret, name: h2-tls}]}}'], 'h2')}---
apiVersion: v1
kind: Secret
metadata: {name: h2-tls, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: ${base64(certificate.certPem)}
  tls.key: ${base64(certificate.keyPem)}
---
${route}---
${serviceYaml('echo', echo)}${extraManifests === '' ? '' : `---\n${extraManifests}`}`,
    );
    const offset = await freePortOffset([80, 443]);
    const sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), ...flags]);
    return {
      sluice,
      echo,
      plainPort: 80 + offset,
      tlsPort: 443 + offset,
      hostname: HOSTNAME,
      stop: async () => {
        await sluice.stop();
        await echo.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
