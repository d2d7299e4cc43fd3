/* One error convention for all of gpumux.
 *
 * Functions return 0 on success or a negative GM_E* code. When they fail they
 * fill a caller-owned struct gm_error whose message names the object and the
 * reason ("GPU 7: no such GPU (this node has 2)"). Context is added as the
 * error travels up with gm_error_wrap(). */
#ifndef GM_COMMON_ERROR_H
#define GM_COMMON_ERROR_H

#include <stddef.h>

/* X(name, value, http status, short name) */
#define GM_ERRORS(X)                                                                               \
    X(GM_EINVAL, 1, 400, "invalid")                                                                \
    X(GM_ENOTFOUND, 2, 404, "not_found")                                                           \
    X(GM_ECONFLICT, 3, 409, "conflict")                                                            \
    X(GM_ENOSPACE, 4, 409, "insufficient")                                                         \
    X(GM_EPERM, 5, 403, "forbidden")                                                               \
    X(GM_EBUSY, 6, 409, "busy")                                                                    \
    X(GM_EIO, 7, 500, "io")                                                                        \
    X(GM_EDRIVER, 8, 503, "driver")                                                                \
    X(GM_EUNREACHABLE, 9, 503, "unreachable")                                                      \
    X(GM_ENOMEM, 10, 500, "no_memory")                                                             \
    X(GM_EINTERNAL, 11, 500, "internal")                                                           \
    X(GM_ETIMEDOUT, 12, 504, "timeout")

enum gm_errcode {
#define GM_X(n, v, h, s) n = v,
    GM_ERRORS(GM_X)
#undef GM_X
};

struct gm_error {
    int code; /* positive GM_E* value, 0 when no error */
    char msg[1024];
};

/* Set the error and return -code, so that `return gm_err(err, GM_EINVAL, ...)` works.
 * err may be NULL. */
int gm_err(struct gm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like gm_err, appending ": strerror(errnum)". */
int gm_err_errno(struct gm_error *err, int code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefix context to an existing message: "opening state: <old message>". Returns -err->code. */
int gm_err_wrap(struct gm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gm_error_clear(struct gm_error *err);

const char *gm_errcode_name(int code); /* "invalid", "not_found", ... */
int gm_errcode_http(int code);         /* 400, 404, ... */
int gm_errcode_from_name(const char *name);

#endif
