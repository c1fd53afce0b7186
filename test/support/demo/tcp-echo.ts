// The TCP mode of upstream's echo-basic server (suite README, "Echo server contract"): a welcome
// line, then PING / IS_TLS / TEST answered line by line, on a plain port and, with a
// certificate, on a TLS port. Used for the TLSRoute and TCPRoute backends of the suite.

import net from 'node:net';
import tls from 'node:tls';
import { listenAll } from './listen.ts';

export const TCP_ECHO_WELCOME = 'Gateway API Test TCP Server';
/** Longest line the server buffers; a client sending more without a newline is cut off. */
const MAX_LINE_BYTES = 4096;

export interface TcpEchoOptions {
  host: string;
  tcpPort: number;
  tlsPort: number;
  /** Serves TLS on tlsPort when given (TLS ≥ 1.2, no client certificate, no ALPN). */
  tls?: { certPem: string; keyPem: string };
  identity: { pod: string; namespace: string; service?: string; ingress?: string };
}

export interface TcpEchoServer {
  /** The bound ports (the requested ones, or what the system chose for 0). */
  readonly tcpPort: number;
  readonly tlsPort: number | undefined;
  close(): Promise<void>;
}

export async function startTcpEcho(opts: TcpEchoOptions): Promise<TcpEchoServer> {
  const sockets = new Set<net.Socket>();
  const bound: number[] = [];
  const serve = (socket: net.Socket, tlsInfo: (() => Record<string, unknown>) | undefined) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write(`${TCP_ECHO_WELCOME}\n`);
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      if (pending.length > MAX_LINE_BYTES && !pending.includes('\n')) {
        socket.destroy();
        return;
      }
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        if (line === 'PING') socket.write('PONG\n');
        else if (line === 'IS_TLS') socket.write(`${tlsInfo !== undefined}\n`);
        else if (line === 'TEST') {
          const { pod, namespace, service = '', ingress = '' } = opts.identity;
          const reply: Record<string, unknown> = { namespace, ingress, service, pod, tcpport: String(bound[0]), tlsport: String(bound[1] ?? opts.tlsPort), isTLS: tlsInfo !== undefined };
          if (tlsInfo) reply.tls = tlsInfo();
          socket.write(`${JSON.stringify(reply)}\n`);
        }
      }
    });
  };
  const servers: net.Server[] = [net.createServer((s) => serve(s, undefined))];
  if (opts.tls) {
    servers.push(
      tls.createServer({ cert: opts.tls.certPem, key: opts.tls.keyPem, minVersion: 'TLSv1.2' }, (s) =>
        serve(s, () => {
          const cipher = s.getCipher();
          // Go's tls.VersionName spelling ("TLS 1.3"), as echo-basic writes it.
          const version = (s.getProtocol() ?? '').replace(/^TLSv/, 'TLS ');
          return { version, serverName: typeof s.servername === 'string' ? s.servername : '', cipherSuite: cipher.standardName ?? cipher.name };
        }),
      ),
    );
  }
  const listening = await listenAll(servers, opts.host, [opts.tcpPort, opts.tlsPort], sockets);
  bound.push(...listening.ports);
  return { tcpPort: bound[0], tlsPort: bound[1], close: listening.close };
}
