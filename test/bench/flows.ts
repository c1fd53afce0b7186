// Flow recording and L7 policy benchmark: what a flow record per request and the L7 HTTP check
// cost against neither, through a real `sluice run`, as throughput ratios from one run. A
// benchmark, not a test: it exits 0 whether or not the target is met, non-zero only when
// something could not be run.
//
//   node test/bench/flows.ts [--duration 8] [--connections 64] [--rounds 2] [--warmup 2]
//
//   CPU 0: Sluice (taskset -c 0)          CPU 1: wrk, the backend, this harness
//
// Four configurations, one Sluice process at a time, order rotated per round:
//   base   --request-flows false, no network policy
//   flows  a flow record per request (--flow-sample-rate 1, the default)
//   l7     --request-flows false, a CiliumNetworkPolicy with the seed's HTTP rules on the backend
//          (every benchmark request matches the last rule: the most work a check does)
//   both   flows and the L7 check
// Each reports req/s and Sluice's CPU time per request (from /proc: the steadier measure when
// other work shares the machine). Target (issue 16): flows cost < 3 % of throughput.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { GATEWAY_YAML, serviceYaml } from '../e2e/backends.ts';
import { SEED_HTTP_RULES, httpPolicyYaml } from '../support/http-policy-yaml.ts';
import { FlowBuffer } from '../../dataplane/flows/flow-buffer.ts';
import { FlowMetrics } from '../../dataplane/flows/flow-metrics.ts';
import { FlowNames, RequestFlows } from '../../dataplane/flows/request-flows.ts';
import { HttpPolicyIndex } from '../../dataplane/policy/http-policy.ts';
import type { L4IR } from '../../ir/types.ts';
import { freePort } from '../support/ports.ts';
import { httpGet, waitFor200 } from './processes.ts';
import { runWrk, type WrkResult } from './wrk.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const HOST = 'flows.bench.local';
const PATH = '/api/users/12345';
const CONFIGS = ['base', 'flows', 'l7', 'both'] as const;
type Config = (typeof CONFIGS)[number];
const FLOWS_COST_TARGET = 0.03;

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '2' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write('Usage: node test/bench/flows.ts [--duration S] [--connections N] [--rounds N] [--warmup S]\nNeeds wrk and taskset (2+ CPUs for the pinned layout).\n');
  process.exit(0);
}
const duration = Number(values.duration);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const warmup = Number(values.warmup);

const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(130));

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const pinned = availableParallelism() >= 2 && have('taskset');
const pin = (cpu: number): string[] => (pinned ? ['taskset', '-c', String(cpu)] : []);

function start(command: string[]): ChildProcess {
  const [cmd, ...args] = command;
  const child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: ROOT });
  children.push(child);
  return child;
}

/** CPU time (user + system) a process has used, in ms, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function manifests(backendPort: number, l7: boolean): string {
  // Every benchmark request matches the last seed rule: the most work a check does.
  const policy = `---\n${httpPolicyYaml({ name: 'bench-l7', port: backendPort, rules: SEED_HTTP_RULES })}`;
  return `${GATEWAY_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [${HOST}]
  rules: [{backendRefs: [{name: backend, port: 80}]}]
---
${serviceYaml('backend', { port: backendPort })}${l7 ? policy : ''}`;
}

/**
 * The in-process cost of one flow record (begin, finish, the ring, the metrics) and of one L7
 * decision, no HTTP: median ns of 5 runs. Steadier than the HTTP figures on a shared machine.
 */
function inProcessCosts(): { flowNs: number; decideNs: number } {
  const l4: L4IR = {
    services: [{ name: 'service/default/backend/port/80', origin: { kind: 'Service', namespace: 'default', name: 'backend' }, vip: '10.96.0.9', port: 80, protocol: 'TCP', affinity: 'random', endpoints: [] }],
    policy: {
      identities: [{ id: 300, labels: ['k8s:app=backend', 'k8s:io.kubernetes.pod.namespace=default'], namespace: 'default' }],
      ipcache: [{ cidr: '127.0.0.1/32', identity: 300 }],
      enforcement: [],
      rules: [{ id: 1, name: 'ciliumnetworkpolicy/default/bench-l7/ingress/0' }],
      entries: [],
      http: [{
        direction: 'ingress', identity: 300, audit: false,
        grants: [{ rule: 1, ports: { from: 8080, to: 8080 }, http: [
          { method: 'GET', path: '/api/products', headers: [], headerActions: [] },
          { method: 'POST', path: '/api/orders', headers: [], headerActions: [] },
          { method: 'GET', path: '/api/users/[0-9]+', headers: [], headerActions: [] },
        ] }],
      }],
    },
  };
  const buffer = new FlowBuffer();
  const metrics = new FlowMetrics(new Registry());
  buffer.subscribeRecorder(metrics);
  const recorder = new RequestFlows({ buffer, sampleRate: 1 }, new FlowNames(l4));
  const policy = HttpPolicyIndex.build(l4.policy)!.forEndpoint('127.0.0.1', 8080)!;
  const headers = ['host', HOST, 'user-agent', 'wrk', 'x-forwarded-for', '127.0.0.1', 'x-forwarded-proto', 'http'];
  const time = (n: number, op: () => void): number => {
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) op();
      runs.push(Number(process.hrtime.bigint() - t0) / n);
    }
    return median(runs);
  };
  const flowNs = time(100_000, () => {
    const flow = recorder.begin('127.0.0.1', 40000, 'GET', PATH, HOST, '1.1', performance.now());
    flow.route = { name: 'httproute/default/bench/rule/0/match/0', source: 'default/bench' };
    flow.backend = 'service/default/backend/port/80';
    flow.endpoint = { address: '127.0.0.1', port: 8080 };
    flow.finish(200);
  });
  const decideNs = time(200_000, () => policy.decide('GET', PATH, headers));
  return { flowNs, decideNs };
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  if (!have('wrk')) {
    process.stderr.write('flows bench: wrk is not installed (apt-get install -y wrk)\n');
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), 'sluice-flows-bench-'));
  try {
    const backendPort = await freePort();
    const backendScript = join(dir, 'backend.mjs');
    writeFileSync(backendScript, `import http from 'node:http';\nconst body = Buffer.from('ok\\n');\nhttp.createServer((req, res) => { req.resume(); res.writeHead(200, ['content-type', 'text/plain', 'content-length', String(body.length)]); res.end(body); }).listen(${backendPort}, '127.0.0.1');\n`);
    start([...pin(1), process.execPath, backendScript]);
    await waitFor200(null, backendPort, PATH, 20_000);

    const results = Object.fromEntries(CONFIGS.map((c) => [c, { rps: [] as number[], cpuUs: [] as number[], errors: 0 }])) as Record<Config, { rps: number[]; cpuUs: number[]; errors: number }>;
    const wrk = (port: number, seconds: number): Promise<WrkResult> =>
      runWrk({ url: `http://127.0.0.1:${port}${PATH}`, threads: 1, connections, durationSec: seconds, headers: { Host: HOST }, pin: pin(1), wrk: 'wrk' });
    for (let round = 0; round < rounds; round++) {
      for (const config of CONFIGS.map((_, i) => CONFIGS[(i + round) % CONFIGS.length]!)) {
        const folder = join(dir, config);
        rmSync(folder, { recursive: true, force: true });
        mkdirSync(folder);
        const l7 = config === 'l7' || config === 'both';
        writeFileSync(join(folder, 'bench.yaml'), manifests(backendPort, l7));
        const port = await freePort();
        const admin = await freePort();
        const flows = config === 'flows' || config === 'both';
        const child = start([
          ...pin(0), process.execPath, '--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), 'run', '--bpf', 'off',
          '--manifests', folder, '--listener-port-offset', String(port - 80), '--admin-address', `127.0.0.1:${admin}`, '--log-level', 'warn',
          '--request-flows', String(flows),
        ]);
        await waitFor200(null, port, PATH, 20_000, { host: HOST });
        if (l7) {
          // The check is live: a path the rules do not allow is refused.
          for (let i = 0; (await httpGet(port, '/nope', { host: HOST })).status !== 403; i++) {
            if (i > 100) throw new Error(`L7 policy not in force in sluice ${config}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        if (warmup > 0) await wrk(port, warmup);
        const before = cpuMs(child.pid!);
        const loaded = await wrk(port, duration);
        results[config].rps.push(loaded.requestsPerSec);
        results[config].cpuUs.push(((cpuMs(child.pid!) - before) * 1000) / loaded.requests);
        results[config].errors += loaded.socketErrors + loaded.non2xx;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        await exited;
        process.stdout.write(`round ${round + 1} ${config}: ${loaded.requestsPerSec.toFixed(0)} req/s, ${results[config].cpuUs.at(-1)!.toFixed(1)} µs CPU/request\n`);
      }
    }
    const costs = inProcessCosts();
    const m = Object.fromEntries(CONFIGS.map((c) => [c, { rps: median(results[c].rps), cpuUs: median(results[c].cpuUs), errors: results[c].errors }])) as Record<Config, { rps: number; cpuUs: number; errors: number }>;
    const lines = [
      '',
      `Flows and L7 policy, ${rounds} round(s) x ${duration} s, ${connections} connections, medians${pinned ? ' (Sluice on CPU 0, load on CPU 1)' : ' (not pinned)'}`,
      'config   req/s     ratio   CPU µs/req   ratio   errors',
      ...CONFIGS.map((c) =>
        `${c.padEnd(8)} ${m[c].rps.toFixed(0).padStart(7)}   ${(m[c].rps / m.base.rps).toFixed(3)}   ${m[c].cpuUs.toFixed(1).padStart(10)}   ${(m.base.cpuUs / m[c].cpuUs).toFixed(3)}   ${m[c].errors}`,
      ),
      '',
      `flows on vs off:      throughput ratio ${(m.flows.rps / m.base.rps).toFixed(3)}, per-CPU ratio ${(m.base.cpuUs / m.flows.cpuUs).toFixed(3)} (target: cost < ${FLOWS_COST_TARGET * 100} %)`,
      `L7 checks on vs off:  throughput ratio ${(m.l7.rps / m.base.rps).toFixed(3)}, per-CPU ratio ${(m.base.cpuUs / m.l7.cpuUs).toFixed(3)}`,
      `both vs neither:      throughput ratio ${(m.both.rps / m.base.rps).toFixed(3)}, per-CPU ratio ${(m.base.cpuUs / m.both.cpuUs).toFixed(3)}`,
      '',
      `In process (no HTTP): one flow record ${(costs.flowNs / 1000).toFixed(2)} µs, one L7 decision ${(costs.decideNs / 1000).toFixed(2)} µs;`,
      `against base's ${m.base.cpuUs.toFixed(1)} µs CPU per request: flows ${(100 * costs.flowNs / 1000 / m.base.cpuUs).toFixed(1)} %, L7 ${(100 * costs.decideNs / 1000 / m.base.cpuUs).toFixed(1)} % (throughput ratio ${(m.base.cpuUs / (m.base.cpuUs + costs.flowNs / 1000)).toFixed(3)} and ${(m.base.cpuUs / (m.base.cpuUs + costs.decideNs / 1000)).toFixed(3)} when Sluice's CPU is the limit)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
