// @peculiar/x509 2.x loads tsyringe, which refuses to start without the `reflect-metadata`
// polyfill, and that package is not among the project's dependencies. This is the subset
// tsyringe calls (x509 itself never reads metadata). Import it before @peculiar/x509; delete it
// once `reflect-metadata` is a devDependency.

type Target = object;
const metadata = new WeakMap<Target, Map<unknown, unknown>>();

const reflect = Reflect as typeof Reflect & {
  getMetadata?: (key: unknown, target: Target) => unknown;
  getOwnMetadata?: (key: unknown, target: Target) => unknown;
  defineMetadata?: (key: unknown, value: unknown, target: Target) => void;
};

if (typeof reflect.getMetadata !== 'function') {
  reflect.getOwnMetadata = (key, target) => metadata.get(target)?.get(key);
  reflect.getMetadata = (key, target) => {
    for (let current: Target | null = target; current !== null; current = Object.getPrototypeOf(current) as Target | null) {
      const value = metadata.get(current)?.get(key);
      if (value !== undefined) return value;
    }
    return undefined;
  };
  reflect.defineMetadata = (key, value, target) => {
    let own = metadata.get(target);
    if (own === undefined) metadata.set(target, (own = new Map()));
    own.set(key, value);
  };
}
