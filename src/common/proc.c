#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* Field 3 (the state) of a /proc/PID/stat line: after the last ')', since the command name in
 * parentheses may hold anything, ')' and spaces too. NULL when there is none. */
static const char *after_comm(const char *buf, const char *end)
{
    const char *p = NULL;
    for (const char *q = buf; q < end; q++)
        if (*q == ')')
            p = q;
    return p == NULL || p + 2 >= end ? NULL : p + 2; /* ") " */
}

int gm_proc_parse_stat(const char *buf, size_t len, char *state, uint64_t *start)
{
    const char *end = buf + len, *p = after_comm(buf, end);
    if (p == NULL)
        return -1;
    *state = *p;
    /* Field 3 is the state; 19 more spaces lead to field 22. */
    for (int field = 3; field < 22; field++) {
        while (p < end && *p != ' ')
            p++;
        if (p >= end)
            return -1;
        p++;
    }
    uint64_t v = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
        v = v * 10 + (uint64_t)(*p - '0');
    if (digits == 0)
        return -1;
    *start = v;
    return 0;
}

/* Reads /proc/PID/stat into buf; returns its length, or -1. */
static ssize_t read_stat(pid_t pid, char *buf, size_t size)
{
    if (pid <= 0)
        return -1;
    char path[32] = "/proc/";
    char digits[16];
    int n = 0;
    for (unsigned v = (unsigned)pid; v != 0; v /= 10)
        digits[n++] = (char)('0' + v % 10);
    size_t p = strlen(path);
    while (n > 0)
        path[p++] = digits[--n];
    memcpy(path + p, "/stat", sizeof("/stat"));

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == size)
            break;
    }
    close(fd);
    return (ssize_t)len;
}

int gm_proc_stat(pid_t pid, char *state, uint64_t *start)
{
    char buf[1024];
    ssize_t len = read_stat(pid, buf, sizeof(buf));
    return len < 0 ? -1 : gm_proc_parse_stat(buf, (size_t)len, state, start);
}

int gm_proc_parse_ids(const char *buf, size_t len, struct gm_proc_ids *out)
{
    const char *end = buf + len, *p = after_comm(buf, end);
    if (p == NULL)
        return -1;
    long v[3];
    for (int field = 4; field <= 6; field++) {
        while (p < end && *p != ' ')
            p++;
        if (p >= end)
            return -1;
        p++;
        long x = 0;
        int digits = 0, neg = p < end && *p == '-';
        for (p += neg; p < end && *p >= '0' && *p <= '9'; p++, digits++)
            x = x * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        v[field - 4] = neg ? -x : x;
    }
    out->ppid = (pid_t)v[0];
    out->pgrp = (pid_t)v[1];
    out->session = (pid_t)v[2];
    return 0;
}

int gm_proc_ids(pid_t pid, struct gm_proc_ids *out)
{
    char buf[1024];
    ssize_t len = read_stat(pid, buf, sizeof(buf));
    return len < 0 ? -1 : gm_proc_parse_ids(buf, (size_t)len, out);
}

uint64_t gm_proc_start_time(pid_t pid)
{
    char state = '?';
    uint64_t start = 0;
    if (gm_proc_stat(pid, &state, &start) != 0 || state == 'Z' || state == 'X')
        return 0;
    return start;
}

enum gm_proc_state gm_proc_check(pid_t pid, uint64_t start)
{
    if (pid <= 0)
        return GM_PROC_GONE;
    char state = '?';
    uint64_t now = 0;
    if (gm_proc_stat(pid, &state, &now) == 0) {
        if (state == 'Z' || state == 'X')
            return GM_PROC_GONE;
        if (start == 0)
            return GM_PROC_UNKNOWN;
        return now == start ? GM_PROC_SAME : GM_PROC_GONE;
    }
    /* /proc could not tell: ask the kernel whether the pid exists at all. */
    int saved = errno;
    int exists = kill(pid, 0) == 0 || errno == EPERM;
    errno = saved;
    return exists ? GM_PROC_UNKNOWN : GM_PROC_GONE;
}
