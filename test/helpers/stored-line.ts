/**
 * The access log's line as it is stored in a LogSink's buffer at once (compileDirectWriter, compileJsonLine),
 * for the unit tests that check it against the string form (compileAccessFormat): the same bytes every way.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { AccessLog, compileDirectWriter, compileJsonLine, type AccessEntry } from '../../src/logging/access-log.js';
import { DEFAULT_ACCESS_LOG_FORMAT } from '../../src/config/sections/logging.js';
import type { LogFormat } from '../../src/logging/json-line.js';
import { LogSink } from '../../src/logging/sink.js';
import { scratchDir } from './scratch.js';

const tmp = scratchDir('tunicorn-line-');
const sinks: LogSink[] = [];
after(() => {
  for (const s of sinks) s.close();
});

/**
 * The line the access log stores for `e`, read back from the sink's file: compileJsonLine's for the default
 * format with `json`, else the format compiled by compileDirectWriter. `puts`, if given, counts the sink's
 * put() and putBytes() calls: the part-by-part way a line takes when it cannot be stored at once.
 */
export function compileToSink(format: string, logFormat: LogFormat = 'text', puts?: { n: number }): (e: AccessEntry) => string {
  const write = logFormat === 'json' && format === DEFAULT_ACCESS_LOG_FORMAT ? compileJsonLine() : compileDirectWriter(format, logFormat === 'json');
  assert.ok(write, 'code generation from strings is on');
  const file = path.join(tmp, `${sinks.length}.log`);
  const sink = new LogSink(file, 1, 60_000, 'latin1');
  sinks.push(sink);
  if (puts) {
    for (const name of ['put', 'putBytes'] as const) {
      const put = (sink[name] as (v: never) => void).bind(sink);
      sink[name] = ((v: never) => {
        puts.n++;
        put(v);
      }) as never;
    }
  }
  let done = 0;
  return (e) => {
    write(e, sink);
    sink.flush();
    const all = readFileSync(file);
    const line = all.subarray(done).toString('latin1');
    done = all.length;
    assert.ok(line.endsWith('\n') && line.indexOf('\n') === line.length - 1, `one line: ${JSON.stringify(line)}`);
    return line.slice(0, -1);
  };
}

/** Each entry's stored line equals its string form, and was put part by part (a fallback). */
export function samePartByPart(stored: (e: AccessEntry) => string, text: (e: AccessEntry) => string, puts: { n: number }, entries: AccessEntry[]): void {
  for (const e of entries) {
    puts.n = 0;
    assert.equal(stored(e), text(e));
    assert.ok(puts.n > 0, 'part by part');
  }
}

/**
 * 3,000 lines through one AccessLog file, in order, equal to the string form: lines of 60 to some 1,000 bytes
 * (`entry(url)` makes each), now and then one with a quote to escape, and one longer than the 64 KB buffer.
 */
export function sameThroughTheBuffer(log: AccessLog, file: string, text: (e: AccessEntry) => string, entry: (url: string, i: number) => AccessEntry): void {
  const want: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const url = i === 1500 ? '/' + 'y'.repeat(80_000) : `/item/${i}?` + 'q'.repeat((i * 37) % 640) + (i % 97 === 0 ? '"' : '');
    const e = entry(url, i);
    log.log(e);
    want.push(text(e));
  }
  log.close();
  assert.deepEqual(readFileSync(file, 'latin1').split('\n'), [...want, '']);
}
