/** The `tunicorn` bin's first lines and the Node options its workers get (src/cli/node-flags.ts). */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { helpText } from '../../src/cli/help.js';
import { MASTER_NODE_FLAGS, workerInspectPort } from '../../src/cli/node-flags.js';
import { otherRuntime, unsupportedPlatform, VERSION } from '../../src/version.js';
import { scratchDir } from '../helpers/scratch.js';

describe('the bin', () => {
  it('names the master\'s Node options on its first lines', () => {
    // As written, and as tsc emits them (the bin is dist/cli/main.js).
    for (const file of ['../../src/cli/main.ts', '../../dist/cli/main.js']) {
      const [first, second] = readFileSync(new URL(file, import.meta.url), 'utf8').split('\n');
      assert.equal(first, '#!/bin/sh');
      assert.equal(second, `//usr/bin/env true; exec node ${MASTER_NODE_FLAGS.join(' ')} "$0" "$@"`);
    }
  });

  // BusyBox's env (Alpine's /usr/bin/env) and toybox's have no -S: a `#!/usr/bin/env -S node ...` bin failed
  // there before it started. The bin's #! line is a plain POSIX sh, with no option.
  it('starts through a POSIX sh, with the master\'s Node options', () => {
    const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
    // Prints the options node started with, before the CLI runs.
    const env = { ...process.env, NODE_OPTIONS: '--import=data:text/javascript,console.error(process.execArgv.join())' };
    const shells = [['sh'], ...(spawnSync('busybox', ['true']).status === 0 ? [['busybox', 'sh']] : [])];
    for (const [sh, ...pre] of shells) {
      // In a folder of its own: a bin that sh cannot hand to node is read as shell code, which writes files.
      const r = spawnSync(sh!, [...pre, cli, '--version'], { encoding: 'utf8', env, cwd: scratchDir('tunicorn-cli-') });
      assert.equal(r.stdout, `tunicorn ${VERSION} (Node.js ${process.version})\n`, `${sh} ${pre.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `${MASTER_NODE_FLAGS.join()}\n`);
    }
  });
});

describe('on another runtime than Node.js', () => {
  it('names Bun and Deno, and nothing on Node.js', () => {
    assert.equal(otherRuntime({ ...process.versions, bun: '1.4.5' }), 'Bun 1.4.5');
    assert.equal(otherRuntime({ ...process.versions, deno: '2.5.0' }), 'Deno 2.5.0');
    assert.equal(otherRuntime(), null);
  });

  it('refuses Windows in one line that says where to run it, and nothing on Unix systems', () => {
    assert.match(unsupportedPlatform('win32') ?? '', /^tunicorn runs on Linux .*not on Windows: .*; run it in WSL 2 or a Linux container$/);
    for (const platform of ['linux', 'darwin', 'freebsd'] as const) assert.equal(unsupportedPlatform(platform), null);
  });

  // `bun --bun tunicorn app.ts` ran the master on Bun, which failed at the bind with "internal error" and a
  // stack (Bun lacks the API the bind uses), and `--version` named a Node.js v26 that was Bun.
  const bun = spawnSync('bun', ['--version'], { encoding: 'utf8' });
  it('refuses in one line under `bun --bun`', { skip: bun.status === 0 ? false : 'bun is not installed' }, () => {
    const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
    const app = fileURLToPath(new URL('../fixtures/echo.ts', import.meta.url));
    for (const args of [['-b', '127.0.0.1:0', app], ['--version']]) {
      const r = spawnSync('bun', ['--bun', cli, ...args], { encoding: 'utf8', timeout: 20000 });
      assert.equal(r.stdout, '', args.join(' '));
      assert.equal(r.stderr, `tunicorn: error: tunicorn runs on Node.js, not on Bun ${bun.stdout.trim()}: start it with node (bun run tunicorn or bunx tunicorn, without --bun)\n`);
      assert.equal(r.status, 1);
    }
  });
});

describe('what the bin prints', () => {
  // `tunicorn --print-config APP | head -3`: the reader closes the pipe before the output ends.
  for (const args of [['--print-config', 'app.ts'], ['--help'], ['--version']]) {
    it(`${args[0]} to a reader that went away ends quietly, with status 0`, async () => {
      const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
      const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: scratchDir('tunicorn-cli-') });
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(stderr, '');
      assert.equal(code, 0);
    });
  }
});

describe('--help', () => {
  it('starts every description at one column; a longer flag puts its description on the next line', () => {
    const lines = helpText().split('\n');
    const options = lines.filter((l) => /^  -/.test(l));
    assert.ok(options.length > 40);
    for (const [i, l] of lines.entries()) {
      if (!/^  -/.test(l)) continue;
      // The description starts at index 33: on this line after at least one space, or alone on the next.
      const inline = /^ {2}\S.{29} \S/.test(l) && l.slice(0, 33).trimEnd().length < 32;
      if (!inline) {
        assert.doesNotMatch(l.slice(2), /\s{2}/, `a description after a long flag: ${JSON.stringify(l)}`);
        assert.match(lines[i + 1]!, /^ {33}\S/, `no description under ${JSON.stringify(l)}`);
      }
    }
    assert.ok(lines.includes('  --secure-scheme-header HEADER=VALUE'));
  });
});

describe('workerInspectPort', () => {
  it('is undefined when the master runs without the inspector', () => {
    assert.equal(workerInspectPort([], undefined, 1), undefined);
    assert.equal(workerInspectPort(['--no-opt', '--enable-source-maps'], '--max-old-space-size=512', 1), undefined);
    // An address alone does not turn it on, nor do the inspector's other options.
    assert.equal(workerInspectPort(['--inspect-port=9300', '--inspect-publish-uid=http'], undefined, 1), undefined);
  });

  it('gives each worker the master\'s port plus its age', () => {
    assert.equal(workerInspectPort(['--inspect'], undefined, 1), 9230);
    assert.equal(workerInspectPort(['--inspect'], undefined, 7), 9236);
    assert.equal(workerInspectPort(['--inspect-brk=9300'], undefined, 2), 9302);
    assert.equal(workerInspectPort(['--inspect-wait=0.0.0.0:9400'], undefined, 1), 9401);
    assert.equal(workerInspectPort(['--inspect=[::1]:9500'], undefined, 3), 9503);
    assert.equal(workerInspectPort(['--inspect', '--inspect-port=9600'], undefined, 1), 9601);
    assert.equal(workerInspectPort(['--debug-port=9700', '--inspect'], undefined, 1), 9701);
  });

  it('reads NODE_OPTIONS first and the command line after it, as Node does', () => {
    assert.equal(workerInspectPort([], '--inspect=127.0.0.1:9800', 1), 9801);
    assert.equal(workerInspectPort(['--inspect-port=9900'], '  --inspect=9800  --max-old-space-size=64 ', 1), 9901);
    assert.equal(workerInspectPort(['--inspect'], '--inspect-port=9100', 1), 9101);
  });

  it('keeps port 0 (any free port) and stays within 1024-65535', () => {
    assert.equal(workerInspectPort(['--inspect=0'], undefined, 5), 0);
    assert.equal(workerInspectPort(['--inspect=127.0.0.1:0'], undefined, 1), 0);
    assert.equal(workerInspectPort(['--inspect=65535'], undefined, 1), 1024);
    assert.equal(workerInspectPort(['--inspect=65530'], undefined, 10), 1028);
  });
});
