// The echo server of netns-echo.ts, run inside the test's network namespace: one echo-basic
// container in the mode its environment selects (GRPC_ECHO_SERVER, TCP_ECHO_SERVER,
// UDP_ECHO_SERVER; none: HTTP), configured by its environment as upstream's image is.
//   echo-child.ts POD NAMESPACE PORT      (PORT: the mode's main port, e.g. HTTP_PORT)
import { modeFromEnv, startEchoBasic } from '../support/demo/echo-basic.ts';

const [pod, namespace, port] = process.argv.slice(2);
const env: Record<string, string> = {};
for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
const portVariable = { http: 'HTTP_PORT', grpc: 'HTTP_PORT', tcp: 'TCP_PORT', udp: 'UDP_PORT', dns: 'DNS_PORT' }[modeFromEnv(env)];
await startEchoBasic({ host: '0.0.0.0', env: { ...env, POD_NAME: pod!, NAMESPACE: namespace!, [portVariable]: port! } });
process.stdout.write('listening\n');
