// BackendTLSPolicy and the Gateway's backend client certificate through a real `sluice run` and a
// real HTTPS echo backend (which asks for a client certificate and verifies it): the right CA gives
// 200 with the policy hostname as SNI and the client certificate presented; a wrong CA or a SAN
// mismatch gives 502 (logged with the backend); a policy without a usable CA is Accepted=False and
// its Service answers 503, never plaintext; a CA added later is applied on reload.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { createCertificateAuthority, createClientCertificate, createServerCertificate, tlsSecretData, type CertificateBundle } from '../support/demo/certs.ts';
import { startEchoServer, type EchoReply, type EchoServer } from '../support/demo/echo-server.ts';
import { freePortOffset } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';

const HTTP_PORT = 8080;
const NS = 'default';

interface Scenario {
  service: string;
  policy?: { caConfigMap: string; hostname: string; subjectAltNames?: { type: 'Hostname' | 'URI'; hostname?: string; uri?: string }[] };
}

const SCENARIOS: Scenario[] = [
  { service: 'valid', policy: { caConfigMap: 'ca', hostname: 'abc.example.com' } },
  { service: 'wrong-ca', policy: { caConfigMap: 'other-ca', hostname: 'abc.example.com' } },
  { service: 'san-uri', policy: { caConfigMap: 'ca', hostname: 'sni-only.example.com', subjectAltNames: [{ type: 'URI', uri: 'spiffe://abc.example.com/test-identity' }] } },
  { service: 'san-mismatch', policy: { caConfigMap: 'ca', hostname: 'abc.example.com', subjectAltNames: [{ type: 'Hostname', hostname: 'def.example.com' }] } },
  { service: 'refused', policy: { caConfigMap: 'added-later', hostname: 'abc.example.com' } },
];

function manifests(backendPort: number, ca: string, otherCa: string, client: CertificateBundle, withLateCa: boolean): string {
  const objects: unknown[] = [
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: NS },
      spec: { gatewayClassName: 'sluice', tls: { backend: { clientCertificateRef: { name: 'gateway-client' } } }, listeners: [{ name: 'http', port: HTTP_PORT, protocol: 'HTTP' }] },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw' }],
        rules: SCENARIOS.map((s) => ({ matches: [{ path: { type: 'PathPrefix', value: `/${s.service}` } }], backendRefs: [{ name: s.service, port: 443 }] })),
      },
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca', namespace: NS }, data: { 'ca.crt': ca } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other-ca', namespace: NS }, data: { 'ca.crt': otherCa } },
    ...(withLateCa ? [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'added-later', namespace: NS }, data: { 'ca.crt': ca } }] : []),
    { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'gateway-client', namespace: NS }, data: tlsSecretData(client) },
  ];
  for (const s of SCENARIOS) {
    objects.push(
      { apiVersion: 'v1', kind: 'Service', metadata: { name: s.service, namespace: NS }, spec: { ports: [{ name: 'https', port: 443, targetPort: backendPort }] } },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${s.service}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': s.service } },
        addressType: 'IPv4',
        ports: [{ name: 'https', port: backendPort }],
        endpoints: [{ addresses: ['127.0.0.1'] }],
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'BackendTLSPolicy',
        metadata: { name: s.service, namespace: NS },
        spec: {
          targetRefs: [{ group: '', kind: 'Service', name: s.service, sectionName: 'https' }],
          validation: { caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: s.policy!.caConfigMap }], hostname: s.policy!.hostname, ...(s.policy!.subjectAltNames ? { subjectAltNames: s.policy!.subjectAltNames } : {}) },
        },
      },
    );
  }
  return objects.map((o) => JSON.stringify(o)).join('\n---\n');
}

async function get(port: number, path: string): Promise<{ status: number; reply: EchoReply | null }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { headers: { host: 'www.example.com' } });
  const text = await res.body.text();
  return { status: res.statusCode, reply: res.statusCode === 200 ? (JSON.parse(text) as EchoReply) : null };
}

/** The answer to `path` once it is a 200 (the configuration may still be on its way). */
function ok(port: number, path: string): Promise<{ status: number; reply: EchoReply | null }> {
  return waitFor(`200 from ${path}`, async () => {
    const answer = await get(port, path);
    return answer.status === 200 ? answer : undefined;
  });
}

describe('BackendTLSPolicy in a real sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let backend: EchoServer;
  let port: number;
  let write: (withLateCa: boolean) => void;
  let clientCert: string;

  beforeAll(async () => {
    const ca = await createCertificateAuthority({ commonName: 'backend-ca' });
    const otherCa = await createCertificateAuthority({ commonName: 'unrelated-ca' });
    const serving = await createServerCertificate(ca, { dnsNames: ['abc.example.com'], uris: ['spiffe://abc.example.com/test-identity'] });
    const client = await createClientCertificate(ca, { commonName: 'gateway' });
    clientCert = client.certPem;
    backend = await startEchoServer({ httpPort: 0, httpsPort: 0, tls: { cert: serving.certPem, key: serving.keyPem, ca: ca.certPem }, identity: { pod: 'tls-backend-1', namespace: NS } });
    dir = mkdtempSync(join(tmpdir(), 'sluice-backend-tls-'));
    write = (withLateCa) => writeFileSync(join(dir, 'all.yaml'), manifests(backend.httpsPort!, ca.certPem, otherCa.certPem, client, withLateCa));
    write(false);
    const offset = await freePortOffset([HTTP_PORT]);
    port = HTTP_PORT + offset;
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset)]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reaches the backend over TLS with the policy hostname as SNI, presenting the Gateway client certificate', async () => {
    const { status, reply } = await ok(port, '/valid');
    expect(status).toBe(200);
    expect(reply!.tls?.serverName).toBe('abc.example.com');
    expect(reply!.tls?.peerCertificates?.[0]?.replace(/\s/g, '')).toBe(clientCert.replace(/\s/g, ''));
    // SANs replace the hostname check: the SNI is not on the certificate, the URI SAN is.
    const san = await get(port, '/san-uri');
    expect(san.status).toBe(200);
    expect(san.reply!.tls?.serverName).toBe('sni-only.example.com');
  });

  it('answers 502 when the backend certificate does not verify, and logs which backend', async () => {
    expect((await get(port, '/wrong-ca')).status).toBe(502);
    expect((await get(port, '/san-mismatch')).status).toBe(502);
    // Logs are written asynchronously.
    const logs = await waitFor('the san-mismatch failure logged', () => (sluice.logs().includes('service/default/san-mismatch/port/443') ? sluice.logs() : undefined));
    expect(logs).toMatch(/"backend":"service\/default\/wrong-ca\/port\/443".*SELF_SIGNED_CERT_IN_CHAIN/);
    expect(logs).toMatch(/"backend":"service\/default\/san-mismatch\/port\/443".*none of the required subjectAltNames/);
  });

  it('reports each policy on its Gateway, refuses the backend of one without a usable CA, and applies a CA added later', async () => {
    const statuses = await sluice.status();
    const policy = (name: string) => statuses.find((o) => o.kind === 'BackendTLSPolicy' && o.metadata.name === name);
    expect(policy('valid').status.ancestors).toEqual([
      expect.objectContaining({
        ancestorRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: NS, name: 'gw' },
        controllerName: 'sluice.dev/gateway-controller',
        conditions: expect.arrayContaining([expect.objectContaining({ type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: 1 })]),
      }),
    ]);
    expect(policy('refused').status.ancestors[0].conditions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'Accepted', status: 'False', reason: 'NoValidCACertificate' }),
        expect.objectContaining({ type: 'ResolvedRefs', status: 'False', reason: 'InvalidCACertificateRef' }),
      ]),
    );
    const gateway = statuses.find((o) => o.kind === 'Gateway' && o.metadata.name === 'gw');
    expect(gateway.status.conditions).toContainEqual(expect.objectContaining({ type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs' }));
    const before = backend.received.length;
    expect((await get(port, '/refused')).status).toBe(503);
    expect(backend.received.length).toBe(before); // nothing reached the backend, in plaintext or otherwise

    write(true);
    const after = await ok(port, '/refused');
    expect(after.status).toBe(200);
    expect(after.reply!.tls?.serverName).toBe('abc.example.com');
    const accepted = (await sluice.status()).find((o) => o.kind === 'BackendTLSPolicy' && o.metadata.name === 'refused');
    expect(accepted.status.ancestors[0].conditions).toContainEqual(expect.objectContaining({ type: 'Accepted', status: 'True' }));
  });
});
