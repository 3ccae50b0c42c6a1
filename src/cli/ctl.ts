#!/usr/bin/env node
/**
 * tunicornc: the client of the master's control socket (--control-socket PATH), as Gunicorn 25's gunicornc.
 *
 *   tunicornc -s PATH -c "show workers"     one command; -j prints the answer's data as JSON
 *   tunicornc -s PATH show workers          the same
 *   tunicornc -s PATH                       interactive (a terminal): one command a line
 *
 * One connection per command; the protocol is in src/control/commands.ts. Errors are one line on stderr and a
 * non-zero status: 1 for an error answer or a socket problem, 2 for a wrong command line.
 * The first line is a plain `#!/usr/bin/env node`: the client needs none of the master's Node options.
 */
import { statSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { COMMANDS, CommandError, formatData, parseCommand, type Command, type Response } from '../control/commands.js';
import { VERSION } from '../version.js';

const USAGE = `usage: tunicornc -s PATH [-j] [-c COMMAND | COMMAND...]

Talks to a tunicorn master started with --control-socket PATH.

options:
  -s, --socket PATH    the control socket (default: $TUNICORN_CONTROL_SOCKET)
  -c, --command TEXT   run one command and exit (or give it after the options)
  -j, --json           print the answer's data as JSON
  -h, --help           this text
  -v, --version        the version

Without a command, on a terminal: interactive, one command a line ("quit" or Ctrl-D to leave;
Tab completes).

commands:
${COMMANDS.map(([c, what]) => `  ${c.padEnd(27)}${what}`).join('\n')}
`;

/** How long a command may take to be answered. */
const ANSWER_MS = 10_000;

class ClientError extends Error {
  constructor(
    message: string,
    readonly status = 1,
  ) {
    super(message);
  }
}

interface Options {
  socket: string | undefined;
  command: string | undefined;
  json: boolean;
  help: boolean;
  version: boolean;
}

function parseClientArgs(argv: readonly string[]): Options {
  const o: Options = { socket: undefined, command: undefined, json: false, help: false, version: false };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (name: string): string => {
      const eq = a.indexOf('=');
      if (a.startsWith('--') && eq > 0) return a.slice(eq + 1);
      if (!a.startsWith('--') && a.length > 2) return a.slice(2);
      const v = argv[++i];
      if (v === undefined) throw new ClientError(`option ${name} needs a value; see tunicornc --help`, 2);
      return v;
    };
    if (rest.length > 0) rest.push(a);
    else if (a === '-j' || a === '--json') o.json = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else if (a === '-v' || a === '--version') o.version = true;
    else if (a.startsWith('-s') || a === '--socket' || a.startsWith('--socket=')) o.socket = value('-s');
    else if (a.startsWith('-c') || a === '--command' || a.startsWith('--command=')) o.command = value('-c');
    else if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    else if (a.startsWith('-')) throw new ClientError(`unknown option ${a}; see tunicornc --help`, 2);
    else rest.push(a);
  }
  if (rest.length > 0) {
    if (o.command !== undefined) throw new ClientError('give the command either with -c or after the options, not both', 2);
    o.command = rest.join(' ');
  }
  return o;
}

/** What is at a path, in words, for an error; undefined when it cannot be seen. */
function kindOf(path: string): string | undefined {
  try {
    const st = statSync(path);
    return st.isSocket() ? 'socket' : st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : 'another kind of file';
  } catch {
    return undefined;
  }
}

/** What a connect error means, in one line. */
function connectError(err: NodeJS.ErrnoException, socket: string): ClientError {
  switch (err.code) {
    case 'ENOENT':
      return new ClientError(`no control socket at ${socket}: start the server with --control-socket ${socket} (it is off by default), or give -s the path it uses`);
    case 'ECONNREFUSED': {
      // Linux refuses a connect to a path that is no socket at all (a file, a directory) the same way.
      const kind = kindOf(socket);
      if (kind !== 'socket' && kind !== undefined)
        return new ClientError(`${socket} is not a socket but ${kind}: give -s the path the server was started with (--control-socket PATH)`);
      return new ClientError(`nothing answers on ${socket}: the server that made it is not running (a stale socket file)`);
    }
    case 'EACCES':
    case 'EPERM':
      return new ClientError(`permission denied on ${socket}: run as the server's user, or widen --control-socket-mode (see docs/operations.md)`);
    case 'ENOTSOCK':
      return new ClientError(`${socket} is not a socket`);
    default:
      return new ClientError(`cannot connect to ${socket}: ${err.message}`);
  }
}

/** Sends one command; resolves with the answer. */
function send(socket: string, text: string, id: number, timeoutMs = ANSWER_MS): Promise<Response> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket);
    let buf = '';
    let connected = false;
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      s.destroy();
      f();
    };
    s.setEncoding('utf8');
    s.setTimeout(timeoutMs, () => finish(() => reject(new ClientError(`no answer from ${socket} within ${timeoutMs / 1000} s`))));
    s.once('connect', () => {
      connected = true;
      s.write(JSON.stringify({ id, command: text }) + '\n');
    });
    s.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      finish(() => {
        try {
          resolve(JSON.parse(buf.slice(0, nl)) as Response);
        } catch {
          reject(new ClientError(`the server's answer is not JSON: ${buf.slice(0, Math.min(nl, 200))}`));
        }
      });
    });
    s.once('error', (err: NodeJS.ErrnoException) =>
      finish(() => reject(connected ? new ClientError(`the server went away during the command (${err.code ?? err.message})`) : connectError(err, socket))),
    );
    s.once('close', () => finish(() => reject(new ClientError('the server closed the connection before answering (did it stop?)'))));
  });
}

/** Runs one command and prints its answer; throws a ClientError. */
async function run(socket: string, text: string, json: boolean, id: number): Promise<void> {
  let command: Command;
  try {
    command = parseCommand(text);
  } catch (err) {
    if (err instanceof CommandError) throw new ClientError(err.message, 2);
    throw err;
  }
  const r = await send(socket, text, id);
  if (!r.ok) throw new ClientError(r.error);
  process.stdout.write(json ? JSON.stringify(r.data, null, 2) + '\n' : formatData(command, r.data));
}

async function interactive(socket: string, json: boolean): Promise<number> {
  const words = [...new Set(COMMANDS.map(([c]) => c.replace(/ \[.*|\s+[A-Z]+$/, '')))];
  // A wrong path or a server that is gone: said at once, not at the first command. Before the terminal is
  // read: an open readline would keep the process alive after the error.
  const hello = await send(socket, 'show stats', 0);
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    prompt: 'tunicorn> ',
    completer: (line: string) => [words.filter((w) => w.startsWith(line.trimStart())), line],
  });
  const pid = hello.ok ? (hello.data as { pid?: number }).pid : undefined;
  process.stdout.write(`tunicornc ${VERSION}: master pid ${pid ?? '?'} on ${socket}; "help" lists the commands, "quit" leaves\n`);
  let id = 0;
  rl.prompt();
  for await (const line of rl) {
    const text = line.trim();
    if (text === 'quit' || text === 'exit') break;
    if (text) {
      try {
        await run(socket, text, json, ++id);
      } catch (err) {
        if (!(err instanceof ClientError)) throw err;
        process.stderr.write(`error: ${err.message}\n`);
      }
    }
    rl.prompt();
  }
  rl.close();
  // Each command's error was shown as it came: leaving is not one.
  return 0;
}

async function main(argv: readonly string[]): Promise<number> {
  const o = parseClientArgs(argv);
  if (o.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (o.version) {
    process.stdout.write(`tunicornc ${VERSION}\n`);
    return 0;
  }
  const socket = o.socket ?? process.env.TUNICORN_CONTROL_SOCKET;
  if (!socket) throw new ClientError('no socket: give -s PATH, the path the server was started with (--control-socket PATH)', 2);
  if (o.command !== undefined) {
    await run(socket, o.command, o.json, 1);
    return 0;
  }
  if (!process.stdin.isTTY) throw new ClientError('no command: give -c COMMAND (interactive mode needs a terminal)', 2);
  return interactive(socket, o.json);
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    if (err instanceof ClientError) {
      process.stderr.write(`tunicornc: error: ${err.message}\n`);
      process.exitCode = err.status;
    } else {
      process.stderr.write(`tunicornc: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 70;
    }
  },
);
