/**
 * The control socket's commands and protocol, shared by the master (src/control/server.ts) and the client
 * (src/cli/ctl.ts): parsing a command line, and showing an answer as text. Pure: no I/O here.
 *
 * Protocol: JSON lines over a Unix stream socket. The client writes one object per line,
 * `{"id": 1, "command": "worker add 2"}`; the master writes one object per line back, with the same id:
 * `{"id": 1, "ok": true, "data": {...}}` or `{"id": 1, "ok": false, "error": "one line"}`.
 */

/** The longest request line the master reads (bytes, without the newline); a longer one is refused. */
export const MAX_LINE = 64 * 1024;
/** The most workers one `worker add` or `worker remove` may change. */
export const MAX_STEP = 100;

export type Command =
  | { readonly name: 'show'; readonly what: 'all' | 'workers' | 'config' | 'stats' | 'listeners' }
  | { readonly name: 'worker add' | 'worker remove'; readonly count: number }
  | { readonly name: 'worker kill'; readonly pid: number }
  | { readonly name: 'reload' | 'reopen' | 'help' }
  | { readonly name: 'shutdown'; readonly mode: 'graceful' | 'quick' };

export interface Request {
  readonly id: unknown;
  readonly command: string;
}

export type Response = { id: unknown; ok: true; data: unknown } | { id: unknown; ok: false; error: string };

/** Each command, as `help` lists it. */
export const COMMANDS: readonly (readonly [string, string])[] = [
  ['show all', 'the master and its workers'],
  ['show workers', 'each worker: pid, age, booted, seconds since its last heartbeat, state, memory (RSS), CPU time'],
  ['show config', 'the running configuration'],
  ['show stats', 'uptime, pid, workers (current, target, spawned, killed), reloads'],
  ['show listeners', 'the listening sockets: address, fd, type'],
  ['worker add [N]', `N more workers (default 1, at most ${MAX_STEP}), as N times TTIN`],
  ['worker remove [N]', `N fewer workers (default 1, at most ${MAX_STEP}), never below 1, as TTOU`],
  ['worker kill PID', 'stop that worker gracefully; a new one replaces it'],
  ['reload', 'as HUP: re-read the config, replace every worker'],
  ['reopen', 'as USR1: reopen the log files'],
  ['shutdown [graceful|quick]', 'as TERM (graceful, the default) or INT (quick)'],
  ['help', 'this list'],
];

export class CommandError extends Error {
  override name = 'CommandError';
}

const SHOWN = ['all', 'workers', 'config', 'stats', 'listeners'] as const;

function count(word: string | undefined, what: string): number {
  if (word === undefined) return 1;
  if (!/^\d+$/.test(word) || Number(word) < 1 || Number(word) > MAX_STEP) throw new CommandError(`${what}: N must be a whole number from 1 to ${MAX_STEP} (got "${word}")`);
  return Number(word);
}

/** One command from its text (`worker add 2`); a CommandError names what is wrong, in one line. */
export function parseCommand(text: string): Command {
  const words = text.trim().split(/\s+/).filter(Boolean).map((w, i) => (i < 2 ? w.toLowerCase() : w));
  const [verb, sub, arg] = words;
  const tooMany = (n: number, usage: string) => {
    if (words.length > n) throw new CommandError(`too many arguments: usage: ${usage}`);
  };
  switch (verb) {
    case undefined:
      throw new CommandError('empty command; try "help"');
    case 'show':
      if (!sub) throw new CommandError(`show what? one of: ${SHOWN.join(', ')}`);
      if (!(SHOWN as readonly string[]).includes(sub)) throw new CommandError(`unknown: show ${sub}; one of: ${SHOWN.join(', ')}`);
      tooMany(2, `show ${sub}`);
      return { name: 'show', what: sub as (typeof SHOWN)[number] };
    case 'worker':
      if (sub === 'add' || sub === 'remove') {
        tooMany(3, `worker ${sub} [N]`);
        return { name: `worker ${sub}`, count: count(arg, `worker ${sub}`) };
      }
      if (sub === 'kill') {
        if (arg === undefined || !/^\d+$/.test(arg) || Number(arg) < 1 || Number(arg) > 4194304) throw new CommandError('usage: worker kill PID (a worker\'s pid, see "show workers")');
        tooMany(3, 'worker kill PID');
        return { name: 'worker kill', pid: Number(arg) };
      }
      throw new CommandError(`unknown: worker ${sub ?? ''}`.trimEnd() + '; one of: worker add [N], worker remove [N], worker kill PID');
    case 'reload':
    case 'reopen':
    case 'help':
      tooMany(1, verb);
      return { name: verb };
    case 'shutdown': {
      const mode = sub ?? 'graceful';
      if (mode !== 'graceful' && mode !== 'quick') throw new CommandError(`usage: shutdown [graceful|quick] (got "${sub}")`);
      tooMany(2, 'shutdown [graceful|quick]');
      return { name: 'shutdown', mode };
    }
    default:
      throw new CommandError(`unknown command "${verb}"; try "help"`);
  }
}

/**
 * A request line as the master reads it: a JSON object with a string `command`. Throws a CommandError (for
 * the error answer); `id` is what the line carried, when it could be read, so the answer can name it.
 */
export function parseRequest(line: string): Request {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new CommandError('not JSON: expected one object per line, {"id": 1, "command": "show workers"}');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CommandError('expected a JSON object, {"id": 1, "command": "show workers"}');
  const o = v as Record<string, unknown>;
  if (typeof o.command !== 'string') throw Object.assign(new CommandError('the request has no "command" string'), { id: o.id ?? null });
  return { id: o.id ?? null, command: o.command };
}

// ---- text output ---------------------------------------------------------------------------------------------

/** Rows under a header, each column as wide as its widest cell, two spaces apart; no trailing spaces. */
export function table(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [header, ...rows].map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** `key  value` lines, the keys aligned. */
function pairs(o: Record<string, unknown>, quoted = false): string {
  const w = Math.max(0, ...Object.keys(o).map((k) => k.length));
  const text = (v: unknown) => (quoted && typeof v === 'string' ? v : v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return Object.entries(o)
    .map(([k, v]) => `${k.padEnd(w)}  ${text(v)}`)
    .join('\n') + '\n';
}

interface WorkerRow {
  pid: number;
  age: number;
  booted: boolean;
  last_heartbeat: number | null;
  state?: string;
  /** Bytes; null where /proc cannot tell (not Linux), absent from an older master's answer. */
  rss?: number | null;
  /** Seconds of CPU time (user + system). */
  cpu?: number | null;
}

/** Bytes in MiB with one decimal, as one unit down a column compares at a glance (`pm2 ls` shows mb too). */
const mib = (bytes: number | null | undefined) => (typeof bytes === 'number' ? `${(bytes / 1048576).toFixed(1)} MiB` : '-');
const seconds = (s: number | null | undefined) => (typeof s === 'number' ? `${s.toFixed(2)} s` : '-');

const workerRows = (ws: readonly WorkerRow[]) =>
  ws.map((w) => [w.pid, w.age, w.booted ? 'yes' : 'no', w.last_heartbeat === null ? '-' : w.last_heartbeat.toFixed(2), w.state ?? '-', mib(w.rss), seconds(w.cpu)]);
const WORKER_HEADER = ['PID', 'AGE', 'BOOTED', 'LAST_BEAT', 'STATE', 'RSS', 'CPU'];

/** An answer's data as text, for `command` (already parsed); anything unforeseen as indented JSON. */
export function formatData(command: Command, data: unknown): string {
  const d = (data ?? {}) as Record<string, unknown>;
  try {
    if (command.name === 'show') {
      switch (command.what) {
        case 'workers':
          return table(WORKER_HEADER, workerRows(d.workers as WorkerRow[]));
        case 'all': {
          const m = d.master as { pid: number; workers_target: number; rss?: number | null; cpu?: number };
          const usage = m.rss === undefined ? '' : `, RSS ${mib(m.rss)}, CPU ${seconds(m.cpu)}`;
          return `master  pid ${m.pid}, ${m.workers_target} worker(s) wanted${usage}\n` + table(WORKER_HEADER, workerRows(d.workers as WorkerRow[]));
        }
        case 'listeners':
          return table(['ADDRESS', 'FD', 'TYPE'], (d.listeners as { address: string; fd: number; type: string }[]).map((l) => [l.address, l.fd, l.type]));
        case 'stats':
          return pairs(d);
        case 'config':
          // Each value as JSON, as --print-config shows it: the log's "-" (stderr, stdout) is a value, and
          // null (off) another; both read "-" otherwise.
          return pairs(Object.fromEntries(Object.entries(d).map(([k, v]) => [k, JSON.stringify(v) ?? 'null'])), true);
      }
    }
    if (command.name === 'help') return table(['COMMAND', 'WHAT IT DOES'], d.commands as [string, string][]);
  } catch {
    /* a shape this client does not know: JSON below */
  }
  return pairs(d);
}
