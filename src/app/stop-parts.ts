import { describeLoadError } from '../config/file.js';

/**
 * The parts of an app's own stop (a framework's close(), the module's `shutdown` export), named for the log: a
 * part that throws is a StopFailure saying which, and one that hangs is named by the worker's warning before
 * the master's kill (runtime.runShutdown).
 */

/** One part of the app's stop failed: `part` names it ("the shutdown() export"), `cause` is what it threw. */
export class StopFailure extends Error {
  override name = 'StopFailure';
  constructor(
    readonly part: string,
    override readonly cause: unknown,
  ) {
    super(`${part} failed: ${describeLoadError(cause)}`);
  }
}

let running: string | null = null;

/** The part of the app's stop that runs now, if one does. */
export function stopPartRunning(): string | null {
  return running;
}

/** Runs one part of the app's stop; a throw (or rejection) becomes a StopFailure naming the part. */
export async function stopPart(part: string, run: () => unknown): Promise<void> {
  running = part;
  try {
    await run();
  } catch (err) {
    throw new StopFailure(part, err);
  } finally {
    if (running === part) running = null;
  }
}

/** The failures in what a stop threw: one StopFailure, several (an AggregateError of them), or anything else. */
export function stopFailures(err: unknown): unknown[] {
  return err instanceof AggregateError ? err.errors : [err];
}
