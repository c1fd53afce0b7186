// The manifest folder compares an edited file with its last bytes and decodes and splits only the
// stretch that differs (issue #14: a 10 000-route file is ~9 MB, read at every edit). Property: after
// every edit of random edit sequences — documents replaced, inserted, removed, swapped, and bytes
// inserted anywhere (document markers, directives, CRLF, multi-byte characters, YAML errors,
// unknown kinds) — the folder serves what a fresh folder reading the same bytes serves: the same
// objects in the same order and the same problems (positions included).
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOSS_SETTLE_MS, ManifestFolder, type FolderLoad } from '../../controller/sources/manifest-folder.ts';

const SEED = Number(process.env.SLUICE_FUZZ_SEED ?? 14_2031);

const route = (name: string, path: string, eol: string) =>
  [`apiVersion: gateway.networking.k8s.io/v1`, `kind: HTTPRoute`, `metadata: {name: ${name}}`, `spec:`, `  rules: [{matches: [{path: {value: "${path}"}}]}]`, ''].join(eol);

const PATHS = ['/a', '/ü', '/日本', '/a---b', '/x', '/😀'];
/** Documents, some with problems (an unknown kind, no name, a YAML error) and comment lines. */
const documentArb = fc.tuple(fc.nat(40), fc.nat(PATHS.length - 1), fc.nat(9), fc.boolean()).map(([n, p, kind, crlf]) => {
  const eol = crlf ? '\r\n' : '\n';
  if (kind === 0) return `apiVersion: v1${eol}kind: Frobnicator${eol}metadata: {name: f${n}}${eol}`;
  if (kind === 1) return `apiVersion: v1${eol}kind: Service${eol}metadata: {}${eol}`;
  if (kind === 2) return `# a comment --- not a marker${eol}${route(`r${n}`, PATHS[p]!, eol)}`;
  return route(`r${n}`, PATHS[p]!, eol);
});
/** Byte strings inserted anywhere: markers (real or not), directives, end markers, breaks, a bad indent. */
const FRAGMENTS = ['\n---\n', '---\n', '\n--- ', '\n----\n', '\n---', '-', '\n%YAML 1.2\n---\n', '\n...\n', '\r\n', 'é', '😀', ' ', '\n', '\n  bad: [\n', '# x\n', 'x'];
type Edit = { kind: number; a: number; b: number; doc: string };
const editArb = fc.record({ kind: fc.nat(6), a: fc.nat(1000), b: fc.nat(1000), doc: documentArb });

function edit(docs: string[], text: string, e: Edit): { docs: string[]; text: string } {
  const at = docs.length === 0 ? 0 : e.a % docs.length;
  switch (e.kind) {
    case 0:
      return joined(docs.map((d, i) => (i === at ? e.doc : d)));
    case 1:
      return joined([...docs.slice(0, at), e.doc, ...docs.slice(at)]);
    case 2:
      return joined(docs.filter((_, i) => i !== at));
    case 3: {
      const other = docs.length === 0 ? 0 : e.b % docs.length;
      return joined(docs.map((d, i) => (i === at ? docs[other]! : i === other ? docs[at]! : d)));
    }
    default: {
      // Bytes inserted at any place of the text (documents no longer follow it: later edits take the
      // text as it is), or near a document marker (where a byte decides whether a line is one).
      const markers = [...text.matchAll(/\n---/g)].map((m) => m.index);
      const position = e.kind === 5 && markers.length > 0 ? Math.min(text.length, markers[e.a % markers.length]! + (e.b % 6)) : text.length === 0 ? 0 : e.a % (text.length + 1);
      const next = text.slice(0, position) + FRAGMENTS[e.b % FRAGMENTS.length] + text.slice(position);
      return { docs: next.split(/(?<=\n)---\n/), text: next };
    }
  }
}

const joined = (docs: string[]) => ({ docs, text: docs.join('---\n') });

/** Objects without what the folder stamps on first sight (uid, time, generation), and the problems. */
function served(load: FolderLoad): unknown {
  const objects = Object.values(load.snapshot).flat().map((o) => {
    const { uid: _u, creationTimestamp: _c, generation: _g, resourceVersion: _r, ...metadata } = (o as { metadata: Record<string, unknown> }).metadata;
    return { ...(o as object), metadata };
  });
  return { objects, problems: load.problems };
}

describe('ManifestFolder: an edited file read by its changed bytes', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-folder-bytes-'));
    // A file that lost objects is taken once that loss has stood LOSS_SETTLE_MS: the clock is moved on instead of waited.
    jest.useFakeTimers({ now: Date.now() + 60_000, doNotFake: ['setTimeout', 'setInterval', 'setImmediate', 'nextTick', 'queueMicrotask'] });
  });
  afterEach(() => {
    jest.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves what a fresh read of the same bytes serves, after every edit of random edit sequences', () => {
    fc.assert(
      fc.property(fc.array(documentArb, { minLength: 0, maxLength: 12 }), fc.array(editArb, { minLength: 1, maxLength: 10 }), (initial, edits) => {
        const file = join(dir, 'r.yaml');
        let state = joined(initial);
        writeFileSync(file, state.text);
        const folder = new ManifestFolder(dir);
        folder.load();
        for (const e of edits) {
          state = edit(state.docs, state.text, e);
          writeFileSync(file, state.text);
          let load = folder.load();
          if (load.settling.length > 0) {
            jest.setSystemTime(Date.now() + LOSS_SETTLE_MS + 100);
            load = folder.load();
          }
          const fresh = new ManifestFolder(dir).load();
          // A file that does not parse keeps its last good objects (a fresh folder has none): the same
          // problem, named alike but for what it says of them (kept, or left out).
          const yaml = (l: FolderLoad) =>
            l.problems.filter((p) => p.code === 'SLU_MANIFEST_YAML').map((p) => ({ ...p, message: p.message.replace(/; (?:keeping this file's last good objects|its objects are left out) until it parses again$/, '') }));
          if (yaml(load).length > 0) expect(yaml(load)).toEqual(yaml(fresh));
          else expect(served(load)).toEqual(served(fresh));
        }
      }),
      { seed: SEED, numRuns: 150 },
    );
  });
});
