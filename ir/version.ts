// The IR version is a hash of its content: equal configuration, equal version.
import { createHash } from 'node:crypto';
import type { HttpIR, HttpPolicy, HttpPolicyHeader, IR, L4IR } from './types.ts';

export function irVersion(http: HttpIR, l4: L4IR): string {
  return createHash('sha256').update(stableJson({ http, l4 })).digest('hex').slice(0, 16);
}

/** The IR with key material replaced by references: for golden files, the admin API and `sluice translate`. */
export function redactIR(ir: IR): IR {
  return {
    ...ir,
    http: {
      ...ir.http,
      listeners: ir.http.listeners.map((l) => {
        const redacted = l.tls ? { ...l, tls: { ...l.tls, certificates: l.tls.certificates.map(redactKeyPair) } } : l;
        return redacted.scopes.some((s) => s.backendClientCertificate)
          ? { ...redacted, scopes: redacted.scopes.map((s) => (s.backendClientCertificate ? { ...s, backendClientCertificate: redactKeyPair(s.backendClientCertificate) } : s)) }
          : redacted;
      }),
      ...(ir.http.passthrough
        ? { passthrough: ir.http.passthrough.map((p) => ({ ...p, routes: p.routes.map((r) => (r.terminate ? { ...r, terminate: { ...r.terminate, certificates: r.terminate.certificates.map(redactKeyPair) } } : r)) })) }
        : {}),
      backends: Object.fromEntries(
        Object.entries(ir.http.backends).map(([name, b]) => [
          name,
          b.tls?.caCertificates ? { ...b, tls: { ...b.tls, caCertificates: b.tls.caCertificates.map((c) => ({ ...c, pem: `<redacted: ${c.source}>` })) } } : b,
        ]),
      ),
    },
    l4: ir.l4.policy?.http ? { ...ir.l4, policy: { ...ir.l4.policy, http: ir.l4.policy.http.map(redactHttpPolicy) } } : ir.l4,
  };
}

/** Header values that came from a Secret (CiliumNetworkPolicy headerMatches) are shown as references. */
function redactHttpPolicy(policy: HttpPolicy): HttpPolicy {
  const header = <T extends HttpPolicyHeader>(h: T): T => (h.secret ? { ...h, value: `<redacted: secret/${h.secret}>` } : h);
  return {
    ...policy,
    grants: policy.grants.map((g) => (g.http ? { ...g, http: g.http.map((r) => ({ ...r, headers: r.headers.map(header), headerActions: r.headerActions.map(header) })) } : g)),
  };
}

function redactKeyPair<T extends { secret: string; certPem: string; keyPem: string }>(c: T): T {
  return { ...c, certPem: `<redacted: ${c.secret}>`, keyPem: `<redacted: ${c.secret}>` };
}

/** JSON with object keys sorted, so equal content hashes equally. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v,
  );
}
