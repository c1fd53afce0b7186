// Programmed means "the dataplane serves it". Translation assumes every valid
// listener can be served; this folds in what the dataplane reported after
// applying the version (for example a port that could not be bound).
import type { IR } from '../../ir/types.ts';
import { condition, type Condition, type ObjectStatus } from './conditions.ts';

export interface SocketFailure {
  /** HttpListener name, `<address>:<port>`. */
  name: string;
  error: string;
}

export function foldDataplaneResult(statuses: ObjectStatus[], ir: IR, failures: SocketFailure[]): ObjectStatus[] {
  if (failures.length === 0) return statuses;
  // scope name `gateway/<ns>/<name>/listener/<listener>` → the socket error
  const failedScopes = new Map<string, string>();
  for (const f of failures) {
    const socket = ir.http.listeners.find((l) => l.name === f.name);
    for (const scope of socket?.scopes ?? []) failedScopes.set(scope.name, f.error);
  }
  return statuses.map((s) => {
    if (s.kind !== 'Gateway') return s;
    const status = s.status as { conditions: Condition[]; listeners: { name: string; conditions: Condition[] }[] };
    let anyFailed = false;
    let anyServed = false;
    const listeners = status.listeners.map((l) => {
      const error = failedScopes.get(`gateway/${s.namespace}/${s.name}/listener/${l.name}`);
      const programmed = l.conditions.find((c) => c.type === 'Programmed');
      if (!error) {
        if (programmed?.status === 'True') anyServed = true;
        return l;
      }
      anyFailed = true;
      return {
        ...l,
        conditions: l.conditions.map((c) =>
          c.type === 'Programmed' ? condition('Programmed', false, 'Invalid', `the dataplane cannot listen: ${error}`, c.observedGeneration) : c,
        ),
      };
    });
    if (!anyFailed) return s;
    const conditions = status.conditions.map((c) =>
      c.type === 'Programmed' && !anyServed ? condition('Programmed', false, 'Invalid', 'no listener of this Gateway could be served', c.observedGeneration) : c,
    );
    return { ...s, status: { ...status, conditions, listeners } };
  });
}
