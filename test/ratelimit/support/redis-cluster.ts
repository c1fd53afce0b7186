// A real Redis Cluster for tests: six redis-server processes in cluster mode (3 masters, 3
// replicas), each in its own temporary folder, joined by `redis-cli --cluster create`. A master
// can be killed; its replica takes over after the node timeout (1 s here). The other masters keep
// serving their slots meanwhile (cluster-require-full-coverage no: with Redis's default, yes, the
// whole cluster refuses commands while any slot has no master).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisServer, sleep } from './redis-server.ts';

export const CLUSTER_NODE_TIMEOUT_MS = 1000;

/** A port P free along with its cluster bus port P + 10000 (both held while checked). */
async function clusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  const canBind = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
  while (ports.length < count) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    if (ports.includes(port) || ports.includes(port - 10000) || ports.includes(port + 10000)) continue;
    if ((await canBind(port)) && (await canBind(port + 10000))) ports.push(port);
  }
  return ports;
}

export interface ClusterNode {
  id: string;
  port: number;
  master: boolean;
  /** The master's id, for a replica. */
  masterId: string | null;
  failed: boolean;
}

export class RedisCluster {
  readonly servers: RedisServer[];
  private readonly dir: string;

  private constructor(servers: RedisServer[], dir: string) {
    this.servers = servers;
    this.dir = dir;
  }

  static async start(): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-redis-cluster-'));
    const ports = await clusterPorts(6);
    const servers: RedisServer[] = [];
    try {
      for (const port of ports) {
        const folder = join(dir, String(port));
        mkdirSync(folder);
        servers.push(
          await RedisServer.start(port, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS), '--repl-diskless-sync-delay', '0', '--cluster-require-full-coverage', 'no'], folder),
        );
      }
      const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 });
      if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}\n${created.stderr}`);
      const cluster = new RedisCluster(servers, dir);
      await cluster.waitHealthy();
      await cluster.waitReplicated();
      return cluster;
    } catch (err) {
      await Promise.all(servers.map((s) => s.stop()));
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** `redis://127.0.0.1:P,…` of every node. */
  get url(): string {
    return this.servers.map((s) => `redis://127.0.0.1:${s.port}`).join(',');
  }

  server(port: number): RedisServer {
    const s = this.servers.find((x) => x.port === port);
    if (!s) throw new Error(`no node on ${port}`);
    return s;
  }

  /** The topology as a live node sees it (CLUSTER NODES). */
  async nodes(): Promise<ClusterNode[]> {
    for (const s of this.servers) {
      if (!s.pid) continue;
      const text = await s.command('CLUSTER', 'NODES').catch(() => '');
      if (text === '') continue;
      return text
        .split('\n')
        .slice(1) // the RESP bulk length line
        .filter((line) => /^[0-9a-f]{40} /.test(line))
        .map((line) => {
          const [id, address, flags, masterId] = line.split(' ');
          return { id: id!, port: Number(address!.split(':')[1]!.split('@')[0]), master: flags!.includes('master'), masterId: masterId === '-' ? null : masterId!, failed: /fail/.test(flags!) };
        });
    }
    throw new Error('no cluster node answers');
  }

  /** The live master serving `key`'s slot. */
  async masterOf(key: string): Promise<number> {
    const live = this.servers.find((s) => s.pid)!;
    const slot = Number((await live.command('CLUSTER', 'KEYSLOT', key)).slice(1));
    // CLUSTER NODES lists each master's slot ranges after its 8th field.
    const text = await live.command('CLUSTER', 'NODES');
    for (const line of text.split('\n')) {
      const fields = line.trim().split(' ');
      if (!fields[2]?.includes('master') || fields[2].includes('fail')) continue;
      for (const range of fields.slice(8)) {
        const [from, to] = range.split('-').map(Number);
        if (slot >= from! && slot <= (to ?? from)!) return Number(fields[1]!.split(':')[1]!.split('@')[0]);
      }
    }
    throw new Error(`no live master serves slot ${slot}`);
  }

  /** Every node up says cluster_state:ok, with 3 live masters. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(this.servers.filter((s) => s.pid).map((s) => s.command('CLUSTER', 'INFO').catch(() => '')));
      const nodes = await this.nodes().catch(() => [] as ClusterNode[]);
      // Masters that run (a killed one is listed as a master until the others mark it failed).
      const masters = nodes.filter((n) => n.master && !n.failed && this.servers.some((x) => x.port === n.port && x.pid !== undefined));
      if (states.every((s) => s.includes('cluster_state:ok')) && masters.length === 3) return;
      if (Date.now() > deadline) throw new Error(`cluster not healthy after ${timeoutMs} ms: ${states.join(' | ')}`);
      await sleep(100);
    }
  }

  /** Every running replica has synced with its master (else it would not take over: its data age is unknown). */
  async waitReplicated(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const running = this.servers.filter((s) => s.pid !== undefined);
      const infos = await Promise.all(running.map((s) => s.command('INFO', 'replication').catch(() => '')));
      if (infos.every((i) => i.includes('role:master') || i.includes('master_link_status:up'))) return;
      if (Date.now() > deadline) throw new Error(`replicas not synced after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
