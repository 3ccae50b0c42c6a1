import { AppLoadError, stackText, thrownText } from './errors.js';

/**
 * Watches an app (or a config file) while it loads, for the ways its top-level code can end or stall a
 * process with nothing said:
 * - it calls process.exit() (a failed check of its own): `say` names the call, synchronously, on the way out;
 * - its top-level await waits on something that can never settle: the event loop runs dry, and Node would
 *   exit 0 as if all went well (not in a worker, whose IPC channel keeps it up: the master's boot timeout
 *   applies there);
 * - it waits on something that never comes (a database that does not answer), past `limitS` seconds.
 * The last two call `fail`.
 */
export interface LoadGuard {
  say(line: string): void;
  fail(line: string): void;
  /** 0: wait as long as it takes. */
  limitS: number;
}

/**
 * The guard's own `beforeExit` listeners, while a load runs: not the app's. The end of a worker's stop runs the
 * app's `beforeExit` listeners (src/workers/before-exit.ts); called there, this one would fail the load as if it
 * had run dry. No stop was seen to reach that point while a load ran (a TTOU or a TERM during the load did
 * not): it is left out all the same.
 */
export const GUARD_LISTENERS = new WeakSet<object>();

/** Set once tunicorn itself ends the process (exitingOnPurpose): no load still pending called process.exit(). */
let ownExit = false;

/** Said by the CLI before it ends the process (a stop that came while a HUP's config file was still loading). */
export function exitingOnPurpose(): void {
  ownExit = true;
}

/** `what`: the module loading, as the lines name it (`app app.ts`, `config file /srv/tunicorn.config.ts`). */
export async function guardLoading<T>(what: string, loading: Promise<T>, guard: LoadGuard): Promise<T> {
  let timer: NodeJS.Timeout | null = null;
  // An uncaught exception also ends the process through 'exit': that one is said by whoever handles it.
  let crashed = false;
  const onCrash = () => (crashed = true);
  const onExit = (code: number) => {
    if (!crashed && !ownExit) guard.say(`${what} called process.exit(${code}) while loading`);
  };
  const onDry = () =>
    fail(`${what} never finished loading: its top-level code awaits something that can never settle (nothing else was left to run)`);
  GUARD_LISTENERS.add(onDry);
  const stop = () => {
    process.off('exit', onExit);
    process.off('uncaughtExceptionMonitor', onCrash);
    process.off('beforeExit', onDry);
    if (timer) clearTimeout(timer);
  };
  // `fail` may exit the process itself: that exit is not the app's.
  const fail = (line: string) => {
    stop();
    guard.fail(line);
  };
  process.once('exit', onExit);
  process.on('uncaughtExceptionMonitor', onCrash);
  process.once('beforeExit', onDry);
  if (guard.limitS > 0) {
    timer = setTimeout(() => fail(`${what} did not finish loading within ${guard.limitS} s`), guard.limitS * 1000);
    timer.unref();
  }
  // A rejection the module's code left unhandled: under plain Node it ends the process as an uncaught
  // exception. Here it fails the load, in one line, where in a worker it would crash every worker as soon as
  // it served. One handled later (a .catch() added in a later turn) is forgiven, as Node forgives it.
  const rejected = new Map<Promise<unknown>, unknown>();
  const onRejection = (reason: unknown, promise: Promise<unknown>) => rejected.set(promise, reason);
  const onHandled = (promise: Promise<unknown>) => rejected.delete(promise);
  process.on('unhandledRejection', onRejection);
  process.on('rejectionHandled', onHandled);
  try {
    const value = await loading;
    // Node reports a rejection nobody handled once the microtasks have run: the next turn sees it.
    await new Promise((resolve) => setImmediate(resolve));
    const [reason] = rejected.values();
    if (rejected.size > 0) throw new UnhandledAtLoad(what, reason);
    return value;
  } finally {
    stop();
    process.off('unhandledRejection', onRejection);
    process.off('rejectionHandled', onHandled);
  }
}

/** A promise the loading module rejected and nothing handled: the load fails with it. */
export class UnhandledAtLoad extends AppLoadError {
  constructor(what: string, reason: unknown) {
    const text = reason instanceof Error ? `${reason.name}: ${reason.message.split('\n')[0]}` : thrownText(reason);
    super(
      `${what} failed to load: a promise it made was rejected and nothing handled the rejection: ${text}; add a .catch() or await it in a try`,
      stackText(reason),
    );
  }
}
