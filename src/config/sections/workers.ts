import { numberSetting } from '../setting.js';

const section = 'Worker requests';

/** What tunicorn adds to Gunicorn's worker model: a per-request deadline. */
export const workerSettings = {
  requestDeadline: numberSetting({
    key: 'requestDeadline',
    section,
    flags: ['--request-deadline'],
    metavar: 'SECONDS',
    default: 0,
    short: 'Answer 503 to a request still running after this many seconds (0: off).',
    doc:
      'A request timeout, which Gunicorn\'s `timeout` is not. A request still running after that long is ' +
      'answered `503 Service Unavailable` if nothing was sent yet (else its connection is cut); the app is ' +
      'told (a Fetch handler\'s `request.signal` aborts, the Node request emits `close`), and the error log ' +
      'names the method, path and time. Later writes by the app are ignored. The worker goes on serving: ' +
      'only a blocked event loop (`timeout`) kills a worker. An event stream (server-sent events) or a long ' +
      'poll is a request too, and is cut at the deadline (an `EventSource` then reconnects): set it above the ' +
      'longest stream or poll the app keeps open. A WebSocket is not: once upgraded, its connection is the ' +
      'app\'s, and no deadline applies. It is also what bounds a response to a client that stops reading (one ' +
      'that half-closed after its request included): nothing else cuts a response still being written. A ' +
      'sweep looks for such requests every 0.5 s (or every request_deadline, if shorter), so one is answered ' +
      'between request_deadline and that + 0.5 s after it began; a request costs no timer.',
  }),
};
