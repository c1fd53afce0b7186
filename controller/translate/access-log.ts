// The per-Gateway access log switch: Gateway annotations, carried on every listener scope of the
// Gateway (and of ListenerSets attached to it) as `ListenerScope.accessLog`.
//
//   sluice.dev/access-log: "true" | "false"   this Gateway's requests are logged (to --access-log's
//                                             sink, stdout without it), or not even with the flag
//   sluice.dev/access-log-fields: LIST        the fields of its lines (some of ACCESS_LOG_FIELDS)
//
// Annotations rather than infrastructure.parametersRef: Envoy Gateway's switch (EnvoyProxy
// telemetry.accessLog, referenced by parametersRef) needs a Sluice CRD for two values; a Gateway
// annotation is read with the Gateway, needs no other object, watch or ReferenceGrant, and follows
// the annotations Sluice already reads (sluice.dev/policy-audit-mode). A value Sluice cannot read is
// a problem line naming the Gateway and annotation; the flag then decides, as without it.

import { ACCESS_LOG_FIELDS } from '../../ir/flow.ts';
import type { AccessLogSetting, HttpIR } from '../../ir/types.ts';
import type { GatewayState } from './gateway.ts';

export const ACCESS_LOG_ANNOTATION = 'sluice.dev/access-log';
export const ACCESS_LOG_FIELDS_ANNOTATION = 'sluice.dev/access-log-fields';

/** Sets `accessLog` on the scopes of Gateways that carry the annotations; the problems found. */
export function applyAccessLog(http: HttpIR, gateways: GatewayState[]): string[] {
  const problems: string[] = [];
  const settings = new Map<string, AccessLogSetting>();
  for (const g of gateways) {
    if (g.obj.kind !== 'Gateway') continue;
    const setting = gatewaySetting(g.key, g.obj.metadata.annotations ?? {}, problems);
    if (setting !== null) settings.set(g.key, setting);
  }
  if (settings.size === 0) return problems;
  for (const listener of http.listeners) {
    for (const scope of listener.scopes) {
      const gateway = scope.origin.kind === 'ListenerSet' ? scope.origin.parent : scope.origin;
      if (gateway?.kind !== 'Gateway') continue;
      const setting = settings.get(`${gateway.namespace}/${gateway.name}`);
      if (setting !== undefined) scope.accessLog = setting;
    }
  }
  return problems;
}

function gatewaySetting(key: string, annotations: Record<string, string>, problems: string[]): AccessLogSetting | null {
  const on = annotations[ACCESS_LOG_ANNOTATION];
  const list = annotations[ACCESS_LOG_FIELDS_ANNOTATION];
  if (on === undefined && list === undefined) return null;
  const where = `Gateway ${key}: annotation`;
  let enabled: boolean | undefined;
  if (on === 'true' || on === 'false') enabled = on === 'true';
  else if (on !== undefined) problems.push(`${where} ${ACCESS_LOG_ANNOTATION}: ${JSON.stringify(on)} is not "true" or "false"; --access-log decides for this Gateway`);
  let fields: string[] | undefined;
  if (list !== undefined) {
    const names = list.split(',').map((f) => f.trim()).filter((f) => f !== '');
    const unknown = names.filter((f) => !(ACCESS_LOG_FIELDS as readonly string[]).includes(f));
    if (unknown.length > 0 || names.length === 0) {
      problems.push(`${where} ${ACCESS_LOG_FIELDS_ANNOTATION}: ${unknown.length > 0 ? `unknown field(s) ${unknown.join(', ')}` : 'no field'} (expected some of ${ACCESS_LOG_FIELDS.join(', ')}); the fields of --access-log-fields are used`);
    } else fields = names;
  }
  if (enabled === undefined && fields === undefined) return null;
  // Fields alone: they shape this Gateway's lines when the flag logs them.
  return { ...(enabled !== undefined ? { enabled } : {}), ...(fields ? { fields } : {}) };
}
