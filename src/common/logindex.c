#include "common/logindex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gm_logindex_name(const char *log_name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s" GM_LOGINDEX_SUFFIX, log_name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

void gm_logindex_note(int fd, uint64_t offset, int64_t now_ms, int64_t *last_ms)
{
    if (fd < 0 || (*last_ms != 0 && now_ms < *last_ms + GM_LOGINDEX_STEP_MS))
        return;
    char line[64];
    int n =
        snprintf(line, sizeof(line), "%lld %llu\n", (long long)now_ms, (unsigned long long)offset);
    if (n > 0 && write(fd, line, (size_t)n) == n)
        *last_ms = now_ms;
}

int gm_logindex_find(int fd, int64_t since_ms, uint64_t *offset)
{
    int copy = fd >= 0 ? dup(fd) : -1;
    FILE *f = copy >= 0 ? fdopen(copy, "r") : NULL;
    if (f == NULL) {
        if (copy >= 0)
            close(copy);
        return -1;
    }
    rewind(f);
    char line[128];
    int rc = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *end;
        long long t = strtoll(line, &end, 10);
        unsigned long long off = end != line ? strtoull(end, &end, 10) : 0;
        if (end == line || (*end != '\n' && *end != '\0')) {
            rc = -1; /* not an index line: the file cannot be trusted to narrow anything */
            break;
        }
        /* The bytes from this line's offset were written before t + one step. */
        if (t + GM_LOGINDEX_STEP_MS > since_ms) {
            *offset = off;
            rc = 1;
            break;
        }
    }
    fclose(f);
    return rc;
}
