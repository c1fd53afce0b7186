// echo-basic's UDP mode and the suite's DNS backend (suite README, "Echo server contract").
//   UDP echo: each datagram (read into 1024 bytes, as echo-basic's buffer) is answered with one
//             datagram of compact JSON {request, namespace, ingress, service, pod}.
//   DNS:      a stand-in for the base manifests' CoreDNS: every well-formed query gets a
//             well-formed response with its id. Like CoreDNS's `whoami` zone foo.bar.com, an A
//             query there is answered with the client's address; other names get SERVFAIL (the
//             real CoreDNS forwards them to the internet, which a test never reaches).

import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { EchoIdentity } from './echo-server.ts';

/** echo-basic reads each datagram into a buffer of this size (longer ones are cut). */
export const UDP_ECHO_BUFFER = 1024;
const WHOAMI_ZONE = 'foo.bar.com';

export interface UdpServer {
  readonly port: number;
  /** Datagrams answered so far. */
  readonly answered: number;
  close(): Promise<void>;
}

async function bindUdp(host: string, port: number, onMessage: (socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo) => void): Promise<UdpServer> {
  const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
  let answered = 0;
  socket.on('message', (msg, rinfo) => {
    onMessage(socket, msg, rinfo);
    answered++;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => {});
  let closed = false;
  return {
    port: socket.address().port,
    get answered() {
      return answered;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        socket.close(() => resolve());
      }),
  };
}

export interface UdpEchoOptions {
  host: string;
  /** echo-basic's UDP_PORT (default 8080; 0 picks one). */
  port: number;
  identity: EchoIdentity;
  log?: (line: string) => void;
}

export function startUdpEcho(opts: UdpEchoOptions): Promise<UdpServer> {
  const { pod, namespace, service = '', ingress = '' } = opts.identity;
  return bindUdp(opts.host, opts.port, (socket, msg, rinfo) => {
    const request = msg.subarray(0, UDP_ECHO_BUFFER).toString('utf8');
    opts.log?.(`UDP datagram of ${msg.length} bytes from ${rinfo.address}:${rinfo.port}`);
    socket.send(JSON.stringify({ request, namespace, ingress, service, pod }), rinfo.port, rinfo.address);
  });
}

export interface DnsServerOptions {
  host: string;
  /** Default 53 (the coredns Service's targetPort); 0 picks one. */
  port: number;
  log?: (line: string) => void;
}

/** The answer to one query, or undefined when it is not a well-formed DNS query (dropped, as CoreDNS does). */
export function dnsAnswer(msg: Buffer, client: { address: string; family: string }): Buffer | undefined {
  let query: dnsPacket.Packet;
  try {
    query = dnsPacket.decode(msg);
  } catch {
    return undefined;
  }
  if (query.type !== 'query' || typeof query.id !== 'number' || (query.questions ?? []).length !== 1) return undefined;
  const question = query.questions![0];
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const inZone = name === WHOAMI_ZONE || name.endsWith(`.${WHOAMI_ZONE}`);
  const answers: dnsPacket.Answer[] = [];
  if (inZone && question.type === 'A' && client.family === 'IPv4') answers.push({ type: 'A', name: question.name, ttl: 0, class: 'IN', data: client.address });
  if (inZone && question.type === 'AAAA' && client.family === 'IPv6') answers.push({ type: 'AAAA', name: question.name, ttl: 0, class: 'IN', data: client.address });
  const recursionDesired = ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) !== 0;
  return dnsPacket.encode({
    id: query.id,
    type: 'response',
    // Authoritative for the whoami zone; SERVFAIL (rcode 2) where CoreDNS would forward.
    flags: (inZone ? dnsPacket.AUTHORITATIVE_ANSWER : 2) | (recursionDesired ? dnsPacket.RECURSION_DESIRED : 0),
    questions: [question],
    answers,
  });
}

export function startDnsServer(opts: DnsServerOptions): Promise<UdpServer> {
  return bindUdp(opts.host, opts.port, (socket, msg, rinfo) => {
    const answer = dnsAnswer(msg, rinfo);
    opts.log?.(`DNS ${answer ? 'answered' : 'dropped'} ${msg.length} bytes from ${rinfo.address}:${rinfo.port}`);
    if (answer) socket.send(answer, rinfo.port, rinfo.address);
  });
}
