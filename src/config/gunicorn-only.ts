/**
 * Gunicorn's settings that tunicorn does not have, each with why and what to do instead. A Gunicorn user's
 * `--daemon` or `tmp_upload_dir` then gets that sentence rather than "unknown option", and docs/settings.md
 * lists them all (generated from this table).
 */
export interface GunicornOnly {
  /** Gunicorn's flags for it (none for config-only settings). */
  readonly flags: readonly string[];
  readonly why: string;
}

const PARSER = "requests are parsed by Node's llhttp, strict by design, with tunicorn's own checks on top (docs/security.md); there is no switch to loosen them";
const SYSLOG = 'there is no syslog client: log to stderr (the default) and let journald or the container runtime collect it';
const LOGGING =
  "Python's logging configuration: tunicorn's logs are set with --error-logfile, --access-logfile, --access-logformat and --log-level; for JSON lines (a JSON formatter in logconfig_dict), --log-format json";
const PYTHON_TLS = "a switch of Python's ssl module, which Node's TLS does not have";
const UWSGI = 'the uWSGI binary protocol (nginx uwsgi_pass) is not spoken: proxy with HTTP (nginx proxy_pass) instead';
const HTTP2 = "Node's HTTP/2 (nghttp2) settings are its defaults: tunicorn offers HTTP/2 with --http-protocols, with no tuning of its own";
const DIRTY = "Gunicorn 25's dirty arbiters (a separate pool for long blocking work) do not exist here: run such work in a worker_threads pool or a service of its own";

export const GUNICORN_ONLY: Readonly<Record<string, GunicornOnly>> = {
  daemon: { flags: ['-D', '--daemon'], why: 'Node cannot fork a running process: run tunicorn under systemd (examples/systemd/), a container or another supervisor, which also restarts it' },
  enable_stdio_inheritance: { flags: ['-R', '--enable-stdio-inheritance'], why: "the workers always inherit the master's stdout and stderr" },
  logger_class: { flags: ['--logger-class'], why: LOGGING },
  logconfig: { flags: ['--log-config'], why: LOGGING },
  logconfig_dict: { flags: ['--log-config-dict'], why: LOGGING },
  logconfig_json: { flags: ['--log-config-json'], why: LOGGING },
  syslog: { flags: ['--log-syslog'], why: SYSLOG },
  syslog_addr: { flags: ['--log-syslog-to'], why: SYSLOG },
  syslog_prefix: { flags: ['--log-syslog-prefix'], why: SYSLOG },
  syslog_facility: { flags: ['--log-syslog-facility'], why: SYSLOG },
  disable_redirect_access_to_syslog: { flags: ['--disable-redirect-access-to-syslog'], why: SYSLOG },
  pythonpath: {
    flags: ['--pythonpath'],
    why: 'Python\'s import path: Node resolves modules from the importing file\'s folder up (node_modules); NODE_PATH adds folders for TypeScript and CommonJS apps, not for JavaScript ES modules (.mjs, or .js under "type": "module"), which take a package.json "imports" map or a workspace instead',
  },
  paste: { flags: ['--paste', '--paster'], why: 'PasteDeploy is Python\'s: give the app as the APP argument' },
  raw_paste_global_conf: { flags: ['--paste-global'], why: 'PasteDeploy is Python\'s: give the app as the APP argument' },
  wsgi_app: { flags: [], why: 'give the app as the APP argument' },
  pre_exec: { flags: [], why: 'the new master of a USR2 upgrade is a new process, not an exec: its own config file runs, and its onStarting hook' },
  ssl_context: { flags: [], why: 'Python\'s SSLContext: use --certfile, --keyfile, --ca-certs, --cert-reqs and --ciphers, or export an https.Server the app makes' },
  ssl_version: { flags: ['--ssl-version'], why: 'deprecated in Gunicorn too: Node negotiates TLS 1.2 or 1.3 (NODE_OPTIONS=--tls-min-v1.3 requires 1.3)' },
  suppress_ragged_eofs: { flags: ['--suppress-ragged-eofs'], why: PYTHON_TLS },
  do_handshake_on_connect: { flags: ['--do-handshake-on-connect'], why: PYTHON_TLS },
  permit_obsolete_folding: { flags: ['--permit-obsolete-folding'], why: PARSER },
  strip_header_spaces: { flags: ['--strip-header-spaces'], why: PARSER },
  permit_unconventional_http_method: { flags: ['--permit-unconventional-http-method'], why: PARSER },
  permit_unconventional_http_version: { flags: ['--permit-unconventional-http-version'], why: PARSER },
  casefold_http_method: { flags: ['--casefold-http-method'], why: PARSER },
  header_map: { flags: ['--header-map'], why: PARSER },
  tolerate_dangerous_framing: { flags: ['--tolerate-dangerous-framing'], why: `Gunicorn 22's, removed in 23: ${PARSER}` },
  forwarder_headers: { flags: ['--forwarder-headers'], why: 'tunicorn strips and applies the forwarding headers itself: see secureSchemeHeaders, forwardedAllowIps and docs/security.md' },
  reload_engine: { flags: ['--reload-engine'], why: '--reload has one engine, Node\'s file watching' },
  spew: { flags: ['--spew'], why: 'a Python trace: use Node\'s inspector or --cpu-prof (README, "Node options")' },
  sendfile: {
    flags: ['--no-sendfile'],
    // Checked with strace: a file piped to a response and HTTP/2's respondWithFile make pread64/read and
    // writev calls, no sendfile.
    why: 'tunicorn never uses sendfile(2) (Node reads a file and writes its bytes to the socket, a stream piped to a response or Express\'s sendFile alike), which is what --no-sendfile asks for: drop it',
  },
  reuse_port: { flags: ['--reuse-port'], why: 'Node 20 cannot set SO_REUSEPORT; the workers share the master\'s socket, measured as fast (docs/design.md)' },
  default_proc_name: { flags: [], why: 'set internally by Gunicorn: --name sets the process titles' },
  tmp_upload_dir: { flags: [], why: 'Python\'s WSGI upload buffering: the app reads a request body as a stream and decides where it goes' },
  protocol: { flags: ['--protocol'], why: UWSGI },
  uwsgi_allow_ips: { flags: ['--uwsgi-allow-from'], why: UWSGI },
  root_path: { flags: ['--root-path'], why: 'the ASGI scope\'s mount point: a Node app mounted under a prefix sets it in its own router (Express\'s app.use(\'/api\', ...))' },
  asgi_loop: { flags: ['--asgi-loop'], why: 'Python\'s asyncio or uvloop for Gunicorn\'s asgi worker: a Node app runs on Node\'s own event loop' },
  asgi_lifespan: { flags: ['--asgi-lifespan'], why: 'for Gunicorn\'s asgi worker: export startup and shutdown functions next to the app (README, "Lifespan")' },
  http2_max_concurrent_streams: { flags: ['--http2-max-concurrent-streams'], why: HTTP2 },
  http2_initial_window_size: { flags: ['--http2-initial-window-size'], why: HTTP2 },
  http2_max_frame_size: { flags: ['--http2-max-frame-size'], why: HTTP2 },
  http2_max_header_list_size: { flags: ['--http2-max-header-list-size'], why: `${HTTP2}; tunicorn advertises one derived from the limit_request_* settings (docs/security.md)` },
  dirty_apps: { flags: ['--dirty-app'], why: DIRTY },
  dirty_workers: { flags: ['--dirty-workers'], why: DIRTY },
  dirty_timeout: { flags: ['--dirty-timeout'], why: DIRTY },
  dirty_threads: { flags: ['--dirty-threads'], why: DIRTY },
  dirty_graceful_timeout: { flags: ['--dirty-graceful-timeout'], why: DIRTY },
  on_dirty_starting: { flags: [], why: DIRTY },
  dirty_post_fork: { flags: [], why: DIRTY },
  dirty_worker_init: { flags: [], why: DIRTY },
  dirty_worker_exit: { flags: [], why: DIRTY },
};

const byFlag = new Map<string, string>();
for (const [name, g] of Object.entries(GUNICORN_ONLY)) for (const f of g.flags) byFlag.set(f, name);

/** Why Gunicorn's `flag` is not tunicorn's, or undefined when it is not one of Gunicorn's. */
export function gunicornOnlyFlag(flag: string): string | undefined {
  const name = byFlag.get(flag);
  return name ? `${flag} is Gunicorn's ${name}, which tunicorn does not have: ${GUNICORN_ONLY[name]!.why}` : undefined;
}

/**
 * The same for a config-file key, in Gunicorn's spelling or in camelCase (`worker_tmp_dir`, `workerTmpDir`);
 * `where`: " in FILE", or empty.
 */
export function gunicornOnlyKey(key: string, where: string): string | undefined {
  const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  const g = GUNICORN_ONLY[snake];
  return g ? `setting "${key}"${where} is Gunicorn's ${snake}, which tunicorn does not have: ${g.why}` : undefined;
}
