// An HTTPS listener that must choose among certificates by the client's cipher suites
// (CertificateSelector.needsClientHello) reads each ClientHello itself before the handshake: Node
// shows the SNI callback only the signature algorithms. The bytes read are put back (unshift) and
// the connection handed to the TLS server, whose TLSSocket reads them first — on the native handle
// still, so nothing is copied once the handshake is done. Only those listeners pay for the read
// (one parse of ~300-2 000 bytes per connection); the others hand connections over at once.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { readClientHello } from '../passthrough/client-hello.ts';
import type { HandshakeView } from './certificates.ts';

interface Pending {
  /** The client's suites once its ClientHello was read, until its SNI callback takes them. */
  suites: number[] | null;
  /** The handshake's bound from the accept (--tls-handshake-timeout), ClientHello included. */
  deadline: NodeJS.Timeout;
}

export class ClientHellos {
  /** Connections read and not through their handshake, by client address and port (unique among live connections to the port). */
  private readonly pending = new Map<string, Pending>();

  /**
   * Reads `socket`'s ClientHello, then calls `then` with the bytes put back. Bounded: the
   * ClientHello's size (readServerName refuses one past 64 KiB or a record past 2^14), and the
   * whole handshake by `timeoutMs` from now (then `timedOut`, and the connection is closed) — the
   * TLS server's own handshake timeout starts only when it gets the connection. What is not a
   * ClientHello is handed on as it came, for the TLS server to refuse as before.
   */
  read(socket: Socket, timeoutMs: number, timedOut: () => void, then: () => void): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    // Until the TLS server takes it, the socket is ours: a client resetting mid-ClientHello
    // (ECONNRESET) would otherwise be an unhandled 'error' and end the process.
    socket.on('error', () => socket.destroy());
    const stop = readClientHello(socket, (hello, data) => {
      socket.unshift(data);
      if (hello.kind === 'done') entry.suites = hello.cipherSuites;
      then();
    });
    const entry: Pending = {
      suites: null,
      deadline: setTimeout(() => {
        this.pending.delete(key);
        stop();
        timedOut();
        socket.destroy();
      }, timeoutMs),
    };
    this.pending.set(key, entry);
    socket.once('close', () => {
      clearTimeout(entry.deadline);
      if (this.pending.get(key) === entry) this.pending.delete(key);
    });
  }

  /** What the SNI callback of `socket` (the TLSSocket over a connection read()) knows of its client. */
  view(socket: TLSSocket): HandshakeView {
    if (this.pending.size === 0) return socket;
    const entry = this.pending.get(`${socket.remoteAddress}|${socket.remotePort}`);
    const cipherSuites = entry?.suites;
    if (cipherSuites === undefined || cipherSuites === null) return socket;
    entry!.suites = null;
    return { getSharedSigalgs: () => socket.getSharedSigalgs(), getProtocol: () => socket.getProtocol(), cipherSuites };
  }

  /** `socket`'s handshake is done: its bound from the accept goes. */
  secured(socket: TLSSocket): void {
    if (this.pending.size === 0) return;
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const entry = this.pending.get(key);
    if (entry === undefined) return;
    clearTimeout(entry.deadline);
    this.pending.delete(key);
  }
}
