import { parseAddress } from '../../listeners/address.js';
import { boolSetting, listSetting, numberSetting, stringSetting } from '../setting.js';

const section = 'Operations';

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
      'not a worker\'s.',
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
  reload: boolSetting({
    key: 'reload',
    gunicorn: 'reload',
    section,
    flags: ['--reload'],
    default: false,
    short: 'Development: restart the workers gracefully when a file of the app changes.',
    doc:
      'Watches every file the app imported (its import graph) plus `--reload-extra-file` globs. When the ' +
      'new code fails to load, the master stays up, logs the error with file and line, and answers ' +
      'requests with a 500 page that shows it until the code is fixed. Not for production.',
  }),
  reloadExtraFile: listSetting({
    key: 'reloadExtraFile',
    gunicorn: 'reload_extra_files',
    section,
    flags: ['--reload-extra-file'],
    metavar: 'GLOB',
    default: [],
    short: 'With --reload, also watch files matching this glob (repeatable).',
    doc: 'For files the app reads but does not import: templates, JSON, `.env`. Relative to the directory tunicorn runs in.',
  }),
};
