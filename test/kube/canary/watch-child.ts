// Watches one HTTPRoute through the API server's watch stream and prints, per event, the time it
// arrived and the route's spec as one JSON line. A process of its own so that the test's traffic
// loops never delay reading an event (the times are the measurement).
//   watch-child.ts SERVER CA_FILE TOKEN NAMESPACE ROUTE
import { readFileSync } from 'node:fs';
import { get } from 'node:https';

const [server, caFile, token, namespace, route] = process.argv.slice(2);
const url = `${server}/apis/gateway.networking.k8s.io/v1/namespaces/${namespace}/httproutes?watch=1&fieldSelector=metadata.name%3D${route}`;
get(url, { ca: readFileSync(caFile!), headers: { authorization: `Bearer ${token}` } }, (res) => {
  let buffer = '';
  res.on('data', (chunk: Buffer) => {
    const at = Date.now();
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const event = JSON.parse(buffer.slice(0, nl)) as { type: string; object: { spec?: unknown } };
      buffer = buffer.slice(nl + 1);
      process.stdout.write(`${JSON.stringify({ at, type: event.type, spec: event.object.spec })}\n`);
    }
  });
});
