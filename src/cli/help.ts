import { allSettings } from '../config/registry.js';

export function helpText(): string {
  const lines = [
    'usage: tunicorn [OPTIONS] APP',
    '',
    'Serve APP, a TypeScript or JavaScript module (PATH[:EXPORT] or a package), with a pre-fork master and',
    'worker processes. Without :EXPORT the default export is served, else the export named "app".',
    '',
    'options:',
    '  -h, --help            show this help and exit',
    '  -v, --version         show the version and exit',
  ];
  let section = '';
  for (const s of allSettings()) {
    if (!s.flags.length) continue;
    if (s.section !== section) {
      section = s.section;
      lines.push('', `${section}:`);
    }
    const spell = s.flags.join(', ') + (s.takesValue ? ` ${s.metavar ?? 'VALUE'}` : '');
    lines.push(`  ${spell.padEnd(30)} ${s.short}`);
  }
  lines.push('', 'Server hooks are set in a config file. Every setting: docs/settings.md.', '');
  return lines.join('\n');
}
