// An HTTP/1.1 backend's unsolicited 100 Continue after empty lines: undici's parser (llhttp) skips
// CRLFs before a status line, so such a response is well-formed to it, and the 100 must be read as
// interim there too (dataplane/upstream/interim.ts), not left to undici, which refuses a 100 (502).
// A real `sluice run` in front of a scripted backend (support/upstream-attack-gateway.ts).

import { describe, expect, it } from '@jest/globals';
import { ask, connectionOf, head, script, useUpstreamAttackGateway } from './support/upstream-attack-gateway.ts';

const CONTINUE = head('HTTP/1.1 100 Continue');
const ANSWER = head('HTTP/1.1 200 OK', 'content-length: 2') + 'hi';

describe('an unsolicited 100 Continue after empty lines', () => {
  const gateway = useUpstreamAttackGateway();

  const answered: Array<[string, string[]]> = [
    ['a CRLF before it, one write', ['\r\n' + CONTINUE + ANSWER]],
    ['CRLFs before it, in writes of their own', ['\r\n', '\r\n', CONTINUE, ANSWER]],
    ['a CRLF between a 103 and it', [head('HTTP/1.1 103 Early Hints', 'link: </a>') + '\r\n' + CONTINUE + ANSWER]],
  ];
  it.each(answered)('%s: the answer is relayed, the upstream connection kept', async (what, writes) => {
    const name = `crlf${answered.findIndex(([other]) => other === what)}`;
    script(gateway, name, (socket) => {
      writes.forEach((bytes, i) => setTimeout(() => socket.write(bytes, 'latin1'), 20 * i));
    });
    const answer = await ask(gateway.port, `/s/${name}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('hi');
    const upstream = connectionOf(gateway, name);
    const next = await ask(gateway.port, '/plain');
    expect(next.body).toBe(`/plain conn=${upstream}\n`);
  });
});
