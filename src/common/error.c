#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int vset(struct gm_error *err, int code, const char *fmt, va_list ap)
{
    if (err != NULL) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return -code;
}

int gm_err(struct gm_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vset(err, code, fmt, ap);
    va_end(ap);
    return rc;
}

int gm_err_errno(struct gm_error *err, int code, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vset(err, code, fmt, ap);
    va_end(ap);
    if (err != NULL) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
    }
    return rc;
}

int gm_err_wrap(struct gm_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return -GM_EINTERNAL;
    char prefix[512], old[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* Truncation is acceptable: the start of the message carries the context. */
    int n = snprintf(err->msg, sizeof(err->msg), "%s: ", prefix);
    if (n > 0 && (size_t)n < sizeof(err->msg))
        strncat(err->msg, old, sizeof(err->msg) - (size_t)n - 1);
    return -err->code;
}

void gm_error_clear(struct gm_error *err)
{
    if (err != NULL) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *gm_errcode_name(int code)
{
    switch (code) {
#define GM_X(n, v, h, s)                                                                           \
    case v:                                                                                        \
        return s;
        GM_ERRORS(GM_X)
#undef GM_X
    }
    return "error";
}

int gm_errcode_http(int code)
{
    switch (code) {
#define GM_X(n, v, h, s)                                                                           \
    case v:                                                                                        \
        return h;
        GM_ERRORS(GM_X)
#undef GM_X
    }
    return 500;
}

int gm_errcode_from_name(const char *name)
{
#define GM_X(n, v, h, s)                                                                           \
    if (name != NULL && strcmp(name, s) == 0)                                                      \
        return v;
    GM_ERRORS(GM_X)
#undef GM_X
    return GM_EINTERNAL;
}
