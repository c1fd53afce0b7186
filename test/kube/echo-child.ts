// The echo server of netns-echo.ts, run inside the test's network namespace.
//   echo-child.ts POD NAMESPACE PORT
import { startEchoServer } from '../support/demo/echo-server.ts';

const [pod, namespace, port] = process.argv.slice(2);
await startEchoServer({ host: '0.0.0.0', httpPort: Number(port), identity: { pod: pod!, namespace: namespace! } });
process.stdout.write('listening\n');
