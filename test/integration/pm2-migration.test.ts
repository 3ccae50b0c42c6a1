/**
 * A PM2 user's setup, on the real CLI: what docs/operations.md ("Coming from PM2") says to use works as it says,
 * and what tunicorn does not have is said in one line.
 * - an ecosystem file given as the config file (`apps: [...]`), and a PM2 key such as `instances` in a tunicorn
 *   config, stop the start with status 1 and one line that says what to use instead;
 * - PM2's `env_file`/.env habit: `node --env-file=.env` in front of the CLI gives the workers the variables, and
 *   a config file's `rawEnv: parseEnv(readFileSync('.env'))` does too, read again on HUP.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { request, Server, stopAll } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const tmp = scratchDir('tunicorn-pm2-');
after(() => rmSync(tmp, { recursive: true, force: true }));

writeFileSync(path.join(tmp, 'env.mjs'), 'export default (req, res) => res.end(`${process.env.GREETING} ${process.env.QUOTED}`);\n');

describe('coming from PM2', () => {
  it('an ecosystem file, or a PM2 key in a config file, is refused in one line that says what to use', async () => {
    writeFileSync(path.join(tmp, 'ecosystem.config.cjs'), "module.exports = { apps: [{ name: 'api', script: 'env.mjs', instances: 'max', exec_mode: 'cluster' }] };\n");
    const eco = new Server(['-c', 'ecosystem.config.cjs', 'env.mjs'], { cwd: tmp });
    assert.equal((await eco.exited).code, 1);
    assert.equal(
      eco.log,
      `tunicorn: error: setting "apps" in ${path.join(tmp, 'ecosystem.config.cjs')} is PM2's, not tunicorn's: this is a PM2 ecosystem file; a tunicorn config file exports one server's settings as its top-level keys (export default { workers: 4, ... }): see docs/operations.md, "Coming from PM2"\n`,
    );

    writeFileSync(path.join(tmp, 'moved.config.mjs'), "export default { workers: 2, instances: 'max' };\n");
    const moved = new Server(['-c', 'moved.config.mjs', '--check-config', 'env.mjs'], { cwd: tmp });
    assert.equal((await moved.exited).code, 1);
    assert.match(moved.log, /^tunicorn: error: setting "instances" in \S+moved\.config\.mjs is PM2's, not tunicorn's: use workers \(-w N\); PM2's 'max' \(one per CPU\) is workers: os\.availableParallelism\(\), while tunicorn's "auto" is 2 x CPUs \+ 1\n$/);
  });

  it("a .env file: node --env-file, or the config file's rawEnv from parseEnv (read again on HUP)", async () => {
    writeFileSync(path.join(tmp, '.env'), '# the first\nGREETING=hello\nQUOTED="a b"\n');
    // As `node --env-file=.env node_modules/.bin/tunicorn env.mjs`: a node option before the CLI.
    const flag = new Server(['-b', '127.0.0.1:0', '-w', '1', 'env.mjs'], { cwd: tmp, wrapper: ['sh', '-c', 'exec "$0" --env-file=.env "$@"'] });
    const flagPort = await flag.port();
    await flag.workersBooted(1);
    assert.equal((await request(flagPort, '/')).body, 'hello a b');
    await flag.kill();

    writeFileSync(
      path.join(tmp, 'tunicorn.config.mjs'),
      "import { readFileSync } from 'node:fs';\nimport { parseEnv } from 'node:util';\nexport default { rawEnv: parseEnv(readFileSync('.env', 'utf8')) };\n",
    );
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', 'env.mjs'], { cwd: tmp });
    const port = await s.port();
    await s.workersBooted(1);
    assert.equal((await request(port, '/')).body, 'hello a b');
    writeFileSync(path.join(tmp, '.env'), 'GREETING=bonjour\n');
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.workersBooted(1, from);
    await s.waitFor(/Worker exited/, 15000, from);
    // The new workers have the new set: a variable dropped from the file is gone for them.
    assert.equal((await request(port, '/')).body, 'bonjour undefined');
    await s.kill();
  });
});
