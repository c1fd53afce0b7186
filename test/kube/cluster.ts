// A real kube-apiserver + etcd for tests, envtest style: both run as child processes on loopback
// with generated certificates, a static token file and service-account signing keys; the Gateway
// API CRDs (../shared/gateway-api-crds/v1.6.1/, the standard channel; or with `crdChannel:
// 'experimental'` the release's experimental channel, test/kube/crds-experimental/) and ours
// (crds/) are installed and Established before startTestCluster() resolves. The binaries come from test/kube/build-binaries.sh.
//
// There is no kube-controller-manager: nothing garbage-collects, namespaces never finish
// terminating, ServiceAccounts get no token Secrets (use serviceAccountToken(), the TokenRequest
// API) and Services get no EndpointSlices (tests write those themselves).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, generateKeyPairSync } from 'node:crypto';
import { accessSync, constants, existsSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

import { createCertificateAuthority, createClientCertificate, createServerCertificate, type CertificateAuthority, type CertificateBundle } from '../support/demo/certs.ts';
import { freePorts } from '../support/ports.ts';
import { requiredByEnvironment } from '../support/required.ts';
import { KubeApiError, KubeClient, type KubeCredentials, type KubeObject } from './client.ts';

export { KubeApiError, KubeClient, type KubeObject };

const ROOT = join(import.meta.dirname, '..', '..');
const BUILD_SCRIPT = join(ROOT, 'test', 'kube', 'build-binaries.sh');
/** The Gateway API release the tests install (standard channel, plus its safe-upgrades policy). */
export const GATEWAY_API_CRD_DIR = join(ROOT, '..', 'shared', 'gateway-api-crds', 'v1.6.1');
/**
 * The same release's experimental channel (config/crd/experimental at tag v1.6.1, unchanged, with
 * the upstream licence): every standard kind with its experimental fields (HTTPRoute retry, ...) and
 * versions (TCPRoute/UDPRoute/TLSRoute v1alpha2, which upstream's conformance manifests use), plus
 * XBackendTrafficPolicy and XMesh, and the same safe-upgrades policy.
 */
export const GATEWAY_API_EXPERIMENTAL_CRD_DIR = join(ROOT, 'test', 'kube', 'crds-experimental');
export const SLUICE_CRD_DIR = join(ROOT, 'crds');

// ---- binaries ------------------------------------------------------------------------------------

/** Where build-binaries.sh puts kube-apiserver, etcd and helm. */
export function kubeBinDir(): string {
  return process.env.SLUICE_KUBE_BIN ?? join(process.env.SLUICE_KUBE_CACHE ?? join(homedir(), '.cache', 'sluice', 'kube'), 'bin');
}

export type KubeBinary = 'kube-apiserver' | 'etcd' | 'helm';

/** Absolute path of a built binary (whether or not it exists). */
export function kubeBinary(name: KubeBinary): string {
  return join(kubeBinDir(), name);
}

/** The versions build-binaries.sh pins, read from the script itself. */
export function pinnedVersions(): Record<KubeBinary, string> {
  const script = readFileSync(BUILD_SCRIPT, 'utf8');
  const pin = (v: string) => new RegExp(`^${v}=(\\S+)$`, 'm').exec(script)?.[1] ?? '?';
  return { 'kube-apiserver': pin('KUBE_VERSION'), etcd: pin('ETCD_VERSION'), helm: pin('HELM_VERSION') };
}

function findGo(): string | null {
  if (process.env.GO && isExecutable(process.env.GO)) return process.env.GO;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, 'go'))) return join(dir, 'go');
  }
  return isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : null;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Why tests that need these binaries must skip, or null when they can run. Binaries are usable when
 * present and executable; when build-binaries.sh's stamp says they were built at another version
 * than the script pins now, they are stale and tests skip until the script is rerun.
 */
export function binariesSkipReason(needed: KubeBinary[] = ['kube-apiserver', 'etcd']): string | null {
  if (process.platform !== 'linux') return `kube tests run on Linux only (this is ${process.platform})`;
  const pinned = pinnedVersions();
  const missing: string[] = [];
  const stale: string[] = [];
  for (const name of needed) {
    const bin = kubeBinary(name);
    if (!isExecutable(bin)) {
      missing.push(name);
      continue;
    }
    const stamp = join(kubeBinDir(), `.${name}.stamp`);
    if (existsSync(stamp)) {
      const built = readFileSync(stamp, 'utf8').trim().split(/\s+/)[1];
      if (built && built !== pinned[name]) stale.push(`${name} (built ${built}, pinned ${pinned[name]})`);
    }
  }
  if (missing.length) {
    const go = findGo();
    const list = missing.join(', ');
    if (!go) return `Go is not installed and ${list} not built in ${kubeBinDir()} (install Go >= 1.26, then run test/kube/build-binaries.sh)`;
    return `${list} not built in ${kubeBinDir()}: run test/kube/build-binaries.sh (Go found at ${go})`;
  }
  if (stale.length) return `stale binaries in ${kubeBinDir()}: ${stale.join(', ')}; rerun test/kube/build-binaries.sh`;
  return null;
}

/** True when the environment demands the kube tests run (SLUICE_KUBE_REQUIRED=1), e.g. in CI. */
export function kubeTestsRequired(): boolean {
  return requiredByEnvironment('SLUICE_KUBE_REQUIRED');
}

// ---- the cluster --------------------------------------------------------------------------------

export interface TestUser {
  /** User name (static token file). */
  name: string;
  groups?: string[];
  uid?: string;
  /** Defaults to a random token. */
  token?: string;
}

export interface TestClusterOptions {
  /** Users besides `admin` (group system:masters) to put in the static token file. */
  users?: TestUser[];
  /** Install the Gateway API CRDs and ours (default true). */
  installCrds?: boolean;
  /** Which Gateway API channel's CRDs (default standard, what a standard install has). */
  crdChannel?: 'standard' | 'experimental';
  /** Also install ValidatingAdmissionPolicy safe-upgrades from the Gateway API release (default true). */
  installSafeUpgradesPolicy?: boolean;
  /** More directories of YAML manifests to create after the CRDs (CRDs among them are waited for). */
  extraManifestDirs?: string[];
  /** Extra kube-apiserver flags (`--name=value`), appended last so they override ours. */
  apiServerFlags?: string[];
  /** Milliseconds for etcd + kube-apiserver to become ready (default 120 s; cold start on 2 busy cores). */
  startTimeoutMs?: number;
  /** Keep the temp dir (logs, certificates, etcd data) after stop(); also SLUICE_KUBE_KEEP=1. */
  keepDir?: boolean;
}

export interface TestCluster {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** CA of the serving certificate and of client certificates (PEM). */
  readonly caPem: string;
  /** Static token of `admin` (group system:masters). */
  readonly adminToken: string;
  /** Static tokens by user name (admin and opts.users). */
  readonly tokens: Readonly<Record<string, string>>;
  /** Kubeconfig for admin (token auth). */
  readonly kubeconfigPath: string;
  /** Temp dir with certs, token file, etcd data and logs (removed by stop()). */
  readonly dir: string;
  readonly etcdUrl: string;
  /** Admin client. */
  readonly client: KubeClient;
  /** A client with other credentials (a token from `tokens`, serviceAccountToken(), a client cert). */
  clientFor(creds: KubeCredentials & { impersonate?: { user: string; groups?: string[] } }): KubeClient;
  /**
   * A token for ServiceAccount namespace/name through the TokenRequest API; creates the namespace
   * and the ServiceAccount when missing. It authenticates as system:serviceaccount:<ns>:<name>.
   */
  serviceAccountToken(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** A client certificate for any user (CN) and groups (O), signed by the cluster CA. */
  clientCertificate(user: string, groups?: string[]): Promise<CertificateBundle>;
  /** Writes a kubeconfig for some credentials (default: admin token) and returns its path. */
  writeKubeconfig(path: string, creds?: KubeCredentials, namespace?: string): string;
  /** Everything etcd and kube-apiserver wrote to their logs. */
  logs(): { etcd: string; apiserver: string };
  /** Stops only kube-apiserver (etcd keeps the data); startApiServer() brings it back on the same port. */
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  /** Kills both processes and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

// Children still running when the test process exits are killed, so a crashed test leaves nothing.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const randomToken = () => randomBytes(24).toString('hex');

function tail(path: string, bytes = 6000): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.length > bytes ? `...${text.slice(-bytes)}` : text;
  } catch {
    return '';
  }
}

async function stopChild(child: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

interface Proc {
  child: ChildProcess;
  log: string;
}

function startProcess(bin: string, args: string[], log: string): Proc {
  const fd = openSync(log, 'a');
  try {
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    track(child);
    return { child, log };
  } finally {
    closeSync(fd);
  }
}

/** Polls `probe` until it returns true; fails early when the process died. */
async function waitFor(what: string, proc: Proc, deadline: number, probe: () => Promise<boolean>): Promise<void> {
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${what} exited (${proc.child.exitCode ?? proc.child.signalCode}) before it was ready`);
    }
    try {
      if (await probe()) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready in time`);
    await sleep(200);
  }
}

function loadManifests(dir: string, filter: (file: string) => boolean = () => true): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && filter(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      if (doc.errors.length) throw new Error(`${join(dir, file)}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS();
      if (obj && typeof obj === 'object' && obj.kind) objects.push(obj as KubeObject);
    }
  }
  return objects;
}

/** A ClusterRole with `rules`, bound (a ClusterRoleBinding of the same name) to `subject`; answers the role as created (for a later replace). */
export async function grantClusterRole(client: KubeClient, name: string, rules: unknown[], subject: Record<string, string>): Promise<KubeObject> {
  const role = await client.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules });
  await client.create({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
    subjects: [subject],
  });
  return role;
}

async function createAll(client: KubeClient, objects: KubeObject[]): Promise<void> {
  for (const obj of objects) {
    try {
      await client.create(obj);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409) continue; // AlreadyExists
      throw err;
    }
  }
}

/** Waits until every CRD is Established and each served version answers a LIST. */
async function waitForCrds(client: KubeClient, crds: KubeObject[], deadline: number): Promise<void> {
  for (const crd of crds) {
    const name = crd.metadata.name;
    for (;;) {
      const got = await client.get({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name });
      const established = (got.status?.conditions ?? []).some((c: any) => c.type === 'Established' && c.status === 'True');
      if (established) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established: ${JSON.stringify(got.status?.conditions)}`);
      await sleep(100);
    }
    const { group, names, scope } = crd.spec;
    for (const v of crd.spec.versions as { name: string; served: boolean }[]) {
      if (!v.served) continue;
      const path = `/apis/${group}/${v.name}${scope === 'Namespaced' ? '/namespaces/default' : ''}/${names.plural}`;
      for (;;) {
        const r = await client.request('GET', path, { query: { limit: 1 } });
        if (r.status === 200) break;
        if (Date.now() > deadline) throw new Error(`GET ${path} still ${r.status} after CRD ${name} was Established`);
        await sleep(100);
      }
    }
  }
}

export async function startTestCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  const reason = binariesSkipReason(['kube-apiserver', 'etcd']);
  if (reason) throw new Error(`cannot start a test cluster: ${reason}`);
  const startTimeoutMs = opts.startTimeoutMs ?? 120_000;
  const deadline = Date.now() + startTimeoutMs;
  const keepDir = opts.keepDir ?? /^(1|true)$/.test(process.env.SLUICE_KUBE_KEEP ?? '');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kube-'));
  let etcd: Proc | undefined;
  let apiserver: Proc | undefined;
  let client: KubeClient | undefined;
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await client?.close().catch(() => {});
    await stopChild(apiserver?.child);
    await stopChild(etcd?.child);
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  };

  try {
    // Certificates: one CA signs the serving certificate and client certificates.
    const ca: CertificateAuthority = await createCertificateAuthority({ commonName: 'sluice-test-kube-ca' });
    const serving = await createServerCertificate(ca, {
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
      ipAddresses: ['127.0.0.1', '10.0.0.1'],
    });
    const files = {
      ca: join(dir, 'ca.crt'),
      cert: join(dir, 'apiserver.crt'),
      key: join(dir, 'apiserver.key'),
      saKey: join(dir, 'sa.key'),
      saPub: join(dir, 'sa.pub'),
      tokens: join(dir, 'tokens.csv'),
      etcdLog: join(dir, 'etcd.log'),
      apiserverLog: join(dir, 'kube-apiserver.log'),
      kubeconfig: join(dir, 'kubeconfig'),
    };
    writeFileSync(files.ca, ca.certPem);
    writeFileSync(files.cert, serving.certPem);
    writeFileSync(files.key, serving.keyPem, { mode: 0o600 });
    const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(files.saKey, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(files.saPub, sa.publicKey.export({ type: 'spki', format: 'pem' }));

    // Static tokens: token,user,uid,"group1,group2"
    const users: TestUser[] = [{ name: 'admin', uid: 'admin', groups: ['system:masters'] }, ...(opts.users ?? [])];
    const tokens: Record<string, string> = {};
    const lines: string[] = [];
    for (const u of users) {
      if (tokens[u.name]) throw new Error(`duplicate test user ${u.name}`);
      const token = u.token ?? randomToken();
      tokens[u.name] = token;
      const groups = (u.groups ?? []).join(',');
      lines.push(`${token},${u.name},${u.uid ?? u.name}${groups ? `,"${groups}"` : ''}`);
    }
    writeFileSync(files.tokens, lines.join('\n') + '\n', { mode: 0o600 });

    // etcd: plain HTTP on loopback, fsync off (tests don't need durability, it's much faster).
    let etcdUrl = '';
    for (let attempt = 1; ; attempt++) {
      const [clientPort, peerPort] = await freePorts(2);
      etcdUrl = `http://127.0.0.1:${clientPort}`;
      const peerUrl = `http://127.0.0.1:${peerPort}`;
      rmSync(join(dir, 'etcd-data'), { recursive: true, force: true });
      etcd = startProcess(kubeBinary('etcd'), [
        '--name=sluice-test',
        `--data-dir=${join(dir, 'etcd-data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=sluice-test=${peerUrl}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ], files.etcdLog);
      try {
        await waitFor('etcd', etcd, deadline, async () => {
          const r = await fetch(`${etcdUrl}/health`);
          return r.status === 200 && (await r.json()).health === 'true';
        });
        break;
      } catch (err) {
        // Another process may have taken a port between freePorts() and etcd binding it.
        if (attempt < 3 && /address already in use/.test(tail(files.etcdLog))) continue;
        throw err;
      }
    }

    const [securePort] = await freePorts(1);
    const server = `https://127.0.0.1:${securePort}`;
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${securePort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${files.cert}`,
      `--tls-private-key-file=${files.key}`,
      `--client-ca-file=${files.ca}`,
      `--token-auth-file=${files.tokens}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${files.saPub}`,
      `--service-account-signing-key-file=${files.saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      '--profiling=false',
      ...(opts.apiServerFlags ?? []),
    ];
    client = new KubeClient({ server, caPem: ca.certPem, token: tokens.admin });
    const admin = client;
    const startApiServer = async (until: number) => {
      if (apiserver && apiserver.child.exitCode === null && apiserver.child.signalCode === null) return;
      const proc = startProcess(kubeBinary('kube-apiserver'), apiserverArgs, files.apiserverLog);
      apiserver = proc;
      await waitFor('kube-apiserver', proc, until, async () => (await admin.request('GET', '/readyz')).status === 200);
    };
    await startApiServer(deadline);

    const writeKubeconfig = (path: string, creds: KubeCredentials = { token: tokens.admin }, namespace?: string) => {
      const user: Record<string, string> = {};
      if (creds.token) user.token = creds.token;
      if (creds.certPem) user['client-certificate-data'] = Buffer.from(creds.certPem).toString('base64');
      if (creds.keyPem) user['client-key-data'] = Buffer.from(creds.keyPem).toString('base64');
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'sluice-test', cluster: { server, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') } }],
        users: [{ name: 'sluice-test-user', user }],
        contexts: [{ name: 'sluice-test', context: { cluster: 'sluice-test', user: 'sluice-test-user', ...(namespace ? { namespace } : {}) } }],
        'current-context': 'sluice-test',
      };
      writeFileSync(path, stringify(config), { mode: 0o600 });
      return path;
    };
    writeKubeconfig(files.kubeconfig);

    if (opts.installCrds ?? true) {
      const gatewayApi = loadManifests(opts.crdChannel === 'experimental' ? GATEWAY_API_EXPERIMENTAL_CRD_DIR : GATEWAY_API_CRD_DIR);
      const crds = [...gatewayApi.filter((o) => o.kind === 'CustomResourceDefinition'), ...loadManifests(SLUICE_CRD_DIR)];
      await createAll(client, crds);
      await waitForCrds(client, crds, deadline);
      if (opts.installSafeUpgradesPolicy ?? true) {
        await createAll(client, gatewayApi.filter((o) => o.kind !== 'CustomResourceDefinition'));
      }
    }
    for (const extra of opts.extraManifestDirs ?? []) {
      const objects = loadManifests(extra);
      await createAll(client, objects);
      await waitForCrds(client, objects.filter((o) => o.kind === 'CustomResourceDefinition'), deadline);
    }

    const clientFor: TestCluster['clientFor'] = (creds) => admin.withCredentials(creds);
    return {
      server,
      caPem: ca.certPem,
      adminToken: tokens.admin,
      tokens,
      kubeconfigPath: files.kubeconfig,
      dir,
      etcdUrl,
      client,
      clientFor,
      async serviceAccountToken(namespace, name, expirationSeconds = 3600) {
        for (const obj of [
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
        ]) {
          try {
            await admin.create(obj);
          } catch (err) {
            if (!(err instanceof KubeApiError && err.status === 409)) throw err;
          }
        }
        const tr = await admin.call('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`, {
          body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
        });
        return tr.status.token as string;
      },
      async clientCertificate(user, groups = []) {
        if (groups.length > 1) throw new Error('clientCertificate: one group at most (use a static token for more)');
        return createClientCertificate(ca, { commonName: user, organization: groups[0] });
      },
      writeKubeconfig,
      logs: () => ({ etcd: tail(files.etcdLog, Infinity), apiserver: tail(files.apiserverLog, Infinity) }),
      stopApiServer: () => stopChild(apiserver?.child),
      startApiServer: async () => {
        try {
          await startApiServer(Date.now() + startTimeoutMs);
        } catch (err) {
          throw new Error(`${(err as Error).message}\n--- kube-apiserver log ---\n${tail(files.apiserverLog)}`);
        }
      },
      stop,
    };
  } catch (err) {
    const logs = `\n--- etcd log ---\n${tail(join(dir, 'etcd.log'), 3000)}\n--- kube-apiserver log ---\n${tail(join(dir, 'kube-apiserver.log'))}`;
    await stop();
    throw err instanceof Error ? Object.assign(err, { message: `${err.message}${logs}` }) : err;
  }
}
