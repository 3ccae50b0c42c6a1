/**
 * The master's control socket (--control-socket PATH): a Unix stream socket that takes JSON-lines requests from
 * `tunicornc` (src/cli/ctl.ts) and answers each with one line (protocol: src/control/commands.ts). What each
 * command does is the arbiter's (Arbiter.control); this file owns the socket file and the framing.
 *
 * The socket file: made with the mode asked for, whatever the umask; a stale file (nobody answers on it) is
 * replaced; a live one (another master) is left alone and start goes on without a control socket. It is removed
 * at exit only while it is still ours (same device and inode): a new master started by USR2 takes the path over.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { UNIX_PATH_MAX } from '../listeners/address.js';
import { unixSocketAnswers } from '../listeners/bind.js';
import { explainUnixBindError } from '../listeners/handle.js';
import { CommandError, MAX_LINE, parseCommand, parseRequest, type Command, type Response } from './commands.js';

/** Idle clients are dropped after this long: a forgotten `nc -U` holds no descriptor for ever. */
const IDLE_MS = 60_000;
/** How long a client refused for an oversized line keeps its connection (to read the answer) before it is cut. */
const REFUSED_MS = 2_000;
/** At most this many clients at once; more are closed at once. */
const MAX_CLIENTS = 32;
/** Answers a client has not read, in bytes, past which it is dropped. */
const MAX_UNREAD = 1024 * 1024;

export type Handler = (command: Command) => unknown;

export class ControlServer {
  #server: net.Server | null = null;
  #ino: { dev: number; ino: number } | null = null;
  readonly #clients = new Set<net.Socket>();

  constructor(
    readonly path: string,
    private readonly mode: number,
    private readonly handle: Handler,
    private readonly warn: (line: string) => void,
  ) {}

  /**
   * Binds the socket. `takeOver`: a live file is an old master's (USR2) and is replaced. Resolves with the line
   * to log, or null when the master goes on without a control socket (a warning said why).
   */
  async listen(takeOver: boolean): Promise<string | null> {
    // A relative path may pass the setting's check yet resolve longer: libuv would bind a truncated name.
    if (Buffer.byteLength(this.path) > UNIX_PATH_MAX) {
      this.warn(`control_socket (--control-socket): ${this.path} is longer than ${UNIX_PATH_MAX} bytes, the most a Unix socket path may be; going on without a control socket`);
      return null;
    }
    let st: ReturnType<typeof lstatSync> | null = null;
    try {
      st = lstatSync(this.path);
    } catch {
      /* nothing there */
    }
    if (st) {
      if (!st.isSocket()) {
        this.warn(`control_socket (--control-socket): ${this.path} exists and is not a socket; leaving it alone and going on without a control socket`);
        return null;
      }
      if (!takeOver && (await unixSocketAnswers(this.path))) {
        this.warn(`control_socket (--control-socket): another process answers on ${this.path} (another tunicorn?); going on without a control socket`);
        return null;
      }
      try {
        unlinkSync(this.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.warn(`control_socket (--control-socket): cannot replace the stale socket ${this.path}: ${(err as Error).message}; going on without a control socket`);
          return null;
        }
      }
    }
    const server = net.createServer((s) => this.accept(s));
    server.maxConnections = MAX_CLIENTS;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // The file is made by bind(2) with 0777 & ~umask, inside listen() before it returns: under this umask it
        // gets the mode asked for. No chmod after: by then the path may have been swapped for a link to another file.
        const old = process.umask(0o777 & ~this.mode);
        try {
          server.listen(this.path, () => {
            server.off('error', reject);
            resolve();
          });
        } finally {
          process.umask(old);
        }
      });
      const s = lstatSync(this.path);
      this.#ino = { dev: s.dev, ino: s.ino };
    } catch (err) {
      server.close();
      // libuv reports a missing directory as EACCES ("permission denied", even as root): say the cause, as a
      // --bind unix: socket does.
      const code = (err as NodeJS.ErrnoException).code;
      const why = code ? explainUnixBindError(this.path, code) : (err as Error).message;
      this.warn(`control_socket (--control-socket): cannot listen on ${this.path}: ${why}; going on without a control socket`);
      return null;
    }
    server.on('error', (err) => this.warn(`control socket: ${err.message}`));
    this.#server = server;
    return `Control socket at: ${this.path} (mode ${this.mode.toString(8).padStart(4, '0')})`;
  }

  /** The socket file at the path is still the one this master made. */
  owned(): boolean {
    if (!this.#ino) return false;
    try {
      const s = lstatSync(this.path);
      return s.dev === this.#ino.dev && s.ino === this.#ino.ino;
    } catch {
      return false;
    }
  }

  /**
   * Stops taking clients and removes the socket file if it is still ours. libuv unlinks a Unix socket's path
   * when the handle that bound it closes: while the file is another master's (USR2), the handle is left open to
   * close with this process, which unlinks nothing.
   */
  close(): void {
    for (const c of this.#clients) c.destroy();
    if (!this.#server) return;
    if (this.owned()) {
      this.#server.close();
      try {
        unlinkSync(this.path);
      } catch {
        /* libuv removed it already */
      }
    } else {
      this.#server.unref();
    }
    this.#server = null;
    this.#ino = null;
  }

  private accept(s: net.Socket): void {
    this.#clients.add(s);
    s.setTimeout(IDLE_MS, () => s.destroy());
    s.on('close', () => this.#clients.delete(s));
    s.on('error', () => s.destroy()); // a client gone mid-answer (EPIPE, ECONNRESET): nothing to do
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (Buffer.byteLength(line) > MAX_LINE) return this.refuseLong(s);
        if (line.trim()) this.answer(s, line);
      }
      if (Buffer.byteLength(buf) > MAX_LINE) this.refuseLong(s);
    });
  }

  private refuseLong(s: net.Socket): void {
    // No way to find where the next request begins: one error answer, then the connection closes.
    this.write(s, { id: null, ok: false, error: `request line longer than ${MAX_LINE} bytes` });
    s.end();
    s.removeAllListeners('data');
    s.pause();
    // Paused, the socket sees no more of the client (not even its close): without this it held one of the
    // client slots, and a descriptor, until the 60 s idle timeout.
    s.setTimeout(REFUSED_MS);
  }

  private answer(s: net.Socket, line: string): void {
    let id: unknown = null;
    let r: Response;
    try {
      const req = parseRequest(line);
      id = req.id;
      r = { id, ok: true, data: this.handle(parseCommand(req.command)) };
    } catch (err) {
      if (err instanceof CommandError) r = { id: (err as { id?: unknown }).id ?? id, ok: false, error: err.message };
      else r = { id, ok: false, error: `internal error: ${err instanceof Error ? err.message : String(err)}` };
    }
    this.write(s, r);
  }

  private write(s: net.Socket, r: Response): void {
    if (!s.writable) return;
    let text: string;
    try {
      text = JSON.stringify(r);
    } catch (err) {
      text = JSON.stringify({ id: null, ok: false, error: `answer not serializable: ${(err as Error).message}` });
    }
    s.write(text + '\n');
    // A client that sends and never reads: its answers would pile up in the master's memory.
    if (s.writableLength > MAX_UNREAD) s.destroy();
  }
}
