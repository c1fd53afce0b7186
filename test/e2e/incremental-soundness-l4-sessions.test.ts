// Incremental soundness sequences (issue #14) for what the other two files leave out: a UDPRoute
// (its backend, the backendRef port, weights, its listeners and their port) answered over real UDP by which
// backend, and session persistence (cookie and header, names, absolute timeout and cookie lifetime,
// the path, weights under a session) where a session must stick. As in incremental-soundness.test.ts,
// each edit is compared with a fresh `sluice run` on the same folder, for one worker and --workers 2.
import { expect } from '@jest/globals';
import dgram from 'node:dgram';
import type { EchoServer } from '../support/demo/echo-server.ts';
import {
  describeScenarios,
  echo,
  gateway,
  gatewayClass,
  GW,
  HTTP_ALL,
  meta,
  routeCondition,
  service,
  type ListenerSpec,
  type Scenario,
} from './incremental-harness.ts';

/** A UDP backend answering every datagram with its pod name (as echo-basic's UDP mode does). */
interface UdpPod {
  port: number;
  close(): Promise<void>;
}

async function udpPod(pod: string): Promise<UdpPod> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (_msg, from) => socket.send(JSON.stringify({ pod, namespace: 'default' }), from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, close: () => new Promise<void>((resolve) => socket.close(() => resolve())) };
}

let red: UdpPod;
let yellow: UdpPod;
let blue: EchoServer;
let green: EchoServer;

const udpListener = (port: number, name = 'udp'): ListenerSpec => ({ name, port, protocol: 'UDP' });

/** A Service with a UDP port `port` whose endpoint is `pod`. */
const udpService = (name: string, pod: UdpPod, port = 80) => [
  { apiVersion: 'v1', kind: 'Service', metadata: meta(name, 'default'), spec: { ports: [{ name: 'dns', port, protocol: 'UDP' }] } },
  {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: meta(`${name}-1`, 'default', { labels: { 'kubernetes.io/service-name': name } }),
    addressType: 'IPv4',
    ports: [{ name: 'dns', port: pod.port, protocol: 'UDP' }],
    endpoints: [{ addresses: ['127.0.0.1'] }],
  },
];

const udpRoute = (backends: [name: string, port: number, weight?: number][]) => ({
  apiVersion: `${GW}/v1alpha2`,
  kind: 'UDPRoute',
  metadata: meta('dns', 'default'),
  spec: { parentRefs: [{ name: 'gw', sectionName: 'udp' }, { name: 'gw', sectionName: 'alt' }], rules: [{ backendRefs: backends.map(([name, port, weight]) => ({ name, port, ...(weight === undefined ? {} : { weight }) })) }] },
});

/** HTTPRoute shop: s.example.com `path` split 1:1 (or `weights`) over blue and green, with `persistence` when given. */
const sticky = (persistence?: object, path = '/app', weights: [number, number] = [1, 1]) => ({
  apiVersion: `${GW}/v1`,
  kind: 'HTTPRoute',
  metadata: meta('shop', 'default'),
  spec: {
    parentRefs: [{ name: 'gw' }],
    hostnames: ['s.example.com'],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: path } }],
        backendRefs: [
          { name: 'blue', port: 80, weight: weights[0] },
          { name: 'green', port: 80, weight: weights[1] },
        ],
        ...(persistence ? { sessionPersistence: persistence } : {}),
      },
    ],
  },
});

const STAYS = 'the session stays on its backend';

function scenarios(): Scenario[] {
  /** UDP listeners udp (8080) and alt (443) unless `listeners` says otherwise. */
  const udpBase = (yellowPort = 80, listeners = [udpListener(8080), udpListener(443, 'alt')]) => [gatewayClass(), gateway([HTTP_ALL, ...listeners]), ...udpService('red', red), ...udpService('yellow', yellow, yellowPort)];
  const httpBase = [gatewayClass(), gateway([HTTP_ALL]), ...service('blue', blue), ...service('green', green)];
  const udpProbe = (port: 443 | 8080) => ({ scheme: 'udp' as const, port, host: '', path: '' });
  return [
    {
      name: 'a UDPRoute: backend, backendRef port, weights, listeners and their port',
      files: { 'base.yaml': udpBase(), 'udp.yaml': [udpRoute([['red', 80]])] },
      probes: { udp: udpProbe(8080), moved: udpProbe(443) },
      steps: [
        { what: 'the UDPRoute goes to yellow', files: { 'udp.yaml': [udpRoute([['yellow', 80]])] }, expect: (o) => expect([o.answers.udp!.backend, o.answers.moved!.backend]).toEqual(['yellow', 'yellow']) },
        { what: 'both backends, all weight to yellow', files: { 'udp.yaml': [udpRoute([['red', 80, 0], ['yellow', 80, 1]])] }, expect: (o) => expect(o.answers.udp!.backend).toBe('yellow') },
        { what: 'the weights turned: all to red', files: { 'udp.yaml': [udpRoute([['red', 80, 1], ['yellow', 80, 0]])] }, expect: (o) => expect(o.answers.udp!.backend).toBe('red') },
        {
          what: "yellow's Service port becomes 81 (the route still names 80)",
          files: { 'base.yaml': udpBase(81) },
          expect: (o) => expect([routeCondition(o, 'UDPRoute', 'dns', 'ResolvedRefs'), o.answers.udp!.backend]).toEqual(['False BackendNotFound', 'red']),
        },
        { what: 'the route follows (port 81), all weight to yellow', files: { 'udp.yaml': [udpRoute([['red', 80, 0], ['yellow', 81, 1]])] }, expect: (o) => expect(o.answers.udp!.backend).toBe('yellow') },
        { what: 'the alt listener (443) removed', files: { 'base.yaml': udpBase(81, [udpListener(8080)]) }, expect: (o) => expect([o.answers.udp!.backend, o.answers.moved!.backend]).toEqual(['yellow', null]) },
        {
          what: 'the udp listener moves from 8080 to 443',
          files: { 'base.yaml': udpBase(81, [udpListener(443)]) },
          expect: (o) => expect([o.answers.udp!.backend, o.answers.moved!.backend]).toEqual([null, 'yellow']),
        },
        { what: 'the UDPRoute is deleted', files: { 'udp.yaml': null }, expect: (o) => expect(o.answers.moved!.backend).toBeNull() },
      ],
    },
    {
      name: 'session persistence: cookie and header, names, timeouts, path and weights',
      files: { 'base.yaml': httpBase, 'route.yaml': [sticky()] },
      probes: { session: { scheme: 'session', port: 80, host: 's.example.com', path: '/app/cart/1' } },
      steps: [
        {
          what: 'a cookie session named sid',
          files: { 'route.yaml': [sticky({ sessionName: 'sid' })] },
          expect: (o) => expect([o.answers.session!.backend, o.answers.session!.headers['set-cookie']]).toEqual([STAYS, 'sid=<token>; Path=/app; HttpOnly; SameSite=Strict']),
        },
        {
          what: 'a Permanent cookie, absoluteTimeout 1h',
          files: { 'route.yaml': [sticky({ sessionName: 'sid', absoluteTimeout: '1h', cookieConfig: { lifetimeType: 'Permanent' } })] },
          expect: (o) => expect(o.answers.session!.headers['set-cookie']).toMatch(/Max-Age=3600/),
        },
        {
          what: 'absoluteTimeout 2h',
          files: { 'route.yaml': [sticky({ sessionName: 'sid', absoluteTimeout: '2h', cookieConfig: { lifetimeType: 'Permanent' } })] },
          expect: (o) => expect(o.answers.session!.headers['set-cookie']).toMatch(/Max-Age=7200/),
        },
        {
          what: 'the match path becomes /app/cart',
          files: { 'route.yaml': [sticky({ sessionName: 'sid', absoluteTimeout: '2h', cookieConfig: { lifetimeType: 'Permanent' } }, '/app/cart')] },
          expect: (o) => expect(o.answers.session!.headers['set-cookie']).toMatch(/Path=\/app\/cart;/),
        },
        {
          what: 'back to a Session cookie',
          files: { 'route.yaml': [sticky({ sessionName: 'sid', absoluteTimeout: '2h' }, '/app/cart')] },
          expect: (o) => expect([o.answers.session!.backend, o.answers.session!.headers['set-cookie']]).toEqual([STAYS, 'sid=<token>; Path=/app/cart; HttpOnly; SameSite=Strict']),
        },
        {
          what: 'a header session, X-Session',
          files: { 'route.yaml': [sticky({ type: 'Header', sessionName: 'X-Session' })] },
          expect: (o) => expect([o.answers.session!.backend, o.answers.session!.headers['x-session'], o.answers.session!.headers['set-cookie']]).toEqual([STAYS, '<token>', undefined]),
        },
        {
          what: 'the header name removed (one generated for the rule)',
          files: { 'route.yaml': [sticky({ type: 'Header' })] },
          expect: (o) => expect([o.answers.session!.backend, Object.entries(o.answers.session!.headers).filter(([, v]) => v === '<token>').map(([k]) => k.replace(/[0-9a-f]{12}$/, 'HASH'))]).toEqual([STAYS, ['sluice-session-HASH']]),
        },
        {
          what: 'all weight to green: a session still sticks',
          files: { 'route.yaml': [sticky({ type: 'Header' }, '/app', [0, 1])] },
          expect: (o) => expect(o.answers.session!.backend).toBe(STAYS),
        },
        {
          what: 'absoluteTimeout 0s (refused)',
          files: { 'route.yaml': [sticky({ type: 'Header', absoluteTimeout: '0s' })] },
          expect: (o) => expect(routeCondition(o, 'HTTPRoute', 'shop', 'Accepted')).toBe('False UnsupportedValue'),
        },
        {
          what: 'session persistence removed',
          files: { 'route.yaml': [sticky()] },
          expect: (o) => expect(o.answers.session!.backend).toBe('no session token'),
        },
      ],
    },
  ];
}

describeScenarios(
  'incremental pipeline against a fresh process, after each edit (UDPRoute, session persistence)',
  ['a UDPRoute: backend, backendRef port, weights, listeners and their port', 'session persistence: cookie and header, names, timeouts, path and weights'],
  async () => {
    [red, yellow] = await Promise.all([udpPod('red'), udpPod('yellow')]);
    [blue, green] = await Promise.all([echo('blue'), echo('green')]);
    return async () => {
      await Promise.all([red, yellow, blue, green].map((b) => b.close()));
    };
  },
  scenarios,
);
