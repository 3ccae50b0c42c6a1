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
  slots: number;
  text: number;
}

const { sab, reportFd, stallMs, slots, text } = workerData as Data;
const beat = new Int32Array(sab, 0, 1);
const starts = new Float64Array(sab, 8, slots);
const lens = new Int32Array(sab, 8 + slots * 8, slots);
const bytes = new Uint8Array(sab, 8 + slots * 12, slots * text);
const dec = new TextDecoder();

let last = Atomics.load(beat, 0);
let lastChange = Date.now();
let reportedAt = 0;

setInterval(() => {
  const b = Atomics.load(beat, 0);
  const now = Date.now();
  if (b !== last) {
    last = b;
    lastChange = now;
    return;
  }
  if (now - lastChange < stallMs || now - reportedAt < 500) return;
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
  } catch {
    // The master is gone or not reading: nothing to report to.
  }
}, 100);
