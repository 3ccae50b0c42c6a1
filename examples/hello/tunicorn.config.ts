// The seed's gun.py, as a typed tunicorn config: `tunicorn -c examples/hello/tunicorn.config.ts examples/hello/app.ts`.
import { defineConfig } from 'tunicorn';

export default defineConfig({
  bind: ['127.0.0.1:8090'], // gun.py: bind = '0.0.0.0:8090' (loopback here; use 0.0.0.0 behind a proxy)
  workers: 1, // gun.py: workers = 1
  threads: 5, // gun.py: threads = 5 (selects the gthread worker class, as in Gunicorn)
  timeout: 30, // gun.py: timeout = 30 (commented out there; the default)
  backlog: 2048, // gun.py: backlog = 2048
  workerClass: 'gthread', // gun.py: worker_class = 'gevent'; async is tunicorn's gevent, gthread goes with threads
  procName: 'hello', // gun.py: proc_name
  pidfile: '/tmp/tunicorn-hello.pid', // gun.py: pidfile
  errorlog: '-', // gun.py: logfile = '/var/log/gunicorn/debug.log' ("-" is stderr)
  loglevel: 'debug', // gun.py: loglevel = 'debug'
});
