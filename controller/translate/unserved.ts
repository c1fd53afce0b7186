// Gateways and routes no controller serves, said once per object instead of passed over in
// silence. Such an object gets no status from Sluice — the specification leaves a Gateway of
// another class, or a route whose parent is not Sluice's, to whoever owns them — so without these
// lines a manifest copied from another project's examples (`gatewayClassName: example`, a route
// whose Gateway lives in another file) does nothing and nothing says why.
// - a Gateway whose gatewayClassName names no GatewayClass at all: nobody serves it;
// - a Gateway whose GatewayClass Sluice handles but did not accept (its status says why);
// - standalone only (the folder is all there is): a Gateway whose class names another
//   controller: nothing else reads these files, so nothing will serve it;
// - a ListenerSet whose parent Gateway does not exist, or whose parentRef kind is Gateway in the wrong case;
// - a route without parentRefs, or whose parentRefs name Gateways and ListenerSets of which none exists;
// - a route parentRef whose kind is a parent kind in the wrong case (`gateway`): nobody's kind;
// - standalone only: a Service that routes forward to and that has no EndpointSlice at all. Every
//   other project's example deploys its backends as a Deployment, which `sluice run` does not run:
//   its routes answer 503 and, without this line, only the Deployment's "not read" line hints why.
//   Likewise a Service port that no port of its (hand-written) EndpointSlices is named after.
import type { Backend } from '../../ir/types.ts';
import type { Problem } from '../problems.ts';
import type { ParentRef } from '../schema/kinds.ts';
import { GATEWAY_GROUP, namespacedName, type InputSnapshot, type KubeObject } from '../sources/objects.ts';
import type { InputIndex } from './index-inputs.ts';
import type { TranslateOptions } from './options.ts';
import { kindSlip } from '../sources/ignored-kinds.ts';
import { slicePortServes } from './backends.ts';

type RouteObject = KubeObject & { spec: { parentRefs?: ParentRef[] } };

export function unservedProblems(snapshot: InputSnapshot, acceptedClasses: Set<string | undefined>, options: TranslateOptions): Problem[] {
  const out: Problem[] = [];
  const served = new Set(options.servedClassNames ?? []);
  const classes = new Map(snapshot.gatewayClasses.map((c) => [c.metadata.name, c]));
  const first = [...served][0];
  const hint = first !== undefined ? `set gatewayClassName: ${first}` : `set gatewayClassName to a GatewayClass whose controllerName is ${options.controllerName}`;
  for (const gateway of snapshot.gateways) {
    const name = gateway.spec?.gatewayClassName;
    if (acceptedClasses.has(name)) continue;
    const object = `Gateway ${namespacedName(gateway)}`;
    const gc = classes.get(name);
    let why: string | null = null;
    if (!gc) why = `its gatewayClassName ${name} names no GatewayClass, so no controller serves it; ${hint}, or define that GatewayClass`;
    else if (gc.spec?.controllerName === options.controllerName || served.has(name)) why = `not served while its GatewayClass ${name} is not accepted (see the GatewayClass status)`;
    else if (options.standalone) {
      why = `its GatewayClass ${name} names controller ${gc.spec?.controllerName}, not Sluice's (${options.controllerName}), and nothing else reads this folder, so it is not served; list the class in --gateway-classes or ${hint}`;
    }
    if (why) out.push({ code: 'SLU_TRANSLATION', message: `${object}: ${why}`, object });
  }

  // A route is only looked at for its parentRefs: nothing is allocated for one whose parent exists.
  const gateways = namesByNamespace(snapshot.gateways);
  const listenerSets = namesByNamespace(snapshot.listenerSets);
  for (const set of snapshot.listenerSets) {
    const ref = set.spec?.parentRef;
    const ns = ref?.namespace ?? set.metadata.namespace!;
    if (ref !== undefined && ref.kind !== undefined && ref.kind !== 'Gateway' && kindSlip(ref.kind, ['Gateway'])) {
      const object = `ListenerSet ${namespacedName(set)}`;
      out.push({ code: 'SLU_TRANSLATION', object, message: `${object}: spec.parentRef kind ${ref.kind} names no kind${kindSlip(ref.kind, ['Gateway'])}, so it attaches to nothing` });
      continue;
    }
    if (ref === undefined || (ref.kind ?? 'Gateway') !== 'Gateway' || gateways.get(ns)?.has(ref.name) === true) continue;
    const object = `ListenerSet ${namespacedName(set)}`;
    out.push({ code: 'SLU_TRANSLATION', message: `${object}: its parentRef names Gateway ${ns}/${ref.name}, which does not exist, so no controller serves it; create the Gateway or correct spec.parentRef`, object });
  }
  const kinds: [string, RouteObject[]][] = [
    ['HTTPRoute', snapshot.httpRoutes],
    ['GRPCRoute', snapshot.grpcRoutes],
    ['TLSRoute', snapshot.tlsRoutes],
    ['TCPRoute', snapshot.tcpRoutes],
    ['UDPRoute', snapshot.udpRoutes],
  ];
  for (const [kind, routes] of kinds) {
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i]!;
      const slips = parentKindSlips(route);
      if (slips !== null) {
        const object = `${kind} ${namespacedName(route)}`;
        out.push({ code: 'SLU_TRANSLATION', object, message: `${object}: ${slips}` });
      }
      const missing = missingParents(route, gateways, listenerSets);
      if (missing === null) continue;
      const object = `${kind} ${namespacedName(route)}`;
      const why =
        missing.length === 0
          ? 'it has no parentRefs, so it attaches to no Gateway; name its Gateway (or ListenerSet) in spec.parentRefs'
          : `its parentRefs name ${missing.join(', ')}, which do not exist, so no controller serves it; create the parent or correct parentRefs`;
      out.push({ code: 'SLU_TRANSLATION', message: `${object}: ${why}`, object });
    }
  }
  return out;
}

const PARENT_KINDS = ['Gateway', 'ListenerSet', 'Service'];

/** parentRefs whose kind is a parent kind in the wrong case (`gateway`): read as another kind, nobody's; null when none (a look at each kind, nothing allocated). */
function parentKindSlips(route: RouteObject): string | null {
  const refs = route.spec.parentRefs ?? [];
  let out: string[] | null = null;
  for (let i = 0; i < refs.length; i++) {
    const kind = refs[i]!.kind;
    if (kind === undefined || kind === 'Gateway' || kind === 'ListenerSet' || kind === 'Service') continue;
    const slip = kindSlip(kind, PARENT_KINDS);
    if (slip !== '') (out ??= []).push(`spec.parentRefs[${i}] kind ${kind} names no kind${slip}, so the route is not attached there`);
  }
  return out === null ? null : out.join('; ');
}

type NamesByNamespace = Map<string, Set<string>>;

/** Names by namespace: a parentRef is looked up without building a `namespace/name` string per route. */
function namesByNamespace(objects: KubeObject[]): NamesByNamespace {
  const out: NamesByNamespace = new Map();
  for (const o of objects) {
    const ns = o.metadata.namespace ?? '';
    let names = out.get(ns);
    if (names === undefined) out.set(ns, (names = new Set()));
    names.add(o.metadata.name);
  }
  return out;
}

/**
 * The Gateway and ListenerSet parents a route names when none of them exists ([] when it has no
 * parentRefs at all); null when one exists, or its parents are all of other kinds (a mesh's Services).
 */
function missingParents(route: RouteObject, gateways: NamesByNamespace, listenerSets: NamesByNamespace): string[] | null {
  const refs = route.spec.parentRefs;
  if (refs === undefined || refs.length === 0) return [];
  const ns = route.metadata.namespace!;
  let named = 0;
  for (let i = 0; i < refs.length; i++) {
    const ref = refs[i]!;
    if ((ref.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP) continue;
    const kind = ref.kind ?? 'Gateway';
    const set = kind === 'Gateway' ? gateways : kind === 'ListenerSet' ? listenerSets : null;
    if (set === null) continue;
    named++;
    if (set.get(ref.namespace ?? ns)?.has(ref.name) === true) return null;
  }
  if (named === 0) return null;
  return refs
    .filter((ref) => (ref.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && ['Gateway', 'ListenerSet'].includes(ref.kind ?? 'Gateway'))
    .map((ref) => `${ref.kind ?? 'Gateway'} ${ref.namespace ?? ns}/${ref.name}`);
}

/**
 * Services the served routes forward to (their ports among `backends`) that have no EndpointSlice
 * at all (ExternalName Services need none). Only in standalone: in a cluster the EndpointSlice
 * controller writes one for every Service with a selector, an empty one when no Pod is ready.
 */
export function endpointlessServiceProblems(backends: ReadonlyMap<string, Backend>, index: InputIndex): Problem[] {
  // Backends without endpoints first (none, usually: one pass; Map.forEach
  // is ~0.05 ms at 10 000 backends, a for-in over the IR's object 20 times that), then their Services.
  const empty = new Set<string>();
  backends.forEach((backend) => {
    if (backend.endpoints.length === 0 && backend.source !== undefined) empty.add(backend.source);
  });
  if (empty.size === 0) return [];
  const out: Problem[] = [];
  for (const service of index.snapshot.services) {
    const ns = service.metadata.namespace!;
    const name = service.metadata.name;
    if (service.spec?.type === 'ExternalName') continue;
    const used = (service.spec?.ports ?? []).filter((p) => empty.has(`${ns}/${name}:${p.port}`));
    if (used.length === 0) continue;
    const object = `Service ${namespacedName(service)}`;
    const slices = index.endpointSlices(ns, name);
    if (slices.length === 0) {
      out.push({
        code: 'SLU_TRANSLATION',
        object,
        message: `${object} has no EndpointSlice, so the routes to it answer 503: sluice run starts no Deployments or Pods; give its endpoints as an EndpointSlice labelled kubernetes.io/service-name: ${name}`,
      });
      continue;
    }
    // Slices there, but no port of theirs named as the Service port and of its protocol: matched
    // by both (kube-proxy does the same), a hand-written slice naming its port after the targetPort,
    // or giving a UDP Service port's endpoints without protocol: UDP (TCP by default), matches nothing.
    const slicePorts = slices.flatMap((slice) => (slice.ports ?? []).filter((p) => p !== undefined));
    const named = (p: { name?: string; protocol?: string }) => `${p.name ? `named ${p.name}` : 'unnamed'}, ${p.protocol ?? 'TCP'}`;
    const sliceNames = [...new Set(slicePorts.map(named))];
    for (const port of used) {
      if (slicePorts.some((p) => slicePortServes(p, port))) continue;
      out.push({
        code: 'SLU_TRANSLATION',
        object,
        message: `${object} port ${port.port} (${named(port)}) matches no port of its EndpointSlices (${sliceNames.join('; ') || 'none'}), so the routes to it answer 503: EndpointSlice ports are matched to the Service port by name and protocol, as kube-proxy does; name them alike, with the same protocol`,
      });
    }
  }
  return out;
}
