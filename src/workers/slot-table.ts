/**
 * A set of objects kept in numbered places that are reused as they free up. Either the object carries its
 * place under the table's own symbol (`add`, `delete`), or the caller keeps it (`put`, `removeAt`). For the
 * sets that change on every connection or request (open connections, running requests). A JavaScript Set
 * there costs garbage collection: with `Connection: close` load, the Set of open connections tripled the bytes
 * that survived each young-generation collection (2,350 against 720 per request, `--trace-gc-nvp`) and doubled
 * the collection time per request. This table allocates nothing once it has grown to the peak, and hashes
 * nothing.
 *
 * Every table uses the same key, `kSlot` (an object is in one table at a time; `delete` checks the place holds
 * that very object), so the one store in `add` always sees the same key. An object made for a table can
 * declare `[kSlot]: -1` in its literal, which spares it a change of shape when it is added.
 */
export const kSlot = Symbol('tunicorn.slot');

export class SlotTable<T extends object> {
  readonly #items: (T | null)[] = [];
  readonly #free: number[] = [];
  size = 0;

  /** Adds `x` and records its place on it, under `kSlot`. For objects of our own making only (see `put`). */
  add(x: T): void {
    (x as Record<symbol, number>)[kSlot] = this.put(x);
  }

  /** False when `x` is not in the table (never added, or removed already). */
  delete(x: T): boolean {
    const i = (x as Record<symbol, number | undefined>)[kSlot];
    return i !== undefined && this.removeAt(i, x);
  }

  /** Whether `x` is in the table (added, and not deleted since). */
  has(x: T): boolean {
    const i = (x as Record<symbol, number | undefined>)[kSlot];
    return i !== undefined && i >= 0 && this.#items[i] === x;
  }

  /**
   * Adds `x` and returns its place, for the caller to keep: nothing is written on `x`. For objects that Node
   * makes (sockets): a property of our own on them gives them a shape of their own, and V8 drops such shapes
   * while the process idles, with the optimized code of Node's that had seen them (docs/design.md, "After an
   * idle spell").
   */
  put(x: T): number {
    const i = this.#free.pop() ?? this.#items.length;
    this.#items[i] = x;
    this.size++;
    return i;
  }

  /** Removes `x` from place `i`; false when `x` is not there (removed already, or never put there). */
  removeAt(i: number, x: T): boolean {
    if (i < 0 || this.#items[i] !== x) return false;
    this.#items[i] = null;
    this.#free.push(i);
    this.size--;
    return true;
  }

  /** The place of `x`, or -1: a scan, for the rare caller that did not keep the place. */
  indexOf(x: T): number {
    return this.#items.indexOf(x);
  }

  /** The objects in the table now: a copy, so the caller may remove them as it goes. */
  values(): T[] {
    const out: T[] = [];
    for (const x of this.#items) if (x !== null) out.push(x);
    return out;
  }
}
