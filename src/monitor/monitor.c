/* gpumux-monitor: owns one workload so that it outlives the daemon with its output and exit
 * status intact. See src/daemon/supervise.h for the launch directory it maintains. */
#include "common/cgroup.h"
#include "common/clock.h"
#include "common/path.h"
#include "daemon/supervise.h"
#include "monitor/logsink.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: gpumux-monitor --dir DIR --lock-fd N --log FILE [--log-max-size BYTES]\n"
    "                      [--log-max-files K] [--uid U --gid G] [--cwd D] [--cgroup CG]\n"
    "                      -- CMD [ARG..]\n"
    "Runs CMD in its own session with stdout and stderr a pipe copied into FILE (rotated at\n"
    "BYTES, default 10 MiB, keeping K older files FILE.1..K, default 3), and records its pid\n"
    "in DIR/pid and its exit status in DIR/exit. Descriptor N holds the launch's lock, which\n"
    "the workload does not inherit. The workload's environment is read from DIR/env (removed\n"
    "then) and applied in the workload only, after it took its user; CMD is looked up in its\n"
    "PATH. With --cgroup the workload runs in cgroup CG, and every process left in it when CMD\n"
    "ends is killed before the exit is recorded; without it the workload holds DIR/wlock.\n"
    "Started by gpumuxd; not meant to be run by hand.\n";

struct opts {
    const char *dir;
    const char *log;
    const char *cwd;
    uint64_t log_max_size;
    int log_max_files;
    const char *cgroup;
    int lock_fd;
    int have_uid;
    uid_t uid;
    gid_t gid;
    char **cmd;
};

/* Where the monitor's own errors go: the workload's log once it is open (say_fd -1), and in
 * the workload's side of the fork its standard error. */
static struct gm_logsink sink = {.dfd = -1, .fd = -1, .mirror_fd = -1};
static int say_fd = 2;
static pid_t child_pid;
extern char **environ;

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (say_fd >= 0) {
        dprintf(say_fd, "gpumux-monitor: %s\n", line);
        return;
    }
    char text[1100];
    n = snprintf(text, sizeof(text), "gpumux-monitor: %s\n", line);
    gm_logsink_write(&sink, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

static void forward_term(int sig)
{
    pid_t c = child_pid;
    if (c > 0 && kill(-c, sig) < 0)
        kill(c, sig);
}

static int parse_id(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > UINT32_MAX - 1)
        return -1;
    *out = v;
    return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0 || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->lock_fd = -1;
    o->cwd = "/";
    o->log_max_size = GM_LOG_MAX_SIZE_DEFAULT;
    o->log_max_files = GM_LOG_MAX_FILES_DEFAULT;
    int have_gid = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (strcmp(a, "--") == 0) {
            o->cmd = argv + i + 1;
            break;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gpumux-monitor: %s: missing value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        unsigned long n;
        uint64_t size;
        if (strcmp(a, "--dir") == 0) {
            o->dir = v;
        } else if (strcmp(a, "--log") == 0) {
            o->log = v;
        } else if (strcmp(a, "--log-max-size") == 0 && parse_size(v, &size) == 0) {
            o->log_max_size = size;
        } else if (strcmp(a, "--log-max-files") == 0 && parse_id(v, &n) == 0 &&
                   n <= GM_LOG_FILES_MAX) {
            o->log_max_files = (int)n;
        } else if (strcmp(a, "--cwd") == 0) {
            o->cwd = v;
        } else if (strcmp(a, "--cgroup") == 0 && v[0] == '/') {
            o->cgroup = v;
        } else if (strcmp(a, "--lock-fd") == 0 && parse_id(v, &n) == 0 && n >= 3 && n < INT_MAX) {
            o->lock_fd = (int)n;
        } else if (strcmp(a, "--uid") == 0 && parse_id(v, &n) == 0) {
            o->uid = (uid_t)n;
            o->have_uid = 1;
        } else if (strcmp(a, "--gid") == 0 && parse_id(v, &n) == 0) {
            o->gid = (gid_t)n;
            have_gid = 1;
        } else {
            fprintf(stderr, "gpumux-monitor: bad option %s %s\n", a, v);
            return -1;
        }
    }
    if (o->dir == NULL || o->log == NULL || o->lock_fd < 0 || o->cmd == NULL || o->cmd[0] == NULL ||
        o->have_uid != have_gid) {
        fputs(usage, stderr);
        return -1;
    }
    return 0;
}

/* Start time even of a zombie: a workload that ended at once still had one. */
static uint64_t start_time(pid_t pid)
{
    char state;
    uint64_t start = 0;
    return gm_proc_stat(pid, &state, &start) == 0 ? start : 0;
}

/* Replaces DIR/name by text through a temp file. When durable, the data and the rename reach
 * the disk before it returns: the exit status must survive a power cut, the pid file need not. */
static int write_file(const char *dir, const char *name, const char *text, int durable)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= (int)sizeof(tmp) ||
        snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst)) {
        say("%s/%s: path too long", dir, name);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int e = 0;
    if (fd < 0) {
        e = errno;
        say("cannot create %s: %s", tmp, strerror(e));
        errno = e;
        return -1;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            e = errno;
            say("cannot write %s: %s", tmp, strerror(e));
            break;
        }
        off += (size_t)w;
    }
    if (e == 0 && durable && fsync(fd) < 0) {
        e = errno;
        say("cannot sync %s: %s", tmp, strerror(e));
    }
    close(fd);
    if (e == 0 && rename(tmp, dst) < 0) {
        e = errno;
        say("cannot rename %s: %s", tmp, strerror(e));
    }
    if (e != 0) {
        unlink(tmp); /* what it holds is no use, and on a full disk its space is wanted */
        errno = e;
        return -1;
    }
    if (durable) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
            say("cannot sync directory %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
    }
    return 0;
}

static int write_exit(const char *dir, int code, int sig)
{
    int64_t ms = gm_now_ms();
    char text[96];
    snprintf(text, sizeof(text), "%d %d %" PRId64 "\n", code, sig, ms);
    /* The exit status is the evidence the daemon records: on a full or failing disk it is kept
     * here, with the launch's lock held (so the launch reads as running, never as lost), and
     * written as soon as the disk takes it. */
    for (int tries = 0;; tries++) {
        if (write_file(dir, "exit", text, 1) == 0)
            return 0;
        if (errno != ENOSPC && errno != EDQUOT && errno != EIO)
            return -1;
        if (tries == 0)
            say("keeping the exit status (%d, signal %d) until %s/exit can be written; trying "
                "every second",
                code, sig, dir);
        sleep(1);
    }
}

static char *env_text;

/* Reads the workload's environment from DIR/env (entries separated by NUL) and removes the
 * file: nobody reads it again. Returns a NULL-terminated array, or NULL (said in the log). */
static char **read_env(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/env", dir) >= (int)sizeof(path)) {
        say("%s/env: path too long", dir);
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        say("cannot open the workload's environment %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    int rc = gm_read_all(fd, &buf, &len);
    if (rc < 0)
        say("cannot read %s: %s", path, strerror(-rc));
    close(fd);
    unlink(path);
    if (buf == NULL)
        return NULL;
    buf[len] = '\0';
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\0';
    char **env = calloc(n + 2, sizeof(*env));
    if (env == NULL) {
        free(buf);
        say("out of memory reading %s", path);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
        env[k++] = buf + i;
    env[k] = NULL;
    env_text = buf; /* the strings of env: freed with it at the end */
    return env;
}

/* Where the workload's processes are counted: its cgroup, or without one its own lock, fd 3 (a
 * file description apart from the monitor's, so that releasing it releases nothing of ours). */
static int track_workload(const struct opts *o)
{
    if (o->cgroup != NULL) {
        int rc = gm_cgroup_join(o->cgroup, getpid());
        if (rc < 0)
            say("cannot join cgroup %s: %s", o->cgroup, strerror(-rc));
        return rc;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/wlock", o->dir) >= (int)sizeof(path)) {
        say("%s/wlock: path too long", o->dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || dup2(fd, 3) < 0) {
        say("cannot take the workload's lock %s: %s", path, strerror(errno));
        return -1;
    }
    if (fd != 3)
        close(fd);
    return 0;
}

/* The workload side of the fork; the monitor is single-threaded, so anything goes here. Exit
 * codes follow the shell's: 127 not found, 126 found but not runnable; failing to take the
 * requested identity or directory also means the command could not be invoked (126). The
 * workload's environment (env) takes effect only after the identity is dropped, for exec: ld.so
 * of a root process must never see a requested LD_PRELOAD, LD_AUDIT or LD_LIBRARY_PATH. */
__attribute__((noreturn)) static void run_workload(const struct opts *o, int null_fd, int out_fd,
                                                   char **env)
{
    setsid(); /* its own session and process group, so that the group can be signalled whole */
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    say_fd = out_fd;
    if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) {
        say("cannot set up standard descriptors: %s", strerror(errno));
        _exit(126);
    }
    say_fd = 2;
    /* Joined while still privileged: the cgroup's files are root's. */
    if (track_workload(o) < 0)
        _exit(126);
    if (o->have_uid && o->uid != 0 && geteuid() == 0) {
        if (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0) {
            say("cannot switch to uid %u gid %u: %s", (unsigned)o->uid, (unsigned)o->gid,
                strerror(errno));
            _exit(126);
        }
    }
    if (chdir(o->cwd) < 0) {
        say("cannot change directory to '%s': %s", o->cwd, strerror(errno));
        _exit(126);
    }
    /* From here on the workload's environment: PATH for the lookup, and for exec. */
    environ = env;
    /* The interposer is for the workload, not for this monitor: the daemon hands it over
     * under another name so that it is preloaded into the workload alone. */
    const char *preload = getenv(GM_MONITOR_PRELOAD_ENV);
    if (preload != NULL) {
        setenv("LD_PRELOAD", preload, 1);
        unsetenv(GM_MONITOR_PRELOAD_ENV);
    }
    execvp(o->cmd[0], o->cmd);
    int e = errno;
    say("cannot run '%s': %s", o->cmd[0], strerror(e));
    _exit(e == EACCES || e == ENOEXEC ? 126 : 127);
}

/* After the workload's main process ended: ends every process left in its cgroup (as a container
 * runtime does when a container's init exits) and reaps those that were ours, until none is
 * left, so that the exit file means that nothing of the launch runs. */
static void end_leftovers(const char *cg)
{
    pid_t *pids = NULL;
    size_t n = 0;
    if (gm_cgroup_pids(cg, &pids, &n, NULL) == 0 && n > 0)
        say("the workload's main process ended: killing the %zu process(es) it left behind", n);
    free(pids);
    for (int round = 0;; round++) {
        struct gm_error err = {0};
        int rc = gm_cgroup_kill(cg, 5000, &err);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (rc == 0)
            return;
        if (round % 12 == 0)
            say("%s; trying again", err.msg);
        sleep(1);
    }
}

/* Copies the workload's output into the log and forwards SIGTERM until the workload has ended
 * and its output is read to the end. Processes it left behind may keep the pipe open: they get
 * GM_MONITOR_DRAIN_MS more, then the pipe is closed (their further writes fail with EPIPE) and
 * the exit is recorded. With a cgroup, what the workload left behind is killed as soon as its
 * main process has ended (so that the pipe reaches its end at once), and orphans, which become
 * this subreaper's children, are reaped as they end. */
static int supervise(pid_t pid, const char *cg, int out_fd, int sig_fd, int *status)
{
    static char buf[65536];
    int exited = 0;
    int64_t drain_until = 0;
    fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        if (!exited) {
            int st;
            pid_t r;
            while ((r = waitpid(-1, &st, WNOHANG)) > 0 && r != pid)
                ; /* an orphan of the workload (with a cgroup) */
            if (r < 0 && errno != EINTR && errno != ECHILD) {
                say("waiting for pid %d: %s", (int)pid, strerror(errno));
                return -1;
            }
            if (r == pid) {
                *status = st;
                exited = 1;
                if (cg != NULL)
                    end_leftovers(cg);
                drain_until = gm_mono_ms() + GM_MONITOR_DRAIN_MS;
            }
        }
        int64_t left = exited ? drain_until - gm_mono_ms() : -1;
        if (exited && (out_fd < 0 || left <= 0))
            break;
        struct pollfd p[2] = {{.fd = sig_fd, .events = POLLIN}, {.fd = out_fd, .events = POLLIN}};
        int n = poll(p, out_fd >= 0 ? 2 : 1, exited ? (int)left : -1);
        if (n < 0 && errno != EINTR) {
            say("poll: %s", strerror(errno));
            return -1;
        }
        if (n <= 0)
            continue;
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                if (si.ssi_signo == SIGTERM && !exited)
                    forward_term(SIGTERM);
        }
        if (out_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(out_fd, buf, sizeof(buf));
            if (r > 0) {
                gm_logsink_write(&sink, buf, (size_t)r);
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(out_fd);
                out_fd = -1;
            }
        }
    }
    if (out_fd >= 0)
        close(out_fd);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_args(argc, argv, &o) < 0)
        return 2;
    /* The lock is the monitor's: the workload never holds it, so it cannot release it. */
    if (fcntl(o.lock_fd, F_SETFD, FD_CLOEXEC) < 0) {
        fprintf(stderr, "gpumux-monitor: lock descriptor %d: %s\n", o.lock_fd, strerror(errno));
        return 2;
    }
    setsid(); /* fails only when already a group leader (run by hand): harmless */

    /* Nothing but stdio may reach the workload, whatever started this program. */
    if (o.lock_fd > 3)
        close_range(3, (unsigned)o.lock_fd - 1, CLOSE_RANGE_CLOEXEC);
    close_range((unsigned)o.lock_fd + 1, ~0U, CLOSE_RANGE_CLOEXEC);

    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit makes writes fail (EFBIG): counted, not fatal */
    /* SIGTERM and SIGCHLD are read from a descriptor by the loop that copies the output. Until
     * the child's pid is known a SIGTERM stays pending there; it is forwarded then. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGCHLD);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sig_fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);

    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    struct gm_error err = {0};
    /* The log's current file becomes this program's stderr (stray output of sanitizers). */
    if (gm_logsink_open(&sink, o.log, o.log_max_size, o.log_max_files, 2, &err) < 0) {
        say("cannot open %s", err.msg);
        /* A shell fails a command whose redirection fails with status 1. */
        return write_exit(o.dir, 1, 0) < 0 ? 1 : 0;
    }
    say_fd = -1;
    if (sig_fd < 0) {
        say("cannot create signal descriptor: %s", strerror(errno));
        return write_exit(o.dir, 126, 0) < 0 ? 1 : 0;
    }
    /* Off the terminal, if any. */
    if (null_fd >= 0) {
        dup2(null_fd, 0);
        dup2(null_fd, 1);
    }

    /* The workload's stdout and stderr: read here, so that the log stays bounded and a full
     * disk costs output, never the workload's progress or its exit status. */
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0) {
        say("cannot create pipe: %s", strerror(errno));
        return write_exit(o.dir, 126, 0) < 0 ? 1 : 0;
    }
    char **env = read_env(o.dir);
    if (env == NULL)
        return write_exit(o.dir, 126, 0) < 0 ? 1 : 0;
    /* The workload's orphans become ours, so that they are reaped once killed. */
    if (o.cgroup != NULL && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        say("cannot become a subreaper: %s", strerror(errno));
    /* Closed by the child's exec (or exit): until then it may not yet lead its own group, and
     * the pid file must not invite anyone to signal a group that does not exist yet. */
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0) {
        say("cannot create pipe: %s", strerror(errno));
        return write_exit(o.dir, 126, 0) < 0 ? 1 : 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        say("cannot fork '%s': %s", o.cmd[0], strerror(errno));
        return write_exit(o.dir, 126, 0) < 0 ? 1 : 0;
    }
    if (pid == 0) {
        close(sync[0]);
        close(out[0]);
        run_workload(&o, null_fd >= 0 ? null_fd : 0, out[1], env);
    }
    child_pid = pid;
    close(sync[1]);
    close(out[1]);
    char b;
    while (read(sync[0], &b, 1) < 0 && errno == EINTR)
        ;
    close(sync[0]);

    char text[128];
    snprintf(text, sizeof(text), "%d %" PRIu64 " %d %" PRIu64 "\n", (int)getpid(),
             start_time(getpid()), (int)pid, start_time(pid));
    write_file(o.dir, "pid", text, 0);

    int status;
    if (supervise(pid, o.cgroup, out[0], sig_fd, &status) < 0)
        return 1;
    /* Orphans that were still ending when the main process did. */
    if (o.cgroup != NULL)
        end_leftovers(o.cgroup);
    int code = -1, sig = 0;
    if (WIFEXITED(status))
        code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        sig = WTERMSIG(status);
    free(env);
    free(env_text);
    return write_exit(o.dir, code, sig) < 0 ? 1 : 0;
}
