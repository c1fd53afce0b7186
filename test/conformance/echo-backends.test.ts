// The echo-basic stand-ins of the Gateway API suite in every mode (suite README, "Echo server
// contract"), configured by environment as upstream's image is, and talked to by real clients:
// grpc-js for gRPC (plaintext and TLS), TLS and plain TCP sockets, UDP datagrams, DNS queries, and
// HTTPS with an optional client certificate.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import dgram from 'node:dgram';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import * as dnsPacket from 'dns-packet';
import { createCertificateAuthority, createClientCertificate, createServerCertificate, type CertificateAuthority, type CertificateBundle } from '../support/demo/certs.ts';
import { modeFromEnv, startEchoBasic, type RunningEcho } from '../support/demo/echo-basic.ts';
import { GRPC_ECHO_SERVICE, grpcEchoService, type GrpcEchoResponse } from '../support/demo/grpc-echo.ts';
import { dnsAnswer, UDP_ECHO_BUFFER } from '../support/demo/udp-echo.ts';

const HOST = '127.0.0.1';
const FILES = { '/etc/secret-volume/crt': '', '/etc/secret-volume/key': '', '/etc/configmap-volume/ca': '' };

let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let leaf: CertificateBundle;
let clientCert: CertificateBundle;
let strangerCert: CertificateBundle;
const running: RunningEcho[] = [];

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'CA C' });
  otherCa = await createCertificateAuthority({ commonName: 'CA D' });
  leaf = await createServerCertificate(ca, { dnsNames: ['abc.example.com'] });
  clientCert = await createClientCertificate(ca, { commonName: 'gateway client' });
  strangerCert = await createClientCertificate(otherCa, { commonName: 'stranger' });
  FILES['/etc/secret-volume/crt'] = leaf.certPem;
  FILES['/etc/secret-volume/key'] = leaf.keyPem;
  FILES['/etc/configmap-volume/ca'] = ca.certPem;
});

afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()));
});

async function start(env: Record<string, string>, mode?: 'dns'): Promise<RunningEcho> {
  const r = await startEchoBasic({ host: HOST, env: { POD_NAME: 'backend-v1-6c8d9f7b5-x2k9p', NAMESPACE: 'infra', ...env }, files: FILES, ...(mode ? { mode } : {}) });
  running.push(r);
  return r;
}

const port = (r: RunningEcho, name: string): number => {
  const p = r.ports.find((x) => x.name === name);
  if (!p) throw new Error(`no ${name} port in ${JSON.stringify(r.ports)}`);
  return p.port;
};

describe('mode selection', () => {
  it('follows the variable that is set, HTTP when none is', () => {
    expect(modeFromEnv({})).toBe('http');
    expect(modeFromEnv({ GRPC_ECHO_SERVER: '1' })).toBe('grpc');
    expect(modeFromEnv({ TCP_ECHO_SERVER: '1' })).toBe('tcp');
    expect(modeFromEnv({ UDP_ECHO_SERVER: '1' })).toBe('udp');
  });
});

describe('gRPC mode', () => {
  let echo: RunningEcho;
  const Client = () => grpc.makeGenericClientConstructor(grpcEchoService(), 'GrpcEcho');
  type Call = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: GrpcEchoResponse) => void) => void;

  beforeAll(async () => {
    echo = await start({ GRPC_ECHO_SERVER: '1', HTTP_PORT: '0', HTTPS_PORT: '0', SERVICE_NAME: 'grpc-svc', TLS_SERVER_CERT: '/etc/secret-volume/crt', TLS_SERVER_PRIV_KEY: '/etc/secret-volume/key' });
  });

  function call(client: grpc.Client, method: string, md = new grpc.Metadata()): Promise<{ err: grpc.ServiceError | null; res?: GrpcEchoResponse }> {
    return new Promise((resolve) => ((client as unknown as Record<string, Call>)[method]).call(client, {}, md, (err, res) => resolve({ err, res })));
  }

  it('answers Echo and EchoTwo over plaintext with what it saw', async () => {
    const client = new (Client())(`${HOST}:${port(echo, 'grpc')}`, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.add('x-color', 'blue');
    md.add('x-size', 'large');
    const { err, res } = await call(client, 'Echo', md);
    expect(err).toBeNull();
    const a = res!.assertions!;
    expect(a.fully_qualified_method).toBe(`/${GRPC_ECHO_SERVICE}/Echo`);
    expect(a.context).toEqual({ namespace: 'infra', ingress: '', service_name: 'grpc-svc', pod: 'backend-v1-6c8d9f7b5-x2k9p' });
    expect(a.authority).toBe(`${HOST}:${port(echo, 'grpc')}`);
    expect(a.headers).toEqual(expect.arrayContaining([{ key: 'x-color', value: 'blue' }, { key: 'x-size', value: 'large' }, { key: ':authority', value: a.authority }]));
    expect(a.headers.some((h) => h.key === 'user-agent' && h.value.startsWith('grpc-node-js'))).toBe(true);
    expect(a.tls_assertions).toBeNull();
    const two = await call(client, 'EchoTwo');
    expect(two.res?.assertions?.fully_qualified_method).toBe(`/${GRPC_ECHO_SERVICE}/EchoTwo`);
    client.close();
  });

  it('answers EchoThree and unknown methods with UNIMPLEMENTED', async () => {
    const client = new (Client())(`${HOST}:${port(echo, 'grpc')}`, grpc.credentials.createInsecure());
    const three = await call(client, 'EchoThree');
    expect(three.err?.code).toBe(grpc.status.UNIMPLEMENTED);
    const unknown = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.makeUnaryRequest(`/${GRPC_ECHO_SERVICE}/EchoFour`, () => Buffer.alloc(0), (b: Buffer) => b, {}, (e) => resolve(e)),
    );
    expect(unknown?.code).toBe(grpc.status.UNIMPLEMENTED);
    client.close();
  });

  it('serves gRPC over TLS with the certificate it was given and reports the handshake', async () => {
    const creds = grpc.credentials.createSsl(Buffer.from(ca.certPem));
    const client = new (Client())(`${HOST}:${port(echo, 'grpcTLS')}`, creds, { 'grpc.ssl_target_name_override': 'abc.example.com', 'grpc.default_authority': 'abc.example.com' });
    const { err, res } = await call(client, 'Echo');
    expect(err).toBeNull();
    const t = res!.assertions!.tls_assertions!;
    expect(t.server_name).toBe('abc.example.com');
    expect(t.negotiated_protocol).toBe('h2');
    expect(t.version).toMatch(/^TLSv1\.[23]$/);
    expect(t.cipher_suite).toMatch(/^TLS_/);
    expect(t.peer_certificates).toEqual([]);
    client.close();
  });

  it('answers server reflection with the GrpcEcho service', async () => {
    const protoPath = join(import.meta.dirname, '..', '..', 'node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
    const def = protoLoader.loadSync(protoPath, { keepCase: true, defaults: true, oneofs: true });
    const Reflection = grpc.makeGenericClientConstructor(def['grpc.reflection.v1.ServerReflection'] as grpc.ServiceDefinition, 'ServerReflection');
    const client = new Reflection(`${HOST}:${port(echo, 'grpc')}`, grpc.credentials.createInsecure());
    const call = (client as unknown as { ServerReflectionInfo: () => grpc.ClientDuplexStream<object, { list_services_response?: { service: { name: string }[] } }> }).ServerReflectionInfo();
    const reply = new Promise<string[]>((resolve, reject) => {
      call.once('data', (r) => resolve((r.list_services_response?.service ?? []).map((x: { name: string }) => x.name)));
      call.once('error', reject);
    });
    call.write({ list_services: '' });
    expect(await reply).toContain(GRPC_ECHO_SERVICE);
    call.end();
    client.close();
  });

  it('has no TLS port without a certificate', async () => {
    const plain = await start({ GRPC_ECHO_SERVER: '1', HTTP_PORT: '0', HTTPS_PORT: '0' });
    expect(plain.ports.map((p) => p.name)).toEqual(['grpc']);
  });
});

/** Lines of a TCP echo exchange: the welcome line, then one answer per command. */
async function tcpExchange(socket: net.Socket, commands: string[]): Promise<string[]> {
  let buffer = '';
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) !== -1) {
        lines.push(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (lines.length === 1) socket.write(commands.map((c) => `${c}\n`).join(''));
        if (lines.length === commands.length + 1) {
          socket.destroy();
          resolve(lines);
        }
      }
    });
    socket.on('error', reject);
  });
}

describe('TCP mode', () => {
  it('answers on the plain port and, with TLS_SERVER_CERT/TLS_SERVER_PRIV_KEY, on the TLS port', async () => {
    const echo = await start({ TCP_ECHO_SERVER: '1', TCP_PORT: '0', TLS_PORT: '0', SERVICE_NAME: 'tcp-svc', TLS_SERVER_CERT: '/etc/secret-volume/crt', TLS_SERVER_PRIV_KEY: '/etc/secret-volume/key' });
    const plain = await tcpExchange(net.connect({ host: HOST, port: port(echo, 'tcp') }), ['PING', 'IS_TLS', 'TEST']);
    expect(plain.slice(0, 3)).toEqual(['Gateway API Test TCP Server', 'PONG', 'false']);
    expect(JSON.parse(plain[3])).toMatchObject({ namespace: 'infra', service: 'tcp-svc', pod: 'backend-v1-6c8d9f7b5-x2k9p', isTLS: false, tcpport: String(port(echo, 'tcp')) });
    const secure = tls.connect({ host: HOST, port: port(echo, 'tls'), servername: 'abc.example.com', ca: [ca.certPem] });
    const lines = await tcpExchange(secure, ['IS_TLS', 'TEST']);
    expect(lines[1]).toBe('true');
    const reply = JSON.parse(lines[2]);
    expect(reply.isTLS).toBe(true);
    expect(reply.tls).toMatchObject({ serverName: 'abc.example.com' });
    expect(reply.tls.version).toMatch(/^TLS 1\.[23]$/);
  });
});

function udpRoundTrip(portNumber: number, payload: Buffer): Promise<Buffer> {
  const socket = dgram.createSocket('udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('no datagram within 5 s'));
    }, 5000);
    socket.once('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.send(payload, portNumber, HOST);
  });
}

describe('UDP mode and the DNS backend', () => {
  it('echoes each datagram as JSON with the identity, cut to 1024 bytes', async () => {
    const echo = await start({ UDP_ECHO_SERVER: '1', UDP_PORT: '0', SERVICE_NAME: 'udp-svc' });
    const reply = JSON.parse((await udpRoundTrip(port(echo, 'udp'), Buffer.from('hello\n'))).toString('utf8'));
    expect(reply).toEqual({ request: 'hello\n', namespace: 'infra', ingress: '', service: 'udp-svc', pod: 'backend-v1-6c8d9f7b5-x2k9p' });
    const long = JSON.parse((await udpRoundTrip(port(echo, 'udp'), Buffer.alloc(1500, 'a'))).toString('utf8'));
    expect(long.request).toHaveLength(UDP_ECHO_BUFFER);
  });

  it('answers a query with its id: the client address in the whoami zone, SERVFAIL elsewhere', async () => {
    const dns = await start({ DNS_PORT: '0' }, 'dns');
    const query = (id: number, name: string) => dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] });
    const whoami = dnsPacket.decode(await udpRoundTrip(port(dns, 'dns'), query(4242, 'foo.bar.com.')));
    expect(whoami.id).toBe(4242);
    expect(whoami.type).toBe('response');
    expect(whoami.answers).toEqual([expect.objectContaining({ type: 'A', data: HOST })]);
    const other = dnsPacket.decode(await udpRoundTrip(port(dns, 'dns'), query(7, 'example.org.')));
    expect(other.id).toBe(7);
    expect((other as { rcode?: string }).rcode).toBe('SERVFAIL');
  });

  it('drops what is not a DNS query', () => {
    expect(dnsAnswer(Buffer.from('not dns'), { address: HOST, family: 'IPv4' })).toBeUndefined();
    const response = dnsPacket.encode({ id: 1, type: 'response', questions: [{ name: 'a.', type: 'A', class: 'IN' }] });
    expect(dnsAnswer(response, { address: HOST, family: 'IPv4' })).toBeUndefined();
  });
});

describe('HTTP mode over TLS with TLS_CLIENT_CACERTS', () => {
  let echo: RunningEcho;
  beforeAll(async () => {
    echo = await start({ HTTP_PORT: '0', H2C_PORT: '0', HTTPS_PORT: '0', TLS_SERVER_CERT: '/etc/secret-volume/crt', TLS_SERVER_PRIVKEY: '/etc/secret-volume/key', TLS_CLIENT_CACERTS: '/etc/configmap-volume/ca' });
  });

  function get(cert?: CertificateBundle): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const req = https.get(
        { host: HOST, port: port(echo, 'https'), path: '/', servername: 'abc.example.com', ca: [ca.certPem], ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}), agent: false },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
    });
  }

  it('accepts a client without a certificate and reports none', async () => {
    const { status, body } = await get();
    expect(status).toBe(200);
    expect(body.tls.serverName).toBe('abc.example.com');
    expect(body.tls.peerCertificates).toBeUndefined();
  });

  it('reports the client certificate it verified', async () => {
    const { body } = await get(clientCert);
    expect(body.tls.peerCertificates).toHaveLength(1);
    expect(new (await import('node:crypto')).X509Certificate(body.tls.peerCertificates[0]).fingerprint256).toBe(new (await import('node:crypto')).X509Certificate(clientCert.certPem).fingerprint256);
  });

  it('refuses a client certificate of another CA', async () => {
    await expect(get(strangerCert)).rejects.toThrow();
  });
});
