// The gRPC mode of upstream's echo-basic server (suite README, "Echo server contract"): the
// GrpcEcho service of grpcecho.proto over cleartext HTTP/2 (prior knowledge) and, with a
// certificate, over TLS (ALPN h2, no client certificate requested), server reflection on.
// Echo and EchoTwo answer OK with what the server saw; EchoThree and unknown methods answer
// UNIMPLEMENTED (12). No custom response metadata or trailers.
//
// grpc-js serves the calls; the sockets are ours (a connection injector), so the TLS port can
// report what the handshake negotiated (version, ALPN, SNI, cipher, client certificate).

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { listenAll } from './listen.ts';
import { peerCertificatePems, type EchoIdentity } from './echo-server.ts';

export const GRPC_ECHO_PACKAGE = 'gateway_api_conformance.echo_basic.grpcecho';
export const GRPC_ECHO_SERVICE = `${GRPC_ECHO_PACKAGE}.GrpcEcho`;
export const GRPC_ECHO_PROTO = join(import.meta.dirname, 'grpcecho.proto');

/** The message fields as proto-loader hands them over (keepCase: snake_case names). */
export interface GrpcEchoResponse {
  assertions?: {
    fully_qualified_method: string;
    headers: { key: string; value: string }[];
    authority: string;
    context?: { namespace: string; ingress: string; service_name: string; pod: string };
    tls_assertions?: { version: string; negotiated_protocol: string; server_name: string; cipher_suite: string; peer_certificates: string[] };
  };
  request?: Record<string, never>;
}

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
let definition: protoLoader.PackageDefinition | undefined;

/** grpcecho.proto, loaded once (clients in tests use it too). */
export function grpcEchoDefinition(): protoLoader.PackageDefinition {
  definition ??= protoLoader.loadSync(GRPC_ECHO_PROTO, LOADER_OPTIONS);
  return definition;
}

/** The GrpcEcho service definition (for clients: `new (grpc.makeGenericClientConstructor(...))`). */
export function grpcEchoService(): grpc.ServiceDefinition {
  return grpcEchoDefinition()[GRPC_ECHO_SERVICE] as grpc.ServiceDefinition;
}

export interface GrpcEchoOptions {
  host: string;
  /** Cleartext gRPC port (echo-basic's HTTP_PORT, default 3000; 0 picks one). */
  port: number;
  /** gRPC over TLS port (HTTPS_PORT, default 8443; 0 picks one); used only with `tls`. */
  tlsPort?: number;
  tls?: { certPem: string; keyPem: string };
  identity: EchoIdentity;
  log?: (line: string) => void;
}

export interface GrpcEchoServer {
  readonly port: number;
  readonly tlsPort: number | undefined;
  /** Fully qualified methods of the RPCs answered, oldest first (bounded). */
  readonly received: readonly string[];
  close(): Promise<void>;
}

const MAX_RECEIVED = 10_000;

/** What echo-basic's gRPC mode reports of the handshake (version as "TLSv1.3", like Node's getProtocol). */
function tlsAssertions(socket: tls.TLSSocket): NonNullable<GrpcEchoResponse['assertions']>['tls_assertions'] {
  const cipher = socket.getCipher();
  return {
    version: socket.getProtocol() ?? '',
    negotiated_protocol: socket.alpnProtocol || '',
    server_name: typeof socket.servername === 'string' ? socket.servername : '',
    cipher_suite: cipher?.standardName ?? cipher?.name ?? '',
    peer_certificates: peerCertificatePems(socket),
  };
}

export async function startGrpcEcho(opts: GrpcEchoOptions): Promise<GrpcEchoServer> {
  const server = new grpc.Server();
  const received: string[] = [];
  /** The TLS sockets by the peer string grpc-js reports for their calls. */
  const tlsPeers = new Map<string, tls.TLSSocket>();
  const sockets = new Set<net.Socket>();
  const { pod, namespace, service = '', ingress = '' } = opts.identity;

  const echo = (method: string): grpc.handleUnaryCall<Record<string, never>, GrpcEchoResponse> => (call, callback) => {
    const fqm = `/${GRPC_ECHO_SERVICE}/${method}`;
    const socket = tlsPeers.get(call.getPeer());
    opts.log?.(`Received over ${socket ? 'TLS' : 'plaintext'}: ${JSON.stringify(call.request)}`);
    received.push(fqm);
    if (received.length > MAX_RECEIVED) received.shift();
    // grpc-js keeps custom metadata and user-agent and drops the HTTP/2 transport headers; Go's
    // server also shows :authority and content-type (grpc-js accepts only application/grpc*).
    const headers = [
      { key: ':authority', value: call.getHost() },
      { key: 'content-type', value: 'application/grpc' },
    ];
    for (const [key, values] of Object.entries(call.metadata.toJSON())) {
      for (const v of values) headers.push({ key: key.toLowerCase(), value: Buffer.isBuffer(v) ? v.toString('base64') : String(v) });
    }
    const assertions: NonNullable<GrpcEchoResponse['assertions']> = {
      fully_qualified_method: fqm,
      headers,
      authority: call.getHost(),
      context: { namespace, ingress, service_name: service, pod },
    };
    if (socket) assertions.tls_assertions = tlsAssertions(socket);
    callback(null, { assertions });
  };
  const unimplemented: grpc.handleUnaryCall<Record<string, never>, GrpcEchoResponse> = (call, callback) => {
    opts.log?.(`Received over ${tlsPeers.has(call.getPeer()) ? 'TLS' : 'plaintext'}: ${JSON.stringify(call.request)}`);
    callback({ code: grpc.status.UNIMPLEMENTED, details: 'EchoThree is not implemented' });
  };
  server.addService(grpcEchoService(), { Echo: echo('Echo'), EchoTwo: echo('EchoTwo'), EchoThree: unimplemented });
  new ReflectionService(grpcEchoDefinition()).addToServer(server);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const listeners: net.Server[] = [
    net.createServer((socket) => {
      track(socket);
      injector.injectConnection(socket);
    }),
  ];
  if (opts.tls) {
    const tlsServer = tls.createServer({ cert: opts.tls.certPem, key: opts.tls.keyPem, minVersion: 'TLSv1.2', ALPNProtocols: ['h2'] }, (socket) => {
      track(socket);
      const peer = `${socket.remoteAddress}:${socket.remotePort}`;
      tlsPeers.set(peer, socket);
      socket.on('close', () => tlsPeers.delete(peer));
      injector.injectConnection(socket);
    });
    tlsServer.on('tlsClientError', () => {});
    listeners.push(tlsServer);
  }
  const listening = await listenAll(listeners, opts.host, [opts.port, opts.tlsPort ?? 8443], sockets, () => {
    injector.destroy();
    server.forceShutdown();
  });
  return { port: listening.ports[0], tlsPort: listening.ports[1], received, close: listening.close };
}
