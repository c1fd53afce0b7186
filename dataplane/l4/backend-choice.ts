// The backend of a byte-stream or datagram route (TLSRoute, TCPRoute, UDPRoute): a backend by
// weight (smooth weighted round robin, state kept across reloads), then its endpoints in turn.
// One choice per connection (TCP, TLS) or per UDP client session.
import type { ConnectionOptions } from 'node:tls';
import type { Backend, BackendClientCertificate, Endpoint, Origin, WeightedBackend } from '../../ir/types.ts';
import type { StreamPolicy } from '../policy/stream-policy.ts';
import { backendTlsOptions } from '../upstream/tls.ts';
import { weightedPicker, type PickerStateGeneration, type SmoothWeightedPicker } from '../upstream/weighted.ts';

export interface BackendChoice {
  /** The route's IR name (logs, metrics). */
  name: string;
  /** Null entries are invalid references: their share of connections is refused. Null picker: every weight is 0. */
  picker: SmoothWeightedPicker<Backend | null> | null;
  /** Round-robin position per backend. */
  next: Map<string, number>;
  /** `<ns>/<name>` of the route (flows). */
  source: string;
  /** L7 HTTP policy on the endpoints streams go to; null: none governs any endpoint. */
  policy: StreamPolicy | null;
}

export function compileBackendChoice(name: string, origin: Origin, weighted: WeightedBackend[], backends: Record<string, Backend>, states: PickerStateGeneration, policy: StreamPolicy | null): BackendChoice {
  const candidates = weighted.map((b, i) => ({ item: b.backend ? (backends[b.backend] ?? null) : null, weight: b.weight, id: `${i}:${b.backend}` }));
  return { name, picker: weightedPicker(name, candidates, states), next: new Map(), source: `${origin.namespace}/${origin.name}`, policy };
}

/** The endpoint for a new connection or session; null when the pick is an invalid reference or a backend without endpoints. */
export function chooseEndpoint(choice: BackendChoice): { backend: Backend; endpoint: Endpoint } | null {
  const backend = choice.picker?.pick();
  if (!backend || backend.endpoints.length === 0) return null;
  const position = choice.next.get(backend.name) ?? 0;
  choice.next.set(backend.name, position + 1);
  return { backend, endpoint: backend.endpoints[position % backend.endpoints.length]! };
}

/**
 * How the gateway connects to a backend it opens the stream to (TCPRoute, TLSRoute Terminate):
 * plaintext, TLS as its BackendTLSPolicy says (no ALPN: a byte stream), or not at all when the
 * policy is not usable (never plaintext instead).
 */
export function upstreamTls(backend: Backend, client: BackendClientCertificate | undefined): { tls?: ConnectionOptions } | { refused: string } {
  if (!backend.tls) return {};
  if (backend.tls.refused !== undefined) return { refused: backend.tls.refused };
  return { tls: backendTlsOptions(backend.tls, client, []) };
}
