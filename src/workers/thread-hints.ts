/**
 * What an app meets in a gthread thread and not in a worker process, said in the words of the fix: Node's
 * own errors there ("process.chdir() is not supported in workers") name neither gthread nor what to do, and
 * "workers" reads as tunicorn's worker processes. See the README's "What differs in a gthread thread".
 */
import { constants } from 'node:os';

const ADDON = /Module did not self-register|not context.aware/i;
/** Node's ERR_WORKER_UNSUPPORTED_OPERATION: the process-wide calls a worker thread may not make. */
const UNSUPPORTED = /(Setting )?process\.(\w+)\(\) is not supported in workers/;
/** The setting that does, for the whole worker process, what the call would have done. */
const INSTEAD: Readonly<Record<string, string>> = {
  chdir: 'set --chdir (chdir) instead',
  umask: 'set --umask (umask) instead',
  setuid: 'set --user (user) instead',
  seteuid: 'set --user (user) instead',
  setgid: 'set --group (group) instead',
  setegid: 'set --group (group) instead',
  setgroups: 'set --user and --initgroups instead',
  initgroups: 'set --user and --initgroups instead',
};

/** What to do about a failure that only a thread has (a load error's text, or an error a request threw). */
export function threadOnlyHint(text: string): string {
  if (ADDON.test(text))
    return '; gthread loads the app in worker threads, where a native addon that is not context-aware (N-API addons are) cannot load: serve this app with -k async or -k sync';
  const m = UNSUPPORTED.exec(text);
  if (!m) return '';
  const call = m[1] ? `process.${m[2]}() with a mask` : `process.${m[2]}()`;
  const instead = INSTEAD[m[2]!];
  return `; gthread runs the app in worker threads, where ${call} cannot be called: ${instead ? `${instead}, or ` : ''}serve this app with -k async or -k sync`;
}

/** The hint for an error a request threw, or ''. Runs on the error path only. */
export function threadErrorHint(err: unknown): string {
  if (!(err instanceof Error)) return '';
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ERR_WORKER_UNSUPPORTED_OPERATION' || code === 'ERR_DLOPEN_FAILED' ? threadOnlyHint(err.message) : '';
}

/** The signals something in this thread listens for (process.on('SIGINT', ...)). */
export function signalListeners(): string[] {
  return process.eventNames().filter((n): n is string => typeof n === 'string' && n in constants.signals && process.listenerCount(n) > 0);
}

/**
 * The line for signal listeners the app added in a thread, or null: Node delivers no signal to a worker
 * thread, so they never run. SIGTERM's are left out: tunicorn runs them at the end of a graceful stop.
 */
export function deafSignalsLine(app: string, before: readonly string[]): string | null {
  const added = signalListeners().filter((s) => s !== 'SIGTERM' && !before.includes(s));
  if (added.length === 0) return null;
  return (
    `app ${app} listens for ${added.join(', ')} (process.on): a gthread thread gets no signals, so those listeners never run ` +
    `(its SIGTERM listeners do, at the end of a graceful stop); serve the app with -k async or -k sync if it needs them`
  );
}

/**
 * Node ignores a write to process.title in a worker thread: the process keeps its name, and the app is not
 * told. `say` gets one line at the first write; reads still give the process's name.
 */
export function watchTitle(app: string, say: (line: string) => void): void {
  const title = Object.getOwnPropertyDescriptor(process, 'title');
  if (!title?.configurable) return;
  let said = false;
  Object.defineProperty(process, 'title', {
    configurable: true,
    enumerable: true,
    get: () => title.value as string,
    set: (v: unknown) => {
      if (!said) say(`app ${app} set process.title to ${JSON.stringify(String(v))}: a gthread thread cannot rename its process, which keeps its name; set --name (proc_name) instead, or serve the app with -k async or -k sync`);
      said = true;
    },
  });
}
