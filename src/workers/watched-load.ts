import { AppLoadError, appFrames } from '../app/errors.js';
import { loadErrorPage } from '../app/error-page.js';
import type { LoadResult } from '../app/load.js';
import type { ServedApp } from '../app/shapes.js';
import { importedFiles, missingFiles, watchLaterImports } from './imported-files.js';
import type { WorkerRuntime } from './runtime.js';

/**
 * Loads the app to serve it, where it is served: in a worker process (child.ts) or in each gthread thread
 * (gthread-thread.ts), each with its own module cache. With --reload, the files the app imported (and the
 * one that failed to load) go to the master to watch, through `runtime.reportFiles` (a thread's through its
 * process), and an app that fails to load is served as a 500 page that shows why, until a watched file
 * changes, instead of stopping the server.
 *
 * `load` imports the app (called once the watch of native ES modules is in place); `loud`: this loader logs
 * a load error at error level, the others at debug level (one error in the log, not one per worker and thread).
 */
export async function loadWatched(
  runtime: WorkerRuntime,
  app: string,
  cwd: string,
  load: () => Promise<LoadResult>,
  loud: boolean,
): Promise<ServedApp> {
  const reload = runtime.config.reload;
  const report = (files: string[], missing?: string[]) => runtime.reportFiles(files, missing);
  // Imported only for --reload: it loads node:worker_threads, which the other workers do without.
  if (reload) (await import('./esm-watch.js')).watchEsmImports(report);
  try {
    const { served } = await load();
    runtime.log.debug(`Serving ${app} as ${served.kind}`);
    if (reload) {
      const files = importedFiles(app, cwd);
      report(files);
      watchLaterImports(files, report);
    }
    return served;
  } catch (err) {
    // --reload: a developer's broken code keeps the server up and shows why, until a file changes.
    if (!reload || !(err instanceof AppLoadError)) throw err;
    report(importedFiles(app, cwd, err), missingFiles(err));
    const say = `${err.message}; serving a 500 page that shows it until a watched file changes`;
    // As when the app fails to load without --reload (child.ts): the app's frames, not jiti's and tunicorn's
    // (the page keeps them all), and no detail that only repeats the message.
    const detail = runtime.log.enabled('debug') ? err.detail : appFrames(err.detail);
    if (loud && /^\s+at /m.test(detail)) runtime.log.stacked('error', say, detail);
    else if (loud) runtime.log.error(say);
    else runtime.log.debug(say);
    return loadErrorPage(err);
  }
}
