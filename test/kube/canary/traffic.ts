// What the canary scenarios measure: steady traffic through Sluice (who answered, with what), the
// split weights the API server holds over time, and when the dataplane applied each version.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Pool } from 'undici';
import type { TestCluster } from '../cluster.ts';

export interface Sample {
  /** performance.timeOrigin + performance.now() at the answer: the same clock as Date.now(). */
  at: number;
  status: number;
  version: string | null;
  /** The pod that answered (null: Sluice answered itself, or no answer). */
  pod: string | null;
}

export interface Traffic {
  samples: Sample[];
  stop(): Promise<void>;
}

/**
 * `clients` loops of GET / with this Host until stop(), each pausing `pauseMs` between requests
 * (the machine is shared: a few hundred requests a second are plenty); a connection error is status 0.
 */
export function startTraffic(port: number, host: string, clients = 4, pauseMs = 5, headers: Record<string, string> = {}): Traffic {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: clients, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const samples: Sample[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      try {
        const res = await pool.request({ path: '/', method: 'GET', headers: { ...headers, host } });
        const text = await res.body.text();
        let answer: { version?: string; pod?: string } = {};
        try {
          answer = JSON.parse(text) as typeof answer;
        } catch {
          // not the pods' JSON: Sluice's own answer
        }
        samples.push({ at: performance.timeOrigin + performance.now(), status: res.statusCode, version: answer.version ?? null, pod: answer.pod ?? null });
      } catch {
        samples.push({ at: performance.timeOrigin + performance.now(), status: 0, version: null, pod: null });
      }
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  });
  return {
    samples,
    async stop() {
      running = false;
      await Promise.all(loops);
      await pool.close();
    },
  };
}

export interface WeightChange {
  /** When the API server's watch event arrived here (Date.now() clock). */
  at: number;
  canary: number;
  total: number;
}

/**
 * Watches an HTTPRoute through the API server's watch stream (watch-child.ts, a process of its
 * own: the event reaches it when it reaches Sluice's informer) and records the canary backend's
 * weight whenever it changes.
 */
export function watchWeights(cluster: Pick<TestCluster, 'server' | 'dir' | 'adminToken'>, namespace: string, route: string, canaryService: string): { changes: WeightChange[]; stop(): Promise<void> } {
  const changes: WeightChange[] = [];
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', join(import.meta.dirname, 'watch-child.ts'), cluster.server, join(cluster.dir, 'ca.crt'), cluster.adminToken, namespace, route], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let last = '';
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const event = JSON.parse(buffer.slice(0, nl)) as { at: number; type: string; spec?: { rules?: { backendRefs?: { name: string; weight?: number }[] }[] } };
      buffer = buffer.slice(nl + 1);
      if (event.type !== 'ADDED' && event.type !== 'MODIFIED') continue;
      const refs = (event.spec?.rules ?? []).flatMap((rule) => rule.backendRefs ?? []);
      // The weighted rule: the last one with the canary Service (A/B rules come first).
      const canary = refs.filter((b) => b.name === canaryService).at(-1)?.weight ?? 0;
      const total = refs.length === 0 ? 0 : canary + (refs.filter((b) => b.name !== canaryService).at(-1)?.weight ?? 0);
      const key = `${canary}/${total}`;
      if (key !== last) {
        last = key;
        changes.push({ at: event.at, canary, total });
      }
    }
  });
  return {
    changes,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Times (Date.now() clock) at which the dataplane applied a new configuration, from its JSON log. */
export function appliedTimes(dataplaneLog: string): number[] {
  return dataplaneLog
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"configuration applied"'))
    .map((l) => (JSON.parse(l) as { time: number }).time);
}

/** p-th percentile (0..100) of numbers, nearest rank. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

export interface StepSplit {
  canaryWeight: number;
  total: number;
  requests: number;
  canaryShare: number;
}

/**
 * The split measured on the wire for each weight the route held: requests answered from 1 s after
 * the change (the dataplane has applied it by then) until the next change; `isCanary` tells whose
 * answer a sample is.
 */
export function splitPerStep(samples: Sample[], changes: WeightChange[], isCanary: (s: Sample) => boolean, settleMs = 1000): StepSplit[] {
  const out: StepSplit[] = [];
  changes.forEach((c, i) => {
    const end = changes[i + 1]?.at ?? Infinity;
    const inStep = samples.filter((s) => s.at >= c.at + settleMs && s.at < end && s.status !== 0);
    if (inStep.length === 0 || c.total === 0) return;
    out.push({ canaryWeight: c.canary, total: c.total, requests: inStep.length, canaryShare: inStep.filter(isCanary).length / inStep.length });
  });
  return out;
}
