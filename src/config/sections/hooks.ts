import type {
  NWorkersHook,
  RequestHook,
  ServerHook,
  ServerWorkerHook,
  WorkerHook,
} from '../hook-types.js';
import { hookSetting } from '../setting.js';

const section = 'Server hooks';

/**
 * Gunicorn's server hooks, with its meanings. Where Gunicorn forks, tunicorn spawns: postFork runs in the new
 * worker process as soon as it starts, before the app is loaded.
 */
export const hooks = {
  onStarting: hookSetting<ServerHook>({
    key: 'onStarting', gunicorn: 'on_starting', section, arity: 1,
    short: 'In the master, before the sockets are bound: `(server)`.',
    doc: 'Called just before the master process is initialized.',
  }),
  onReload: hookSetting<ServerHook>({
    key: 'onReload', gunicorn: 'on_reload', section, arity: 1,
    short: 'In the master, on HUP, before new workers start: `(server)`.',
    doc: 'Called to recycle workers during a reload via SIGHUP.',
  }),
  whenReady: hookSetting<ServerHook>({
    key: 'whenReady', gunicorn: 'when_ready', section, arity: 1,
    short: 'In the master, once the sockets listen: `(server)`.',
    doc: 'Called just after the server is started.',
  }),
  preFork: hookSetting<ServerWorkerHook>({
    key: 'preFork', gunicorn: 'pre_fork', section, arity: 2,
    short: 'In the master, before a worker is spawned: `(server, worker)` (worker.pid is 0).',
    doc: 'Called just before a worker is spawned.',
  }),
  postFork: hookSetting<ServerWorkerHook>({
    key: 'postFork', gunicorn: 'post_fork', section, arity: 2,
    short: 'In the worker, first thing, before the app loads: `(server, worker)`.',
    doc: 'Called just after a worker has been spawned, in the worker process.',
  }),
  postWorkerInit: hookSetting<WorkerHook>({
    key: 'postWorkerInit', gunicorn: 'post_worker_init', section, arity: 1,
    short: 'In the worker, after the app loaded, before it accepts: `(worker)`.',
    doc: 'Called just after a worker has initialized the application. With `async` and `sync` workers it runs before the app\'s `startup` export; with `gthread`, once every thread has loaded the app and run its `startup`.',
  }),
  workerInt: hookSetting<WorkerHook>({
    key: 'workerInt', gunicorn: 'worker_int', section, arity: 1,
    short: 'In each worker, on a quick stop (INT or QUIT to the master or to the worker): `(worker)`.',
    doc: 'Called when a worker is told to stop at once, before the requests in flight are cut: by SIGINT or SIGQUIT to it, or to the master, which passes the quick stop on to every worker. Not on a graceful stop (TERM).',
  }),
  workerAbort: hookSetting<WorkerHook>({
    key: 'workerAbort', gunicorn: 'worker_abort', section, arity: 1,
    short: 'In the worker, when the master aborts it for a timeout (SIGABRT): `(worker)`.',
    doc:
      'Called when a worker receives SIGABRT, which the master sends to a worker that missed its heartbeat ' +
      'before the SIGKILL. It can only run if the event loop gets free in between (a worker stalled on I/O ' +
      'or a long synchronous step that ends); a loop that never yields is killed without it. `workerExit` ' +
      'runs after it, in the same second before the kill, as in Gunicorn.',
  }),
  preRequest: hookSetting<RequestHook>({
    key: 'preRequest', gunicorn: 'pre_request', section, arity: 3,
    short: 'In the worker, before the app sees a request: `(worker, req, res)`.',
    doc: 'Called just before a worker processes the request. If it returns a promise, the app sees the request once the promise settles (a rejection is logged, and the request goes on); a hook that returns nothing costs no promise.',
  }),
  postRequest: hookSetting<RequestHook>({
    key: 'postRequest', gunicorn: 'post_request', section, arity: 3,
    short: 'In the worker, after the response is finished: `(worker, req, res)`.',
    doc: 'Called after a worker processes the request. A promise it returns is not waited for (the response is already sent); a rejection is logged.',
  }),
  childExit: hookSetting<ServerWorkerHook>({
    key: 'childExit', gunicorn: 'child_exit', section, arity: 2,
    short: 'In the master, after a worker exited: `(server, worker)`.',
    doc: 'Called just after a worker has been exited, in the master process.',
  }),
  workerExit: hookSetting<ServerWorkerHook>({
    key: 'workerExit', gunicorn: 'worker_exit', section, arity: 2,
    short: 'In the worker, as it exits: `(server, worker)`.',
    doc:
      'Called just before a worker process exits, in the worker process: after a stop, after `workerAbort`, ' +
      'and in a worker whose app failed to load (as Gunicorn calls it on every exit but a kill). Once it returns, the processes the ' +
      'worker started that still run in its session are sent SIGTERM (on Linux; docs/operations.md, ' +
      '"max_requests, max_worker_memory, and the heartbeat kill"): a process this hook starts to outlive the ' +
      'worker is spawned with `detached: true`.',
  }),
  nworkersChanged: hookSetting<NWorkersHook>({
    key: 'nworkersChanged', gunicorn: 'nworkers_changed', section, arity: 3,
    short: 'In the master, when the wanted worker count changes: `(server, new, old)`.',
    doc: 'Called just after num_workers has been changed (old is null at start).',
  }),
  onExit: hookSetting<ServerHook>({
    key: 'onExit', gunicorn: 'on_exit', section, arity: 1,
    short: 'In the master, just before it exits: `(server)`.',
    doc:
      'Called just before exiting. The master waits for it (its promise, if it returns one) for `graceful_timeout` ' +
      'at most, then exits all the same: `The onExit hook has not returned after 30 s (graceful_timeout): exiting ' +
      'without it`.',
  }),
};
