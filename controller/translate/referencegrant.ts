// ReferenceGrant: a reference across namespaces is allowed only when a grant in
// the target's namespace names the referrer's group, kind and namespace, and
// the target's group, kind and (if given) name.
import type { ReferenceGrantObject } from '../sources/objects.ts';
import type { ReferenceGrantFrom, ReferenceGrantTo } from '../schema/kinds.ts';

export interface ReferenceFrom {
  group: string;
  kind: string;
  namespace: string;
}

export interface ReferenceTo {
  group: string;
  kind: string;
  namespace: string;
  name: string;
}

export function isReferenceAllowed(grants: ReferenceGrantObject[], from: ReferenceFrom, to: ReferenceTo): boolean {
  if (from.namespace === to.namespace) return true;
  return grants.some(
    (grant) =>
      grant.metadata.namespace === to.namespace &&
      (grant.spec?.from ?? []).some(
        (f: ReferenceGrantFrom) => (f?.group ?? '') === from.group && f?.kind === from.kind && f?.namespace === from.namespace,
      ) &&
      (grant.spec?.to ?? []).some(
        (t: ReferenceGrantTo) => (t?.group ?? '') === to.group && t?.kind === to.kind && (t?.name === undefined || t?.name === '' || t.name === to.name),
      ),
  );
}
