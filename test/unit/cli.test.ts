/** The `tunicorn` bin's first line and the Node options its workers get (src/cli/node-flags.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MASTER_NODE_FLAGS, workerInspectPort } from '../../src/cli/node-flags.js';

describe('the bin', () => {
  it('names the master\'s Node options on its #! line', () => {
    const first = readFileSync(new URL('../../src/cli/main.ts', import.meta.url), 'utf8').split('\n')[0];
    assert.equal(first, `#!/usr/bin/env -S node ${MASTER_NODE_FLAGS.join(' ')}`);
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
