// Which Ingresses Sluice serves by class, and the one case where nobody does and the user must hear
// why: no class named and no IngressClass marked default (SLU_INGRESS_NO_CLASS, once per object).
import { describe, expect, it } from '@jest/globals';
import type { V1IngressSpec } from '@kubernetes/client-node';
import { emptySnapshot, type IngressClassObject, type IngressObject } from '../../controller/sources/objects.ts';
import { translate } from '../../controller/translate/translate.ts';

const NET = 'networking.k8s.io/v1';
const options = {
  controllerName: 'sluice.dev/gateway-controller',
  bindAddress: '127.0.0.1',
  servedClassNames: [],
  ingress: { classNames: ['cilium'], controllers: ['sluice.dev/ingress-controller'], enforceHttps: true },
};

const ingress = (name: string, spec: V1IngressSpec = {}, annotations?: Record<string, string>): IngressObject => ({
  apiVersion: NET,
  kind: 'Ingress',
  metadata: { name, namespace: 'shop', ...(annotations ? { annotations } : {}) },
  spec: { ...spec, defaultBackend: { service: { name: 'web', port: { number: 80 } } } },
});

const ingressClass = (name: string, controller: string, isDefault: boolean): IngressClassObject => ({
  apiVersion: NET,
  kind: 'IngressClass',
  metadata: { name, ...(isDefault ? { annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } } : {}) },
  spec: { controller },
});

function run(ingresses: IngressObject[], classes: IngressClassObject[] = []) {
  const s = emptySnapshot();
  s.ingresses.push(...ingresses);
  s.ingressClasses.push(...classes);
  const result = translate(s, options);
  return {
    served: result.statuses.filter((st) => st.kind === 'Ingress').map((st) => st.name),
    noClass: result.problems.filter((p) => p.code === 'SLU_INGRESS_NO_CLASS'),
  };
}

describe('Ingress class', () => {
  it('a class-less Ingress with no default IngressClass: skipped, with one problem naming it and the class to set', () => {
    const { served, noClass } = run([ingress('plain'), ingress('mine', { ingressClassName: 'cilium' })]);
    expect(served).toEqual(['mine']);
    expect(noClass).toEqual([
      {
        code: 'SLU_INGRESS_NO_CLASS',
        object: 'Ingress shop/plain',
        message:
          'Ingress shop/plain names no class and no IngressClass is marked default, so no controller serves it; set spec.ingressClassName: cilium (or mark an IngressClass of Sluice\'s default with ingressclass.kubernetes.io/is-default-class: "true")',
      },
    ]);
  });

  it('a class-less Ingress goes to the default IngressClass: served when it is ours, silent when it is another controller\'s', () => {
    expect(run([ingress('plain')], [ingressClass('sluice', 'sluice.dev/ingress-controller', true)])).toEqual({ served: ['plain'], noClass: [] });
    expect(run([ingress('plain')], [ingressClass('nginx', 'k8s.io/ingress-nginx', true)])).toEqual({ served: [], noClass: [] });
  });

  it('an Ingress of another class is another controller\'s: skipped without a problem', () => {
    expect(run([ingress('theirs', { ingressClassName: 'nginx' }), ingress('legacy', {}, { 'kubernetes.io/ingress.class': 'nginx' })])).toEqual({ served: [], noClass: [] });
  });
});
