// Programmed means "the dataplane serves it". Translation assumes every valid
// listener can be served; this folds in what the dataplane reported after
// applying the version (for example a port that could not be bound). Sockets
// name their listeners by origin (HTTP scopes, TLS passthrough sockets), so a
// Gateway's, a ListenerSet's and a passthrough listener fail alike.
import type { IR, Origin } from '../../ir/types.ts';
import { condition, type Condition, type ObjectStatus } from './conditions.ts';

export interface SocketFailure {
  /** The IR socket's name, `<address>:<port>` (HttpListener or PassthroughListener). */
  name: string;
  error: string;
}

interface ListenerStatus {
  name: string;
  conditions: Condition[];
}

const LISTENER_OWNERS = new Set<string>(['Gateway', 'ListenerSet']);

export function foldDataplaneResult(statuses: ObjectStatus[], ir: IR, failures: SocketFailure[]): ObjectStatus[] {
  if (failures.length === 0) return statuses;
  const failedListeners = failedListenerOrigins(ir, failures);
  return statuses.map((s) => {
    if (!LISTENER_OWNERS.has(s.kind)) return s;
    const status = s.status as { conditions: Condition[]; listeners: ListenerStatus[] };
    let anyFailed = false;
    let anyServed = false;
    const listeners = status.listeners.map((l) => {
      const error = failedListeners.get(listenerKey(s.kind, s.namespace ?? '', s.name, l.name));
      if (!error) {
        if (l.conditions.some((c) => c.type === 'Programmed' && c.status === 'True')) anyServed = true;
        return l;
      }
      anyFailed = true;
      return { ...l, conditions: l.conditions.map((c) => (c.type === 'Programmed' ? notServed(`the dataplane cannot listen: ${error}`, c) : c)) };
    });
    if (!anyFailed) return s;
    const conditions = status.conditions.map((c) =>
      c.type === 'Programmed' && !anyServed ? notServed(`no listener of this ${s.kind} could be served`, c) : c,
    );
    return { ...s, status: { ...status, conditions, listeners } };
  });
}

/** `Kind/ns/name/listener` of every listener on a failed socket → the socket's error. */
function failedListenerOrigins(ir: IR, failures: SocketFailure[]): Map<string, string> {
  const originsBySocket = new Map<string, Origin[]>();
  for (const l of ir.http.listeners) originsBySocket.set(l.name, l.scopes.map((scope) => scope.origin));
  for (const p of ir.http.passthrough ?? []) originsBySocket.set(p.name, p.origins);
  const out = new Map<string, string>();
  for (const f of failures) {
    for (const o of originsBySocket.get(f.name) ?? []) out.set(listenerKey(o.kind, o.namespace, o.name, o.sectionName ?? ''), f.error);
  }
  return out;
}

function listenerKey(kind: string, namespace: string, name: string, listener: string): string {
  return `${kind}/${namespace}/${name}/${listener}`;
}

function notServed(message: string, was: Condition): Condition {
  return condition('Programmed', false, 'Invalid', message, was.observedGeneration);
}
