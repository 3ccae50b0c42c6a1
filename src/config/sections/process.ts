import { boolSetting, mapSetting, stringSetting } from '../setting.js';

const section = 'Process';

export const processSettings = {
  config: stringSetting<string | null>({
    key: 'config',
    gunicorn: 'config',
    section,
    flags: ['-c', '--config'],
    metavar: 'PATH',
    default: null,
    defaultDoc: 'the first of `./tunicorn.config.ts`, `.mts`, `.js`, `.mjs`, `.cjs` that exists',
    short: 'The config file to load.',
    doc:
      'A TypeScript or JavaScript module whose default export is a plain object (or `defineConfig({...})` ' +
      'from `tunicorn`) of settings by their camelCase keys; server hooks are functions in it. `-c` also ' +
      'takes a `.cts` module or a `.json` file of the same object (the default search does not look for ' +
      'those). Only the command line or `TUNICORN_CMD_ARGS` can name it; a config file that sets `config` ' +
      'is an error. Gunicorn\'s `file:PATH` is PATH; its `python:MODULE` and a `.py` file are refused, in one ' +
      'line. A `gunicorn.conf.py` in the directory is not read, and the start says so in a warning, as it ' +
      'does for a `GUNICORN_CMD_ARGS` in the environment (tunicorn reads `TUNICORN_CMD_ARGS`).',
  }),
  procName: stringSetting<string | null>({
    key: 'procName',
    gunicorn: 'proc_name',
    section,
    flags: ['-n', '--name'],
    metavar: 'STRING',
    default: null,
    defaultDoc: 'the app',
    short: 'The name shown in process titles: "tunicorn: master [NAME]".',
    doc: 'Tells several tunicorn servers apart in `ps` and `top`. The config key `proc_name` (Gunicorn\'s) is accepted too.',
  }),
  pidfile: stringSetting<string | null>({
    key: 'pidfile',
    gunicorn: 'pidfile',
    section,
    flags: ['-p', '--pid'],
    metavar: 'FILE',
    default: null,
    short: 'Write the master\'s pid to this file; removed at exit.',
    doc:
      'A pidfile left by a process that is no longer running, or whose pid another program (not Node) runs ' +
      'now, is replaced; one whose process still runs stops the start with an error. A reload (HUP) writes it ' +
      'again, as Gunicorn\'s does: at the new path if the config names another one (the old file is removed, ' +
      '`Pidfile moved to PATH`), back in place if it was deleted; one that names another live server fails the ' +
      'reload. During a USR2 upgrade it stays where it is until the upgrade is done.',
  }),
  chdir: stringSetting<string | null>({
    key: 'chdir',
    gunicorn: 'chdir',
    section,
    flags: ['--chdir'],
    metavar: 'DIR',
    default: null,
    short: 'Change to this directory before loading the app.',
    doc: 'The app\'s relative path is resolved after the change. The config file is read before it: `-c` and the default `tunicorn.config.*` are found from the directory tunicorn was started in, as Gunicorn reads its config before it changes directory. The path is kept as given, symlinks unresolved: each new worker starts in the directory it names then, so a `current` symlink switched to the next release is followed by the workers a HUP starts (docs/operations.md, "Deploying a new release"). Without `chdir`, the workers start in the directory tunicorn was started in, named as `$PWD` names it (as Gunicorn\'s default), so `cd /srv/app/current && tunicorn app.ts` follows the symlink too.',
  }),
  rawEnv: mapSetting({
    key: 'rawEnv',
    gunicorn: 'raw_env',
    section,
    flags: ['-e', '--env'],
    metavar: 'KEY=VALUE',
    default: Object.freeze({}),
    short: 'Set an environment variable in the workers (repeatable).',
    doc: 'In a config file, an object `{ KEY: "value" }` or a list of `"KEY=VALUE"` strings. The config key `raw_env` (Gunicorn\'s) is accepted too. The app sees them wherever it loads: in the workers, and in the master with `--preload` and `--check-config` (set while it loads there). A reload (HUP) gives the new workers the new set: a variable dropped from it is gone for them. `-e NODE_OPTIONS=\'--import ./instrument.mjs\'` gives Node options to the workers only, in place of the master\'s: an APM or tracing agent preloaded so stays out of the master (README, "APM and tracing agents").',
  }),
  checkConfig: boolSetting({
    key: 'checkConfig',
    gunicorn: 'check_config',
    section,
    flags: ['--check-config'],
    default: false,
    short: 'Load the config and the app, then exit 0, or 1 with the reason.',
    doc:
      'Binds nothing and starts no worker. Checks what a start checks before it binds: the logs and the ' +
      'pidfile can be written (creating none of them), `worker_tmp_dir` takes new files, the certificate ' +
      'and its key, and that `user`/`group` can be switched to; then loads the app. A pidfile naming a server that runs is not an error here, so ' +
      'the check can come before a HUP of that server.',
  }),
  printConfig: boolSetting({
    key: 'printConfig',
    gunicorn: 'print_config',
    section,
    flags: ['--print-config'],
    default: false,
    short: 'Print every resolved setting and where its value came from, then exit.',
    doc: 'The source is one of default, environment, config file, TUNICORN_CMD_ARGS or command line.',
  }),
};
