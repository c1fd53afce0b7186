// `--target kubernetes`: the suites' objects go through a real kube-apiserver (test/kube/cluster.ts:
// etcd + kube-apiserver on loopback, the Gateway API CRDs and ours installed) to a
// `sluice controller` (informers, status writer, snapshots) and one `sluice dataplane` that serves
// the traffic. The controller runs without --dataplane-service, so the dataplane binds the same
// --bind-address CIDR as the standalone target and Gateways report their own addresses.
//
// - Objects: the ManifestStore's sink is a KubeApplier (server-side apply / delete in dependency
//   order; see kube-applier.ts).
// - "Has Sluice read it": the controller's admin /api/status lists what its informers hold; an
//   object is caught up when the listed copy is at least the resourceVersion the API server
//   answered to our apply (or has the same content).
// - Statuses: LISTed from the API server, i.e. what the status writer really wrote.
// - Config version: the dataplane's /api/config (what it applied), not the controller's.
//
// Runs only inside the runner's own network namespace (netns.ts): echo pods live on POD_RANGE.

import { freePorts } from '../../support/ports.ts';
import { binariesSkipReason, startTestCluster, type TestCluster } from '../../kube/cluster.ts';
import type { KubeObject } from '../../kube/client.ts';
import { KubeApplier, listedCaughtUp } from './kube-applier.ts';
import { keyOf, pendingSync, type KObject } from './manifest-store.ts';
import { insideRunnerNetns, POD_PREFIX, prepareNetns } from './netns.ts';
import type { SluiceProcess } from './sluice-process.ts';
import { listedIndex, TargetBase, type SluiceTarget } from './target.ts';

/** Secret types the controller's informer caches (others are never listed, so never waited for). */
const CACHED_SECRET_TYPES = new Set(['kubernetes.io/tls', 'Opaque', undefined]);

export class KubernetesTarget extends TargetBase implements SluiceTarget {
  readonly name = 'kubernetes' as const;
  readonly podPrefix = POD_PREFIX;
  #cluster: TestCluster | undefined;
  #applier: KubeApplier | undefined;
  #controller: SluiceProcess | undefined;
  #dataplane: SluiceProcess | undefined;
  /** Served apiVersion by kind (discovery, for LISTs of status objects). */
  #served = new Map<string, { apiVersion: string; plural: string; namespaced: boolean }>();
  #starts = 0;

  get exitInfo(): string | undefined {
    for (const p of [this.#controller, this.#dataplane]) if (p?.exitInfo) return `${p.label} ${p.exitInfo}`.replace(/^sluice /, '');
    return undefined;
  }

  get running(): boolean {
    return Boolean(this.#controller && this.#dataplane && !this.exitInfo);
  }

  async prepare(): Promise<void> {
    if (this.#cluster) return;
    if (!insideRunnerNetns()) throw new Error('the kubernetes target runs only in the network namespace run.ts makes for it');
    const why = binariesSkipReason(['kube-apiserver', 'etcd']);
    if (why) throw new Error(why);
    prepareNetns();
    const { report, args } = this.opts;
    const started = Date.now();
    // The experimental channel: upstream's manifests use its versions (TCPRoute/UDPRoute v1alpha2)
    // and fields (HTTPRoute retry), so every claimed feature runs on this target too.
    this.#cluster = await startTestCluster({ keepDir: args.keepTemp, crdChannel: 'experimental' });
    report.verbose(`kube-apiserver ${this.#cluster.server} ready in ${Date.now() - started} ms (dir ${this.#cluster.dir})`);
    this.#applier = new KubeApplier(this.#cluster.client);
    this.store.sink = this.#applier;
    await this.#discover();
  }

  async #discover(): Promise<void> {
    const client = this.#cluster!.client;
    const groups = [{ path: '/api/v1', apiVersion: 'v1' }];
    const apis = await client.call('GET', '/apis');
    for (const g of apis.groups ?? []) {
      // Preferred version first, so a kind served in several versions maps to the preferred one.
      const versions = [g.preferredVersion, ...(g.versions ?? [])].filter(Boolean);
      for (const v of versions) groups.push({ path: `/apis/${v.groupVersion}`, apiVersion: v.groupVersion });
    }
    for (const gv of groups) {
      const list = await client.request('GET', gv.path);
      if (list.status !== 200) continue;
      for (const r of list.body.resources ?? []) {
        if (r.name.includes('/') || this.#served.has(r.kind)) continue;
        this.#served.set(r.kind, { apiVersion: gv.apiVersion, plural: r.name, namespaced: r.namespaced });
      }
    }
  }

  async start(extraArgs: string[] = []): Promise<void> {
    await this.stop();
    await this.prepare();
    const { args, report } = this.opts;
    const cluster = this.#cluster!;
    const n = ++this.#starts;
    const suffix = n > 1 ? `-${n}` : '';
    const [snapshotPort, controllerAdmin, dataplaneAdmin] = await freePorts(3);
    // No --dataplane-service: the dataplane binds --bind-address and Gateways report their address.
    const controller = this.sluice('sluice controller', `127.0.0.1:${controllerAdmin}`, `controller${suffix}.log`, [
      'controller',
      ...['--kubeconfig', cluster.kubeconfigPath, '--bind-address', this.bindAddress],
      ...['--snapshot-address', `127.0.0.1:${snapshotPort}`, '--admin-address', `127.0.0.1:${controllerAdmin}`],
      ...['--controller-name', args.controllerName, ...extraArgs],
    ]);
    const dataplane = this.sluice('sluice dataplane', `127.0.0.1:${dataplaneAdmin}`, `dataplane${suffix}.log`, [
      'dataplane',
      ...['--controller', `http://127.0.0.1:${snapshotPort}`, '--name', 'conformance'],
      ...['--listener-port-offset', String(args.portOffset), '--admin-address', `127.0.0.1:${dataplaneAdmin}`],
      // Conformance runs side by side with other suites: no shared pinned BPF state.
      ...['--bpf', 'off'],
    ]);
    this.#controller = controller;
    this.#dataplane = dataplane;
    report.verbose(
      `temp dir ${this.tempDir}; sluice controller ${extraArgs.join(' ')} (admin 127.0.0.1:${controllerAdmin}, snapshots 127.0.0.1:${snapshotPort}, gateways in ${this.bindAddress}) + sluice dataplane (admin 127.0.0.1:${dataplaneAdmin}, port offset ${args.portOffset})`,
    );
    controller.start();
    await controller.waitReady(60_000);
    dataplane.start();
    await dataplane.waitReady(60_000);
  }

  async stop(): Promise<void> {
    // Dataplane first: it would only retry a controller that is gone.
    await this.#dataplane?.stop();
    await this.#controller?.stop();
    this.#dataplane = undefined;
    this.#controller = undefined;
  }

  async close(): Promise<void> {
    await this.stop();
    if (this.#applier) this.opts.report.verbose(`API writes by the runner: ${this.#applier.writes}`);
    await this.#cluster?.stop();
    this.#cluster = undefined;
  }

  killNow(): void {
    this.#dataplane?.killNow();
    this.#controller?.killNow();
  }

  listed(): Promise<any[]> {
    if (!this.#controller) return Promise.reject(new Error('sluice controller is not running'));
    return this.#controller.status();
  }

  async statusObjects(kinds: readonly string[]): Promise<any[]> {
    const client = this.#cluster?.client;
    if (!client) throw new Error('no API server');
    const lists = await Promise.all(
      kinds.map(async (kind) => {
        const r = this.#served.get(kind);
        if (!r) return [];
        const prefix = r.apiVersion.includes('/') ? '/apis' : '/api';
        const list = await client.call('GET', `${prefix}/${r.apiVersion}/${r.plural}`);
        return (list.items ?? []).map((i: KubeObject) => ({ ...i, apiVersion: r.apiVersion, kind }));
      }),
    );
    return lists.flat();
  }

  async configVersion(): Promise<string | undefined> {
    return this.#dataplane?.configVersion();
  }

  pending(listed: any[], present: KObject[], absent: KObject[], relevant: (o: KObject) => boolean = () => true): string[] {
    const applier = this.#applier;
    const index = listedIndex(listed);
    // Objects are looked up under the key the API server gave them (namespace defaulted).
    const keyFor = (o: KObject) => {
      const r = applier?.result(o);
      return r ? keyOf(r as KObject) : keyOf(o);
    };
    const wanted = (o: KObject) =>
      relevant(o) && applier?.refusal(o) === undefined && (o.kind !== 'Secret' || CACHED_SECRET_TYPES.has(o.type as string | undefined));
    return pendingSync(
      (o) => index.get(keyFor(o)),
      present,
      absent,
      wanted,
      (o, item) => {
        const applied = applier?.result(o);
        return !applied || listedCaughtUp(applied, item);
      },
    );
  }

  takeApplyProblems(): string[] {
    return this.#applier?.takeProblems() ?? [];
  }
}
