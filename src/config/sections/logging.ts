import { accessFormatProblem } from '../../logging/access-format.js';
import type { LogFormat } from '../../logging/json-line.js';
import { parseStatsdHost, prefixProblem, tagsProblem } from '../../logging/statsd-lines.js';
import { boolSetting, choiceSetting, stringSetting } from '../setting.js';

const section = 'Logging';

export const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'critical'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['text', 'json'] as const satisfies readonly LogFormat[];

/** Gunicorn's default access log format. */
export const DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"';

export const logging = {
  errorlog: stringSetting<string>({
    key: 'errorlog',
    gunicorn: 'errorlog',
    section,
    flags: ['--error-logfile', '--log-file'],
    metavar: 'FILE',
    default: '-',
    check: (v) => (v === '' ? 'an empty path; give a file, or - for stderr' : undefined),
    short: 'The error log file; "-" is stderr.',
    doc:
      'Lines read `[TIME] [PID] [LEVEL] message` (one JSON object each with `logFormat` json). The master and ' +
      'every worker append to it; USR1 reopens ' +
      'it (for logrotate). `/dev/stderr` and `/dev/stdout` (and their `/dev/fd/N`, `/proc/self/fd/N` ' +
      'spellings) are written as "-" is, through the descriptor the process has: opened again by path, a ' +
      'socket (what systemd\'s journal gives a service) cannot be. The config key `logfile` (the seed\'s ' +
      'spelling) is accepted too.',
  }),
  captureOutput: boolSetting({
    key: 'captureOutput',
    gunicorn: 'capture_output',
    section,
    flags: ['--capture-output'],
    default: false,
    short: "Send the app's stdout and stderr to the error log file.",
    doc:
      'What the workers (and the master, with --preload or from a hook) write to stdout and stderr from ' +
      'JavaScript (`console.log`, `console.error`, `process.stdout.write`, a gthread thread\'s output) is ' +
      'appended to the `errorlog` file as it is, byte for byte (a Buffer is not decoded; a string given with ' +
      'an encoding is encoded by it), and follows it through a USR1 reopen. With `errorlog` "-" ' +
      'it changes nothing (a warning says so). Output written below JavaScript, by a native addon or by ' +
      'Node itself on a fatal error, still goes to the inherited stdout and stderr. With `logFormat` json, ' +
      'each write is a JSON line of its own (see `logFormat`), in the error log wherever it is, stderr too: ' +
      'the app\'s output then never breaks the JSON lines there.',
  }),
  loglevel: choiceSetting({
    key: 'loglevel',
    gunicorn: 'loglevel',
    section,
    flags: ['--log-level'],
    metavar: 'LEVEL',
    choices: LOG_LEVELS,
    default: 'info' as LogLevel,
    short: 'The error log level: debug, info, warning, error or critical.',
    doc: 'The access log has no level: it is on when `accesslog` is set.',
  }),
  logFormat: choiceSetting({
    key: 'logFormat',
    section,
    flags: ['--log-format'],
    metavar: 'FORMAT',
    choices: LOG_FORMATS,
    default: 'text' as LogFormat,
    short: 'How both logs write their lines: text (Gunicorn\'s) or json (one JSON object a line).',
    doc:
      '`json` is for log pipelines (Loki, Datadog, Elasticsearch, CloudWatch), in place of Gunicorn\'s ' +
      '`logconfig_dict` with a JSON formatter. The error log\'s lines read ' +
      '`{"time":"2026-12-06T06:01:02.123Z","level":"info","pid":41,"role":"master","msg":"..."}`: time in ISO 8601 ' +
      '(UTC), the level as `--log-level` names it, the writer\'s pid and role (`master` or `worker`), then the ' +
      'fields the line has (`worker_pid` in the master\'s lines about a worker, `thread` in a gthread thread\'s), ' +
      'and for an error with its stack pino\'s `err` field, `{"type","message","stack"}`: never a second line. ' +
      'The names are pino\'s, so a pipeline made for pino\'s lines reads them (its levels are numbers by ' +
      'default, words here). With the default `access_log_format` the access log\'s lines are JSON with named ' +
      'fields; another `access_log_format` is a JSON template whose atoms are written JSON-escaped. ' +
      '`--capture-output` writes each write of the app as a line of its own (`"stream":"stdout"` at level ' +
      '`info`, `"stderr"` at `error`). Every field is valid UTF-8 whatever bytes a client sent. The start\'s ' +
      'own refusals (a bad option: `tunicorn: error: ...`, before the config is read) stay text. An access ' +
      'line is compiled once and stored whole in the log\'s buffer, as a text line is: about 5.4 k instructions ' +
      'for the default fields, against 3.6 k for Gunicorn\'s text line, which is a quarter as long ' +
      '(docs/design.md, "Logs"). See docs/operations.md, "JSON logs".',
  }),
  accesslog: stringSetting<string | null>({
    key: 'accesslog',
    gunicorn: 'accesslog',
    section,
    flags: ['--access-logfile'],
    metavar: 'FILE',
    default: null,
    short: 'The access log file; "-" is stdout. Off by default.',
    doc:
      'Each worker appends one line per response, formatted by `access_log_format`, written in batches at most ' +
      '20 ms apart (and on exit; a worker killed, by `timeout` or SIGKILL, loses the lines of its last 20 ms). ' +
      'USR1 reopens it; `/dev/stdout` is written as "-" is (see `errorlog`). The request line and headers are ' +
      'written as the bytes the ' +
      'client sent (UTF-8 in a header stays UTF-8); the format\'s own text and `{name}e` values as UTF-8. An ' +
      'upgrade (WebSocket) or CONNECT request, which the app answers on the socket itself, gets its line when ' +
      'that connection closes (or the worker exits), as Gunicorn logs one when its handler returns: the status ' +
      'the app wrote (101 when it accepted; `-` when it wrote none), the connection\'s whole life as its time. ' +
      'A request tunicorn answers itself, before the app sees it, has its line (and its StatsD count) too, with ' +
      'the status and the body bytes sent: a limit (414, 431), a malformed request (400), a bad or missing ' +
      '`Host` (400), an unsupported version (505), an `Expect` other than 100-continue (417), header_timeout ' +
      '(408). One whose head was never parsed (Node\'s parser failed on it, its first line was refused, or it ' +
      'did not come within header_timeout) has `-` for its request line, method, path, version and headers, ' +
      'and a time of 0; Gunicorn logs only those whose request line it parsed. A connection closed with no ' +
      'answer (a PROXY protocol header refused, an HTTP/2 stream reset for its header list) gets no line.',
  }),
  accessLogFormat: stringSetting<string>({
    key: 'accessLogFormat',
    gunicorn: 'access_log_format',
    section,
    flags: ['--access-logformat'],
    metavar: 'STRING',
    default: DEFAULT_ACCESS_LOG_FORMAT,
    check: accessFormatProblem,
    short: 'The access log format, with Gunicorn\'s atoms.',
    doc:
      'Atoms: `h` remote address, `l` `-`, `u` user (basic auth) or `-`, `t` time `[10/Oct/2026:13:55:36 ' +
      '+0000]`, `r` request line, `m` method, `U` path (as sent, percent-encoded: Gunicorn\'s is decoded; of an absolute-form target, `GET http://host/p`, the path alone, as Gunicorn\'s PATH_INFO), `q` query string (without a fragment), `H` protocol, `s` status (`-` when none was sent: the client left, or the connection was cut, before the answer; not nginx\'s 499, a status no client got), `B` / `b` ' +
      'the body bytes sent, as Gunicorn counts them (the Content-Length, or for a streamed body, chunked or ' +
      'HTTP/2, the bytes the app wrote; 0 for none, as for HEAD, 204 and 304 whatever their Content-Length ' +
      'says, and `b` is `-` when unknown, as for a Content-Length the app set that is not digits; a response cut short, its client gone, counts the bytes the app had ' +
      'written when it was cut, as Gunicorn counts what it was writing: those still in the socket\'s buffers ' +
      'count though the client never got them, and a body given whole to one `end()` counts its length), `f` referer, `a` user ' +
      'agent, `T` seconds, `M` ' +
      'milliseconds, `D` microseconds (whole units of one time, truncated as Gunicorn\'s), `L` seconds with ' +
      'decimals (the time from the request reaching the app until its response closed: reading its body, an ' +
      'event stream\'s whole life, and under async a pipelined request\'s wait for the responses before it on ' +
      'its connection; under gthread that wait comes before, in `Q`), `p` the worker\'s pid as `<PID>`, ' +
      '`{name}i` a request header (a repeated one as Node\'s `req.headers` has it: its values joined with `, `, ' +
      'Cookie\'s with `; `, and only the first of those Node keeps once, such as User-Agent, Referer, Authorization), ' +
      '`{name}o` a response header, `{name}e` an environment variable; and one Gunicorn lacks, `Q`, the queue ' +
      'time in milliseconds (from the worker accepting the connection, or a proxy\'s `X-Request-Start`, to the ' +
      'request reaching the app). Written `%(h)s`; `%%` is a `%`. An unknown atom, or one written otherwise ' +
      '(`%(D)d`, `%(h)15s`: Gunicorn\'s Python formatting reads those, tunicorn does not), stops the start (or a ' +
      'HUP) with one line. Values the client, the app or the environment gave (every atom but the time, the ' +
      'status, the sizes and durations, and `p`) are escaped: `"` as `\\"` (as Gunicorn), `\\` as `\\\\` and a ' +
      'control character as `\\xHH` (as Apache), so that a header or a Basic user (any bytes, base64-encoded) ' +
      'cannot end a quoted field or the line, forge a line, or reach the terminal of whoever reads the log. ' +
      'A character past U+00FF, which only a value the app set can hold (a `req.url` it decoded in place), is ' +
      'written as its UTF-8 bytes. ' +
      '`u` reads the `Basic` scheme in any case, as Gunicorn. What a line costs: the format is compiled once into ' +
      'a function that stores the whole line in the log\'s buffer (about 3.6 k instructions for the default ' +
      'format; docs/design.md, "Logs"), and `h` asks the kernel for the client\'s address once a connection (one ' +
      'getpeername(2): the accept in Node\'s libuv drops it), a cost that shows where every request is a new connection.',
  }),
  statsdHost: stringSetting<string | null>({
    key: 'statsdHost',
    gunicorn: 'statsd_host',
    section,
    flags: ['--statsd-host'],
    metavar: 'HOST:PORT',
    default: null,
    check: (v) => {
      if (v === null) return undefined;
      const a = parseStatsdHost(v);
      return typeof a === 'string' ? a : undefined;
    },
    short: 'Send StatsD metrics over UDP to this address (HOST:PORT). Off by default.',
    doc:
      '`HOST:PORT`, `[IPv6]:PORT`, or a `HOST` alone for port 8125 (a number alone, `8125`, is refused: as a ' +
      'host it is the address 0.0.31.189); a host name is resolved once. Each worker ' +
      '(each gthread thread) sends, for every request the access log would have a line for, whether it is on ' +
      'or not: `gunicorn.request.duration` (milliseconds, `|ms`), `gunicorn.requests` and ' +
      '`gunicorn.request.status.CODE` (counters, `|c|@1.0`). The master sends `gunicorn.workers` (a gauge) ' +
      'when the number of its workers changes. Every process counts its error-log lines, whatever ' +
      '`loglevel` lets through: `gunicorn.log.warning`, `gunicorn.log.error`, `gunicorn.log.critical` and ' +
      '`gunicorn.log.exception` (an error with its stack). Lines are sent together, several to a datagram of ' +
      'at most 1,400 bytes, at most 100 ms after the first, and on exit; a counter is summed over that time ' +
      '(`gunicorn.requests:42`, where Gunicorn sends 42 datagrams of 1). A send that fails (nothing listens: ' +
      'ECONNREFUSED) is dropped and counted; each process says so once in the error log, and serves on. ' +
      "Gunicorn's `unix://PATH` is refused: Node has no Unix datagram sockets. See docs/operations.md.",
  }),
  statsdPrefix: stringSetting<string>({
    key: 'statsdPrefix',
    gunicorn: 'statsd_prefix',
    section,
    flags: ['--statsd-prefix'],
    metavar: 'PREFIX',
    default: '',
    defaultDoc: 'none',
    check: prefixProblem,
    short: 'Put this before the name of every StatsD metric; a "." is added if it has none.',
    doc: '`--statsd-prefix service.app` sends `service.app.gunicorn.requests`. Several dots at its end are one.',
  }),
  dogstatsdTags: stringSetting<string>({
    key: 'dogstatsdTags',
    gunicorn: 'dogstatsd_tags',
    section,
    flags: ['--dogstatsd-tags'],
    metavar: 'TAGS',
    default: '',
    defaultDoc: 'none',
    check: tagsProblem,
    short: 'Comma-separated DogStatsD tags (KEY:VALUE or TAG) added to every StatsD line.',
    doc: '`--dogstatsd-tags env:prod,web` ends every line with `|#env:prod,web` (Datadog\'s format). Spaces around the commas are dropped.',
  }),
};
