// The admin API of a process with --workers says which version each worker serves: /api/config
// lists them beside the version every serving worker applied, and /readyz names a worker that is
// not on it. (The states are written here: a worker between versions lasts milliseconds for real;
// WorkerPool.workerVersions itself is tested with real threads in test/dataplane/workers.test.ts.)
import { afterEach, describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { startAdminServer } from '../../cmd/admin.ts';
import type { WorkerVersion } from '../../cmd/workers.ts';
import type { IR } from '../../ir/types.ts';
import { freePort } from '../support/sluice-process.ts';

const IR_V1: IR = { version: 'v1', http: { listeners: [], backends: {} }, l4: { services: [] } };

describe('admin API with --workers', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
  });

  async function admin(workers: WorkerVersion[] | undefined, ir: IR | null = IR_V1): Promise<string> {
    const port = await freePort();
    app = await startAdminServer(`127.0.0.1:${port}`, { ready: () => ir !== null, objects: () => [], ir: () => ir, workers: () => workers }, new Registry());
    return `http://127.0.0.1:${port}`;
  }

  it('converged: every worker on the version shown, /readyz plain ready', async () => {
    const url = await admin([{ worker: 0, version: 'v1' }, { worker: 1, version: 'v1' }]);
    const config = (await (await fetch(`${url}/api/config`)).json()) as Record<string, unknown>;
    expect([config.version, config.workers]).toEqual(['v1', [{ worker: 0, version: 'v1' }, { worker: 1, version: 'v1' }]]);
    const ready = await fetch(`${url}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
  });

  it('a worker starting and one already on the next version are named by /readyz, which stays 200', async () => {
    const url = await admin([{ worker: 0, version: 'v2' }, { worker: 1, version: null }]);
    const config = (await (await fetch(`${url}/api/config`)).json()) as Record<string, unknown>;
    expect([config.version, config.workers]).toEqual(['v1', [{ worker: 0, version: 'v2' }, { worker: 1, version: null }]]);
    const ready = await fetch(`${url}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready, serving version v1 while:\nworker 0: serves version v2, not v1 (a change being applied)\nworker 1: starting, serves nothing yet\n']);
  });

  it('one thread: no workers field; before a version, 503', async () => {
    const url = await admin(undefined);
    expect(Object.keys((await (await fetch(`${url}/api/config`)).json()) as object)).toEqual(['version', 'ir']);
    await app!.close();
    const none = await admin([{ worker: 0, version: null }], null);
    expect((await fetch(`${none}/readyz`)).status).toBe(503);
    expect((await fetch(`${none}/api/config`)).status).toBe(503);
  });
});
