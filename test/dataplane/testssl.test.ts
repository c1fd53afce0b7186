// testssl.sh (the Debian package) scans a real `sluice run` HTTPS port, once per certificate type
// (RSA, ECDSA; chosen by SNI on one shared port), and must find the Mozilla intermediate profile:
// TLS 1.2 and 1.3 only, TLS 1.2 suites with ECDHE and AEAD only (no CBC, no static RSA key
// exchange), and nothing it calls VULNERABLE. One scan takes about 25 s; both run side by side.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { createSelfSignedServerCertificate, tlsSecretData, type CertificateBundle } from '../support/demo/certs.ts';
import { TLS_PROFILES } from '../../ir/tls-profiles.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { describeIfPossible, findOnPath, requiredByEnvironment } from '../support/suite.ts';
import { selfSignedCertificate } from './support/certs.ts';

const TESTSSL = findOnPath(['testssl', 'testssl.sh']);
const PORT = 8443;
/** A scan takes ~25 s alone; two side by side on a loaded 2-core box need far more. */
const SCAN_TIMEOUT_MS = 240_000;

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

const suite = describeIfPossible(
  'testssl.sh scan of the HTTPS defaults',
  TESTSSL === null ? 'testssl is not installed (Debian package testssl.sh)' : null,
  requiredByEnvironment('SLUICE_TESTSSL_REQUIRED'),
);

suite('testssl.sh scan of the HTTPS defaults', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-testssl-'));
    const [rsa, ecdsa] = await Promise.all([
      createSelfSignedServerCertificate({ dnsNames: ['rsa.example.com'] }),
      selfSignedCertificate('ecdsa.example.com'),
    ]);
    const secret = (name: string, bundle: CertificateBundle) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name, namespace: 'default' },
      data: tlsSecretData(bundle),
    });
    const listener = (name: string) => ({ name, port: PORT, protocol: 'HTTPS', hostname: `${name}.example.com`, tls: { certificateRefs: [{ name: `${name}-tls` }] } });
    const objects = [
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'scanned', namespace: 'default' },
        spec: { gatewayClassName: 'sluice', listeners: [listener('rsa'), listener('ecdsa')] },
      },
      secret('rsa-tls', rsa),
      secret('ecdsa-tls', ecdsa),
    ];
    writeFileSync(join(dir, 'gateway.yaml'), objects.map((o) => stringify(o)).join('---\n'));
    offset = await freePortOffset([PORT]);
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset)]);
  });

  afterAll(async () => {
    await sluice?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Protocols (-p), each cipher per protocol (-E), forward secrecy (-f) and vulnerabilities (-U). */
  async function scan(servername: string): Promise<Finding[]> {
    const jsonFile = join(dir, `${servername}.json`);
    const target = `${servername}:${PORT + offset}`;
    const args = ['--quiet', '--color', '0', '--warnings', 'off', '--openssl', '/usr/bin/openssl', '--ip', '127.0.0.1', '-p', '-E', '-f', '-U', '--jsonfile', jsonFile, target];
    await promisify(execFile)(TESTSSL!, args, { timeout: SCAN_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(readFileSync(jsonFile, 'utf8')) as Finding[];
  }

  it(
    'finds TLS 1.2 (ECDHE + AEAD) and 1.3 only, for RSA and ECDSA certificates, and nothing vulnerable',
    async () => {
      const [rsaFindings, ecdsaFindings] = await Promise.all([scan('rsa.example.com'), scan('ecdsa.example.com')]);
      const intermediate = TLS_PROFILES.intermediate.ciphers;
      for (const [keyType, findings] of [
        ['RSA', rsaFindings],
        ['ECDSA', ecdsaFindings],
      ] as const) {
        const finding = (id: string) => findings.find((f) => f.id === id)?.finding;
        for (const old of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) expect([old, finding(old)]).toEqual([old, 'not offered']);
        expect(finding('TLS1_2')).toBe('offered');
        expect(finding('TLS1_3')).toMatch(/^offered/);

        // -E lists every suite accepted, one finding each: `TLS 1.2   xc02f   ECDHE-RSA-AES128-GCM-SHA256 ...`.
        const suites = (protocol: string) =>
          findings.filter((f) => f.id.startsWith(`cipher-${protocol}_x`)).map((f) => f.finding.split(/\s+/)[3]!).sort();
        expect(suites('tls1')).toEqual([]);
        expect(suites('tls1_1')).toEqual([]);
        expect(suites('tls1_2')).toEqual(intermediate.filter((name) => name.startsWith(`ECDHE-${keyType}-`)).sort());
        expect(suites('tls1_3')).toEqual(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']);

        // "VULNERABLE" and "potentially VULNERABLE"; "not vulnerable" is fine.
        const vulnerable = findings.filter((f) => /vulnerable/i.test(f.finding) && !/^not vulnerable/i.test(f.finding));
        expect(vulnerable).toEqual([]);
        expect(findings.filter((f) => ['MEDIUM', 'HIGH', 'CRITICAL'].includes(f.severity))).toEqual([]);
      }
    },
    SCAN_TIMEOUT_MS + 30_000,
  );
});
