import { allSettings } from '../config/registry.js';

/** The column the descriptions start at; a longer flag puts its description on the next line, as argparse. */
const COLUMN = 33;

/** One option: its spelling, then its description at COLUMN (or below it, when the spelling is longer). */
function option(spell: string, text: string): string {
  const head = `  ${spell}`;
  return head.length < COLUMN - 1 ? `${head.padEnd(COLUMN)}${text}` : `${head}\n${' '.repeat(COLUMN)}${text}`;
}

export function helpText(): string {
  const lines = [
    'usage: tunicorn [OPTIONS] APP',
    '',
    'Serve APP, a TypeScript or JavaScript module (PATH[:EXPORT] or a package), with a pre-fork master and',
    'worker processes. Without :EXPORT the default export is served, else the export named "app".',
    '',
    'options:',
    option('-h, --help', 'Show this help and exit.'),
    option('-v, --version', 'Show the version and exit.'),
  ];
  let section = '';
  for (const s of allSettings()) {
    if (!s.flags.length) continue;
    if (s.section !== section) {
      section = s.section;
      lines.push('', `${section}:`);
    }
    const spell = s.flags.join(', ') + (s.takesValue ? ` ${s.metavar ?? 'VALUE'}` : '');
    lines.push(option(spell, s.short));
  }
  lines.push('', 'Server hooks are set in a config file. Every setting: docs/settings.md.', '');
  return lines.join('\n');
}
