// A client connection held open (raw TCP): what it received, whether the server closed it, and
// one keep-alive GET on it. For connection limits: a refused connection reads a 503 and is closed.
import net from 'node:net';

/** A client connection kept open: what it received, whether the server closed it, and one keep-alive GET on it. */
export interface HeldConnection {
  socket: net.Socket;
  readonly closed: boolean;
  readonly received: string;
  get(path: string): Promise<number>;
}

export function holdConnection(port: number): Promise<HeldConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let closed = false;
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined); // a reset is a close too
    socket.once('close', () => (closed = true));
    const held: HeldConnection = {
      socket,
      get closed() {
        return closed;
      },
      get received() {
        return received;
      },
      get: (path) =>
        new Promise((done, fail) => {
          const from = received.length;
          const deadline = performance.now() + 10_000; // a server that never answers fails the test here, saying so
          const check = (): void => {
            const head = /^HTTP\/1\.1 (\d{3}) /.exec(received.slice(from));
            if (head) done(Number(head[1]));
            else if (closed) fail(new Error(`closed before an answer to ${path}`));
            else if (performance.now() > deadline) fail(new Error(`no answer to ${path} within 10 s`));
            else setTimeout(check, 10);
          };
          socket.write(`GET ${path} HTTP/1.1\r\nHost: workers.test\r\n\r\n`);
          check();
        }),
    };
    socket.once('connect', () => resolve(held));
    socket.once('error', reject);
  });
}

