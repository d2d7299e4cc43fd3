/* Directories root may trust, and files opened inside them without following links.
 *
 * A directory is trusted when it and every directory above it is owned by root (or by the
 * process's effective uid) and writable by nobody else; an ancestor writable by others is
 * accepted only when it is sticky (/tmp), since the entry below it is then ours and cannot be
 * renamed or replaced by another user. A symbolic link on the way is followed only when it is
 * owned by root or by us. Inside a trusted directory nobody else can place a link, so files are
 * opened relative to its descriptor with O_NOFOLLOW, and owners and modes are set on the
 * descriptor, never by path. */
#ifndef GM_COMMON_SAFEDIR_H
#define GM_COMMON_SAFEDIR_H

#include "common/error.h"

#include <sys/types.h>

/* Checks dir as above and returns a descriptor of it (O_DIRECTORY, close-on-exec), or a negative
 * GM_E* code with a message naming the directory and what is wrong: "directory /tmp/x: owned by
 * uid 1000, not root", "directory /tmp/x: writable by others (mode 0777)". With create, missing
 * directories are made: dir itself with mode, its parents with 0755 (exactly, whatever the
 * umask). A relative dir is taken from the working directory. */
int gm_safedir_open(const char *dir, mode_t mode, int create, struct gm_error *err);

/* Opens name (one component, no '/') in the trusted directory dfd (dir is its path, for
 * messages) with openat(flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode). Refused: a symbolic
 * link, anything that is not a regular file (a FIFO does not block the open), and a file with
 * more than one hard link. Returns the descriptor or a negative GM_E* code. */
int gm_safe_openat(int dfd, const char *dir, const char *name, int flags, mode_t mode,
                   struct gm_error *err);

/* The two together for a path: checks the directory of path (without creating it) and opens
 * its last component as gm_safe_openat does. For a process run as root that opens or creates
 * a file at a path it was given (the monitor's log). */
int gm_safe_open(const char *path, int flags, mode_t mode, struct gm_error *err);

#endif
