#include "common/log.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum gm_log_level threshold = GM_LOG_INFO;
static const char *const names[] = {"debug", "info", "warning", "error"};

void gm_log_set_level(enum gm_log_level level)
{
    threshold = level;
}

int gm_log_parse_level(const char *s, enum gm_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0 || (i == GM_LOG_WARN && strcmp(s, "warn") == 0)) {
            *out = (enum gm_log_level)i;
            return 0;
        }
    }
    return -GM_EINVAL;
}

void gm_log(enum gm_log_level level, const char *fmt, ...)
{
    if (level < threshold)
        return;
    char line[2048], stamp[32];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One write per line so lines of concurrent threads do not interleave. */
    fprintf(stderr, "%s.%03ldZ %s: %s\n", stamp, ts.tv_nsec / 1000000, names[level], line);
}
