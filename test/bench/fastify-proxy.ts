// A baseline for the benchmark: @fastify/http-proxy (fastify + @fastify/reply-from over undici),
// the off-the-shelf Node reverse proxy, forwarding every request to the one upstream with its
// defaults (logging off, as the other configurations).
//
//   node test/bench/fastify-proxy.ts --port 18082 --upstream 127.0.0.1:18080
//
// Prints `listening <port>` on stdout once it accepts connections.

import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    upstream: { type: 'string' },
  },
  strict: true,
});
if (!values.upstream) {
  process.stderr.write('fastify-proxy: --upstream HOST:PORT is required\n');
  process.exit(2);
}

const server = Fastify({ logger: false, keepAliveTimeout: 60_000 });
await server.register(proxy, { upstream: `http://${values.upstream}` });
await server.listen({ port: Number(values.port), host: values.host });
const address = server.server.address();
process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : values.port}\n`);

const stop = (): void => {
  void server.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
