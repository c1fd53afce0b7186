// Echo backend for the eBPF tests: answers every HTTP request with its name and
// the port it was reached on (`be1:8080`), on every port given. Prints one line when listening.
import { createServer } from 'node:http';

const [name, ...ports] = process.argv.slice(2);
let listening = 0;
for (const port of ports) {
  const server = createServer((req, res) => {
    res.setHeader('connection', 'close');
    res.end(`${name}:${port}`);
  });
  server.listen(Number(port), '0.0.0.0', () => {
    if (++listening === ports.length) process.stdout.write('listening\n');
  });
}
