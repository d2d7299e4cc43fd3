#include "monitor/logsink.h"
#include "common/clock.h"
#include "common/logindex.h"
#include "daemon/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rotated_name(const struct gm_logsink *s, int k, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s.%d", s->name, k);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The index of NAME.log (k 0) or NAME.log.k. */
static int index_name(const struct gm_logsink *s, int k, char *buf, size_t len)
{
    char log[NAME_MAX + 1];
    if (k == 0)
        snprintf(log, sizeof(log), "%s", s->name);
    else if (rotated_name(s, k, log, sizeof(log)) < 0)
        return -1;
    return gm_logindex_name(log, buf, len);
}

/* Opens NAME.log.t for appending, as NAME.log is opened; without it the log is only not
 * searchable by time. */
static void open_index(struct gm_logsink *s)
{
    char name[NAME_MAX + 1];
    s->index_fd = -1;
    s->index_ms = 0;
    if (index_name(s, 0, name, sizeof(name)) < 0)
        return;
    int fd = openat(s->dfd, name,
                    O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
        close(fd);
        fd = -1;
    }
    s->index_fd = fd;
}

static void close_index(struct gm_logsink *s)
{
    if (s->index_fd >= 0)
        close(s->index_fd);
    s->index_fd = -1;
}

/* Opens NAME.log for appending: a regular file of one name only (never through a symbolic or
 * hard link to another file), never waiting on a FIFO put in its place. */
static int open_current(struct gm_logsink *s)
{
    int fd = openat(s->dfd, s->name,
                    O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        close(fd);
        return -EINVAL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    s->fd = fd;
    s->size = (uint64_t)st.st_size;
    if (s->mirror_fd >= 0)
        dup2(fd, s->mirror_fd);
    close_index(s);
    open_index(s);
    return 0;
}

int gm_logsink_open(struct gm_logsink *s, const char *path, uint64_t max_size, int max_files,
                    int mirror_fd, struct gm_error *err)
{
    memset(s, 0, sizeof(*s));
    s->dfd = s->fd = s->index_fd = -1;
    s->mirror_fd = mirror_fd;
    if (max_size < 1 || max_files < 0 || max_files > GM_LOG_FILES_MAX)
        return gm_err(err, GM_EINVAL, "log %s: limits %" PRIu64 " bytes, %d files out of range",
                      path, max_size, max_files);
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    char dir[PATH_MAX];
    size_t dlen = slash == NULL ? 1 : (slash == path ? 1 : (size_t)(slash - path));
    if (*base == '\0' || strlen(base) + 8 + strlen(GM_LOGINDEX_SUFFIX) > sizeof(s->name) ||
        dlen >= sizeof(dir))
        return gm_err(err, GM_EINVAL, "log %s: not a file name of a usable length", path);
    if (slash == NULL)
        memcpy(dir, ".", 2);
    else {
        memcpy(dir, slash == path ? "/" : path, dlen);
        dir[dlen] = '\0';
    }
    memcpy(s->name, base, strlen(base) + 1);
    s->max_size = max_size;
    s->max_files = max_files;
    /* The directory is the configured one (a link there is the administrator's choice); what is
     * opened in it is never followed. */
    s->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dfd < 0)
        return gm_err_errno(err, GM_EIO, errno, "log directory %s", dir);
    int rc = open_current(s);
    if (rc < 0) {
        close(s->dfd);
        s->dfd = -1;
        if (rc == -EINVAL)
            return gm_err(err, GM_EIO, "log %s: not a regular file with one name", path);
        return gm_err_errno(err, GM_EIO, -rc, "log %s", path);
    }
    /* Files beyond the limit, from a time it was larger, would break the bound. */
    char old[NAME_MAX + 1];
    for (int k = max_files + 1; k <= GM_LOG_FILES_MAX; k++) {
        if (index_name(s, k, old, sizeof(old)) == 0)
            unlinkat(s->dfd, old, 0);
        if (rotated_name(s, k, old, sizeof(old)) == 0 && unlinkat(s->dfd, old, 0) < 0 &&
            errno == ENOENT)
            break;
    }
    return 0;
}

/* NAME.log becomes NAME.log.1 and a new NAME.log is started; the oldest file goes. When the
 * files cannot be renamed the current one is emptied instead: the bound holds either way. */
static void rotate(struct gm_logsink *s)
{
    char from[NAME_MAX + 1], to[NAME_MAX + 1];
    int moved = 0;
    if (s->max_files == 0) {
        moved = unlinkat(s->dfd, s->name, 0) == 0;
        if (index_name(s, 0, from, sizeof(from)) == 0)
            unlinkat(s->dfd, from, 0);
    } else if (rotated_name(s, s->max_files, to, sizeof(to)) == 0) {
        unlinkat(s->dfd, to, 0);
        for (int k = s->max_files - 1; k >= 1; k--)
            if (rotated_name(s, k, from, sizeof(from)) == 0 &&
                rotated_name(s, k + 1, to, sizeof(to)) == 0)
                renameat(s->dfd, from, s->dfd, to);
        moved =
            rotated_name(s, 1, to, sizeof(to)) == 0 && renameat(s->dfd, s->name, s->dfd, to) == 0;
        /* Each index moves with its file; one that cannot would describe another file. */
        for (int k = s->max_files - 1; moved && k >= 0; k--)
            if (index_name(s, k, from, sizeof(from)) == 0 &&
                index_name(s, k + 1, to, sizeof(to)) == 0 && renameat(s->dfd, from, s->dfd, to) < 0)
                unlinkat(s->dfd, to, 0);
    }
    if (!moved && s->fd >= 0) {
        if (ftruncate(s->fd, 0) == 0)
            s->size = 0;
        if (s->index_fd >= 0 && ftruncate(s->index_fd, 0) == 0)
            s->index_ms = 0;
        return;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->size = 0;
    open_current(s);
}

static int no_space(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EFBIG;
}

/* Appends what fits; returns the number of bytes not written (counted as dropped). */
static size_t put(struct gm_logsink *s, const char *p, size_t len)
{
    /* Rotating or reopening without a byte written in between means that the files cannot be
     * made to take more: give up on this chunk rather than spin. */
    int why = EFBIG;
    for (int idle = 0; len > 0 && idle < 3;) {
        if (s->fd >= 0 && s->size >= s->max_size) {
            rotate(s);
            idle++;
            continue;
        }
        if (s->fd < 0) {
            int rc = open_current(s);
            if (rc < 0) {
                why = -rc;
                break;
            }
            idle++;
            continue;
        }
        size_t room = (size_t)(s->max_size - s->size);
        gm_logindex_note(s->index_fd, s->size, gm_now_ms(), &s->index_ms);
        ssize_t w = write(s->fd, p, len < room ? len : room);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            why = w < 0 ? errno : ENOSPC;
            break;
        }
        idle = 0;
        s->size += (uint64_t)w;
        p += w;
        len -= (size_t)w;
    }
    if (len > 0)
        s->drop_errno = why;
    s->dropped += len;
    return len;
}

void gm_logsink_write(struct gm_logsink *s, const void *buf, size_t len)
{
    if (len == 0 || s->dfd < 0)
        return;
    if (s->dropped > 0) {
        char note[160];
        uint64_t lost = s->dropped;
        int e = s->drop_errno;
        int n =
            snprintf(note, sizeof(note), "gpumux-monitor: %" PRIu64 " bytes of output lost: %s\n",
                     lost, no_space(e) ? "no space left for the log" : strerror(e));
        s->dropped = 0;
        if (n > 0 && put(s, note, (size_t)n) > 0) {
            /* Still no room: the note waits, and these bytes join the count. */
            s->dropped = lost + len;
            s->drop_errno = e;
            return;
        }
    }
    put(s, buf, len);
}

void gm_logsink_close(struct gm_logsink *s)
{
    close_index(s);
    if (s->fd >= 0)
        close(s->fd);
    if (s->dfd >= 0)
        close(s->dfd);
    s->fd = s->dfd = -1;
}
