/* Running a helper program (the MPS control client) with input and a time limit. */
#ifndef GM_DAEMON_SPAWN_H
#define GM_DAEMON_SPAWN_H

#include "common/error.h"

#include <stddef.h>

/* Runs argv with envp (NULL: the daemon's), writes input (may be NULL) to its stdin, collects
 * stdout and stderr together into out (NUL-terminated, truncated to len), and waits at most
 * timeout_ms before killing it. *status is the exit status, or 128+signal. */
int gm_spawn_capture(char *const *argv, char *const *envp, const char *input, char *out, size_t len,
                     int timeout_ms, int *status, struct gm_error *err);

/* Looks name up in PATH; fills path. -GM_ENOTFOUND when absent. */
int gm_spawn_which(const char *name, char *path, size_t len);

#endif
