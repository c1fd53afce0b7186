// The CLI's one table: every flag defined once (name, type, default, value name, help), every
// command listing the flags it accepts. Parsing, `--help` and the README's CLI section
// (`npm run docs:cli`) all come from here, so they cannot drift apart.
import { ACCESS_LOG_FIELDS } from '../dataplane/flows/access-log.ts';
import { parseArgs } from 'node:util';
import { DEFAULT_PIN_DIR } from '../bpf/agent/agent.ts';
import { DEFAULT_FRONT_DOOR_LIMITS as FRONT_DOOR, ESCAPED_SLASHES, HEADERS_WITH_UNDERSCORES } from '../dataplane/front-door.ts';

export const DEFAULT_CONTROLLER_NAME = 'sluice.dev/gateway-controller';
/** IngressClass spec.controller that marks a class as Sluice's. */
export const INGRESS_CONTROLLER = 'sluice.dev/ingress-controller';

export interface Flag {
  /** Long name without the dashes. */
  name: string;
  type: 'string' | 'boolean';
  /** What the value stands for in help (DIR, N, HOST:PORT); string flags only. */
  value?: string;
  short?: string;
  default?: string;
  /** Shown as "(default …)" instead of the literal default, when it needs words. */
  defaultHelp?: string;
  help: string;
}

export type FlagValues = Record<string, string | boolean | undefined>;

export interface Command {
  name: string;
  /** One line in the overview. */
  summary: string;
  /** What follows `sluice <name>` in the usage line. */
  synopsis: string;
  flags: readonly Flag[];
  /** Lines printed under the flags. */
  notes?: string;
}

// --- Flags shared by several commands ---------------------------------------------------------

const manifests: Flag = { name: 'manifests', type: 'string', value: 'DIR', help: 'folder of YAML manifests (read recursively, multi-document, watched)' };
const bindAddress: Flag = {
  name: 'bind-address', type: 'string', value: 'ADDR|CIDR', default: '127.0.0.1',
  help: 'address listeners bind to; an IPv4 CIDR such as 127.20.0.0/16 gives every Gateway its own address from that range',
};
const listenerPortOffset: Flag = {
  name: 'listener-port-offset', type: 'string', value: 'N', default: '0',
  help: 'bind listener port P at P+N, e.g. 8000 to serve port 80 on 8080',
};
const redirectPortOffset: Flag = {
  name: 'redirect-port-offset', type: 'string', value: 'N', defaultHelp: 'the --listener-port-offset',
  help: 'added to the port of a redirect Sluice derives (force-https, RequestRedirect without a port): clients connect to the offset ports, so https from port 80 served on 8080 goes to 8443. 0 when something in front maps Gateway ports to the offset ones',
};
const adminAddress: Flag = {
  name: 'admin-address', type: 'string', value: 'HOST:PORT', default: '127.0.0.1:9901',
  help: 'admin API: /healthz /readyz /metrics /api/status /api/config /ui',
};
const controllerName: Flag = { name: 'controller-name', type: 'string', value: 'NAME', default: DEFAULT_CONTROLLER_NAME, help: 'GatewayClass controllerName to serve' };
const gatewayClasses: Flag = {
  name: 'gateway-classes', type: 'string', value: 'LIST', default: 'cilium', defaultHelp: 'cilium: drop-in for Cilium',
  help: 'comma-separated GatewayClass names served whatever their controllerName, created when the folder lacks them',
};
const ingressClasses: Flag = {
  name: 'ingress-classes', type: 'string', value: 'LIST', default: 'cilium',
  help: `comma-separated Ingress class names served; IngressClasses whose spec.controller is ${INGRESS_CONTROLLER} are served too`,
};
const ingressEnforceHttps: Flag = {
  name: 'ingress-enforce-https', type: 'string', value: 'BOOL', default: 'true', defaultHelp: 'true, as Cilium',
  help: 'redirect plain HTTP to HTTPS for Ingress TLS hosts unless the Ingress says ingress.cilium.io/force-https: disabled',
};
const gatewayNamespace: Flag = {
  name: 'gateway-namespace', type: 'string', value: 'NS', defaultHelp: 'sluice-system',
  help: "namespace of the gateway's pods, for network policy peers",
};
const gatewayLabels: Flag = {
  name: 'gateway-labels', type: 'string', value: 'LIST', defaultHelp: 'app.kubernetes.io/name=sluice',
  help: "the gateway pods' labels as k=v,k=v, for network policy peers",
};
const gatewayAddresses: Flag = {
  name: 'gateway-addresses', type: 'string', value: 'LIST', defaultHelp: 'none',
  help: "source IPv4 addresses of the gateway's connections, matched against CIDR peers of ingress policy rules",
};
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
const logLevel: Flag = { name: 'log-level', type: 'string', value: 'LEVEL', default: 'info', help: LOG_LEVELS.join('|') };

/** Class, Ingress and policy flags: what every translating command shares. */
const TRANSLATION_FLAGS: readonly Flag[] = [controllerName, gatewayClasses, ingressClasses, ingressEnforceHttps, gatewayNamespace, gatewayLabels, gatewayAddresses];

const redisUrl: Flag = { name: 'redis-url', type: 'string', value: 'URL', help: 'Redis for global rate limits: redis://HOST:PORT, rediss:// for TLS (env SLUICE_REDIS_URL)' };
const redisUsername: Flag = { name: 'redis-username', type: 'string', value: 'NAME', help: 'Redis ACL user (env SLUICE_REDIS_USERNAME)' };
const redisPasswordFile: Flag = { name: 'redis-password-file', type: 'string', value: 'FILE', help: 'Redis password from a file (env SLUICE_REDIS_PASSWORD holds the password)' };
const redisTlsCa: Flag = { name: 'redis-tls-ca', type: 'string', value: 'FILE', help: 'PEM CA bundle for rediss:// (env SLUICE_REDIS_TLS_CA=FILE)' };
const redisTlsInsecure: Flag = { name: 'redis-tls-insecure', type: 'boolean', help: 'do not verify the Redis server certificate' };
const redisSecret: Flag = {
  name: 'redis-secret', type: 'string', value: 'NS/NAME',
  help: 'a Secret among the manifests with keys url, username, password, ca.crt; flags and environment variables take precedence over its keys',
};
const redisType: Flag = {
  name: 'redis-type', type: 'string', value: 'single|cluster', defaultHelp: 'single; env SLUICE_REDIS_TYPE',
  help: 'cluster: Redis Cluster, --redis-url lists seed nodes separated by commas (as Envoy ratelimit REDIS_TYPE=cluster)',
};
const redisBatchLimit: Flag = {
  name: 'redis-batch-limit', type: 'string', value: 'N', default: '256', defaultHelp: '256, 1 to 4096',
  help: 'most decisions one Redis script call takes: those that arrive while the previous call is in flight go together; 1: one call per request',
};
const redisTimeout: Flag = { name: 'redis-timeout', type: 'string', value: 'MS', default: '50', defaultHelp: '50, 1 to 1000', help: 'longest a rate-limit decision waits for Redis' };
const rateLimitReplicas: Flag = {
  name: 'rate-limit-replicas', type: 'string', value: 'N', defaultHelp: '1; env SLUICE_RATE_LIMIT_REPLICAS',
  help: 'dataplane replicas: failureMode Local gives each 1/N of a global limit',
};
const rateLimitMaxKeys: Flag = {
  name: 'rate-limit-max-keys', type: 'string', value: 'N', default: '10000',
  help: 'local token buckets kept in memory, least recently used dropped first',
};
const workers: Flag = {
  name: 'workers', type: 'string', value: 'N|auto', default: '1',
  help: "worker threads serving the listeners, each accepting on every port (SO_REUSEPORT); auto: the CPUs this process may use (affinity, cgroup CPU quota). Local rate limits, metrics and flows stay one per process",
};
const sessionKeyFile: Flag = {
  name: 'session-key-file', type: 'string', value: 'PATH', defaultHelp: 'a random key per process',
  help: 'signs session persistence tokens (HTTPRoute/GRPCRoute sessionPersistence): at least 32 bytes, read once at start. Give every replica the same file (a mounted Secret) so each honours the sessions the others started',
};
/** Rate-limit flags of the serving commands (`--redis-secret` is run's alone: it names a manifest). */
const RATE_LIMIT_FLAGS: readonly Flag[] = [redisUrl, redisType, redisUsername, redisPasswordFile, redisTlsCa, redisTlsInsecure, redisTimeout, redisBatchLimit, rateLimitReplicas, rateLimitMaxKeys];

const bpf: Flag = {
  name: 'bpf', type: 'string', value: 'auto|on|off', default: 'auto',
  defaultHelp: 'auto: used when the machine allows it — root, bpffs, cgroup v2, BTF, built objects — else the log says why once and endpoints are picked in userspace; on: refuse to start',
  help: 'eBPF socket load balancing and network policy',
};
const bpfPinDir: Flag = { name: 'bpf-pin-dir', type: 'string', value: 'DIR', default: DEFAULT_PIN_DIR, help: 'where maps and links are pinned, one per instance' };
const bpfCgroup: Flag = {
  name: 'bpf-cgroup', type: 'string', value: 'PATH', defaultHelp: "run: a cgroup it creates for itself and removes on exit; dataplane: this process's own cgroup",
  help: "cgroup v2 folder whose sockets are the gateway's: programs attach there",
};
const bpfTraceForwarded: Flag = {
  name: 'bpf-trace-forwarded', type: 'string', value: 'BOOL', default: 'true',
  help: 'record a flow for every forwarded connection, not only drops and audits',
};
const BPF_FLAGS: readonly Flag[] = [bpf, bpfPinDir, bpfCgroup, bpfTraceForwarded];

/** Flow records of the serving commands (README "Flows"). */
const FLOW_FLAGS: readonly Flag[] = [
  { name: 'request-flows', type: 'string', value: 'BOOL', default: 'true', help: 'record a flow per proxied request (drops and audits always, forwarded ones at --flow-sample-rate)' },
  { name: 'flow-sample-rate', type: 'string', value: 'R', default: '1', help: 'share of forwarded requests recorded as flows, 0 to 1' },
  { name: 'flow-buffer-size', type: 'string', value: 'N', default: '4096', help: 'flows kept for /api/flows and `sluice observe` (as Hubble\'s ring), 1 to 1000000' },
  { name: 'access-log', type: 'string', value: 'PATH|-', defaultHelp: 'off', help: 'one JSON line per recorded request flow, appended to PATH (- for stdout)' },
  { name: 'access-log-fields', type: 'string', value: 'LIST', defaultHelp: 'all', help: `the fields of each access log line, some of: ${ACCESS_LOG_FIELDS.join(', ')}` },
];

/** A front-door duration flag, its default taken from DEFAULT_FRONT_DOOR_LIMITS. */
const timeoutFlag = (name: string, defaultMs: number, help: string): Flag => ({ name, type: 'string', value: 'MS', default: String(defaultMs), help });
/** Client timeouts, connection limits and load shedding of the serving commands (README: "Front door: timeouts and limits"). */
export const FRONT_DOOR_FLAGS: readonly Flag[] = [
  timeoutFlag('request-headers-timeout', FRONT_DOOR.requestHeadersTimeoutMs, 'longest a client may take to send a request head, from its first byte (or from the connection, when it sends none): 408 and close'),
  timeoutFlag('tls-handshake-timeout', FRONT_DOOR.tlsHandshakeTimeoutMs, 'longest a TLS handshake may take from the accept, ClientHello included (TLS passthrough too)'),
  timeoutFlag('idle-timeout', FRONT_DOOR.idleTimeoutMs, 'an HTTP/1.1 keep-alive connection with no request is closed after this'),
  timeoutFlag('request-body-timeout', FRONT_DOOR.requestBodyTimeoutMs, 'longest silence while a request body is still coming: the connection is closed'),
  timeoutFlag('response-send-timeout', FRONT_DOOR.responseSendTimeoutMs, 'longest a response waits for the client to take more of it: the connection is closed (HTTP/2: the stream is reset)'),
  timeoutFlag('http2-idle-timeout', FRONT_DOOR.http2IdleTimeoutMs, 'an HTTP/2 connection with no frame either way is closed (GOAWAY) after this'),
  timeoutFlag('http2-ack-timeout', FRONT_DOOR.http2AckTimeoutMs, "longest wait for the client's SETTINGS or PING acknowledgement"),
  timeoutFlag('backend-connect-timeout', FRONT_DOOR.backendConnectTimeoutMs, 'longest wait for a connection to a backend endpoint: then 503 (TCP and TLS routes: the connection is closed)'),
  timeoutFlag('backend-idle-timeout', FRONT_DOOR.backendIdleTimeoutMs, 'longest silence from a backend while its response head or body is awaited: then 504 (a response already started is cut)'),
  timeoutFlag('stream-idle-timeout', FRONT_DOOR.streamIdleTimeoutMs, 'a TCPRoute or TLSRoute connection with no byte either way is closed after this'),
  timeoutFlag('udp-session-timeout', FRONT_DOOR.udpSessionTimeoutMs, 'a UDPRoute client session with no datagram either way ends after this (the next datagram picks a backend again)'),
  timeoutFlag('tunnel-idle-timeout', FRONT_DOOR.tunnelIdleTimeoutMs, 'an upgraded connection (WebSocket) with no byte either way is closed after this'),
  {
    name: 'max-connections-per-listener', type: 'string', value: 'N', default: String(FRONT_DOOR.maxConnectionsPerListener),
    help: 'client connections one listener holds (all --workers together); more are refused (cleartext HTTP: 503 and close)',
  },
  {
    name: 'max-udp-sessions-per-listener', type: 'string', value: 'N', default: String(FRONT_DOOR.maxUdpSessionsPerListener),
    help: 'UDP client sessions one UDP listener holds (all --workers together); datagrams from further sources are dropped (not counted among connections)',
  },
  {
    name: 'udp-reply-ratio', type: 'string', value: 'R', default: String(FRONT_DOOR.udpReplyRatio),
    help: 'a UDP session sends its client at most R times the bytes the client sent; further replies are dropped (0: no bound)',
  },
  {
    name: 'max-connections', type: 'string', value: 'N', defaultHelp: 'half of what `ulimit -n` leaves after 100, at most 20000',
    help: 'client connections all listeners (and all --workers) hold together; more are refused',
  },
  {
    name: 'shed-descriptors-percent', type: 'string', value: 'P', default: String(Math.round(FRONT_DOOR.shedDescriptorRatio * 100)),
    help: 'new connections are refused while open descriptors exceed P% of `ulimit -n` (100: never)',
  },
  {
    name: 'shed-heap-percent', type: 'string', value: 'P', default: String(Math.round(FRONT_DOOR.shedHeapRatio * 100)),
    help: 'new connections are refused while the JavaScript heap in use exceeds P% of its limit (100: never)',
  },
  {
    name: 'headers-with-underscores', type: 'string', value: HEADERS_WITH_UNDERSCORES.join('|'), default: FRONT_DOOR.headersWithUnderscores,
    help: "a request with '_' in a field name: reject (400, Envoy Gateway's default) or allow",
  },
  {
    name: 'escaped-slashes', type: 'string', value: ESCAPED_SLASHES.join('|'), default: FRONT_DOOR.escapedSlashes,
    help: "a path with %2F or %5C: redirect (307) to it unescaped (Envoy Gateway's default), reject (400), or keep (routed and forwarded as it is)",
  },
];

// --- Commands -----------------------------------------------------------------------------------

export const RUN: Command = {
  name: 'run',
  summary: 'serve traffic from a folder of Kubernetes manifests (standalone mode)',
  synopsis: '--manifests DIR [flags]',
  flags: [
    manifests, bindAddress, listenerPortOffset, redirectPortOffset, adminAddress, workers, sessionKeyFile, ...TRANSLATION_FLAGS, ...RATE_LIMIT_FLAGS, redisSecret, ...BPF_FLAGS, ...FLOW_FLAGS, ...FRONT_DOOR_FLAGS,
    {
      name: 'demo-backends', type: 'boolean',
      help: 'start echo servers for EndpointSlice endpoints on loopback and write self-signed certificates for missing TLS Secrets (the quickstart; not in the container image)',
    },
    logLevel,
  ],
};

export const TRANSLATE: Command = {
  name: 'translate',
  summary: 'print the IR and every computed status for a folder of manifests, serving nothing (exit 1 when an object is refused or a file does not read or parse)',
  synopsis: '--manifests DIR [flags]',
  // Read once: not watched, as run's is.
  flags: [{ ...manifests, help: 'folder of YAML manifests (read recursively, multi-document)' }, { name: 'output', short: 'o', type: 'string', value: 'yaml|json', default: 'yaml', help: 'output format' }, bindAddress, ...TRANSLATION_FLAGS],
};

export const STATUS: Command = {
  name: 'status',
  summary: "print a running sluice's current problems, one line each (exit 0: none, 1: some)",
  synopsis: '[--admin-address HOST:PORT]',
  flags: [{ ...adminAddress, help: "the running sluice's admin API" }],
  notes: 'each line: the file, the object and what to change; exit code 0 when there is none, 1 when there are\nsome or the admin API cannot be reached',
};

export const CONTROLLER: Command = {
  name: 'controller',
  summary: 'Kubernetes mode: watch the API server, publish IR snapshots to dataplanes, write status',
  synopsis: '[--kubeconfig FILE] [flags]   (Kubernetes mode; the Helm chart runs it)',
  flags: [
    { name: 'kubeconfig', type: 'string', value: 'FILE', defaultHelp: 'the in-cluster ServiceAccount', help: 'kubeconfig to use' },
    { name: 'snapshot-address', type: 'string', value: 'HOST:PORT', default: '0.0.0.0:18000', help: 'where dataplanes subscribe to snapshots' },
    { name: 'snapshot-token-file', type: 'string', value: 'FILE', defaultHelp: 'none required', help: 'bearer token dataplanes must present' },
    {
      name: 'leader-election-namespace', type: 'string', value: 'NS', defaultHelp: 'no election',
      help: 'elect a leader with a Lease in NS: only the leader writes status and serves snapshots, the others redirect dataplanes to it',
    },
    { name: 'leader-election-id', type: 'string', value: 'NAME', default: 'sluice-controller', help: 'the Lease name' },
    {
      name: 'leader-address', type: 'string', value: 'URL',
      help: "this replica's snapshot URL, published on the Lease for redirects (e.g. http://$(POD_IP):18000)",
    },
    { name: 'name', type: 'string', value: 'NAME', defaultHelp: '$POD_NAME or the host name', help: "this replica's identity in the Lease" },
    {
      name: 'dataplane-service', type: 'string', value: 'NS/NAME',
      help: 'the dataplane Service whose addresses Gateways and Ingresses report; listeners then bind 0.0.0.0 (the Helm chart sets it). Without it dataplanes bind --bind-address as in run, and Gateways report that address (one host)',
    },
    bindAddress, adminAddress, ...TRANSLATION_FLAGS, logLevel,
  ],
};

export const DATAPLANE: Command = {
  name: 'dataplane',
  summary: "Kubernetes mode: serve traffic from the controller's snapshots",
  synopsis: '--controller URL [flags]   (Kubernetes mode; the Helm chart runs it)',
  flags: [
    { name: 'controller', type: 'string', value: 'URL', help: "the controller's snapshot endpoint, e.g. http://sluice-controller:18000" },
    { name: 'snapshot-token-file', type: 'string', value: 'FILE', help: 'bearer token to present' },
    { name: 'name', type: 'string', value: 'NAME', defaultHelp: 'the host name', help: "this replica's name in acknowledgements" },
    adminAddress, listenerPortOffset, workers, sessionKeyFile, ...RATE_LIMIT_FLAGS, ...BPF_FLAGS, ...FLOW_FLAGS, ...FRONT_DOOR_FLAGS, logLevel,
  ],
  notes: 'listeners bind what the controller says; Redis settings come from flags and SLUICE_REDIS_* variables',
};

export const OBSERVE: Command = {
  name: 'observe',
  summary: 'print the flows of a running sluice, requests and connections (as `hubble observe` does)',
  synopsis: '[flags]',
  flags: [
    { name: 'verdict', type: 'string', value: 'FORWARDED|DROPPED|AUDIT', help: 'only flows with this verdict (a comma-separated list: any of them)' },
    { name: 'type', type: 'string', value: 'l7|l3/l4|drop', help: 'only request flows (l7), connection flows (l3/l4; also policy-verdict, trace), or drops' },
    { name: 'from-pod', type: 'string', value: '[NS/]POD', help: 'only flows from Pods whose name starts so' },
    { name: 'to-pod', type: 'string', value: '[NS/]POD', help: 'only flows to Pods whose name starts so' },
    { name: 'from-namespace', type: 'string', value: 'NS', help: 'only flows from namespace NS' },
    { name: 'to-namespace', type: 'string', value: 'NS', help: "only flows to namespace NS (the destination's or its Service's)" },
    { name: 'namespace', type: 'string', value: 'NS', help: "only flows whose source's, destination's or Service's namespace is NS" },
    { name: 'to-service', type: 'string', value: 'NS/NAME', help: 'only flows to this Service' },
    { name: 'http-status', type: 'string', value: 'CODE', help: 'only requests answered with this status (403) or class (5+)' },
    { name: 'http-method', type: 'string', value: 'METHOD', help: 'only requests with this method' },
    { name: 'http-path', type: 'string', value: 'REGEX', help: 'only requests whose path matches (RE2 syntax, unanchored, query left out)' },
    { name: 'last', type: 'string', value: 'N', defaultHelp: 'every flow kept', help: 'only the latest N flows that match' },
    { name: 'output', short: 'o', type: 'string', value: 'compact|json|table', default: 'compact', help: "output format; json is Hubble's flow JSON" },
    { name: 'follow', short: 'f', type: 'boolean', help: 'keep streaming new flows' },
    { ...adminAddress, help: "the running sluice's admin API" },
  ],
  notes: 'prints the latest flows (the node keeps --flow-buffer-size, default 4096), oldest first',
};

export const COMMANDS: readonly Command[] = [RUN, TRANSLATE, STATUS, CONTROLLER, DATAPLANE, OBSERVE];

// --- Help text ----------------------------------------------------------------------------------

const WIDTH = 106;
const HELP_COLUMN = 31;

export const OVERVIEW = [
  'Usage: sluice <command> [flags]',
  '',
  'Commands:',
  ...COMMANDS.map((c) => `  ${c.name.padEnd(12)}${c.summary}`),
  '',
  ...wrap(
    '`sluice <command> --help` (or `sluice help <command>`) lists the flags of a command; `sluice --version` prints the versions of Sluice and of the Node.js runtime. ' +
      'Exit codes: 0 done, 1 failed while running, 2 bad command line, 3 a startup check failed (sluice run: a port taken or a path unreadable, one line each).',
    0,
  ),
  '',
].join('\n');

/** Words of `text` in lines no longer than `width` after `indent` spaces. */
function wrap(text: string, indent: number, width = WIDTH): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(' ')) {
      if (line && indent + line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    lines.push(line);
  }
  return lines.map((l) => ' '.repeat(indent) + l);
}

function flagLines(flag: Flag): string[] {
  const shown = flag.defaultHelp ?? flag.default;
  // A no-break space keeps "(default" with its value when the line wraps.
  const text = shown === undefined ? flag.help : `${flag.help} (default\u00a0${shown})`;
  const head = `  ${flag.short ? `-${flag.short}, ` : ''}--${flag.name}${flag.value ? ` ${flag.value}` : ''}`;
  const body = wrap(text, HELP_COLUMN).map((line) => line.replace('\u00a0', ' '));
  if (head.length < HELP_COLUMN) return [head.padEnd(HELP_COLUMN) + body[0]!.trimStart(), ...body.slice(1)];
  return [head, ...body];
}

/** `sluice <command> --help`. */
export function commandUsage(command: Command): string {
  return [
    `Usage: sluice ${command.name} ${command.synopsis}`,
    ...wrap(command.summary, 2),
    '',
    ...command.flags.flatMap(flagLines),
    ...flagLines({ name: 'help', short: 'h', type: 'boolean', help: 'print this and exit' }),
    ...(command.notes ? ['', ...wrap(command.notes, 2)] : []),
    '',
  ].join('\n');
}

/** The README's CLI block lies between these lines. */
export const CLI_BEGIN = '<!-- cli:begin (generated by `npm run docs:cli` from cmd/cli-flags.ts) -->';
export const CLI_END = '<!-- cli:end -->';

/** The README's CLI block: the overview, then every command's usage. */
export function cliReference(): string {
  return [OVERVIEW, ...COMMANDS.map(commandUsage)].join('\n');
}

// --- Parsing ------------------------------------------------------------------------------------

export type Parsed = { values: FlagValues } | { help: true } | { error: string };

/** The flags of `command` from `args`, with defaults; foreign and unknown flags are errors. */
export function parseCommand(command: Command, args: string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; default?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const f of command.flags) {
    options[f.name] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.default !== undefined ? { default: f.default } : {}) };
  }
  const foreign = foreignFlag(command, args);
  if (foreign) return { error: foreign };
  try {
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
    if (values.help) return { help: true };
    return { values: values as FlagValues };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** "`sluice translate` does not take --redis-url (a flag of run, dataplane)", for the first such flag. */
function foreignFlag(command: Command, args: string[]): string | undefined {
  const accepted = new Set(['help', ...command.flags.map((f) => f.name)]);
  const { tokens } = parseArgs({ args, strict: false, allowPositionals: true, tokens: true });
  for (const token of tokens) {
    if (token.kind !== 'option' || accepted.has(token.name)) continue;
    const owners = COMMANDS.filter((c) => c.flags.some((f) => f.name === token.name)).map((c) => c.name);
    if (owners.length > 0) return `sluice ${command.name} does not take ${token.rawName} (a flag of ${owners.join(', ')})`;
  }
  return undefined;
}
