// One flow record per proxied request (type L7): who asked, which route and endpoint answered,
// what L7 policy said, the status and how long it took. Drops and audits are always recorded;
// forwarded requests are sampled (`sampleRate`), so the cost on the hot path stays one small
// object per request and, for the sampled ones, one more pushed into the ring.

import type { Flow, FlowDropReason, FlowPeer, FlowVerdict } from '../../ir/flow.ts';
import { IDENTITY_WORLD, type L4IR } from '../../ir/types.ts';
import { HttpPolicyIndex, type L7Decision } from '../policy/http-policy.ts';
import type { FlowBuffer } from './flow-buffer.ts';

export interface RequestFlowOptions {
  buffer: FlowBuffer;
  /** Share of FORWARDED requests recorded, 0–1; drops and audits are always recorded. */
  sampleRate: number;
  /** Called with every recorded flow after it is pushed (metrics, access log); absent: none. */
  onFlow?: (flow: Flow) => void;
}

/** Names for the numbers a request meets, from one IR version: identities, rules, Services. */
export class FlowNames {
  private readonly identities = new Map<number, { labels: string[]; namespace?: string }>();
  private readonly rules = new Map<number, string>();
  private readonly services = new Map<string, { namespace: string; name: string; port: number }>();
  /** Endpoint address → `<ns>/<name>` of its Pod. */
  private readonly pods = new Map<string, string>();
  private readonly index: HttpPolicyIndex | null;

  constructor(l4: L4IR | undefined) {
    for (const i of l4?.policy?.identities ?? []) this.identities.set(i.id, { labels: i.labels, ...(i.namespace ? { namespace: i.namespace } : {}) });
    for (const r of l4?.policy?.rules ?? []) this.rules.set(r.id, r.name);
    for (const e of l4?.policy?.ipcache ?? []) if (e.pod) this.pods.set(e.cidr.slice(0, e.cidr.indexOf('/')), e.pod);
    for (const s of l4?.services ?? []) this.services.set(s.name, { namespace: s.origin.namespace, name: s.origin.name, port: s.port });
    this.index = l4?.policy ? new HttpPolicyIndex(l4.policy) : null;
  }

  peer(ip: string, port: number, identity?: number): FlowPeer {
    const id = identity ?? this.index?.identityOf(ip) ?? IDENTITY_WORLD;
    const known = this.identities.get(id);
    const pod = this.pods.get(ip);
    return { ip, port, identity: id, ...(known?.namespace ? { namespace: known.namespace } : {}), labels: known?.labels ?? (id === IDENTITY_WORLD ? ['reserved:world'] : []), ...(pod ? { pod } : {}) };
  }

  rule(id: number): { id: number; name: string } {
    return { id, name: this.rules.get(id) ?? `rule ${id}` };
  }

  service(backend: string): { namespace: string; name: string; port: number } | undefined {
    return this.services.get(backend);
  }
}

/** The recorder of one route table (its version's names). */
export class RequestFlows {
  private readonly options: RequestFlowOptions;
  readonly names: FlowNames;

  constructor(options: RequestFlowOptions, names: FlowNames) {
    this.options = options;
    this.names = names;
  }

  begin(clientIp: string | undefined, clientPort: number | undefined, method: string, path: string, host: string, httpVersion: string, startedAt: number): RequestFlow {
    return new RequestFlow(this, clientIp ?? '', clientPort ?? 0, method, path, host, httpVersion, startedAt);
  }

  /** Sampling and the push: FORWARDED flows at `sampleRate`, everything else always. */
  keep(flow: RequestFlow, verdict: FlowVerdict): boolean {
    const rate = this.options.sampleRate;
    return verdict !== 'FORWARDED' || rate >= 1 || (rate > 0 && Math.random() < rate);
  }

  push(flow: Flow): void {
    this.options.buffer.push(flow);
    this.options.onFlow?.(flow);
  }
}

/** One request on its way; `finish` records it (once). */
export class RequestFlow {
  private readonly recorder: RequestFlows;
  private readonly clientIp: string;
  private readonly clientPort: number;
  private readonly method: string;
  private readonly path: string;
  private readonly host: string;
  private readonly httpVersion: string;
  private readonly startedAt: number;
  private readonly wallClock = Date.now();
  route: { name: string; source: string } | null = null;
  backend: string | null = null;
  endpoint: { address: string; port: number; identity?: number } | null = null;
  decision: L7Decision | null = null;
  private done = false;

  constructor(recorder: RequestFlows, clientIp: string, clientPort: number, method: string, path: string, host: string, httpVersion: string, startedAt: number) {
    this.recorder = recorder;
    this.clientIp = clientIp.startsWith('::ffff:') ? clientIp.slice(7) : clientIp;
    this.clientPort = clientPort;
    this.method = method;
    this.path = path;
    this.host = host;
    this.httpVersion = httpVersion;
    this.startedAt = startedAt;
  }

  /** The answer the client got. The verdict is L7 policy's unless a drop reason says otherwise. */
  finish(status: number, dropReason?: FlowDropReason): void {
    if (this.done) return;
    this.done = true;
    const decision = this.decision;
    const verdict: FlowVerdict = dropReason !== undefined ? 'DROPPED' : (decision?.verdict ?? 'FORWARDED');
    if (!this.recorder.keep(this, verdict)) return;
    const names = this.recorder.names;
    const service = this.backend !== null ? names.service(this.backend) : undefined;
    const reason = dropReason ?? (decision !== null && decision.verdict !== 'FORWARDED' ? 'POLICY_L7' : undefined);
    const firstRule = decision?.rules[0];
    const flow: Flow = {
      time: new Date(this.wallClock).toISOString(),
      type: 'L7',
      verdict,
      ...(reason ? { dropReason: reason } : {}),
      direction: decision?.direction ?? 'ingress',
      protocol: 'TCP',
      source: names.peer(this.clientIp, this.clientPort, IDENTITY_WORLD),
      destination: this.endpoint !== null ? names.peer(this.endpoint.address, this.endpoint.port, this.endpoint.identity) : { ip: '', port: 0, identity: 0, labels: [] },
      ...(service ? { service } : {}),
      ...(firstRule !== undefined ? { rule: names.rule(firstRule) } : {}),
      ...(this.route !== null ? { route: this.route } : {}),
      l7: {
        method: this.method,
        path: this.path,
        host: this.host,
        protocol: this.httpVersion === '2.0' ? 'HTTP/2' : `HTTP/${this.httpVersion}`,
        status,
        latencyMs: Math.round((performance.now() - this.startedAt) * 1000) / 1000,
      },
    };
    this.recorder.push(flow);
  }
}
