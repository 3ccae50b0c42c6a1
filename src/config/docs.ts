import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { allSettings } from './registry.js';
import { GUNICORN_ONLY } from './gunicorn-only.js';
import { ENV_SET, PM2_KEYS } from './pm2-keys.js';
import type { Setting } from './setting.js';

function defaultText(s: Setting<unknown>): string {
  if (s.defaultDoc) return s.defaultDoc;
  if (s.kind === 'hook') return 'none';
  if (s.default === null) return 'unset';
  if (Array.isArray(s.default)) return s.default.length ? s.default.map((x) => `\`${x}\``).join(', ') : 'empty';
  if (typeof s.default === 'object') return Object.keys(s.default as object).length ? JSON.stringify(s.default) : 'none';
  return `\`${String(s.default)}\``;
}

/** docs/settings.md, generated from the registry: one section per setting. */
export function settingsMarkdown(): string {
  const out: string[] = [
    '# Settings',
    '',
    '<!-- Generated from src/config/sections/*.ts by `npm run docs`; a test fails when this file is stale. -->',
    '',
    'Every setting can be given in a config file (`-c tunicorn.config.ts`) by its key, and, except hooks, on',
    'the command line by its flag. Precedence, lowest first: defaults, the config file, `TUNICORN_CMD_ARGS`',
    '(parsed like a command line), the command line. `tunicorn --print-config APP` shows each value and',
    'where it came from. An unknown flag or key stops the start with one line, and names the setting it',
    'is nearest to when one is (`unknown option --wokers; did you mean --workers?`). So does a bad value,',
    'with the environment variable it came from when it did (`PORT`, `WEB_CONCURRENCY`, `FORWARDED_ALLOW_IPS`,',
    '`TUNICORN_CMD_ARGS`), and one setting given twice in a config file under two of its spellings',
    '(`preload` and `preload_app`). Flags are read as Gunicorn\'s argparse reads them: `-w 4`, `-w4`, `-w=4`,',
    '`--workers=4`, a long flag shortened to a prefix only it has (`--error-log`; `--worker` could be several,',
    'and the error names them), and `_` for `-` in a long flag (Gunicorn spells one `--limit-request-field_size`).',
    'Durations are decimal numbers of seconds up to 2000000 (23 days): Node keeps no',
    'longer timer, and fires a longer one at once. One of Gunicorn\'s settings that tunicorn does not have',
    '(`--daemon`, `tmp_upload_dir`...) says why, and what to do instead: [the list](#gunicorns-settings-that-tunicorn-does-not-have).',
    'A repeatable flag, on the command line or in `TUNICORN_CMD_ARGS`, replaces the list or map of a lower',
    'layer (the defaults included): it does not add to it. Gunicorn\'s `GUNICORN_CMD_ARGS` and `./gunicorn.conf.py`',
    'are not read; the start says so in a warning (and `--check-config` on stderr). Booleans in a config file',
    'are `true`/`false`, or a string `true`, `false`, `1`, `0`, `yes`, `no` in any case. Gunicorn\'s',
    'defaults that tunicorn changes: `keepalive` 5 (Gunicorn: 2), `worker_class` `async` (Gunicorn: `sync`).',
    'A setting that is unset by default (a path, a host) refuses an empty value (`--pid ""`, what',
    '`--pid "$PIDFILE"` gives with the variable unset) rather than read it as "off"; leave it out, or give',
    '`null` in a config file. The typed config (`defineConfig`) takes every form named here and below: a',
    'list as one string, `raw_env` as a list of `KEY=VALUE`, `cert_reqs` as 0, 1 or 2, a numeric `user`,',
    'and the alias keys (`logfile`, `proc_name`, `raw_env`, `preload_app`, `max_memory_restart`).',
    '',
  ];
  const sections = new Map<string, Setting<unknown>[]>();
  for (const s of allSettings()) sections.set(s.section, [...(sections.get(s.section) ?? []), s]);
  for (const [name, settings] of sections) {
    out.push(`## ${name}`, '');
    for (const s of settings) {
      out.push(`### \`${s.key}\``, '');
      if (s.flags.length) out.push(`- Flag: ${s.flags.map((f) => `\`${f}${s.takesValue ? ` ${s.metavar ?? 'VALUE'}` : ''}\``).join(', ')}${s.repeatable ? ' (repeatable)' : ''}`);
      out.push(`- Config key: \`${s.key}\`${s.gunicorn ? ` (Gunicorn: \`${s.gunicorn}\`)` : ''}`);
      out.push(`- Default: ${defaultText(s)}`, '');
      out.push(s.short, '');
      out.push(s.doc, '');
    }
  }
  out.push(
    "## Gunicorn's settings that tunicorn does not have",
    '',
    'Given on the command line or in a config file (in either spelling), each stops the start with its line below;',
    'in a config file, one set to `false` or `null` (off, what tunicorn does: `daemon: false` carried over from a',
    'Gunicorn config) is let pass.',
    '',
    '| Gunicorn | flag | why, and what to do instead |',
    '|---|---|---|',
    ...Object.entries(GUNICORN_ONLY).map(([name, g]) => `| \`${name}\` | ${g.flags.map((f) => `\`${f}\``).join(', ') || '–'} | ${g.why} |`),
    '',
    "## PM2's ecosystem keys",
    '',
    "A key of a PM2 app declaration (ecosystem.config.js) in a config file stops the start with its line below.",
    "PM2's `max_memory_restart` is not among them: it is read as `maxWorkerMemory`, with PM2's values. The commands:",
    'docs/operations.md, "Coming from PM2".',
    '',
    '| PM2 | what to use instead |',
    '|---|---|',
    ...Object.entries(PM2_KEYS).map(([name, why]) => `| \`${name}\` | ${why} |`),
    `| \`env_production\`, any \`env_*\` | ${ENV_SET} |`,
    '',
  );
  return out.join('\n');
}

const docsPath = fileURLToPath(new URL('../../docs/settings.md', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--write')) {
    writeFileSync(docsPath, settingsMarkdown());
    process.stdout.write(`wrote ${docsPath}\n`);
  } else if (readFileSync(docsPath, 'utf8') !== settingsMarkdown()) {
    process.stderr.write('docs/settings.md is stale: run `npm run docs`\n');
    process.exit(1);
  }
}
