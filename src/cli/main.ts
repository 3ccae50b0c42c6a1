#!/bin/sh
//usr/bin/env true; exec node --no-opt --no-sparkplug --no-maglev --max-semi-space-size=1 "$0" "$@"
/**
 * argv -> resolved config -> arbiter. The only place that calls process.exit in the master.
 *
 * The first two lines start it with the master's Node options (src/cli/node-flags.ts): run as a program, sh runs the
 * second line (`//usr/bin/env true` does nothing) and execs node on this file; to node (and tsc, which keeps it as it
 * is) the second line is a comment. Not `#!/usr/bin/env -S node ...`: BusyBox's env (Alpine, the node:*-alpine
 * images) and toybox's have no -S, and the bin failed there before it started (`env: unrecognized option: S`).
 */
import { AppLoadError, appFrames, isUserFrame, stackText, thrownText } from '../app/errors.js';
import { fstatSync, writeSync } from 'node:fs';
import { exitingOnPurpose, guardLoading } from '../app/load-guard.js';
import { Arbiter, bootLimitS, checkOutputFiles, pm2NumberVars, SIGNALS } from '../arbiter/arbiter.js';
import { checkMemoryLimit, formatSize } from '../arbiter/memory.js';
import { parseArgs } from '../config/args.js';
import { allSettings, type SettingKey } from '../config/registry.js';
import { resolveConfig, type Resolved } from '../config/resolve.js';
import { describeLoadError } from '../config/file.js';
import { ConfigError, show } from '../config/setting.js';
import { checkTls } from '../http/tls.js';
import { checkCanSwitch, resolveIdentity } from '../workers/privileges.js';
import { BindError } from '../listeners/handle.js';
import { ExitCode } from '../protocol/messages.js';
import { otherRuntime, unsupportedPlatform, VERSION } from '../version.js';
import { helpText } from './help.js';
import { startOrphanReaper } from '../arbiter/orphans.js';
import { startDir, upgradeProgram, workDir } from '../arbiter/work-dir.js';
import { lazy } from '../lazy.js';

/** How long the start, or a reload (HUP), waits for the config file to load. */
const CONFIG_LOAD_LIMIT_S = 30;

/** Set when tunicorn itself ends the process (see the 'exit' listener in main). */
let exiting = false;

/**
 * tunicorn ends the process: said to the load guard too, so that a config file still loading then (a HUP's,
 * awaiting something) is not blamed for a process.exit() it did not call.
 */
function ownExit(): void {
  exiting = true;
  exitingOnPurpose();
}

function die(message: string, code: number = ExitCode.CONFIG): never {
  ownExit();
  process.stderr.write(`tunicorn: error: ${message}\n`);
  process.exit(code);
}

/**
 * Writes what a command prints to stdout. A reader that stops reading early (`--print-config APP | head -3`)
 * closes the pipe: the output ends there, with status 0 and no EPIPE stack, as for other commands.
 */
function print(text: string): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    ownExit();
    process.exit(0);
  });
  process.stdout.write(text);
}

/**
 * Said on the way out when the config file or the app (--check-config, --preload) calls process.exit() while
 * it loads. The start is refused, so the status is not 0 even for process.exit(0): a service manager's
 * Restart=on-failure, or a CI step, would take that for success.
 */
function refuse(line: string): void {
  writeSync(2, `tunicorn: error: ${line}\n`);
  if (!process.exitCode) process.exitCode = 1;
}

/** Prints what a command answers, and ends the process (the config file may hold it up with a timer). */
function done(text: string): never {
  print(text);
  ownExit();
  process.exit(0);
}

/** The innermost frame of `stack` that is not Node's own is the app's or a config hook's, not tunicorn's. */
function thrownByUserCode(stack: string): boolean {
  const frame = stack
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith('at ') && !/\(node:|^at node:/.test(l));
  return frame !== undefined && isUserFrame(frame);
}

/**
 * Sets these variables in this process's environment, and removes the `hidden` ones; the function returned puts
 * the old values back.
 */
function applyEnv(vars: Readonly<Record<string, string>>, hidden: readonly string[] = []): () => void {
  const old = [...Object.keys(vars), ...hidden].map((k) => [k, process.env[k]] as const);
  for (const k of hidden) delete process.env[k];
  Object.assign(process.env, vars);
  return () => {
    for (const [k, v] of old) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

/** -h/--help and -v/--version, from the command line alone; null when it does not parse. */
function earlyArgs(argv: readonly string[]): { help: boolean; version: boolean } | null {
  try {
    return parseArgs(argv);
  } catch {
    return null;
  }
}

function configTable(r: Resolved): string {
  const rows = allSettings()
    .filter((s) => !s.isHook || r.config[s.key as SettingKey] !== null)
    .map((s) => {
      const v = r.config[s.key as SettingKey];
      // A size in bytes, with what it reads as (`1610612736 (1.5 GiB)`).
      const text = typeof v === 'function' ? '[function]' : s.kind === 'size' && typeof v === 'number' && v > 0 ? `${v} (${formatSize(v)})` : show(v);
      return [s.key, text, r.sources[s.key as SettingKey]] as const;
    });
  const w = Math.max(...rows.map((x) => x[0].length));
  const vw = Math.min(60, Math.max(...rows.map((x) => x[1].length)));
  return rows.map(([k, v, src]) => `${k.padEnd(w)} = ${v.padEnd(vw)}  (${src})\n`).join('');
}

/**
 * Whether `fd` is a terminal. node:tty is loaded only for a character device, which a terminal is: a master
 * whose output goes to a pipe, a file or a socket (systemd, a container) never loads it, 5 ms of its start
 * (docs/design.md, "Start-up").
 */
function isTerminal(fd: number): boolean {
  try {
    if (!fstatSync(fd).isCharacterDevice()) return false;
  } catch {
    return false;
  }
  return lazy.tty().isatty(fd);
}

async function main(): Promise<void> {
  // Bun as a package manager starts the bin with node (its first lines); `bun --bun` would run it on Bun.
  const platform = unsupportedPlatform();
  if (platform) die(platform);
  const runtime = otherRuntime();
  if (runtime) die(`tunicorn runs on Node.js, not on ${runtime}: start it with node (${runtime.startsWith('Bun') ? 'bun run tunicorn or bunx tunicorn, without --bun' : 'npx tunicorn'})`);
  // Node adds a SIGWINCH listener of its own when a terminal's stream is first used (to follow its size):
  // made now, it is known as Node's, and the master keeps it (see ArbiterOptions.ownSignalListeners).
  if (isTerminal(1)) void process.stdout;
  if (isTerminal(2)) void process.stderr;
  const ownSignalListeners = new Set(process.listeners('SIGWINCH'));
  // Any other listener of the master's signals there now was added by a module preloaded before this one
  // (`--import`, `--require`, in NODE_OPTIONS or on node's command line): an APM agent's, which flushes on TERM
  // and may process.exit() when done, as OpenTelemetry's documented setup does; that cut the master's graceful
  // stop short (the workers, their requests and their spans left behind). The master removes it (Arbiter.run).
  const preloadedSignalListeners = new Set(SIGNALS.flatMap((sig) => process.listeners(sig)).filter((l) => !ownSignalListeners.has(l)));
  // Before the config file and the app, which may spawn: the reaper must know every process Node spawns.
  const { note: orphans, adopter } = startOrphanReaper();
  const argv = process.argv.slice(2);
  // As the shell named it ($PWD), symlinks kept: the USR2 successor, the config file and the workers follow a
  // `current` symlink switched to the next release (work-dir.ts).
  const startCwd = startDir();
  // What USR2 runs again, named through the symlink too (work-dir.ts); before any chdir.
  const program = upgradeProgram(process.argv[1] ?? '', startCwd, process.cwd());
  // Help and the version print whatever the config file and the environment hold (a broken config file is
  // when help is wanted), without running the config file's code.
  const asked = earlyArgs(argv);
  if (asked?.help) return done(helpText());
  if (asked?.version) return done(`tunicorn ${VERSION} (Node.js ${process.version})\n`);
  // HUP: a config file that never finishes loading (a top-level await on a service that does not answer) fails
  // the reload after CONFIG_LOAD_LIMIT_S, where it would leave it pending, unsaid, for good.
  const reload = () =>
    new Promise<Resolved>((done, fail) => {
      const guard = { say: (line: string) => arbiter.log.error(line), fail: (line: string) => fail(new ConfigError(line)), limitS: CONFIG_LOAD_LIMIT_S };
      resolveConfig({ argv, env: process.env, cwd: startCwd, guard }).then(done, fail);
    });
  let r: Resolved;
  try {
    // At start, a config file that ends the process or never finishes loading says so: the master would
    // otherwise exit in silence, with status 0 for a top-level await that can never settle.
    r = await resolveConfig({
      argv,
      env: process.env,
      cwd: startCwd,
      guard: { say: refuse, fail: (line) => die(line), limitS: CONFIG_LOAD_LIMIT_S },
    });
  } catch (err) {
    if (err instanceof ConfigError) die(err.message);
    throw err;
  }
  if (r.help) return done(helpText());
  if (r.version) return done(`tunicorn ${VERSION} (Node.js ${process.version})\n`);
  // A server says these in its log (Arbiter.run); a check says them here, on stderr.
  if (r.config.printConfig || r.config.checkConfig) for (const w of r.warnings) process.stderr.write(`tunicorn: warning: ${w}\n`);
  // An exit, not a return: the config file may have left a timer or a socket open.
  if (r.config.printConfig) return done(configTable(r));
  if (!r.app) die('no APP given; usage: tunicorn [OPTIONS] APP (see tunicorn --help)');
  const workers = workDir(startCwd, r.config.chdir);
  if (r.config.chdir) {
    try {
      process.chdir(workers);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOTDIR' ? 'it is not a directory' : code === 'EACCES' ? 'permission denied' : 'the directory does not exist';
      die(`invalid value for chdir (--chdir): ${show(r.config.chdir)}; ${why}`);
    }
  }
  if (r.config.checkConfig || r.config.preload) {
    try {
      // The files the server would write, checked as the master checks them before it binds: none is created.
      if (r.config.checkConfig) {
        checkOutputFiles(r.config, true);
        checkMemoryLimit(r.config);
        for (const w of checkTls(r.config)) process.stderr.write(`tunicorn: warning: ${w}\n`);
        checkCanSwitch(resolveIdentity(r.config.user, r.config.group));
      }
      // Imported only here: the app loader pulls in undici and jiti, memory the master otherwise never needs.
      const { loadApp } = await import('../app/load.js');
      // With the workers' environment (-e, raw_env), as Gunicorn's master sets it before it loads the app; put
      // back afterwards, so a reload that drops a variable drops it for the workers too (workerEnv).
      const restoreEnv = applyEnv(r.config.rawEnv, pm2NumberVars(process.env, r.config.rawEnv));
      // An exception the app's code throws while it loads (from a timer): one line and its stack, not Node's crash.
      const crashed = (err: unknown) => {
        const stack = stackText(err) || thrownText(err);
        die(`app ${r.app} failed to load: it threw an uncaught exception while loading\n${appFrames(stack)}`);
      };
      process.on('uncaughtException', crashed);
      const { served } = await guardLoading(`app ${r.app}`, loadApp(r.app, process.cwd(), { onError: () => {} }), {
        say: refuse,
        fail: (line) => die(line),
        limitS: bootLimitS(r.config.timeout),
      }).finally(() => {
        restoreEnv();
        process.off('uncaughtException', crashed);
      });
      if (r.config.checkConfig) {
        process.stdout.write(`OK: ${r.app} is ${served.kind}${r.configPath ? `; config ${r.configPath}` : ''}\n`);
        try {
          await served.close?.();
        } catch (err) {
          die(`app ${r.app} loaded, but closing it failed: ${describeLoadError(err)}`);
        }
        process.exit(0);
      }
      // --preload: the master never serves its copy. What starting it began (Nest's init hooks, Fastify's
      // onReady, the resources of a factory's app) is closed now, as --check-config closes it: left open, a
      // cron or a queue consumer the framework started would run in the master for its whole life, beside
      // the workers' own, and its close hooks would never run.
      try {
        await (served.frameworkClose ?? served.close)?.();
      } catch (err) {
        die(`app ${r.app} (--preload) loaded in the master, but closing the master's copy failed: ${describeLoadError(err)}`);
      }
    } catch (err) {
      if (err instanceof AppLoadError || err instanceof ConfigError) die(err.message);
      throw err;
    }
  }
  const arbiter: Arbiter = new Arbiter({ resolved: r, reload, startCwd, workDir: workers, program, ownSignalListeners, preloadedSignalListeners, orphans, adopter });
  // Every exit of tunicorn's own goes through die() or the process.exit below; any other is the app's (loaded
  // here with --preload) or a hook's, and the log says so rather than the master vanishing in silence.
  // An uncaught exception the app (loaded here with --preload) or a config hook threw, from a timer or an
  // unhandled rejection, is logged and the master serves on: the workers serve the same code, and one bad
  // timer must not take the server down (Gunicorn's master outlives a thread of the app that dies). One that
  // tunicorn threw ends the master, said in its log, with its files removed; the workers follow.
  process.on('uncaughtException', (err) => {
    const stack = stackText(err) || thrownText(err);
    if (thrownByUserCode(stack)) {
      arbiter.log.stacked('error', 'Uncaught exception in the master, from the app (--preload) or a config hook; the master serves on', appFrames(stack), ':\n');
      return;
    }
    ownExit();
    arbiter.log.stacked('critical', 'The master is exiting after an uncaught exception', stack, ':\n');
    arbiter.removeFilesNow();
    process.exit(1);
  });
  // The loop ran dry while the master awaited something that can never settle (a hook's promise with nothing
  // left to resolve it): Node would exit 0 in silence.
  process.once('beforeExit', () => {
    if (exiting) return;
    ownExit();
    const hooks = [...arbiter.hooksRunning];
    const what = hooks.length ? `the ${hooks.join(' and ')} hook returned a promise that never settles` : 'it was left waiting on a promise that never settles';
    arbiter.log.critical(`The master cannot go on: ${what}, and nothing is left to run; exiting with status 1`);
    arbiter.removeFilesNow();
    process.exit(1);
  });
  process.once('exit', (status) => {
    if (exiting || arbiter.stoppedDuringStart) return;
    arbiter.log.critical(`The master is exiting with status ${status}: process.exit() was called by the app (--preload) or a server hook, not by tunicorn`);
    arbiter.removeFilesNow();
  });
  let code: number;
  try {
    code = await arbiter.run();
  } catch (err) {
    if (err instanceof BindError || err instanceof ConfigError) die(err.message);
    throw err;
  }
  ownExit();
  process.exit(code);
}

main().catch((err: unknown) => {
  ownExit();
  process.stderr.write(`tunicorn: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(70);
});
