/* Pieces of gpusim's MPS shared by the control daemon, the server, the control client and the
 * simulated libcuda: paths, the socket's line I/O and the log format. */
#include "gpusim/mps/mps_proto.h"

#include "common/clock.h"
#include "common/path.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

const char *gm_sim_mps_pipe_dir(void)
{
    const char *p = getenv("CUDA_MPS_PIPE_DIRECTORY");
    return p != NULL && p[0] != '\0' ? p : GM_SIM_MPS_DEFAULT_PIPE;
}

const char *gm_sim_mps_log_dir(void)
{
    const char *p = getenv("CUDA_MPS_LOG_DIRECTORY");
    return p != NULL && p[0] != '\0' ? p : GM_SIM_MPS_DEFAULT_LOG;
}

int gm_sim_mps_connect(const char *pipe_dir)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (gm_path_try(sa.sun_path, sizeof(sa.sun_path), "%s/%s", pipe_dir, GM_SIM_MPS_SOCKET) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* A unix-socket connect never waits on a live listener (a full backlog fails with EAGAIN
     * only for non-blocking sockets), so a blocking connect cannot hang here. */
    int rc;
    do
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int gm_sim_mps_send(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int gm_sim_mps_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
    int64_t deadline = gm_mono_ms() + timeout_ms;
    size_t used = 0;
    for (;;) {
        int64_t left = deadline - gm_mono_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue; /* the deadline check above ends it */
        char c;
        ssize_t n = recv(fd, &c, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            if (used == 0)
                return 0;
            errno = EPROTO; /* a line cut short: the peer died mid-answer */
            return -1;
        }
        if (c == '\n') {
            buf[used] = '\0';
            return (int)used;
        }
        if (used + 1 >= len) {
            errno = EPROTO;
            return -1;
        }
        buf[used++] = c;
    }
}

void gm_sim_mps_vlog(int fd, const char *who, int pid, const char *fmt, va_list ap)
{
    if (fd < 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char line[GM_SIM_MPS_LINE_MAX + 128];
    int n = snprintf(line, sizeof(line), "[%04d-%02d-%02d %02d:%02d:%02d.%03ld %s %5d] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, who, pid);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w;
    do
        w = write(fd, line, len);
    while (w < 0 && errno == EINTR);
}

void gm_sim_mps_log(int fd, const char *who, int pid, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gm_sim_mps_vlog(fd, who, pid, fmt, ap);
    va_end(ap);
}
