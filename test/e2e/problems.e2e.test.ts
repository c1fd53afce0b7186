// Problems a user meets in `sluice run`: each is one readable line with a stable code, logged
// once while it lasts, `resolved: <same line>` when it goes away, and listed by /api/status. A
// source that cannot be read (here: a real EMFILE, the process's descriptor limit lowered with
// prlimit) keeps the configuration serving and says so on /readyz and /metrics.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'undici';
import type { Problem } from '../../controller/problems.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { describeIfPossible } from '../support/suite.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /good}}]
    backendRefs: [{name: good, port: 80}]
`;

const ingress = (className?: string) => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain, namespace: default}
spec:
${className ? `  ingressClassName: ${className}\n` : ''}  rules:
  - host: plain.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: good, port: {number: 80}}}}]}
`;

/** The JSON log lines of the process whose message matches. */
function logLines(sluice: SluiceProcess, message: RegExp): { raw: string; line: Record<string, unknown> }[] {
  return sluice
    .logs()
    .split('\n')
    .filter((raw) => raw.startsWith('{'))
    .map((raw) => ({ raw, line: JSON.parse(raw) as Record<string, unknown> }))
    .filter(({ line }) => message.test(String(line.msg)));
}

/** `sluice run` on a folder with one route to a live backend; `stop` ends both and removes the folder. */
async function startWithGoodRoute(prefix: string): Promise<{ dir: string; sluice: SluiceProcess; port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const backend: NamedBackend = await startNamedBackend('good');
  writeFileSync(join(dir, 'gateway.yaml'), `${GATEWAY_YAML}---\n${serviceYaml('good', backend)}`);
  writeFileSync(join(dir, 'good.yaml'), ROUTE);
  const port = await freePort();
  const sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
  return {
    dir,
    sluice,
    port,
    async stop() {
      await sluice.stop();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('problems in sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let stop: () => Promise<void>;
  const problems = async () => ((await (await fetch(`${sluice.admin}/api/status`)).json()) as { problems: Problem[] }).problems;
  /** Another file changes: the folder is read and translated again (seen by the problem that file brings). */
  let touches = 0;
  const reconcileAgain = async () => {
    const name = `widget-${++touches}`;
    writeFileSync(join(dir, 'touch.yaml'), `apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: ${name}}\n`);
    await waitFor(`a reconcile that reads ${name}`, () => logLines(sluice, new RegExp(`Widget ${name}: Sluice does not read this kind`))[0]);
  };

  beforeAll(async () => {
    ({ dir, sluice, stop } = await startWithGoodRoute('sluice-e2e-problems-'));
  });

  afterAll(async () => {
    await stop?.();
  });

  it('a YAML error: one line, shown once, listed by /api/status, and resolved when fixed', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n');
    const [first] = await waitFor('the YAML problem', () => {
      const lines = logLines(sluice, /^SLU_MANIFEST_YAML bad\.yaml: /);
      return lines.length > 0 ? lines : undefined;
    });
    expect(first!.line.msg).toMatch(/^SLU_MANIFEST_YAML bad\.yaml: invalid YAML in document 1 at line \d+, column \d+: [^:;]+; its objects are left out until it parses again$/);
    expect(first!.line).toMatchObject({ level: 40, code: 'SLU_MANIFEST_YAML', file: 'bad.yaml' });
    // The text is in the line once: in its message, not again in another field.
    expect(first!.raw.split('invalid YAML')).toHaveLength(2);
    const listed = (await problems()).filter((p) => p.code === 'SLU_MANIFEST_YAML');
    expect(listed).toEqual([{ code: 'SLU_MANIFEST_YAML', file: 'bad.yaml', message: String(first!.line.msg).replace('SLU_MANIFEST_YAML bad.yaml: ', '') }]);

    await reconcileAgain();
    expect(logLines(sluice, /SLU_MANIFEST_YAML/)).toHaveLength(1);

    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: fixed}\nspec: {ports: [{port: 80}]}\n');
    const resolved = await waitFor('the resolved line', () => logLines(sluice, /^resolved: SLU_MANIFEST_YAML/)[0]);
    expect(resolved.line).toMatchObject({ level: 30, msg: `resolved: ${first!.line.msg}`, code: 'SLU_MANIFEST_YAML', file: 'bad.yaml', resolved: true });
    expect((await problems()).filter((p) => p.code === 'SLU_MANIFEST_YAML')).toEqual([]);
  });

  it('a class-less Ingress: one line saying which class to set, once, resolved when it names one', async () => {
    writeFileSync(join(dir, 'ingress.yaml'), ingress());
    const line = await waitFor('the class-less Ingress problem', () => logLines(sluice, /^SLU_INGRESS_NO_CLASS /)[0]);
    expect(line.line).toMatchObject({ code: 'SLU_INGRESS_NO_CLASS', object: 'Ingress default/plain' });
    expect(line.line.msg).toBe(
      'SLU_INGRESS_NO_CLASS Ingress default/plain names no class and no IngressClass is marked default, so no controller serves it; set spec.ingressClassName: cilium (or mark an IngressClass of Sluice\'s default with ingressclass.kubernetes.io/is-default-class: "true")',
    );
    expect(await problems()).toContainEqual(expect.objectContaining({ code: 'SLU_INGRESS_NO_CLASS', object: 'Ingress default/plain' }));
    await reconcileAgain();
    expect(logLines(sluice, /SLU_INGRESS_NO_CLASS/)).toHaveLength(1);

    writeFileSync(join(dir, 'ingress.yaml'), ingress('cilium'));
    await waitFor('the resolved line', () => logLines(sluice, /^resolved: SLU_INGRESS_NO_CLASS/)[0]);
    expect((await problems()).filter((p) => p.code === 'SLU_INGRESS_NO_CLASS')).toEqual([]);
  });
});

const prlimitReason = process.getuid?.() !== 0 ? 'needs root to lower and raise another process\'s descriptor limit' : null;

describeIfPossible('sluice run out of descriptors', prlimitReason)('sluice run out of file descriptors (EMFILE)', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    ({ dir, sluice, port, stop } = await startWithGoodRoute('sluice-e2e-emfile-'));
  });

  afterAll(async () => {
    await stop?.();
  });

  it('keeps the configuration serving, says why on /readyz and /metrics, and recovers', async () => {
    // Connections opened before the limit drops keep working: they need no new descriptor.
    const admin = new Client(sluice.admin);
    const gateway = new Client(`http://127.0.0.1:${port}`);
    const get = async (client: Client, path: string) => {
      const res = await client.request({ method: 'GET', path });
      return { status: res.statusCode, body: await res.body.text() };
    };
    try {
      expect(await get(gateway, '/good')).toMatchObject({ status: 200, body: expect.stringContaining('"backend":"good"') });
      expect(await get(admin, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
      const soft = execFileSync('prlimit', ['--pid', String(sluice.pid), '--nofile', '--output=SOFT', '--noheadings'], { encoding: 'utf8' }).trim();
      // Soft limit 3: stdin, stdout and stderr take 0-2, so every new descriptor fails with EMFILE.
      execFileSync('prlimit', ['--pid', String(sluice.pid), '--nofile=3:']);
      try {
        await waitFor(
          'the source read problem',
          async () => {
            // Requests on the open connections keep them (and the proxy's to the backend) alive meanwhile.
            expect((await get(gateway, '/good')).status).toBe(200);
            return logLines(sluice, /^SLU_SOURCE_READ .*EMFILE/)[0];
          },
          15_000,
        );
        const readyz = await get(admin, '/readyz');
        expect(readyz.status).toBe(200);
        expect(readyz.body).toBe(
          `ready, serving the last good configuration while:\nSLU_SOURCE_READ ${dir}: cannot read: EMFILE: too many open files; keeping the last good objects of every file under it until it reads again\n`,
        );
        const metrics = (await get(admin, '/metrics')).body;
        expect(metrics).toMatch(/^sluice_source_read_errors 1$/m);
        expect(metrics).toMatch(/^sluice_source_read_errors_total\{cause="EMFILE"\} [1-9]\d*$/m);
        expect(await get(gateway, '/good')).toMatchObject({ status: 200, body: expect.stringContaining('"backend":"good"') });
        expect(sluice.logs()).not.toMatch(/"listeners":0/);
      } finally {
        execFileSync('prlimit', ['--pid', String(sluice.pid), `--nofile=${soft}:`]);
      }
      await waitFor('the resolved line', () => logLines(sluice, /^resolved: SLU_SOURCE_READ .*EMFILE/)[0], 15_000);
      // New connections again, to the same configuration.
      const res = await fetch(`http://127.0.0.1:${port}/good`);
      expect({ status: res.status, body: await res.text() }).toMatchObject({ status: 200, body: expect.stringContaining('"backend":"good"') });
      expect((await (await fetch(`${sluice.admin}/readyz`)).text())).toBe('ready\n');
      expect(await (await fetch(`${sluice.admin}/metrics`)).text()).toMatch(/^sluice_source_read_errors 0$/m);
    } finally {
      await admin.close();
      await gateway.close();
    }
  });
});
