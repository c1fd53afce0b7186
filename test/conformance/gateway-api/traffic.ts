// Runs the HTTP cases of a test: request building (placeholders, request ids,
// Host, X-Echo-Set-Header, jitter, TLS material), redirects, convergence and
// the special kinds (weightedDistribution, percentageMirror,
// backendHeaderMatchesPod, websocket, tlsConnectionFailure); L4 kinds in l4-traffic.ts.

import { randomInt, randomUUID } from 'node:crypto';
import net from 'node:net';
import type { EchoServer } from '../../support/demo/echo-server.ts';
import { canonicalHeaderName, lookupHeader } from '../lib/headers.ts';
import { runWebSocketExchanges, sendRequest, type ClientRequest, type ClientResult, type Protocol } from '../lib/http-client.ts';
import { awaitConvergence, sleep, type ConvergenceOptions } from '../lib/poll.ts';
import { runPool, runWeightedAttempts } from '../lib/distribution.ts';
import { binomialBounds } from '../lib/stats.ts';
import { captureEcho, evaluateResult, isRedirectStatus, parseLocation, type EchoCapture, type RequestFacts } from './expect.ts';
import { runL4Case } from './l4-traffic.ts';
import { runGrpcCase } from './grpc-traffic.ts';
import { isGrpcCase, isL4Case, type Expectation, type HttpCase, type MirrorExpectation, type TestCase } from './types.ts';

export interface TrafficEnv {
  testName: string;
  portOffset: number;
  requestTimeoutMs: number;
  convergence: ConvergenceOptions;
  /** Current address of a Gateway (`namespace/name`) from its status, if any. */
  gatewayAddress(ref: string): Promise<string | undefined>;
  /** Every Gateway address currently in status (to follow redirects to gateways). */
  gatewayAddresses(): Promise<Set<string>>;
  /** PEMs of a kubernetes.io/tls Secret of the manifest set. */
  secret(ref: string): { certPem: string; keyPem?: string } | undefined;
  /** One data value of a ConfigMap of the manifest set. */
  configMapValue(ref: string, key: string): string | undefined;
  /** Echo servers backing a Service. */
  servicePods(namespace: string, service: string): EchoServer[];
  verbose(line: string): void;
}

const MIRROR_WAIT_MS = 10_000;

// ---------------------------------------------------------------------------
// Request preparation
// ---------------------------------------------------------------------------

export function hostForUrl(addr: string): string {
  return net.isIPv6(addr) ? `[${addr}]` : addr;
}

/** The Host a Go client derives from `addr:port`: no port for http/80 and https/443. */
export function derivedHost(addr: string, port: number, scheme: string): string {
  const h = hostForUrl(addr);
  if ((scheme === 'http' && port === 80) || (scheme === 'https' && port === 443)) return h;
  return `${h}:${port}`;
}

export function appendQueryParam(path: string, name: string, value: string): string {
  const hashAt = path.indexOf('#');
  const base = hashAt === -1 ? path : path.slice(0, hashAt);
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${sep}${encodeURIComponent(name)}=${encodeURIComponent(value)}${hashAt === -1 ? '' : path.slice(hashAt)}`;
}

export function deepSubstitute<T>(value: T, subst: (s: string) => string): T {
  if (typeof value === 'string') return subst(value) as T;
  if (Array.isArray(value)) return value.map((v) => deepSubstitute(v, subst)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, deepSubstitute(v, subst)])) as T;
  }
  return value;
}

export interface PreparedAttempt {
  client: ClientRequest;
  facts: RequestFacts;
  expect: Expectation;
  /** Raw target sent (path plus query), as a mirror would see it. */
  sentPath: string;
  hasClientCert: boolean;
}

/** Builds one attempt: fresh placeholders and request id, Host, headers, TLS. */
export function prepareAttempt(
  c: HttpCase,
  addr: string,
  env: Pick<TrafficEnv, 'portOffset' | 'requestTimeoutMs' | 'secret'>,
  extraQuery?: { name: string; value: string },
): PreparedAttempt | { problems: string[] } {
  const values = new Map<string, string>();
  for (const key of Object.keys(c.placeholders ?? {})) {
    if (key === '{uuid}') values.set(key, randomUUID());
    else return { problems: [`unknown placeholder ${key}`] };
  }
  const subst = (s: string) => {
    let out = s;
    for (const [k, v] of values) out = out.replaceAll(k, v);
    return out;
  };
  const req = c.request;
  const expect = deepSubstitute(structuredClone(c.expect), subst);
  let path = subst(req.path);
  const addQuery = (name: string, value: string) => {
    path = appendQueryParam(path, name, value);
    if (expect.backendRequest && typeof expect.backendRequest.path === 'string') {
      expect.backendRequest.path = appendQueryParam(expect.backendRequest.path, name, value);
    }
  };
  if (c.uniqueRequestIdQueryParam) addQuery(c.uniqueRequestIdQueryParam, randomUUID());
  if (extraQuery) addQuery(extraQuery.name, extraQuery.value);

  const scheme = c.target.scheme;
  const authority = req.host ?? derivedHost(addr, c.target.port, scheme);
  const protocol: Protocol = req.protocol ?? (scheme === 'https' ? 'HTTP/1.1+TLS' : 'HTTP/1.1');
  const headers: [string, string][] = [];
  if (protocol === 'HTTP/1.1' || protocol === 'HTTP/1.1+TLS') headers.push(['Host', authority]);
  headers.push(['User-Agent', protocol === 'h2' || protocol === 'h2c-prior-knowledge' ? 'Go-http-client/2.0' : 'Go-http-client/1.1']);
  const named = new Map<string, string>();
  for (const [name, value] of Object.entries(req.headers ?? {})) {
    const canon = canonicalHeaderName(name);
    if (canon === 'Host') continue; // Go's client ignores a Host entry in the header map
    named.set(canon, subst(value));
  }
  const echoSet = Object.entries(c.echoSetResponseHeaders ?? {}).map(([k, v]) => `${k}:${subst(v)}`);
  named.set('X-Echo-Set-Header', echoSet.join(','));
  if (c.randomJitter && Math.random() < 0.5) named.set(canonicalHeaderName(c.randomJitter.header), String(randomInt(10_000)));
  for (const name of [...named.keys()].sort()) headers.push([name, named.get(name)!]);

  let tlsOpts: ClientRequest['tls'];
  let hasClientCert = false;
  if (scheme === 'https') {
    const t = req.tls;
    if (!t) return { problems: ['an https target needs request.tls'] };
    const trust = env.secret(t.trustCertificateFrom);
    if (!trust) return { problems: [`request.tls.trustCertificateFrom: Secret ${t.trustCertificateFrom} (tls.crt) not found`] };
    tlsOpts = { serverName: t.serverName, trustPem: trust.certPem };
    if (t.clientCertificateFrom) {
      const cc = env.secret(t.clientCertificateFrom);
      if (!cc?.keyPem) return { problems: [`request.tls.clientCertificateFrom: Secret ${t.clientCertificateFrom} (tls.crt + tls.key) not found`] };
      tlsOpts.certPem = cc.certPem;
      tlsOpts.keyPem = cc.keyPem;
      hasClientCert = true;
    }
  }
  const q = path.indexOf('?');
  const defaultPort = (scheme === 'http' && c.target.port === 80) || (scheme === 'https' && c.target.port === 443);
  return {
    client: {
      connectHost: addr,
      connectPort: c.target.port + env.portOffset,
      protocol,
      method: req.method ?? 'GET',
      path,
      authority,
      headers,
      tls: tlsOpts,
      timeoutMs: env.requestTimeoutMs,
    },
    facts: {
      method: req.method ?? 'GET',
      scheme,
      path: q === -1 ? path : path.slice(0, q),
      baseUrl: `${scheme}://${hostForUrl(addr)}${defaultPort ? '' : `:${c.target.port}`}`,
      secretCertPem: (ref) => env.secret(ref)?.certPem,
    },
    expect,
    sentPath: path,
    hasClientCert,
  };
}

/** Sends the request, following redirects to Gateway addresses when the case asks for it (max 10). */
async function execute(p: PreparedAttempt, c: HttpCase, env: TrafficEnv): Promise<ClientResult> {
  let client = p.client;
  let res = await sendRequest(client);
  for (let hops = 0; hops < 10; hops++) {
    if (!c.request.followRedirects || !res.ok || !isRedirectStatus(res.status)) return res;
    const location = res.headers.get('location')?.[0];
    if (!location) return res;
    const base = `${client.tls ? 'https' : 'http'}://${client.authority}`;
    let loc;
    try {
      loc = parseLocation(location, base);
    } catch {
      return res;
    }
    const known = await env.gatewayAddresses();
    if (!known.has(loc.host)) {
      env.verbose(`    not following redirect to ${location}: not a Gateway address`);
      return res;
    }
    const port = Number(loc.port || (loc.scheme === 'https' ? 443 : 80));
    if (loc.scheme === 'https' && !client.tls) {
      return { ok: false, error: `redirect to ${location}: no trusted certificate for https` };
    }
    const url = new URL(location, base);
    const method = [301, 302, 303].includes(res.status) && client.method !== 'HEAD' ? 'GET' : client.method;
    const authority = derivedHost(loc.host, port, loc.scheme);
    client = {
      ...client,
      connectHost: loc.host,
      connectPort: port + env.portOffset,
      method,
      path: `${url.pathname}${url.search}`,
      authority,
      protocol: loc.scheme === 'https' ? (client.protocol === 'h2' ? 'h2' : 'HTTP/1.1+TLS') : client.protocol === 'h2c-prior-knowledge' ? 'h2c-prior-knowledge' : 'HTTP/1.1',
      headers: client.headers.map(([k, v]) => (k === 'Host' ? [k, authority] : [k, v]) as [string, string]),
      tls: client.tls ? { ...client.tls, serverName: loc.host } : undefined,
    };
    res = await sendRequest(client);
  }
  return res;
}

function echoOf(res: ClientResult): EchoCapture | undefined {
  if (!res.ok) return undefined;
  const e = captureEcho(res.headers, res.body);
  return e === 'invalid' ? undefined : e;
}

function everyRequestMirrors(m: MirrorExpectation): boolean {
  return m.percent === null || m.percent === undefined || m.percent === 100;
}

async function mirrorProblems(mirrors: MirrorExpectation[], sentPath: string, since: number, env: TrafficEnv): Promise<string[]> {
  const out: string[] = [];
  for (const m of mirrors) {
    const pods = env.servicePods(m.namespace, m.service);
    if (pods.length === 0) {
      out.push(`mirroredTo ${m.namespace}/${m.service}: no echo pods back this Service`);
      continue;
    }
    const seen = await Promise.all(pods.map((p) => p.waitForRequest((r) => r.target === sentPath && r.at >= since, MIRROR_WAIT_MS)));
    if (!seen.some(Boolean)) out.push(`mirroredTo ${m.namespace}/${m.service}: no mirrored request for ${sentPath} within ${MIRROR_WAIT_MS / 1000} s`);
  }
  return out;
}

interface AttemptOptions {
  /** Check mirroredTo entries that apply to every request. */
  checkMirrors: boolean;
  extraQuery?: { name: string; value: string };
  /** Expectation override (e.g. without weights). */
  expect?: Expectation;
  /** Extra per-response check. */
  extra?: (echo: EchoCapture | undefined, res: ClientResult) => string[];
}

interface AttemptOutcome {
  problems: string[];
  result?: ClientResult;
  sentPath?: string;
}

async function attemptOnce(c: HttpCase, env: TrafficEnv, opts: AttemptOptions): Promise<AttemptOutcome> {
  const addr = await env.gatewayAddress(c.target.gateway);
  if (!addr) return { problems: [`Gateway ${c.target.gateway} has no address in status`] };
  const caseForAttempt = opts.expect ? { ...c, expect: opts.expect } : c;
  const p = prepareAttempt(caseForAttempt, addr, env, opts.extraQuery);
  if ('problems' in p) return { problems: p.problems };
  const since = Date.now();
  const res = await execute(p, c, env);
  const problems = evaluateResult(p.expect, res, p.facts);
  if (res.ok && p.hasClientCert && res.clientCertificateSent === false) {
    problems.push('TLS: the server did not request the client certificate (it was not presented)');
  }
  if (opts.extra) problems.push(...opts.extra(echoOf(res), res));
  if (problems.length === 0 && opts.checkMirrors && res.ok && (res.status === 200 || res.status === 204)) {
    const mirrors = (p.expect.mirroredTo ?? []).filter(everyRequestMirrors);
    problems.push(...(await mirrorProblems(mirrors, p.sentPath, since, env)));
  }
  return { problems, result: res, sentPath: p.sentPath };
}

function convergenceFailure(r: { attempts: number; elapsedMs: number; lastProblems: string[] }, env: TrafficEnv): string {
  return `${r.lastProblems.join('; ')} (not ${env.convergence.requiredSuccesses}x in a row within ${Math.round(env.convergence.budgetMs / 1000)} s, ${r.attempts} attempts)`;
}

async function converge(c: HttpCase, env: TrafficEnv, opts: AttemptOptions): Promise<string[]> {
  const r = await awaitConvergence(async () => (await attemptOnce(c, env, opts)).problems, env.convergence);
  return r.ok ? [] : [convergenceFailure(r, env)];
}

// ---------------------------------------------------------------------------
// Case kinds
// ---------------------------------------------------------------------------

/** Runs one case; returns its problems (empty = passed). */
export async function runCase(c: TestCase, env: TrafficEnv): Promise<string[]> {
  if (isGrpcCase(c)) return runGrpcCase(c, env);
  if (isL4Case(c)) return runL4Case(c, env);
  switch (c.kind) {
    case undefined:
    case 'tlsConnectionFailure':
      return converge(c, env, { checkMirrors: true });
    case 'websocket':
      return runWebSocketCase(c, env);
    case 'weightedDistribution':
      return runWeightedCase(c, env);
    case 'percentageMirror':
      return runPercentageMirrorCase(c, env);
    case 'backendHeaderMatchesPod':
      return runBackendHeaderCase(c, env);
    default:
      return [`unknown case kind ${JSON.stringify((c as { kind?: unknown }).kind)}`];
  }
}

async function runWebSocketCase(c: HttpCase, env: TrafficEnv): Promise<string[]> {
  const r = await awaitConvergence(async () => {
    const addr = await env.gatewayAddress(c.target.gateway);
    if (!addr) return [`Gateway ${c.target.gateway} has no address in status`];
    const rawUrl = String(c.request.url ?? '');
    const withAddr = rawUrl.replaceAll('<gateway-address>', 'gateway.invalid');
    if (/<[^>]*>/.test(withAddr)) return [`request.url: unknown placeholder in ${rawUrl}`];
    let url: URL;
    try {
      url = new URL(withAddr);
    } catch {
      return [`request.url: cannot parse ${rawUrl}`];
    }
    if (url.protocol !== 'ws:') return [`request.url: only ws:// is supported (got ${url.protocol})`];
    const origin = c.request.origin == null ? undefined : c.request.origin.replaceAll('<test name>', env.testName);
    if (origin && /<[^>]*>/.test(origin)) return [`request.origin: unknown placeholder in ${c.request.origin}`];
    return runWebSocketExchanges({
      connectHost: addr,
      connectPort: c.target.port + env.portOffset,
      path: `${url.pathname}${url.search}`,
      authority: c.request.host ?? derivedHost(addr, c.target.port, 'http'),
      origin,
      headers: Object.entries(c.request.headers ?? {}).map(([k, v]) => [canonicalHeaderName(k), v] as [string, string]),
      exchanges: c.expect.exchanges ?? [],
      timeoutMs: env.requestTimeoutMs,
    });
  }, env.convergence);
  return r.ok ? [] : [convergenceFailure(r, env)];
}

async function runWeightedCase(c: HttpCase, env: TrafficEnv): Promise<string[]> {
  const { weights, ...plainExpect } = c.expect;
  const plain = await converge(c, env, { checkMirrors: false, expect: plainExpect });
  if (plain.length) return plain.map((p) => `plain phase: ${p}`);
  return runWeightedAttempts(
    c.distribution,
    weights ?? {},
    async () => {
      const o = await attemptOnce(c, env, { checkMirrors: false, expect: plainExpect });
      if (o.problems.length) return { problem: o.problems.join('; ') };
      return { pod: (o.result ? echoOf(o.result)?.pod : undefined) ?? '' };
    },
    env.verbose,
  );
}

async function countMirrored(pods: EchoServer[], target: string): Promise<number> {
  // Mirrors are fire-and-forget: wait until the count stops moving (max 10 s).
  const count = () => pods.reduce((n, p) => n + p.received.filter((r) => r.target === target).length, 0);
  const deadline = Date.now() + MIRROR_WAIT_MS;
  let last = count();
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    await sleep(250);
    const n = count();
    if (n !== last) {
      last = n;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= 1500) {
      break;
    }
  }
  return last;
}

async function runPercentageMirrorCase(c: HttpCase, env: TrafficEnv): Promise<string[]> {
  const d = c.distribution ?? {};
  const n = d.batchRequests ?? 500;
  const concurrency = d.concurrency ?? 10;
  const maxBatches = d.maxBatches ?? 5;
  const k = d.toleranceStdDevs ?? 3;
  const idParam = d.requestIdPerBatch ?? 'gateway-api-conformance-request-id';
  const plain = await converge(c, env, { checkMirrors: true });
  if (plain.length) return plain.map((p) => `plain phase: ${p}`);
  const statistical = (c.expect.mirroredTo ?? []).filter((m) => !everyRequestMirrors(m));
  let last: string[] = [];
  for (let batch = 1; batch <= maxBatches; batch++) {
    const id = randomUUID();
    const outcomes = await runPool(n, concurrency, () => attemptOnce(c, env, { checkMirrors: false, extraQuery: { name: idParam, value: id } }));
    const failed = outcomes.filter((o) => o.problems.length > 0);
    if (failed.length > 0) {
      last = [`batch ${batch}: ${failed.length}/${n} responses failed, e.g. ${failed[0].problems.join('; ')}`];
      continue;
    }
    const sentPath = outcomes[0]?.sentPath ?? '';
    const problems: string[] = [];
    for (const m of statistical) {
      const pods = env.servicePods(m.namespace, m.service);
      if (pods.length === 0) {
        problems.push(`mirroredTo ${m.namespace}/${m.service}: no echo pods back this Service`);
        continue;
      }
      const got = await countMirrored(pods, sentPath);
      const p = (m.percent ?? 100) / 100;
      const b = binomialBounds(n, p, k);
      env.verbose(`    mirror batch ${batch}: ${got}/${n} mirrored to ${m.service} (accept ${b.low.toFixed(1)}..${b.high.toFixed(1)})`);
      if (got < b.low || got > b.high) {
        problems.push(`mirroredTo ${m.namespace}/${m.service}: ${got}/${n} mirrored, expected ${b.low.toFixed(1)}..${b.high.toFixed(1)} (${m.percent}%)`);
      }
    }
    if (problems.length === 0) return [];
    last = problems;
  }
  return [`mirror share out of bounds in all ${maxBatches} batches: ${last.join('; ')}`];
}

async function runBackendHeaderCase(c: HttpCase, env: TrafficEnv): Promise<string[]> {
  const header = (c.header ?? c.expect.header)!;
  const { header: _ignored, exactlyOneValue, podNameMustStartWithHeaderValue, ...expect } = c.expect;
  const total = c.repeat ?? c.distribution?.totalRequests ?? c.distribution?.requests ?? 100;
  const extra = (echo: EchoCapture | undefined, res: ClientResult): string[] => {
    if (!res.ok || !echo) return res.ok ? ['no echo reply to read the backend header from'] : [];
    const values = lookupHeader(echo.headers ?? {}, header) ?? [];
    if (values.length === 0) return [`backend did not see ${header}`];
    if (exactlyOneValue !== false && values.length !== 1) return [`backend saw ${values.length} values of ${header} (${JSON.stringify(values)}), expected exactly one`];
    if (podNameMustStartWithHeaderValue !== false && !(echo.pod ?? '').startsWith(values[0])) {
      return [`${header}: ${JSON.stringify(values[0])} is not a prefix of pod ${JSON.stringify(echo.pod)}`];
    }
    return [];
  };
  const plain = await converge(c, env, { checkMirrors: true, expect, extra });
  if (plain.length) return plain.map((p) => `plain phase: ${p}`);
  for (let i = 0; i < total; i++) {
    const o = await attemptOnce(c, env, { checkMirrors: false, expect, extra });
    if (o.problems.length) return [`request ${i + 1}/${total}: ${o.problems.join('; ')}`];
  }
  return [];
}
