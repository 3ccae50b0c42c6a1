/*
 * The master's native module: what Node offers no call for.
 *
 * exports.reap(pid): waitpid(2) for one process, without waiting: a master that runs as PID 1 (a container
 * started without an init) reaps the orphans the kernel makes its children (src/arbiter/orphans.ts). Node has no
 * call for this: its event loop waits only for the processes it spawned.
 *
 * exports.reap(pid) returns the pid reaped, 0 when that process has not exited, or -errno (-ECHILD: not a
 * child of this process, or reaped already).
 *
 * exports.subreaper() makes this process a child subreaper (prctl(PR_SET_CHILD_SUBREAPER), Linux 3.4): the
 * orphans of the processes below it (a killed worker's children, a double fork's) are re-parented to it
 * instead of to init, so that the master can end what a worker left running. Returns 0, or -errno (-EINVAL
 * off Linux, where it is not built to do anything).
 *
 * exports.listen(fd, backlog) calls listen(2) on a socket the master bound (src/listeners/prime.ts): the socket
 * queues connections in its backlog from then on, and the master, whose libuv handle never started an accept
 * watcher, never accepts one. Returns 0, or -errno (-EADDRINUSE: another socket listens on that address).
 *
 * Built like watchdog.c (scripts/build-native.mjs), with the Node-API declarations of napi.h.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "napi.h"

static napi_value reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t pid = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc < 1 ||
      napi_get_value_int32(env, argv[0], &pid) != 0 || pid <= 0) {
    napi_throw_error(env, NULL, "reap(pid): pid must be a positive integer");
    return NULL;
  }
  int status;
  pid_t r;
  do r = waitpid(pid, &status, WNOHANG);
  while (r == -1 && errno == EINTR);
  napi_value result;
  napi_create_int32(env, r == -1 ? -errno : (int32_t)r, &result);
  return result;
}

static napi_value subreaper(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef PR_SET_CHILD_SUBREAPER
  int r = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -errno;
#else
  int r = -EINVAL;
#endif
  napi_value result;
  napi_create_int32(env, r, &result);
  return result;
}

static napi_value listen_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1, backlog = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != 0 || fd < 0 ||
      napi_get_value_int32(env, argv[1], &backlog) != 0 || backlog < 0) {
    napi_throw_error(env, NULL, "listen(fd, backlog): fd and backlog must be integers of 0 or more");
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, listen(fd, backlog) == 0 ? 0 : -errno, &result);
  return result;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "reap", 4, reap, NULL, &fn) == 0)
    napi_set_named_property(env, exports, "reap", fn);
  if (napi_create_function(env, "subreaper", 9, subreaper, NULL, &fn) == 0)
    napi_set_named_property(env, exports, "subreaper", fn);
  if (napi_create_function(env, "listen", 6, listen_fd, NULL, &fn) == 0)
    napi_set_named_property(env, exports, "listen", fn);
  return exports;
}
