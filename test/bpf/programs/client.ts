// Client for test/bpf/programs.test.ts. The test starts it inside the test
// cgroup (so the sock_addr programs see its sockets), sends one JSON command
// per stdin line and reads one JSON answer per stdout line; between steps the
// test can change the BPF maps.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

export type Command =
  /** `count` sequential TCP connects; each reads the label the server writes. */
  | { op: 'tcp'; host: string; port: number; count: number }
  /** One datagram to host:port and its reply. The socket `id` is created on
   * first use (connected to host:port if `connect`) and reused afterwards. */
  | { op: 'udp'; id: string; host: string; port: number; connect: boolean };

export interface TcpResult {
  label?: string;
  /** getpeername() as `ip:port`. */
  peer?: string;
  error?: string;
}

export interface UdpResult {
  /** Source of the reply as `ip:port` (recvmsg). */
  from?: string;
  /** getpeername() of a connected socket. */
  peer?: string;
  error?: string;
}

function tcpOnce(host: string, port: number): Promise<TcpResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let label = '';
    let peer = '';
    socket.setTimeout(2000, () => socket.destroy(new Error('ETIMEDOUT')));
    socket.on('connect', () => (peer = `${socket.remoteAddress}:${socket.remotePort}`));
    socket.on('data', (d) => (label += d));
    socket.on('end', () => resolve({ label, peer }));
    socket.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
}

const udpSockets = new Map<string, UdpSocket>();

async function udpOpen(id: string, host: string, port: number, connected: boolean): Promise<UdpSocket> {
  let socket = udpSockets.get(id);
  if (socket) return socket;
  socket = createSocket('udp4');
  udpSockets.set(id, socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    if (connected) socket.connect(port, host, () => resolve());
    else socket.bind(0, '0.0.0.0', () => resolve());
  });
  return socket;
}

async function udp(id: string, host: string, port: number, connected: boolean): Promise<UdpResult> {
  let socket: UdpSocket;
  try {
    socket = await udpOpen(id, host, port, connected);
  } catch (e) {
    udpSockets.delete(id);
    return { error: (e as NodeJS.ErrnoException).code };
  }
  const peer = connected ? `${socket.remoteAddress().address}:${socket.remoteAddress().port}` : undefined;
  return new Promise((resolve) => {
    const timer = setTimeout(() => done({ error: 'ETIMEDOUT' }), 500);
    const onMessage = (_msg: Buffer, rinfo: { address: string; port: number }) => done({ from: `${rinfo.address}:${rinfo.port}`, peer });
    const done = (r: UdpResult) => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve(r);
    };
    socket.on('message', onMessage);
    const sent = (e: Error | null) => e && done({ error: (e as NodeJS.ErrnoException).code });
    if (connected) socket.send('ping', sent);
    else socket.send('ping', port, host, sent);
  });
}

async function handle(cmd: Command): Promise<unknown> {
  if (cmd.op === 'tcp') {
    const results: TcpResult[] = [];
    for (let i = 0; i < cmd.count; i++) results.push(await tcpOnce(cmd.host, cmd.port));
    return results;
  }
  return udp(cmd.id, cmd.host, cmd.port, cmd.connect);
}

// Commands are answered strictly in order.
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  queue = queue.then(async () => {
    process.stdout.write(JSON.stringify(await handle(JSON.parse(line) as Command)) + '\n');
  });
}).on('close', () => {
  void queue.then(() => {
    for (const s of udpSockets.values()) s.close();
  });
});
