import { resolveIdentity } from '../../workers/privileges.js';
import { boolSetting, ConfigError, show, stringSetting, type Setting } from '../setting.js';

const section = 'Privileges';

/** The umask: an octal string, or (in a config file) a number such as 0o22. */
function umaskSetting(b: Omit<Setting<string | number>, 'kind' | 'takesValue' | 'fromCli' | 'fromConfig'>): Setting<string | number> {
  const conv = (v: unknown): string | number => {
    // As octal text, as given on the command line: --print-config shows 0o22, not 18.
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0o7777) return `0o${v.toString(8)}`;
    if (typeof v === 'string' && /^(0o?)?[0-7]{1,4}$/i.test(v.trim())) return v.trim();
    throw new ConfigError(`invalid value for umask (--umask): ${show(v)}; expected an octal mode such as 022 or 0o22`);
  };
  return { ...b, kind: 'string', takesValue: true, fromCli: (raw) => conv(raw[raw.length - 1]), fromConfig: conv };
}

/** A user or group: a name, or a numeric id (in a config file a number too, as Gunicorn's `user = 1000`). */
function idSetting(b: Parameters<typeof stringSetting<string | null>>[0]): Setting<string | null> {
  const s = stringSetting<string | null>(b);
  return { ...s, fromConfig: (v) => s.fromConfig(typeof v === 'number' && Number.isInteger(v) && v >= 0 ? String(v) : v) };
}

export const security = {
  user: idSetting({
    key: 'user',
    gunicorn: 'user',
    section,
    flags: ['-u', '--user'],
    metavar: 'USER',
    default: null,
    check: (u) => (resolveIdentity(u, null), undefined),
    short: 'Workers run as this user (a name or a numeric id).',
    doc:
      'The master keeps its privileges to bind (port 80 as root) and to manage workers; each worker drops to ' +
      'this user (and group) right after the `postFork` hook, which runs with the master\'s identity as in ' +
      'Gunicorn, and before it loads the app. A user that does not exist stops the server at start.',
  }),
  group: idSetting({
    key: 'group',
    gunicorn: 'group',
    section,
    flags: ['-g', '--group'],
    metavar: 'GROUP',
    default: null,
    defaultDoc: 'the user\'s primary group when `user` is set',
    check: (g) => (resolveIdentity(null, g), undefined),
    short: 'Workers run with this group (a name or a numeric id).',
    doc: 'Set before the user, so the switch can still be made.',
  }),
  umask: umaskSetting({
    key: 'umask',
    gunicorn: 'umask',
    section,
    flags: ['-m', '--umask'],
    metavar: 'INT',
    default: '0',
    short: 'The umask for the Unix socket files tunicorn binds (octal): they get mode 0777 & ~umask.',
    doc:
      'On the command line an octal string (`022`, `0o22`); in a config file that or a number (`0o22`). As ' +
      'Gunicorn\'s, it applies around the bind of a `unix:` socket only: the master and the workers keep the ' +
      'umask they were started with, so the logs and the files the app writes get the modes the service ' +
      'manager or the shell gave (a process-wide umask of 0 made them writable by every local user). ' +
      'Gunicorn\'s default, 0, leaves the socket open to all local users.',
  }),
  initgroups: boolSetting({
    key: 'initgroups',
    gunicorn: 'initgroups',
    section,
    flags: ['--initgroups'],
    default: false,
    short: 'Give workers every supplementary group of `user` (from /etc/group).',
    doc: 'Without it, workers keep only the one group.',
  }),
};
