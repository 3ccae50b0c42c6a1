/**
 * Keys of a PM2 app declaration (ecosystem.config.js) that are not tunicorn settings, each with what to use
 * instead. A team moving its ecosystem file's keys over then gets that sentence rather than "unknown setting",
 * and docs/settings.md lists them all (generated from this table). `max_memory_restart` is not here: it is read
 * as max_worker_memory (KEY_ALIASES in registry.ts).
 */

const RESTARTS =
  'the master replaces every worker that dies, with a growing pause when they crash in a loop (README, "What the master guarantees"); the master itself is restarted by its supervisor (systemd Restart=on-failure): remove the key';
const LOG_FILE = 'use errorlog (--error-logfile FILE) and captureOutput (--capture-output), which sends the app\'s stdout and stderr there too; accesslog (--access-logfile FILE) for requests';
const NODE_ARGS = "Node options reach the workers from NODE_OPTIONS or the node command that runs tunicorn: NODE_OPTIONS='--max-old-space-size=512' tunicorn app.ts";
const READY =
  "a worker is ready once the app has loaded and its startup export has finished (PM2's process.send('ready')): nothing to set; timeout (-t) bounds a boot (at least 30 s)";

/** For `env_production` and any other `env_NAME`: PM2's environment sets, picked with `--env NAME`. */
export const ENV_SET = "pick the set in the config file itself, which is code: rawEnv: process.env.NODE_ENV === 'production' ? {...} : {...}";

export const PM2_KEYS: Readonly<Record<string, string>> = {
  apps: 'this is a PM2 ecosystem file; a tunicorn config file exports one server\'s settings as its top-level keys (export default { workers: 4, ... }): see docs/operations.md, "Coming from PM2"',
  script: 'give the app as the APP argument: tunicorn app.ts',
  args: "an app module takes no command-line arguments: pass them in the environment, rawEnv (-e KEY=VALUE)",
  name: 'use procName (-n NAME), shown in the process titles',
  cwd: 'use chdir (--chdir DIR)',
  instances: "use workers (-w N); PM2's 'max' (one per CPU) is workers: os.availableParallelism(), while tunicorn's \"auto\" is 2 x CPUs + 1",
  instance_var:
    "each worker has NODE_APP_INSTANCE (0 to N - 1, unless rawEnv or the environment sets it; PM2's, when PM2 runs tunicorn, is the master's and not kept) and TUNICORN_WORKER_ID (1 to N) in its environment; read one of those and remove the key",
  exec_mode: "tunicorn always runs a master and worker processes that share the listening sockets, as PM2's cluster mode: remove the key",
  env: 'use rawEnv (-e KEY=VALUE); a .env file: rawEnv: parseEnv(readFileSync(\'.env\', \'utf8\')) with node:util and node:fs',
  node_args: NODE_ARGS,
  interpreter_args: NODE_ARGS,
  interpreter: 'the workers run the node that runs the master: /path/to/node node_modules/.bin/tunicorn app.ts',
  kill_timeout: 'use gracefulTimeout (--graceful-timeout SECONDS), in seconds where PM2 counts milliseconds',
  listen_timeout: READY,
  wait_ready: READY,
  cron_restart: 'no scheduled restarts: recycle workers with maxRequests or maxWorkerMemory, or reload on a schedule with a systemd timer or cron (kill -HUP PID, tunicornc reload)',
  watch: 'use reload (--reload), for development',
  ignore_watch: 'reload watches the files the app imports, and reloadExtraFile (--reload-extra-file GLOB) adds more',
  out_file: LOG_FILE,
  error_file: LOG_FILE,
  log_file: LOG_FILE,
  merge_logs: 'the log is always one stream with each line\'s pid in it: remove the key',
  combine_logs: 'the log is always one stream with each line\'s pid in it: remove the key',
  log_date_format: 'the error log\'s time format is fixed ([2026-01-31 12:00:00 +0000]); the access log\'s time is accessLogFormat\'s %(t)s',
  pid_file: 'use pidfile (-p FILE)',
  autorestart: RESTARTS,
  max_restarts: RESTARTS,
  min_uptime: RESTARTS,
  restart_delay: RESTARTS,
  exp_backoff_restart_delay: RESTARTS,
};

/** The error line for a PM2 key in a config file (`env_production` and the other `env_*` included), or undefined. */
export function pm2Key(key: string, where: string): string | undefined {
  const why = PM2_KEYS[key] ?? (/^env_\w+$/.test(key) ? ENV_SET : undefined);
  return why ? `setting "${key}"${where} is PM2's, not tunicorn's: ${why}` : undefined;
}
