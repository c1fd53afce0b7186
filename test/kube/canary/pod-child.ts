// One "container" of the test kubelet (kubelet.ts), run inside the node's network namespace: an
// HTTP server on the pod's IP and container port answering {pod, namespace, version}. Its
// behaviour comes from the container's environment, as an image's would: VERSION (reported),
// FAIL_EVERY=N (every Nth request answers 500), DELAY_MS (each answer waits that long).
//   pod-child.ts POD NAMESPACE IP PORT
import { createServer } from 'node:http';

const [pod, namespace, ip, port] = process.argv.slice(2);
const version = process.env.VERSION ?? '';
const failEvery = Number(process.env.FAIL_EVERY ?? 0);
const delayMs = Number(process.env.DELAY_MS ?? 0);
let served = 0;
const server = createServer((req, res) => {
  req.resume();
  served++;
  const status = failEvery > 0 && served % failEvery === 0 ? 500 : 200;
  const answer = () => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ pod, namespace, version, path: req.url }));
  if (delayMs > 0) setTimeout(answer, delayMs);
  else answer();
});
server.keepAliveTimeout = 60_000;
server.listen(Number(port), ip, () => process.stdout.write('listening\n'));
// The kubelet stops a container with SIGTERM: finish what is in flight, as a well-behaved server.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 5000).unref();
});
