// A real Prometheus (Debian's `prometheus` package) scraping given targets, for the canary tests:
// analysis queries run against what it scraped from Sluice's admin /metrics.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../support/ports.ts';
import { waitFor } from '../../support/wait.ts';

export const PROMETHEUS = process.env.SLUICE_PROMETHEUS ?? '/usr/bin/prometheus';

/** Why Prometheus cannot run here, or null. */
export function prometheusSkipReason(): string | null {
  const r = spawnSync(PROMETHEUS, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? null : `no Prometheus at ${PROMETHEUS} (apt-get install prometheus, or set SLUICE_PROMETHEUS)`;
}

export interface PrometheusSample {
  metric: Record<string, string>;
  value: number;
}

export interface Prometheus {
  url: string;
  /** An instant query; NaN values come back as NaN. */
  query(expr: string): Promise<PrometheusSample[]>;
  /** Until every target has been scraped `times` more times from now. */
  scrapes(times: number): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startPrometheus(targets: string[], scrapeIntervalSeconds = 1): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-prometheus-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'prometheus.yml'),
    JSON.stringify({
      global: { scrape_interval: `${scrapeIntervalSeconds}s`, evaluation_interval: `${scrapeIntervalSeconds}s` },
      scrape_configs: [{ job_name: 'sluice', scrape_timeout: `${scrapeIntervalSeconds}s`, static_configs: [{ targets }] }],
    }),
  );
  const child: ChildProcess = spawn(
    PROMETHEUS,
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('Prometheus ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}:\n${output}`);
      return (await fetch(`${url}/-/ready`).then((r) => r.ok).catch(() => false)) || undefined;
    }, 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  const scrapeCounts = async () => {
    const res = (await (await fetch(`${url}/api/v1/targets`)).json()) as { data: { activeTargets: { lastScrape: string; health: string }[] } };
    return res.data.activeTargets.map((t) => `${t.lastScrape}/${t.health}`);
  };
  return {
    url,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
      const body = (await res.json()) as { status: string; error?: string; data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
      if (body.status !== 'success') throw new Error(`query failed: ${body.error}\n${expr}`);
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async scrapes(times) {
      for (let i = 0; i < times; i++) {
        const before = await scrapeCounts();
        await waitFor('a scrape of every target', async () => {
          const now = await scrapeCounts();
          // Targets appear a moment after start: all of them, each scraped again, and up.
          return (now.length === targets.length && now.every((s, j) => s !== before[j] && s.endsWith('/up'))) || undefined;
        }, 30_000);
      }
    },
    logs: () => output,
    stop,
  };
}
