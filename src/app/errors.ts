import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';

/** The app could not be loaded or is not something tunicorn can serve. Carries a one-line reason. */
export class AppLoadError extends Error {
  override name = 'AppLoadError';
  constructor(
    message: string,
    /** The full detail (stack with file and line) for the error log. */
    readonly detail: string = '',
  ) {
    super(message);
  }
}

/**
 * What the app handed back is not something tunicorn can send (a Fetch handler's string instead of a Response):
 * the message says all, and the stack would show only tunicorn's frames.
 */
export class AppResultError extends TypeError {
  override name = 'TypeError';
}

/**
 * The stack of what was thrown, as text: '' for a non-Error, and for an Error whose `stack` some code set to
 * something else (an object, a number), which a `split` on it would turn into a second error, thrown where the
 * first is being reported.
 */
export function stackText(err: unknown): string {
  const stack = err instanceof Error ? (err as { stack?: unknown }).stack : undefined;
  return typeof stack === 'string' ? withoutFreshQuery(stack) : '';
}

/**
 * A config file read again at each HUP is imported under a URL of its own (`file:///srv/tunicorn.config.mjs?v=N`,
 * ModuleImporter's `fresh`): its frames name the file as an editor opens it, without the query.
 */
export function withoutFreshQuery(text: string): string {
  return text.includes('?v=') ? text.replace(/(file:\/\/[^\s()]*?)\?v=\d+(?=:\d)/g, '$1') : text;
}

/**
 * What was thrown, as text, where it is not an Error: String() of it, or its inspection where String() throws
 * (an object of null prototype, `Object.create(null)`, has no toString): the report of a failure must not fail
 * in turn, where it would take the 500 of the request (or the worker) with it.
 */
export function thrownText(err: unknown): string {
  try {
    return String(err);
  } catch {
    try {
      return inspect(err);
    } catch {
      return `a value that cannot be shown (${typeof err})`;
    }
  }
}

/** tunicorn's own folder: its frames in an app's stack are not the app's. */
const OWN_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Whether a stack frame (`    at ...`) is the app's or its packages', not one of Node's internals, tunicorn's
 * or jiti's. `(<anonymous>)`: a frame with no file (a generator's next() in the loader's transform).
 */
export function isUserFrame(line: string): boolean {
  return !/\(node:|at node:|\(<anonymous>\)$/.test(line) && !line.includes(OWN_ROOT + 'dist/') && !line.includes('/node_modules/jiti/');
}

/**
 * A stack with the app's frames only: those of Node's internals, of tunicorn and of jiti (the loader between
 * them) are left out, and counted on a last line. Frames of other packages stay: a library the app imports
 * may be what threw.
 */
export function appFrames(stack: string): string {
  const lines = stack.split('\n');
  const kept: string[] = [];
  let left = 0;
  for (const line of lines) {
    const frame = line.trimStart().startsWith('at ');
    if (frame && !isUserFrame(line)) left++;
    else kept.push(line);
  }
  if (left) kept.push(`    (${left} frame${left === 1 ? '' : 's'} of Node and tunicorn left out; --log-level debug shows them)`);
  return kept.join('\n');
}
