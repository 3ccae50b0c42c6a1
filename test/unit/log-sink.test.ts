/** LogSink: lines gathered and written together, and never lost to an exit (see src/logging/sink.ts). */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { chunkEnd, LogSink } from '../../src/logging/sink.js';
import { until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

const tmp = scratchDir('tunicorn-sink-');
const SINK = fileURLToPath(new URL('../../src/logging/sink.ts', import.meta.url));
const read = (f: string) => readFileSync(f, 'utf8');

describe('LogSink', () => {
  it('gathers lines for at most its delay, then writes them together', async () => {
    const f = path.join(tmp, 'delay.log');
    const sink = new LogSink(f, 1, 30);
    sink.write('a\n');
    sink.write('b\n');
    await new Promise((r) => setImmediate(r));
    assert.equal(read(f), '', 'nothing is written within the turn');
    await until(() => read(f) === 'a\nb\n', 2000, 'the gathered lines');
    sink.close();
  });

  it('writes at once what it gathered when a line does not fit in its 64 KB, and in order', () => {
    const f = path.join(tmp, 'big.log');
    const sink = new LogSink(f, 1, 60_000);
    const line = (i: number) => `${i} caf\u00e9 \u{1F600} ${'x'.repeat(1000)}\n`;
    let n = 0;
    while (read(f) === '') sink.write(line(n++));
    // A line of at most 3 bytes per UTF-16 unit: 64 KB holds at least 21 of them, and no more than 65.
    assert.ok(n > 21 && n < 66, `the first write came at line ${n}`);
    assert.equal(read(f), Array.from({ length: n - 1 }, (_, i) => line(i)).join(''));
    sink.write('x'.repeat(70 * 1024) + '\n');
    assert.equal(read(f).length, Array.from({ length: n }, (_, i) => line(i)).join('').length + 70 * 1024 + 1, 'a line past 64 KB goes out at once, after the gathered ones');
    sink.write('tail\n');
    sink.close();
    assert.ok(read(f).endsWith('x\ntail\n'));
  });

  it('writes a latin1 sink\'s byte strings as their bytes, one per character, and fills its 64 KB with them', () => {
    const f = path.join(tmp, 'latin1.log');
    const sink = new LogSink(f, 1, 60_000, 'latin1');
    // What Node's parser gives for a header whose bytes are UTF-8: one character per byte.
    const sent = Buffer.from('caf\u00e9 \u{1F600}').toString('latin1');
    const line = `${sent} ${'x'.repeat(1000)}\n`;
    let n = 0;
    while (read(f) === '') {
      sink.write(line);
      n++;
    }
    // One byte per character: 64 KB holds 64 of these 1,012-byte lines (3 bytes a character would stop at 21).
    assert.equal(n, 65, `the first write came at line ${n}`);
    sink.close();
    const lines = read(f).split('\n');
    assert.equal(lines.length, 66);
    assert.equal(lines[0], 'caf\u00e9 \u{1F600} ' + 'x'.repeat(1000), 'the bytes the client sent, not encoded twice');
  });

  it('builds a line in place with put(): whole lines only, in order, across the 64 KB and past it', () => {
    const f = path.join(tmp, 'put.log');
    const sink = new LogSink(f, 1, 60_000, 'latin1');
    const sent = Buffer.from('caf\u00e9').toString('latin1');
    const expected: string[] = [];
    // Lines of 1,001 bytes in three parts: the 66th does not fit after 65, so its first parts move to the front.
    for (let i = 0; i < 70; i++) {
      const tag = String(i).padStart(4, '0');
      sink.put(tag);
      sink.put(' ' + sent + ' ');
      sink.put('y'.repeat(1000 - 4 - 2 - sent.length));
      sink.endLine();
      expected.push(`${tag} caf\u00e9 ${'y'.repeat(1000 - 6 - sent.length)}`);
      if (i === 64) assert.equal(read(f), '', 'nothing is written while the lines fit');
      if (i === 65) assert.equal(read(f), expected.slice(0, 65).join('\n') + '\n', 'only the whole lines before the one that did not fit');
    }
    // A line longer than the buffer: the lines before it go first, then it alone.
    sink.put('big ');
    sink.put('z'.repeat(40 * 1024));
    sink.put('z'.repeat(40 * 1024));
    sink.put(' end');
    sink.endLine();
    expected.push('big ' + 'z'.repeat(80 * 1024) + ' end');
    // A line given up halfway leaves nothing behind.
    sink.put('half a line');
    sink.dropLine();
    sink.put('after');
    sink.endLine();
    expected.push('after');
    sink.close();
    assert.equal(read(f), expected.join('\n') + '\n');
  });

  it('escapes what putValue() is given, a quote, a backslash and a control byte, in the buffer and past its end', () => {
    const f = path.join(tmp, 'values.log');
    const sink = new LogSink(f, 1, 60_000, 'latin1');
    const evil = 'a"b\\c\nX - - [forged]\r\x1b[2J\x00\x7f' + Buffer.from('\u00e9').toString('latin1');
    const escaped = 'a\\"b\\\\c\\x0aX - - [forged]\\x0d\\x1b[2J\\x00\\x7f\u00e9';
    const expected: string[] = [];
    // Clean values pass as they are; the 65th line does not fit, the 66th's value is longer than the buffer.
    for (let i = 0; i < 66; i++) {
      const fill = i === 65 ? 'v'.repeat(70 * 1024) : 'v'.repeat(1000);
      sink.put('"');
      sink.putValue(fill);
      sink.put('" "');
      sink.putValue(evil);
      sink.put('"');
      sink.endLine();
      expected.push(`"${fill}" "${escaped}"`);
    }
    sink.close();
    assert.equal(read(f), expected.join('\n') + '\n');
  });

  it('writes a character past 0xff in a value (one the app set: a URL it decoded) as its UTF-8 bytes, never as its low byte', () => {
    const f = path.join(tmp, 'wide.log');
    const sink = new LogSink(f, 1, 60_000, 'latin1');
    // U+010A and U+0122: as their low byte, a line feed and a quote (a forged line); then a euro sign, an emoji
    // (a surrogate pair) and a lone surrogate.
    const wide = 'a\u010a1.2.3.4 - forged\u0122 \u20ac \u{1f600} \ud800';
    for (const fill of ['', 'v'.repeat(70 * 1024)]) {
      sink.put('"');
      sink.putValue(fill + wide);
      sink.put('"');
      sink.endLine();
    }
    sink.close();
    const lines = readFileSync(f).toString('utf8').split('\n');
    assert.equal(lines.length, 3, 'two lines, each ended once');
    assert.equal(lines[0], '"a\u010a1.2.3.4 - forged\u0122 \u20ac \u{1f600} \ufffd"');
    assert.equal(lines[1], `"${'v'.repeat(70 * 1024)}a\u010a1.2.3.4 - forged\u0122 \u20ac \u{1f600} \ufffd"`);
  });

  it('writes bytes given to write() as they are, gathered or past the buffer (--capture-output)', () => {
    const f = path.join(tmp, 'bytes.log');
    const sink = new LogSink(f, 2);
    const big = new Uint8Array(70 * 1024).fill(0x79);
    sink.write(Buffer.from([0x63, 0x61, 0x66, 0xc3]));
    sink.write(new Uint8Array([0xa9, 0x0a, 0xff]));
    sink.write(big);
    sink.write('\n');
    sink.close();
    assert.deepEqual(readFileSync(f), Buffer.concat([Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x0a, 0xff]), big, Buffer.from('\n')]));
  });

  it('keeps writing to the file it has when a reopen fails, and returns the error', () => {
    const dir = path.join(tmp, 'rotated');
    mkdirSync(dir);
    const f = path.join(dir, 'r.log');
    const sink = new LogSink(f, 1);
    sink.write('before\n');
    renameSync(dir, `${dir}.old`);
    assert.equal(sink.reopen()?.code, 'ENOENT');
    sink.write('after\n');
    sink.close();
    assert.equal(read(path.join(`${dir}.old`, 'r.log')), 'before\nafter\n');
  });

  it('cuts what it writes to a pipe after whole lines, within PIPE_BUF, so writers sharing the pipe never split a line', () => {
    const data = Buffer.from('aaa\nbbbb\ncc\n');
    assert.equal(chunkEnd(data, 0, Infinity), data.length, 'a file takes it all at once');
    assert.equal(chunkEnd(data, 0, 9), 9, 'two lines fit exactly');
    assert.equal(chunkEnd(data, 0, 8), 4, 'the second line does not fit whole');
    assert.equal(chunkEnd(data, 4, 8), data.length, 'the rest fits');
    assert.equal(chunkEnd(data, 0, 3), 4, 'a line longer than the limit goes alone, with its newline');
    assert.equal(chunkEnd(Buffer.from('no newline at all'), 0, 4), 17, 'and so does text with no newline');
    const lines = Buffer.from(Array.from({ length: 100 }, (_, i) => `${i} ${'x'.repeat(97)}\n`).join(''));
    const ends: number[] = [];
    for (let start = 0; start < lines.length; start = ends.at(-1)!) ends.push(chunkEnd(lines, start, 4096));
    assert.ok(ends.every((e, i) => e - (ends[i - 1] ?? 0) <= 4096 && lines[e - 1] === 10), `chunks end at newlines, within 4096: ${ends}`);
    assert.equal(ends.at(-1), lines.length);
  });

  it('writes what it gathered when the process exits, by process.exit() or at the end of its loop', () => {
    for (const [name, end] of [['exit.log', 'process.exit(3)'], ['drain.log', '']] as const) {
      const f = path.join(tmp, name);
      const script = `import { LogSink } from ${JSON.stringify(SINK)};
        const s = new LogSink(${JSON.stringify(f)}, 1, 60_000);
        s.write('last words\\n');
        ${end}`;
      try {
        execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'pipe', timeout: 20_000 });
      } catch (err) {
        assert.equal((err as { status?: number }).status, 3, String(err));
      }
      assert.equal(read(f), 'last words\n', name);
    }
  });
});
