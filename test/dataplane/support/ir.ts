// Hand-written HttpIR fixtures: small builders so each test states only what it is about.

import type {
  Backend,
  Endpoint,
  Filter,
  ForwardAction,
  HeaderModifier,
  HttpIR,
  HttpListener,
  ListenerScope,
  ListenerTls,
  PathMatch,
  Route,
  RouteAction,
  RouteMatch,
  VirtualHost,
  WeightedBackend,
} from '../../../ir/types.ts';

export const prefix = (value: string): PathMatch => ({ type: 'PathPrefix', value });
export const exact = (value: string): PathMatch => ({ type: 'Exact', value });
export const regex = (value: string): PathMatch => ({ type: 'RegularExpression', value });

export function route(name: string, match: Partial<RouteMatch>, action: RouteAction, filters: Filter[] = []): Route {
  return {
    name: `httproute/default/${name}/rule/0/match/0`,
    source: `default/${name}`,
    origin: { kind: 'HTTPRoute', namespace: 'default', name, ruleIndex: 0 },
    match: { path: match.path ?? prefix('/'), headers: match.headers ?? [], queryParams: match.queryParams ?? [], ...(match.method ? { method: match.method } : {}) },
    filters,
    action,
  };
}

export function weighted(backend: string | null, weight = 1, filters: Filter[] = []): WeightedBackend {
  return { backend, weight, filters };
}

export function forwardTo(...backends: Array<string | WeightedBackend>): ForwardAction {
  return { type: 'Forward', backends: backends.map((b) => (typeof b === 'string' ? weighted(b) : b)) };
}

export function backend(name: string, endpoints: Endpoint[]): Backend {
  return { name, appProtocol: 'http', endpoints };
}

export function requestHeaders(modifier: Partial<HeaderModifier>): Filter {
  return { type: 'RequestHeaderModifier', modifier: { set: [], add: [], remove: [], ...modifier } };
}

export function responseHeaders(modifier: Partial<HeaderModifier>): Filter {
  return { type: 'ResponseHeaderModifier', modifier: { set: [], add: [], remove: [], ...modifier } };
}

export function vhost(scopeName: string, hostname: string, routes: Route[]): VirtualHost {
  return { name: `${scopeName}/host/${hostname}`, hostname, routes };
}

export function scope(listenerName: string, hostname: string | null, virtualHosts: Array<[hostname: string, routes: Route[]]>): ListenerScope {
  const name = `gateway/default/gw/listener/${listenerName}`;
  return { name, origin: { kind: 'Gateway', namespace: 'default', name: 'gw', sectionName: listenerName }, hostname, virtualHosts: virtualHosts.map(([host, routes]) => vhost(name, host, routes)) };
}

export function listener(
  port: number,
  scopes: ListenerScope[],
  options: { address?: string; protocol?: 'HTTP' | 'HTTPS'; tls?: ListenerTls } = {},
): HttpListener {
  const address = options.address ?? '127.0.0.1';
  return {
    name: `${address}:${port}`,
    address,
    port,
    protocol: options.protocol ?? 'HTTP',
    ...(options.tls ? { tls: options.tls } : {}),
    scopes,
  };
}

/** One HTTP listener, one scope without hostname, one virtual host `*` with these routes. */
export function singleHostIR(port: number, routes: Route[], backends: Backend[] = []): HttpIR {
  return {
    listeners: [listener(port, [scope('http', null, [['*', routes]])])],
    backends: Object.fromEntries(backends.map((b) => [b.name, b])),
  };
}
