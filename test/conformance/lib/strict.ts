// A tiny strict shape checker: every field the runner does not know is an
// error, so no assertion in a case file can be silently ignored.

export type Spec =
  | { t: 'string' }
  | { t: 'number' }
  | { t: 'boolean' }
  | { t: 'any' }
  | { t: 'enum'; values: readonly unknown[] }
  | { t: 'object'; fields: Record<string, Spec>; required: readonly string[] }
  | { t: 'map'; values: Spec; keys?: readonly string[] }
  | { t: 'array'; items: Spec }
  | { t: 'nullable'; of: Spec }
  | { t: 'union'; of: readonly Spec[] }
  | { t: 'custom'; check: (value: unknown, where: string) => string[] };

export const S = {
  str: { t: 'string' } as Spec,
  num: { t: 'number' } as Spec,
  bool: { t: 'boolean' } as Spec,
  any: { t: 'any' } as Spec,
  enum: (...values: unknown[]): Spec => ({ t: 'enum', values }),
  /** Object with exactly these fields; `optional` lists those that may be absent. */
  obj: (fields: Record<string, Spec>, optional: readonly string[] = []): Spec => ({
    t: 'object',
    fields,
    required: Object.keys(fields).filter((k) => !optional.includes(k)),
  }),
  /** Object used as a map: any key (or only `keys`), every value matching `values`. */
  map: (values: Spec, keys?: readonly string[]): Spec => ({ t: 'map', values, keys }),
  arr: (items: Spec): Spec => ({ t: 'array', items }),
  nullable: (of: Spec): Spec => ({ t: 'nullable', of }),
  union: (...of: Spec[]): Spec => ({ t: 'union', of }),
  custom: (check: (value: unknown, where: string) => string[]): Spec => ({ t: 'custom', check }),
};

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Returns every problem of `value` against `spec`; `where` is the path used in messages. */
export function checkShape(value: unknown, spec: Spec, where: string): string[] {
  switch (spec.t) {
    case 'any':
      return [];
    case 'string':
    case 'number':
    case 'boolean':
      return typeof value === spec.t ? [] : [`${where}: expected ${spec.t}, got ${typeName(value)}`];
    case 'enum':
      return spec.values.includes(value) ? [] : [`${where}: unsupported value ${JSON.stringify(value)} (known: ${spec.values.map((v) => JSON.stringify(v)).join(', ')})`];
    case 'nullable':
      return value === null ? [] : checkShape(value, spec.of, where);
    case 'array': {
      if (!Array.isArray(value)) return [`${where}: expected array, got ${typeName(value)}`];
      return value.flatMap((item, i) => checkShape(item, spec.items, `${where}[${i}]`));
    }
    case 'map': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: expected object, got ${typeName(value)}`];
      const out: string[] = [];
      for (const [k, v] of Object.entries(value)) {
        if (spec.keys && !spec.keys.includes(k)) out.push(`${where}: unknown key ${JSON.stringify(k)} (known: ${spec.keys.join(', ')})`);
        out.push(...checkShape(v, spec.values, `${where}.${k}`));
      }
      return out;
    }
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: expected object, got ${typeName(value)}`];
      const out: string[] = [];
      const rec = value as Record<string, unknown>;
      for (const k of Object.keys(rec)) {
        if (!(k in spec.fields)) out.push(`${where}: unknown field "${k}"`);
        else out.push(...checkShape(rec[k], spec.fields[k], `${where}.${k}`));
      }
      for (const k of spec.required) if (!(k in rec)) out.push(`${where}: missing field "${k}"`);
      return out;
    }
    case 'union': {
      let best: string[] | undefined;
      for (const alt of spec.of) {
        const problems = checkShape(value, alt, where);
        if (problems.length === 0) return [];
        if (!best || problems.length < best.length) best = problems;
      }
      return best ?? [`${where}: no alternative matched`];
    }
    case 'custom':
      return spec.check(value, where);
  }
}
