/**
 * SlotTable: the set of open connections and of running requests (see src/workers/slot-table.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlotTable } from '../../src/workers/slot-table.js';

describe('SlotTable', () => {
  it('adds, removes once, and reuses freed places', () => {
    const t = new SlotTable<{ n: number }>();
    const a = { n: 1 };
    const b = { n: 2 };
    const c = { n: 3 };
    t.add(a);
    t.add(b);
    assert.equal(t.size, 2);
    assert.equal(t.has(a), true);
    assert.equal(t.delete(a), true);
    assert.equal(t.has(a), false);
    assert.equal(t.has(c), false, 'never added');
    assert.equal(t.delete(a), false, 'a second delete is refused');
    assert.equal(t.size, 1);
    t.add(c);
    assert.deepEqual(t.values(), [c, b], 'c took the place a left');
    assert.equal(t.size, 2);
  });

  it('refuses objects it never held, including those of another table', () => {
    const t = new SlotTable<object>();
    const u = new SlotTable<object>();
    const x = {};
    u.add(x);
    assert.equal(t.delete(x), false);
    assert.equal(t.delete({}), false);
    assert.equal(u.size, 1);
  });

  it('gives a copy that may be emptied while it is walked', () => {
    const t = new SlotTable<object>();
    const xs = [{}, {}, {}];
    for (const x of xs) t.add(x);
    for (const x of t.values()) t.delete(x);
    assert.equal(t.size, 0);
    assert.deepEqual(t.values(), []);
  });

  it('keeps places the caller holds, and writes nothing on the object', () => {
    const t = new SlotTable<object>();
    const a = {};
    const b = {};
    const i = t.put(a);
    const j = t.put(b);
    assert.notEqual(i, j);
    assert.equal(Object.getOwnPropertySymbols(a).length, 0);
    assert.equal(t.removeAt(j, a), false, 'another object\'s place is refused');
    assert.equal(t.removeAt(t.indexOf(b), b), true);
    assert.equal(t.removeAt(j, b), false, 'a second removal is refused');
    assert.equal(t.indexOf(b), -1);
    assert.equal(t.removeAt(-1, b), false);
    assert.equal(t.put(b), j, 'b took the place it left');
    assert.equal(t.size, 2);
  });
});
