/** The servers the benchmark compares: tunicorn in each app shape and worker class, and the baselines. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { MASTER_NODE_FLAGS } from '../../src/cli/node-flags.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alive, childrenOf, cpuMs, firstAnswer, rssMb, sleep } from './proc.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
const SERVERS = path.join(ROOT, 'bench/servers');
const APPS = path.join(SERVERS, 'apps');
const CLI = path.join(ROOT, 'dist/cli/main.js');
const PM2 = path.join(ROOT, 'node_modules/pm2/bin/pm2');
/** Workers for every multi-process server: one per core of this 2-core machine. */
export const WORKERS = 2;
/** The seed's stack at its best measured configuration (3 Uvicorn workers, uvloop, httptools). */
export const SEED_WORKERS = 3;

export interface Env {
  readonly tmp: string;
  readonly tls: { key: string; cert: string } | null;
  readonly tunicornTls: boolean;
}

export interface ServerSpec {
  readonly id: string;
  readonly label: string;
  readonly tunicorn: boolean;
  readonly tls?: boolean;
  /** The command line, for the report. */
  command(port: number, env: Env): string[];
  /** Why this server cannot run here, or null. */
  unavailable?(env: Env): string | null;
  /** PM2 runs as a daemon of its own: started and stopped through its CLI. */
  readonly pm2?: boolean;
  readonly extraEnv?: (env: Env) => NodeJS.ProcessEnv;
}

const tunicorn = (id: string, label: string, app: string, extra: string[] = [], more: Partial<ServerSpec> = {}): ServerSpec => ({
  id,
  label,
  tunicorn: true,
  command: (port, env) => [
    process.execPath, ...MASTER_NODE_FLAGS, CLI, '-b', `127.0.0.1:${port}`, '-w', String(WORKERS), '--backlog', '2048', '--log-level', 'warning',
    ...extra.map((a) => a.replace('$TMP', env.tmp)),
    ...(more.tls && env.tls ? ['--certfile', env.tls.cert, '--keyfile', env.tls.key] : []),
    path.join(APPS, app),
  ],
  ...more,
});

const node = (id: string, label: string, script: string, args: string[] = [], more: Partial<ServerSpec> = {}): ServerSpec => ({
  id,
  label,
  tunicorn: false,
  command: (port) => [process.execPath, path.join(SERVERS, script), String(port), ...args],
  ...more,
});

/**
 * The seed's stack with one worker class: UvicornWorker at its best (uvloop and httptools, `seed`), or with
 * uvicorn's pure-Python h11 parser, as it runs where httptools is not installed (`seed-h11`, `seed-asyncio`). The
 * issue's own table measured the seed's stack at about the speed of the latter (docs/design.md, "The seed's
 * stack, three ways").
 */
const seedWith = (id: string, how: string, workerClass: string): ServerSpec => ({
  id,
  label: `the seed: Gunicorn + UvicornWorker + FastAPI, ${SEED_WORKERS} workers, ${how}`,
  tunicorn: false,
  command: (port) => [
    '/usr/bin/gunicorn', '-k', workerClass, '-w', String(SEED_WORKERS), '-b', `127.0.0.1:${port}`,
    '--backlog', '2048', '--log-level', 'warning', '--chdir', SERVERS, 'seed_app:app',
  ],
  unavailable: () => seedStackMissing(),
});

const tlsEnv = (env: Env): NodeJS.ProcessEnv => (env.tls ? { BENCH_TLS_KEY: env.tls.key, BENCH_TLS_CERT: env.tls.cert } : {});

export const ALL_SERVERS: ServerSpec[] = [
  tunicorn('tunicorn', 'tunicorn, listener (access log off)', 'listener.mjs'),
  tunicorn('tunicorn-log', 'tunicorn, listener, access log on', 'listener.mjs', ['--access-logfile', '$TMP/access.log']),
  tunicorn('tunicorn-fetch', 'tunicorn, Fetch handler', 'fetch.mjs'),
  tunicorn('tunicorn-express', 'tunicorn, Express 5', 'express.mjs'),
  tunicorn('tunicorn-fastify', 'tunicorn, Fastify 5', 'fastify.mjs'),
  tunicorn('tunicorn-sync', 'tunicorn, listener, -k sync', 'listener.mjs', ['-k', 'sync']),
  tunicorn('tunicorn-gthread', 'tunicorn, listener, -k gthread --threads 2', 'listener.mjs', ['-k', 'gthread', '--threads', '2']),
  tunicorn('tunicorn-nowatchdog', 'tunicorn, listener, -t 0 (no heartbeat)', 'listener.mjs', ['-t', '0']),
  tunicorn('tunicorn-ts', 'tunicorn, the TypeScript hello app (examples/hello/app.ts, loaded through jiti)', '../../../examples/hello/app.ts'),
  tunicorn('tunicorn-tls', 'tunicorn, listener, TLS', 'listener.mjs', [], {
    tls: true,
    unavailable: (env) => (!env.tls ? 'openssl could not make a certificate' : env.tunicornTls ? null : 'tunicorn has no --certfile/--keyfile settings yet'),
  }),
  node('limit', 'the limit: 2 node:http processes on one inherited socket', 'limit.mjs', [String(WORKERS)]),
  node('cluster', 'node:cluster, 2 workers, round-robin', 'cluster.mjs', [String(WORKERS)]),
  {
    id: 'pm2',
    label: 'PM2 cluster mode, 2 instances',
    tunicorn: false,
    pm2: true,
    command: () => [process.execPath, PM2, 'start', '<TMP>/pm2/ecosystem.config.cjs'],
    unavailable: () => (fs.existsSync(PM2) ? null : 'pm2 is not installed (npm install)'),
  },
  node('plain', 'one plain node:http process', 'plain.mjs'),
  node('hono', '@hono/node-server, one process (same Fetch handler)', 'hono.mjs'),
  seedWith('seed', 'uvloop, httptools parser', 'uvicorn.workers.UvicornWorker'),
  seedWith('seed-h11', 'uvloop, h11 parser', 'seed_workers.UvloopH11Worker'),
  seedWith('seed-asyncio', 'asyncio, h11 parser', 'seed_workers.AsyncioH11Worker'),
  node('limit-tls', 'the limit, TLS', 'limit.mjs', [String(WORKERS)], { tls: true, extraEnv: tlsEnv, unavailable: (env) => (env.tls ? null : 'no certificate') }),
  node('plain-tls', 'one plain node:https process', 'plain.mjs', [], { tls: true, extraEnv: tlsEnv, unavailable: (env) => (env.tls ? null : 'no certificate') }),
];

export function seedStackMissing(): string | null {
  if (!fs.existsSync('/usr/bin/gunicorn')) return 'gunicorn is not installed (apt-get install gunicorn python3-uvicorn python3-fastapi)';
  const r = spawnSync('/usr/bin/python3', ['-c', 'import fastapi, uvicorn, uvloop, httptools'], { encoding: 'utf8' });
  return r.status === 0 ? null : `the seed's Python packages are missing: ${r.stderr.trim().split('\n').pop()}`;
}

/** A server started for the benchmark. */
export class Running {
  readonly startedAt = performance.now();
  startupMs = NaN;
  #child: ChildProcess | null = null;
  #exit: string | null = null;
  readonly pm2Home: string;
  readonly logFile: string;

  constructor(readonly spec: ServerSpec, readonly port: number, readonly env: Env) {
    this.pm2Home = path.join(env.tmp, `pm2-${spec.id}`);
    this.logFile = path.join(env.tmp, `${spec.id}.log`);
  }

  get commandLine(): string {
    return this.spec.command(this.port, this.env).map((a) => a.replace(ROOT + '/', '').replace(this.env.tmp, '$TMP')).join(' ');
  }

  async start(): Promise<void> {
    const out = fs.openSync(this.logFile, 'a');
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.spec.extraEnv?.(this.env), PORT: String(this.port) };
    // Unset, not empty: Gunicorn parses WEB_CONCURRENCY as a number even when -w is given.
    for (const k of ['WEB_CONCURRENCY', 'TUNICORN_CMD_ARGS', 'NODE_OPTIONS']) delete env[k];
    let argv = this.spec.command(this.port, this.env);
    if (this.spec.pm2) {
      fs.mkdirSync(this.pm2Home, { recursive: true });
      const eco = path.join(this.pm2Home, 'ecosystem.config.cjs');
      fs.writeFileSync(eco, `module.exports = { apps: [${JSON.stringify({
        name: 'bench', script: path.join(SERVERS, 'pm2-app.cjs'), exec_mode: 'cluster', instances: WORKERS,
        env: { PORT: String(this.port) }, autorestart: false,
      })}] };\n`);
      argv = [process.execPath, PM2, 'start', eco];
      Object.assign(env, { PM2_HOME: this.pm2Home });
    }
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ['ignore', out, out], detached: true });
    fs.closeSync(out);
    child.on('exit', (code, signal) => {
      if (!this.spec.pm2) this.#exit = `${this.spec.id} exited (${signal ?? code}); see ${this.logFile}`;
    });
    this.#child = child;
    this.startupMs = await firstAnswer(this.port, this.startedAt, !!this.spec.tls, 30_000, () => this.#exit);
  }

  /** The process that supervises the workers (PM2: its daemon), or the only process. */
  get masterPid(): number {
    if (this.spec.pm2) return Number(fs.readFileSync(path.join(this.pm2Home, 'pm2.pid'), 'utf8'));
    return this.#child!.pid!;
  }

  workerPids(): number[] {
    return childrenOf(this.masterPid);
  }

  /** The master (PM2: its daemon) and its workers. */
  processes(): number[] {
    return [this.masterPid, ...this.workerPids()];
  }

  memory(): { master: number | null; workers: (number | null)[] } {
    return { master: rssMb(this.masterPid), workers: this.workerPids().map(rssMb) };
  }

  /** CPU time used so far by the master and its workers, in ms. */
  cpuMs(): number {
    const master = this.masterPid;
    return [master, ...childrenOf(master)].reduce((sum, pid) => sum + cpuMs(pid), 0);
  }

  /** Waits until the server has its full number of worker processes (or `ms` pass). */
  async settle(expected: number, ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (performance.now() < until && this.workerPids().length < expected) await sleep(50);
  }

  async stop(): Promise<void> {
    if (this.spec.pm2) {
      spawnSync(process.execPath, [PM2, 'kill'], { env: { ...process.env, PM2_HOME: this.pm2Home }, stdio: 'ignore', timeout: 20_000 });
    }
    const pid = this.#child?.pid;
    if (pid && alive(pid)) {
      try {
        process.kill(-pid, 'SIGTERM'); // its own process group: the master and its workers
      } catch {
        // already gone
      }
      const until = performance.now() + 5000;
      while (alive(pid) && performance.now() < until) await sleep(50);
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}
