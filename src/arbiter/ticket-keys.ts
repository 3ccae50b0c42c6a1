import { lazy } from '../lazy.js';

/**
 * How long one set of TLS session-ticket keys is used before the master makes the next. Node's
 * `setTicketKeys` holds one key (no previous one kept to decrypt), so a rotation ends the tickets issued
 * before it: a client resuming one makes one full handshake instead. Node's tickets are good for
 * `sessionTimeout` (300 s) anyway, so only the sessions of the last 5 minutes before each rotation pay it,
 * and a key stolen from a worker's memory decrypts the resumed TLS 1.2 sessions of its hour, not of every
 * session since the server started.
 */
export const TICKET_KEY_PERIOD_MS = 3_600_000;

/**
 * Test-only: `TUNICORN_TEST_TICKET_KEY_PERIOD_MS` shortens the period so that a test sees a rotation without
 * waiting an hour. Not a setting, not documented for users.
 */
export function ticketKeyPeriodMs(env: NodeJS.ProcessEnv): number {
  const ms = Number(env.TUNICORN_TEST_TICKET_KEY_PERIOD_MS);
  return Number.isInteger(ms) && ms > 0 ? ms : TICKET_KEY_PERIOD_MS;
}

/**
 * The master's TLS session-ticket keys, shared by every worker and gthread thread: Node makes random ones per
 * server, so a client resumed its session only when the kernel handed its next connection to the worker that
 * issued its ticket. Made when TLS is first on (at start or by a HUP), kept across HUP (the new workers
 * resume the old workers' tickets), new in a master started by USR2. Sent to workers in their `init` message
 * and in `ticketKeys` messages, never in the environment, argv, a log line or the config.
 */
export class TicketKeys {
  #keys: string | null = null;
  #madeAt = 0;

  constructor(private readonly periodMs: number) {}

  /** The keys (48 random bytes, base64) for a worker started now; null while TLS is off. */
  forWorker(tlsOn: boolean, now = Date.now()): string | null {
    if (!tlsOn) return null;
    if (this.#keys === null) this.make(now);
    return this.#keys;
  }

  /** New keys once the current ones are a period old (base64, to send to every worker), else null. */
  rotated(now = Date.now()): string | null {
    if (this.#keys === null || now - this.#madeAt < this.periodMs) return null;
    this.make(now);
    return this.#keys;
  }

  /** When rotated() will next give new keys (epoch ms); Infinity while TLS is off. */
  get dueAt(): number {
    return this.#keys === null ? Infinity : this.#madeAt + this.periodMs;
  }

  private make(now: number): void {
    // 16 bytes of key name, 16 of HMAC secret, 16 of AES key: the one key Node's setTicketKeys takes.
    this.#keys = lazy.crypto().randomBytes(48).toString('base64');
    this.#madeAt = now;
  }
}
