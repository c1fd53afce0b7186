// /readyz before a first configuration says why, where the process knows: a kind the API server
// will not let the controller list (403: SLU_SOURCE_READ) holds the first translation; a first
// version refused holds the first apply. It said only "no configuration applied yet". (The
// problems are written here; a real controller on RBAC without a required kind is in
// test/kube/fx-readyz-forbidden.test.ts.)
import { afterEach, describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { startAdminServer } from '../../cmd/admin.ts';
import type { Problem } from '../../controller/problems.ts';
import { freePort } from '../support/sluice-process.ts';

describe('/readyz before a first configuration', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
  });

  async function readyz(problems: Problem[] | undefined): Promise<[number, string]> {
    const port = await freePort();
    app = await startAdminServer(`127.0.0.1:${port}`, { ready: () => false, objects: () => [], ir: () => null, ...(problems ? { problems: () => problems } : {}) }, new Registry());
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    return [res.status, await res.text()];
  }

  it('names the kind that cannot be read, and a first version refused; not what does not hold the apply', async () => {
    const forbidden: Problem = { code: 'SLU_SOURCE_READ', file: 'httproutes.gateway.networking.k8s.io', message: 'HTTPRoute: cannot list/watch (403 forbidden); nothing is translated until it has listed' };
    const refused: Problem = { code: 'SLU_VERSION_REJECTED', message: 'version v1 refused: listener 0.0.0.0:80: bad' };
    const translation: Problem = { code: 'SLU_TRANSLATION', message: 'HTTPRoute a/b: something skipped' };
    expect(await readyz([translation, forbidden, refused])).toEqual([
      503,
      'not ready: no configuration applied yet, while:\nSLU_SOURCE_READ httproutes.gateway.networking.k8s.io: HTTPRoute: cannot list/watch (403 forbidden); nothing is translated until it has listed\nSLU_VERSION_REJECTED version v1 refused: listener 0.0.0.0:80: bad\n',
    ]);
  });

  it('nothing known: the plain line', async () => {
    expect(await readyz([])).toEqual([503, 'not ready: no configuration applied yet\n']);
    await app!.close();
    expect(await readyz(undefined)).toEqual([503, 'not ready: no configuration applied yet\n']);
  });
});
