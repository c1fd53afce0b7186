// A RouteTable rendered as plain, stable data: sockets → scopes → virtual hosts → routes, each
// with its compiled matchers, the backends (and endpoints) it may pick and the filters that run.
// It shows what compilation made of the IR (lookup order, normalized prefixes, anchored regexes,
// merged filter chains, what an invalid reference became), not the IR again. Golden files
// (test/dataplane/golden) are its main reader; it is also meant for debugging output.
//
// Key material never appears: certificates by name, secret, hash and the SNI names selecting
// them; client validation by mode and CA count.

import type { FilterChain, MirrorPlan } from '../filters/chain.ts';
import type { CorsPlan } from '../filters/cors.ts';
import { headerText, type HeaderModifierPlan } from '../filters/header-modifier.ts';
import type { RedirectPlan } from '../filters/redirect.ts';
import type { PathRewritePlan, UrlRewritePlan } from '../filters/rewrite.ts';
import type { CompiledMatch, PathMatcher, ValueMatcher } from '../router/match.ts';
import type { BackendTarget } from '../upstream/backend.ts';
import type { BackendChoice, CompiledAction, CompiledRoute, ListenerTable, RouteTable, ScopeTable, VirtualHostTable } from './route-table.ts';

/** JSON/YAML-ready description; equal tables give equal descriptions. */
export function describeRouteTable(table: RouteTable): Record<string, unknown> {
  return {
    version: table.version,
    listeners: table.listeners.map(describeListener),
    problems: table.problems.map((problem) => `${problem.subject}: ${problem.message}`),
  };
}

function describeListener(listener: ListenerTable): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: listener.name,
    address: listener.listener.address,
    port: listener.port,
    protocol: listener.protocol,
  };
  if (listener.protocol === 'HTTPS') {
    const selector = listener.certificates;
    out.tls =
      selector === null
        ? { certificates: 'none usable: the listener is not served' }
        : compact({
            certificates: selector.certificates.map((certificate) => ({
              name: certificate.name,
              secret: certificate.secret,
              hash: certificate.hash,
              hostnames: certificate.hostnames,
            })),
            // A set of pairs of different key types for the same names reads `a + b`.
            sni: selector.sniEntries().map((entry) => `${entry.pattern} → ${entry.certificates.map((certificate) => certificate.name).join(' + ')}`),
            fallback: selector.fallback.map((certificate) => certificate.name).join(' + '),
            settings: listener.tlsSettings?.settings,
            clientValidation:
              listener.clientValidation === null
                ? undefined
                : {
                    caCertificates: listener.clientValidation.caCertificates.length,
                    mode: listener.clientValidation.rejectUnauthorized ? 'AllowValidOnly' : 'AllowInsecureFallback',
                  },
          });
  }
  out.scopes = listener.scopes.entries().map((entry) => describeScope(entry.pattern, entry.value));
  return out;
}

function describeScope(pattern: string, scope: ScopeTable): Record<string, unknown> {
  return {
    host: pattern,
    name: scope.name,
    virtualHosts: scope.virtualHosts.entries().map((entry) => describeVirtualHost(entry.pattern, entry.singleLabel, entry.value)),
  };
}

function describeVirtualHost(pattern: string, singleLabel: boolean, virtualHost: VirtualHostTable): Record<string, unknown> {
  return compact({
    host: pattern,
    singleLabelWildcard: singleLabel || undefined,
    name: virtualHost.name,
    routes: virtualHost.routes.map(describeRoute),
  });
}

function describeRoute(route: CompiledRoute): Record<string, unknown> {
  return compact({
    name: route.name,
    source: route.source,
    match: describeMatch(route.match),
    cors: route.cors === null ? undefined : describeCors(route.cors),
    action: describeAction(route.action),
  });
}

function describeMatch(match: CompiledMatch): Record<string, unknown> {
  return compact({
    path: describePath(match.path),
    method: match.method ?? undefined,
    headers: match.headers.length === 0 ? undefined : match.headers.map((m) => describeValueMatch(m, true)),
    queryParams: match.queryParams.length === 0 ? undefined : match.queryParams.map((m) => describeValueMatch(m, false)),
  });
}

function describePath(path: PathMatcher): string {
  switch (path.type) {
    case 'Exact':
      return `Exact ${path.value}`;
    case 'PathPrefix':
      return `PathPrefix ${path.prefix === '' ? '/' : path.prefix}`;
    case 'RegularExpression':
      return `RegularExpression ${path.regex.source}`;
    case 'Never':
      return 'Never (invalid match)';
  }
}

function describeValueMatch(matcher: ValueMatcher, header: boolean): string {
  if (matcher.exact !== null) return `${matcher.name} = ${JSON.stringify(header ? headerText(matcher.exact) : matcher.exact)}`;
  if (matcher.regex !== null) return `${matcher.name} ~ ${matcher.regex.source}`;
  return `${matcher.name}: never (invalid match)`;
}

function describeAction(action: CompiledAction): Record<string, unknown> {
  switch (action.type) {
    case 'Forward': {
      const picker = action.picker;
      return compact({
        type: 'Forward',
        backends:
          picker === null
            ? 'none: every weight is 0 (500)'
            : picker.items.map((choice, i) => ({ weight: picker.weights[i], ...describeChoice(choice) })),
        requestTimeoutMs: action.requestTimeoutMs || undefined,
        backendTimeoutMs: action.backendTimeoutMs || undefined,
        retry: action.retry === null ? undefined : { codes: [...action.retry.codes].sort((a, b) => a - b), attempts: action.retry.attempts, backoffMs: action.retry.backoffMs },
      });
    }
    case 'Redirect':
      return compact({ type: 'Redirect', redirect: describeRedirect(action.redirect), responseHeaders: describeModifiers(action.responseModifiers) });
    case 'DirectResponse':
      return compact({
        type: 'DirectResponse',
        status: action.status,
        body: action.body === null ? undefined : action.body.toString(),
        responseHeaders: describeModifiers(action.responseModifiers),
      });
  }
}

function describeChoice(choice: BackendChoice): Record<string, unknown> {
  return compact({
    backend: choice.backend === null ? 'invalid reference (500)' : choice.backend.name,
    endpoints: choice.backend === null ? undefined : describeEndpoints(choice.backend),
    filters: describeChain(choice.filters),
  });
}

function describeEndpoints(backend: BackendTarget): string[] | string {
  return backend.endpoints.length === 0 ? 'none ready (503)' : backend.endpoints.map((endpoint) => endpoint.key);
}

/** The effective filter chain (route filters, then the backendRef's); undefined when empty. */
function describeChain(chain: FilterChain): Record<string, unknown> | undefined {
  const out = compact({
    requestHeaders: describeModifiers(chain.requestModifiers),
    responseHeaders: describeModifiers(chain.responseModifiers),
    rewrite: chain.rewrite === null ? undefined : describeRewrite(chain.rewrite),
    mirrors: chain.mirrors.length === 0 ? undefined : chain.mirrors.map(describeMirror),
    redirect: chain.redirect === null ? undefined : describeRedirect(chain.redirect),
  });
  return Object.keys(out).length === 0 ? undefined : out;
}

function describeModifiers(modifiers: readonly HeaderModifierPlan[]): Array<Record<string, unknown>> | undefined {
  if (modifiers.length === 0) return undefined;
  const pairs = (flat: readonly string[]): string[] | undefined => {
    if (flat.length === 0) return undefined;
    const out: string[] = [];
    for (let i = 0; i < flat.length; i += 2) out.push(`${flat[i]}: ${headerText(flat[i + 1]!)}`);
    return out;
  };
  return modifiers.map((modifier) =>
    compact({ remove: modifier.remove.length === 0 ? undefined : [...modifier.remove], set: pairs(modifier.set), add: pairs(modifier.add) }),
  );
}

function describeRewrite(rewrite: UrlRewritePlan): Record<string, unknown> {
  return compact({ hostname: rewrite.hostname ?? undefined, path: rewrite.path === null ? undefined : describePathRewrite(rewrite.path) });
}

function describePathRewrite(path: PathRewritePlan): string {
  return path.type === 'ReplaceFullPath'
    ? `ReplaceFullPath ${path.value}`
    : `ReplacePrefixMatch ${path.prefix === '' ? '/' : path.prefix} → ${path.replacement === '' ? '/' : path.replacement}`;
}

function describeMirror(mirror: MirrorPlan): Record<string, unknown> {
  return compact({
    backend: mirror.backend.name,
    endpoints: describeEndpoints(mirror.backend),
    percent: mirror.percent,
    requestHeaderModifiersBefore: mirror.modifiersBefore || undefined,
    rewrite: mirror.rewrite === null ? undefined : describeRewrite(mirror.rewrite),
  });
}

function describeRedirect(redirect: RedirectPlan): Record<string, unknown> {
  return compact({
    statusCode: redirect.statusCode,
    scheme: redirect.scheme ?? undefined,
    hostname: redirect.hostname ?? undefined,
    port: redirect.port ?? undefined,
    path: redirect.path === null ? undefined : describePathRewrite(redirect.path),
  });
}

function describeCors(cors: CorsPlan): Record<string, unknown> {
  const origins = cors.origins.map((origin) => `${origin.scheme}://${origin.wildcard ? '*' : ''}${origin.host}${origin.port === '' ? '' : `:${origin.port}`}`);
  return compact({
    allowOrigins: cors.anyOrigin ? ['*', ...origins] : origins,
    allowCredentials: cors.allowCredentials,
    allowMethods: cors.allowMethods ?? '* (echoes the request)',
    allowHeaders: cors.allowHeaders ?? '* (echoes the request)',
    exposeHeaders: cors.exposeHeaders === '' ? undefined : cors.exposeHeaders,
    maxAge: cors.maxAge,
  });
}

/** Drops undefined fields, so absent settings leave no noise in the output. */
function compact(object: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) if (value !== undefined) out[key] = value;
  return out;
}
