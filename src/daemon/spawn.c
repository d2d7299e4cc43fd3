#include "common/clock.h"
#include "daemon/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int gm_spawn_capture(char *const *argv, char *const *envp, const char *input, char *out, size_t len,
                     int timeout_ms, int *status, struct gm_error *err)
{
    int in[2], outp[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return gm_err_errno(err, GM_EIO, errno, "pipe");
    if (pipe2(outp, O_CLOEXEC) < 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        return gm_err_errno(err, GM_EIO, e, "pipe");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    close(outp[1]);
    if (rc != 0) {
        close(in[1]);
        close(outp[0]);
        return gm_err_errno(err, GM_EIO, rc, "cannot run %s", argv[0]);
    }
    if (input != NULL) {
        size_t n = strlen(input);
        /* Command lines fit in the pipe; a child that exits without reading costs an EPIPE
         * that changes nothing, since its output tells what happened. */
        ssize_t wr = write(in[1], input, n);
        (void)wr;
    }
    close(in[1]);
    size_t used = 0;
    long long deadline = gm_mono_ms() + timeout_ms;
    int timed_out = 0;
    for (;;) {
        long long left = deadline - gm_mono_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {.fd = outp[0], .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[4096];
        ssize_t got = read(outp[0], buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (out != NULL && used + 1 < len) {
            size_t take = (size_t)got < len - 1 - used ? (size_t)got : len - 1 - used;
            memcpy(out + used, buf, take);
            used += take;
        }
    }
    close(outp[0]);
    if (out != NULL && len > 0)
        out[used] = '\0';
    if (timed_out)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (timed_out)
        return gm_err(err, GM_EIO, "%s did not finish within %d ms", argv[0], timeout_ms);
    return 0;
}

int gm_spawn_which(const char *name, char *path, size_t len)
{
    if (strchr(name, '/') != NULL) {
        snprintf(path, len, "%s", name);
        return access(path, X_OK) == 0 ? 0 : -GM_ENOTFOUND;
    }
    const char *env = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", env ? env : "/usr/local/bin:/usr/bin:/bin");
    char *save = NULL;
    for (char *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(path, len, "%s/%s", dir, name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
            return 0;
    }
    return -GM_ENOTFOUND;
}
