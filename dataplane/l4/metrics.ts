// Metrics of the byte-stream and datagram listeners (TLS passthrough/terminate, TCP, UDP), per listener.
import client, { type Registry } from 'prom-client';
import { metric } from '../metrics.ts';

/** How a connection or UDP session ended up: forwarded, or why not. */
export type L4Outcome = 'forwarded' | 'no_route' | 'no_endpoint' | 'connect_failed' | 'tls_failed' | 'policy_denied';

export type DatagramDrop = 'no_endpoint' | 'session_limit' | 'shedding' | 'backpressure' | 'backend_error';

export class L4Metrics {
  readonly connections: client.Counter<'listener' | 'protocol' | 'outcome'>;
  readonly bytes: client.Counter<'listener' | 'protocol' | 'direction'>;
  readonly sessions: client.Gauge<'listener'>;
  readonly datagrams: client.Counter<'listener' | 'direction'>;
  readonly dropped: client.Counter<'listener' | 'reason'>;
  readonly replyDropped: client.Counter<'listener'>;

  constructor(registry: Registry) {
    this.connections = metric(registry, 'sluice_l4_connections_total', (registers) =>
      new client.Counter({
        name: 'sluice_l4_connections_total',
        help: 'Connections (TCP, TLS) and UDP sessions accepted by TLS, TCP and UDP listeners, by listener, protocol and outcome (forwarded, no_route, no_endpoint, connect_failed, tls_failed, policy_denied: the endpoint port has L7 HTTP rules)',
        labelNames: ['listener', 'protocol', 'outcome'] as const,
        registers,
      }),
    );
    this.bytes = metric(registry, 'sluice_l4_bytes_total', (registers) =>
      new client.Counter({
        name: 'sluice_l4_bytes_total',
        help: 'Bytes relayed by TLS, TCP and UDP listeners, by listener, protocol and direction (from_client, to_client), counted when a connection or session ends',
        labelNames: ['listener', 'protocol', 'direction'] as const,
        registers,
      }),
    );
    this.sessions = metric(registry, 'sluice_udp_sessions', (registers) =>
      new client.Gauge({ name: 'sluice_udp_sessions', help: 'Open UDP client sessions, by listener', labelNames: ['listener'] as const, registers }),
    );
    this.datagrams = metric(registry, 'sluice_udp_datagrams_total', (registers) =>
      new client.Counter({
        name: 'sluice_udp_datagrams_total',
        help: 'Datagrams relayed by UDP listeners, by listener and direction (from_client, to_client)',
        labelNames: ['listener', 'direction'] as const,
        registers,
      }),
    );
    this.dropped = metric(registry, 'sluice_udp_datagrams_dropped_total', (registers) =>
      new client.Counter({
        name: 'sluice_udp_datagrams_dropped_total',
        help: 'Client datagrams a UDP listener dropped, by listener and reason (no_endpoint, session_limit, shedding, backpressure: too many sends to the backend queued, backend_error)',
        labelNames: ['listener', 'reason'] as const,
        registers,
      }),
    );
    this.replyDropped = metric(registry, 'sluice_udp_replies_dropped_total', (registers) =>
      new client.Counter({
        name: 'sluice_udp_replies_dropped_total',
        help: 'Backend datagrams a UDP listener did not send on to its client: the session had received more than --udp-reply-ratio times what the client sent (anti-amplification), by listener',
        labelNames: ['listener'] as const,
        registers,
      }),
    );
  }
}
