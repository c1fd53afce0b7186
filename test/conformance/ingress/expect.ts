// Judging one response (after redirects) against an Ingress case's `expect`,
// exactly as FORMAT.md describes. Pure: the runner performs the requests, this
// module decides. Every problem carries the expect key it belongs to, so that
// `asserted` (the keys upstream really checks) can be honoured on request.

import net from 'node:net';
import type { ClientResult, PeerCertificateInfo } from '../lib/http-client.ts';
import { goMatchHostname } from '../lib/http-client.ts';
import type { EchoReply } from '../../support/demo/echo-server.ts';
import { lookupHeader } from '../lib/headers.ts';
import type { HttpExpectation, IngressCase, ServiceSpec } from './types.ts';

/** What an echo backend answered: its JSON reply, as far as the response carried one. */
export type EchoCapture = Partial<EchoReply>;

export interface Problem {
  /** The expect key the problem belongs to. */
  key: string;
  message: string;
}

/** What the runner observed for one request (after following redirects). */
export interface Observation {
  result: ClientResult;
  /** Echo pods of the group that received a request while this one was in flight. */
  podsReached: string[];
}

export interface EvaluationContext {
  /** The Service (from the group's `services`) whose echo pod this is. */
  serviceOfPod(pod: string): ServiceSpec | undefined;
}

/**
 * Like the upstream client: the body is parsed only if it is a JSON object;
 * otherwise nothing was captured. An echo reply carries a pod, namespace or service.
 */
export function captureEcho(body: Buffer): EchoCapture | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const e = parsed as EchoCapture;
  const hasIdentity = [e.pod, e.namespace, e.service].some((v) => typeof v === 'string' && v !== '');
  return hasIdentity ? e : undefined;
}

function show(v: unknown): string {
  return v === undefined ? '(absent)' : JSON.stringify(v);
}

function describeResponse(result: ClientResult): string {
  if (!result.ok) return `request failed: ${result.error}${result.code ? ` (${result.code})` : ''}`;
  const ct = result.headers.get('content-type')?.[0];
  const body = result.body.toString('utf8').slice(0, 80).replace(/\s+/g, ' ');
  return `HTTP ${result.status}${ct ? ` ${ct}` : ''}${body ? ` body ${JSON.stringify(body)}` : ''}`;
}

/** `*` = present with any value; otherwise one of the values must equal it. */
export function headerProblem(values: string[] | undefined, want: string): string | undefined {
  if (!values || values.length === 0) return 'absent';
  if (want === '*') return undefined;
  return values.includes(want) ? undefined : `got ${values.map((v) => JSON.stringify(v)).join(', ')}`;
}

/** Go's Certificate.VerifyHostname (SANs only; IP literals against IP SANs). */
export function certificateValidForHost(cert: PeerCertificateInfo, host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (net.isIP(bare)) return cert.ipAddresses.includes(bare);
  return cert.dnsNames.some((p) => goMatchHostname(p, bare));
}

export interface LocationParts {
  scheme: string;
  host: string;
  /** Explicit port in the Location ('' when none). */
  port: string;
  path: string;
  /** Query without '?'. */
  query: string;
}

/** Splits a Location header (resolved against `base` when relative). */
export function parseLocationParts(location: string, base: string): LocationParts {
  const url = new URL(location, base);
  return {
    scheme: url.protocol.replace(/:$/, ''),
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port,
    path: url.pathname,
    query: url.search.replace(/^\?/, ''),
  };
}

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' };

/** Problems of a (non-followed) redirect's Location against `redirect` components; a default port is ignored. */
export function redirectProblems(want: NonNullable<HttpExpectation['redirect']>, location: string | undefined, base: string): string[] {
  if (location === undefined) return ['no Location header'];
  let loc: LocationParts;
  try {
    loc = parseLocationParts(location, base);
  } catch {
    return [`cannot parse Location ${JSON.stringify(location)}`];
  }
  const out: string[] = [];
  const ctx = ` (Location ${location})`;
  if (want.scheme !== undefined && loc.scheme !== want.scheme) out.push(`scheme: expected ${show(want.scheme)}, got ${show(loc.scheme)}${ctx}`);
  if (want.host !== undefined && loc.host.toLowerCase() !== want.host.toLowerCase()) out.push(`host: expected ${show(want.host)}, got ${show(loc.host)}${ctx}`);
  // WHATWG URL already drops a port equal to the scheme's default.
  if (loc.port !== '' && loc.port !== DEFAULT_PORTS[loc.scheme]) out.push(`port: expected the default port of ${loc.scheme}, got ${loc.port}${ctx}`);
  if (want.path !== undefined && loc.path !== want.path) out.push(`path: expected ${show(want.path)}, got ${show(loc.path)}${ctx}`);
  if (want.query !== undefined && loc.query !== want.query) out.push(`query: expected ${show(want.query)}, got ${show(loc.query)}${ctx}`);
  return out;
}

/**
 * Every problem of one observation against an http expectation (all keys but
 * distinctPods). `base` is the URL of the final request (to resolve a relative Location).
 */
export function evaluateHttp(expect: HttpExpectation, obs: Observation, ctx: EvaluationContext, base: string): Problem[] {
  const out: Problem[] = [];
  const p = (key: string, message: string) => out.push({ key, message: `${key}: ${message}` });
  const res = obs.result;
  if (!res.ok) {
    p('status', `expected ${expect.status}, ${describeResponse(res)}`);
    return out;
  }
  if (res.status !== expect.status) p('status', `expected ${expect.status}, got ${describeResponse(res)}`);
  const echo = captureEcho(res.body);
  const noEcho = () => `no echo backend answered (${describeResponse(res)})`;
  const needEcho = (key: string, check: (e: EchoCapture) => string | undefined) => {
    if (!echo) p(key, noEcho());
    else {
      const problem = check(echo);
      if (problem) p(key, problem);
    }
  };
  const field = (key: string, want: string | undefined, got: (e: EchoCapture) => unknown) => {
    if (want === undefined) return;
    needEcho(key, (e) => (got(e) === want ? undefined : `expected ${show(want)}, got ${show(got(e))}`));
  };

  if (expect.backendService === null) {
    if (echo) p('backendService', `expected no echo backend to answer, but pod ${show(echo.pod)} of service ${show(echo.service)} did`);
    else if (obs.podsReached.length) p('backendService', `expected no echo backend to be reached, but ${obs.podsReached.join(', ')} received the request`);
  } else if (expect.backendService !== undefined) {
    field('backendService', expect.backendService, (e) => e.service);
  }

  if (expect.servicePort) {
    const want = expect.servicePort;
    needEcho('servicePort', (e) => {
      const svc = ctx.serviceOfPod(e.pod ?? '');
      if (!svc) return `pod ${show(e.pod)} is not an echo pod of this group`;
      const ports = svc.ports.filter((sp) => String(sp.targetPort) === e.httpPort);
      if (ports.length === 0) return `the echo pod answered on port ${show(e.httpPort)}, which no port of Service ${svc.name} targets`;
      if (ports.length > 1) {
        return `cannot tell which port of Service ${svc.name} was used: ports ${ports.map((sp) => sp.port).join(', ')} all target ${e.httpPort}`;
      }
      const got = ports[0];
      const wantText = `${want.number}${want.name !== undefined ? ` (${want.name})` : ''}`;
      const gotText = `${got.port}${got.name !== undefined ? ` (${got.name})` : ''}`;
      if (got.port !== want.number || (want.name !== undefined && got.name !== want.name)) return `expected Service port ${wantText}, the request came through port ${gotText}`;
      return undefined;
    });
  }

  field('backendPath', expect.backendPath, (e) => e.path);
  field('backendHost', expect.backendHost, (e) => e.host);
  field('backendMethod', expect.backendMethod, (e) => e.method);
  field('backendProto', expect.backendProto, (e) => e.proto);
  if (expect.backendHeaders) {
    needEcho('backendHeaders', (e) => {
      const problems = Object.entries(expect.backendHeaders!).flatMap(([name, want]) => {
        const problem = headerProblem(lookupHeader(e.headers ?? {}, name), want);
        return problem ? [`${name} expected ${show(want)}, ${problem}`] : [];
      });
      return problems.length ? problems.join(', ') : undefined;
    });
  }

  if (expect.responseProto !== undefined && res.httpVersion !== expect.responseProto) {
    p('responseProto', `expected ${show(expect.responseProto)}, got ${show(res.httpVersion)}`);
  }
  if (expect.responseHeaders) {
    const problems = Object.entries(expect.responseHeaders).flatMap(([name, want]) => {
      const problem = headerProblem(res.headers.get(name.toLowerCase()), want);
      return problem ? [`${name} expected ${show(want)}, ${problem}`] : [];
    });
    if (problems.length) p('responseHeaders', problems.join(', '));
  }

  if (expect.tls) {
    const cert = res.peerCertificate;
    if (!cert) p('tls', 'the final response did not come over TLS');
    else {
      const t = expect.tls;
      if (t.leafCertFirstDnsName !== undefined && cert.dnsNames[0] !== t.leafCertFirstDnsName) {
        p('tls', `leafCertFirstDnsName expected ${show(t.leafCertFirstDnsName)}, got ${show(cert.dnsNames[0])} (SANs ${cert.dnsNames.join(', ') || 'none'})`);
      }
      if (t.leafCertValidForHost !== undefined && !certificateValidForHost(cert, t.leafCertValidForHost)) {
        p('tls', `leafCertValidForHost: the certificate (SANs ${cert.dnsNames.join(', ') || 'none'}) is not valid for ${show(t.leafCertValidForHost)}`);
      }
    }
  }

  if (expect.redirect) {
    for (const m of redirectProblems(expect.redirect, res.headers.get('location')?.[0], base)) p('redirect', m);
  }
  return out;
}

/** The expect keys that can fail a case: `asserted` when given and `assertedOnly`, else every key. */
export function bindingKeys(c: IngressCase, assertedOnly: boolean): Set<string> {
  if (assertedOnly && c.asserted) return new Set(c.asserted);
  return new Set(Object.keys(c.expect));
}

/** Splits problems into binding ones and notes (keys not in `asserted`, under --asserted-only). */
export function splitProblems(problems: Problem[], binding: Set<string>): { failures: string[]; notes: string[] } {
  const failures: string[] = [];
  const notes: string[] = [];
  for (const pr of problems) (binding.has(pr.key) ? failures : notes).push(pr.message);
  return { failures, notes };
}

/** Distinct `pod` values of the echo replies among `bodies`. */
export function distinctPods(bodies: Buffer[]): Set<string> {
  const pods = new Set<string>();
  for (const b of bodies) {
    const pod = captureEcho(b)?.pod;
    if (pod) pods.add(pod);
  }
  return pods;
}

/** Addresses (ip or hostname) in an Ingress's status.loadBalancer.ingress. */
export function loadBalancerAddresses(item: unknown): string[] {
  const list = (item as { status?: { loadBalancer?: { ingress?: unknown } } } | undefined)?.status?.loadBalancer?.ingress;
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const e of list) {
    const v = (e as { ip?: unknown; hostname?: unknown })?.ip || (e as { hostname?: unknown })?.hostname;
    if (typeof v === 'string' && v !== '') out.push(v);
  }
  return out;
}
