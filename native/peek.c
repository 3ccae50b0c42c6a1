/*
 * Descriptor helpers that Node lacks (src/http/peek.ts): a connection's first bytes, read at once or looked at
 * without reading them; dup(2) of a listening socket, for a worker that pauses accepting; and a connection's
 * peer address as a plain string, for the access log.
 *
 * The connection gate checks the first request line of every plain-HTTP connection as it is accepted.
 * exports.openRead(size) returns a function read(fd) that reads what the kernel holds for a socket (recv(2),
 * without waiting) into a buffer: the gate hands a whole, valid first chunk to Node's parser at once, so the
 * first request is answered without the event loop first waiting for the socket to become readable. Reading it
 * through Node's stream instead costs that wait, a read callback and the stream's machinery.
 * exports.open(size) returns a function peek(fd) that copies the same bytes but leaves them in the kernel
 * (MSG_PEEK): a gthread worker looks at the idle connections of a stuck thread this way before handing them
 * to another worker, which then reads them as its own.
 *
 * Each function has the ArrayBuffer it fills as its `buffer` property, and returns the number of bytes copied
 * (0 once the peer has closed), or -errno (-EAGAIN: nothing has arrived yet). Each call of open or openRead
 * makes its own buffer, so the threads of a gthread worker never share one.
 *
 * Built like watchdog.c (scripts/build-native.mjs), with the Node-API declarations of napi.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "napi.h"

/* The largest buffer open() makes: a request line longer than that is read through JavaScript instead. */
#define MAX_SIZE (64 * 1024)

struct area {
  uint8_t *data;
  size_t size;
  /* MSG_PEEK for a look, 0 for a read. */
  int flags;
};

/* The descriptor a function was called with, and the data it was made with; -1 (an error thrown) if none. */
static int32_t fd_arg(napi_env env, napi_callback_info info, void **data, const char *usage) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, data) != 0 || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != 0 || fd < 0) {
    napi_throw_error(env, NULL, usage);
    return -1;
  }
  return fd;
}

static napi_value first_bytes(napi_env env, napi_callback_info info) {
  void *data = NULL;
  napi_value result;
  int32_t fd = fd_arg(env, info, &data, "peek(fd), read(fd): fd must be an open descriptor");
  if (fd < 0) return NULL;
  const struct area *a = data;
  ssize_t n = recv(fd, a->data, a->size, a->flags | MSG_DONTWAIT);
  napi_create_int32(env, n < 0 ? -errno : (int32_t)n, &result);
  return result;
}

/* open(size) and openRead(size): a function of one descriptor over a buffer of its own (see above). */
static napi_value open_area(napi_env env, napi_callback_info info, int flags) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t size = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc < 1 ||
      napi_get_value_int32(env, argv[0], &size) != 0 || size <= 0 || size > MAX_SIZE) {
    napi_throw_error(env, NULL, "open(size), openRead(size): size must be 1 to 65536");
    return NULL;
  }
  /* A few bytes per function, for the life of the process (or thread): the function keeps pointing at them. */
  struct area *a = malloc(sizeof *a);
  if (!a) {
    napi_throw_error(env, NULL, "open(size), openRead(size): out of memory");
    return NULL;
  }
  napi_value buffer, fn;
  napi_ref ref;
  void *bytes = NULL;
  if (napi_create_arraybuffer(env, (size_t)size, &bytes, &buffer) != 0 ||
      napi_create_reference(env, buffer, 1, &ref) != 0 ||
      napi_create_function(env, flags ? "peek" : "read", 4, first_bytes, a, &fn) != 0 ||
      napi_set_named_property(env, fn, "buffer", buffer) != 0) {
    napi_throw_error(env, NULL, "open(size), openRead(size): could not make the buffer");
    return NULL;
  }
  a->data = bytes;
  a->size = (size_t)size;
  a->flags = flags;
  return fn;
}

static napi_value open_peek(napi_env env, napi_callback_info info) { return open_area(env, info, MSG_PEEK); }

static napi_value open_read(napi_env env, napi_callback_info info) { return open_area(env, info, 0); }

/*
 * exports.dup(fd): a new descriptor for the same open socket, close-on-exec (so a process the app spawns does
 * not inherit the listening socket), or -errno. A worker that stops accepting closes its listening descriptor
 * (libuv cannot stop accepting otherwise) and keeps a duplicate to listen on again, with no round trip to the
 * master for a new one (src/workers/leases.ts).
 */
static napi_value dup_fd(napi_env env, napi_callback_info info) {
  napi_value result;
  int32_t fd = fd_arg(env, info, NULL, "dup(fd): fd must be an open descriptor");
  if (fd < 0) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  napi_create_int32(env, copy < 0 ? -errno : copy, &result);
  return result;
}

/*
 * Dotted decimal, as inet_ntop writes it: glibc's goes through sprintf, about half a microsecond a call in
 * profiles of Connection: close load with the access log on.
 */
static const char *ipv4_text(const struct in_addr *a, char *out) {
  const uint8_t *b = (const uint8_t *)&a->s_addr;
  char *p = out;
  for (int i = 0; i < 4; i++) {
    unsigned v = b[i];
    if (v >= 100) *p++ = (char)('0' + v / 100);
    if (v >= 10) *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    *p++ = i < 3 ? '.' : '\0';
  }
  return out;
}

/*
 * exports.peer(fd): a connection's peer address as text ("127.0.0.1", "::1"), or undefined (closed, not an
 * IP socket). Node's `socket.remoteAddress` does the same getpeername(2) but hands the answer over as an
 * object whose three properties are set from C++, and caches it as a property added to the socket (a map
 * transition of every socket): about 11 us of CPU per connection on a plain node:http server (measured at
 * Connection: close load). The access log's %(h)s reads it for every connection (src/http/forwarded.ts).
 */
static napi_value peer_address(napi_env env, napi_callback_info info) {
  napi_value result;
  int32_t fd = fd_arg(env, info, NULL, "peer(fd): fd must be an open descriptor");
  if (fd < 0) return NULL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char text[INET6_ADDRSTRLEN];
  const char *s = NULL;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET)
      s = ipv4_text(&((struct sockaddr_in *)&ss)->sin_addr, text);
    else if (ss.ss_family == AF_INET6)
      s = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof text);
  }
  if (s == NULL) napi_get_undefined(env, &result);
  else napi_create_string_latin1(env, s, NAPI_AUTO_LENGTH, &result);
  return result;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "open", 4, open_peek, NULL, &fn) == 0)
    napi_set_named_property(env, exports, "open", fn);
  if (napi_create_function(env, "openRead", 8, open_read, NULL, &fn) == 0)
    napi_set_named_property(env, exports, "openRead", fn);
  if (napi_create_function(env, "dup", 3, dup_fd, NULL, &fn) == 0)
    napi_set_named_property(env, exports, "dup", fn);
  if (napi_create_function(env, "peer", 4, peer_address, NULL, &fn) == 0)
    napi_set_named_property(env, exports, "peer", fn);
  return exports;
}
