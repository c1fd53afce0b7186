// Evaluation of one HTTP response against a case's `expect`, exactly as the
// suite README describes. Pure: the runner performs the request, this module
// judges it. Mirror receipts are checked by the runner (they need waiting).

import type { EchoReply } from '../../support/demo/echo-server.ts';
import type { ClientResult } from '../lib/http-client.ts';
import { joinHeaderValues, lookupHeader, stripWhitespace } from '../lib/headers.ts';
import type { Expectation } from './types.ts';

/** What an echo backend answered: its JSON reply, as far as the response carried one. */
export type EchoCapture = Partial<EchoReply>;

export interface RequestFacts {
  method: string;
  scheme: 'http' | 'https';
  /** Path part (no query) of the request target, for redirect defaults. */
  path: string;
  /** Base URL of the request as the client sees it: scheme://address[:listenerPort]. */
  baseUrl: string;
  /** tls.crt of a Secret of the manifest set (backendRequest.tls.peerCertificateFrom). */
  secretCertPem?: (ref: string) => string | undefined;
}

/** DER of every certificate in a PEM text, in order. */
export function pemCertificatesDer(pem: string): Buffer[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}

/** backendRequest.tls: the backend was reached over TLS with this SNI, and saw that client certificate. */
export function backendTlsProblems(want: { serverName: string; peerCertificateFrom?: string | null }, echo: EchoCapture, req: RequestFacts): string[] {
  const t = echo.tls;
  if (!t) return ['backendRequest.tls: the backend was reached without TLS (its reply has no "tls")'];
  const out: string[] = [];
  if (t.serverName !== want.serverName) out.push(`backendRequest.tls.serverName: expected ${show(want.serverName)}, got ${show(t.serverName)}`);
  if (want.peerCertificateFrom) {
    const pem = req.secretCertPem?.(want.peerCertificateFrom);
    const leaf = pem ? pemCertificatesDer(pem)[0] : undefined;
    if (!leaf) out.push(`backendRequest.tls.peerCertificateFrom: Secret ${want.peerCertificateFrom} has no certificate in tls.crt`);
    else if (!(t.peerCertificates ?? []).some((p) => pemCertificatesDer(p).some((der) => der.equals(leaf)))) {
      out.push(`backendRequest.tls.peerCertificateFrom: the backend did not see the certificate of ${want.peerCertificateFrom} (it saw ${(t.peerCertificates ?? []).length} client certificate(s))`);
    }
  }
  return out;
}

export const TIMEOUT_STATUSES = [408, 504];

export function isTimeoutStatus(code: number): boolean {
  return TIMEOUT_STATUSES.includes(code);
}

export function isRedirectStatus(code: number): boolean {
  return [300, 301, 302, 303, 304, 305, 307, 308].includes(code);
}

/** The echo JSON, parsed only when Content-Type is exactly application/json (as upstream). */
export function captureEcho(headers: Map<string, string[]>, body: Buffer): EchoCapture | undefined | 'invalid' {
  const ct = headers.get('content-type')?.[0];
  if (ct !== 'application/json') return undefined;
  try {
    const parsed = JSON.parse(body.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as EchoCapture) : 'invalid';
  } catch {
    return 'invalid';
  }
}

/** The status part: list membership with 408/504 equivalence, and notStatus. */
export function statusProblems(expect: Expectation, status: number): string[] {
  const out: string[] = [];
  const list = expect.status ?? null;
  if (list && list.length > 0) {
    const ok = list.includes(status) || (isTimeoutStatus(status) && list.some(isTimeoutStatus));
    if (!ok) out.push(`status: expected ${list.join(' or ')}, got ${status}`);
  }
  const not = expect.notStatus ?? null;
  if (not && not.length > 0) {
    if (isTimeoutStatus(status)) out.push(`status: got ${status} (timeout statuses count as not yet converged for notStatus)`);
    else if (not.includes(status)) out.push(`status: expected not ${not.join('/')}, got ${status}`);
  }
  return out;
}

function show(v: unknown): string {
  return v === undefined ? '(absent)' : JSON.stringify(v);
}

/**
 * Every problem of `result` against `expect` (transport outcome, status, and
 * — for 200/204 — backend, backendRequest, answeredByGateway, response; for
 * 3xx — redirect). Mirrors are not judged here.
 */
export function evaluateResult(expect: Expectation, result: ClientResult, req: RequestFacts): string[] {
  if (!result.ok) {
    if (expect.transportError === true) return [];
    return [`request failed: ${result.error}${result.code ? ` (${result.code})` : ''}`];
  }
  if (expect.transportError === true) {
    return [`expected a transport-level failure, got an HTTP ${result.status} response`];
  }
  const out = statusProblems(expect, result.status);
  const status = result.status;
  if (status === 200 || status === 204) {
    const captured = captureEcho(result.headers, result.body);
    out.push(...successProblems(expect, captured, result.headers, req));
  } else if (isRedirectStatus(status) && expect.redirect) {
    out.push(...redirectProblems(expect.redirect, result.headers.get('location')?.[0], req));
  }
  return out;
}

function successProblems(
  expect: Expectation,
  captured: EchoCapture | undefined | 'invalid',
  headers: Map<string, string[]>,
  req: RequestFacts,
): string[] {
  const out: string[] = [];
  const echo = captured === 'invalid' ? undefined : captured;
  const needsEcho = Boolean(expect.backend) || (Boolean(expect.backendRequest) && expect.answeredByGateway !== true);
  if (needsEcho && !echo) {
    out.push(captured === 'invalid' ? 'response: body is not valid echo JSON' : 'response: not an echo server reply (Content-Type is not application/json)');
  }

  if (expect.answeredByGateway === true) {
    // Upstream compares the echo path and namespace with "" (nothing echoed).
    if (echo && ((echo.path ?? '') !== '' || (echo.namespace ?? '') !== '')) {
      out.push(`answeredByGateway: the request reached backend pod ${show(echo.pod)} (namespace ${show(echo.namespace)}) instead of being answered by the gateway`);
    }
    const br = expect.backendRequest;
    if (br) {
      // Nothing was echoed, so what "arrived" is the request itself (method) and nothing else.
      if (br.method != null && br.method !== req.method) out.push(`backendRequest.method: expected ${br.method}, request was ${req.method}`);
      if (br.path != null && br.path !== '') out.push(`backendRequest.path: expected ${show(br.path)}, but nothing was echoed`);
      if (br.host != null && br.host !== '') out.push(`backendRequest.host: expected ${show(br.host)}, but nothing was echoed`);
      for (const name of Object.keys(br.headers ?? {})) out.push(`backendRequest.headers.${name}: expected, but nothing was echoed`);
    }
  } else if (echo) {
    if (expect.backend) {
      const pod = echo.pod ?? '';
      if (!pod.startsWith(expect.backend.podNamePrefix)) out.push(`backend.pod: expected prefix ${show(expect.backend.podNamePrefix)}, got ${show(echo.pod)}`);
      if ((echo.namespace ?? '') !== expect.backend.namespace) out.push(`backend.namespace: expected ${show(expect.backend.namespace)}, got ${show(echo.namespace)}`);
    }
    const br = expect.backendRequest;
    if (br) {
      if (br.path != null && br.path !== echo.path) out.push(`backendRequest.path: expected ${show(br.path)}, got ${show(echo.path)}`);
      if (br.method != null && br.method !== echo.method) out.push(`backendRequest.method: expected ${show(br.method)}, got ${show(echo.method)}`);
      if (br.host != null && br.host !== echo.host) out.push(`backendRequest.host: expected ${show(br.host)}, got ${show(echo.host)}`);
      const seen = echo.headers ?? {};
      for (const [name, value] of Object.entries(br.headers ?? {})) {
        const actual = lookupHeader(seen, name);
        if (!actual) out.push(`backendRequest.headers.${name}: expected ${show(value)}, header absent`);
        else if (joinHeaderValues(actual) !== value) out.push(`backendRequest.headers.${name}: expected ${show(value)}, got ${show(joinHeaderValues(actual))}`);
      }
      for (const name of br.absentHeaders ?? []) {
        const actual = lookupHeader(seen, name);
        if (actual) out.push(`backendRequest.absentHeaders: ${name} present with ${show(joinHeaderValues(actual))}`);
      }
      if (br.tls) out.push(...backendTlsProblems(br.tls, echo, req));
    }
  }

  const resp = expect.response;
  if (resp) {
    const norm = (s: string) => (resp.ignoreWhitespace ? stripWhitespace(s) : s);
    for (const [name, value] of Object.entries(resp.headers ?? {})) {
      const actual = headers.get(name.toLowerCase());
      if (!actual) out.push(`response.headers.${name}: expected ${show(value)}, header absent`);
      else if (norm(joinHeaderValues(actual)) !== norm(value)) out.push(`response.headers.${name}: expected ${show(value)}, got ${show(joinHeaderValues(actual))}`);
    }
    for (const [name, options] of Object.entries(resp.headersOneOf ?? {})) {
      const actual = headers.get(name.toLowerCase());
      if (!actual) out.push(`response.headersOneOf.${name}: expected one of ${show(options)}, header absent`);
      else if (!options.some((o) => norm(o) === norm(joinHeaderValues(actual)))) {
        out.push(`response.headersOneOf.${name}: expected one of ${show(options)}, got ${show(joinHeaderValues(actual))}`);
      }
    }
    for (const name of resp.absentHeaders ?? []) {
      const actual = headers.get(name.toLowerCase());
      if (actual) out.push(`response.absentHeaders: ${name} present with ${show(joinHeaderValues(actual))}`);
    }
  }
  return out;
}

export interface ParsedLocation {
  scheme: string;
  host: string;
  port: string;
  path: string;
}

/** Resolves a Location header against the request URL like Go's resp.Location(). */
export function parseLocation(location: string, baseUrl: string): ParsedLocation {
  const url = new URL(location, baseUrl);
  // WHATWG drops default ports; Go keeps an explicit one. Read it from the text.
  let port = url.port;
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(location) ?? /^\/\/([^/?#]*)/.exec(location);
  if (m) {
    const authority = m[1].replace(/^[^@]*@/, '');
    const pm = /^(?:\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
    port = pm?.[1] ?? '';
  } else if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(location)) {
    port = new URL(baseUrl).port;
  }
  let path = url.pathname;
  try {
    path = decodeURIComponent(path);
  } catch {
    // keep the escaped form
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { scheme: url.protocol.replace(/:$/, ''), host, port, path };
}

export function redirectProblems(
  exp: NonNullable<Expectation['redirect']>,
  location: string | undefined,
  req: RequestFacts,
): string[] {
  if (!location) return ['redirect: no Location header'];
  let loc: ParsedLocation;
  try {
    loc = parseLocation(location, req.baseUrl);
  } catch {
    return [`redirect: cannot parse Location ${show(location)}`];
  }
  const out: string[] = [];
  const wantScheme = exp.scheme ?? req.scheme;
  if (loc.scheme !== wantScheme) out.push(`redirect.scheme: expected ${show(wantScheme)}, got ${show(loc.scheme)} (Location ${location})`);
  if (exp.host != null && loc.host !== exp.host) out.push(`redirect.host: expected ${show(exp.host)}, got ${show(loc.host)} (Location ${location})`);
  if (exp.port == null) {
    const def = loc.scheme === 'http' ? '80' : loc.scheme === 'https' ? '443' : undefined;
    if (loc.port !== '' && loc.port !== def) out.push(`redirect.port: expected none or ${def ?? 'the scheme default'}, got ${show(loc.port)} (Location ${location})`);
  } else if (String(exp.port) !== loc.port) {
    out.push(`redirect.port: expected ${show(String(exp.port))}, got ${show(loc.port)} (Location ${location})`);
  }
  const wantPath = exp.path ?? req.path;
  if (loc.path !== wantPath) out.push(`redirect.path: expected ${show(wantPath)}, got ${show(loc.path)} (Location ${location})`);
  return out;
}
