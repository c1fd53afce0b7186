// Condition builders. Translation is pure, so conditions carry no
// lastTransitionTime; the status store (status/store.ts) stamps it, keeping
// the old time when type, status and reason are unchanged.

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export function condition(type: string, ok: boolean, reason: string, message: string, generation?: number): Condition {
  return {
    type,
    status: ok ? 'True' : 'False',
    reason,
    message,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
}

/** Computed status of one object, in Kubernetes shape. */
export interface ObjectStatus {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  status: Record<string, unknown>;
}
