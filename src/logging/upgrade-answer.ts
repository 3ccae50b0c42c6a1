import type { Duplex } from 'node:stream';

/** How much of the app's first write on an upgraded socket is read for its status line and header block. */
const ANSWER_HEAD_MAX = 8192;

/**
 * What the access log reads of a response (see AccessEntry), for an 'upgrade' or 'connect' request: the app
 * answers one on the socket itself, and its first write there holds the status line and the header block
 * (`101 Switching Protocols`, or a refusal such as ws's 400 or 401). The status is undefined (`-` in the log)
 * when the app wrote nothing, or no HTTP answer.
 */
export class UpgradeAnswer {
  statusCode: number | undefined = undefined;
  _header: string | null = null;

  constructor(socket: Duplex) {
    // The socket's own methods for its first write only; end() with data does not go through write().
    const { write, end } = socket;
    const seen = (chunk: unknown): void => {
      socket.write = write;
      socket.end = end;
      let head = '';
      if (typeof chunk === 'string') head = chunk.slice(0, ANSWER_HEAD_MAX);
      else if (ArrayBuffer.isView(chunk))
        head = Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.byteLength, ANSWER_HEAD_MAX)).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!m) return;
      this.statusCode = Number(m[1]);
      const e = head.indexOf('\r\n\r\n');
      this._header = e < 0 ? head : head.slice(0, e + 4);
    };
    socket.write = function (this: Duplex, chunk: unknown) {
      seen(chunk);
      return Reflect.apply(write, this, arguments) as boolean;
    } as Duplex['write'];
    socket.end = function (this: Duplex, chunk?: unknown) {
      seen(typeof chunk === 'function' ? undefined : chunk);
      return Reflect.apply(end, this, arguments) as Duplex;
    } as Duplex['end'];
  }

  getHeader(): undefined {
    return undefined;
  }
}
