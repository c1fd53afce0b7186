// Test client for the eBPF tests, run inside the client namespace and cgroup:
// opens `count` fresh TCP connections to host:port one after another, sends one
// HTTP request on each, and prints a JSON summary: which backend answered how
// often, errors by code, the peer address each socket reported (getpeername:
// the VIP when the kernel translated it) and connect() latencies.
//   client.ts HOST PORT COUNT [--pause-ms N]
import { connect } from 'node:net';

const [host, portText, countText, ...rest] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const pauseMs = rest[0] === '--pause-ms' ? Number(rest[1]) : 0;

interface Result {
  answers: Record<string, number>;
  errors: Record<string, number>;
  peers: Record<string, number>;
  connectMs: number[];
}

function once(): Promise<{ answer?: string; error?: string; peer?: string; connectMs: number }> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    let connectMs = -1;
    let body = '';
    let peer = '';
    const socket = connect({ host, port });
    socket.setTimeout(2000, () => socket.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => {
      connectMs = Number(process.hrtime.bigint() - started) / 1e6;
      peer = `${socket.remoteAddress}:${socket.remotePort}`;
      socket.write(`GET / HTTP/1.0\r\nhost: ${host}\r\n\r\n`);
    });
    socket.on('data', (d) => (body += d));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      resolve({ error: err.code ?? err.message, connectMs: Number(process.hrtime.bigint() - started) / 1e6 });
    });
    socket.once('close', (hadError) => {
      if (hadError) return;
      const answer = body.split('\r\n\r\n')[1];
      resolve(answer ? { answer, peer, connectMs } : { error: 'EMPTY', connectMs });
    });
  });
}

const result: Result = { answers: {}, errors: {}, peers: {}, connectMs: [] };
for (let i = 0; i < count; i++) {
  const r = await once();
  if (r.answer) result.answers[r.answer] = (result.answers[r.answer] ?? 0) + 1;
  if (r.error) result.errors[r.error] = (result.errors[r.error] ?? 0) + 1;
  if (r.peer) result.peers[r.peer] = (result.peers[r.peer] ?? 0) + 1;
  result.connectMs.push(r.connectMs);
  if (pauseMs) await new Promise((resolve) => setTimeout(resolve, pauseMs));
}
process.stdout.write(`${JSON.stringify(result)}\n`);
