// Renders charts/sluice with the helm binary test/kube/build-binaries.sh builds (`helm template`)
// and parses the output into objects. Used by the chart tests and by the RBAC test against the real
// API server (the controller runs with a ServiceAccount token bound to the rendered ClusterRole).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

import { kubeBinary, type KubeObject } from '../kube/cluster.ts';

export type { KubeObject };

export const CHART_DIR = join(import.meta.dirname, '..', '..', 'charts', 'sluice');
export const DEFAULT_RELEASE = 'sluice';
export const DEFAULT_NAMESPACE = 'sluice-system';

export interface RenderOptions {
  /** Also emit the chart's crds/ (helm template --include-crds). Default false. */
  includeCrds?: boolean;
  /** Extra API versions to claim (--api-versions), e.g. monitoring.coreos.com/v1. */
  apiVersions?: string[];
  /** Extra helm arguments. */
  args?: string[];
}

/** Thrown when helm refuses to render; `stderr` carries helm's message. */
export class HelmError extends Error {
  readonly stderr: string;
  readonly status: number | null;
  constructor(message: string, stderr: string, status: number | null) {
    super(message);
    this.stderr = stderr;
    this.status = status;
  }
}

/** Runs the built helm with `args`; throws HelmError on a non-zero exit. */
export function helm(args: string[]): string {
  const r = spawnSync(kubeBinary('helm'), args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    // No repository config, cache or plugins of whoever runs the tests.
    env: {
      PATH: process.env.PATH ?? '',
      HOME: tmpdir(),
      HELM_CONFIG_HOME: join(tmpdir(), 'sluice-helm-test', 'config'),
      HELM_CACHE_HOME: join(tmpdir(), 'sluice-helm-test', 'cache'),
      HELM_DATA_HOME: join(tmpdir(), 'sluice-helm-test', 'data'),
    },
  });
  if (r.error) throw new HelmError(`helm ${args[0]}: ${r.error.message}`, '', null);
  // helm lint reports its findings on stdout, helm template on stderr: the message carries both.
  if (r.status !== 0) throw new HelmError(`helm ${args.join(' ')} failed (exit ${r.status}): ${`${r.stdout}\n${r.stderr}`.trim()}`, r.stderr, r.status);
  return r.stdout;
}

/** Writes `values` to a temporary file for `-f`, runs `fn` with its path, removes it. */
export function withValuesFile<T>(values: object, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-chart-'));
  try {
    const file = join(dir, 'values.json'); // JSON is YAML
    writeFileSync(file, JSON.stringify(values));
    return fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Parses a multi-document YAML stream into objects (empty documents dropped). */
export function parseManifests(text: string): KubeObject[] {
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    out.push(obj as KubeObject);
  }
  return out;
}

/**
 * `helm template <release> charts/sluice --namespace <namespace> -f <values>`, parsed. Throws HelmError
 * when helm refuses (a schema violation, a `fail` in a template).
 */
export function renderChart(
  values: object = {},
  releaseName: string = DEFAULT_RELEASE,
  namespace: string = DEFAULT_NAMESPACE,
  options: RenderOptions = {},
): KubeObject[] {
  return withValuesFile(values, (file) => {
    const args = ['template', releaseName, CHART_DIR, '--namespace', namespace, '-f', file];
    if (options.includeCrds) args.push('--include-crds');
    for (const v of options.apiVersions ?? []) args.push('--api-versions', v);
    args.push(...(options.args ?? []));
    return parseManifests(helm(args));
  });
}

/** The one object of `kind` (and `name`, when given); throws when there is not exactly one. */
export function findOne(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const hits = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (hits.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${hits.length}`);
  return hits[0]!;
}
