/* Command-line parsing for gpumux-sample. */
#include "options.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: gpumux-sample [-benchmark] [-i=ITERATIONS | -t=SECONDS]\n"
            "                     [-n=BODIES | -kernel-ms=MS] [-device=N] [-quiet]\n"
            "\n"
            "An all-pairs n-body simulation on the CUDA driver API, reporting interactions per\n"
            "second like NVIDIA's `nbody -benchmark`. Runs on a real NVIDIA driver or on gpusim,\n"
            "whichever libcuda.so.1 the library path finds first.\n"
            "\n"
            "  -benchmark         accepted for compatibility with nbody; there is no display,\n"
            "                     so the sample always runs the benchmark\n"
            "  -i=ITERATIONS      time steps to run (default %d)\n"
            "  -t=SECONDS         run time steps until this much wall time has passed\n"
            "                     (with -i: whichever ends first)\n"
            "  -n=BODIES          number of bodies, also -numbodies=BODIES (default: 4 blocks\n"
            "                     of 256 per multiprocessor, nbody's default: 40960 on a T4)\n"
            "  -kernel-ms=MS      choose the number of bodies so that one time step (one\n"
            "                     kernel) takes about MS milliseconds on this device, from a\n"
            "                     calibration run of %d bodies (0.01 to 10000)\n"
            "  -device=N          CUDA device ordinal (default 0)\n"
            "  -quiet             print only the three summary lines\n"
            "  -compare           run one step on the GPU and on the CPU and compare the\n"
            "                     positions (default 4096 bodies); needs a GPU that runs\n"
            "                     the kernel, so it fails on gpusim\n"
            "  -help, --help      this text\n"
            "\n"
            "Exit status: 0 on success, 1 on a driver or CUDA error, 2 on a usage error.\n",
            GM_SAMPLE_DEFAULT_ITERATIONS, GM_SAMPLE_CALIBRATE_BODIES);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gpumux-sample: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return -1;
}

static int parse_long(const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "gpumux-sample: %s: '%s' is not a whole number in %ld..%ld\n", opt, s, min,
                max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v <= 0 || v > 1e7) {
        fprintf(stderr, "gpumux-sample: -t: '%s' is not a number of seconds above 0\n", s);
        return -1;
    }
    *out = v;
    return 0;
}

/* "name" matches "-name" and "--name"; "name=" matches "-name=V" and sets *value. */
static int match(const char *arg, const char *name, const char **value)
{
    if (arg[0] != '-')
        return 0;
    arg += arg[1] == '-' ? 2 : 1;
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0)
        return 0;
    if (value == NULL)
        return arg[len] == '\0';
    if (arg[len] != '=')
        return 0;
    *value = arg + len + 1;
    return 1;
}

int gm_sample_parse_options(int argc, char **argv, struct gm_sample_options *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long n;
        if (match(a, "help", NULL) || match(a, "h", NULL)) {
            usage(stdout);
            return 1;
        } else if (match(a, "benchmark", NULL)) {
            o->benchmark = 1;
        } else if (match(a, "compare", NULL)) {
            o->compare = 1;
        } else if (match(a, "quiet", NULL)) {
            o->quiet = 1;
        } else if (match(a, "i", &v)) {
            if (parse_long("-i", v, 1, INT_MAX, &o->iterations) < 0)
                return -1;
        } else if (match(a, "n", &v) || match(a, "numbodies", &v)) {
            if (parse_long("-n", v, 1, GM_SAMPLE_MAX_BODIES, &o->bodies) < 0)
                return -1;
        } else if (match(a, "kernel-ms", &v)) {
            char *end;
            errno = 0;
            o->kernel_ms = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(o->kernel_ms) ||
                o->kernel_ms < 0.01 || o->kernel_ms > 10000) {
                fprintf(stderr,
                        "gpumux-sample: -kernel-ms: '%s' is not a number of milliseconds in "
                        "0.01..10000\n",
                        v);
                return -1;
            }
        } else if (match(a, "device", &v)) {
            if (parse_long("-device", v, 0, INT_MAX, &n) < 0)
                return -1;
            o->device = (int)n;
        } else if (match(a, "t", &v)) {
            if (parse_seconds(v, &o->seconds) < 0)
                return -1;
        } else if (match(a, "i", NULL) || match(a, "n", NULL) || match(a, "numbodies", NULL) ||
                   match(a, "device", NULL) || match(a, "t", NULL) || match(a, "kernel-ms", NULL)) {
            return bad("option '%s' needs a value, as in %s=10", a, a);
        } else if (a[0] == '-') {
            return bad("unknown option '%s'", a);
        } else {
            return bad("unexpected argument '%s'", a);
        }
    }
    if (o->bodies != 0 && o->kernel_ms > 0)
        return bad("-n and -kernel-ms both choose the number of bodies: give one");
    return 0;
}
