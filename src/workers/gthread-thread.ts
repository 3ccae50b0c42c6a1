/**
 * One thread of a gthread worker (see gthread.ts): it imports the config file's hooks and the app itself
 * (and runs that copy's `startup`), serves one request at a time on its own descriptors of the listening
 * sockets, and beats in shared memory (ThreadBeats) so that a stuck thread is its process's timeout. With
 * --reload it reports the files its copy of the app imported, and serves a load error as a 500 page.
 */
import { closeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { AppLoadError, stackText, thrownText } from '../app/errors.js';
import { loadApp } from '../app/load.js';
import { guardLoading } from '../app/load-guard.js';
import type { ServedApp } from '../app/shapes.js';
import { describeLoadError } from '../config/file.js';
import { captureStdio } from '../logging/error-log.js';
import { shareStatsdWarning } from '../logging/statsd.js';
import type { Config } from '../config/registry.js';
import type { ListenerInfo } from '../protocol/messages.js';
import { openDup } from '../http/peek.js';
import { keepTlsMaterial } from '../http/tls.js';
import { AcceptSwitch } from './accept-switch.js';
import { HeldSockets } from './held-sockets.js';
import { Leases } from './leases.js';
import { OneAtATime } from './one-at-a-time.js';
import { CELLS, RequestMetrics } from './request-metrics.js';
import { loadHooks, WorkerRuntime } from './runtime.js';
import { Serving } from './serving.js';
import { deafSignalsLine, signalListeners, threadErrorHint, watchTitle } from './thread-hints.js';
import { ThreadBeats, type ThreadBeatWriter } from './thread-beats.js';
import { ThreadSlots } from './thread-slots.js';
import { keepTickShape } from './tick-shape.js';
import { loadWatched } from './watched-load.js';

export interface ThreadData {
  readonly thread: number;
  readonly app: string;
  readonly configPath: string | null;
  readonly config: Record<string, unknown>;
  readonly id: number;
  readonly age: number;
  readonly masterPid: number;
  readonly listeners: readonly ListenerInfo[];
  /** The process's request count (max_requests), then StatsD's warning said (GthreadWorker.start). */
  readonly sab: SharedArrayBuffer;
  /** Each thread's last beat, process.hrtime.bigint(), then each one's pace (see ThreadBeats). */
  readonly beats: SharedArrayBuffer;
  /** ThreadSlots' memory: the request each thread runs. */
  readonly slots: SharedArrayBuffer;
  /** HeldSockets' memory: the connections each thread holds back. */
  readonly held: SharedArrayBuffer;
  /** HeldSockets' memory: each thread's kept-alive connections, idle between two requests. */
  readonly kept: SharedArrayBuffer;
  readonly threads: number;
  /** How often the thread beats; 0: never (timeout 0). */
  readonly beatMs: number;
  /** How often it beats while idle (idleBeatEvery); 0: as often as it serves (a timeout under 7 s). */
  readonly idleMs: number;
  /** TLS: the master's session-ticket keys (base64), shared by every thread of every worker. */
  readonly ticketKeys: string | null;
  /** The metrics setting: every thread's counter record, CELLS numbers each (null when off). */
  readonly metrics: SharedArrayBuffer | null;
}

/** Thread -> process. */
export type ThreadMessage =
  /** The app is loaded here: the thread waits for `go` (every thread loaded) before it accepts. */
  | { readonly t: 'loaded' }
  | { readonly t: 'fatal'; readonly appLoad: boolean; readonly message: string; readonly detail: string }
  /** The app's top-level code called process.exit(), which ends this thread: the line that names the call. */
  | { readonly t: 'exiting'; readonly line: string }
  | { readonly t: 'retire'; readonly requests: number }
  /** An exception nothing caught once the app loaded (a throw in a timer, a rejection nothing handled). */
  | { readonly t: 'crashed'; readonly message: string; readonly stack: string; readonly running: string }
  /** --reload: files this thread's copy of the app imported; the process passes them on to the master. */
  | { readonly t: 'files'; readonly files: readonly string[]; readonly missing?: readonly string[] }
  /** TERM: this thread drained the backlog and closed its descriptors of the sockets. */
  | { readonly t: 'drained' };

/** Process -> thread. */
export type ToThread =
  /** Every thread has loaded the app: accept. */
  | { readonly t: 'go' }
  | { readonly t: 'stop'; readonly graceful: boolean; readonly drain: boolean }
  | { readonly t: 'reopen' }
  /** The master rotated the TLS session-ticket keys (base64). */
  | { readonly t: 'ticketKeys'; readonly keys: string }
  /** Serve this connection, handed over from a timed-out worker: a descriptor the process received. */
  | { readonly t: 'adopt'; readonly listener: number; readonly fd: number };

/**
 * An app that listens on parentPort took its thread for a worker thread of its own (code that branches on
 * `isMainThread`, false in every gthread thread): it would get tunicorn's messages, and its own never come.
 */
const TAKES_PORT =
  "listens on worker_threads.parentPort, as a worker thread started by the app would: in a gthread thread (where isMainThread is false) that port is tunicorn's; serve this app with -k async or -k sync";

async function main(): Promise<void> {
  // Each thread has its own nextTick and hidden classes.
  keepTickShape();
  const d = workerData as ThreadData;
  keepTlsMaterial(d.config as Record<string, unknown>);
  const port = parentPort!;
  const post = (m: ThreadMessage) => port.postMessage(m);
  const signalsBefore = signalListeners();
  let served: ServedApp;
  let runtime: WorkerRuntime;
  let beating: ThreadBeatWriter | null = null;
  try {
    const hooks = await loadHooks(d.configPath);
    runtime = new WorkerRuntime(d.config as unknown as Config, hooks, d.id, d.age, d.masterPid, (m) => {
      if (m.t === 'retire') post({ t: 'retire', requests: m.requests });
      else if (m.t === 'drained') post({ t: 'drained' });
      else if (m.t === 'files') post({ t: 'files', files: m.files, ...(m.missing ? { missing: m.missing } : {}) });
    }, d.thread);
    // This thread's process.stdout too: a logger that finds it untouched writes to descriptor 1 itself (pino,
    // Fastify's logger, does: sonic-boom), past the process's captured stream.
    if (runtime.config.captureOutput) captureStdio(() => runtime.log);
    runtime.setTicketKeys(d.ticketKeys);
    if (d.metrics) runtime.metrics = new RequestMetrics(new Float64Array(d.metrics, 8 * CELLS * d.thread, CELLS));
    runtime.shareCount(new Int32Array(d.sab, 0, 1));
    shareStatsdWarning(new Int32Array(d.sab, 4, 1));
    runtime.watchdog = new ThreadSlots(d.threads, d.slots).writer(d.thread);
    if (d.beatMs > 0) beating = new ThreadBeats(d.threads, d.beats).writer(d.thread, d.beatMs, d.idleMs);
    if (beating) runtime.watchdog = beating.watching(runtime.watchdog);
    runtime.errorHint = threadErrorHint;
    // Said by one thread, as a load error is: every thread runs the same code.
    const loud = d.id === 1 && d.thread === 0;
    if (loud) watchTitle(d.app, (line) => runtime.log.warning(line));
    const cwd = process.cwd();
    // One thread logs a load error served as a page (--reload), as one worker does.
    // As a worker process's load is watched (child.ts), but a thread's loop can run dry: an app whose
    // top-level await never settles would end the thread with status 0, where a process waits for its boot
    // timeout. That is a failed load, named at once.
    const guard = {
      say: (line: string) => post({ t: 'exiting', line }),
      fail: (line: string) => post({ t: 'fatal', appLoad: true, message: line, detail: '' }),
      limitS: 0,
    };
    const load = () => guardLoading(`app ${d.app}`, loadApp(d.app, cwd, { onError: runtime.onAppError }), guard);
    served = await loadWatched(runtime, d.app, cwd, load, loud);
    // This thread's copy of the app; a throw is an AppLoadError, which stops the server as a failed load does.
    await served.startup?.();
    if (port.listenerCount('message') > 0) throw new AppLoadError(`app ${d.app} ${TAKES_PORT}`);
    const deaf = loud ? deafSignalsLine(d.app, signalsBefore) : null;
    if (deaf) runtime.log.warning(deaf);
  } catch (err) {
    // Its own listener on the port may be why it exported nothing: it took the thread for one of its own.
    const own = err instanceof AppLoadError && port.listenerCount('message') > 0 && !err.message.includes(TAKES_PORT);
    if (err instanceof AppLoadError) post({ t: 'fatal', appLoad: true, message: own ? `${err.message}; it ${TAKES_PORT}` : err.message, detail: err.detail });
    else post({ t: 'fatal', appLoad: false, message: `thread ${d.thread} failed to boot: ${describeLoadError(err)}`, detail: '' });
    return;
  }
  const serving = new Serving(runtime, served, d.listeners);
  // A thread still busy at the end of a turn of its loop in which it admitted a connection or started a request
  // (on a kept-alive connection too) stops accepting, so that new connections go to an idle thread (or worker)
  // instead of waiting, unread, behind a long request here (an event stream, a slow upstream). The check waits
  // for the turn's check phase (setImmediate), before the next poll can accept again: a request whose bytes
  // came with the connection and whose app answers at once is over by then, and costs no pause (a pause and a
  // resume at every accept, as sync makes them, cost gthread 13 % of its requests/s at `Connection: close`). It
  // resumes on a duplicate it makes itself: native dup() only, since a thread has no master to ask (see
  // Leases). Without the module it accepts throughout.
  const dup = openDup();
  const switcher = typeof dup === 'string' ? null : new AcceptSwitch(serving, new Leases(null, dup), d.listeners.length);
  let checking = false;
  const pauseIfBusy = () => {
    checking = false;
    if (turns.busy) switcher!.pause();
  };
  const checkAtTurnEnd = () => {
    if (!checking) setImmediate(pauseIfBusy);
    checking = true;
  };
  // Busy with an event stream at a TERM, it drains nothing (Serving.drainSkipsStreams); otherwise, as a sync
  // worker does, it stays paused during the stop while busy, and drains the backlog once idle.
  serving.drainSkipsStreams = true;
  const turns = new OneAtATime(serving, {
    busy: switcher ? { onAdmit: checkAtTurnEnd, onRun: checkAtTurnEnd, onIdle: () => switcher.resume() } : undefined,
    held: new HeldSockets(d.threads, d.held).writer(d.thread),
    keepAlive: true,
    maxConnections: Math.ceil(runtime.config.workerConnections / d.threads),
    kept: new HeldSockets(d.threads, d.kept).writer(d.thread),
    log: runtime.log,
    deadlineMs: runtime.config.requestDeadline * 1000,
  });
  // No thread accepts before every thread has loaded the app and the worker has said it is ready: a request
  // that crashes it can never be taken for a failed boot, and a stop while it loads cuts no request.
  // A loaded thread hears every message from here on: a stop before `go` closes its app without serving.
  let stopping = false;
  const accept = async () => {
    await serving.listen();
    beating?.start();
  };
  port.on('message', (m: ToThread) => {
    switch (m.t) {
      case 'go':
        if (!stopping) void accept();
        return;
      case 'stop': {
        stopping = true;
        runtime.acceptDrain = m.drain;
        if (m.graceful) runtime.termListeners = { stoppedAt: Date.now(), own: null };
        const shutdown = () => runtime.shutdownApp(m.graceful, () => served.close?.());
        void runtime
          .finishStop(serving.stop(m.graceful, shutdown), shutdown)
          .catch((err) => runtime.logStopError(err, 'Error while stopping a thread'))
          // Awaited: process.exit() ends the thread before any promise callback queued after it.
          .then(() => switcher?.dropSpares())
          .finally(() => {
            runtime.closeLogs();
            process.exit(0);
          });
        return;
      }
      case 'reopen':
        runtime.reopenLogs();
        return;
      case 'ticketKeys':
        runtime.setTicketKeys(m.keys);
        return;
      case 'adopt':
        // Refused while stopping: this thread owns the descriptor, so it closes it (the client sees a reset).
        if (!serving.adopt(m.listener, m.fd)) closeSync(m.fd);
        return;
    }
  });
  // From here on an exception nothing catches does not end the thread (and with it, at once, the process and
  // the requests its other threads run): the process retires as a worker process does after one (child.ts),
  // and this thread finishes its requests with the others. An app with a listener of its own decides.
  process.on('uncaughtException', (err) => {
    if (process.listenerCount('uncaughtException') > 1) {
      runtime.log.warning(`Uncaught exception in worker, left to the app's uncaughtException listener: ${describeLoadError(err)}`);
      return;
    }
    const e = err instanceof Error ? err : null;
    post({ t: 'crashed', message: e ? e.message : thrownText(err), stack: e ? stackText(e) || `${e.name}: ${e.message}` : thrownText(err), running: runtime.runningList() });
  });
  post({ t: 'loaded' });
}

void main();
