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
    assert.equal(t.delete(a), true);
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
});
