import type { InflightRequest } from '../protocol/messages.js';
import type { RequestSlots } from './runtime.js';

/** Bytes per thread: the start time (Float64), the text length (Int32, padded), then "METHOD URL". */
const RECORD = 256;
const TEXT_AT = 16;

/**
 * The request each gthread thread is running, in shared memory: a thread serves one request at a time, so one
 * record per thread. The process's main thread reads them for the heartbeat's slow list, which is what the
 * master names in `WORKER TIMEOUT` when a thread is stuck and cannot report anything itself.
 */
export class ThreadSlots {
  readonly sab: SharedArrayBuffer;

  constructor(readonly threads: number, sab?: SharedArrayBuffer) {
    this.sab = sab ?? new SharedArrayBuffer(threads * RECORD);
  }

  /** The writer for thread `t` (installed as its runtime's `watchdog`). */
  writer(t: number): RequestSlots {
    const start = new Float64Array(this.sab, t * RECORD, 1);
    const len = new Int32Array(this.sab, t * RECORD + 8, 1);
    const text = new Uint8Array(this.sab, t * RECORD + TEXT_AT, RECORD - TEXT_AT);
    const enc = new TextEncoder();
    return {
      begin: (method, url, at) => {
        start[0] = at;
        Atomics.store(len, 0, enc.encodeInto(`${method} ${url}`, text).written);
        return 0;
      },
      end: () => Atomics.store(len, 0, 0),
    };
  }

  /** The threads running a request now. */
  runningThreads(): number[] {
    const out: number[] = [];
    for (let t = 0; t < this.threads; t++) if (Atomics.load(new Int32Array(this.sab, t * RECORD + 8, 1), 0) > 0) out.push(t);
    return out;
  }

  /** Every running request, longest first. */
  running(): InflightRequest[] {
    const now = Date.now();
    const dec = new TextDecoder();
    const out: InflightRequest[] = [];
    for (let t = 0; t < this.threads; t++) {
      const n = Atomics.load(new Int32Array(this.sab, t * RECORD + 8, 1), 0);
      if (n <= 0) continue;
      const line = dec.decode(new Uint8Array(this.sab, t * RECORD + TEXT_AT, n).slice());
      const sp = line.indexOf(' ');
      out.push({ method: line.slice(0, sp), url: line.slice(sp + 1), ms: now - new Float64Array(this.sab, t * RECORD, 1)[0]! });
    }
    return out.sort((a, b) => b.ms - a.ms);
  }
}
