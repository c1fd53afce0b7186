// Kubernetes mode names the objects of the Gateway API family's kinds Sluice does not read, as the
// manifest folder does (ignored-kinds.ts has the wording; the code is the same SLU_MANIFEST_OBJECT):
// an XBackendTrafficPolicy or an InferencePool applied to a cluster Sluice serves would otherwise do
// nothing, and nothing would say why. Only these groups: a cluster holds many other projects' kinds
// (cert-manager's, the Prometheus Operator's) that are none of a gateway's business, where a folder
// handed to `sluice run` is all meant for it.
//
// Listed, not watched: at start and then every `intervalMs` (the source's rediscovery interval,
// 60 s), each time after reading /apis again, so a CRD installed or removed later is seen without a
// restart. A few list requests a minute, usually of no object, against a watch per resource held
// open for kinds that change rarely and whose objects only ever get a log line.
import type { Logger } from 'pino';
import { ProblemLog, type Problem } from '../problems.ts';
import { ignoredKindText } from './ignored-kinds.ts';

/** The groups whose objects are named, and the resources the controller may list there (the chart's RBAC grants exactly these, list only). */
export const NAMED_UNREAD_APIS: readonly { group: string; plurals: readonly string[] }[] = [
  // The experimental channel's x-k8s.io kinds (XListenerSet until v1.5, XBackendTrafficPolicy, XMesh).
  { group: 'gateway.networking.x-k8s.io', plurals: ['xlistenersets', 'xbackendtrafficpolicies', 'xmeshes'] },
  // The Gateway API Inference Extension (v1 InferencePool; the alpha group's kinds before and beside it).
  { group: 'inference.networking.k8s.io', plurals: ['inferencepools'] },
  { group: 'inference.networking.x-k8s.io', plurals: ['inferencepools', 'inferencemodels', 'inferenceobjectives', 'inferencepoolimports'] },
];

/** Objects named per resource at most; past it, one line says how many more (a cluster's thousands of InferencePools need not be thousands of lines). */
const MAX_NAMED_PER_RESOURCE = 200;

/** GETs against the API server, answering parsed JSON; null for a status in `nullOn`. */
export type ApiGet = (path: string, nullOn?: number[]) => Promise<unknown>;

interface GroupList {
  groups?: { name?: string; preferredVersion?: { version?: string } }[];
}
interface ResourceList {
  resources?: { name?: string; kind?: string; namespaced?: boolean; verbs?: string[] }[];
}
interface ObjectList {
  items?: { metadata?: { name?: string; namespace?: string } }[];
  metadata?: { continue?: string };
}

export class NamedUnreadObjects {
  private readonly log: ProblemLog;
  private readonly logger: Logger;
  /** Resources this identity may not list, said once each (`plural.group`). */
  private readonly forbidden = new Set<string>();

  constructor(logger: Logger) {
    this.logger = logger;
    this.log = new ProblemLog(logger);
  }

  /** The current lines (the admin API's problems). */
  problems(): Problem[] {
    return this.log.list();
  }

  /**
   * Reads which of NAMED_UNREAD_APIS are served, lists their objects, and logs a line for each object
   * not named before (`resolved:` for those gone). `get` is one session of the source's own requests.
   * A failure keeps the last lines (an API server away is not every object deleted).
   */
  async refresh(get: ApiGet): Promise<void> {
    const groups = ((await get('/apis')) as GroupList).groups ?? [];
    const out: Problem[] = [];
    for (const { group, plurals } of NAMED_UNREAD_APIS) {
      const version = groups.find((g) => g.name === group)?.preferredVersion?.version;
      if (!version) continue;
      const resources = ((await get(`/apis/${group}/${version}`, [404])) as ResourceList | null)?.resources ?? [];
      for (const resource of resources) {
        if (!resource.name || !resource.kind || !plurals.includes(resource.name) || !resource.verbs?.includes('list')) continue;
        out.push(...(await this.objectLines(get, group, version, resource.name, resource.kind)));
      }
    }
    this.log.update(out);
  }

  private async objectLines(get: ApiGet, group: string, version: string, plural: string, kind: string): Promise<Problem[]> {
    const apiVersion = `${group}/${version}`;
    const resource = `${plural}.${group}`;
    const out: Problem[] = [];
    let total = 0;
    let continueToken = '';
    do {
      const query = new URLSearchParams({ limit: '500' });
      if (continueToken) query.set('continue', continueToken);
      let page: ObjectList | null;
      try {
        // 404: the CRD went away since discovery; 410: a continue token expired. The next refresh lists again.
        page = (await get(`/apis/${apiVersion}/${plural}?${query}`, [404, 410])) as ObjectList | null;
      } catch (err) {
        if ((err as { statusCode?: unknown }).statusCode !== 403) throw err;
        // The chart grants list on these; a trimmed or older ClusterRole may not: said once, not an error.
        if (!this.forbidden.has(resource)) {
          this.forbidden.add(resource);
          this.logger.info({ resource }, `${kind} objects (a kind Sluice does not read) are not named: this identity may not list ${resource} (403); the chart's ClusterRole grants it`);
        }
        return out;
      }
      if (page === null) return out;
      this.forbidden.delete(resource);
      for (const item of page.items ?? []) {
        const name = item.metadata?.name;
        if (!name) continue;
        total++;
        if (total > MAX_NAMED_PER_RESOURCE) continue;
        const shown = item.metadata?.namespace ? `${item.metadata.namespace}/${name}` : name;
        out.push({ code: 'SLU_MANIFEST_OBJECT', object: `${kind} ${shown}`, message: ignoredKindText(apiVersion, kind, shown) });
      }
      continueToken = page.metadata?.continue ?? '';
    } while (continueToken);
    if (total > MAX_NAMED_PER_RESOURCE) {
      out.push({ code: 'SLU_MANIFEST_OBJECT', object: resource, message: `and ${total - MAX_NAMED_PER_RESOURCE} more ${apiVersion} ${kind} objects, not named one by one` });
    }
    return out;
  }
}
