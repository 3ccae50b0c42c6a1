/*
 * The stall watcher of a worker process, as a plain POSIX thread (see src/workers/watchdog.ts).
 *
 * The worker's main thread counts heartbeats and writes the requests it is running into a buffer this
 * module made; this thread reads the counter every `pollMs` (watchPollMs in watchdog.ts: half the stall it
 * watches for, at most once a second; while the worker idles, once a beat period of the main thread's, which it
 * sets in the word after the counter) and, while it stands still, writes the running
 * requests to the master as one JSON line on the report descriptor. A period of -1 there means the main thread
 * does not beat while the master lives (`timeout` 0, where only an orphan's stall matters): this thread then
 * sleeps in poll() on the report descriptor until the master's end of it closes, and from then on reads the
 * counter, which the main thread beats again from its 'disconnect'. It does what the worker-thread watcher
 * (watchdog-thread.ts) does, without a second V8 isolate: about 9 MB less per worker.
 *
 * Built by scripts/build-native.mjs with the system's C compiler and nothing else: the Node-API calls it
 * makes are declared in napi.h, so neither node-gyp nor Node's headers are needed.
 */
/* pthread_setname_np (glibc, musl). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "napi.h"

/* The least time between two reports of one stall. */
#define REPORT_EVERY_MS 500
/* Requests named in one report, longest running first. */
#define REPORTED 5

struct watch {
  int fd;
  int stall_ms;
  /* How often the counter is read. */
  int poll_ms;
  int slots;
  int text;
  /* The buffer's layout, as watchdog.ts writes it: the beat counter, then per slot a start time (ms since
     the epoch), a text length (0: free) and "METHOD URL". */
  const int32_t *beat;
  const double *starts;
  const int32_t *lens;
  const uint8_t *bytes;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

struct out {
  char *p;
  char *end;
};

static void put(struct out *o, const char *s, size_t n) {
  if ((size_t)(o->end - o->p) < n) n = (size_t)(o->end - o->p);
  memcpy(o->p, s, n);
  o->p += n;
}

static void put_str(struct out *o, const char *s) { put(o, s, strlen(s)); }

static void put_num(struct out *o, long long v) {
  char buf[24];
  int i = sizeof buf;
  int neg = v < 0;
  unsigned long long u = neg ? (unsigned long long)-v : (unsigned long long)v;
  do {
    buf[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u && i > 1);
  if (neg) buf[--i] = '-';
  put(o, buf + i, sizeof buf - (size_t)i);
}

/* A JSON string of raw request bytes: quotes, backslashes and control bytes escaped; bytes from 0x80 are
   left as they are (the master decodes the line as UTF-8, as the worker-thread watcher does). */
static void put_json(struct out *o, const uint8_t *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  put(o, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(o, e, 2);
    } else if (c < 0x20 || c == 0x7f) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(o, e, 6);
    } else {
      put(o, (const char *)&c, 1);
    }
  }
  put(o, "\"", 1);
}

/* The master is gone (killed, even by SIGKILL) while this worker's event loop is stuck: its 'disconnect'
   handler cannot run, and no master will ever time it out. Left alone it would be an orphan that holds the
   listening sockets (a restarted server cannot bind them) and, often, a CPU. It is killed, after one line on
   stderr, at the first stall report that finds the master gone (a stall of twice the heartbeat, at most 2 s):
   sooner than the master's timeout would have, since without a master the worker is leaving anyway (its
   'disconnect' handler gives it 5 s at most). */
static void master_gone(void) {
  char line[160];
  time_t t = time(NULL);
  struct tm tm;
  char when[40] = "";
  if (localtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &tm);
  int n = snprintf(line, sizeof line,
                   "[%s] [%d] [CRITICAL] Worker exiting: the master is gone and this worker's event loop is stuck\n",
                   when, (int)getpid());
  if (n > 0 && write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0) { /* no stderr */ }
  kill(getpid(), SIGKILL);
}

static void report(const struct watch *w, double stalled, double now) {
  int order[REPORTED];
  double ms[REPORTED];
  int found = 0;
  for (int i = 0; i < w->slots; i++) {
    if (__atomic_load_n(&w->lens[i], __ATOMIC_ACQUIRE) <= 0) continue;
    double t = now - w->starts[i];
    /* Insertion into the REPORTED longest so far. */
    int at = found < REPORTED ? found : REPORTED;
    while (at > 0 && ms[at - 1] < t) at--;
    if (at >= REPORTED) continue;
    int last = found < REPORTED ? found : REPORTED - 1;
    for (int k = last; k > at; k--) {
      order[k] = order[k - 1];
      ms[k] = ms[k - 1];
    }
    order[at] = i;
    ms[at] = t;
    if (found < REPORTED) found++;
  }
  static char buf[REPORTED * (256 * 6 + 64) + 64];
  struct out o = {buf, buf + sizeof buf - 2};
  put_str(&o, "{\"stalledMs\":");
  put_num(&o, (long long)stalled);
  put_str(&o, ",\"requests\":[");
  for (int k = 0; k < found; k++) {
    int i = order[k];
    int32_t n = __atomic_load_n(&w->lens[i], __ATOMIC_ACQUIRE);
    if (n <= 0) continue;
    if (n > w->text) n = w->text;
    const uint8_t *line = w->bytes + (size_t)i * (size_t)w->text;
    const uint8_t *sp = memchr(line, ' ', (size_t)n);
    size_t mlen = sp ? (size_t)(sp - line) : (size_t)n;
    if (k) put_str(&o, ",");
    put_str(&o, "{\"method\":");
    put_json(&o, line, mlen);
    put_str(&o, ",\"url\":");
    put_json(&o, sp ? sp + 1 : line + n, sp ? (size_t)n - mlen - 1 : 0);
    put_str(&o, ",\"ms\":");
    put_num(&o, (long long)ms[k]);
    put_str(&o, "}");
  }
  put_str(&o, "]}");
  *o.p++ = '\n';
  /* The master not reading (EAGAIN): the report is dropped. The master gone (EPIPE): see master_gone. */
  for (const char *p = buf; p < o.p;) {
    ssize_t k = write(w->fd, p, (size_t)(o.p - p));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) master_gone();
    if (k <= 0) break;
    p += k;
  }
}

/* Until the master is gone: its end of the report socket closes when it exits, even by SIGKILL, which hangs
   up this one (POLLHUP; POLLERR for a pipe). Nothing is ever read from it here, nor written while the master
   lives. Returns 0 if poll() cannot wait on it: the caller then sleeps a period, and no stall can be called
   before the main thread beats again. */
static int until_master_gone(int fd) {
  for (;;) {
    struct pollfd p = {fd, 0, 0};
    int r = poll(&p, 1, -1);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
  }
}

static void *run(void *arg) {
  const struct watch *w = arg;
  int32_t last = __atomic_load_n(w->beat, __ATOMIC_ACQUIRE);
  double last_change = now_ms();
  double reported = 0;
  int gone = 0;
  for (;;) {
    /* The main thread's idle period (Watchdog.pace), 0 while it is busy: while it idles, the counter is read
       once a period and a stall is called after two. -1: no beats while the master lives (see the top). */
    int32_t idle = __atomic_load_n(w->beat + 1, __ATOMIC_ACQUIRE);
    if (idle < 0 && !gone) {
      if (until_master_gone(w->fd)) {
        gone = 1;
      } else {
        const struct timespec wait = {w->poll_ms / 1000, (long)(w->poll_ms % 1000) * 1000000L};
        nanosleep(&wait, NULL);
      }
      /* The main thread has stall_ms from now to beat, which its 'disconnect' does at once. */
      last = __atomic_load_n(w->beat, __ATOMIC_ACQUIRE);
      last_change = now_ms();
      continue;
    }
    if (idle < 0) idle = 0;
    int poll_ms = idle > w->poll_ms ? idle : w->poll_ms;
    const struct timespec poll = {poll_ms / 1000, (long)(poll_ms % 1000) * 1000000L};
    nanosleep(&poll, NULL);
    int32_t b = __atomic_load_n(w->beat, __ATOMIC_ACQUIRE);
    double now = now_ms();
    if (b != last) {
      last = b;
      last_change = now;
      continue;
    }
    idle = __atomic_load_n(w->beat + 1, __ATOMIC_ACQUIRE);
    if (idle < 0) idle = 0;
    double stall_ms = idle > 0 && 2.0 * idle > w->stall_ms ? 2.0 * idle : w->stall_ms;
    if (now - last_change < stall_ms || now - reported < REPORT_EVERY_MS) continue;
    reported = now;
    report(w, now - last_change, now);
  }
  return NULL;
}

/* start(reportFd, stallMs, pollMs, slots, textBytes): the buffer to write into; the watcher runs until the
   process exits. */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t fd, stall_ms, poll_ms, slots, text;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc < 5 ||
      napi_get_value_int32(env, argv[0], &fd) != 0 || napi_get_value_int32(env, argv[1], &stall_ms) != 0 ||
      napi_get_value_int32(env, argv[2], &poll_ms) != 0 || napi_get_value_int32(env, argv[3], &slots) != 0 ||
      napi_get_value_int32(env, argv[4], &text) != 0 || fd < 0 || poll_ms <= 0 || slots <= 0 || slots > 4096 ||
      text <= 0 || text > 256) {
    napi_throw_error(env, NULL, "start(reportFd, stallMs, pollMs, slots, textBytes): five non-negative integers");
    return NULL;
  }
  size_t size = 8 + (size_t)slots * (8 + 4 + (size_t)text);
  void *data;
  napi_value buffer;
  napi_ref keep;
  struct watch *w = calloc(1, sizeof *w);
  if (!w || napi_create_arraybuffer(env, size, &data, &buffer) != 0 ||
      napi_create_reference(env, buffer, 1, &keep) != 0) {
    free(w);
    napi_throw_error(env, NULL, "could not allocate the watchdog's buffer");
    return NULL;
  }
  /* The reference is never released: the buffer outlives every request, and V8 does not move it. */
  memset(data, 0, size);
  uint8_t *mem = data;
  *w = (struct watch){fd, stall_ms, poll_ms, slots, text, (const int32_t *)mem, (const double *)(mem + 8),
                      (const int32_t *)(mem + 8 + (size_t)slots * 8), mem + 8 + (size_t)slots * 12};
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int err = pthread_create(&thread, &attr, run, w);
  pthread_attr_destroy(&attr);
  if (err) {
    napi_throw_error(env, NULL, "could not start the watchdog thread");
    return NULL;
  }
#ifdef __linux__
  /* What `top -H` and `ps -L` show for it (at most 15 bytes), instead of the worker's title cut short. */
  pthread_setname_np(thread, "tunicorn watch");
#endif
  return buffer;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "start", 5, start, NULL, &fn) == 0) napi_set_named_property(env, exports, "start", fn);
  return exports;
}
