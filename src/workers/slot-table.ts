/**
 * A set of objects kept in numbered places that are reused as they free up; each object carries its place
 * under the table's own symbol. For the sets that change on every connection or request (open connections,
 * running requests). A JavaScript Set there costs garbage collection: with `Connection: close` load, the Set
 * of open connections tripled the bytes that survived each young-generation collection (2,350 against 720
 * per request, `--trace-gc-nvp`) and doubled the collection time per request. This table allocates nothing
 * once it has grown to the peak, and hashes nothing.
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

  add(x: T): void {
    const i = this.#free.pop() ?? this.#items.length;
    this.#items[i] = x;
    (x as Record<symbol, number>)[kSlot] = i;
    this.size++;
  }

  /** False when `x` is not in the table (never added, or removed already). */
  delete(x: T): boolean {
    const i = (x as Record<symbol, number | undefined>)[kSlot];
    if (i === undefined || this.#items[i] !== x) return false;
    this.#items[i] = null;
    this.#free.push(i);
    this.size--;
    return true;
  }

  /** The objects in the table now: a copy, so the caller may remove them as it goes. */
  values(): T[] {
    const out: T[] = [];
    for (const x of this.#items) if (x !== null) out.push(x);
    return out;
  }
}
