// The Grafana dashboard (charts/sluice/dashboards/sluice-flows.json): it parses as a dashboard,
// and every query names only metrics Sluice exports (a metric renamed in the code fails here).
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** Every `sluice_…` metric a runtime folder registers. */
function exportedMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      // prom-client metrics (`name: '…'`) and the ones read only when scraped (`ScrapedMetric.in(registry, '…'`).
      else if (path.endsWith('.ts')) for (const m of readFileSync(path, 'utf8').matchAll(/(?:name: |ScrapedMetric\.in\(\s*\w+,\s*)'(sluice_[a-z0-9_]+)'/g)) names.add(m[1]!);
    }
  };
  for (const folder of ['bpf', 'cmd', 'controller', 'dataplane']) walk(join(ROOT, folder));
  // CountedSeries (dataplane/flows/flow-metrics.ts) takes its name as an argument.
  for (const m of readFileSync(join(ROOT, 'dataplane', 'flows', 'flow-metrics.ts'), 'utf8').matchAll(/'(sluice_flow_[a-z_]+)'/g)) names.add(m[1]!);
  return names;
}

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'charts', 'sluice', 'dashboards', 'sluice-flows.json'), 'utf8')) as {
    title: string;
    uid: string;
    panels: { title: string; targets: { expr: string }[] }[];
  };

  it('is a dashboard with panels that each query something', () => {
    expect(dashboard.uid).toBe('sluice-flows');
    expect(dashboard.panels.length).toBeGreaterThan(0);
    for (const p of dashboard.panels) expect(p.targets.length).toBeGreaterThan(0);
  });

  it('queries only metrics Sluice exports', () => {
    const exported = exportedMetrics();
    const used = dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b(sluice_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''))));
    expect(used.length).toBeGreaterThan(0);
    expect(used.filter((name) => !exported.has(name))).toEqual([]);
  });
});
