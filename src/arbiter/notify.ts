import { spawn } from 'node:child_process';
import type { ErrorLog } from '../logging/error-log.js';

/**
 * systemd's readiness protocol (sd_notify): datagrams like `READY=1` on the unix socket named by
 * NOTIFY_SOCKET. Node has no unix datagram sockets (node:dgram is UDP only, and a stream socket cannot
 * connect to a datagram one: EPROTOTYPE), so without a native addon the message is sent by systemd's own
 * `systemd-notify` tool. Its datagram comes from its pid, not ours, so the unit needs `NotifyAccess=all`;
 * `MAINPID=` in every message tells systemd which process is the master (a USR2 upgrade moves it).
 */
export class SystemdNotifier {
  readonly #socket: string | undefined;
  #warned = false;

  constructor(
    env: NodeJS.ProcessEnv,
    private readonly log: () => ErrorLog,
  ) {
    this.#socket = env.NOTIFY_SOCKET;
  }

  get enabled(): boolean {
    return Boolean(this.#socket);
  }

  /** Sends one message; resolves when it has left (or failed: logged once, never thrown). */
  notify(fields: Record<string, string | number>): Promise<void> {
    if (!this.#socket) return Promise.resolve();
    const vars = Object.entries({ MAINPID: process.pid, ...fields }).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`);
    const child = spawn('systemd-notify', vars, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: this.#socket },
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e: NodeJS.ErrnoException) => this.warnOnce(e.code === 'ENOENT' ? 'systemd-notify is not installed' : e.message));
    return new Promise((resolve) => {
      child.on('error', () => resolve());
      child.on('exit', (code) => {
        if (code) this.warnOnce(err.trim() || `systemd-notify exited with ${code}`);
        resolve();
      });
    });
  }

  private warnOnce(why: string): void {
    if (this.#warned) return;
    this.#warned = true;
    this.log().warning(`Could not notify systemd (NOTIFY_SOCKET=${this.#socket}): ${why}`);
  }
}
