// What the manifest folder keeps of a file's text once it is parsed (issue #14: a 10 000-route file
// is ~9 MB). The parser cuts scalars out of each document's text, and V8 makes a cut of 13
// characters or more a view of that text, so a hostname or an apiVersion kept every document's
// whole text alive; and each scalar was a string of its own (`PathPrefix` once per rule). Counted
// for real: the strings a bare Node's heap snapshot holds after a folder of 300 HTTPRoutes loaded.
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FOLDER = join(import.meta.dirname, '..', '..', 'controller', 'sources', 'manifest-folder.ts');
const ROUTES = 300;

/** Loads `dir` with a ManifestFolder in a fresh Node, then counts in a heap snapshot the document texts and the copies of `value`. */
function heapAfterLoad(dir: string, value: string): { documentTexts: number; copies: number; hostnames: string[]; prefix: string; note: string } {
  const script = `
    const { ManifestFolder } = await import(${JSON.stringify(FOLDER)});
    const { getHeapSnapshot } = await import('node:v8');
    const { text } = await import('node:stream/consumers');
    const folder = new ManifestFolder(${JSON.stringify(dir)});
    const load = folder.load();
    const routes = load.snapshot.httpRoutes;
    if (routes.length === 0) throw new Error(JSON.stringify(load.problems.slice(0, 3)));
    const snapshot = JSON.parse(await text(getHeapSnapshot()));
    const fields = snapshot.snapshot.meta.node_fields;
    const types = snapshot.snapshot.meta.node_types[0];
    const type = fields.indexOf('type'), name = fields.indexOf('name'), width = fields.length;
    // Made here, not written out: this script's own text would count.
    const hostMark = ['host', 'number'].join('-'), kindMark = ['kind:', 'HTTPRoute'].join(' ');
    let documentTexts = 0, copies = 0;
    for (let i = 0; i < snapshot.nodes.length; i += width) {
      if (types[snapshot.nodes[i + type]] !== 'string') continue;
      const s = snapshot.strings[snapshot.nodes[i + name]];
      if (s.includes(hostMark) && s.includes(kindMark)) documentTexts++;
      if (s === ${JSON.stringify(value)}) copies++;
    }
    process.stdout.write(JSON.stringify({ documentTexts, copies, hostnames: routes.map((r) => r.spec.hostnames[0]), prefix: routes[0].spec.rules[0].matches[0].path.value, note: routes[0].metadata.annotations.note, folder: typeof folder }));
  `;
  const child = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (child.status !== 0) throw new Error(`node exited with ${child.status}: ${child.stderr}`);
  return JSON.parse(child.stdout) as { documentTexts: number; copies: number; hostnames: string[]; prefix: string; note: string };
}

describe('manifest folder memory', () => {
  it('keeps no document text once parsed, one string per repeated value, and every value as written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-folder-memory-'));
    try {
      const documents = Array.from({ length: ROUTES }, (_, n) =>
        [
          'apiVersion: gateway.networking.k8s.io/v1',
          'kind: HTTPRoute',
          `metadata: {name: route-${n}, namespace: default, annotations: {note: "a-long-note-\\ud800"}}`,
          'spec:',
          // A long unique value (a view of the text before); above, a double-quoted one with a lone surrogate (kept as written).
          `  hostnames: ["host-number-${n}.example.test"]`,
          '  rules:',
          '    - matches: [{path: {type: PathPrefix, value: /a-long-shared-prefix}}]',
          '',
        ].join('\n'),
      );
      writeFileSync(join(dir, 'routes.yaml'), documents.join('---\n'));
      const heap = heapAfterLoad(dir, '/a-long-shared-prefix');
      expect(heap.hostnames).toEqual(Array.from({ length: ROUTES }, (_, n) => `host-number-${n}.example.test`));
      expect(heap.prefix).toBe('/a-long-shared-prefix');
      expect(heap.note).toBe('a-long-note-\ud800');
      // Before: every document's text (300), and the value once per route.
      expect(heap.documentTexts).toBe(0);
      expect(heap.copies).toBeLessThanOrEqual(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
