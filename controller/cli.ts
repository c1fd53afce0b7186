// `sluice <command>`: run (standalone gateway) and translate (dry run).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { DEFAULT_PIN_DIR } from '../bpf/agent/agent.ts';
import { parseIPv4 } from './ir/ipv4.ts';
import { formatFlow, type FlowRecord } from '../bpf/agent/flows.ts';
import type { PolicyOptions } from './translate/networkpolicy.ts';
import { redactIR } from './ir/version.ts';
import { withImplicitGatewayClasses } from './sources/implicit-classes.ts';
import { ManifestFolder } from './sources/manifest-folder.ts';
import { runStandalone, type RateLimitOptions } from './standalone.ts';
import { runController } from './kubernetes.ts';
import { runDataplane } from '../dataplane/main.ts';
import type { BpfOptions } from '../dataplane/node.ts';
import { resolveRedisSettings } from './translate/ratelimit-redis.ts';
import { hostname } from 'node:os';
import { translate } from './translate/translate.ts';

const DEFAULT_CONTROLLER_NAME = 'sluice.dev/gateway-controller';
/** IngressClass spec.controller that marks a class as Sluice's. */
const INGRESS_CONTROLLER = 'sluice.dev/ingress-controller';

const USAGE = `Usage: sluice <command> [flags]

Commands:
  run        serve traffic from a folder of Kubernetes manifests (standalone mode)
  translate  print the IR and every computed status for a folder of manifests, serving nothing
  controller Kubernetes mode: watch the API server, publish IR snapshots to dataplanes, write status
  dataplane  Kubernetes mode: serve traffic from the controller's snapshots
  observe    print the flows the eBPF programs saw (as \`hubble observe\` does), from a running sluice

sluice run --manifests DIR [flags]
  --manifests DIR              folder of YAML manifests (read recursively, multi-document, watched)
  --bind-address ADDR|CIDR     address listeners bind to (default 127.0.0.1); an IPv4 CIDR such as
                               127.20.0.0/16 gives every Gateway its own address from that range
  --listener-port-offset N     bind listener port P at P+N (default 0), e.g. 8000 to serve port 80 on 8080
  --admin-address HOST:PORT    admin API: /healthz /readyz /metrics /api/status /api/config
                               (default 127.0.0.1:9901)
  --controller-name NAME       GatewayClass controllerName to serve (default ${DEFAULT_CONTROLLER_NAME})
  --gateway-classes LIST       comma-separated GatewayClass names served whatever their controllerName,
                               created when the folder lacks them (default cilium: drop-in for Cilium)
  --ingress-classes LIST       comma-separated Ingress class names served (default cilium); IngressClasses
                               whose spec.controller is ${INGRESS_CONTROLLER} are served too
  --ingress-enforce-https BOOL redirect plain HTTP to HTTPS for Ingress TLS hosts unless the Ingress says
                               ingress.cilium.io/force-https: disabled (default true, as Cilium)
  --redis-url URL              Redis for global rate limits: redis://HOST:PORT, rediss:// for TLS
                               (env SLUICE_REDIS_URL)
  --redis-username NAME        Redis ACL user (env SLUICE_REDIS_USERNAME)
  --redis-password-file FILE   Redis password from a file (env SLUICE_REDIS_PASSWORD holds the password)
  --redis-tls-ca FILE          PEM CA bundle for rediss:// (env SLUICE_REDIS_TLS_CA=FILE)
  --redis-tls-insecure         do not verify the Redis server certificate
  --redis-secret NS/NAME       a Secret among the manifests with keys url, username, password, ca.crt;
                               flags and environment variables take precedence over its keys
  --redis-timeout MS           longest a rate-limit decision waits for Redis (default 50, 1 to 1000)
  --rate-limit-replicas N      dataplane replicas: failureMode Local gives each 1/N of a global limit
                               (default 1; env SLUICE_RATE_LIMIT_REPLICAS)
  --rate-limit-max-keys N      local token buckets kept in memory, least recently used dropped first
                               (default 10000)
  --gateway-namespace NS       namespace of the gateway's pods, for network policy peers (default sluice-system)
  --gateway-labels LIST        the gateway pods' labels as k=v,k=v, for network policy peers
                               (default app.kubernetes.io/name=sluice)
  --gateway-addresses LIST     source IPv4 addresses of the gateway's connections, matched against CIDR
                               peers of ingress policy rules (default none)
  --bpf auto|on|off            eBPF socket load balancing and network policy (default auto: used when the
                               machine allows it — root, bpffs, cgroup v2, BTF, built objects — else the
                               log says why once and endpoints are picked in userspace; on: refuse to start)
  --bpf-pin-dir DIR            where maps and links are pinned (default ${DEFAULT_PIN_DIR}); one per instance
  --bpf-cgroup PATH            cgroup v2 folder whose sockets are the gateway's: programs attach there
                               (default: this process's own cgroup)
  --bpf-trace-forwarded BOOL   record a flow for every forwarded connection, not only drops and audits
                               (default true)
  --demo-backends              start echo servers for EndpointSlice endpoints on loopback and write
                               self-signed certificates for missing TLS Secrets (the quickstart)
  --log-level LEVEL            trace|debug|info|warn|error (default info)

sluice controller [--kubeconfig FILE] [flags]   (Kubernetes mode; the Helm chart runs it)
  --kubeconfig FILE            kubeconfig to use (default: the in-cluster ServiceAccount)
  --snapshot-address HOST:PORT where dataplanes subscribe to snapshots (default 0.0.0.0:18000)
  --snapshot-token-file FILE   bearer token dataplanes must present (default: none required)
  --leader-election-namespace NS
                               elect a leader with a Lease in NS: only the leader writes status and serves
                               snapshots, the others redirect dataplanes to it (default: no election)
  --leader-election-id NAME    the Lease name (default sluice-controller)
  --leader-address URL         this replica's snapshot URL, published on the Lease for redirects
                               (e.g. http://$(POD_IP):18000)
  --name NAME                  this replica's identity in the Lease (default $POD_NAME or the host name)
  --dataplane-service NS/NAME  the dataplane Service whose addresses Gateways and Ingresses report; listeners
                               then bind 0.0.0.0 (the Helm chart sets it). Without it dataplanes bind
                               --bind-address as in run, and Gateways report that address (one host)
  --bind-address, --admin-address, --controller-name, --gateway-classes, --ingress-classes,
  --ingress-enforce-https, --gateway-namespace, --gateway-labels, --gateway-addresses, --log-level: as for run

sluice dataplane --controller URL [flags]   (Kubernetes mode; the Helm chart runs it)
  --controller URL             the controller's snapshot endpoint, e.g. http://sluice-controller:18000
  --snapshot-token-file FILE   bearer token to present
  --name NAME                  this replica's name in acknowledgements (default: the host name)
  --admin-address, --listener-port-offset, --redis-url, --redis-username, --redis-password-file,
  --redis-tls-ca, --redis-tls-insecure, --redis-timeout, --rate-limit-replicas, --rate-limit-max-keys,
  --bpf, --bpf-pin-dir, --bpf-cgroup, --bpf-trace-forwarded, --log-level: as for run
  (listeners bind what the controller says; Redis settings come from flags and SLUICE_REDIS_* variables)

sluice observe [--verdict FORWARDED|DROPPED|AUDIT] [--namespace NS] [--to-service NS/NAME] [-o json]
               [--follow] [--admin-address HOST:PORT]
  prints the latest flows (the agent keeps 1000), oldest first; --follow keeps streaming new ones.
  --namespace matches the source's, the destination's or the Service's namespace.

sluice translate --manifests DIR [-o yaml|json] [--bind-address ADDR|CIDR] [--controller-name NAME]
                 [--gateway-classes LIST] [--ingress-classes LIST] [--ingress-enforce-https BOOL]
                 [--gateway-namespace NS] [--gateway-labels LIST] [--gateway-addresses LIST]
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  if (command === '--version' || command === 'version') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    process.stdout.write(`sluice ${pkg.version}\n`);
    return 0;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        manifests: { type: 'string' },
        'bind-address': { type: 'string', default: '127.0.0.1' },
        'listener-port-offset': { type: 'string', default: '0' },
        'admin-address': { type: 'string', default: '127.0.0.1:9901' },
        'controller-name': { type: 'string', default: DEFAULT_CONTROLLER_NAME },
        'gateway-classes': { type: 'string', default: 'cilium' },
        'ingress-classes': { type: 'string', default: 'cilium' },
        'ingress-enforce-https': { type: 'string', default: 'true' },
        'demo-backends': { type: 'boolean', default: false },
        'redis-url': { type: 'string' },
        'redis-username': { type: 'string' },
        'redis-password-file': { type: 'string' },
        'redis-tls-ca': { type: 'string' },
        'redis-tls-insecure': { type: 'boolean', default: false },
        'redis-secret': { type: 'string' },
        'redis-timeout': { type: 'string', default: '50' },
        'rate-limit-replicas': { type: 'string' },
        'rate-limit-max-keys': { type: 'string', default: '10000' },
        'log-level': { type: 'string', default: 'info' },
        kubeconfig: { type: 'string' },
        'snapshot-address': { type: 'string', default: '0.0.0.0:18000' },
        'snapshot-token-file': { type: 'string' },
        'leader-election-namespace': { type: 'string' },
        'leader-election-id': { type: 'string', default: 'sluice-controller' },
        'leader-address': { type: 'string' },
        'dataplane-service': { type: 'string' },
        controller: { type: 'string' },
        name: { type: 'string' },
        'gateway-namespace': { type: 'string' },
        'gateway-labels': { type: 'string' },
        'gateway-addresses': { type: 'string' },
        bpf: { type: 'string', default: 'auto' },
        'bpf-pin-dir': { type: 'string', default: DEFAULT_PIN_DIR },
        'bpf-cgroup': { type: 'string' },
        'bpf-trace-forwarded': { type: 'string', default: 'true' },
        output: { type: 'string', short: 'o' },
        verdict: { type: 'string' },
        namespace: { type: 'string' },
        'to-service': { type: 'string' },
        follow: { type: 'boolean', short: 'f', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === 'observe') return observe(values);
  const translation = translationOptions(values);
  if (typeof translation === 'string') return usageError(translation);
  const logger = () => pino({ level: values['log-level'] as string, base: { component: 'sluice' } });

  if (command === 'controller') {
    const token = readTokenFile(values['snapshot-token-file']);
    if (typeof token === 'object') return usageError(token.error);
    const namespace = values['leader-election-namespace'] as string | undefined;
    const handle = await runController({
      ...(values.kubeconfig ? { kubeconfig: values.kubeconfig as string } : {}),
      snapshotAddress: values['snapshot-address'] as string,
      ...(token ? { snapshotToken: token } : {}),
      adminAddress: values['admin-address'] as string,
      ...translation,
      ...(namespace
        ? {
            leaderElection: {
              namespace,
              id: values['leader-election-id'] as string,
              identity: (values.name as string | undefined) ?? process.env.POD_NAME ?? hostname(),
              ...(values['leader-address'] ? { address: values['leader-address'] as string } : {}),
            },
          }
        : {}),
      ...(values['dataplane-service'] ? { dataplaneService: values['dataplane-service'] as string } : {}),
      // Behind a Service the pods listen on every address; without one, where --bind-address says.
      bindAddress: values['dataplane-service'] ? '0.0.0.0' : (values['bind-address'] as string),
      logger: logger(),
    });
    await untilSignal();
    await handle.close();
    return 0;
  }

  if (command === 'dataplane') {
    if (!values.controller) return usageError('--controller URL is required');
    const token = readTokenFile(values['snapshot-token-file']);
    if (typeof token === 'object') return usageError(token.error);
    const node = nodeOptions(values);
    if (typeof node === 'string') return usageError(node);
    const redis = resolveRedisSettings(node.rateLimit.redis, process.env, null);
    const log = logger();
    if (redis.problem) log.warn(redis.problem);
    const handle = await runDataplane({
      controllerUrl: values.controller as string,
      ...(token ? { snapshotToken: token } : {}),
      ...(values.name ? { name: values.name as string } : {}),
      adminAddress: values['admin-address'] as string,
      portOffset: node.portOffset,
      rateLimit: node.rateLimit,
      redis: redis.settings,
      bpf: node.bpf,
      logger: log,
    });
    await untilSignal();
    await handle.close();
    return 0;
  }

  const manifests = values.manifests as string | undefined;
  if (!manifests) return usageError('--manifests DIR is required');
  if (!existsSync(manifests) || !statSync(manifests).isDirectory()) return usageError(`--manifests ${manifests}: not a folder`);
  const bindAddress = values['bind-address'] as string;

  if (command === 'translate') {
    const load = new ManifestFolder(manifests).load();
    for (const p of load.problems) process.stderr.write(`warning: ${p.file}: ${p.message}\n`);
    const snapshot = withImplicitGatewayClasses(load.snapshot, translation.gatewayClasses, translation.controllerName);
    const result = translate(snapshot, { ...translation, bindAddress, servedClassNames: translation.gatewayClasses });
    for (const p of result.problems) process.stderr.write(`warning: ${p}\n`);
    const out = { version: result.ir.version, ir: redactIR(result.ir), statuses: result.statuses };
    const format = values.output ?? 'yaml';
    if (format === 'json') process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else if (format === 'yaml') process.stdout.write(stringify(out, { aliasDuplicateObjects: false }));
    else return usageError(`-o ${format}: expected yaml or json`);
    return 0;
  }

  if (command === 'run') {
    const node = nodeOptions(values);
    if (typeof node === 'string') return usageError(node);
    const log = logger();
    const handle = await runStandalone({
      manifests,
      bindAddress,
      portOffset: node.portOffset,
      adminAddress: values['admin-address'] as string,
      ...translation,
      demoBackends: values['demo-backends'] as boolean,
      rateLimit: node.rateLimit,
      bpf: node.bpf,
      logger: log,
    });
    await untilSignal(log);
    await handle.close();
    return 0;
  }
  return usageError(`unknown command ${command}`);
}

/** Resolves on SIGINT or SIGTERM. */
function untilSignal(logger?: { info(obj: object, msg: string): void }): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger?.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/** What every translating command shares (classes, Ingress, policy); a string is a usage error. */
function translationOptions(values: Record<string, string | boolean | undefined>) {
  const enforceHttps = values['ingress-enforce-https'];
  if (enforceHttps !== 'true' && enforceHttps !== 'false') return `--ingress-enforce-https ${enforceHttps}: expected true or false`;
  const policy = policyOptions(values);
  if (typeof policy === 'string') return policy;
  return {
    controllerName: values['controller-name'] as string,
    gatewayClasses: splitList(values['gateway-classes']),
    ingress: { classNames: splitList(values['ingress-classes']), controllers: [INGRESS_CONTROLLER], enforceHttps: enforceHttps === 'true' },
    policy,
  };
}

/** What every serving command shares (ports, rate limits, eBPF); a string is a usage error. */
function nodeOptions(values: Record<string, string | boolean | undefined>) {
  const portOffset = Number(values['listener-port-offset']);
  if (!Number.isInteger(portOffset) || portOffset < 0 || portOffset > 65000) {
    return `--listener-port-offset ${values['listener-port-offset']}: expected a whole number from 0 to 65000`;
  }
  const rateLimit = rateLimitOptions(values);
  if (typeof rateLimit === 'string') return rateLimit;
  const mode = values.bpf as string;
  if (mode !== 'auto' && mode !== 'on' && mode !== 'off') return `--bpf ${mode}: expected auto, on or off`;
  const traceForwarded = values['bpf-trace-forwarded'];
  if (traceForwarded !== 'true' && traceForwarded !== 'false') return `--bpf-trace-forwarded ${traceForwarded}: expected true or false`;
  const bpf: BpfOptions = {
    mode,
    pinDir: values['bpf-pin-dir'] as string,
    ...(values['bpf-cgroup'] ? { cgroupPath: values['bpf-cgroup'] as string } : {}),
    traceForwarded: traceForwarded === 'true',
  };
  return { portOffset, rateLimit, bpf };
}

/** The snapshot token from a file (trimmed), undefined without the flag. */
function readTokenFile(file: string | boolean | undefined): string | undefined | { error: string } {
  if (typeof file !== 'string') return undefined;
  try {
    const token = readFileSync(file, 'utf8').trim();
    return token ? token : { error: `--snapshot-token-file ${file}: empty` };
  } catch (err) {
    return { error: `--snapshot-token-file ${file}: ${(err as Error).message}` };
  }
}

/** `sluice observe`: flows from a running sluice's admin API, one per line. */
async function observe(values: Record<string, string | boolean | undefined>): Promise<number> {
  const format = values.output ?? 'text';
  if (format !== 'text' && format !== 'json') return usageError(`-o ${format}: expected json (or nothing for text)`);
  const verdict = values.verdict as string | undefined;
  if (verdict && !['FORWARDED', 'DROPPED', 'AUDIT'].includes(verdict)) return usageError(`--verdict ${verdict}: expected FORWARDED, DROPPED or AUDIT`);
  const query = new URLSearchParams();
  if (verdict) query.set('verdict', verdict);
  if (values.namespace) query.set('namespace', values.namespace as string);
  if (values['to-service']) query.set('to-service', values['to-service'] as string);
  if (values.follow) query.set('follow', 'true');
  const url = `http://${values['admin-address']}/api/flows?${query}`;
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    process.stderr.write(`sluice observe: cannot reach ${values['admin-address']}: ${(err as Error).message}\n`);
    return 1;
  }
  if (!response.ok || !response.body) {
    process.stderr.write(`sluice observe: ${response.status} ${await response.text()}\n`);
    return 1;
  }
  let pending = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!line) continue;
      process.stdout.write(format === 'json' ? `${line}\n` : `${formatFlow(JSON.parse(line) as FlowRecord)}\n`);
    }
  }
  return 0;
}

/** Who the gateway is for network policy (`--gateway-*`); a string is a usage error. */
function policyOptions(values: Record<string, string | boolean | undefined>): PolicyOptions | string {
  const out: PolicyOptions = {};
  if (values['gateway-namespace']) out.gatewayNamespace = values['gateway-namespace'] as string;
  if (values['gateway-labels'] !== undefined) {
    const labels: Record<string, string> = {};
    for (const pair of splitList(values['gateway-labels'])) {
      const eq = pair.indexOf('=');
      if (eq <= 0) return `--gateway-labels ${pair}: expected key=value`;
      labels[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    out.gatewayLabels = labels;
  }
  if (values['gateway-addresses'] !== undefined) {
    const addresses = splitList(values['gateway-addresses']);
    const bad = addresses.find((a) => parseIPv4(a) === null);
    if (bad) return `--gateway-addresses ${bad}: expected IPv4 addresses`;
    out.gatewayAddresses = addresses;
  }
  return out;
}

/** Rate-limit flags (and their environment variables), checked; a string is a usage error. */
function rateLimitOptions(values: Record<string, string | boolean | undefined>): RateLimitOptions | string {
  const whole = (flag: string, value: string | undefined, min: number, max: number): number | string => {
    const n = Number(value);
    return Number.isInteger(n) && n >= min && n <= max ? n : `--${flag} ${value}: expected a whole number from ${min} to ${max}`;
  };
  const timeout = whole('redis-timeout', values['redis-timeout'] as string, 1, 1000);
  const replicas = whole('rate-limit-replicas', (values['rate-limit-replicas'] as string | undefined) ?? process.env.SLUICE_RATE_LIMIT_REPLICAS ?? '1', 1, 10000);
  const maxKeys = whole('rate-limit-max-keys', values['rate-limit-max-keys'] as string, 1, 100_000_000);
  for (const v of [timeout, replicas, maxKeys]) if (typeof v === 'string') return v;
  const read = (flag: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`--${flag} ${file}: ${(err as Error).message}`);
    }
  };
  try {
    return {
      redis: {
        url: values['redis-url'] as string | undefined,
        username: values['redis-username'] as string | undefined,
        password: read('redis-password-file', values['redis-password-file'] as string | undefined)?.trim(),
        tlsCA: read('redis-tls-ca', (values['redis-tls-ca'] as string | undefined) ?? process.env.SLUICE_REDIS_TLS_CA),
        tlsInsecure: values['redis-tls-insecure'] === true,
        secret: values['redis-secret'] as string | undefined,
      },
      redisTimeoutMs: timeout as number,
      replicas: replicas as number,
      maxLocalKeys: maxKeys as number,
    };
  } catch (err) {
    return (err as Error).message;
  }
}

function splitList(value: unknown): string[] {
  return String(value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function usageError(message: string): number {
  process.stderr.write(`sluice: ${message}\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`sluice: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
