/* Paths: built with a check for truncation (a cut path names another file), and created with
 * their parents. */
#ifndef GM_COMMON_PATH_H
#define GM_COMMON_PATH_H

#include "common/error.h"

#include <stddef.h>
#include <sys/types.h>

/* Formats a path into buf. Returns 0, or -GM_EINVAL ("path ... is too long") when it does not
 * fit: never a truncated path. err may be NULL. */
int gm_path(struct gm_error *err, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same without an error record, for code that has none (returns 0 or -1). */
int gm_path_try(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Creates dir and its missing parents, each with mode; existing ones are left as they are. Fails
 * when dir exists and is not a directory ("... exists and is not a directory"). */
int gm_mkdir_p(const char *dir, mode_t mode, struct gm_error *err);
/* Reads what is left of fd into a malloc'd buffer with a NUL after it (the data may hold NULs
 * of its own); *len is its length. Returns 0 or -errno; fd stays open. */
int gm_read_all(int fd, char **out, size_t *len);

#endif
