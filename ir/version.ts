// The IR version is a hash of its content: equal configuration, equal version.
import { createHash } from 'node:crypto';
import type { HttpIR, IR, L4IR } from './types.ts';

export function irVersion(http: HttpIR, l4: L4IR): string {
  return createHash('sha256').update(stableJson({ http, l4 })).digest('hex').slice(0, 16);
}

/** The IR with key material replaced by references: for golden files, the admin API and `sluice translate`. */
export function redactIR(ir: IR): IR {
  return {
    ...ir,
    http: {
      ...ir.http,
      listeners: ir.http.listeners.map((l) =>
        l.tls
          ? { ...l, tls: { ...l.tls, certificates: l.tls.certificates.map((c) => ({ ...c, certPem: `<redacted: ${c.secret}>`, keyPem: `<redacted: ${c.secret}>` })) } }
          : l,
      ),
    },
  };
}

/** JSON with object keys sorted, so equal content hashes equally. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v,
  );
}
