// The L4 cases of the suite README ("L4 cases"): TLS without HTTP and plain TCP to a Gateway
// listener. One attempt is one fresh connection with a deadline; attempts repeat on transport
// trouble until the budget is spent, and one complete attempt decides (no 3-in-a-row rule).

import net from 'node:net';
import tls from 'node:tls';
import { sleep } from '../lib/poll.ts';
import { TCP_ECHO_WELCOME } from '../../support/demo/tcp-echo.ts';
import type { TrafficEnv } from './traffic.ts';
import type { L4Case, TcpEchoCase, TlsConnectionRejectedCase } from './types.ts';

const DEFAULT_ATTEMPT_TIMEOUT_S = 10;
const DEFAULT_RETRY = { intervalSeconds: 0.1, budgetSeconds: 30 };
/** A reply line longer than this is a broken backend, not something to wait out. */
const MAX_LINE_BYTES = 64 * 1024;

/** An attempt's verdict: `retry` = transport trouble (try again), otherwise final. */
type Attempt = { retry: string } | { problems: string[] };

export async function runL4Case(c: L4Case, env: TrafficEnv): Promise<string[]> {
  const retry = c.retry ?? DEFAULT_RETRY;
  const timeoutMs = (c.attemptTimeoutSeconds ?? DEFAULT_ATTEMPT_TIMEOUT_S) * 1000;
  const deadline = Date.now() + retry.budgetSeconds * 1000;
  let last = 'no attempt made';
  let attempts = 0;
  for (;;) {
    attempts++;
    const addr = await env.gatewayAddress(c.target.gateway);
    const outcome: Attempt = !addr
      ? { retry: `Gateway ${c.target.gateway} has no address in status` }
      : c.kind === 'tcpEcho'
        ? await tcpEchoAttempt(c, env, addr, timeoutMs)
        : await tlsRejectedAttempt(c, addr, c.target.port + env.portOffset, timeoutMs);
    if ('problems' in outcome) return outcome.problems;
    last = outcome.retry;
    if (Date.now() + retry.intervalSeconds * 1000 >= deadline) break;
    await sleep(retry.intervalSeconds * 1000);
  }
  return [`no conclusive attempt within ${retry.budgetSeconds} s (${attempts} attempts); last: ${last}`];
}

// ---------------------------------------------------------------------------
// tlsConnectionRejected
// ---------------------------------------------------------------------------

/**
 * Rejected means end-of-stream or a reset during the dial or the handshake. A completed handshake,
 * a certificate error, a TLS alert, a refused connection or a timeout is "not yet".
 */
async function tlsRejectedAttempt(c: TlsConnectionRejectedCase, host: string, port: number, timeoutMs: number): Promise<Attempt> {
  return new Promise((resolve) => {
    // Default trust (the system roots), as upstream's client.
    const socket = tls.connect({ host, port, servername: c.request.tls.serverName, minVersion: 'TLSv1.2' });
    const timer = setTimeout(() => finish({ retry: `no verdict within ${timeoutMs} ms` }), timeoutMs);
    let decided = false;
    // The first event decides ('close' follows every 'error').
    const finish = (a: Attempt) => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(a);
    };
    socket.once('secureConnect', () => finish({ retry: 'the TLS handshake completed' }));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(isEndOfStream(err) ? { problems: [] } : { retry: `${err.code ?? 'error'}: ${err.message}` }));
    socket.once('close', () => finish({ problems: [] }));
  });
}

/** EOF or reset before the handshake finished (Node reports a server's silent close as ECONNRESET). */
function isEndOfStream(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ECONNRESET' || err.code === 'EPIPE' || /socket disconnected|socket hang up|EOF/i.test(err.message);
}

// ---------------------------------------------------------------------------
// tcpEcho
// ---------------------------------------------------------------------------

async function tcpEchoAttempt(c: TcpEchoCase, env: TrafficEnv, host: string, timeoutMs: number): Promise<Attempt> {
  const port = c.target.port + env.portOffset;
  let socket: net.Socket;
  try {
    socket = await dial(c, env, host, port, timeoutMs);
  } catch (err) {
    return { retry: (err as Error).message };
  }
  const lines = new LineReader(socket);
  const timer = setTimeout(() => socket.destroy(new Error(`attempt deadline of ${timeoutMs} ms passed`)), timeoutMs);
  try {
    const problems: string[] = [];
    const welcome = await lines.next();
    if (welcome !== TCP_ECHO_WELCOME) problems.push(`welcome line ${JSON.stringify(welcome)}, expected ${JSON.stringify(TCP_ECHO_WELCOME)}`);
    socket.write('PING\n');
    const pong = await lines.next();
    if (pong !== 'PONG') problems.push(`PING answered ${JSON.stringify(pong)}, expected "PONG"`);
    socket.write('IS_TLS\n');
    const isTls = await lines.next();
    if (isTls !== String(c.expect.backendIsTLS)) problems.push(`IS_TLS answered ${JSON.stringify(isTls)}, expected "${c.expect.backendIsTLS}"`);
    socket.write('TEST\n');
    const testLine = await lines.next();
    let reply: { namespace?: unknown; pod?: unknown; tls?: { serverName?: unknown } };
    try {
      reply = JSON.parse(testLine);
    } catch {
      return { retry: `TEST answered ${JSON.stringify(testLine.slice(0, 200))}, not JSON` };
    }
    const { backend, backendTLS } = c.expect;
    if (reply.namespace !== backend.namespace) problems.push(`backend namespace ${JSON.stringify(reply.namespace)}, expected ${JSON.stringify(backend.namespace)}`);
    if (typeof reply.pod !== 'string' || !reply.pod.startsWith(backend.podNamePrefix)) {
      problems.push(`backend pod ${JSON.stringify(reply.pod)}, expected a name starting with ${JSON.stringify(backend.podNamePrefix)}`);
    }
    if (backendTLS && reply.tls?.serverName !== backendTLS.serverName) {
      problems.push(`the backend received SNI ${JSON.stringify(reply.tls?.serverName)}, expected ${JSON.stringify(backendTLS.serverName)}`);
    }
    return { problems };
  } catch (err) {
    return { retry: (err as Error).message };
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/** A connected socket: plain TCP, or TLS verified against the case's CA and server name only. */
function dial(c: TcpEchoCase, env: TrafficEnv, host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  let socket: net.Socket;
  let ready: string;
  if (c.target.scheme === 'tls') {
    const spec = c.request?.tls;
    if (!spec) return Promise.reject(new Error('a tls target needs request.tls'));
    const ca = env.configMapValue(spec.trustCACertificateFrom, 'ca.crt');
    if (!ca) return Promise.reject(new Error(`ConfigMap ${spec.trustCACertificateFrom} has no ca.crt`));
    socket = tls.connect({ host, port, servername: spec.serverName, ca: [ca], minVersion: 'TLSv1.2' });
    ready = 'secureConnect';
  } else {
    socket = net.connect({ host, port });
    ready = 'connect';
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${c.target.scheme} connection to ${host}:${port}: ${err.message}`));
    });
  });
}

/** Newline-terminated lines of a socket, one at a time; rejects on close, error or an overlong line. */
class LineReader {
  #buffer = '';
  #failure: Error | undefined;
  #waiter: (() => void) | undefined;

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer += chunk.toString('utf8');
      if (this.#buffer.length > MAX_LINE_BYTES && !this.#buffer.includes('\n')) socket.destroy(new Error(`a line longer than ${MAX_LINE_BYTES} bytes`));
      this.#waiter?.();
    });
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error('the connection closed')));
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#waiter?.();
  }

  async next(): Promise<string> {
    for (;;) {
      const nl = this.#buffer.indexOf('\n');
      if (nl !== -1) {
        const line = this.#buffer.slice(0, nl).replace(/\r$/, '');
        this.#buffer = this.#buffer.slice(nl + 1);
        return line;
      }
      if (this.#failure) throw new Error(`reading a line: ${this.#failure.message}`);
      await new Promise<void>((resolve) => (this.#waiter = resolve));
      this.#waiter = undefined;
    }
  }
}
