// The raw forwarder (minimal-forwarder.ts) on N cores, in the two designs --workers chose between:
//
//   --mode reuseport   N worker threads, each binding the port with SO_REUSEPORT (the kernel
//                      spreads connections; what `sluice run --workers N` does)
//   --mode cluster     node:cluster round robin: the primary accepts every connection and hands
//                      it to one of N worker processes over IPC
//
//   node test/bench/workers-forwarder.ts --mode reuseport --workers 2 --port 18081 --upstream 127.0.0.1:18080
import cluster from 'node:cluster';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const FORWARDER = join(import.meta.dirname, 'minimal-forwarder.ts');

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'reuseport' },
    workers: { type: 'string', default: '2' },
    port: { type: 'string' },
    upstream: { type: 'string' },
  },
  strict: true,
});
const count = Number(values.workers);
const args = ['--port', values.port!, '--upstream', values.upstream!];

if (values.mode === 'reuseport') {
  for (let i = 0; i < count; i++) new Worker(FORWARDER, { argv: [...args, '--reuse-port'] });
} else if (values.mode === 'cluster') {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ exec: FORWARDER, args, execArgv: ['--disable-warning=ExperimentalWarning'] });
  for (let i = 0; i < count; i++) cluster.fork();
} else {
  process.stderr.write(`--mode ${values.mode}: expected reuseport or cluster\n`);
  process.exit(2);
}
process.on('SIGTERM', () => {
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  process.exit(0);
});
