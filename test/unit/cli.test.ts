/** The `tunicorn` bin's first line starts node with exactly the master's options (src/cli/node-flags.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MASTER_NODE_FLAGS } from '../../src/cli/node-flags.js';

describe('the bin', () => {
  it('names the master\'s Node options on its #! line', () => {
    const first = readFileSync(new URL('../../src/cli/main.ts', import.meta.url), 'utf8').split('\n')[0];
    assert.equal(first, `#!/usr/bin/env -S node ${MASTER_NODE_FLAGS.join(' ')}`);
  });
});
