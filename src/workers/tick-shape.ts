import { createHook } from 'node:async_hooks';

/**
 * One of Node's tick objects, kept for the life of the process (or thread): see keepTickShape.
 */
let kept: object | null = null;

/**
 * Keeps the hidden classes of Node's tick objects alive, so that `process.nextTick` stays fast whatever
 * traffic a worker sees before its first load.
 *
 * What was measured: after 50 requests 0.1 s apart, both workers of tunicorn and of a plain two-process node:http
 * server spent 14-19 % of their samples at keep-alive load under `Runtime_DefineKeyedOwnPropertyInLiteral`, called
 * from nextTick's code inlined into Node's stream functions, for the rest of the process; with one tick object kept,
 * at most 1.1 % (docs/design.md, The benchmark). What we make of it: nextTick builds each tick as an object literal
 * whose first keys are computed (symbols: two on Node 20, three from Node 22), and the hidden classes it passes
 * through live only while some tick object holds them. Between sparse requests (health checks, one poll at a time)
 * none is alive, a garbage collection can drop them, and the next tick makes new ones; nextTick's feedback collects
 * these until its optimized code defines the two keys through the V8 runtime.
 *
 * The tick object comes from an async_hooks init hook that is on for one synchronous nextTick call only, so
 * no other resource is seen and no hook runs afterwards. Returns whether one was kept (false if Node no longer
 * reports ticks that way: the server works the same, without this guard).
 */
export function keepTickShape(): boolean {
  if (kept) return true;
  const hook = createHook({
    init(_id, type, _trigger, resource) {
      if (type === 'TickObject' && kept === null && typeof resource === 'object' && resource !== null) kept = resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
  return kept !== null;
}

/** The tick object kept, for the tests. */
export const keptTick = (): object | null => kept;

function noop(): void {}
