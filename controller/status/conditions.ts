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

/** The CRDs' bound on a condition's message (metav1.Condition): a longer one fails the whole status write. */
export const MAX_CONDITION_MESSAGE = 32768;
const CUT = ' … (cut to the condition message bound)';

export function condition(type: string, ok: boolean, reason: string, message: string, generation?: number): Condition {
  return {
    type,
    status: ok ? 'True' : 'False',
    reason,
    // A message made of many names or a dataplane's error text can outgrow the bound: cut, not refused.
    message: message.length <= MAX_CONDITION_MESSAGE ? message : message.slice(0, MAX_CONDITION_MESSAGE - CUT.length) + CUT,
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
