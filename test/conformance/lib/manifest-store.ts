// The objects a suite wants to exist, as named groups; each group is one YAML file of the manifest
// folder `sluice run` watches (writes are atomic: hidden temp file + rename). With a sink (the
// kubernetes target), flush() also makes the API server hold exactly these objects; the folder is
// then only a record of what was applied.

import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { stableJson } from '../../../ir/version.ts';

export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  spec?: any;
  [field: string]: unknown;
}

/** `Kind/namespace/name` or `Kind/name`. */
export function keyOf(obj: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return obj.metadata.namespace ? `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}` : `${obj.kind}/${obj.metadata.name}`;
}

/** `namespace/name` or `name`. */
export function refOfObject(obj: { metadata: { name: string; namespace?: string } }): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

/** Parses multi-document YAML into objects (null documents skipped); throws on YAML errors. */
export function parseYamlObjects(text: string, source: string): KObject[] {
  const out: KObject[] = [];
  for (const [i, doc] of parseAllDocuments(text).entries()) {
    if (doc.errors.length > 0) throw new Error(`${source}: YAML document ${i + 1}: ${doc.errors[0].message.split('\n')[0]}`);
    const v = doc.toJS();
    if (v === null || v === undefined) continue;
    if (typeof v !== 'object' || Array.isArray(v) || typeof v.kind !== 'string' || typeof v.metadata?.name !== 'string') {
      throw new Error(`${source}: YAML document ${i + 1} is not a Kubernetes object`);
    }
    out.push(v as KObject);
  }
  return out;
}

export function toYaml(objects: KObject[]): string {
  return objects.map((o) => stringify(o, { aliasDuplicateObjects: false, lineWidth: 0 })).join('---\n');
}

/** Receives the whole desired object set after each flush (objects defined twice: first group wins). */
export interface ObjectSink {
  sync(objects: KObject[]): Promise<void>;
}

export class ManifestStore {
  readonly dir: string;
  sink: ObjectSink | undefined;
  #groups = new Map<string, KObject[]>();
  #dirty = new Set<string>();
  #written = new Set<string>();

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  /** Group names in file order. */
  groups(): string[] {
    return [...this.#groups.keys()].sort();
  }

  get(group: string): KObject[] {
    return this.#groups.get(group) ?? [];
  }

  set(group: string, objects: KObject[]): void {
    this.#groups.set(group, objects);
    this.#dirty.add(group);
  }

  remove(group: string): void {
    if (this.#groups.delete(group) || this.#written.has(group)) this.#dirty.add(group);
  }

  /** Marks a group as changed after in-place edits of its objects. */
  touch(group: string): void {
    this.#dirty.add(group);
  }

  /** Every object, in file order. */
  all(): KObject[] {
    return this.groups().flatMap((g) => this.get(g));
  }

  /** Finds an object by predicate: its group and index. */
  find(pred: (o: KObject) => boolean): { group: string; index: number; object: KObject } | undefined {
    for (const g of this.groups().reverse()) {
      const list = this.get(g);
      const index = list.findIndex(pred);
      if (index !== -1) return { group: g, index, object: list[index] };
    }
    return undefined;
  }

  /** Writes changed groups (deleting files of removed groups), then hands every object to the sink. */
  async flush(): Promise<void> {
    this.#writeFiles();
    if (!this.sink) return;
    const seen = new Set<string>();
    const objects: KObject[] = [];
    for (const o of this.all()) {
      const key = keyOf(o);
      if (seen.has(key)) continue;
      seen.add(key);
      objects.push(o);
    }
    await this.sink.sync(objects);
  }

  #writeFiles(): void {
    for (const g of [...this.#dirty].sort()) {
      const file = join(this.dir, `${g}.yaml`);
      const objects = this.#groups.get(g);
      if (!objects) {
        rmSync(file, { force: true });
        this.#written.delete(g);
        continue;
      }
      const tmp = join(this.dir, `.${g}.yaml.tmp`);
      writeFileSync(tmp, `# written by the Sluice conformance runner\n${toYaml(objects)}`);
      renameSync(tmp, file);
      this.#written.add(g);
    }
    this.#dirty.clear();
  }
}

/** Whether a listed item shows the spec the runner wrote (the standalone rule). */
export function sameSpec(o: KObject, item: { spec?: unknown }): boolean {
  return o.spec === undefined || stableJson(item.spec) === stableJson(o.spec);
}

/**
 * What Sluice has not caught up with yet: objects of `present` it does not list (or lists in an
 * older form, as `current` judges), and objects of `absent` it still lists. `listed` looks an
 * object up in Sluice's /api/status; objects `relevant` rejects are not waited for.
 */
export function pendingSync(
  listed: (o: KObject) => { spec?: unknown } | undefined,
  present: KObject[],
  absent: KObject[],
  relevant: (o: KObject) => boolean = () => true,
  current: (o: KObject, item: any) => boolean = sameSpec,
): string[] {
  const pending: string[] = [];
  for (const o of present) {
    if (!relevant(o)) continue;
    const item = listed(o);
    if (!item) pending.push(`${keyOf(o)} missing`);
    else if (!current(o, item)) pending.push(`${keyOf(o)} has an older spec`);
  }
  for (const o of absent) if (relevant(o) && listed(o)) pending.push(`${keyOf(o)} still present`);
  return pending;
}
