// The one status assembly: what translation decided about each object, folded with what the
// dataplanes report (acknowledged versions, sockets they could not bind, the addresses clients
// reach them on) into the statuses the admin API shows and the writer patches. Pure, and it never
// translates: an ack or an address refresh re-folds the cached translation.
import type { IR } from '../../ir/types.ts';
import type { InputSnapshot, KubeObject } from '../sources/objects.ts';
import type { ObjectStatus } from './conditions.ts';
import { foldDataplaneResult, type SocketFailure } from './dataplane-result.ts';
import { foldAcknowledgements, withDataplaneAddresses, type DataplaneAck, type GatewayAddress } from './kubernetes.ts';

/** What translation produced that status needs: the IR (sockets → listener origins) and its verdicts. */
export interface TranslationVerdicts {
  ir: IR;
  statuses: ObjectStatus[];
}

export interface DataplaneFeedback {
  /** Sockets that could not be bound by a dataplane serving `ir.version`. */
  socketFailures: SocketFailure[];
  /** Kubernetes mode: every dataplane's applied version; Programmed waits for all. Absent: applied in-process. */
  acks?: DataplaneAck[];
  /** Kubernetes mode with a dataplane Service: where clients reach it. Absent: the bind addresses. */
  service?: { name: string; addresses: GatewayAddress[] };
  /** Statuses of objects translation no longer speaks for (routes detached from our Gateways). */
  detached?: ObjectStatus[];
}

export function assembleStatuses(translation: TranslationVerdicts, feedback: DataplaneFeedback): ObjectStatus[] {
  let statuses = [...translation.statuses, ...(feedback.detached ?? [])];
  if (feedback.service) statuses = withDataplaneAddresses(statuses, feedback.service.addresses, feedback.service.name);
  if (feedback.acks) statuses = foldAcknowledgements(statuses, translation.ir.version, feedback.acks);
  return foldDataplaneResult(statuses, translation.ir, feedback.socketFailures);
}

/**
 * Routes that carry a parents entry of ours but no longer attach to any of our Gateways get
 * `parents: []` from us: the writer then removes our entries and leaves other controllers' alone.
 */
export function detachedRoutes(
  snapshot: InputSnapshot,
  computed: ObjectStatus[],
  controllerName: string,
  current: (kind: string, namespace: string | undefined, name: string) => KubeObject | undefined,
): ObjectStatus[] {
  const done = new Set(computed.map((s) => `${s.kind}/${s.namespace}/${s.name}`));
  const out: ObjectStatus[] = [];
  for (const route of [...snapshot.httpRoutes, ...snapshot.grpcRoutes, ...snapshot.tlsRoutes, ...snapshot.tcpRoutes, ...snapshot.udpRoutes]) {
    const { namespace, name } = route.metadata;
    if (done.has(`${route.kind}/${namespace}/${name}`)) continue;
    // The cached copy of this very route: its kind's status type.
    const cached = current(route.kind, namespace, name) as typeof route | undefined;
    const parents: { controllerName: string }[] = cached?.status?.parents ?? [];
    if (!parents.some((p) => p.controllerName === controllerName)) continue;
    out.push({ apiVersion: route.apiVersion, kind: route.kind, ...(namespace ? { namespace } : {}), name, status: { parents: [] } });
  }
  return out;
}
