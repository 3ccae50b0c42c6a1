import path from 'node:path';
import { parseAddress } from '../../listeners/address.js';
import { canonicalHost } from '../../ip.js';
import { usableCpus } from '../../cgroup.js';
import { boolSetting, choiceSetting, ConfigError, intSetting, listSetting, numberSetting, show, sizeSetting, stringSetting, type Setting } from '../setting.js';

const section = 'Server';

/** Gunicorn's advice, as in the seed: (2 x CPU) + 1, the CPUs counted as a container's quota allows (see src/cgroup.ts). */
export const autoWorkers = (): number => 2 * usableCpus().cpus + 1;

export const WORKER_CLASSES = ['async', 'sync', 'gthread'] as const;
export type WorkerClassName = (typeof WORKER_CLASSES)[number];

/**
 * Gunicorn's other worker classes (`-k gevent`, `-k uvicorn.workers.UvicornWorker`) are Python's: refused with
 * what to use instead, rather than only the list of tunicorn's.
 */
function withGunicornClasses(s: Setting<WorkerClassName>): Setting<WorkerClassName> {
  const explain = (v: unknown): void => {
    if (typeof v !== 'string' || (WORKER_CLASSES as readonly string[]).includes(v.toLowerCase())) return;
    const name = v.trim();
    if (!/^(gevent|eventlet|tornado|asgi)$/i.test(name) && !/\.\w*Worker$/.test(name)) return;
    const analogue = /SyncWorker$/.test(name)
      ? 'sync class is its analogue'
      : /ThreadWorker$/.test(name)
        ? 'gthread class is its analogue'
        : 'async class (the default) is its analogue: one event loop serving many connections';
    throw new ConfigError(
      `invalid value for workerClass (--worker-class): ${show(v)} is a Gunicorn worker class for Python; tunicorn's ${analogue}; expected one of ${WORKER_CLASSES.join(', ')}`,
    );
  };
  return {
    ...s,
    fromCli: (raw) => (explain(raw[raw.length - 1]), s.fromCli(raw)),
    fromConfig: (v) => (explain(v), s.fromConfig(v)),
  };
}

export const server = {
  bind: listSetting({
    key: 'bind',
    gunicorn: 'bind',
    section,
    flags: ['-b', '--bind'],
    metavar: 'ADDRESS',
    default: ['127.0.0.1:8000'],
    defaultDoc: '`127.0.0.1:8000`, or `0.0.0.0:$PORT` when `PORT` is set',
    env: 'PORT',
    dynamicDefault: (env) => (env.PORT ? [`0.0.0.0:${env.PORT}`] : ['127.0.0.1:8000']),
    check: (list) => {
      if (list.length === 0) return 'expected at least one address';
      // The second bind of one address would fail as "address already in use", as if another server held it.
      const seen = new Map<string, string>();
      for (const a of list) {
        const at = parseAddress(a); // throws a ConfigError that names the bad address
        const id = at.kind === 'tcp' ? (at.port === 0 ? null : `${canonicalHost(at.host)}:${at.port}`) : at.kind === 'unix' ? `unix:${path.resolve(at.path)}` : `fd:${at.fd}`;
        if (id === null) continue;
        const first = seen.get(id);
        if (first !== undefined)
          return `${JSON.stringify(a)} ${first === a ? 'is listed twice' : `is the same address as ${JSON.stringify(first)}`}; bind each address once`;
        seen.set(id, a);
      }
      return undefined;
    },
    short: 'The socket(s) to bind: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N. Repeat to bind several.',
    doc:
      'Each address is bound by the master, which never accepts on it: the workers inherit the listening ' +
      'sockets and the kernel hands each connection to one of them. Port 0 binds a free port; the log says ' +
      'which (`Listening at: ...`). A HOST alone binds port 8000, as in Gunicorn, but a number alone is refused ' +
      '(`-b 8000`, which Gunicorn reads as the host 0.0.31.64): give `:8000` (every interface) or ' +
      '`127.0.0.1:8000`. `tcp://HOST:PORT` is HOST:PORT, as in Gunicorn. A host name is resolved once, at ' +
      'start, to its IPv4 address if it has one, as Gunicorn binds it: `localhost` binds 127.0.0.1 even where ' +
      'the resolver lists `::1` first (add `-b [::1]:PORT` to serve both). An address in use (a server that is ' +
      'still stopping) or not on this machine (an interface still coming up) is tried 5 times, 1 s apart, as ' +
      'Gunicorn does, with an error line for each retry (`Connection in use: http://127.0.0.1:8000; retrying ' +
      'in 1 s (attempt 2 of 5)`); then the start fails with one line. `unix:PATH` makes a Unix socket (a stale ' +
      'socket file is replaced; one this user may not connect to, or may not remove, such as root\'s in /tmp, ' +
      'stops the start with a line that says which); as in Gunicorn, `unix://PATH` is the same PATH ' +
      '(`unix://app.sock` is ./app.sock, `unix:///run/app.sock` is /run/app.sock). A path without `unix:` ' +
      '(`-b /run/app.sock`, `-b app.sock`), which Gunicorn reads as a host name, is refused with the address ' +
      'to write. An IPv6 link-local address needs its interface: `[fe80::1%eth0]:8000`. ' +
      '`fd://N` serves a socket this process inherited as file descriptor N; a descriptor that is not one stops ' +
      'the start with a line that says what it is (a file, a pipe, or, when nothing was passed there, Node\'s ' +
      'own: `cannot bind fd://3: not a socket (file descriptor 3 is Node\'s own anon_inode:[eventpoll]: nothing ' +
      'passed this process a socket there)`).',
  }),
  backlog: intSetting({
    key: 'backlog',
    gunicorn: 'backlog',
    section,
    flags: ['--backlog'],
    metavar: 'INT',
    min: 1,
    default: 2048,
    // listen(2) takes an int: a larger number cannot reach the kernel.
    check: (n) => (n > 2 ** 31 - 1 ? 'must be <= 2147483647 (the kernel caps it at net.core.somaxconn anyway)' : undefined),
    short: 'The maximum number of pending connections.',
    doc:
      'The listen backlog: connections the kernel queues while every worker is busy or restarting. The ' +
      'kernel caps it at `net.core.somaxconn` (4096 from Linux 5.4, 128 before): a backlog set above it ' +
      'is a warning at start that says so (`backlog N is above the kernel\'s net.core.somaxconn (M), which ' +
      'caps it: ...`); raise the sysctl to get the queue asked for. At most 2147483647, the largest listen(2) takes.',
  }),
  workers: intSetting({
    key: 'workers',
    gunicorn: 'workers',
    section,
    flags: ['-w', '--workers'],
    metavar: 'INT',
    min: 1,
    allowAuto: autoWorkers,
    default: 1,
    defaultDoc: '`$WEB_CONCURRENCY` or 1',
    env: 'WEB_CONCURRENCY',
    dynamicDefault: (env) => env.WEB_CONCURRENCY?.trim() || 1,
    short: 'The number of worker processes; "auto" is (2 x CPU) + 1, a container\'s CPU quota counted.',
    doc:
      'Worker processes share no memory; only more processes (or gthread threads) give more parallel CPU. ' +
      'With the default async class start with the number of cores: one event loop already serves many ' +
      'waiting requests. `auto` ((2 x CPU) + 1) is Gunicorn\'s starting point for sync workers. Then measure ' +
      '(see docs/concurrency.md). `auto` counts the CPUs this process may run on (its affinity: a cpuset, ' +
      '`taskset`), lowered to a CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`: `docker run --cpus`, a ' +
      'Kubernetes CPU limit, systemd\'s `CPUQuota=`) rounded up, which Node 20\'s `os.availableParallelism()` ' +
      'does not see: a container limited to 1 CPU on a 64-core host gets 3 workers, not 129. The master says ' +
      'what it counted as it starts (`Workers: auto = 3 ((2 x 1 CPU) + 1; the CPU quota, 1 of the machine\'s ' +
      '64 CPUs: /sys/fs/cgroup/cpu.max)`). A Kubernetes CPU request without a limit sets no quota: set ' +
      '`workers` (or `WEB_CONCURRENCY`) there.',
  }),
  workerClass: withGunicornClasses(choiceSetting({
    key: 'workerClass',
    gunicorn: 'worker_class',
    section,
    flags: ['-k', '--worker-class'],
    metavar: 'STRING',
    choices: WORKER_CLASSES,
    default: 'async' as WorkerClassName,
    short: 'The type of worker: async (default), sync or gthread.',
    doc:
      '`async`: one event loop serves up to `worker_connections` connections at once (Node\'s natural ' +
      'model, the analogue of gevent or UvicornWorker). `sync`: one request at a time per worker, which ' +
      'stops accepting while busy, even while its handler awaits I/O; responses close the connection. ' +
      '`gthread`: `threads` worker threads per process, each with its own copy of the app, one request at ' +
      'a time each; there a WebSocket (an upgrade request) holds its worker or thread only until the ' +
      'app\'s `upgrade` listener takes it. Under both, a request\'s turn lasts until its response is sent ' +
      'and, for a handler that returns a promise (an async listener, a Fetch handler, Koa, Hono), until that ' +
      'promise settles: a client that leaves early does not let the next request run beside a handler that ' +
      'still runs (`request_deadline`, if set, bounds that wait). As in Gunicorn, `threads` above 1 selects `gthread` when no worker ' +
      'class is given anywhere (flag, `TUNICORN_CMD_ARGS` or config file) or when `sync` is; with `async` the ' +
      'class stays and the master logs a warning that it ignores `threads`. Gunicorn\'s other classes ' +
      '(`gevent`, `eventlet`, `tornado`, Uvicorn\'s worker) are refused: `async` is their analogue. See ' +
      'docs/concurrency.md.',
  })),
  threads: intSetting({
    key: 'threads',
    gunicorn: 'threads',
    section,
    flags: ['--threads'],
    metavar: 'INT',
    min: 1,
    default: 1,
    short: 'The number of threads per worker (gthread).',
    doc:
      'Each thread is a `node:worker_threads` thread with its own copy of the app and event loop, sharing ' +
      'its process\'s listening sockets; each thread runs the `startup` export of its copy. Threads share ' +
      'the process, not a JavaScript heap. Each thread also imports the config file: `preRequest` and ' +
      '`postRequest` run in the thread that serves the request, with that thread\'s copy of the config ' +
      'file\'s module state, while `postFork`, `postWorkerInit` and `workerExit` run once, in the process ' +
      '(state they set up is not seen by the threads). A native addon must be context-aware (N-API addons ' +
      'are) to load in a thread; an older one fails with "Module did not self-register": serve such an app ' +
      'with `async` or `sync`. As in Gunicorn, more than one thread with no worker class, or with `sync`, ' +
      'selects `gthread`; `async` ignores it, with a warning.',
  }),
  workerConnections: intSetting({
    key: 'workerConnections',
    gunicorn: 'worker_connections',
    section,
    flags: ['--worker-connections'],
    metavar: 'INT',
    min: 1,
    default: 1000,
    short: 'The maximum number of simultaneous connections per async worker (kept alive, per gthread worker).',
    doc:
      'Each connection takes a file descriptor: when this does not fit under the open-file limit (`ulimit -n`, ' +
      'systemd\'s `LimitNOFILE=`), with about 32 a worker needs itself, the master warns at start: a worker ' +
      'out of descriptors has its new connections accepted and closed at once, unanswered (libuv\'s answer ' +
      'to EMFILE), which Node does not report. A worker that reaches the limit while serving says so, once ' +
      'until its count falls back under 90 % of the limit (`Worker (pid:N) is at its open-file limit: 64 of ' +
      '64 descriptors open (ulimit -n) ...`). ' +
      'At the cap an async worker stops accepting until a connection closes, so new connections go to other ' +
      'workers or wait in the backlog; a connection is never accepted and then dropped. A gthread thread does ' +
      'not stop accepting at its cap (it stops only while a request of its own awaits I/O), so each thread keeps at ' +
      'most its share (this divided by `threads`, rounded up) of connections open: past it, its answers say ' +
      '`Connection: close`. The sync class serves one connection at a time. An open WebSocket or event ' +
      'stream is one connection for its whole life: with many of them, size this (and `ulimit -n`) for the ' +
      'clients that stay connected, since at the cap the worker takes no new connection, not even a short ' +
      'request, until one of them closes.',
  }),
  maxRequests: intSetting({
    key: 'maxRequests',
    gunicorn: 'max_requests',
    section,
    flags: ['--max-requests'],
    metavar: 'INT',
    default: 0,
    short: 'Recycle a worker after it has handled this many requests (0: never).',
    doc:
      'A simple guard against memory leaks. The master starts the replacement first and stops the old ' +
      'worker gracefully once the new one serves, so no request fails. An upgrade request (a WebSocket) ' +
      'counts as one request.',
  }),
  maxRequestsJitter: intSetting({
    key: 'maxRequestsJitter',
    gunicorn: 'max_requests_jitter',
    section,
    flags: ['--max-requests-jitter'],
    metavar: 'INT',
    default: 0,
    short: 'A random 0..N added to max_requests per worker, so workers do not all recycle at once.',
    doc: 'Each worker draws its own limit, `max_requests + randint(0, max_requests_jitter)`.',
  }),
  maxWorkerMemory: sizeSetting({
    key: 'maxWorkerMemory',
    section,
    flags: ['--max-worker-memory'],
    metavar: 'SIZE',
    default: 0,
    min: 2 ** 20,
    minText: '1M',
    short: 'Recycle a worker whose memory (RSS) is above this size, as 512M or 1.5G (0: never).',
    doc:
      'PM2\'s `max_memory_restart` (accepted as a config key too, with its values: `max_memory_restart: \'300M\'`); Gunicorn has no such setting. The master reads each worker\'s resident ' +
      'set size from `/proc/PID/status` every 5 seconds (nothing is asked of the worker, so a stuck one is ' +
      'measured too; a gthread worker is one process, all its threads counted). A worker above the limit is ' +
      'recycled as `max_requests` recycles one: `Worker PID uses 612.4 MiB (RSS), above max_worker_memory ' +
      '(512 MiB): replacing it; it serves on until its replacement is ready`, and no request fails. K, M, G ' +
      'and T count 1024s (`800MB` is 800 MiB); a number alone counts bytes; at least 1M. A limit below what a worker ' +
      'uses as it starts would recycle every worker for ever: a worker already above it when it reports ready ' +
      'is left alone, and one warning says so; after three workers in a row that went above it within 30 s of ' +
      'their start, recycling for memory stops until the next HUP, and a warning says so. Linux only: where ' +
      'there is no `/proc`, a start that sets it stops with one line (a HUP keeps the running configuration). ' +
      'In a container (or under systemd\'s `MemoryMax=`) the memory limit of the cgroup (`memory.max`, v1 ' +
      '`memory.limit_in_bytes`) is a cap on the master and the workers together, at which the kernel kills: ' +
      'when `max_worker_memory` x `workers` is above it, the start (and a HUP that changes either) warns, as ' +
      '`max_worker_memory (512 MiB) x 3 workers is 1.5 GiB, above the memory limit of its cgroup (a ' +
      'container\'s), 1 GiB in /sys/fs/cgroup/memory.max: ...; set --max-worker-memory below 341 MiB (the limit / ' +
      'workers, less what the master uses), or run fewer workers`. ' +
      'See docs/operations.md for when to use it rather than `max_requests`.',
  }),
  timeout: numberSetting({
    key: 'timeout',
    gunicorn: 'timeout',
    section,
    flags: ['-t', '--timeout'],
    metavar: 'SECONDS',
    default: 30,
    // A loop beats at most every 50 ms (heartbeatEvery): much less than this and healthy workers are killed.
    check: (n) => (n > 0 && n < 0.5 ? 'must be 0 (never) or at least 0.5: a shorter one kills workers whose loop is not blocked' : undefined),
    short: 'Kill and replace a worker whose event loop is blocked for this long (0: never).',
    doc:
      'A liveness check, not a request timeout: a worker\'s event loop reports to the master every second ' +
      'or so while it serves, and every sixth of `timeout` (at most 10 s) while it idles, so that an idle ' +
      'server leaves the machine alone; one silent for `timeout` seconds is killed (`WORKER TIMEOUT`) after logging which requests ' +
      'it was serving. Under `gthread` each thread beats so, and a thread silent that long is the worker\'s ' +
      'timeout: for one stuck on a request, counted from when the request began. A slow request that awaits ' +
      'I/O does not block the loop and is not affected (see `request_deadline` for that). With 0 no worker is ' +
      'timed out, and none beats: a worker whose loop is stuck when its master dies is still ended, 5 s after, by ' +
      'its stall watcher, which waits for that (where the native watcher could not be built, the loop beats ' +
      'every 2.5 s for it). A value between 0 and 0.5 is refused: a loop that beats at most every 50 ms, and ' +
      'waits for I/O between beats, would be killed while it serves.',
  }),
  workerTmpDir: stringSetting<string | null>({
    key: 'workerTmpDir',
    gunicorn: 'worker_tmp_dir',
    section,
    flags: ['--worker-tmp-dir'],
    metavar: 'DIR',
    default: null,
    short: 'The directory of the workers\' heartbeat files (default: /dev/shm, else none).',
    doc:
      'Each worker writes the time of its heartbeat (see `timeout`) into a file of its own, which the master ' +
      'reads when it checks the timeouts: a message would wake the master for every beat of every ' +
      'worker. The files are unlinked as soon as they are made, so none is ever left behind. By default they ' +
      'are made in `/dev/shm` (memory; in a container, a mount of its own, apart from the root file system), ' +
      'and where no file can be made there the heartbeats are messages to the master instead, which work ' +
      'everywhere. A directory you name must take new files (checked at the start, with `--check-config` and ' +
      'on HUP); should it stop taking them later, a warning says so and the heartbeats become messages. As ' +
      'Gunicorn\'s docs advise for its own heartbeat files, name a directory in memory (tmpfs): on a disk, ' +
      'a write can hold a worker up. Unused with `timeout` 0.',
  }),
  gracefulTimeout: numberSetting({
    key: 'gracefulTimeout',
    gunicorn: 'graceful_timeout',
    section,
    flags: ['--graceful-timeout'],
    metavar: 'SECONDS',
    default: 30,
    short: 'How long a stopping worker may finish its requests before it is killed.',
    doc:
      'On TERM, HUP, TTOU and max_requests recycling a worker stops accepting, finishes what it is ' +
      'serving, and exits; after this many seconds the master kills it. On Linux it is also the time the ' +
      'processes a worker left running (its app\'s children) get after SIGTERM before the master, their ' +
      'new parent, sends SIGKILL (docs/operations.md).',
  }),
  keepalive: numberSetting({
    key: 'keepalive',
    gunicorn: 'keepalive',
    section,
    flags: ['--keep-alive'],
    metavar: 'SECONDS',
    default: 5,
    // Node writes the header's whole seconds, rounded down: 0.5 said `timeout=0`, which undici reads as no
    // timeout given (it then reuses the connection for its own 4 s, past the server's close).
    check: (s) =>
      s > 0 && s < 1 ? 'a keep-alive under 1 s cannot be advertised (Keep-Alive: timeout=N counts whole seconds); use 0 (no keep-alive) or 1 or more' : undefined,
    short: 'How long an idle keep-alive connection stays open (0: no keep-alive).',
    doc:
      'Gunicorn\'s default is 2; tunicorn\'s, 5, is Node\'s own. Between 0 and 1 it is refused, since the ' +
      'header counts whole seconds. ' +
      'Each response says so (`Keep-Alive: timeout=N`), and, as Node does, the connection is kept 1 s longer ' +
      'than that, so a client that honours the header is never the one racing the close. A sweep every 0.5 s ' +
      'closes the HTTP/1.1 connections (plain or TLS) idle that long, so an idle connection closes between ' +
      'N + 1 and N + 1.5 s after its last response. Only a request makes it busy: empty lines (CR, LF) sent ' +
      'before a request line are ignored, as RFC 9112 section 2.2 has it, and buy no time (Node\'s own timer, ' +
      'reset by every byte read, let a client keep a connection open for good with a CRLF every few seconds). ' +
      'A response still being written to a slow reader is never cut. ' +
      'An HTTP/2 session (TLS or h2c) is closed with the same timing once it has no stream open: it gets a ' +
      'GOAWAY, and a client that keeps the connection open after that has it closed 1 s later. A stream ' +
      'still running, however quiet, keeps its session open; a session that has opened no stream yet gets ' +
      '`header_timeout` instead, as a new HTTP/1 connection does. With 0 an HTTP/2 session gets its GOAWAY as ' +
      'soon as its last stream ends: the streams it had received by then are served, and the client opens ' +
      'later ones on a new connection. ' +
      'Behind a load balancer, set it above the balancer\'s idle timeout so the server is never the one ' +
      'that closes a connection the balancer is about to reuse. ' +
      'As in Gunicorn, the `sync` class ignores it for HTTP/1.1 (one request per connection, `Connection: ' +
      'close`; its HTTP/2 sessions are closed when idle as above); `async` ' +
      'and `gthread` keep connections alive. A gthread thread runs one request at a time: an idle connection ' +
      'does not hold it, and a request on a kept-alive connection waits for its turn. If the thread gets stuck, ' +
      'its idle kept-alive connections go to another worker with the connections it holds unread; a request ' +
      'it had already read from one and queued cannot (with 0, every waiting connection stays unread until ' +
      'its turn).',
  }),
  preload: boolSetting({
    key: 'preload',
    gunicorn: 'preload_app',
    section,
    flags: ['--preload'],
    default: false,
    short: 'Load the app in the master before starting workers.',
    doc:
      'Node has no fork(): workers are new processes and share no memory with the master, so unlike ' +
      'Gunicorn this saves no memory. It makes a broken app fail once, in the master, before any worker ' +
      'starts, and warms the TypeScript transform cache the workers then read. The master never serves its ' +
      'copy: a framework app it started while loading (Fastify `ready()`, Nest `init()`, a factory\'s app) is ' +
      'closed again at once (`close()`: onClose hooks, Nest\'s destroy hooks), so a cron or a consumer they ' +
      'start does not run on in the master; its `startup` and `shutdown` exports run only in the workers. ' +
      'What the module\'s top-level code opens stays open in the master. As Gunicorn\'s master replaces ' +
      'the signal handlers of the app it preloaded, tunicorn\'s master removes the listeners the app added ' +
      'for the signals it handles (TERM, INT, QUIT, HUP, USR1, USR2, WINCH, TTIN, TTOU), with a warning: ' +
      'a `process.exit()` on TERM would cut its graceful stop short. In the workers the app keeps them. The ' +
      'config key `preload_app` (Gunicorn\'s) is accepted too.',
  }),
};
