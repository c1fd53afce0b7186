// A real redis-server for tests, on a free loopback port, started and stopped by the test
// itself. It can be killed (and restarted on the same port, empty), frozen with SIGSTOP and
// thawed, or kept busy by a long Lua script.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll } from '@jest/globals';
import { Socket } from 'node:net';

import { freePort } from '../../support/ports.ts';

export { freePort };

export function redisServerAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export class RedisServer {
  readonly port: number;
  private readonly extraArgs: readonly string[];
  private readonly cwd: string | undefined;
  private child: ChildProcess | null = null;
  private output = '';

  private constructor(port: number, extraArgs: readonly string[], cwd: string | undefined) {
    this.port = port;
    this.extraArgs = extraArgs;
    this.cwd = cwd;
  }

  /** `extraArgs`: more redis-server options (cluster mode); `cwd`: its directory (nodes.conf). */
  static async start(port?: number, extraArgs: readonly string[] = [], cwd?: string): Promise<RedisServer> {
    if (!redisServerAvailable()) throw new Error('redis-server is not installed (apt-get install -y redis-server): the rate-limit tests need a real one');
    const server = new RedisServer(port ?? (await freePort()), extraArgs, cwd);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts it again on the same port, with no data. */
  async launch(): Promise<void> {
    if (this.child) throw new Error('redis-server is already running');
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', '--enable-debug-command', 'local', ...this.extraArgs];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'], ...(this.cwd !== undefined ? { cwd: this.cwd } : {}) });
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await this.ping())) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start on ${this.port}:\n${this.output}`);
      await sleep(20);
    }
  }

  /** SIGKILL: connections drop at once, nothing is saved. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT'); // a frozen process must run to die cleanly
    child.kill('SIGKILL');
    await exited;
  }

  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    await this.kill();
  }

  /** One command over a fresh connection (RESP), for checks outside the code under test. */
  async command(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      let data = '';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`redis ${args[0]} timed out`));
      }, 5000);
      socket.connect(this.port, '127.0.0.1', () => {
        socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
      });
      socket.on('data', (d) => {
        data += d;
        if (data.endsWith('\r\n')) {
          clearTimeout(timer);
          socket.end();
          resolve(data.trim());
        }
      });
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Blocks Redis for about `ms` with a busy script (sent, not awaited). */
  busy(ms: number): Promise<string> {
    const script = `local t = redis.call('TIME'); local s = t[1] * 1000 + math.floor(t[2] / 1000); while true do local n = redis.call('TIME'); if n[1] * 1000 + math.floor(n[2] / 1000) - s >= ${ms} then break end end; return 1`;
    return this.command('EVAL', script, '0');
  }

  private async ping(): Promise<boolean> {
    try {
      return (await this.command('PING')) === '+PONG';
    } catch {
      return false;
    }
  }
}

/**
 * One redis-server for a test file, started before its tests and stopped after them; after each
 * test, the services it registered are closed, a killed server is started again, and it is emptied.
 */
export function redisForSuite(): { server: () => RedisServer; services: { close(): Promise<void> }[] } {
  let redis: RedisServer | undefined;
  const services: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.close()));
    if (!redis) return;
    if (!redis.pid) await redis.launch();
    await redis.command('FLUSHALL');
  });
  return {
    server: () => {
      if (!redis) throw new Error('redis-server is not started yet (use it inside a test)');
      return redis;
    },
    services,
  };
}

/** Waits until a rate limiter's Redis client is connected (to every master, on a Cluster). */
export async function redisConnected(svc: { readonly redis: { readonly ready: boolean } | null }, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!svc.redis?.ready) {
    if (Date.now() > deadline) throw new Error(`the Redis client did not connect within ${timeoutMs} ms`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
