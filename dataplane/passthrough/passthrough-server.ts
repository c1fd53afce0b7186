// TLS listeners (TLSRoute): a plain TCP listener that reads the SNI from the ClientHello, picks the
// route by hostname (exact, then the longest wildcard) and a backend by weight. A passthrough route
// splices the connection through without decrypting it; a terminate route (listener tls.mode
// Terminate) ends TLS here with the listener's certificate for that name and relays the plaintext
// stream. Both kinds may share the port (TLSRouteModeMixed). Routes swap by reference; open
// connections keep going.
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Backend, BackendClientCertificate, ListenerTls, PassthroughListener } from '../../ir/types.ts';
import type { ConnectionBudget } from '../front-door.ts';
import { chooseEndpoint, compileBackendChoice, upstreamTls, type BackendChoice } from '../l4/backend-choice.ts';
import type { L4Metrics } from '../l4/metrics.ts';
import { StreamListener } from '../l4/stream-listener.ts';
import { HostIndex } from '../router/host.ts';
import { CertificateSelector, SecureContextCache, compileClientValidation, compileTlsSettings, type ClientValidationPlan } from '../tls/certificates.ts';
import type { StreamPolicy } from '../policy/stream-policy.ts';
import type { PickerStateGeneration } from '../upstream/weighted.ts';
import { readClientHello } from './client-hello.ts';

interface CompiledRoute extends BackendChoice {
  /** Terminate routes: the certificates by SNI (the listener's). Absent: passthrough. */
  terminate?: TerminateContexts;
  /** Terminate routes: the Gateway's client certificate for TLS backends. */
  backendClientCertificate?: BackendClientCertificate;
}

export function compilePassthroughRoutes(listener: PassthroughListener, backends: Record<string, Backend>, states: PickerStateGeneration, policy: StreamPolicy | null): HostIndex<CompiledRoute> {
  const index = new HostIndex<CompiledRoute>();
  // Routes of one listener share its certificates: their contexts are built once per compile.
  const cache = new SecureContextCache();
  for (const route of listener.routes) {
    const choice: CompiledRoute = compileBackendChoice(route.name, route.origin, route.backends, backends, states, policy);
    if (route.terminate) {
      const contexts = terminateContexts(route.terminate, cache);
      if (!contexts) continue; // no certificate loads: the name is not served
      choice.terminate = contexts;
      if (listener.backendClientCertificate) choice.backendClientCertificate = listener.backendClientCertificate;
    }
    index.add(route.hostname, choice);
  }
  return index;
}

interface TerminateContexts {
  /** The listener's certificates by SNI; each context holds a set's every pair (OpenSSL picks by the ClientHello). */
  certificates: CertificateSelector;
  /** Gateway `spec.tls.frontend`: client certificates asked for, and whether one must verify. */
  clientValidation: ClientValidationPlan | null;
}

/** The listener's certificates, selected as on HTTPS listeners. Null when none loads. */
function terminateContexts(tls: ListenerTls, cache: SecureContextCache): TerminateContexts | null {
  const clientValidation = compileClientValidation(tls.clientValidation);
  // The HTTPS compile reports broken certificates; here the others are served.
  const certificates = CertificateSelector.build(tls, clientValidation, compileTlsSettings(tls.settings), cache, [], true);
  return certificates ? { certificates, clientValidation } : null;
}

export class PassthroughServer extends StreamListener {
  private routes: HostIndex<CompiledRoute>;
  private readonly idleTimeoutMs: number;

  constructor(name: string, routes: HostIndex<CompiledRoute>, logger: Logger, budget: ConnectionBudget, metrics: L4Metrics, idleTimeoutMs: number) {
    super(name, 'TLS', logger, budget, metrics);
    this.routes = routes;
    this.idleTimeoutMs = idleTimeoutMs;
  }

  update(routes: HostIndex<CompiledRoute>): void {
    this.routes = routes;
  }

  protected serve(client: Socket): void {
    // From the accept to the ClientHello (passthrough) or to the finished handshake (terminate):
    // one deadline, not an idle timer, so a client trickling bytes cannot stretch it.
    const deadline = setTimeout(() => {
      this.budget.timedOut(this.name, 'tls_handshake');
      client.destroy();
    }, this.budget.limits.tlsHandshakeTimeoutMs);
    client.once('close', () => clearTimeout(deadline));
    readClientHello(client, (hello, data) => {
      if (hello.kind === 'invalid') {
        this.logger.debug({ listener: this.name, reason: hello.reason }, 'tls listener: not a TLS ClientHello');
        client.destroy();
        return;
      }
      this.forward(client, hello.serverName, data, deadline);
    });
  }

  private forward(client: Socket, serverName: string | null, hello: Buffer, deadline: NodeJS.Timeout): void {
    // No SNI (a client that connects by address): only a catch-all route (`*`, a TLSRoute without
    // hostnames on a listener without one) takes it, as Envoy's filter chain without server_names does.
    const route = this.routes.find(serverName ?? '');
    const chosen = route ? chooseEndpoint(route) : null;
    if (!route || !chosen) {
      // Closed without an alert: upstream's tlsConnectionRejected wants EOF or a reset.
      this.count(route ? 'no_endpoint' : 'no_route');
      this.logger.debug({ listener: this.name, serverName, route: route?.name }, 'tls listener: no route or endpoint for this server name');
      client.destroy();
      return;
    }
    // Before the handshake (terminate) or the first byte relayed (passthrough).
    if (this.refusedByPolicy(client, route, chosen)) return;
    if (!route.terminate) {
      clearTimeout(deadline);
      this.relay(client, chosen.endpoint, route.name, this.idleTimeoutMs, hello);
      return;
    }
    // Terminate: run the server side of TLS over the stream, starting with the ClientHello already
    // read; then plaintext to the backend, or TLS when a BackendTLSPolicy covers it.
    const upstream = upstreamTls(chosen.backend, route.backendClientCertificate);
    if ('refused' in upstream) {
      this.count('no_endpoint');
      this.logger.warn({ listener: this.name, route: route.name, backend: chosen.backend.name, reason: upstream.refused }, 'tls listener: the backend TLS policy is not usable; connection closed');
      client.destroy();
      return;
    }
    const contexts = route.terminate;
    const validation = contexts.clientValidation;
    const secure = new TLSSocket(replayed(client, hello), {
      isServer: true,
      secureContext: contexts.certificates.context(serverName),
      // AllowValidOnly: a client without a certificate the CAs verify fails the handshake, as on HTTPS listeners.
      ...(validation ? { requestCert: true, rejectUnauthorized: validation.rejectUnauthorized } : {}),
    });
    let established = false;
    secure.on('error', (error) => {
      if (!established) {
        this.count('tls_failed');
        this.logger.debug({ listener: this.name, serverName, err: error.message }, 'tls listener: handshake failed');
      }
      secure.destroy();
      client.destroy();
    });
    secure.once('secure', () => {
      if (validation?.rejectUnauthorized && !clientVerified(secure)) {
        this.count('tls_failed');
        this.logger.debug({ listener: this.name, serverName }, 'tls listener: client certificate not verified by the frontend CAs; connection closed');
        secure.destroy();
        client.destroy();
        return;
      }
      established = true;
      clearTimeout(deadline);
      secure.pause();
      this.relay(secure, chosen.endpoint, route.name, this.idleTimeoutMs, undefined, upstream.tls);
    });
  }
}

/**
 * Whether OpenSSL verified the client's certificate against the frontend CAs. A TLSSocket made
 * outside a tls.Server requests the certificate but, unlike tls.Server (onServerSocketSecure in
 * Node's _tls_wrap.js), never acts on the verification: OpenSSL only fails the handshake when no
 * certificate comes. The same internal call tls.Server makes; fails closed should it ever be gone.
 */
function clientVerified(secure: TLSSocket): boolean {
  const handle = (secure as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  if (typeof handle?.verifyError !== 'function') return false;
  return handle.verifyError() === null && secure.getPeerX509Certificate() !== undefined;
}

/**
 * The client's stream with `head` (bytes already read) in front. node:tls takes a net.Socket's
 * handle over directly and would never see bytes read before; a plain Duplex goes through its
 * stream interface instead. Backpressure: the socket pauses while the TLS side does not read.
 */
function replayed(client: Socket, head: Buffer): Duplex {
  const stream = new Duplex({
    read: () => void client.resume(),
    write: (chunk: Buffer, _encoding, callback) => void client.write(chunk, callback),
    final: (callback) => void client.end(callback),
    destroy: (error, callback) => {
      client.destroy();
      callback(error);
    },
  });
  stream.push(head);
  client.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) client.pause();
  });
  client.on('end', () => stream.push(null));
  client.on('close', () => stream.destroy());
  return stream;
}
