// The L4 cases of the suite README ("L4 cases"): TLS without HTTP, plain TCP and UDP to a Gateway
// listener (tcpEcho, tlsConnectionRejected, udpEcho, dnsQuery, echoRepeat, weightedDistribution).
// One attempt is one fresh connection or UDP socket with a deadline; attempts repeat on transport
// trouble until the budget is spent, and one complete attempt decides (no 3-in-a-row rule).

import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import * as dnsPacket from 'dns-packet';
import { runWeightedAttempts } from '../lib/distribution.ts';
import { sleep } from '../lib/poll.ts';
import { backendFromPodName } from '../lib/stats.ts';
import { TCP_ECHO_WELCOME } from '../../support/demo/tcp-echo.ts';
import type { TrafficEnv } from './traffic.ts';
import type { DnsQueryCase, EchoRepeatCase, L4Case, L4WeightedCase, TcpEchoCase, TlsConnectionRejectedCase, UdpEchoCase, WarmUpStep } from './types.ts';

const DEFAULT_ATTEMPT_TIMEOUT_S = 10;
/** UDP exchanges of echoRepeat and weightedDistribution wait 2 s for the datagram (suite README). */
const UDP_EXCHANGE_TIMEOUT_S = 2;
/** A UDP reply is read into this many bytes, as upstream's client does. */
const UDP_READ_BYTES = 1024;
const DEFAULT_RETRY = { intervalSeconds: 0.1, budgetSeconds: 30 };
/** A reply line longer than this is a broken backend, not something to wait out. */
const MAX_LINE_BYTES = 64 * 1024;

/** An attempt's verdict: `retry` = transport trouble (try again), otherwise final. */
type Attempt = { retry: string } | { problems: string[] };

export async function runL4Case(c: L4Case, env: TrafficEnv): Promise<string[]> {
  if (c.kind === 'weightedDistribution') return runL4Weighted(c, env);
  const udp = c.target.scheme === 'udp';
  const timeoutMs = (c.attemptTimeoutSeconds ?? (udp && c.kind === 'echoRepeat' ? UDP_EXCHANGE_TIMEOUT_S : DEFAULT_ATTEMPT_TIMEOUT_S)) * 1000;
  return retryAttempts(c.retry ?? DEFAULT_RETRY, async () => {
    const addr = await env.gatewayAddress(c.target.gateway);
    if (!addr) return { retry: `Gateway ${c.target.gateway} has no address in status` };
    const port = c.target.port + env.portOffset;
    switch (c.kind) {
      case 'tcpEcho':
        return tcpEchoAttempt(c, env, addr, timeoutMs);
      case 'tlsConnectionRejected':
        return tlsRejectedAttempt(c, addr, port, timeoutMs);
      case 'udpEcho':
        return udpEchoAttempt(c, addr, port, timeoutMs);
      case 'dnsQuery':
        return dnsQueryAttempt(c, addr, port, timeoutMs);
      case 'echoRepeat':
        return echoRepeatRound(c, addr, port, timeoutMs);
    }
  });
}

/** Runs attempts every `intervalSeconds` until one is conclusive or `budgetSeconds` are spent. */
async function retryAttempts(retry: { intervalSeconds: number; budgetSeconds: number }, attempt: () => Promise<Attempt>): Promise<string[]> {
  const deadline = Date.now() + retry.budgetSeconds * 1000;
  let last = 'no attempt made';
  let attempts = 0;
  for (;;) {
    attempts++;
    const outcome = await attempt();
    if ('problems' in outcome) return outcome.problems;
    last = outcome.retry;
    if (Date.now() + retry.intervalSeconds * 1000 >= deadline) break;
    await sleep(retry.intervalSeconds * 1000);
  }
  return [`no conclusive attempt within ${retry.budgetSeconds} s (${attempts} attempts); last: ${last}`];
}

// ---------------------------------------------------------------------------
// UDP: udpEcho, dnsQuery
// ---------------------------------------------------------------------------

/**
 * One datagram out from a fresh socket, the first one back (at most 1024 bytes read). With
 * `usedSources`, the socket is bound first to a local port not in the set (then added to it): the
 * gateway keys a UDP session on the client address, and the kernel may hand a closed socket's port
 * out again, which would continue that session instead of starting a new one (about 1 in 6 over 100
 * sequential sockets). That socket is also connected, so a port nobody listens on answers at once
 * (ICMP port unreachable, ECONNREFUSED) instead of running out the timeout.
 */
export async function udpRoundTrip(host: string, port: number, payload: Buffer, timeoutMs: number, usedSources?: Set<number>): Promise<Buffer> {
  const socket = usedSources ? await freshSourceSocket(host, usedSources) : dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    const done = (err: Error | undefined, msg?: Buffer) => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(msg!);
    };
    const timer = setTimeout(() => done(new Error(`no datagram back within ${timeoutMs} ms`)), timeoutMs);
    socket.once('message', (msg) => done(undefined, msg.subarray(0, UDP_READ_BYTES)));
    socket.once('error', (err) => done(new Error(`udp ${host}:${port}: ${err.message}`)));
    const sent = (err: Error | null): void => {
      if (err) done(new Error(`udp send to ${host}:${port}: ${err.message}`));
    };
    if (usedSources) socket.connect(port, host, () => socket.send(payload, sent));
    else socket.send(payload, port, host, sent);
  });
}

async function freshSourceSocket(host: string, used: Set<number>): Promise<dgram.Socket> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => resolve());
    });
    const local = socket.address().port;
    if (!used.has(local)) {
      used.add(local);
      return socket;
    }
    socket.close();
  }
  throw new Error('no unused local UDP port in 50 binds');
}

async function udpEchoAttempt(c: UdpEchoCase, host: string, port: number, timeoutMs: number): Promise<Attempt> {
  let reply: Buffer;
  try {
    reply = await udpRoundTrip(host, port, Buffer.from(c.request.payload, 'utf8'), timeoutMs);
  } catch (err) {
    return { retry: (err as Error).message };
  }
  if ('anyReply' in c.expect) return { problems: [] };
  const want = c.expect.backend;
  let parsed: { service?: unknown; namespace?: unknown };
  try {
    parsed = JSON.parse(reply.toString('utf8'));
  } catch {
    return { retry: `reply ${JSON.stringify(reply.toString('utf8').slice(0, 200))} is not JSON` };
  }
  // A mismatch is retried too (suite README): the route may not have converged yet.
  if (want.service !== '' && parsed.service !== want.service) return { retry: `reply from service ${JSON.stringify(parsed.service)}, expected ${JSON.stringify(want.service)}` };
  if (want.namespace !== '' && parsed.namespace !== want.namespace) return { retry: `reply from namespace ${JSON.stringify(parsed.namespace)}, expected ${JSON.stringify(want.namespace)}` };
  return { problems: [] };
}

/** One standard query: random id, one question of class IN. */
export function dnsQueryPacket(c: Pick<DnsQueryCase, 'request'>, id: number): Buffer {
  const q = c.request;
  return dnsPacket.encode({
    id,
    type: 'query',
    flags: q.recursionDesired ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ name: q.name.replace(/\.$/, ''), type: q.type as dnsPacket.RecordType, class: 'IN' }],
  });
}

async function dnsQueryAttempt(c: DnsQueryCase, host: string, port: number, timeoutMs: number): Promise<Attempt> {
  const id = randomInt(0, 0x10000);
  let reply: Buffer;
  try {
    reply = await udpRoundTrip(host, port, dnsQueryPacket(c, id), timeoutMs);
  } catch (err) {
    return { retry: (err as Error).message };
  }
  let parsed: dnsPacket.DecodedPacket;
  try {
    parsed = dnsPacket.decode(reply);
  } catch (err) {
    return { retry: `the reply is not a DNS message: ${(err as Error).message}` };
  }
  if (parsed.id !== id) return { retry: `a DNS message with id ${parsed.id}, expected ${id}` };
  return { problems: [] };
}

// ---------------------------------------------------------------------------
// Exchanges with TCP / UDP echo backends: echoRepeat, weightedDistribution
// ---------------------------------------------------------------------------

/** The pod that answered one exchange, or the transport trouble that stopped it. */
export type Exchange = { pod: string } | { error: string };

/** TCP: connect, read the welcome line (exact), send TEST, parse the JSON line. */
export async function tcpExchange(host: string, port: number, timeoutMs: number): Promise<Exchange> {
  let socket: net.Socket;
  try {
    socket = await connectWithin(net.connect({ host, port }), 'connect', `tcp ${host}:${port}`, timeoutMs);
  } catch (err) {
    return { error: (err as Error).message };
  }
  const timer = setTimeout(() => socket.destroy(new Error(`exchange deadline of ${timeoutMs} ms passed`)), timeoutMs);
  try {
    const lines = new LineReader(socket);
    const welcome = await lines.next();
    if (welcome !== TCP_ECHO_WELCOME) return { error: `welcome line ${JSON.stringify(welcome)}, expected ${JSON.stringify(TCP_ECHO_WELCOME)}` };
    socket.write('TEST\n');
    return podOf(await lines.next());
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/** UDP: send the payload, read one datagram, parse it as JSON. */
export async function udpExchange(host: string, port: number, payload: string, timeoutMs: number, usedSources?: Set<number>): Promise<Exchange> {
  try {
    return podOf((await udpRoundTrip(host, port, Buffer.from(payload, 'utf8'), timeoutMs, usedSources)).toString('utf8'));
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function podOf(text: string): Exchange {
  let reply: { pod?: unknown };
  try {
    reply = JSON.parse(text);
  } catch {
    return { error: `reply ${JSON.stringify(text.slice(0, 200))} is not JSON` };
  }
  return typeof reply?.pod === 'string' && reply.pod !== '' ? { pod: reply.pod } : { error: `reply names no pod: ${text.slice(0, 200)}` };
}

function exchangeFor(c: { target: { scheme: 'tcp' | 'udp' }; request?: { payload: string } }, host: string, port: number, timeoutMs: number): Promise<Exchange> {
  return c.target.scheme === 'tcp' ? tcpExchange(host, port, timeoutMs) : udpExchange(host, port, c.request?.payload ?? '', timeoutMs);
}

/**
 * One round of `repeat` sequential exchanges. A backend other than the expected one fails the case
 * at once; an exchange error fails it too (onTransportError "fail") or abandons the round.
 */
async function echoRepeatRound(c: EchoRepeatCase, host: string, port: number, timeoutMs: number): Promise<Attempt> {
  for (let i = 1; i <= c.repeat; i++) {
    const x = await exchangeFor(c, host, port, timeoutMs);
    if ('error' in x) {
      const what = `exchange ${i}/${c.repeat}: ${x.error}`;
      return c.onTransportError === 'fail' ? { problems: [what] } : { retry: what };
    }
    const backend = backendFromPodName(x.pod);
    if (backend !== c.expect.backendName) return { problems: [`exchange ${i}/${c.repeat} answered by ${x.pod} (backend ${backend}), expected ${c.expect.backendName}`] };
  }
  return { problems: [] };
}

const WARM_UP_POLL = { intervalSeconds: 0.1, budgetSeconds: 30 };
const WARM_UP_UDP_PAYLOAD = 'gateway-api-conformance-udp-echo';

async function warmUpStep(step: WarmUpStep, host: string, port: number, timeoutMs: number): Promise<Attempt> {
  switch (step) {
    case 'tcpConnect':
      try {
        (await connectWithin(net.connect({ host, port }), 'connect', `tcp ${host}:${port}`, timeoutMs)).destroy();
        return { problems: [] };
      } catch (err) {
        return { retry: (err as Error).message };
      }
    case 'tcpEchoOnce': {
      const x = await tcpExchange(host, port, timeoutMs);
      return 'error' in x ? { retry: x.error } : { problems: [] };
    }
    case 'udpAnyReply':
      try {
        await udpRoundTrip(host, port, Buffer.from(WARM_UP_UDP_PAYLOAD, 'utf8'), timeoutMs);
        return { problems: [] };
      } catch (err) {
        return { retry: (err as Error).message };
      }
  }
}

/** weightedDistribution over TCP/UDP: warm-up steps, then one exchange per request. */
async function runL4Weighted(c: L4WeightedCase, env: TrafficEnv): Promise<string[]> {
  const addr = await env.gatewayAddress(c.target.gateway);
  if (!addr) return [`Gateway ${c.target.gateway} has no address in status`];
  const port = c.target.port + env.portOffset;
  const timeoutMs = (c.attemptTimeoutSeconds ?? (c.target.scheme === 'udp' ? UDP_EXCHANGE_TIMEOUT_S : DEFAULT_ATTEMPT_TIMEOUT_S)) * 1000;
  for (const step of c.warmUp ?? []) {
    const problems = await retryAttempts(WARM_UP_POLL, () => warmUpStep(step, addr, port, timeoutMs));
    if (problems.length) return problems.map((p) => `warm-up ${step}: ${p}`);
  }
  return runWeightedAttempts(
    c.distribution,
    c.expect.weights,
    async () => {
      const x = await exchangeFor(c, addr, port, timeoutMs);
      return 'error' in x ? { problem: x.error } : x;
    },
    env.verbose,
  );
}

/** Resolves with the socket once `ready` fires; rejects on error or after `timeoutMs`. */
function connectWithin<T extends net.Socket>(socket: T, ready: string, what: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${err.message}`));
    });
  });
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
  return connectWithin(socket, ready, `${c.target.scheme} connection to ${host}:${port}`, timeoutMs);
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
