// TCP listeners (TCPRoute): every accepted connection goes to one endpoint of the route's backends,
// picked by weight, and bytes are relayed both ways. No route, an invalid reference, a backend
// without endpoints or an endpoint port with L7 HTTP rules: the connection is closed at once. The route swaps by reference on reload;
// open connections keep their backend.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Backend, ProxyListener } from '../../ir/types.ts';
import type { ConnectionBudget } from '../front-door.ts';
import type { StreamPolicy } from '../policy/stream-policy.ts';
import type { PickerStateGeneration } from '../upstream/weighted.ts';
import { chooseEndpoint, compileBackendChoice, upstreamTls, type BackendChoice } from './backend-choice.ts';
import type { L4Metrics } from './metrics.ts';
import { StreamListener } from './stream-listener.ts';

/** `policy`: L7 HTTP policy, for TCP listeners (UDP: null, HTTP rules are TCP-only). */
export function compileProxyRoute(listener: ProxyListener, backends: Record<string, Backend>, states: PickerStateGeneration, policy: StreamPolicy | null): BackendChoice | null {
  return listener.route ? compileBackendChoice(listener.route.name, listener.route.origin, listener.route.backends, backends, states, policy) : null;
}

export class TcpProxyServer extends StreamListener {
  private route: BackendChoice | null;
  private readonly idleTimeoutMs: number;

  constructor(name: string, route: BackendChoice | null, logger: Logger, budget: ConnectionBudget, metrics: L4Metrics, idleTimeoutMs: number) {
    super(name, 'TCP', logger, budget, metrics);
    this.route = route;
    this.idleTimeoutMs = idleTimeoutMs;
  }

  update(route: BackendChoice | null): void {
    this.route = route;
  }

  protected serve(client: Socket): void {
    const route = this.route;
    const chosen = route ? chooseEndpoint(route) : null;
    if (!route || !chosen) {
      this.count(route ? 'no_endpoint' : 'no_route');
      this.logger.debug({ listener: this.name, route: route?.name }, 'tcp: no route or endpoint');
      client.destroy();
      return;
    }
    const tls = upstreamTls(chosen.backend, undefined);
    if ('refused' in tls) {
      this.count('no_endpoint');
      this.logger.warn({ listener: this.name, route: route.name, backend: chosen.backend.name, reason: tls.refused }, 'tcp: the backend TLS policy is not usable; connection closed');
      client.destroy();
      return;
    }
    if (this.refusedByPolicy(client, route, chosen)) return;
    client.pause();
    this.relay(client, chosen.endpoint, route.name, this.idleTimeoutMs, undefined, tls.tls);
  }
}
