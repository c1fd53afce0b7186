// `sluice <command>`: what each command does with its flags (the flags themselves: cli-flags.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { COMMANDS, CONTROLLER, DATAPLANE, INGRESS_CONTROLLER, LOG_LEVELS, OBSERVE, OVERVIEW, STATUS, TRANSLATE, commandUsage, parseCommand, type FlagValues } from './cli-flags.ts';
import { parseIPv4 } from '../ir/ipv4.ts';
import { observe } from './observe.ts';
import type { PolicyOptions } from '../controller/translate/networkpolicy.ts';
import { redactIR } from '../ir/version.ts';
import type { RateLimitOptions } from './standalone.ts';
import { parseWorkers } from './workers.ts';
import { runDataplane } from './dataplane.ts';
import type { BpfOptions, NodeFlowOptions } from './node.ts';
import { ACCESS_LOG_FIELDS } from '../dataplane/flows/access-log.ts';
import { DEFAULT_FRONT_DOOR_LIMITS, ESCAPED_SLASHES, HEADERS_WITH_UNDERSCORES, type FrontDoorLimits } from '../dataplane/front-door.ts';
import { SESSION_KEY_MIN_BYTES } from '../dataplane/upstream/session.ts';
import { REDIS_ENV, REDIS_TYPES, resolveRedisSettings } from './redis-settings.ts';
import { hostname } from 'node:os';
import { problemLine, type Problem } from '../controller/problems.ts';
import { StartupCheckFailed, unwritableFile } from './startup-checks.ts';
import { parseHostPort } from '../ir/host-port.ts';
import { nothingServed } from './nothing-served.ts';
import { adminFetchError } from './admin-client.ts';

/** Where a Pod's ServiceAccount token is mounted: what `sluice controller` without --kubeconfig reads. */
const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
// What makes `sluice translate` exit 1: the folder did not read as the API server would take it.
const TRANSLATE_ERRORS: ReadonlySet<string> = new Set(['SLU_MANIFEST_INVALID', 'SLU_MANIFEST_YAML', 'SLU_SOURCE_READ']);

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const helpFor = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
  if (helpFor) {
    process.stdout.write(commandUsage(helpFor));
    return 0;
  }
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(OVERVIEW);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === 'version') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`sluice ${pkg.version} (Node.js ${process.version})\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`sluice: unknown command ${name}\n\n${OVERVIEW}`);
    return 2;
  }
  const usageError = (message: string): number => {
    process.stderr.write(`sluice: ${message}\n\n${commandUsage(command)}`);
    return 2;
  };
  const parsed = parseCommand(command, rest);
  if ('error' in parsed) return usageError(parsed.error);
  if ('help' in parsed) {
    process.stdout.write(commandUsage(command));
    return 0;
  }
  const { values } = parsed;
  const invalid = commonFlagProblem(values);
  if (invalid) return usageError(invalid);
  if (command === OBSERVE) return observe(values, usageError);
  if (command === STATUS) return status(values);
  const logger = () => pino({ level: values['log-level'] as string, base: { component: 'sluice' } });

  if (command === CONTROLLER) {
    const translation = translationOptions(values);
    if (typeof translation === 'string') return usageError(translation);
    const token = readTokenFile(values['snapshot-token-file']);
    if (typeof token === 'object') return usageError(token.error);
    const kubeconfig = kubeconfigProblem(values.kubeconfig as string | undefined);
    if (kubeconfig) return usageError(kubeconfig);
    const namespace = values['leader-election-namespace'] as string | undefined;
    // Loaded here only: @kubernetes/client-node (some 870 modules, ~60 MB of RSS) is for the controller alone.
    const { runController } = await import('./controller.ts');
    const log = logger();
    const stop = stopSignal(log);
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
      logger: log,
    });
    await stop;
    await handle.close();
    return 0;
  }

  if (command === DATAPLANE) {
    if (!values.controller) return usageError('--controller URL is required');
    if (!isHttpUrl(values.controller as string)) return usageError(`--controller ${values.controller}: expected an http:// or https:// URL, e.g. http://sluice-controller:18000`);
    const token = readTokenFile(values['snapshot-token-file']);
    if (typeof token === 'object') return usageError(token.error);
    const node = nodeOptions(values);
    if (typeof node === 'string') return usageError(node);
    const redis = resolveRedisSettings(node.rateLimit.redis, process.env, null);
    if (redis.invalid) return usageError(redis.problem!);
    const log = logger();
    if (redis.problem) log.warn(redis.problem);
    const stop = stopSignal(log);
    const handle = await runDataplane({
      controllerUrl: values.controller as string,
      ...(token ? { snapshotToken: token } : {}),
      ...(values.name ? { name: values.name as string } : {}),
      adminAddress: values['admin-address'] as string,
      portOffset: node.portOffset,
      rateLimit: node.rateLimit,
      redis: redis.settings,
      bpf: node.bpf,
      frontDoor: node.frontDoor,
      flows: node.flows,
      workers: node.workers,
      ...(node.sessionKey ? { sessionKey: node.sessionKey } : {}),
      logger: log,
    });
    await stop;
    await handle.close();
    return 0;
  }

  const manifests = values.manifests as string | undefined;
  if (!manifests) return usageError('--manifests DIR is required');
  if (!existsSync(manifests)) return usageError(`--manifests ${manifests}: not a folder (nothing is there)`);
  // A file: `kubectl apply -f` takes one, Sluice reads (and watches) a folder.
  if (!statSync(manifests).isDirectory()) return usageError(`--manifests ${manifests}: not a folder but a file; name the folder that holds it (--manifests ${dirname(manifests)})`);
  const bindAddress = values['bind-address'] as string;
  const translation = translationOptions(values);
  if (typeof translation === 'string') return usageError(translation);

  if (command === TRANSLATE) {
    const [{ ManifestFolder, leftOutLine }, { withImplicitGatewayClasses }, { translate }, { stringify }] = await Promise.all([
      import('../controller/sources/manifest-folder.ts'),
      import('../controller/sources/implicit-classes.ts'),
      import('../controller/translate/translate.ts'),
      import('yaml'),
    ]);
    const load = new ManifestFolder(manifests).load();
    const leftOut = leftOutLine(manifests, load.leftOut);
    if (leftOut !== null) process.stderr.write(`info: ${leftOut}\n`);
    // An object the API server would refuse, and a file that cannot be read or parsed, are errors:
    // printed, left out, and the exit status is 1 (a folder that only half reads is not valid).
    const isError = (p: { code: string }) => TRANSLATE_ERRORS.has(p.code);
    const refused = load.problems.filter(isError);
    for (const p of [...load.problems, ...nothingServed(load.snapshot, manifests, false)]) process.stderr.write(`${isError(p) ? 'error' : 'warning'}: ${problemLine(p)}\n`);
    const snapshot = withImplicitGatewayClasses(load.snapshot, translation.gatewayClasses, translation.controllerName);
    const result = translate(snapshot, { ...translation, bindAddress, servedClassNames: translation.gatewayClasses, standalone: true });
    for (const p of result.problems) process.stderr.write(`warning: ${problemLine(p)}\n`);
    const out = { version: result.ir.version, ir: redactIR(result.ir), statuses: result.statuses };
    const format = values.output;
    if (format === 'json') process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else if (format === 'yaml') process.stdout.write(stringify(out, { aliasDuplicateObjects: false }));
    else return usageError(`-o ${format}: expected yaml or json`);
    return refused.length > 0 ? 1 : 0;
  }

  // RUN: the only command left. Translation, validation and the manifest reader load with it only:
  // `sluice dataplane` never needs them (~40 MB of RSS).
  const { demoBackendsAvailable, runStandalone } = await import('./standalone.ts');
  const node = nodeOptions(values);
  if (typeof node === 'string') return usageError(node);
  const redirectPortOffset = values['redirect-port-offset'] === undefined ? node.portOffset : portOffsetValue('redirect-port-offset', values);
  if (typeof redirectPortOffset === 'string') return usageError(redirectPortOffset);
  if (values['demo-backends'] === true && !(await demoBackendsAvailable())) {
    process.stderr.write('sluice: --demo-backends is not available here: the demo echo backends are test doubles, left out of the container image; run the quickstart from a source checkout\n');
    return 2;
  }
  const log = logger();
  const stop = stopSignal(log);
  const handle = await runStandalone({
    manifests,
    bindAddress,
    portOffset: node.portOffset,
    redirectPortOffset,
    adminAddress: values['admin-address'] as string,
    ...translation,
    demoBackends: values['demo-backends'] === true,
    rateLimit: node.rateLimit,
    bpf: node.bpf,
    frontDoor: node.frontDoor,
    flows: node.flows,
    workers: node.workers,
    ...(node.sessionKey ? { sessionKey: node.sessionKey } : {}),
    logger: log,
  });
  await stop;
  await handle.close();
  return 0;
}

/**
 * Resolves on SIGINT or SIGTERM, watched from before the start: a signal while the process starts
 * (Ctrl-C during start-up) lets the start finish, then closes as after it. Node's default exit on a
 * signal left what the start had made (`sluice run`'s cgroup and pinned eBPF programs) to the next
 * start to clean. A second signal exits at once (exit code 130), not waiting for connections to drain.
 */
function stopSignal(logger: { info(obj: object, msg: string): void }): Promise<void> {
  return new Promise<void>((resolve) => {
    let first: string | null = null;
    const stop = (signal: string) => {
      if (first !== null) {
        process.stderr.write(`sluice: ${signal} again: exiting now, without waiting for connections to drain\n`);
        process.exit(130);
      }
      first = signal;
      logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** The HOST:PORT flags and --log-level, whichever the command takes; a string is a usage error. */
function commonFlagProblem(values: FlagValues): string | undefined {
  for (const flag of ['admin-address', 'snapshot-address']) {
    const value = values[flag];
    if (typeof value !== 'string') continue;
    let port: number;
    try {
      port = parseHostPort(value).port;
    } catch {
      return `--${flag} ${value}: expected HOST:PORT, e.g. 127.0.0.1:9901`;
    }
    if (port > 65535) return `--${flag} ${value}: the port must be at most 65535`;
  }
  const level = values['log-level'];
  if (typeof level === 'string' && !(LOG_LEVELS as readonly string[]).includes(level)) return `--log-level ${level}: expected one of ${LOG_LEVELS.join(', ')}`;
  return undefined;
}

/** --kubeconfig must be a readable file; without it, the in-cluster ServiceAccount must be there. A string is a usage error. */
function kubeconfigProblem(kubeconfig: string | undefined): string | undefined {
  if (kubeconfig !== undefined) {
    try {
      readFileSync(kubeconfig);
      return undefined;
    } catch (err) {
      return `--kubeconfig ${kubeconfig}: ${(err as Error).message}`;
    }
  }
  if (existsSync(IN_CLUSTER_TOKEN)) return undefined;
  return `no in-cluster ServiceAccount here (${IN_CLUSTER_TOKEN}): give --kubeconfig FILE (e.g. ~/.kube/config), or run it in a Pod (charts/sluice)`;
}

/** An answer that is not 200, as `sluice status` reports it. */
class HttpAnswer extends Error {}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** What every translating command shares (classes, Ingress, policy); a string is a usage error. */
function translationOptions(values: FlagValues) {
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
function nodeOptions(values: FlagValues) {
  const portOffset = portOffsetValue('listener-port-offset', values);
  if (typeof portOffset === 'string') return portOffset;
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
  const frontDoor = frontDoorLimits(values);
  if (typeof frontDoor === 'string') return frontDoor;
  const flows = flowOptions(values);
  if (typeof flows === 'string') return flows;
  const workers = parseWorkers(values.workers as string);
  if (typeof workers === 'string') return workers;
  const sessionKey = readSessionKey(values['session-key-file'] as string | undefined);
  if (typeof sessionKey === 'string') return sessionKey;
  return { portOffset, rateLimit, bpf, frontDoor, flows, workers, ...(sessionKey ? { sessionKey } : {}) };
}

/** --session-key-file: its bytes, at least SESSION_KEY_MIN_BYTES; undefined when not given; a string is a usage error. */
function readSessionKey(path: string | undefined): Buffer | string | undefined {
  if (path === undefined) return undefined;
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (err) {
    return `--session-key-file ${path}: ${(err as Error).message}`;
  }
  return key.length >= SESSION_KEY_MIN_BYTES ? key : `--session-key-file ${path}: ${key.length} bytes; a session key needs at least ${SESSION_KEY_MIN_BYTES} (e.g. head -c 32 /dev/urandom)`;
}

/** Flow records and the access log (FLOW_FLAGS); a string is a usage error. */
function flowOptions(values: FlagValues): NodeFlowOptions | string {
  const requests = values['request-flows'];
  if (requests !== 'true' && requests !== 'false') return `--request-flows ${requests}: expected true or false`;
  const rate = Number(values['flow-sample-rate']);
  if (!(rate >= 0 && rate <= 1)) return `--flow-sample-rate ${values['flow-sample-rate']}: expected a number from 0 to 1`;
  const bufferSize = wholeNumber('flow-buffer-size', values['flow-buffer-size'], 1, 1_000_000);
  if (typeof bufferSize === 'string') return bufferSize;
  const out: NodeFlowOptions = { requests: requests === 'true', sampleRate: rate, bufferSize };
  const path = values['access-log'] as string | undefined;
  if (path) {
    const fields = values['access-log-fields'] === undefined ? ACCESS_LOG_FIELDS : splitList(values['access-log-fields']);
    const unknown = fields.filter((f) => !ACCESS_LOG_FIELDS.includes(f));
    if (unknown.length > 0) return `--access-log-fields ${unknown.join(',')}: expected some of ${ACCESS_LOG_FIELDS.join(',')}`;
    const unwritable = path === '-' ? undefined : unwritableFile(path);
    if (unwritable) return `--access-log ${path}: cannot be written (${unwritable})`;
    out.accessLog = { path, fields };
  } else if (values['access-log-fields'] !== undefined) return '--access-log-fields needs --access-log';
  return out;
}

/** Client timeouts, connection limits and load shedding (FRONT_DOOR_FLAGS); a string is a usage error. */
function frontDoorLimits(values: FlagValues): FrontDoorLimits | string {
  const DAY_MS = 86_400_000;
  type NumberField = { [K in keyof FrontDoorLimits]: FrontDoorLimits[K] extends number ? K : never }[keyof FrontDoorLimits];
  const fields: Array<[NumberField, string, number, number]> = [
    ['requestHeadersTimeoutMs', 'request-headers-timeout', 1, DAY_MS],
    ['tlsHandshakeTimeoutMs', 'tls-handshake-timeout', 1, DAY_MS],
    ['idleTimeoutMs', 'idle-timeout', 1, DAY_MS],
    ['requestBodyTimeoutMs', 'request-body-timeout', 1, DAY_MS],
    ['responseSendTimeoutMs', 'response-send-timeout', 1, DAY_MS],
    ['http2IdleTimeoutMs', 'http2-idle-timeout', 1, DAY_MS],
    ['http2AckTimeoutMs', 'http2-ack-timeout', 1, DAY_MS],
    ['backendConnectTimeoutMs', 'backend-connect-timeout', 1, DAY_MS],
    ['backendIdleTimeoutMs', 'backend-idle-timeout', 1, DAY_MS],
    ['streamIdleTimeoutMs', 'stream-idle-timeout', 1, DAY_MS],
    ['udpSessionTimeoutMs', 'udp-session-timeout', 1, DAY_MS],
    ['tunnelIdleTimeoutMs', 'tunnel-idle-timeout', 1, DAY_MS],
    ['maxConnectionsPerListener', 'max-connections-per-listener', 1, 10_000_000],
    ['maxConnections', 'max-connections', 1, 10_000_000],
    ['maxUdpSessionsPerListener', 'max-udp-sessions-per-listener', 1, 10_000_000],
    ['udpReplyRatio', 'udp-reply-ratio', 0, 1_000_000],
  ];
  const limits: FrontDoorLimits = { ...DEFAULT_FRONT_DOOR_LIMITS };
  for (const [field, flag, min, max] of fields) {
    if (values[flag] === undefined) continue; // --max-connections: its default depends on `ulimit -n`
    const value = wholeNumber(flag, values[flag], min, max);
    if (typeof value === 'string') return value;
    limits[field] = value;
  }
  for (const [field, flag] of [['shedDescriptorRatio', 'shed-descriptors-percent'], ['shedHeapRatio', 'shed-heap-percent']] as const) {
    const percent = wholeNumber(flag, values[flag], 1, 100);
    if (typeof percent === 'string') return percent;
    limits[field] = percent / 100;
  }
  const underscores = oneOf(values['headers-with-underscores'], HEADERS_WITH_UNDERSCORES);
  if (underscores === null) return `--headers-with-underscores ${values['headers-with-underscores']}: expected ${HEADERS_WITH_UNDERSCORES.join(' or ')}`;
  limits.headersWithUnderscores = underscores;
  const slashes = oneOf(values['escaped-slashes'], ESCAPED_SLASHES);
  if (slashes === null) return `--escaped-slashes ${values['escaped-slashes']}: expected ${ESCAPED_SLASHES.join(', ')}`;
  limits.escapedSlashes = slashes;
  return limits;
}

/** A flag's value among `choices` (its default when absent), or null. */
function oneOf<T extends string>(value: string | boolean | undefined, choices: readonly T[]): T | null {
  return choices.find((c) => c === value) ?? null;
}

/** A whole-number flag's value within [min, max]; a string is a usage error. */
function wholeNumber(flag: string, value: string | boolean | undefined, min: number, max: number): number | string {
  const n = Number(value);
  return Number.isInteger(n) && n >= min && n <= max ? n : `--${flag} ${value}: expected a whole number from ${min} to ${max}`;
}

/** A port offset flag's value; a string is a usage error. */
function portOffsetValue(flag: string, values: FlagValues): number | string {
  return wholeNumber(flag, values[flag], 0, 65000);
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

/** `sluice status`: the running sluice's current problems, one line each; exit 1 when there are some. */
async function status(values: FlagValues): Promise<number> {
  const address = values['admin-address'] as string;
  let body: unknown;
  try {
    // The admin API answers at once; a hung one must not hang the command.
    const response = await fetch(`http://${address}/api/status`, { signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new HttpAnswer(`${response.status} ${await response.text()}`);
    body = await response.json();
  } catch (err) {
    process.stderr.write(`sluice status: cannot read http://${address}/api/status: ${err instanceof HttpAnswer ? err.message : adminFetchError(err)}\n`);
    return 1;
  }
  const problems = (body as { problems?: unknown }).problems;
  if (!Array.isArray(problems)) {
    process.stderr.write(`sluice status: http://${address}/api/status lists no problems field (an older sluice?)\n`);
    return 1;
  }
  for (const p of problems as Problem[]) process.stdout.write(`${problemLine(p)}\n`);
  if (problems.length === 0) process.stdout.write('no problems\n');
  return problems.length === 0 ? 0 : 1;
}

/** Who the gateway is for network policy (`--gateway-*`); a string is a usage error. */
function policyOptions(values: FlagValues): PolicyOptions | string {
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
function rateLimitOptions(values: FlagValues): RateLimitOptions | string {
  const timeout = wholeNumber('redis-timeout', values['redis-timeout'] as string, 1, 1000);
  const replicas = wholeNumber('rate-limit-replicas', (values['rate-limit-replicas'] as string | undefined) ?? process.env.SLUICE_RATE_LIMIT_REPLICAS ?? '1', 1, 10000);
  const maxKeys = wholeNumber('rate-limit-max-keys', values['rate-limit-max-keys'] as string, 1, 100_000_000);
  const batchLimit = wholeNumber('redis-batch-limit', values['redis-batch-limit'] as string, 1, 4096);
  for (const v of [timeout, replicas, maxKeys, batchLimit]) if (typeof v === 'string') return v;
  // A type Sluice does not know is refused here, not logged: it would leave global rules on their failure mode.
  const typeFlag = (values['redis-type'] as string | undefined)?.trim() || undefined;
  const type = typeFlag ?? (process.env[REDIS_ENV.type]?.trim() || undefined);
  if (type !== undefined && !(REDIS_TYPES as readonly string[]).includes(type)) {
    return `${typeFlag !== undefined ? '--redis-type' : REDIS_ENV.type} ${JSON.stringify(type)}: expected ${REDIS_TYPES.join(' or ')}`;
  }
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
        type: values['redis-type'] as string | undefined,
        batchLimit: batchLimit as number,
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    // A failed startup check is one line per problem, not a stack trace.
    if (err instanceof StartupCheckFailed) {
      process.stderr.write(`${err.problems.map((p) => `sluice: ${problemLine(p)}`).join('\n')}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`sluice: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
