// Minimal Reflect metadata polyfill, installed only when no implementation is
// present. @peculiar/x509 depends on tsyringe, which refuses to load unless
// `Reflect.getMetadata` exists; it only needs define/get(Own)Metadata. This
// avoids a runtime dependency on the `reflect-metadata` package. Import this
// module before '@peculiar/x509' (ESM evaluates imports in order).

type MetadataTarget = object;
type PropertyKeyOrUndefined = string | symbol | undefined;

const registry = new WeakMap<MetadataTarget, Map<PropertyKeyOrUndefined, Map<unknown, unknown>>>();

function ownMap(target: MetadataTarget, property: PropertyKeyOrUndefined, create: boolean): Map<unknown, unknown> | undefined {
  let byProperty = registry.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    byProperty = new Map();
    registry.set(target, byProperty);
  }
  let map = byProperty.get(property);
  if (!map && create) {
    map = new Map();
    byProperty.set(property, map);
  }
  return map;
}

const R = Reflect as unknown as Record<string, unknown>;

if (typeof R.getMetadata !== 'function') {
  const defineMetadata = (key: unknown, value: unknown, target: MetadataTarget, property?: string | symbol): void => {
    ownMap(target, property, true)!.set(key, value);
  };
  const hasOwnMetadata = (key: unknown, target: MetadataTarget, property?: string | symbol): boolean =>
    ownMap(target, property, false)?.has(key) ?? false;
  const getOwnMetadata = (key: unknown, target: MetadataTarget, property?: string | symbol): unknown =>
    ownMap(target, property, false)?.get(key);
  const getMetadata = (key: unknown, target: MetadataTarget, property?: string | symbol): unknown => {
    for (let t: MetadataTarget | null = target; t; t = Object.getPrototypeOf(t)) {
      const map = ownMap(t, property, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
  const hasMetadata = (key: unknown, target: MetadataTarget, property?: string | symbol): boolean => {
    for (let t: MetadataTarget | null = target; t; t = Object.getPrototypeOf(t)) {
      if (ownMap(t, property, false)?.has(key)) return true;
    }
    return false;
  };
  const metadata = (key: unknown, value: unknown) => (target: MetadataTarget, property?: string | symbol): void => {
    defineMetadata(key, value, target, property);
  };
  Object.assign(R, { defineMetadata, hasOwnMetadata, getOwnMetadata, getMetadata, hasMetadata, metadata });
}

export {};
