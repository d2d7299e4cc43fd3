#include "common/cgroup.h"
#include "common/path.h"
#include "daemon/supervise.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* How long a SIGKILL of a launch's cgroup waits for it to be empty. */
#define SUP_KILL_WAIT_MS 2000

/* The descriptor number under which the monitor holds its lock (and, without a cgroup, the
 * workload its own). */
#define SUP_LOCK_FD     3
#define SUP_LOCK_FD_STR "3"

/* What the intermediate child tells the daemon. One message is smaller than PIPE_BUF, so the
 * writes of the intermediate child and of the monitor never interleave. */
struct sup_msg {
    int32_t kind; /* SUP_MSG_* */
    int32_t err;  /* errno for SUP_MSG_FAIL */
    int32_t pid;
    int32_t pad;
    uint64_t start;
};
enum { SUP_MSG_PID = 1, SUP_MSG_FAIL = 2 };

/* ---- files of a launch directory ----------------------------------------------------------- */

/* Reads a small file whole. Returns 0, -ENOENT when it does not exist, or another -errno. */
static int read_small(const char *dir, const char *name, char *buf, size_t size)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t r = read(fd, buf + len, size - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    return 0;
}

static int read_pid_file(const char *dir, struct gm_sup_status *st, struct gm_error *err)
{
    char buf[128];
    int rc = read_small(dir, "pid", buf, sizeof(buf));
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return gm_err_errno(err, GM_EIO, -rc, "launch %s: reading pid file", dir);
    int mpid, cpid;
    uint64_t mstart, cstart;
    if (sscanf(buf, "%d %" SCNu64 " %d %" SCNu64, &mpid, &mstart, &cpid, &cstart) != 4)
        return gm_err(err, GM_EIO, "launch %s: malformed pid file '%.40s'", dir, buf);
    st->monitor_pid = mpid;
    st->monitor_start = mstart;
    st->pid = cpid;
    st->pid_start = cstart;
    return 1;
}

/* Returns 1 with the fields filled when the exit file exists, 0 when it does not. */
static int read_exit_file(const char *dir, struct gm_sup_status *st, struct gm_error *err)
{
    char buf[128];
    int rc = read_small(dir, "exit", buf, sizeof(buf));
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return gm_err_errno(err, GM_EIO, -rc, "launch %s: reading exit file", dir);
    int code, sig;
    int64_t ms;
    if (sscanf(buf, "%d %d %" SCNd64, &code, &sig, &ms) != 3)
        return gm_err(err, GM_EIO, "launch %s: malformed exit file '%.40s'", dir, buf);
    st->state = GM_SUP_EXITED;
    st->exit_code = code;
    st->exit_signal = sig;
    st->finished_ms = ms;
    return 1;
}

/* The launch's cgroup, from DIR/cgroup: 1 with its path in buf, 0 when it has none. */
static int read_cgroup(const char *dir, char *buf, size_t len, struct gm_error *err)
{
    int rc = read_small(dir, "cgroup", buf, len);
    if (rc == -ENOENT) {
        buf[0] = '\0';
        return 0;
    }
    if (rc < 0)
        return gm_err_errno(err, GM_EIO, -rc, "launch %s: reading its cgroup file", dir);
    buf[strcspn(buf, "\n")] = '\0';
    /* Empty: left by a daemon killed between creating and writing it (before names were
     * written whole); the cgroup is made only after its name, so there is none. */
    if (buf[0] == '\0')
        return 0;
    if (buf[0] != '/')
        return gm_err(err, GM_EIO, "launch %s: malformed cgroup file '%.40s'", dir, buf);
    return 1;
}

/* Is the lock DIR/name held by someone? 1 held, 0 free (or no lock file), <0 error. A shared
 * lock is enough to test: it conflicts with the exclusive ones of the monitor and the workload,
 * and unlike an exclusive probe it never makes a concurrent poll see a held lock. */
static int lock_held(const char *dir, const char *name, struct gm_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return gm_err(err, GM_EINVAL, "launch %s: path too long", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return gm_err_errno(err, GM_EIO, errno, "launch %s: opening lock", dir);
    }
    int rc;
    while ((rc = flock(fd, LOCK_SH | LOCK_NB)) < 0 && errno == EINTR)
        ;
    int e = errno;
    close(fd); /* releases the probe lock, if taken */
    if (rc == 0)
        return 0;
    if (e == EWOULDBLOCK)
        return 1;
    return gm_err_errno(err, GM_EIO, e, "launch %s: testing lock", dir);
}

/* Does anything of the launch live? The monitor's lock first, then the workload's cgroup (or,
 * without one, its lock): the workload cannot release the monitor's lock, and it cannot leave
 * its cgroup. 1 alive, 0 not, <0 error. */
static int launch_alive(const char *dir, const char *cg, struct gm_error *err)
{
    int held = lock_held(dir, "lock", err);
    if (held != 0)
        return held;
    if (cg[0] != '\0')
        return gm_cgroup_populated(cg, err);
    return lock_held(dir, "wlock", err);
}

int gm_sup_poll(const char *dir, struct gm_sup_status *out, struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    out->state = GM_SUP_GONE;
    struct stat sb;
    if (stat(dir, &sb) < 0) {
        if (errno == ENOENT)
            return 0;
        return gm_err_errno(err, GM_EIO, errno, "launch %s", dir);
    }
    char cg[PATH_MAX];
    int rc = read_cgroup(dir, cg, sizeof(cg), err);
    if (rc < 0)
        return rc;
    rc = read_pid_file(dir, out, err);
    if (rc < 0)
        return rc;
    rc = read_exit_file(dir, out, err);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    int alive = launch_alive(dir, cg, err);
    if (alive < 0)
        return alive;
    /* The pid file may have appeared since it was read. */
    if (out->pid == 0 && (rc = read_pid_file(dir, out, err)) < 0)
        return rc;
    if (alive) {
        out->state = GM_SUP_ALIVE;
        return 0;
    }
    /* The monitor writes the exit file before it lets the lock go: look again, so that an exit
     * between the first look and the lock test is not taken for a lost launch. */
    rc = read_exit_file(dir, out, err);
    return rc < 0 ? rc : 0;
}

/* Signals the processes of a launch's cgroup. */
static int signal_cgroup(const char *dir, const char *cg, int sig, struct gm_error *err)
{
    if (sig == SIGKILL) {
        int rc = gm_cgroup_kill(cg, SUP_KILL_WAIT_MS, err);
        return rc < 0 ? gm_err_wrap(err, "launch %s", dir) : 0;
    }
    int n = gm_cgroup_signal(cg, sig, err);
    if (n < 0)
        return gm_err_wrap(err, "launch %s", dir);
    if (n > 0)
        return 0;
    return gm_err(err, GM_ENOTFOUND, "launch %s: no process of the workload runs", dir);
}

int gm_sup_signal(const char *dir, int sig, struct gm_error *err)
{
    struct gm_sup_status st;
    int rc = gm_sup_poll(dir, &st, err);
    if (rc < 0)
        return rc;
    if (st.state == GM_SUP_EXITED)
        return gm_err(err, GM_ENOTFOUND, "launch %s: workload already exited (code %d)", dir,
                      st.exit_code);
    if (st.state == GM_SUP_GONE)
        return gm_err(err, GM_ENOTFOUND, "launch %s: nothing runs", dir);
    char cg[PATH_MAX];
    rc = read_cgroup(dir, cg, sizeof(cg), err);
    if (rc < 0)
        return rc;
    /* Until the pid file is written the workload may not have joined its cgroup yet. */
    if (st.pid <= 0)
        return gm_err(err, GM_EBUSY, "launch %s: workload not started yet (no pid file)", dir);
    if (rc > 0)
        return signal_cgroup(dir, cg, sig, err);
    /* A pid whose start time differs was reused by another process: never signal it. */
    if (!gm_proc_alive(st.pid, st.pid_start))
        return gm_err(err, GM_ENOTFOUND, "launch %s: workload pid %d is no longer running", dir,
                      (int)st.pid);
    if (kill(-st.pid, sig) == 0)
        return 0;
    if (errno == ESRCH && kill(st.pid, sig) == 0)
        return 0;
    int e = errno;
    return gm_err_errno(err,
                        e == EPERM   ? GM_EPERM
                        : e == ESRCH ? GM_ENOTFOUND
                                     : GM_EIO,
                        e, "launch %s: signalling workload pid %d", dir, (int)st.pid);
}

int gm_sup_remove(const char *dir, struct gm_error *err)
{
    char cg[PATH_MAX];
    int rc = read_cgroup(dir, cg, sizeof(cg), err);
    if (rc < 0)
        return rc;
    int alive = launch_alive(dir, cg, err);
    if (alive < 0)
        return alive;
    if (alive)
        return gm_err(err, GM_EBUSY, "launch %s: still running", dir);
    /* The cgroup goes first: while the directory names it, it can still be found. */
    if (cg[0] != '\0' && (rc = gm_cgroup_remove(cg, err)) < 0)
        return gm_err_wrap(err, "launch %s", dir);
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        return gm_err_errno(err, GM_EIO, errno, "launch %s: opening", dir);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
            rc = gm_err_errno(err, GM_EIO, errno, "launch %s: removing %s", dir, de->d_name);
            break;
        }
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) < 0 && errno != ENOENT)
        rc = gm_err_errno(err, GM_EIO, errno, "launch %s: removing", dir);
    return rc;
}

/* ---- launch ---------------------------------------------------------------------------------- */

static void send_msg(int fd, int kind, int e, pid_t pid, uint64_t start)
{
    struct sup_msg m = {.kind = kind, .err = e, .pid = pid, .start = start};
    while (write(fd, &m, sizeof(m)) < 0 && errno == EINTR)
        ;
}

static void close_from(int lo, int hi)
{
    if (lo > hi)
        return;
    if (close_range((unsigned)lo, (unsigned)hi, 0) == 0)
        return;
    /* Kernels before 5.9: close one by one up to the descriptor limit. */
    struct rlimit rl;
    int max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)max)
        max = (int)rl.rlim_cur;
    for (int fd = lo; fd <= hi && fd < max; fd++)
        close(fd);
}

/* The intermediate child. Between fork and exec only async-signal-safe calls: the daemon is
 * multi-threaded, and another thread may have held any lock (malloc's included) at the fork. */
__attribute__((noreturn)) static void intermediate(int lock_fd, int null_fd, int wfd,
                                                   const char *monitor, char *const *margv,
                                                   char *const *envp)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL); /* glibc's reserved signals fail harmlessly */
    sigset_t none;
    sigemptyset(&none);

    /* Move everything kept above the fixed numbers first, so that no dup2 below clobbers it. */
    int w = fcntl(wfd, F_DUPFD_CLOEXEC, 10);
    int lk = fcntl(lock_fd, F_DUPFD, 10);
    int nul = fcntl(null_fd, F_DUPFD, 10);
    if (w < 0 || lk < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0 ||
        dup2(lk, SUP_LOCK_FD) < 0) {
        send_msg(w >= 0 ? w : wfd, SUP_MSG_FAIL, errno, 0, 0);
        _exit(1);
    }
    /* Only 0-2, the lock and the report pipe (close-on-exec) stay. */
    close_from(SUP_LOCK_FD + 1, w - 1);
    close_from(w + 1, INT_MAX);
    sigprocmask(SIG_SETMASK, &none, NULL);

    pid_t pid = fork();
    if (pid < 0) {
        send_msg(w, SUP_MSG_FAIL, errno, 0, 0);
        _exit(1);
    }
    if (pid == 0) {
        execve(monitor, margv, envp);
        send_msg(w, SUP_MSG_FAIL, errno, 0, 0);
        _exit(127);
    }
    /* Read the start time here: until this process exits the monitor is its child and cannot
     * vanish, whereas the daemon may look only after the monitor has already finished. */
    send_msg(w, SUP_MSG_PID, 0, pid, gm_proc_start_time(pid));
    _exit(0);
}

/* Forks the intermediate child, reaps it and collects the monitor's pid, start time and exec
 * result. The lock stays held by the daemon throughout. */
static int start_monitor(const struct gm_launch *l, int lock_fd, char *const *margv,
                         char *const *envp, pid_t *mpid, uint64_t *mstart, struct gm_error *err)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return gm_err_errno(err, GM_EIO, errno, "launch %s: pipe", l->dir);
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return gm_err_errno(err, GM_EIO, e, "launch %s: opening /dev/null", l->dir);
    }

    /* Blocked across fork so that no daemon handler runs in the child before the reset. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child == 0)
        intermediate(lock_fd, null_fd, pfd[1], l->monitor_path, margv, envp);
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pfd[1]);
    close(null_fd);
    if (child < 0) {
        close(pfd[0]);
        return gm_err_errno(err, GM_EIO, fork_errno, "launch %s: fork", l->dir);
    }

    /* EOF comes when the monitor's exec closed the last write end. */
    pid_t pid = 0;
    uint64_t start = 0;
    int fail = 0;
    struct sup_msg m;
    for (;;) {
        ssize_t r = read(pfd[0], &m, sizeof(m));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (r != (ssize_t)sizeof(m))
            continue;
        if (m.kind == SUP_MSG_PID) {
            pid = m.pid;
            start = m.start;
        } else if (m.kind == SUP_MSG_FAIL && fail == 0) {
            fail = m.err != 0 ? m.err : EIO;
        }
    }
    close(pfd[0]);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    if (fail != 0)
        return gm_err_errno(err, GM_EIO, fail, "launch %s: starting monitor %s", l->dir,
                            l->monitor_path);
    if (pid <= 0)
        return gm_err(err, GM_EIO, "launch %s: monitor %s did not report its pid", l->dir,
                      l->monitor_path);
    *mpid = pid;
    *mstart = start;
    return 0;
}

/* Creates DIR/name anew (0600) with len bytes of data. Returns 0 or -errno. */
static int write_new(const char *dir, const char *name, const char *data, size_t len)
{
    /* Written under another name and renamed: a daemon killed meanwhile leaves the file whole or
     * absent, never empty or cut (a reader would take a cut cgroup name for another). */
    char path[PATH_MAX], final[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s.new", dir, name) >= (int)sizeof(path) ||
        snprintf(final, sizeof(final), "%s/%s", dir, name) >= (int)sizeof(final))
        return -ENAMETOOLONG;
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(path);
            return -e;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 || rename(path, final) < 0) {
        int e = errno;
        unlink(path);
        return -e;
    }
    return 0;
}

/* Hands the workload's environment to the monitor through DIR/env: the monitor runs with the
 * daemon's environment, and a request's variables (LD_PRELOAD, LD_AUDIT, GCONV_PATH..) must
 * never reach a process that is still root. */
static int write_env(const char *dir, char *const *envp, struct gm_error *err)
{
    size_t len = 0;
    for (char *const *e = envp; e && *e; e++)
        len += strlen(*e) + 1;
    char *buf = malloc(len + 1);
    if (buf == NULL)
        return gm_err(err, GM_ENOMEM, "launch %s: out of memory", dir);
    size_t off = 0;
    for (char *const *e = envp; e && *e; e++) {
        size_t n = strlen(*e) + 1;
        memcpy(buf + off, *e, n);
        off += n;
    }
    int rc = write_new(dir, "env", buf, len);
    free(buf);
    return rc < 0 ? gm_err_errno(err, GM_EIO, -rc, "launch %s: writing its environment", dir) : 0;
}

/* Names the launch's cgroup in DIR/cgroup, then makes it: a crash in between leaves a name of
 * a cgroup that does not exist, never a cgroup nobody knows. */
static int make_cgroup(const struct gm_launch *l, struct gm_error *err)
{
    char text[PATH_MAX + 2];
    int n = snprintf(text, sizeof(text), "%s\n", l->cgroup);
    if (l->cgroup[0] != '/' || n < 0 || (size_t)n >= sizeof(text))
        return gm_err(err, GM_EINVAL, "launch %s: bad cgroup path '%.80s'", l->dir, l->cgroup);
    int rc = write_new(l->dir, "cgroup", text, (size_t)n);
    if (rc < 0)
        return gm_err_errno(err, GM_EIO, -rc, "launch %s: writing its cgroup file", l->dir);
    rc = gm_cgroup_create(l->cgroup, err);
    return rc < 0 ? gm_err_wrap(err, "launch %s", l->dir) : 0;
}

/* Undoes make_cgroup and write_env after a launch that did not start. */
static void unmake(const struct gm_launch *l)
{
    char path[PATH_MAX];
    if (l->cgroup != NULL && gm_cgroup_remove(l->cgroup, NULL) == 0 &&
        snprintf(path, sizeof(path), "%s/cgroup", l->dir) < (int)sizeof(path))
        unlink(path);
    if (snprintf(path, sizeof(path), "%s/env", l->dir) < (int)sizeof(path))
        unlink(path);
}

int gm_sup_launch(const struct gm_launch *l, pid_t *monitor_pid, uint64_t *monitor_start,
                  struct gm_error *err)
{
    if (l == NULL || l->monitor_path == NULL || l->dir == NULL || l->log_path == NULL ||
        l->argv == NULL || l->argv[0] == NULL)
        return gm_err(err, GM_EINVAL, "launch: monitor, directory, log and command are required");
    int rc = gm_mkdir_p(l->dir, 0700, err);
    if (rc < 0)
        return gm_err_wrap(err, "launch directory %s", l->dir);

    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/lock", l->dir) >= (int)sizeof(path))
        return gm_err(err, GM_EINVAL, "launch %s: path too long", l->dir);
    int lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock_fd < 0)
        return gm_err_errno(err, GM_EIO, errno, "launch %s: opening lock", l->dir);
    if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(lock_fd);
        if (e == EWOULDBLOCK)
            return gm_err(err, GM_EBUSY, "launch %s: already running", l->dir);
        return gm_err_errno(err, GM_EIO, e, "launch %s: locking", l->dir);
    }
    struct stat sb;
    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? "exit" : "pid";
        snprintf(path, sizeof(path), "%s/%s", l->dir, name);
        /* A used directory holds the record of another launch: never overwrite it. */
        if (stat(path, &sb) == 0) {
            close(lock_fd);
            return gm_err(err, GM_ECONFLICT, "launch %s: directory already used (%s file present)",
                          l->dir, name);
        }
    }
    if (l->cgroup != NULL) {
        rc = make_cgroup(l, err);
    } else if ((rc = lock_held(l->dir, "wlock", err)) > 0) {
        rc = gm_err(err, GM_EBUSY, "launch %s: processes of the workload still run", l->dir);
    }
    if (rc == 0)
        rc = write_env(l->dir, l->envp, err);
    if (rc < 0) {
        unmake(l);
        close(lock_fd);
        return rc;
    }

    /* Everything the children need is built now: they may not allocate. */
    size_t argc = 0;
    while (l->argv[argc] != NULL)
        argc++;
    char ubuf[24], gbuf[24], sbuf[24], fbuf[24];
    snprintf(ubuf, sizeof(ubuf), "%u", (unsigned)l->uid);
    snprintf(gbuf, sizeof(gbuf), "%u", (unsigned)l->gid);
    snprintf(sbuf, sizeof(sbuf), "%llu", (unsigned long long)l->log_max_size);
    snprintf(fbuf, sizeof(fbuf), "%d", l->log_max_files);
    const char **margv = calloc(argc + 24, sizeof(*margv)); /* 21 options at most, and NULL */
    if (margv == NULL) {
        unmake(l);
        close(lock_fd);
        return gm_err(err, GM_ENOMEM, "launch %s: out of memory", l->dir);
    }
    size_t n = 0;
    margv[n++] = l->monitor_path;
    margv[n++] = "--dir";
    margv[n++] = l->dir;
    margv[n++] = "--lock-fd";
    margv[n++] = SUP_LOCK_FD_STR;
    margv[n++] = "--log";
    margv[n++] = l->log_path;
    if (l->log_max_size > 0) {
        margv[n++] = "--log-max-size";
        margv[n++] = sbuf;
        margv[n++] = "--log-max-files";
        margv[n++] = fbuf;
    }
    if (l->uid != 0) {
        margv[n++] = "--uid";
        margv[n++] = ubuf;
        margv[n++] = "--gid";
        margv[n++] = gbuf;
    }
    margv[n++] = "--cwd";
    margv[n++] = l->cwd != NULL ? l->cwd : "/";
    if (l->cgroup != NULL) {
        margv[n++] = "--cgroup";
        margv[n++] = l->cgroup;
    }
    margv[n++] = "--";
    for (size_t i = 0; i < argc; i++)
        margv[n++] = l->argv[i];
    margv[n] = NULL;
    /* The monitor is root code: it runs with the daemon's environment, not the workload's. */
    rc = start_monitor(l, lock_fd, (char *const *)margv, environ, monitor_pid, monitor_start, err);
    free(margv);
    if (rc < 0)
        unmake(l);
    /* The monitor holds the lock from here on. */
    close(lock_fd);
    return rc;
}
