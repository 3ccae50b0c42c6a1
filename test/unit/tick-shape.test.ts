/**
 * keepTickShape (src/workers/tick-shape.ts): a worker keeps one of Node's tick objects for its life. Its speed
 * effect is measured, not asserted (docs/design.md, The benchmark); this checks that the Node running the
 * tests still hands the tick over.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keepTickShape, keptTick } from '../../src/workers/tick-shape.js';

describe('keepTickShape', () => {
  it("keeps one of nextTick's own tick objects: symbol keys (the async ids), then callback and args", () => {
    assert.equal(keptTick(), null);
    assert.equal(keepTickShape(), true);
    const tick = keptTick()!;
    // Node 20 has the two async ids; Node 22 and later add the async context frame.
    const symbols = Object.getOwnPropertySymbols(tick).map(String);
    assert.deepEqual(symbols.slice(0, 2), ['Symbol(async_id_symbol)', 'Symbol(trigger_async_id_symbol)']);
    assert.ok(symbols.length <= 3, symbols.join(', '));
    assert.deepEqual(Object.keys(tick), ['callback', 'args']);
    // Once per process: a second call keeps the same object.
    assert.equal(keepTickShape(), true);
    assert.equal(keptTick(), tick);
  });
});
