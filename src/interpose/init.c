/* Lazy start-up, the region-less modes, fork and exit. */
#include "interpose/interpose.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__thread int gm_ip_depth __attribute__((tls_model("initial-exec")));
int gm_ip_refused;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

void gm_ip_say(const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "gpumux: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write, so lines of concurrent processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

static void atfork_prepare(void)
{
    gm_ip_memory_atfork_prepare();
    gm_ip_launch_atfork_prepare();
}

static void atfork_parent(void)
{
    gm_ip_launch_atfork_parent();
    gm_ip_memory_atfork_parent();
}

/* The child holds none of the parent's allocations (a CUDA context does not survive fork), so
 * it starts from zero in a slot of its own, under the same workload limit. */
static void atfork_child(void)
{
    gm_ip_launch_atfork_child();
    gm_ip_memory_atfork_child();
    gm_ip_region_claim();
}

static void init_once_fn(void)
{
    const char *path = getenv(GM_REGION_ENV);
    const char *enforce = getenv(GM_REGION_STRICT_ENV);
    int strict = enforce != NULL && strcmp(enforce, "strict") == 0;
    struct gm_error err = {0};
    const char *why = err.msg;
    int ok = -1;
    if (path == NULL || path[0] == '\0')
        gm_err(&err, GM_ENOTFOUND, "$%s is not set", GM_REGION_ENV);
    else
        ok = gm_ip_region_attach(path, &err);
    if (ok == 0) {
        gm_ip_region_claim();
    } else if (strict) {
        gm_ip_refused = 1;
        gm_ip_say("no limits region (%s): %s=strict, so CUDA is refused "
                  "(cuInit returns CUDA_ERROR_NOT_PERMITTED)",
                  why, GM_REGION_STRICT_ENV);
    } else {
        gm_ip_say("no limits region (%s): running without limits", why);
    }
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void gm_ip_init(void)
{
    pthread_once(&init_once, init_once_fn);
}

__attribute__((destructor)) static void gm_ip_fini(void)
{
    gm_ip_launch_exit();
    gm_ip_region_release();
}

CUresult gm_ip_cu_result(int rc)
{
    switch (rc) {
    case 0:
        return CUDA_SUCCESS;
    case -GM_ENOSPACE:
        return CUDA_ERROR_OUT_OF_MEMORY;
    case -GM_EPERM:
        return CUDA_ERROR_NOT_PERMITTED;
    case -GM_ENOTFOUND:
        return CUDA_ERROR_NOT_FOUND;
    default:
        return CUDA_ERROR_UNKNOWN;
    }
}

CUresult cuInit(unsigned int flags)
{
    gm_ip_init();
    if (gm_ip_refused)
        return gm_ip_cu_result(-GM_EPERM);
    return GM_CALL_REAL(cuInit, flags);
}
