// Kubernetes mode, the controller process (`sluice controller`): informers →
// translate → versioned IR snapshots for the dataplanes, and — on the leader
// only — statuses written to the real objects. Dataplanes run elsewhere
// (`sluice dataplane`) and acknowledge each version; Programmed waits for them.
import { CoreV1Api, KubeConfig, type V1Node } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { processRegistry, startAdminServer, type Running } from './admin.ts';
import type { IR } from '../ir/types.ts';
import { LeaderElector } from '../controller/leader.ts';
import { ProblemLog } from '../controller/problems.ts';
import { SnapshotServer } from '../controller/publish/server.ts';
import { KubernetesSource } from '../controller/sources/kubernetes.ts';
import { requestOptions } from '../controller/sources/kube-request.ts';
import { isRelevantChange, type Dependencies } from '../controller/sources/relevance.ts';
import { SNAPSHOT_FIELD_BY_KIND, objectKey, type InputSnapshot, type KubeObject } from '../controller/sources/objects.ts';
import { assembleStatuses, detachedRoutes, type DataplaneFeedback } from '../controller/status/assemble.ts';
import { dataplaneAddresses, rollout } from '../controller/status/kubernetes.ts';
import { StatusStore } from '../controller/status/store.ts';
import { StatusWriter } from '../controller/status/writer.ts';
import type { IngressOptions } from '../controller/translate/options.ts';
import type { PolicyOptions } from '../controller/translate/networkpolicy.ts';
import { Translator, type TranslateResult } from '../controller/translate/translate.ts';
import { serialDebouncer } from '../controller/debounce.ts';

export interface ControllerOptions {
  /** A kubeconfig file; absent: the in-cluster ServiceAccount. */
  kubeconfig?: string;
  /** Where dataplanes subscribe to snapshots (HOST:PORT). */
  snapshotAddress: string;
  /** Bearer token dataplanes must present; absent: none (only for tests and single-host setups). */
  snapshotToken?: string;
  adminAddress: string;
  controllerName: string;
  /** GatewayClass names served whatever their controllerName. */
  gatewayClasses: string[];
  ingress: IngressOptions;
  policy?: PolicyOptions;
  /** Absent: this process always leads (one replica). */
  leaderElection?: { namespace: string; id: string; identity: string; address?: string };
  /**
   * `namespace/name` of the dataplane Service, whose addresses the Gateways and Ingresses report.
   * Absent: dataplanes bind `bindAddress` themselves (one host, e.g. tests) and Gateways report it.
   */
  dataplaneService?: string;
  /** What dataplanes bind: 0.0.0.0 behind a Service; an address or IPv4 CIDR as in standalone mode. */
  bindAddress: string;
  logger: Logger;
}

export async function runController(options: ControllerOptions): Promise<Running> {
  const { logger } = options;
  const kubeConfig = new KubeConfig();
  if (options.kubeconfig) kubeConfig.loadFromFile(options.kubeconfig);
  else kubeConfig.loadFromCluster();

  const registry = processRegistry();
  const store = new StatusStore();
  let published: IR | null = null;
  let synced = false;
  const problemLog = new ProblemLog(logger);

  const scheduler = serialDebouncer(() => reconcile(), (err) => logger.error({ err }, 'reconcile failed'));
  // The last translation and the snapshot it read. Source changes mark it stale; acks, dataplane
  // connects and the Node refresh only re-fold status from it (status/assemble.ts).
  let translated: { snapshot: InputSnapshot; result: TranslateResult } | null = null;
  // One Translator for the process: the IR parts of unchanged inputs stay the same objects, so the
  // snapshot deltas to the dataplanes (ir/delta.ts) carry only what changed.
  const translator = new Translator();
  let stale = true;
  const retranslate = () => {
    stale = true;
    scheduler.schedule();
  };
  // Changes to Secrets, ConfigMaps and Pods the last translation did not depend on cost nothing.
  let dependsOn: Dependencies | null = null;
  const reconciles = new Counter({ name: 'sluice_controller_reconciles_total', help: 'Translations run by the controller', registers: [registry] });
  const ignored = new Counter({ name: 'sluice_controller_ignored_changes_total', help: 'Source changes no translation depends on', labelNames: ['kind'], registers: [registry] });
  const source = new KubernetesSource({
    kubeConfig,
    logger: logger.child({ component: 'source' }),
    onChange: (change) => {
      if (isRelevantChange(change, dependsOn)) retranslate();
      else ignored.inc({ kind: change!.kind });
    },
  });
  const elector = options.leaderElection
    ? new LeaderElector({
        kubeConfig,
        namespace: options.leaderElection.namespace,
        name: options.leaderElection.id,
        identity: options.leaderElection.identity,
        ...(options.leaderElection.address ? { address: options.leaderElection.address } : {}),
        logger: logger.child({ component: 'leader' }),
        onStartedLeading: () => {
          logger.info({ identity: options.leaderElection!.identity }, 'leading: writing status and serving snapshots');
          scheduler.schedule();
        },
        onStoppedLeading: () => {
          logger.warn('no longer leading: status writes stop; dataplanes are sent to the new leader');
          snapshots.leadershipChanged();
        },
      })
    : null;
  const isLeader = () => elector?.isLeader() ?? true;
  const snapshots = new SnapshotServer({
    address: options.snapshotAddress,
    ...(options.snapshotToken ? { token: options.snapshotToken } : {}),
    logger: logger.child({ component: 'snapshots' }),
    leader: () => (isLeader() ? { isLeader: true } : { isLeader: false, leaderUrl: elector?.leaderAddress() ?? null }),
  });
  const writer = new StatusWriter({
    kubeConfig,
    controllerName: options.controllerName,
    logger: logger.child({ component: 'status' }),
    current: (kind, namespace, name) => source.get(kind, namespace, name),
  });

  // A NodePort dataplane Service is reached on the nodes' addresses: list Nodes (at most every 30 s;
  // bounded like the status writes: a reconcile waiting on it would hold every later one).
  const core = kubeConfig.makeApiClient(CoreV1Api);
  let nodes: { at: number; items: V1Node[] } = { at: 0, items: [] };
  const nodeAddresses = async (): Promise<V1Node[]> => {
    if (Date.now() - nodes.at < 30_000) return nodes.items;
    try {
      const list = await core.listNode({}, requestOptions({ signal: AbortSignal.timeout(10_000) }));
      nodes = { at: Date.now(), items: JSON.parse(JSON.stringify(list.items)) as V1Node[] };
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'cannot list Nodes for the NodePort dataplane Service; keeping the last list');
      nodes = { ...nodes, at: Date.now() };
    }
    return nodes.items;
  };
  const nodeRefresh = setInterval(() => {
    if (nodes.at > 0) scheduler.schedule();
  }, 30_000);
  nodeRefresh.unref();

  async function reconcile(): Promise<void> {
    if (!synced) return;
    if (stale || !translated) {
      stale = false;
      const snapshot = source.snapshot();
      // The options carry what translation reads (controllerName, bindAddress, ingress, policy) under the same names.
      const result = translator.translate(snapshot, { ...options, servedClassNames: options.gatewayClasses });
      reconciles.inc();
      translated = { snapshot, result };
      dependsOn = result.dependsOn;
      problemLog.update(result.problems);
      if (result.ir.version !== published?.version) {
        snapshots.publish(result.ir);
        published = result.ir;
      }
    }
    const statuses = assembleStatuses(translated.result, await dataplaneFeedback(translated.snapshot, translated.result));
    store.update(statuses, new Date());
    if (!isLeader()) return;
    const outcome = await writer.write(statuses.map((s) => store.get(objectKey({ kind: s.kind, metadata: { name: s.name, namespace: s.namespace } })) ?? s));
    // The writer warned (once per distinct set of failures); retried in a while, or sooner on a change.
    if (outcome.failed.length) {
      logger.debug({ failed: outcome.failed }, `status not written for ${outcome.failed.length} objects; retrying`);
      scheduler.scheduleRetry();
    }
  }

  /** What the dataplanes report about the translated version, and where clients reach them. */
  async function dataplaneFeedback(snapshot: InputSnapshot, result: TranslateResult): Promise<DataplaneFeedback> {
    const acks = snapshots.acks();
    const { socketFailures } = rollout(acks, result.ir.version);
    const detached = detachedRoutes(snapshot, result.statuses, options.controllerName, (k, ns, n) => source.get(k, ns, n));
    if (!options.dataplaneService) return { socketFailures, acks, detached };
    const [namespace, name] = options.dataplaneService.split('/');
    const service = snapshot.services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
    const nodeList = service?.spec?.type === 'NodePort' ? await nodeAddresses() : [];
    return { socketFailures, acks, detached, service: { name: options.dataplaneService, addresses: dataplaneAddresses(service, nodeList) } };
  }

  await snapshots.listen();
  // Acks, connects and disconnects all change what Programmed waits for.
  snapshots.onAck(() => scheduler.schedule());
  snapshots.onChange(() => scheduler.schedule());
  const admin = await startAdminServer(
    options.adminAddress,
    {
      ready: () => synced,
      ir: () => published,
      objects: () => store.withStatus(Object.values(SNAPSHOT_FIELD_BY_KIND).flatMap((f) => source.snapshot()[f]) as KubeObject[]),
      // Kinds the API server does not let us read right now, besides what translation found.
      problems: () => [...problemLog.list(), ...source.problems()],
      ui: { mode: 'controller', controllerName: options.controllerName },
    },
    registry,
  );
  logger.info('waiting for every kind to sync before translating');
  await source.start();
  synced = true;
  elector?.start();
  await scheduler.runNow();
  logger.info({ snapshots: options.snapshotAddress, admin: options.adminAddress }, 'sluice controller is running');

  return {
    async close() {
      clearInterval(nodeRefresh);
      scheduler.stop();
      await elector?.stop();
      source.stop();
      await snapshots.close();
      await admin.close();
    },
  };
}

