/** guardLoading (src/app/load-guard.ts): its limit, and nothing left behind once the app has loaded. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { guardLoading } from '../../src/app/load-guard.js';

describe('guardLoading', () => {
  it('fails a load that outlasts its limit, once, and stops watching', async () => {
    const said: string[] = [];
    const failed: string[] = [];
    let resolve!: (v: string) => void;
    const loading = new Promise<string>((r) => (resolve = r));
    const guarded = guardLoading('app app.ts', loading, { say: (l) => said.push(l), fail: (l) => failed.push(l), limitS: 0.05 });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(failed, ['app app.ts did not finish loading within 0.05 s']);
    resolve('served');
    assert.equal(await guarded, 'served');
    assert.deepEqual(said, []);
  });

  it('leaves no listener behind, whether the load succeeds or fails', async () => {
    const before = [process.listenerCount('exit'), process.listenerCount('beforeExit')];
    const guard = { say: () => {}, fail: () => {}, limitS: 10 };
    assert.equal(await guardLoading('a', Promise.resolve(1), guard), 1);
    await assert.rejects(guardLoading('a', Promise.reject(new Error('broken')), guard), /broken/);
    assert.deepEqual([process.listenerCount('exit'), process.listenerCount('beforeExit')], before);
  });
});
