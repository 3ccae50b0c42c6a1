/**
 * For the Fetch stand-ins (the lazy Request and its Headers): defines on `target`, for each key of `source`
 * (a standard prototype), a member that answers from the standard object `real(this)` returns, building it on
 * first use: methods are called on it, getters read from it. Data properties that are not functions are left
 * to the prototype chain.
 */
export function forwardMembers<S>(target: object, source: object, keys: Iterable<PropertyKey>, real: (self: S) => object): void {
  for (const key of keys) {
    const d = Object.getOwnPropertyDescriptor(source, key);
    if (d === undefined) continue;
    if (typeof d.value === 'function') {
      const method = d.value as (...a: unknown[]) => unknown;
      Object.defineProperty(target, key, {
        configurable: true,
        writable: true,
        value(this: S, ...args: unknown[]) {
          return method.apply(real(this), args);
        },
      });
    } else if (d.get) {
      const get = d.get;
      Object.defineProperty(target, key, {
        configurable: true,
        get(this: S) {
          return get.call(real(this));
        },
      });
    }
  }
}
