// Standalone source: every YAML file under a folder, multi-document, watched.
//
// It plays the API server's part for what translation relies on: defaulting
// the namespace, adding the `kubernetes.io/metadata.name` label to
// Namespaces, stamping creationTimestamp on first sight, and raising
// `metadata.generation` when an object's spec changes.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, realpathSync, statSync, watch, type Dirent, type FSWatcher } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { isScalar, LineCounter, parseAllDocuments, visit, type Document, type Node } from 'yaml';
import type { Problem } from '../problems.ts';
import { shapeProblem } from './shapes.ts';
import { hasInputSchema, inputProblem, readsApiGroup, withoutNulls } from '../schema/validate.ts';
import { ignoredKindText, toolFileText } from './ignored-kinds.ts';
import { stableJson } from '../../ir/version.ts';
import {
  CLUSTER_SCOPED_KINDS,
  STATUS_INPUT_KINDS,
  SNAPSHOT_FIELD_BY_KIND,
  emptySnapshot,
  namespacedName,
  objectKey,
  snapshotArrays,
  type InputSnapshot,
  type KubeObject,
} from './objects.ts';

/** A problem found while reading the folder; `file` is relative to it (the folder itself: its path as given). */
export type SourceProblem = Problem & { file: string };

/** A file or folder that could not be read, by errno code (EMFILE, EACCES, ENOENT, ENOTDIR, EIO...). */
export interface ReadError {
  file: string;
  cause: string;
}

export interface FolderLoad {
  snapshot: InputSnapshot;
  /**
   * Problems found while reading. The objects of a file that failed to parse or to be read are its
   * last good ones; where a folder could not be listed, every file under it keeps its last good objects.
   */
  problems: SourceProblem[];
  /** What could not be read this time (also among `problems`, as SLU_SOURCE_READ). */
  readErrors: ReadError[];
  /** False when no file was added, removed or changed, and no read error came or went, since the previous load. */
  changed: boolean;
  /**
   * Files that lost objects, not yet for LOSS_SETTLE_MS (a write may still be under way): they
   * keep their last good objects this time; the caller reads again after LOSS_SETTLE_MS.
   */
  settling: string[];
  /** Folders under it not read (leftOut: dependency and VCS folders), relative to it, in name order. */
  leftOut: string[];
}

interface FileState {
  /** The file's bytes as last read. */
  content: Buffer;
  /** Its documents (absent: parsed whole, a text with directives). */
  documents?: Documents;
  /** What stat said when this content was read: the same again, the file is not read again. */
  stat: string;
  objects: KubeObject[];
  /** Problems inside an otherwise readable file (unknown kinds, objects without a name). */
  problems: Problem[];
}

interface Tracked {
  specHash: string;
  generation: number;
  /** When this reader first saw the object: its creationTimestamp unless the manifest sets one (then that one, edits included, as a fresh read would take it). */
  firstSeen: string;
  uid: string;
  /** The parsed object last stamped, and the result: the same parsed object gives the same stamped one (same identity: translation reuses its work). */
  source: KubeObject;
  stamped: KubeObject;
  /** The assembly that last took it (one that meets it again has a duplicate), and from which file. */
  seen: number;
  file: string;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/** Most objects an edit may replace for load() to patch the previous snapshot rather than assemble it again. */
const FEW_SWAPS = 64;

/**
 * A file written in place (truncate, then write) reads empty or cut short for a moment; a read in
 * that moment would drop its objects and serve 404s until the next read (seen in the soak bench
 * under load). A file modified this recently is still being written: read again once it settles.
 * A change while idle is read at once (controller/debounce.ts), so these rules are what stand
 * between a half-written file and the served configuration.
 */
export const SETTLE_MS = 50;

/**
 * A file that lost objects keeps its last good ones until the same content has been seen for
 * this long. The file's age alone (SETTLE_MS) did not suffice: on a loaded machine (load 18 on
 * 2 cores, the soak bench) the writer was descheduled between its truncate and its write for
 * longer than 50 ms, the empty file read as settled, and a route answered 404 for 70 ms. Only
 * removals wait (objects added or changed are taken at once): deleting routes by editing a file
 * takes this much longer, which nobody waits on.
 */
export const LOSS_SETTLE_MS = 500;

export class ManifestFolder {
  readonly dir: string;
  /** Files that lost objects: the lossy content and when it was first read (see LOSS_SETTLE_MS). */
  private readonly lossSeen = new Map<string, { content: Buffer; since: number }>();
  /**
   * Files gone from the folder whose objects are kept a while (LOSS_SETTLE_MS), by when they were
   * first missed: an editor saving by renaming the file away and writing it anew (Emacs, vim with
   * backupcopy=no), or `git checkout` replacing it, leaves no file for a moment, and a read then
   * unbound its listeners and refused connections until the new file was read (measured: 27 of
   * 300 requests refused). Such a file is assembled after the files present, its duplicates not
   * reported (a file renamed: the new name's objects win, nothing to say).
   */
  private readonly gone = new Map<string, { since: number; assembled: boolean }>();
  private readonly files = new Map<string, FileState>();
  /** Files whose current content failed to parse: content hash and the problem. */
  private readonly broken = new Map<string, { content: Buffer; stat: string; problem: SourceProblem }>();
  private readonly tracked = new Map<string, Tracked>();
  /** Each parsed object's key (objectKey), by identity. */
  private readonly keys = new WeakMap<KubeObject, string>();
  private assemblies = 0;
  private readonly now: () => Date;
  /** The read errors of the previous load, to tell when one comes or goes. */
  private lastReadErrors = '';
  /** Every file's documents as last loaded (looked up by text only when many are not where they were: known()). */
  private documents: { content: Buffer; documents: Documents }[] = [];
  /** The last snapshot and the problems its assembly found, returned again while nothing changed. */
  private assembled: { snapshot: InputSnapshot; problems: SourceProblem[] } | null = null;

  constructor(dir: string, now: () => Date = () => new Date()) {
    this.dir = dir;
    this.now = now;
  }

  /**
   * Reads the folder again; unchanged files are not re-parsed. A read error never empties the
   * configuration: what could not be read keeps its last good objects.
   */
  load(): FolderLoad {
    const problems: SourceProblem[] = [];
    const readErrors: ReadError[] = [];
    const settling: string[] = [];
    // `keeping` undefined: nothing of it was read before (a first load, `sluice translate`), so nothing is kept.
    const unreadable = (file: string, err: unknown, keeping: string | undefined) => {
      readErrors.push({ file, cause: errnoCode(err) });
      problems.push({ code: 'SLU_SOURCE_READ', file, message: `cannot read: ${errnoText(err)}; ${keeping === undefined ? 'its objects are left out' : `keeping ${keeping}`} until it reads again` });
    };
    const listing = listManifestFiles(this.dir);
    const unlisted = listing.failed.map((f) => relative(this.dir, f.path));
    for (const [i, failed] of listing.failed.entries()) unreadable(unlisted[i] || this.dir, failed.err, this.files.size > 0 ? 'the last good objects of every file under it' : undefined);
    // Files under a folder that could not be listed are still there as far as we know.
    const underUnlisted = (file: string) => unlisted.some((u) => u === '' || file === u || file.startsWith(`${u}${sep}`));
    const seenFiles = new Set<string>([...this.files.keys(), ...this.broken.keys()].filter(underUnlisted));
    let changed = this.files.size === 0;
    /** Files read before whose content changed and parsed, with their objects before; any other change (a file new, gone, broken or mended, a read error) is `reshaped`. */
    const edited: { file: string; before: KubeObject[] }[] = [];
    let reshaped = this.files.size === 0;
    const documents: { content: Buffer; documents: Documents }[] = [];
    // The last load's documents by text, made only if many documents are not where they were in their file.
    let byText: Map<string, ParsedDocument> | null = null;
    const knownDocuments = (): Map<string, ParsedDocument> => {
      if (byText === null) {
        byText = new Map();
        for (const { content, documents: d } of this.documents) {
          for (let i = 0; i < d.parsed.length; i++) if (d.parsed[i] !== null) byText.set(documentText(content, d, i), d.parsed[i]!);
        }
      }
      return byText;
    };
    for (const path of listing.files) {
      const file = relative(this.dir, path);
      seenFiles.add(file);
      // Back: assembled among the files present again, if an assembly put it last meanwhile.
      if (this.gone.get(file)?.assembled) changed = reshaped = true;
      this.gone.delete(file);
      const loaded = this.files.get(file);
      const known = this.broken.get(file);
      // Stat first (the 2 s safety poll reads nothing that did not change): size, inode, and the
      // modification and change times in nanoseconds. A file that is settling a loss is read again.
      const stat = statKey(path);
      if (stat !== null && !this.lossSeen.has(file)) {
        if (loaded?.stat === stat && known === undefined) {
          problems.push(...loaded.problems.map((p) => ({ ...p, file })));
          if (loaded.documents) documents.push({ content: loaded.content, documents: loaded.documents });
          continue;
        }
        if (known?.stat === stat) {
          problems.push(known.problem);
          continue;
        }
      }
      // The bytes, not a text: an edited file is compared with its last bytes natively, and only the
      // stretch that differs is decoded and split (a 10 000-route file is ~9 MB).
      let content: Buffer;
      try {
        content = readFileSync(path);
      } catch (err) {
        unreadable(file, err, loaded === undefined ? undefined : "this file's last good objects");
        continue;
      }
      if (loaded?.content.equals(content) && known === undefined) {
        loaded.stat = stat ?? '';
        problems.push(...loaded.problems.map((p) => ({ ...p, file })));
        if (loaded.documents) documents.push({ content: loaded.content, documents: loaded.documents });
        continue;
      }
      if (known?.content.equals(content)) {
        known.stat = stat ?? '';
        problems.push(known.problem);
        continue;
      }
      const parsed = parseManifestDocuments(content, knownDocuments, loaded);
      if (loaded !== undefined && !('error' in parsed) && parsed.objects.length < loaded.objects.length && !this.lossSettled(file, path, content)) {
        settling.push(file);
        problems.push(...loaded.problems.map((p) => ({ ...p, file })));
        continue;
      }
      this.lossSeen.delete(file);
      changed = true;
      if (loaded === undefined || known !== undefined || 'error' in parsed) reshaped = true;
      else edited.push({ file, before: loaded.objects });
      if ('error' in parsed) {
        // A bad file never replaces its last good content.
        const problem: SourceProblem = { code: 'SLU_MANIFEST_YAML', file, message: `${parsed.error}; ${loaded === undefined ? 'its objects are left out' : "keeping this file's last good objects"} until it parses again` };
        this.broken.set(file, { content, stat: stat ?? '', problem });
        problems.push(problem);
        continue;
      }
      this.broken.delete(file);
      problems.push(...parsed.problems.map((p) => ({ ...p, file })));
      if (parsed.documents) documents.push({ content, documents: parsed.documents });
      this.files.set(file, { content, stat: stat ?? '', objects: parsed.objects, problems: parsed.problems, documents: parsed.documents });
    }
    // Kept: the documents of the files as they are now (a document edited away is forgotten).
    this.documents = documents;
    for (const file of [...this.files.keys()]) {
      if (!seenFiles.has(file)) {
        const kept = this.files.get(file)!;
        const missed = this.gone.get(file) ?? { since: Date.now(), assembled: false };
        if (kept.objects.length > 0 && Date.now() - missed.since < LOSS_SETTLE_MS) {
          // Where objects are defined twice, the copy of another file now wins: assembled again.
          if (!this.gone.has(file) && this.assembled?.problems.some((p) => p.code === 'SLU_MANIFEST_DUPLICATE')) changed = reshaped = true;
          this.gone.set(file, missed);
          settling.push(file);
          problems.push(...kept.problems.map((p) => ({ ...p, file })));
          continue;
        }
        this.gone.delete(file);
        this.files.delete(file);
        this.lossSeen.delete(file);
        changed = reshaped = true;
      }
    }
    for (const file of [...this.broken.keys()]) {
      // A broken file removed takes its problem with it: that is a change too.
      if (!seenFiles.has(file)) {
        this.broken.delete(file);
        changed = reshaped = true;
      }
    }
    const readErrorsKey = JSON.stringify(readErrors);
    if (readErrorsKey !== this.lastReadErrors) changed = reshaped = true;
    this.lastReadErrors = readErrorsKey;
    const patched = changed && !reshaped && this.assembled !== null ? this.patch(this.assembled.snapshot, edited) : null;
    if (patched) this.assembled = { snapshot: patched, problems: this.assembled!.problems };
    else if (changed || this.assembled === null) {
      const found: SourceProblem[] = [];
      this.assembled = { snapshot: this.assemble(found), problems: found };
    }
    problems.push(...this.assembled.problems);
    return { snapshot: this.assembled.snapshot, problems, readErrors, changed, settling, leftOut: listing.leftOut.map((f) => relative(this.dir, f)) };
  }

  /** Whether this loss of objects (the file's content `content`) has stood for LOSS_SETTLE_MS. */
  private lossSettled(file: string, path: string, content: Buffer): boolean {
    const seen = this.lossSeen.get(file);
    const now = Date.now();
    if (seen === undefined || !seen.content.equals(content)) {
      this.lossSeen.set(file, { content, since: now });
      return false;
    }
    return now - seen.since >= LOSS_SETTLE_MS && !modifiedWithin(path, SETTLE_MS);
  }

  /**
   * Calls `onChange` (debounced by the caller) whenever something under the folder changes. One
   * watch per folder, not a recursive one: on Linux Node's recursive watch follows each file by its
   * inode, so after a file is replaced by a rename (editors, `git checkout`, a writer that renames a
   * finished file in) it heard nothing more of that file and only the poll saw its later edits
   * (measured: 1.3 s p50 instead of milliseconds). A folder's own watch hears every entry of it.
   */
  watch(onChange: () => void): () => void {
    const watchers = new Map<string, FSWatcher>();
    /** Watches every folder under the root, each once; returns them. */
    const follow = (): Set<string> => {
      const folders = listFolders(this.dir);
      for (const folder of folders) {
        if (watchers.has(folder)) continue;
        try {
          const watcher = watch(folder, (event, name) => {
            // Only what the folder's reading sees: a manifest file or a folder. Not an editor's swap
            // file or a file written beside a manifest before it is renamed in, whose run would find
            // nothing and make the rename that follows wait as a burst (controller/debounce.ts).
            // Also a ConfigMap volume's update: the kubelet swaps its `..data` symlink, the files' own
            // symlinks through it stay as they were (heard by the 2 s poll only, before).
            // Whether the entry is a folder is read from the folder listing follow() makes on a
            // 'rename' (an entry came or went; readdir's entry types), not by a stat of the entry:
            // a stat of a file being written waits for the writer (1-2 ms each, measured on a 9 MB
            // manifest written beside its target before the rename), and a write makes several events.
            const path = name === null ? null : join(folder, String(name));
            const wasFolder = path !== null && watchers.has(path);
            const folders = event === 'rename' ? follow() : null; // an entry came or went: maybe a folder
            const relevant = path === null || wasFolder || folders?.has(path) === true || name === '..data' || (!String(name).startsWith('.') && MANIFEST_FILE.test(path));
            if (relevant) onChange();
          });
          watcher.on('error', () => undefined);
          watchers.set(folder, watcher);
        } catch {
          // gone or unreadable: the poll and the load's own read errors cover it
        }
      }
      for (const [folder, watcher] of watchers) {
        if (folders.has(folder)) continue;
        watcher.close();
        watchers.delete(folder);
      }
      return folders;
    };
    follow();
    // fs.watch misses some changes (network filesystems, a folder made and filled at once): a slow poll backs it up.
    const poll = setInterval(() => {
      follow();
      onChange();
    }, 2000);
    poll.unref();
    return () => {
      for (const watcher of watchers.values()) watcher.close();
      clearInterval(poll);
    };
  }

  /**
   * The snapshot of every file's objects, the first of a key (files in name order) winning. Its
   * work is a lookup per object: keys are kept by object identity (an unchanged document's objects
   * are the same), and duplicates and objects gone are told by the assembly that last saw each key.
   */
  private assemble(problems: SourceProblem[]): InputSnapshot {
    const snapshot = emptySnapshot();
    const arrays = snapshotArrays(snapshot);
    const pass = ++this.assemblies;
    const files = [...this.files.keys()].sort();
    // Files gone a moment ago (this.gone) last: an object another file now holds is that file's.
    for (const file of [...files.filter((f) => !this.gone.has(f)), ...files.filter((f) => this.gone.has(f))]) {
      const missed = this.gone.get(file);
      if (missed) missed.assembled = true;
      for (const obj of this.files.get(file)!.objects) {
        let key = this.keys.get(obj);
        if (key === undefined) {
          key = objectKey(obj);
          this.keys.set(obj, key);
        }
        const known = this.tracked.get(key);
        if (known?.seen === pass && missed) continue;
        if (known?.seen === pass) {
          problems.push({ code: 'SLU_MANIFEST_DUPLICATE', file, object: key, message: `${key} is also defined in ${known.file}; using that one (remove one of the two)` });
          continue;
        }
        arrays[SNAPSHOT_FIELD_BY_KIND[obj.kind]].push(this.stampMetadata(key, obj, known, file, pass));
      }
    }
    for (const [key, t] of this.tracked) if (t.seen !== pass) this.tracked.delete(key);
    return snapshot;
  }

  /**
   * The snapshot `assemble` would make when the only change is `edited` files whose objects changed in
   * a few places, each a new object for the same key where the one it replaces was taken (no
   * duplicate involved): the previous snapshot with those objects stamped and swapped in (their
   * kinds' arrays copied, natively). Null when that is not the change: then assemble.
   */
  private patch(previous: InputSnapshot, edited: { file: string; before: KubeObject[] }[]): InputSnapshot | null {
    const swaps: { key: string; obj: KubeObject; known: Tracked; file: string }[] = [];
    for (const { file, before } of edited) {
      const objects = this.files.get(file)!.objects;
      if (objects.length !== before.length) return null;
      for (let i = 0; i < objects.length; i++) {
        const obj = objects[i]!;
        const old = before[i]!;
        if (obj === old) continue;
        const key = this.keys.get(old);
        const known = key === undefined ? undefined : this.tracked.get(key);
        if (known === undefined || known.source !== old || known.file !== file || objectKey(obj) !== key || swaps.length >= FEW_SWAPS) return null;
        swaps.push({ key, obj, known, file });
      }
    }
    const arrays = { ...snapshotArrays(previous) };
    const copied = new Set<string>();
    const at: number[] = [];
    for (const { obj, known } of swaps) {
      const field = SNAPSHOT_FIELD_BY_KIND[obj.kind]!;
      const i = arrays[field].indexOf(known.stamped);
      if (i < 0) return null;
      at.push(i);
    }
    // Nothing is changed above: the swaps are made from here on.
    for (const [n, { key, obj, known, file }] of swaps.entries()) {
      const field = SNAPSHOT_FIELD_BY_KIND[obj.kind]!;
      if (!copied.has(field)) {
        arrays[field] = arrays[field].slice();
        copied.add(field);
      }
      this.keys.set(obj, key);
      arrays[field][at[n]!] = this.stampMetadata(key, obj, known, file, known.seen);
    }
    return arrays as InputSnapshot;
  }

  private stampMetadata(key: string, obj: KubeObject, known: Tracked | undefined, file: string, pass: number): KubeObject {
    if (known !== undefined) {
      known.seen = pass;
      known.file = file;
      if (known.source === obj) return known.stamped;
    }
    const { metadata, status, ...rest } = obj;
    const specHash = sha256(stableJson(rest));
    let t = known;
    if (!t) {
      t = {
        specHash,
        generation: 1,
        firstSeen: this.now().toISOString().replace(/\.\d+Z$/, 'Z'),
        uid: sha256(`${key}/${this.now().getTime()}`).slice(0, 32),
        source: obj,
        stamped: obj,
        seen: pass,
        file,
      };
      this.tracked.set(key, t);
    } else if (t.specHash !== specHash) {
      t.specHash = specHash;
      t.generation += 1;
    }
    t.source = obj;
    t.stamped = {
      ...rest,
      // Status is Sluice's to compute, except where it is the input (a Pod's IPs); it never bumps generation.
      ...(STATUS_INPUT_KINDS.has(obj.kind) && status !== undefined ? { status } : {}),
      metadata: {
        ...metadata,
        generation: t.generation,
        creationTimestamp: metadata.creationTimestamp ?? t.firstSeen,
        uid: metadata.uid ?? t.uid,
        resourceVersion: String(t.generation),
      },
    } as KubeObject;
    return t.stamped;
  }
}

/** One document's text parsed: its objects, and how many YAML documents it holds (0 or 1). */
interface ParsedDocument {
  objects: KubeObject[];
  docs: number;
  /** Line breaks in its text (where the next document starts). */
  lines: number;
}

interface ParsedManifest {
  objects: KubeObject[];
  problems: Problem[];
  /** The file's documents (absent: a text with directives, parsed whole). */
  documents?: Documents;
}

/** A file's documents in order: where each starts (byte offset) and what it held (null: it had a problem, parsed again next time). */
interface Documents {
  starts: number[];
  parsed: (ParsedDocument | null)[];
}

/** Document `i`'s text. */
function documentText(content: Buffer, documents: Documents, i: number): string {
  return content.toString('utf8', documents.starts[i], documents.starts[i + 1] ?? content.length);
}

const DOCUMENT_MARKER = Buffer.from('\n---');

/**
 * Where each document of a multi-document text starts, between `from` (a document's start) and
 * `to`: lines that begin with `---` alone or before content, which nothing inside a document can
 * look like. Bytes, searched natively (ASCII: a multi-byte character never holds these bytes).
 */
function documentStarts(content: Buffer, from: number, to: number): number[] {
  const starts = [from];
  for (let at = content.indexOf(DOCUMENT_MARKER, from); at !== -1 && at + 1 < to; at = content.indexOf(DOCUMENT_MARKER, at + 1)) {
    const next = content[at + 4];
    if (next === undefined || next === 0x20 || next === 0x09 || next === 0x0d || next === 0x0a) starts.push(at + 1);
  }
  return starts;
}

/**
 * A line that begins with a directive (`%`) or a document end marker (`...`): such a text is parsed
 * whole. Tested on each document decoded (each begins a line): the previous file had none, so a new
 * one holds a changed byte, which is in the stretch decoded.
 */
const DIRECTIVE_LINE = /^(%|\.\.\.)/m;

function parseWhole(content: Buffer): ParsedManifest | { error: string } {
  const objects: KubeObject[] = [];
  const problems: Problem[] = [];
  const docs = parseDocuments(content.toString('utf8'), 0, 0, objects, problems, stringInterner());
  return typeof docs === 'number' ? { objects, problems } : docs;
}

/** How many bytes `a` and `b` share from their start: compared natively 64 KiB at a time. */
function commonPrefix(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  let at = 0;
  while (at < n) {
    const end = Math.min(n, at + 65_536);
    if (a.compare(b, at, end, at, end) !== 0) break;
    at = end;
  }
  while (at < n && a[at] === b[at]) at++;
  return at;
}

/** How many bytes `a` and `b` share at their end, at most `limit`. */
function commonSuffix(a: Buffer, b: Buffer, limit: number): number {
  let length = 0;
  while (length < limit) {
    const size = Math.min(limit - length, 65_536);
    if (a.compare(b, b.length - length - size, b.length - length, a.length - length - size, a.length - length) !== 0) break;
    length += size;
  }
  while (length < limit && a[a.length - 1 - length] === b[b.length - 1 - length]) length++;
  return length;
}

/**
 * Parses one multi-document YAML text into the objects Sluice reads, with defaults applied.
 * A text with directives (`%`) or document end markers (`...`) is parsed whole.
 */
export function parseManifest(text: string): Omit<ParsedManifest, 'documents'> | { error: string } {
  const parsed = parseManifestDocuments(Buffer.from(text), () => new Map());
  return 'error' in parsed ? parsed : { objects: parsed.objects, problems: parsed.problems };
}

/**
 * Up to this many documents between the file's unchanged start and end are looked up among the
 * previous ones of that stretch only; more (documents reordered) among every file's (`known()`).
 */
const SMALL_EDIT_DOCUMENTS = 64;

/**
 * `previous`: the file as last parsed. Its bytes are compared with the new ones from the start and
 * from the end (natively): the documents wholly inside the unchanged start and end are the
 * previous ones (objects, positions, line counts), taken without decoding them; the stretch between
 * is decoded and split, and its documents looked up among the previous ones of that stretch (an
 * edit, insertion or removal of a few documents). Only a long stretch is looked up in `known()`
 * (every document of every file by its text, which one edit must not pay).
 */
function parseManifestDocuments(content: Buffer, known: () => Map<string, ParsedDocument>, previous?: { content: Buffer; documents?: Documents }): ParsedManifest | { error: string } {
  const objects: KubeObject[] = [];
  const problems: Problem[] = [];
  const before = previous?.documents;
  const old = previous?.content;
  // Documents 0..head-1 and tail.. of the previous file are unchanged; the bytes from `from` to `to` are new.
  let head = 0;
  let tail = before?.starts.length ?? 0;
  let from = 0;
  let to = content.length;
  if (before !== undefined && old !== undefined) {
    const prefix = commonPrefix(old, content);
    const suffix = commonSuffix(old, content, Math.min(old.length, content.length) - prefix);
    const starts = before.starts;
    // A document is unchanged when its bytes and the `---` line after it (the marker and the byte
    // that makes it one) are inside the common start; or, at the end, from the line break before it.
    while (head < starts.length - 1 && starts[head + 1]! + 4 <= prefix && before.parsed[head] !== null) head++;
    while (tail > head && starts[tail - 1]! - 1 >= old.length - suffix && before.parsed[tail - 1] !== null) tail--;
    from = starts[head] ?? 0;
    to = tail < starts.length ? starts[tail]! + content.length - old.length : content.length;
  }
  const middle = from < to ? documentStarts(content, from, to) : [];
  let lookup = known;
  if (before !== undefined && old !== undefined && tail - head <= SMALL_EDIT_DOCUMENTS && middle.length <= SMALL_EDIT_DOCUMENTS) {
    const stretch = new Map<string, ParsedDocument>();
    for (let i = head; i < tail; i++) if (before.parsed[i] !== null) stretch.set(documentText(old, before, i), before.parsed[i]!);
    lookup = () => stretch;
  }
  const starts: number[] = before === undefined ? [] : before.starts.slice(0, head);
  const parsed: (ParsedDocument | null)[] = before === undefined ? [] : before.parsed.slice(0, head);
  let docNumber = 0;
  let line = 0;
  const intern = stringInterner();
  for (let i = 0; i < head; i++) {
    const document = before!.parsed[i]!;
    for (let o = 0; o < document.objects.length; o++) objects.push(document.objects[o]!);
    docNumber += document.docs;
    line += document.lines;
  }
  for (let i = 0; i < middle.length; i++) {
    const chunk = content.toString('utf8', middle[i], middle[i + 1] ?? to);
    if (DIRECTIVE_LINE.test(chunk)) return parseWhole(content);
    starts.push(middle[i]!);
    const cached = lookup().get(chunk);
    if (cached) {
      for (let o = 0; o < cached.objects.length; o++) objects.push(cached.objects[o]!);
      parsed.push(cached);
      docNumber += cached.docs;
      line += cached.lines;
    } else {
      const before = { objects: objects.length, problems: problems.length };
      const docs = parseDocuments(chunk, docNumber, line, objects, problems, intern);
      if (typeof docs !== 'number') return docs;
      // One with problems is parsed again next time: its problems name its position in the file.
      const lines = chunk.split('\n').length - 1;
      parsed.push(problems.length === before.problems ? { objects: objects.slice(before.objects), docs, lines } : null);
      docNumber += docs;
      line += lines;
    }
  }
  if (before !== undefined && old !== undefined) {
    const shift = content.length - old.length;
    for (let i = tail; i < before.starts.length; i++) {
      const document = before.parsed[i]!;
      for (let o = 0; o < document.objects.length; o++) objects.push(document.objects[o]!);
      starts.push(before.starts[i]! + shift);
      parsed.push(document);
    }
  }
  return { objects, problems, documents: { starts, parsed } };
}

/**
 * The strings of one parse, each value once. The parser cuts scalars out of the document's text,
 * and V8 makes a cut of 13 characters or more a view of that text: a few such values (an
 * apiVersion, a timestamp, a hostname) held every document's whole text alive for as long as its
 * objects (9 MB at 10 000 HTTPRoutes); each is copied (UTF-16: any string, lone surrogates
 * included, comes back the same), and equal values are one string (`PathPrefix` 40 000 times).
 * Made per parse, dropped after it: nothing kept beyond the objects.
 */
function stringInterner(): (value: string) => string {
  const seen = new Map<string, string>();
  return (value) => {
    let one = seen.get(value);
    if (one === undefined) {
      one = value.length >= 13 ? Buffer.from(value, 'utf16le').toString('utf16le') : value;
      seen.set(one, one);
    }
    return one;
  };
}

/**
 * Every string value under `root` (arrays and plain objects, as toJS makes them) replaced by
 * `intern`'s. Written in place whatever the result (a reviver cannot: it replaces a value only by
 * an unequal one); each object once (aliases may share one, or hold their own ancestor).
 */
function internStrings(root: unknown, intern: (value: string) => string): void {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null || seen.has(node)) continue;
    seen.add(node);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const v: unknown = node[i];
        if (typeof v === 'string') node[i] = intern(v);
        else stack.push(v);
      }
    } else if (Object.getPrototypeOf(node) === Object.prototype) {
      const record = node as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        const v = record[key];
        if (typeof v === 'string') record[key] = intern(v);
        else stack.push(v);
      }
    }
  }
}

/** Parses `text` (documents numbered from firstDoc + 1, lines from firstLine + 1) into `objects` and `problems`: how many documents, or the error. */
function parseDocuments(text: string, firstDoc: number, firstLine: number, objects: KubeObject[], problems: Problem[], intern: (value: string) => string): number | { error: string } {
  // `<<` merge keys, as kubectl reads them (sigs.k8s.io/yaml: YAML 1.1); YAML 1.2 leaves them off.
  // Duplicate keys are found by duplicateKey, not by the parser (see there).
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { merge: true, uniqueKeys: false, lineCounter: lines });
  for (const [index, doc] of docs.entries()) {
    if (doc.errors.length > 0) return { error: `invalid YAML in document ${firstDoc + index + 1}${yamlErrorText(doc.errors[0]!.message, firstLine)}` };
    const duplicate = duplicateKey(doc);
    if (duplicate !== null) {
      const { line, col } = lines.linePos(duplicate.range?.[0] ?? 0);
      return { error: `invalid YAML in document ${firstDoc + index + 1} at line ${line + firstLine}, column ${col}: Map keys must be unique` };
    }
    // toJS() throws where parsing did not complain: an alias whose anchor is not in its document
    // (anchors do not cross `---`), or more aliases than its bound (a "billion laughs" document).
    // Such a text is invalid YAML, as kubectl says, not a reason to stop reading the folder.
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (err) {
      return { error: `invalid YAML in document ${firstDoc + index + 1}: ${err instanceof Error ? err.message : String(err)}` };
    }
    if (value === null || value === undefined) continue;
    internStrings(value, intern);
    const items: unknown[] = isList(value) ? value.items : [value];
    for (const item of items) {
      const checked = checkObject(item, firstDoc + index + 1);
      if (typeof checked === 'string') problems.push({ code: 'SLU_MANIFEST_OBJECT', message: checked });
      else if (checked && 'refused' in checked) problems.push(checked.refused);
      else if (checked) objects.push(checked.object);
    }
  }
  return docs.length;
}

/**
 * The first key a mapping of `doc` repeats (kubectl refuses those), with the parser's rule: scalar
 * keys equal by value. The parser's own check compares each key with every earlier one of its
 * mapping: a 40 000-key mapping took 8.9 s to parse, 0.2 s without it and this one Set per mapping.
 */
function duplicateKey(doc: Document): Node | null {
  let found: Node | null = null;
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        if (seen.has(pair.key.value)) {
          found = pair.key;
          return visit.BREAK;
        }
        seen.add(pair.key.value);
      }
      return undefined;
    },
  });
  return found;
}

/**
 * `kind: List`, or a typed list such as `ServiceList` (`kubectl get -o yaml` of several objects
 * writes the one, an API response the other): kubectl applies the items of any object whose kind
 * ends in List and that has an `items` array.
 */
function isList(value: unknown): value is { items: unknown[] } {
  return isObject(value) && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items);
}

/**
 * Returns the defaulted object, a problem text, the problem of an object the API server would
 * refuse, or null for a kind Sluice does not read.
 */
function checkObject(value: unknown, docNumber: number): { object: KubeObject } | { refused: Problem } | string | null {
  const where = `document ${docNumber}`;
  if (!isObject(value)) return `${where}: not a Kubernetes object (expected a mapping)`;
  const { kind, apiVersion, metadata } = value;
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') return `${where}: apiVersion and kind are required`;
  const tool = toolFileText(apiVersion, kind);
  if (tool !== null) return `${where}: ${tool}`;
  if (!isObject(metadata) || typeof metadata.name !== 'string' || metadata.name === '') {
    return `${where}: ${kind} needs metadata.name`;
  }
  if (!(kind in SNAPSHOT_FIELD_BY_KIND) || !readsApiGroup(kind, apiVersion)) return `${where}: ${ignoredKindText(apiVersion, kind, metadata.name)}`;
  const meta = { ...metadata, name: metadata.name } as KubeObject['metadata'];
  if (CLUSTER_SCOPED_KINDS.has(kind)) delete meta.namespace;
  else meta.namespace ??= 'default';
  if (kind === 'Namespace') meta.labels = { ...meta.labels, 'kubernetes.io/metadata.name': meta.name };
  // Null fields are absent, as the API server stores them.
  const checked = withoutNulls({ ...value, metadata: meta }) as KubeObject;
  // What the API server would refuse never reaches translation: validated against the kind's
  // schema; Cilium's kinds, whose schemas are not at hand, by the types of the fields read.
  const invalid = hasInputSchema(kind) ? inputProblem(checked) : shapeProblem(checked);
  if (!invalid) return { object: checked };
  const object = `${kind} ${namespacedName(checked)}`;
  return { refused: { code: 'SLU_MANIFEST_INVALID', object, message: `${where}: ${object} refused: ${invalid}` } };
}

/**
 * `yaml`'s message is "<what> at line L, column C:" followed by an excerpt of the text: one line,
 * position first (" at line 4, column 1: Map keys must be unique").
 */
function yamlErrorText(message: string, firstLine = 0): string {
  const first = message.split('\n')[0]!.replace(/:\s*$/, '');
  const at = / at line (\d+), column (\d+)$/.exec(first);
  return at ? ` at line ${Number(at[1]) + firstLine}, column ${at[2]}: ${first.slice(0, at.index)}` : `: ${first}`;
}

/**
 * A folder a recursive read does not enter: hidden ones (`.git`, `.github`, `.vscode` …, as hidden
 * files are left out) and `node_modules`, which holds other projects' YAML — `sluice run
 * --manifests .` in a project checkout read every package's (1 218 warning lines in Sluice's own).
 * ESLint, Prettier and ripgrep leave them out likewise by default. The folder named itself
 * (--manifests node_modules/x) is always read; the caller says once what was left out.
 */
function leftOutFolder(name: string): boolean {
  return name.startsWith('.') || name === 'node_modules';
}

/** The line that says which folders under `dir` were left out (FolderLoad.leftOut), or null when none was. */
export function leftOutLine(dir: string, leftOut: readonly string[]): string | null {
  if (leftOut.length === 0) return null;
  const named = leftOut.length > 10 ? `${leftOut.slice(0, 10).join(', ')} and ${leftOut.length - 10} more` : leftOut.join(', ');
  return `not read under ${dir}: ${named} (dependency and hidden folders; --manifests naming one reads it)`;
}

interface Listing {
  files: string[];
  /** Folders under it not entered (leftOutFolder). */
  leftOut: string[];
  /** Folders that could not be listed (or entries that could not be examined), with the error. */
  failed: { path: string; err: unknown }[];
}

function listManifestFiles(dir: string): Listing {
  const listing: Listing = { files: [], leftOut: [], failed: [] };
  const within = new Set<string>();
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch (err) {
      listing.failed.push({ path: d, err });
      return;
    }
    const real = loopsBack(d, within);
    if (real === null) return;
    for (const name of entries.sort()) {
      const path = join(d, name);
      if (leftOutFolder(name)) {
        // Hidden files (an editor's swap files) go unsaid; a folder left out is named. Not `..data` and
        // its target, a ConfigMap volume's own: the volume's files are read through their links.
        if (!name.startsWith('..') && isFolder(path)) listing.leftOut.push(path);
        continue;
      }
      let isDir = false;
      try {
        isDir = statSync(path).isDirectory();
      } catch (err) {
        // Gone between the listing and now: it is removed. Anything else: we cannot tell what it holds.
        if (errnoCode(err) !== 'ENOENT') listing.failed.push({ path, err });
        continue;
      }
      if (isDir) walk(path);
      else if (MANIFEST_FILE.test(name)) listing.files.push(path);
    }
    within.delete(real);
  };
  walk(dir);
  return listing;
}

/**
 * The real path of folder `d` entered, added to `within` (the folders the walk is inside), or null
 * when it is one of them: a symbolic link back up (a loop) is not followed. Followed, each loop was
 * read again to ELOOP's 40 links (40 copies, 40 duplicate lines), and two loops in one folder made
 * 2^40 paths: the read never ended.
 */
function loopsBack(d: string, within: Set<string>): string | null {
  let real: string;
  try {
    real = realpathSync.native(d);
  } catch {
    return d; // listed a moment ago: whatever it is now, the walk below finds out
  }
  if (within.has(real)) return null;
  within.add(real);
  return real;
}

/** The folder and its sub-folders (not those left out: leftOutFolder), as far as they can be listed. */
function listFolders(dir: string): Set<string> {
  const folders = new Set<string>();
  const within = new Set<string>();
  const walk = (d: string) => {
    const real = loopsBack(d, within);
    if (real === null) return;
    folders.add(d);
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      entries = [];
    }
    for (const entry of entries) {
      if (leftOutFolder(entry.name)) continue;
      const path = join(d, entry.name);
      if (entry.isDirectory() || (entry.isSymbolicLink() && isFolder(path))) walk(path);
    }
    within.delete(real);
  };
  walk(dir);
  return folders;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function errnoCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? 'EUNKNOWN';
}

/** "EACCES: permission denied" — Node's message without the syscall and path it appends. */
function errnoText(err: unknown): string {
  const message = (err as Error)?.message ?? String(err);
  return message.split(',')[0]!.trim() || errnoCode(err);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Size, inode, modification and change times (ns) of a file; null when it cannot be stat'ed (then it is read). */
function statKey(path: string): string | null {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.size}/${st.ino}/${st.mtimeNs}/${st.ctimeNs}`;
  } catch {
    return null;
  }
}

/** Whether the file's last modification is less than `ms` old (false when it cannot be stat'ed). */
function modifiedWithin(path: string, ms: number): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < ms;
  } catch {
    return false;
  }
}
