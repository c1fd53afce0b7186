// An HTTP/1.1 backend's `100 Continue` to a request that sent no Expect (RFC 9110 §15.2: a client
// must parse and may ignore a 1xx it did not expect): a real `sluice run` in front of a scripted
// backend (support/upstream-attack-gateway.ts). undici refused any 100 as a bad response, so the
// client got 502; now it is dropped like the other interim answers (dataplane/upstream/interim.ts),
// within the same bound (more than 10: 502), and the final answer relayed. No interim answer is
// relayed to the client (1xx are dropped whatever the client's version).

import { describe, expect, it } from '@jest/globals';
import { ask, connectionOf, expectBadGateway, head, script, stillServes, untilClosed, useUpstreamAttackGateway } from './support/upstream-attack-gateway.ts';

const CONTINUE = head('HTTP/1.1 100 Continue');
const ANSWER = head('HTTP/1.1 200 OK', 'content-length: 2') + 'hi';

describe('an unsolicited 100 Continue from an HTTP/1.1 backend', () => {
  const gateway = useUpstreamAttackGateway();

  const answered: Array<[string, string[]]> = [
    ['before the answer, in one write', [CONTINUE + ANSWER]],
    ['in writes of its own, cut inside its status line and its end', ['HTTP/1.1 1', '00 Continue\r', '\n\r', '\n', ANSWER]],
    ['with fields, twice, around a 103 Early Hints', [head('HTTP/1.1 100 Continue', 'server: old'), head('HTTP/1.1 103 Early Hints', 'link: </a>') + CONTINUE, ANSWER]],
    ['10 of them (the bound)', [CONTINUE.repeat(10) + ANSWER]],
    // llhttp skips empty lines before a status line: so must the interim reader (review-s11b).
    ['a CRLF before it, one write', ['\r\n' + CONTINUE + ANSWER]],
    ['CRLFs before it, in writes of their own', ['\r\n', '\r\n', CONTINUE, ANSWER]],
    ['a CRLF between a 103 and it', [head('HTTP/1.1 103 Early Hints', 'link: </a>') + '\r\n' + CONTINUE + ANSWER]],
  ];
  it.each(answered)('%s: the answer is relayed, no 1xx, the upstream connection kept', async (_what, writes) => {
    const name = `answered${answered.findIndex(([what]) => what === _what)}`;
    script(gateway, name, (socket) => {
      writes.forEach((bytes, i) => setTimeout(() => socket.write(bytes, 'latin1'), 20 * i));
    });
    const answer = await ask(gateway.port, `/s/${name}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('hi');
    expect(answer.text).not.toMatch(/^HTTP\/1\.1 1/);
    // The next request reuses the upstream connection: nothing of the 100 was left on it.
    const upstream = connectionOf(gateway, name);
    const next = await ask(gateway.port, '/plain');
    expect(next.body).toBe(`/plain conn=${upstream}\n`);
  });

  it('a POST whose backend says 100 Continue before reading on: the body arrives, the answer is relayed', async () => {
    gateway.hostile.scripts.set('post', (socket, request) => {
      socket.write(CONTINUE + head('HTTP/1.1 201 Created', `content-length: ${request.body.length}`) + request.body, 'latin1');
    });
    const response = await fetch(`http://127.0.0.1:${gateway.port}/s/post`, { method: 'POST', body: 'payload', headers: { host: 'attack.example.com' } });
    expect(response.status).toBe(201);
    expect(await response.text()).toBe('payload');
  });

  it('11 of them (past the bound of 10): 502, the upstream connection closed', async () => {
    script(gateway, 'flood', (socket) => socket.write(CONTINUE.repeat(11) + ANSWER, 'latin1'));
    expectBadGateway(await ask(gateway.port, '/s/flood'));
    const upstream = connectionOf(gateway, 'flood');
    await untilClosed(gateway, upstream);
    await stillServes(gateway, upstream);
  });

  it('a body that holds a 100 status line is relayed untouched, and the next response on the connection may start with a real one', async () => {
    const text = CONTINUE + 'HTTP/1.1 100 Continue';
    script(gateway, 'body', (socket) => socket.write(head('HTTP/1.1 200 OK', `content-length: ${text.length}`) + text, 'latin1'));
    script(gateway, 'then', (socket) => socket.write(CONTINUE + ANSWER, 'latin1'));
    const first = await ask(gateway.port, '/s/body');
    expect(first.body).toBe(text);
    const upstream = connectionOf(gateway, 'body');
    const second = await ask(gateway.port, '/s/then');
    expect(second.status).toBe(200);
    expect(second.body).toBe('hi');
    expect(connectionOf(gateway, 'then')).toBe(upstream);
  });
});
