// The IR version is a hash of its content: equal configuration, equal version.
import { createHash } from 'node:crypto';
import { stableJson } from '../sources/manifest-folder.ts';
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
