// The kernel's L3/L4 verdict (bpf/include/policy_check.h) for a TCP connection from the gateway,
// computed from ir.l4.policy in userspace. The kernel decides; this only names why a connection
// it refused failed, so a request flow can say DROPPED POLICY_DENY / DEFAULT_DENY with the rule
// instead of a bare 502. Same order as the kernel: the gateway's egress rules, then the
// destination's ingress rules; deny entries before allows; an identity with rules but without
// default deny is refused only by deny entries; audit mode turns a denial into AUDIT.

import { IDENTITY_ANY, IDENTITY_INGRESS, type L4Policy, type L4PolicyEntry } from '../../ir/types.ts';

export interface L4Decision {
  verdict: 'FORWARDED' | 'DROPPED' | 'AUDIT';
  reason?: 'POLICY_DENY' | 'DEFAULT_DENY';
  /** The rule that decided (absent for default deny). */
  rule?: number;
  direction: 'ingress' | 'egress';
}

interface DirectionFlags {
  enforce: boolean;
  rules: boolean;
  audit: boolean;
}

export class L4PolicyIndex {
  private readonly entries: readonly L4PolicyEntry[];
  private readonly flags = new Map<string, DirectionFlags>();

  constructor(policy: L4Policy) {
    this.entries = policy.entries;
    const flags = (identity: number, direction: string): DirectionFlags => {
      const key = `${direction}/${identity}`;
      let f = this.flags.get(key);
      if (f === undefined) this.flags.set(key, (f = { enforce: false, rules: false, audit: false }));
      return f;
    };
    for (const e of policy.entries) flags(e.local, e.direction).rules = true;
    for (const e of policy.enforcement) {
      for (const direction of ['ingress', 'egress'] as const) {
        const f = flags(e.identity, direction);
        f.enforce ||= e[direction];
        f.audit ||= e.audit;
      }
    }
  }

  /** The verdict for a TCP connection from the gateway to an endpoint of `identity` on `port`. */
  decide(identity: number, port: number): L4Decision {
    let decision: L4Decision = { verdict: 'FORWARDED', direction: 'ingress' };
    for (const [direction, local, remote] of [
      ['egress', IDENTITY_INGRESS, identity],
      ['ingress', identity, IDENTITY_INGRESS],
    ] as const) {
      const f = this.flags.get(`${direction}/${local}`);
      if (f === undefined || (!f.enforce && !f.rules)) continue;
      const deny = this.lookup('deny', direction, local, remote, port);
      const allow = deny === undefined ? this.lookup('allow', direction, local, remote, port) : undefined;
      if (allow !== undefined) {
        if (decision.verdict === 'FORWARDED') decision = { verdict: 'FORWARDED', rule: allow.rule, direction };
        continue;
      }
      if (deny === undefined && !f.enforce) continue; // no default deny: only deny entries refuse
      if (f.audit && decision.verdict === 'AUDIT') continue; // the first audited denial explains it
      decision = {
        verdict: f.audit ? 'AUDIT' : 'DROPPED',
        reason: deny !== undefined ? 'POLICY_DENY' : 'DEFAULT_DENY',
        ...(deny !== undefined ? { rule: deny.rule } : {}),
        direction,
      };
      if (decision.verdict === 'DROPPED') return decision;
    }
    return decision;
  }

  /** The entry for exactly this remote first, then one for any remote (the kernel's two lookups); lowest rule id. */
  private lookup(action: 'allow' | 'deny', direction: 'ingress' | 'egress', local: number, remote: number, port: number): L4PolicyEntry | undefined {
    for (const r of [remote, IDENTITY_ANY]) {
      let best: L4PolicyEntry | undefined;
      for (const e of this.entries) {
        if (e.action !== action || e.direction !== direction || e.local !== local || e.remote !== r) continue;
        if (e.protocol !== 'TCP' && e.protocol !== 'ANY') continue;
        if (e.ports && (port < e.ports.from || port > e.ports.to)) continue;
        if (best === undefined || e.rule < best.rule) best = e;
      }
      if (best !== undefined) return best;
    }
    return undefined;
  }
}
