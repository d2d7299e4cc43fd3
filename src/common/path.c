#include "common/path.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, len, fmt, ap);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0)
            buf[0] = '\0';
        return -1;
    }
    return 0;
}

int gm_path(struct gm_error *err, char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vformat(buf, len, fmt, ap);
    va_end(ap);
    if (rc == 0)
        return 0;
    char shown[96];
    va_start(ap, fmt);
    vsnprintf(shown, sizeof(shown), fmt, ap);
    va_end(ap);
    return gm_err(err, GM_EINVAL, "path %s... is too long (at most %zu bytes)", shown,
                  len ? len - 1 : 0);
}

int gm_path_try(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vformat(buf, len, fmt, ap);
    va_end(ap);
    return rc;
}

int gm_mkdir_p(const char *dir, mode_t mode, struct gm_error *err)
{
    char buf[PATH_MAX];
    int rc = gm_path(err, buf, sizeof(buf), "%s", dir);
    if (rc < 0)
        return rc;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return gm_err_errno(err, GM_EIO, errno, "creating %s", buf);
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return gm_err_errno(err, GM_EIO, errno, "creating %s", buf);
    struct stat st;
    if (stat(buf, &st) < 0 || !S_ISDIR(st.st_mode))
        return gm_err(err, GM_EIO, "%s exists and is not a directory", buf);
    return 0;
}

int gm_read_all(int fd, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    *out = NULL;
    *len = 0;
    if (buf == NULL)
        return -ENOMEM;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}
