// Manifest mutations of the suites' follow-up steps, applied to plain objects:
//   {op: delete}                         remove the object
//   {op: patch, set: {path: value}}      set a value at a dotted path (`a.b[0].c`, `labels["x.y/z"]`)
//   {op: patch, appendTo: {path: item}}  append an item to the list at path (created when missing)
//   {op: patch, keepOnly: {path: match}} keep the list items whose fields equal `match`
//                                        (an object, or a list of objects = any of them)
//   {op: patch, removeWhere: {path: match}} remove the list items whose fields equal `match`
//   {op: patch, setData: {key: value}}   ConfigMap/Secret data keys (literal keys; copyFrom values)
//   {op: create, object, waitBeforeSeconds} add a complete object (after the wait)
// Anything else is an error: the runner never ignores an operation it does not know.

export type PathSegment = string | number;

export interface ObjectRef {
  apiVersion?: string;
  kind: string;
  namespace?: string;
  name: string;
}

export interface Mutation extends ObjectRef {
  op: string;
  set?: Record<string, unknown>;
  appendTo?: Record<string, unknown>;
  keepOnly?: Record<string, unknown>;
  removeWhere?: Record<string, unknown>;
  /** ConfigMap/Secret only: literal `data` keys; values already resolved (see resolveDataValue). */
  setData?: Record<string, unknown>;
}

const MUTATION_KEYS = new Set(['op', 'apiVersion', 'kind', 'namespace', 'name', 'set', 'appendTo', 'keepOnly', 'removeWhere', 'setData']);
const CREATE_KEYS = new Set(['op', 'object', 'waitBeforeSeconds']);
const PATCH_OPS = ['set', 'appendTo', 'keepOnly', 'removeWhere', 'setData'];

/** A data value: a string, or {copyFrom: {kind: ConfigMap|Secret, object: ns/name, key}}. */
function dataValueProblems(v: unknown, where: string): string[] {
  if (typeof v === 'string') return [];
  const c = isPlainObject(v) && Object.keys(v).length === 1 ? v.copyFrom : undefined;
  if (!isPlainObject(c) || Object.keys(c).some((k) => !['kind', 'object', 'key'].includes(k)) || (c.kind !== 'ConfigMap' && c.kind !== 'Secret') || typeof c.object !== 'string' || !c.object.includes('/') || typeof c.key !== 'string') {
    return [`${where}: a value must be a string or {copyFrom: {kind: ConfigMap|Secret, object: "ns/name", key}}`];
  }
  return [];
}

/** Problems with a mutation's shape (unknown op or field, missing target); empty when valid. */
export function validateMutation(m: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if (m.op === 'create') {
    for (const k of Object.keys(m)) if (!CREATE_KEYS.has(k)) problems.push(`unknown mutation field "${k}"`);
    const o = m.object;
    if (!isPlainObject(o) || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string' || !isPlainObject(o.metadata) || typeof o.metadata.name !== 'string') {
      problems.push('a create mutation needs object with apiVersion, kind and metadata.name');
    } else if ((o.kind === 'ConfigMap' || o.kind === 'Secret') && isPlainObject(o.data)) {
      for (const [k, v] of Object.entries(o.data)) problems.push(...dataValueProblems(v, `object.data.${k}`));
    }
    if (m.waitBeforeSeconds !== undefined && (typeof m.waitBeforeSeconds !== 'number' || m.waitBeforeSeconds < 0)) problems.push('waitBeforeSeconds must be a number >= 0');
    return problems;
  }
  for (const k of Object.keys(m)) if (!MUTATION_KEYS.has(k)) problems.push(`unknown mutation field "${k}"`);
  if (m.op !== 'delete' && m.op !== 'patch') problems.push(`unknown mutation op ${JSON.stringify(m.op)}`);
  if (typeof m.kind !== 'string' || typeof m.name !== 'string') problems.push('mutation needs kind and name');
  if (m.op === 'delete' && PATCH_OPS.some((k) => m[k] !== undefined)) {
    problems.push(`a delete mutation cannot carry ${PATCH_OPS.join('/')}`);
  }
  if (m.setData !== undefined) {
    if (m.kind !== 'ConfigMap' && m.kind !== 'Secret') problems.push('setData applies to a ConfigMap or Secret only');
    if (isPlainObject(m.setData)) for (const [k, v] of Object.entries(m.setData)) problems.push(...dataValueProblems(v, `setData.${k}`));
    else problems.push('setData must map data keys to values');
  }
  if (m.op === 'patch') {
    const ops = PATCH_OPS.filter((k) => m[k] !== undefined);
    if (ops.length === 0) problems.push(`a patch mutation needs one of ${PATCH_OPS.join(', ')}`);
    for (const k of ops.filter((x) => x !== 'setData')) {
      const v = m[k];
      if (typeof v !== 'object' || v === null || Array.isArray(v)) problems.push(`${k} must map paths to values`);
      else {
        for (const path of Object.keys(v)) {
          try {
            parsePath(path);
          } catch (err) {
            problems.push(`${k}: ${(err as Error).message}`);
          }
        }
      }
    }
  }
  return problems;
}

/** Parses `spec.rules[0].backendRefs[0].name` / `metadata.labels["a.b/c"]` into segments. */
export function parsePath(path: string): PathSegment[] {
  const out: PathSegment[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`invalid path ${JSON.stringify(path)}: ${why}`);
  };
  if (path === '') fail('empty');
  while (i < path.length) {
    if (path[i] === '[') {
      const end = path.indexOf(']', i);
      if (end === -1) fail('unclosed [');
      const inner = path.slice(i + 1, end);
      if (/^\d+$/.test(inner)) out.push(Number(inner));
      else if (/^"(.*)"$/.test(inner) || /^'(.*)'$/.test(inner)) out.push(inner.slice(1, -1));
      else fail(`bad index [${inner}]`);
      i = end + 1;
      if (path[i] === '.') {
        i++;
        if (i >= path.length) fail('trailing .');
      }
      continue;
    }
    let j = i;
    while (j < path.length && path[j] !== '.' && path[j] !== '[') j++;
    const key = path.slice(i, j);
    if (key === '') fail('empty segment');
    out.push(key);
    i = j;
    if (path[i] === '.') {
      i++;
      if (i >= path.length) fail('trailing .');
    }
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function walkTo(root: Record<string, unknown>, segs: PathSegment[], create: boolean, path: string): { parent: any; key: PathSegment } {
  let cur: any = root;
  for (let i = 0; i < segs.length - 1; i++) {
    const seg = segs[i];
    const nextIsIndex = typeof segs[i + 1] === 'number';
    let next = typeof seg === 'number' ? (Array.isArray(cur) ? cur[seg] : undefined) : isPlainObject(cur) ? cur[seg] : undefined;
    if (next === undefined || next === null) {
      if (!create) throw new Error(`path ${path}: ${segs.slice(0, i + 1).join('.')} does not exist`);
      if (typeof seg === 'number') throw new Error(`path ${path}: index ${seg} out of range`);
      next = nextIsIndex ? [] : {};
      cur[seg] = next;
    }
    if (typeof segs[i + 1] === 'number' && !Array.isArray(next)) throw new Error(`path ${path}: ${String(seg)} is not a list`);
    if (typeof segs[i + 1] === 'string' && !isPlainObject(next)) throw new Error(`path ${path}: ${String(seg)} is not an object`);
    cur = next;
  }
  return { parent: cur, key: segs[segs.length - 1] };
}

/** Sets `value` at `path`, creating intermediate objects; list indexes must exist (or be the next index). */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const segs = parsePath(path);
  const { parent, key } = walkTo(obj, segs, true, path);
  if (typeof key === 'number') {
    if (!Array.isArray(parent) || key > parent.length) throw new Error(`path ${path}: index ${key} out of range`);
  }
  parent[key] = structuredClone(value);
}

/** Reads the value at `path` (undefined when absent). */
export function getPath(obj: unknown, path: string): unknown {
  let cur: any = obj;
  for (const seg of parsePath(path)) {
    if (cur === null || cur === undefined) return undefined;
    cur = cur[seg];
  }
  return cur;
}

export function appendToPath(obj: Record<string, unknown>, path: string, item: unknown): void {
  const segs = parsePath(path);
  const { parent, key } = walkTo(obj, segs, true, path);
  let list = parent[key];
  if (list === undefined || list === null) {
    list = [];
    parent[key] = list;
  }
  if (!Array.isArray(list)) throw new Error(`path ${path}: not a list`);
  list.push(structuredClone(item));
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

/** True when every field of `match` equals the item's field (deep equality). */
export function itemMatches(item: unknown, match: unknown): boolean {
  if (!isPlainObject(match)) return deepEqual(item, match);
  if (!isPlainObject(item)) return false;
  return Object.entries(match).every(([k, v]) => deepEqual(item[k], v));
}

/** Keeps (`keep`) or removes the list items whose fields all equal `match` (an object, or a list of objects = any of them). */
function filterListAtPath(obj: Record<string, unknown>, path: string, match: unknown, keep: boolean): void {
  const segs = parsePath(path);
  const { parent, key } = walkTo(obj, segs, false, path);
  const list = parent[key];
  if (!Array.isArray(list)) throw new Error(`path ${path}: not a list`);
  const matchers = Array.isArray(match) ? match : [match];
  parent[key] = list.filter((item) => matchers.some((m) => itemMatches(item, m)) === keep);
}

export function keepOnlyAtPath(obj: Record<string, unknown>, path: string, match: unknown): void {
  filterListAtPath(obj, path, match, true);
}

export function removeWhereAtPath(obj: Record<string, unknown>, path: string, match: unknown): void {
  filterListAtPath(obj, path, match, false);
}

/**
 * Sets `data` keys of a ConfigMap or Secret (keys are literal, e.g. `ca.crt`). Values are the
 * resolved strings (bytes for a Secret, stored base64 as the API does; `""` stores an empty value).
 */
export function setDataKeys(obj: Record<string, unknown>, values: Record<string, string>): void {
  const data = isPlainObject(obj.data) ? obj.data : {};
  for (const [k, v] of Object.entries(values)) data[k] = obj.kind === 'Secret' ? Buffer.from(v, 'utf8').toString('base64') : v;
  obj.data = data;
  if (obj.kind === 'Secret' && isPlainObject(obj.stringData)) for (const k of Object.keys(values)) delete obj.stringData[k];
}

/** The current value of `key` in a ConfigMap or Secret (a Secret's decoded bytes), or undefined. */
export function dataKeyOf(obj: Record<string, unknown> | undefined, key: string): string | undefined {
  if (!obj) return undefined;
  if (obj.kind === 'Secret' && isPlainObject(obj.stringData) && typeof obj.stringData[key] === 'string') return obj.stringData[key];
  const v = isPlainObject(obj.data) ? obj.data[key] : undefined;
  if (typeof v !== 'string') return undefined;
  return obj.kind === 'Secret' ? Buffer.from(v, 'base64').toString('utf8') : v;
}

/**
 * A data value made concrete: a string as is; {copyFrom} the current value of that key of that
 * object, found with `lookup(kind, "ns/name")`. Throws when the object or key does not exist.
 */
export function resolveDataValue(v: unknown, lookup: (kind: string, ref: string) => Record<string, unknown> | undefined): string {
  if (typeof v === 'string') return v;
  const c = (v as { copyFrom?: { kind: string; object: string; key: string } } | null)?.copyFrom;
  if (!c) throw new Error(`not a data value: ${JSON.stringify(v)}`);
  const value = dataKeyOf(lookup(c.kind, c.object), c.key);
  if (value === undefined) throw new Error(`copyFrom: ${c.kind} ${c.object} has no key ${c.key}`);
  return value;
}

/** Applies a patch mutation (setData values already resolved to strings) to a copy of `obj` and returns it. */
export function applyPatch(obj: Record<string, unknown>, m: Mutation): Record<string, unknown> {
  const copy = structuredClone(obj);
  for (const [path, value] of Object.entries(m.set ?? {})) setPath(copy, path, value);
  for (const [path, item] of Object.entries(m.appendTo ?? {})) appendToPath(copy, path, item);
  for (const [path, match] of Object.entries(m.keepOnly ?? {})) keepOnlyAtPath(copy, path, match);
  for (const [path, match] of Object.entries(m.removeWhere ?? {})) removeWhereAtPath(copy, path, match);
  if (m.setData) {
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.setData)) {
      if (typeof v !== 'string') throw new Error(`setData.${k}: unresolved value ${JSON.stringify(v)}`);
      values[k] = v;
    }
    setDataKeys(copy, values);
  }
  return copy;
}

/** Does `obj` (a Kubernetes object) match the mutation's target? apiVersion compares by API group. */
export function matchesRef(obj: { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } }, ref: ObjectRef): boolean {
  if (obj.kind !== ref.kind || obj.metadata?.name !== ref.name) return false;
  if ((ref.namespace ?? '') !== (obj.metadata?.namespace ?? '')) return false;
  if (ref.apiVersion !== undefined && obj.apiVersion !== undefined && apiGroup(ref.apiVersion) !== apiGroup(obj.apiVersion)) return false;
  return true;
}

function apiGroup(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i === -1 ? '' : apiVersion.slice(0, i);
}
