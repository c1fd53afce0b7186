// A hostile backend for the upstream attack tests: a net.Server that reads requests with the
// strict parser of raw-backend.ts and answers each one with bytes a test scripts, chosen by the
// request's path (`/s/<name>...`). Anything unscripted gets an honest `200` whose body names the
// request's target and the connection it arrived on, so a test can tell which upstream connection
// carried which request (reuse after a framing error shows as the same connection number).

import net from 'node:net';
import { readRequest, type BackendRequest } from './raw-backend.ts';

/** A request as the backend read it, with the number of the connection (from 0) it came on. */
export interface ScriptedRequest extends BackendRequest {
  connection: number;
}

/**
 * Answers one request by writing to `socket` (any bytes, now or later, or never). Returning
 * 'stop' makes the backend read no more requests from that connection.
 */
export type Script = (socket: net.Socket, request: ScriptedRequest) => void | 'stop';

export interface ScriptedBackend {
  port: number;
  /** Every request read, all connections, in order. */
  requests: ScriptedRequest[];
  /** Connections accepted so far. */
  connections(): number;
  /** Whether connection `index` has closed. */
  closed(index: number): boolean;
  /** Scripts by name: a request whose path holds `/s/<name>` (`/s/<name>/...`, `/prefix/s/<name>`) runs `scripts[name]`. */
  scripts: Map<string, Script>;
  /** Names whose requests the backend stops reading once their request line arrived (a backend that never reads the body). */
  stalls: Set<string>;
  /** The connections the backend stopped reading, and the bytes it had of each. */
  stalled: Map<number, number>;
  /**
   * Reads (and drops) what the stalled connections hold: a paused socket sees no end of stream,
   * so whether the gateway closed one shows only once it is read to the end.
   */
  drainStalled(): void;
  close(): Promise<void>;
}

/** The honest answer: `200`, body `<target> conn=<n>`. */
export function honestAnswer(socket: net.Socket, request: ScriptedRequest): void {
  const body = `${request.target} conn=${request.connection}\n`;
  socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`, 'latin1');
}

export async function startScriptedBackend(): Promise<ScriptedBackend> {
  const requests: ScriptedRequest[] = [];
  const scripts = new Map<string, Script>();
  const stalls = new Set<string>();
  const stalled = new Map<number, number>();
  const stalledSockets = new Set<net.Socket>();
  const sockets = new Set<net.Socket>();
  const closed: boolean[] = [];
  const server = net.createServer((socket) => {
    const connection = closed.push(false) - 1;
    sockets.add(socket);
    socket.once('close', () => {
      closed[connection] = true;
      sockets.delete(socket);
    });
    socket.on('error', () => undefined);
    let data = '';
    let at = 0;
    let reading = true;
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const line = data.slice(at, data.indexOf('\r\n', at) >>> 0);
      const name = /\/s\/([^/? ]+)/.exec(line)?.[1];
      if (name !== undefined && stalls.has(name)) {
        // Read no more: the kernel buffers fill and the sender is held back.
        stalled.set(connection, data.length - at);
        stalledSockets.add(socket);
        socket.pause();
        return;
      }
      while (reading) {
        const read = readRequest(data, at);
        if (read === null) return;
        if (typeof read === 'string') {
          socket.destroy();
          return;
        }
        at = read.end;
        const request: ScriptedRequest = { ...read.request, connection };
        requests.push(request);
        const name = /\/s\/([^/?]+)/.exec(request.target)?.[1];
        const script = name === undefined ? undefined : scripts.get(name);
        if ((script ?? honestAnswer)(socket, request) === 'stop') reading = false;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    connections: () => closed.length,
    closed: (index) => closed[index] ?? false,
    scripts,
    stalls,
    stalled,
    drainStalled: () => {
      for (const socket of stalledSockets) {
        socket.removeAllListeners('data');
        socket.on('data', () => undefined);
        socket.resume();
      }
      stalledSockets.clear();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
