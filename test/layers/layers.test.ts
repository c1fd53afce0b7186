// The layer rule (.dependency-cruiser.cjs) catches what it says it catches: the project's own config
// runs, through the real dependency-cruiser CLI, over a small tree shaped like the repository in
// which every allowed import is present once and every rule is broken once.
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** Allowed: each layer's legitimate imports, the demo loader included. */
const ALLOWED: Record<string, string> = {
  'bin/sluice.js': "await import('../cmd/cli.ts');\n",
  'ir/types.ts': "import { createHash } from 'node:crypto';\nexport type IR = { v: string };\nexport const h = createHash;\n",
  'controller/translate.ts': "import type { IR } from '../ir/types.ts';\nexport const translate = (): IR | null => null;\n",
  'dataplane/server.ts': "import type { IR } from '../ir/types.ts';\nimport { pino } from 'pino';\nexport const serve = (_: IR) => pino;\n",
  'bpf/agent.ts': "import type { IR } from '../ir/types.ts';\nexport const sync = (_: IR) => 0;\n",
  'cmd/cli.ts': "import { translate } from '../controller/translate.ts';\nimport { serve } from '../dataplane/server.ts';\nimport { sync } from '../bpf/agent.ts';\nimport { loadDemo } from './standalone.ts';\nexport const run = [translate, serve, sync, loadDemo];\n",
  'cmd/standalone.ts': "export const loadDemo = (): Promise<typeof import('../test/support/demo/demo-backends.ts')> => import('../test/support/demo/demo-backends.ts');\n",
  'test/support/demo/demo-backends.ts': "import { WebSocketServer } from 'ws';\nimport { translate } from '../../../controller/translate.ts';\nexport const demo = [WebSocketServer, translate];\n",
  'test/support/demo/echo.ts': 'export const echo = 1;\n',
};

/** Each rule broken once: file → [rule, the import it reports]. */
const BROKEN: Record<string, [string, string]> = {
  'ir/version.ts': ['ir-is-a-leaf', "import { translate } from '../controller/translate.ts';"],
  'dataplane/types-only.ts': ['dataplane-only-ir', "import type { sync } from '../bpf/agent.ts';"],
  'bpf/maps.ts': ['bpf-only-ir', "import { serve } from '../dataplane/server.ts';"],
  'controller/wiring.ts': ['controller-not-dataplane', "import { serve } from '../dataplane/server.ts';"],
  'dataplane/admin-user.ts': ['cmd-is-the-top', "import { run } from '../cmd/cli.ts';"],
  'controller/echo-user.ts': ['test-doubles-stay-in-tests', "import { echo } from '../test/support/demo/echo.ts';"],
  'cmd/observe.ts': ['demo-loader-only', "const demo = () => import('../test/support/demo/demo-backends.ts');"],
  'dataplane/dev-dependency.ts': ['runtime-not-dev-dependencies', "import { WebSocket } from 'ws';"],
  'controller/missing.ts': ['resolvable', "import { gone } from './gone.ts';"],
  'bin/other.js': ['bin-starts-cmd', "import '../controller/translate.ts';"],
};

function cruise(files: Record<string, string>): { status: number; violations: { rule: string; from: string; to: string }[] } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-layers-'));
  try {
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(join(dir, dirname(file)), { recursive: true });
      writeFileSync(join(dir, file), text);
    }
    // The real package.json (which packages are devDependencies) and tsconfig; node_modules linked.
    for (const f of ['package.json', 'tsconfig.json']) copyFileSync(join(ROOT, f), join(dir, f));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    const depcruise = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'), '--config', join(ROOT, '.dependency-cruiser.cjs'), ...args, 'bin', 'cmd', 'ir', 'controller', 'dataplane', 'bpf', 'test'],
        { cwd: dir, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      );
    // The exit status of the default output (what `npm run lint:layers` and `npm test` see; the
    // JSON output always exits 0), the violations from the JSON output.
    const status = depcruise().status ?? -1;
    const report = JSON.parse(depcruise('--output-type', 'json').stdout) as { summary: { violations: { from: string; to: string; rule: { name: string } }[] } };
    return { status, violations: report.summary.violations.map((v) => ({ rule: v.rule.name, from: v.from, to: v.to })) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the layer rule', () => {
  it('passes a tree that keeps it, demo loader included', () => {
    expect(cruise(ALLOWED)).toEqual({ status: 0, violations: [] });
  });

  it('reports each broken rule at the import that breaks it, and fails', () => {
    const files = { ...ALLOWED, ...Object.fromEntries(Object.entries(BROKEN).map(([f, [, line]]) => [f, `${line}\nexport const x = 1;\n`])) };
    // A static import of the demo from the loader breaks two rules; a cycle is reported once.
    files['cmd/standalone.ts'] = "import { echo } from '../test/support/demo/echo.ts';\nexport const loadDemo = echo;\n";
    files['controller/a.ts'] = "import { b } from './b.ts';\nexport const a = () => b;\n";
    files['controller/b.ts'] = "import { a } from './a.ts';\nexport const b = () => a;\n";
    const { status, violations } = cruise(files);
    expect(status).not.toBe(0);
    const seen = violations.map((v) => `${v.rule} ${v.from}`).sort();
    expect(seen).toEqual(
      [
        ...Object.entries(BROKEN).map(([file, [rule]]) => `${rule} ${file}`),
        'demo-loader-is-dynamic cmd/standalone.ts',
        'demo-loader-loads-the-demo cmd/standalone.ts',
        'no-cycles controller/a.ts',
      ].sort(),
    );
  });
});
