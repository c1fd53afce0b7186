// Programmed means "the dataplane serves it". Translation assumes every valid
// listener can be served; this folds in what the dataplane reported after
// applying the version (for example a port that could not be bound). Sockets
// name their listeners by origin (HTTP scopes, TLS passthrough sockets), so a
// Gateway's, a ListenerSet's and a passthrough listener fail alike.
//
// A socket whose address is on no interface of the dataplane (EADDRNOTAVAIL) is
// the Gateway's problem, not its listener's: the address leaves status.addresses
// and the Gateway is Programmed=False AddressNotUsable (the spec's reason for a
// requested address the implementation cannot use). Its listeners stay served
// while another address of the Gateway carries them.
import type { IR, Origin } from '../../ir/types.ts';
import { condition, type Condition, type ObjectStatus } from './conditions.ts';

export interface SocketFailure {
  /** The IR socket's name, `<address>:<port>` (HttpListener or PassthroughListener). */
  name: string;
  error: string;
  /** The bind error's code, when binding failed (EADDRINUSE, EADDRNOTAVAIL ...). */
  code?: string;
}

/** A dataplane's failed socket (its ack or apply result) as a failure; `dataplane` names it in the error. */
export function socketFailure(l: { name: string; error?: string; code?: string }, dataplane?: string): SocketFailure {
  const error = l.error ?? 'failed';
  return { name: l.name, error: dataplane !== undefined ? `${dataplane}: ${error}` : error, ...(l.code !== undefined ? { code: l.code } : {}) };
}

/** The bind error that says the address itself cannot be used on this host. */
const ADDRESS_NOT_USABLE = 'EADDRNOTAVAIL';

interface ListenerStatus {
  name: string;
  conditions: Condition[];
}


/** Gateway status.addresses as gatewayStatus writes them. */
type StatusAddress = { type?: string; value: string };

const LISTENER_OWNERS = new Set<string>(['Gateway', 'ListenerSet']);

export function foldDataplaneResult(statuses: ObjectStatus[], ir: IR, failures: SocketFailure[]): ObjectStatus[] {
  if (failures.length === 0) return statuses;
  const { listeners: failedListeners, addresses: unusable } = classifyFailures(ir, failures);
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
    const written = s.kind === 'Gateway' ? (s.status.addresses as StatusAddress[] | undefined) : undefined;
    const unusableHere = unusable.get(objectKey(s.namespace ?? '', s.name));
    const lost = (written ?? []).filter((a) => unusableHere?.has(a.value));
    if (!anyFailed && lost.length === 0) return s;
    const addressErrors = lost.map((a) => `${a.value} (${unusableHere!.get(a.value)})`);
    const conditions = status.conditions.map((c) => {
      if (c.type !== 'Programmed') return c;
      if (lost.length > 0) return condition('Programmed', false, 'AddressNotUsable', `the dataplane cannot use address ${addressErrors.join(', ')}`, c.observedGeneration);
      return anyServed ? c : notServed(`no listener of this ${s.kind} could be served`, c);
    });
    const addresses = written?.filter((a) => !lost.includes(a));
    return { ...s, status: { ...status, ...(addresses ? { addresses } : {}), conditions, listeners } };
  });
}

/** A socket of the IR: where it is bound and whose listeners it serves. */
interface IrSocket {
  address: string;
  origins: Origin[];
}

function socketsOf(ir: IR): Map<string, IrSocket> {
  const out = new Map<string, IrSocket>();
  for (const l of ir.http.listeners) out.set(l.name, { address: l.address, origins: l.scopes.map((scope) => scope.origin) });
  for (const p of ir.http.passthrough ?? []) out.set(p.name, { address: p.address, origins: p.origins });
  for (const p of [...(ir.http.tcp ?? []), ...(ir.http.udp ?? [])]) out.set(p.name, { address: p.address, origins: [p.origin] });
  return out;
}

/**
 * `Kind/ns/name/listener` → the error that keeps it from being served, and Gateway `ns/name` →
 * its addresses the dataplane cannot use (with the error). A listener fails on an unusable address
 * only when it fails on every socket it has (no other address serves it).
 */
function classifyFailures(ir: IR, failures: SocketFailure[]): { listeners: Map<string, string>; addresses: Map<string, Map<string, string>> } {
  const sockets = socketsOf(ir);
  const socketCount = new Map<string, number>();
  for (const socket of sockets.values()) for (const o of socket.origins) socketCount.set(originKey(o), (socketCount.get(originKey(o)) ?? 0) + 1);
  const listeners = new Map<string, string>();
  const addressFailures = new Map<string, { count: number; error: string }>();
  const addresses = new Map<string, Map<string, string>>();
  for (const f of failures) {
    const socket = sockets.get(f.name);
    for (const o of socket?.origins ?? []) {
      const key = originKey(o);
      if (f.code !== ADDRESS_NOT_USABLE) {
        listeners.set(key, f.error);
        continue;
      }
      const gateway = o.kind === 'Gateway' ? o : o.parent?.kind === 'Gateway' ? o.parent : undefined;
      if (gateway) {
        const byAddress = addresses.get(objectKey(gateway.namespace, gateway.name)) ?? new Map<string, string>();
        byAddress.set(socket!.address, f.error);
        addresses.set(objectKey(gateway.namespace, gateway.name), byAddress);
      }
      const seen = addressFailures.get(key) ?? { count: 0, error: f.error };
      seen.count++;
      addressFailures.set(key, seen);
    }
  }
  for (const [key, { count, error }] of addressFailures) {
    if (count >= (socketCount.get(key) ?? 0) && !listeners.has(key)) listeners.set(key, error);
  }
  return { listeners, addresses };
}

function originKey(o: Origin): string {
  return listenerKey(o.kind, o.namespace, o.name, o.sectionName ?? '');
}

function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function listenerKey(kind: string, namespace: string, name: string, listener: string): string {
  return `${kind}/${namespace}/${name}/${listener}`;
}

function notServed(message: string, was: Condition): Condition {
  return condition('Programmed', false, 'Invalid', message, was.observedGeneration);
}
