// One HTTP/1.1 request through node:http, its body read as latin1 (one character per byte, so any
// byte value compares exactly), with what the tests on keep-alive and trailers need.

import http from 'node:http';
import type { Socket } from 'node:net';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: string;
  /** The client's socket: the same one again means the connection was kept. */
  socket: Socket;
}

export function getLatin1(port: number, path: string, agent: http.Agent | false = false, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('aborted')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body, socket: req.socket! }));
    });
    req.on('error', reject);
    req.end();
  });
}
