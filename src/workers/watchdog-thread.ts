/**
 * The watcher thread of a worker process (see watchdog.ts): it watches the main thread's heartbeat counter and,
 * while the counter stands still, writes the in-flight requests to the master as JSON lines on `reportFd`.
 */
import { writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

interface Data {
  sab: SharedArrayBuffer;
  reportFd: number;
  stallMs: number;
  /** How often the counter is read (watchPollMs). */
  pollMs: number;
  slots: number;
  text: number;
}

const { sab, reportFd, stallMs, pollMs, slots, text } = workerData as Data;
const beat = new Int32Array(sab, 0, 1);
/** The main thread's idle beat period (Watchdog.pace), 0 while it is busy. */
const idle = new Int32Array(sab, 4, 1);
const starts = new Float64Array(sab, 8, slots);
const lens = new Int32Array(sab, 8 + slots * 8, slots);
const bytes = new Uint8Array(sab, 8 + slots * 12, slots * text);
const dec = new TextDecoder();

/** The error log's time (errorLogTime in error-log.ts, not imported: this thread's heap is kept small). */
function logTime(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const a = Math.abs(off);
  const date = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${date} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${off >= 0 ? '+' : '-'}${p(Math.floor(a / 60))}${p(a % 60)}`;
}

let last = Atomics.load(beat, 0);
let lastChange = Date.now();
let reportedAt = 0;

/** Reads the counter every `pollMs`, or once a beat period while the worker idles (as native/watchdog.c). */
function watch(): void {
  look();
  setTimeout(watch, Math.max(pollMs, Atomics.load(idle, 0)));
}
setTimeout(watch, pollMs);

function look(): void {
  const b = Atomics.load(beat, 0);
  const now = Date.now();
  if (b !== last) {
    last = b;
    lastChange = now;
    return;
  }
  if (now - lastChange < Math.max(stallMs, 2 * Atomics.load(idle, 0)) || now - reportedAt < 500) return;
  reportedAt = now;
  const requests: { method: string; url: string; ms: number }[] = [];
  for (let i = 0; i < slots; i++) {
    const n = Atomics.load(lens, i);
    if (n <= 0) continue;
    const line = dec.decode(bytes.slice(i * text, i * text + n));
    const sp = line.indexOf(' ');
    requests.push({ method: line.slice(0, sp), url: line.slice(sp + 1), ms: now - starts[i]! });
  }
  requests.sort((a, b) => b.ms - a.ms);
  try {
    writeSync(reportFd, JSON.stringify({ stalledMs: now - lastChange, requests: requests.slice(0, 5) }) + '\n');
  } catch (err) {
    // The master not reading (EAGAIN): the report is dropped. The master gone (EPIPE), even by SIGKILL, while
    // the main thread is stuck: its 'disconnect' handler cannot run and no master will time it out. Left
    // alone it would be an orphan holding the listening sockets (a restarted server cannot bind them) and,
    // often, a CPU: it is killed at this first stall report that finds the master gone, sooner than the
    // master's timeout would have, since it is leaving anyway (as native/watchdog.c does).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPIPE' || code === 'ECONNRESET') {
      try {
        writeSync(2, `[${logTime()}] [${process.pid}] [CRITICAL] Worker exiting: the master is gone and this worker's event loop is stuck\n`);
      } catch {
        /* no stderr */
      }
      process.kill(process.pid, 'SIGKILL');
    }
  }
}
