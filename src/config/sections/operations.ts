import { parseAddress, UNIX_PATH_MAX } from '../../listeners/address.js';
import { boolSetting, ConfigError, listSetting, numberSetting, show, stringSetting, type Setting } from '../setting.js';

const section = 'Operations';

/** A file mode: an octal string (`0600`, `600`, `0o600`) or, in a config file, a number (`0o600`); kept as `0600`. */
function modeSetting(b: Omit<Setting<string>, 'kind' | 'takesValue' | 'fromCli' | 'fromConfig'>): Setting<string> {
  const conv = (v: unknown): string => {
    let n = NaN;
    if (typeof v === 'number' && Number.isInteger(v)) n = v;
    else if (typeof v === 'string' && /^(0o?)?[0-7]{1,4}$/i.test(v.trim())) n = parseInt(v.trim().replace(/^0o/i, ''), 8);
    if (!(n >= 0 && n <= 0o777)) throw new ConfigError(`invalid value for ${b.key} (--control-socket-mode): ${show(v)}; expected an octal mode from 0 to 0777, such as 0600 or 0o660`);
    return '0' + n.toString(8).padStart(3, '0');
  };
  return { ...b, kind: 'string', takesValue: true, fromCli: (raw) => conv(raw[raw.length - 1]), fromConfig: conv };
}

export const operations = {
  healthBind: stringSetting<string | null>({
    key: 'healthBind',
    section,
    flags: ['--health-bind'],
    metavar: 'ADDRESS',
    default: null,
    check: (v) => {
      if (v === null) return undefined;
      try {
        parseAddress(v);
      } catch (err) {
        // parseAddress's reason, without its name for the setting (--bind).
        const why = (err as { why?: string }).why;
        return `${why ? `${why} ` : ''}(expected HOST:PORT, [IPv6]:PORT or unix:PATH)`;
      }
      return undefined;
    },
    short: 'Answer health checks on this address (HOST:PORT or unix:PATH), from the master itself.',
    doc:
      '`GET /health/live` answers 200 while the master runs. `GET /health/ready` answers 200 only while the ' +
      'wanted number of workers is serving, and 503 from the moment a graceful stop (TERM) begins. It is the ' +
      'master\'s own socket, not the app\'s: a load balancer or a Kubernetes probe sees the server\'s state, ' +
      'not a worker\'s. It is bound with `bind`, before `Listening at:`: a port in use (a server that is ' +
      'still stopping) is tried 5 times, 1 s apart, as a `bind` port is, then stops the start; one of the ' +
      'app\'s own addresses is refused at once. A `unix:` ' +
      'socket file that a master killed without its exit left behind is replaced; one another server answers ' +
      'on stops the start.',
  }),
  metrics: boolSetting({
    key: 'metrics',
    section,
    flags: ['--metrics'],
    default: false,
    short: 'Answer `GET /metrics` on the health endpoint (--health-bind) with Prometheus metrics, from the master.',
    doc:
      'Prometheus\'s text format (0.0.4): requests by method and status code, a request duration histogram, ' +
      'requests in flight, workers wanted and serving, worker exits by reason, each worker slot\'s RSS and CPU ' +
      'time, the master\'s own process (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ' +
      '`process_open_fds`... as Prometheus\'s client libraries name them), and on Linux each TCP listener\'s accept queue. The master answers, so a ' +
      'scrape works while every worker is busy; it asks the workers for their counts and waits at most 1 s for ' +
      'them (a worker that does not answer in time counts with what it last sent). Counters never go down while ' +
      'the master runs: an exited worker\'s counts are kept. Needs `healthBind` (`--health-bind`): it is served on that socket, ' +
      'the master\'s own, where a probe and a scraper already reach the server; keep it off the open internet. ' +
      'Off: nothing is counted. The metric list is in docs/operations.md.',
  }),
  shutdownDelay: numberSetting({
    key: 'shutdownDelay',
    section,
    flags: ['--shutdown-delay'],
    metavar: 'SECONDS',
    default: 0,
    short: 'On TERM, keep serving this long (reporting not ready) before the graceful stop begins.',
    doc:
      'Gives load balancers and Kubernetes time to stop sending new connections before the listening sockets ' +
      'close. Make `terminationGracePeriodSeconds` at least this plus `graceful_timeout`.',
  }),
  controlSocket: stringSetting<string | null>({
    key: 'controlSocket',
    gunicorn: 'control_socket',
    section,
    flags: ['--control-socket'],
    metavar: 'PATH',
    default: null,
    check: (v) => {
      if (v === null) return undefined;
      if (v === '' || v.includes('\0')) return 'expected the path of a Unix socket file';
      if (Buffer.byteLength(v) > UNIX_PATH_MAX) return `the path is longer than ${UNIX_PATH_MAX} bytes, the most a Unix socket path may be`;
      return undefined;
    },
    short: 'Serve the control interface (`tunicornc -s PATH`) on this Unix socket, from the master.',
    doc:
      'Commands: `show workers|stats|config|listeners|all`, `worker add|remove [N]`, `worker kill PID`, ' +
      '`reload`, `reopen`, `shutdown [graceful|quick]` (docs/operations.md, "Control socket"). A relative path ' +
      'is taken from the directory the server runs in (after `--chdir`). Off by default, unlike Gunicorn 25, ' +
      'which turns it on at one path per user (`$XDG_RUNTIME_DIR/gunicorn.ctl`, else `$HOME/.gunicorn/gunicorn.ctl`): ' +
      'two servers of one user (and the many a test suite or CI starts) would want one file, and a command ' +
      'meant for one could reach the other. Set a path per server. A file left ' +
      'by a master that crashed (nobody answers on it) is replaced; one another process answers on is left ' +
      'alone, and the server starts without a control socket, with a warning. So does any other failure to ' +
      'make it: the control socket never stops the server from starting. It is removed at exit.',
  }),
  controlSocketMode: modeSetting({
    key: 'controlSocketMode',
    gunicorn: 'control_socket_mode',
    section,
    flags: ['--control-socket-mode'],
    metavar: 'MODE',
    default: '0600',
    short: 'The file mode of the control socket (octal), set whatever the umask.',
    doc:
      'Whoever may write to the socket may stop the server or change its workers. The socket belongs to the ' +
      'master\'s user (root, if it started as root: `--user` and `--group` only change the workers). With ' +
      '`0600` only that user (and root) can connect; `0660` lets the socket\'s group in too. The directory ' +
      'must let them reach it.',
  }),
  controlSocketDisable: boolSetting({
    key: 'controlSocketDisable',
    gunicorn: 'control_socket_disable',
    section,
    flags: ['--no-control-socket'],
    default: false,
    short: 'No control socket, even if the config file sets `controlSocket`.',
    doc: 'For a second server started with a config file that names a control socket already in use.',
  }),
  reload: boolSetting({
    key: 'reload',
    gunicorn: 'reload',
    section,
    flags: ['--reload'],
    default: false,
    short: 'Development: restart the workers gracefully when a file of the app changes.',
    doc:
      'Watches every file the app imported (its import graph, the packages in node_modules included, as ' +
      'Gunicorn watches site-packages), the config file, and `--reload-extra-file` globs. A change to the config ' +
      'file reads the configuration again, as HUP; any other change restarts the workers. When the new code ' +
      'fails to load, the master stays up, logs the error with file and line, and answers requests with a 500 ' +
      'page that shows it until the code is fixed (writing a missing module, or installing a missing package, ' +
      'is a fix too). Not for production.',
  }),
  reloadExtraFile: listSetting({
    key: 'reloadExtraFile',
    gunicorn: 'reload_extra_files',
    section,
    flags: ['--reload-extra-file'],
    metavar: 'GLOB',
    default: [],
    short: 'With --reload, also watch files matching this glob (repeatable).',
    doc:
      'For files the app reads but does not import: templates, JSON, `.env`. Relative to the directory tunicorn runs in. ' +
      '`*` and `?` match within a folder name, `**` across folders; folders made later are watched too (a glob\'s ' +
      'own folder as well, when it does not exist at the start), node_modules and dot folders are not looked into. ' +
      'Without `--reload` nothing is watched, and the start says so in a warning.',
  }),
};
