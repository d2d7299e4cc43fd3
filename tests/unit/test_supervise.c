/* Supervision through gpumux-monitor: real launches of real commands in a temporary directory. */
#include "common/cgroup.h"
#include "daemon/supervise.h"

#include "procenv.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base[64];
static char monitor[PATH_MAX];
static char *default_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

static void setup(void)
{
    const char *b = getenv("GM_BUILD_DIR");
    cr_assert(b != NULL, "GM_BUILD_DIR must name the build directory");
    snprintf(monitor, sizeof(monitor), "%s/bin/gpumux-monitor", b);
    cr_assert(access(monitor, X_OK) == 0, "%s: %s", monitor, strerror(errno));
    snprintf(base, sizeof(base), "/tmp/gm-sup-XXXXXX");
    cr_assert(mkdtemp(base) != NULL);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static void teardown(void)
{
    if (base[0] != '\0')
        nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(supervise, .init = setup, .fini = teardown, .timeout = 30);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct run {
    char dir[PATH_MAX];
    char log[PATH_MAX];
    pid_t monitor_pid;
    uint64_t monitor_start;
};

static int launch_as(struct run *r, const char *name, char *const *argv, char *const *envp,
                     uid_t uid, gid_t gid, struct gm_error *err)
{
    snprintf(r->dir, sizeof(r->dir), "%s/workloads/%s/1", base, name);
    snprintf(r->log, sizeof(r->log), "%s/%s.log", base, name);
    struct gm_launch l = {.monitor_path = monitor,
                          .dir = r->dir,
                          .log_path = r->log,
                          .argv = argv,
                          .envp = envp != NULL ? envp : default_env,
                          .uid = uid,
                          .gid = gid};
    return gm_sup_launch(&l, &r->monitor_pid, &r->monitor_start, err);
}

static void launch(struct run *r, const char *name, char *const *argv)
{
    struct gm_error err = {0};
    int rc = launch_as(r, name, argv, NULL, 0, 0, &err);
    cr_assert_eq(rc, 0, "launch %s: %s", name, err.msg);
    cr_assert_gt(r->monitor_pid, 0);
}

/* Polls until the launch is in state (with a known pid when need_pid); fails the test after
 * timeout_ms. */
static struct gm_sup_status wait_for(const struct run *r, enum gm_sup_state state, int need_pid,
                                     int timeout_ms)
{
    struct gm_sup_status st;
    struct gm_error err = {0};
    for (int waited = 0;; waited += 5) {
        cr_assert_eq(gm_sup_poll(r->dir, &st, &err), 0, "poll: %s", err.msg);
        if (st.state == state && (!need_pid || st.pid > 0))
            return st;
        if (waited >= timeout_ms)
            cr_assert_fail("%s: state %d after %d ms, wanted %d", r->dir, st.state, waited, state);
        sleep_ms(5);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "%s: %s", path, strerror(errno));
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void assert_no_children(void)
{
    errno = 0;
    pid_t p = waitpid(-1, NULL, WNOHANG);
    cr_assert(p == -1 && errno == ECHILD, "the test process has a child left (waitpid -> %d)",
              (int)p);
}

/* Field 22 of /proc/PID/stat, read independently of the code under test. */
static uint64_t proc_start(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *s = slurp(path);
    char *p = strrchr(s, ')');
    cr_assert(p != NULL);
    unsigned long long v = 0;
    int n = sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                   "%*d %llu",
                   &v);
    free(s);
    cr_assert_eq(n, 1);
    return v;
}

static int wait_dead(pid_t pid, uint64_t start, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 5) {
        if (!gm_proc_alive(pid, start))
            return 1;
        sleep_ms(5);
    }
    return !gm_proc_alive(pid, start);
}

Test(supervise, exit_code_and_output_recorded)
{
    struct run r;
    char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    int64_t before = now_ms();
    launch(&r, "exit3", argv);
    assert_no_children();
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, 3);
    cr_assert_eq(st.exit_signal, 0);
    cr_assert(st.finished_ms >= before && st.finished_ms <= now_ms() + 1, "finished %" PRId64,
              st.finished_ms);
    cr_assert_eq(st.monitor_pid, r.monitor_pid);
    cr_assert_eq(st.monitor_start, r.monitor_start);
    cr_assert_gt(st.pid, 0);
    char *log = slurp(r.log);
    cr_assert_str_eq(log, "out\nerr\n");
    free(log);
    struct stat sb;
    cr_assert_eq(stat(r.log, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0640);
    cr_assert_eq(stat(r.dir, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    assert_no_children();
}

Test(supervise, killed_by_signal)
{
    struct run r;
    char *argv[] = {"sleep", "30", NULL};
    launch(&r, "sleeper", argv);
    struct gm_sup_status st = wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    cr_assert(gm_proc_alive(st.pid, st.pid_start));
    struct gm_error err = {0};
    cr_assert_eq(gm_sup_signal(r.dir, SIGTERM, &err), 0, "%s", err.msg);
    st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, -1);
    cr_assert_eq(st.exit_signal, SIGTERM);
    /* Once exited there is nothing left to signal. */
    cr_assert_eq(gm_sup_signal(r.dir, SIGTERM, &err), -GM_ENOTFOUND);
}

Test(supervise, sigterm_to_monitor_is_forwarded)
{
    struct run r;
    char *argv[] = {"sleep", "30", NULL};
    launch(&r, "fwd", argv);
    wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    cr_assert_eq(kill(r.monitor_pid, SIGTERM), 0);
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, -1);
    cr_assert_eq(st.exit_signal, SIGTERM);
}

Test(supervise, whole_process_group_signalled)
{
    struct run r;
    char bgfile[128], script[512];
    snprintf(bgfile, sizeof(bgfile), "%s/bg.pid", base);
    snprintf(script, sizeof(script), "sleep 30 & echo $! > %s.tmp; mv %s.tmp %s; wait", bgfile,
             bgfile, bgfile);
    char *argv[] = {"sh", "-c", script, NULL};
    launch(&r, "group", argv);
    struct gm_sup_status st = wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    for (int i = 0; i < 1000 && access(bgfile, F_OK) != 0; i++)
        sleep_ms(5);
    char *s = slurp(bgfile);
    pid_t bg = atoi(s);
    free(s);
    cr_assert_gt(bg, 0);
    uint64_t bg_start = gm_proc_start_time(bg);
    cr_assert(gm_proc_alive(bg, bg_start), "background sleep %d not running", (int)bg);
    cr_assert_eq(getpgid(bg), st.pid, "the workload leads the group of its children");

    struct gm_error err = {0};
    cr_assert_eq(gm_sup_signal(r.dir, SIGTERM, &err), 0, "%s", err.msg);
    st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_signal, SIGTERM);
    cr_assert(wait_dead(bg, bg_start, 5000), "background sleep %d survived", (int)bg);
    cr_assert(!gm_proc_alive(st.pid, st.pid_start));
}

Test(supervise, monitor_killed_workload_keeps_lock)
{
    struct run r;
    char *argv[] = {"sleep", "30", NULL};
    launch(&r, "orphan", argv);
    struct gm_sup_status st = wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    cr_assert(gm_proc_alive(r.monitor_pid, r.monitor_start));
    cr_assert_eq(kill(r.monitor_pid, SIGKILL), 0);
    cr_assert(wait_dead(r.monitor_pid, r.monitor_start, 5000), "monitor still alive");

    struct gm_sup_status now;
    struct gm_error err = {0};
    cr_assert_eq(gm_sup_poll(r.dir, &now, &err), 0, "%s", err.msg);
    cr_assert_eq(now.state, GM_SUP_ALIVE, "the workload still holds the lock");
    cr_assert_eq(now.pid, st.pid);
    cr_assert(gm_proc_alive(now.pid, now.pid_start));

    /* Without its monitor the workload is still reachable through the pid file. */
    cr_assert_eq(gm_sup_signal(r.dir, SIGKILL, &err), 0, "%s", err.msg);
    now = wait_for(&r, GM_SUP_GONE, 0, 5000);
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/exit", r.dir);
    cr_assert_neq(access(path, F_OK), 0, "nobody was left to write an exit file");
    cr_assert_eq(gm_sup_signal(r.dir, SIGTERM, &err), -GM_ENOTFOUND);
}

Test(supervise, command_not_found_is_127)
{
    struct run r;
    char *argv[] = {"gm-no-such-command-42", "x", NULL};
    launch(&r, "notfound", argv);
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, 127);
    char *log = slurp(r.log);
    cr_assert_str_eq(log, "gpumux-monitor: cannot run 'gm-no-such-command-42': No such file or "
                          "directory\n");
    free(log);
}

Test(supervise, permission_denied_is_126)
{
    struct run r;
    char script[PATH_MAX + 16];
    snprintf(script, sizeof(script), "%s/noexec.sh", base);
    FILE *f = fopen(script, "w");
    cr_assert(f != NULL);
    fputs("#!/bin/sh\necho ran\n", f);
    fclose(f);
    cr_assert_eq(chmod(script, 0644), 0);
    char *argv[] = {script, NULL};
    launch(&r, "noexec", argv);
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, 126);
    char *log = slurp(r.log);
    cr_assert(strstr(log, "cannot run '") != NULL && strstr(log, "Permission denied") != NULL,
              "log: %s", log);
    cr_assert(strstr(log, "ran") == NULL);
    free(log);
}

Test(supervise, environment_passed_exactly)
{
    struct run r;
    char *env[] = {"A=1", "B=two words", "C=", "PATH=/usr/bin:/bin", NULL};
    char *argv[] = {"env", NULL}; /* found through the PATH given here */
    struct gm_error err = {0};
    cr_assert_eq(launch_as(&r, "env", argv, env, 0, 0, &err), 0, "%s", err.msg);
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, 0);
    char *log = slurp(r.log);
    cr_assert_str_eq(log, "A=1\nB=two words\nC=\nPATH=/usr/bin:/bin\n");
    free(log);
}

/* Without a cgroup the workload holds its own lock, DIR/wlock, as fd 3; never the monitor's. */
Test(supervise, workload_inherits_only_stdio_and_its_lock)
{
    /* Descriptors a daemon would have open without close-on-exec. */
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/leak", base);
    int leak = open(path, O_WRONLY | O_CREAT, 0600);
    int sv[2];
    cr_assert(leak >= 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);

    struct run r;
    char *argv[] = {"ls", "-l", "/proc/self/fd", NULL};
    launch(&r, "fds", argv);
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, 0);
    char *log = slurp(r.log);
    char lock[PATH_MAX + 8];
    snprintf(lock, sizeof(lock), "%s/wlock", r.dir);
    int seen[4] = {0};
    int listing_dirs = 0;
    char pipe_id[64] = "";
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *arrow = strstr(line, " -> ");
        if (arrow == NULL)
            continue; /* "total 0" */
        *arrow = '\0';
        const char *target = arrow + 4;
        int fd = atoi(strrchr(line, ' ') + 1);
        if (fd == 0 && strcmp(target, "/dev/null") == 0)
            seen[0] = 1;
        else if ((fd == 1 || fd == 2) && strncmp(target, "pipe:[", 6) == 0) {
            /* One pipe, read by the monitor: the workload holds no descriptor of the log. */
            if (pipe_id[0] == '\0')
                snprintf(pipe_id, sizeof(pipe_id), "%s", target);
            cr_assert_str_eq(target, pipe_id, "stdout and stderr are one pipe");
            seen[fd] = 1;
        } else if (fd == 3 && strcmp(target, lock) == 0)
            seen[3] = 1;
        else if (strncmp(target, "/proc/", 6) == 0 && strstr(target, "/fd") != NULL)
            listing_dirs++; /* ls's own handle on the directory it lists */
        else
            cr_assert_fail("workload inherited fd %d -> %s", fd, target);
    }
    cr_assert(seen[0] && seen[1] && seen[2] && seen[3], "stdio %d%d%d lock %d", seen[0], seen[1],
              seen[2], seen[3]);
    cr_assert_leq(listing_dirs, 1);
    free(log);
    close(leak);
    close(sv[0]);
    close(sv[1]);
}

Test(supervise, pid_file_start_times_match_proc)
{
    struct run r;
    char *argv[] = {"sleep", "30", NULL};
    launch(&r, "starttime", argv);
    struct gm_sup_status st = wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    cr_assert_eq(st.monitor_pid, r.monitor_pid);
    cr_assert_eq(st.monitor_start, proc_start(r.monitor_pid));
    cr_assert_eq(r.monitor_start, st.monitor_start);
    cr_assert_neq(st.pid, st.monitor_pid);
    cr_assert_eq(st.pid_start, proc_start(st.pid));
    cr_assert_eq(getpgid(st.pid), st.pid, "the workload leads its process group");
    cr_assert_eq(getsid(st.pid), st.pid, "the workload leads its session");
    struct gm_error err = {0};
    cr_assert_eq(gm_sup_signal(r.dir, SIGKILL, &err), 0, "%s", err.msg);
    st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_signal, SIGKILL);
}

Test(supervise, proc_alive_checks_start_time)
{
    uint64_t me = gm_proc_start_time(getpid());
    cr_assert_neq(me, 0);
    cr_assert_eq(me, proc_start(getpid()));
    cr_assert(gm_proc_alive(getpid(), me));
    cr_assert(!gm_proc_alive(getpid(), me + 1), "a reused pid has another start time");
    cr_assert(!gm_proc_alive(getpid(), 0));
    cr_assert_eq(gm_proc_start_time(0), 0);
    cr_assert_eq(gm_proc_start_time(-5), 0);

    /* A child whose name holds the characters that break naive parsing; then a zombie. */
    int go[2], done[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(done), 0);
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
        /* Holds no write end of go, so a failing parent's exit ends it. */
        close(go[1]);
        close(done[0]);
        char b;
        if (read(go[0], &b, 1) != 1)
            _exit(1);
        prctl(PR_SET_NAME, "a) 1 2 (b) Z", 0, 0, 0);
        if (write(done[1], "x", 1) != 1)
            _exit(1);
        if (read(go[0], &b, 1) != 1)
            _exit(1);
        _exit(0);
    }
    uint64_t cs = gm_proc_start_time(c);
    cr_assert_neq(cs, 0);
    cr_assert_eq(cs, proc_start(c));
    char b;
    cr_assert_eq(write(go[1], "x", 1), 1);
    cr_assert_eq(read(done[0], &b, 1), 1);
    cr_assert_eq(gm_proc_start_time(c), cs, "parsed after the last ')'");
    cr_assert(gm_proc_alive(c, cs));
    cr_assert_eq(write(go[1], "x", 1), 1);
    siginfo_t si;
    cr_assert_eq(waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT), 0);
    cr_assert(!gm_proc_alive(c, cs), "a zombie is not alive");
    cr_assert_eq(waitpid(c, NULL, 0), c);
    cr_assert(!gm_proc_alive(c, cs));
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
}

#define NPAR 50

struct par {
    struct run r;
    int rc;
    char msg[sizeof(((struct gm_error *)0)->msg)];
    int idx;
};

static void *par_launch(void *arg)
{
    struct par *p = arg;
    char name[32], script[32];
    snprintf(name, sizeof(name), "par%d", p->idx);
    snprintf(script, sizeof(script), "echo %d; exit %d", p->idx, p->idx);
    char *argv[] = {"sh", "-c", script, NULL};
    struct gm_error err = {0};
    p->rc = launch_as(&p->r, name, argv, NULL, 0, 0, &err);
    snprintf(p->msg, sizeof(p->msg), "%s", err.msg);
    return NULL;
}

Test(supervise, parallel_launches_all_recorded_no_zombies)
{
    static struct par ps[NPAR];
    pthread_t th[NPAR];
    for (int i = 0; i < NPAR; i++) {
        ps[i].idx = i;
        cr_assert_eq(pthread_create(&th[i], NULL, par_launch, &ps[i]), 0);
    }
    for (int i = 0; i < NPAR; i++)
        pthread_join(th[i], NULL);
    assert_no_children();
    for (int i = 0; i < NPAR; i++) {
        cr_assert_eq(ps[i].rc, 0, "launch %d: %s", i, ps[i].msg);
        struct gm_sup_status st = wait_for(&ps[i].r, GM_SUP_EXITED, 0, 10000);
        cr_assert_eq(st.exit_code, i);
        char *log = slurp(ps[i].r.log);
        cr_assert_eq(atoi(log), i);
        free(log);
    }
    assert_no_children();
}

Test(supervise, runs_as_requested_user_when_root)
{
    if (geteuid() != 0)
        cr_skip("needs root to switch users");
    struct run r;
    char *argv[] = {"sh", "-c", "id -u; id -g; id -G", NULL};
    struct gm_error err = {0};
    cr_assert_eq(launch_as(&r, "nobody", argv, NULL, 65534, 65534, &err), 0, "%s", err.msg);
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, 0);
    char *log = slurp(r.log);
    cr_assert_str_eq(log, "65534\n65534\n65534\n");
    free(log);
    struct stat sb;
    cr_assert_eq(stat(r.log, &sb), 0);
    cr_assert_eq(sb.st_uid, 0, "the log is opened before privileges are dropped");
}

Test(supervise, busy_conflict_and_remove)
{
    struct run r;
    char *argv[] = {"sleep", "30", NULL};
    launch(&r, "again", argv);
    wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    struct run r2;
    struct gm_error err = {0};
    cr_assert_eq(launch_as(&r2, "again", argv, NULL, 0, 0, &err), -GM_EBUSY);
    cr_assert(strstr(err.msg, r.dir) != NULL, "message names the launch: %s", err.msg);
    cr_assert_eq(gm_sup_remove(r.dir, &err), -GM_EBUSY);
    cr_assert_eq(gm_sup_signal(r.dir, SIGKILL, &err), 0, "%s", err.msg);
    wait_for(&r, GM_SUP_EXITED, 0, 5000);
    /* The lock is free only once the monitor, having written the exit file, is gone too. */
    cr_assert(wait_dead(r.monitor_pid, r.monitor_start, 5000), "monitor still alive");
    /* The record of a finished launch is never overwritten by another. */
    cr_assert_eq(launch_as(&r2, "again", argv, NULL, 0, 0, &err), -GM_ECONFLICT);
    cr_assert_eq(gm_sup_remove(r.dir, &err), 0, "%s", err.msg);
    cr_assert_neq(access(r.dir, F_OK), 0);
    struct gm_sup_status st;
    cr_assert_eq(gm_sup_poll(r.dir, &st, &err), 0);
    cr_assert_eq(st.state, GM_SUP_GONE);
    cr_assert_eq(gm_sup_remove(r.dir, &err), 0, "removing twice is fine");
}

Test(supervise, missing_monitor_fails_and_releases_lock)
{
    char dir[PATH_MAX + 8], log[PATH_MAX + 8];
    snprintf(dir, sizeof(dir), "%s/nomon", base);
    snprintf(log, sizeof(log), "%s/nomon.log", base);
    char *argv[] = {"true", NULL};
    struct gm_launch l = {.monitor_path = "/nonexistent/gpumux-monitor",
                          .dir = dir,
                          .log_path = log,
                          .argv = argv,
                          .envp = default_env};
    pid_t pid = 0;
    uint64_t start = 0;
    struct gm_error err = {0};
    cr_assert_lt(gm_sup_launch(&l, &pid, &start, &err), 0);
    cr_assert(strstr(err.msg, "No such file") != NULL, "%s", err.msg);
    struct gm_sup_status st;
    cr_assert_eq(gm_sup_poll(dir, &st, &err), 0);
    cr_assert_eq(st.state, GM_SUP_GONE);
    assert_no_children();
}

/* ---- the workload's environment and its cgroup -------------------------------------------- */

static int has_env(pid_t pid, const char *entry)
{
    int rc = gm_test_has_env(pid, entry);
    cr_assert_neq(rc, -1, "/proc/%d/environ: %s", (int)pid, strerror(errno));
    return rc;
}

Test(supervise, monitor_never_gets_the_workload_environment)
{
    struct run r;
    char *env[] = {"GM_TEST_MARK=workload-only", "PATH=/usr/bin:/bin", NULL};
    char *argv[] = {"sh", "-c", "echo $GM_TEST_MARK; exec sleep 30", NULL};
    struct gm_error err = {0};
    cr_assert_eq(launch_as(&r, "envmon", argv, env, 0, 0, &err), 0, "%s", err.msg);
    struct gm_sup_status st = wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    cr_assert(!has_env(r.monitor_pid, "GM_TEST_MARK=workload-only"),
              "the monitor (root code) runs with the daemon's environment");
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/env", r.dir);
    cr_assert_neq(access(path, F_OK), 0, "the monitor removed the environment file");
    /* The shell has exec'ed, not necessarily echoed yet: its line first, then the kill. */
    char *log = NULL;
    for (int t = 0; t < 1000; t++) {
        free(log);
        log = slurp(r.log);
        if (log[0] != '\0')
            break;
        sleep_ms(5);
    }
    /* Only now has the child certainly exec'ed: "alive" is reported from the fork on, and until
     * execve its /proc environ is still the monitor's. */
    cr_assert(has_env(st.pid, "GM_TEST_MARK=workload-only"), "the workload has its own");
    cr_assert_eq(gm_sup_signal(r.dir, SIGKILL, &err), 0, "%s", err.msg);
    wait_for(&r, GM_SUP_EXITED, 0, 5000);
    free(log);
    log = slurp(r.log);
    cr_assert_str_eq(log, "workload-only\n");
    free(log);
}

/* Without a cgroup: releasing the lock it holds releases only the workload's own. */
Test(supervise, lock_only_unlock_does_not_look_ended)
{
    struct run r;
    char *argv[] = {"sh", "-c", "flock -u 3; exec 3>&-; exec sleep 30", NULL};
    launch(&r, "unlock", argv);
    struct gm_sup_status st = wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    sleep_ms(200);
    struct gm_error err = {0};
    cr_assert_eq(gm_sup_poll(r.dir, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.state, GM_SUP_ALIVE, "the monitor's lock still says it runs");
    cr_assert_eq(gm_sup_signal(r.dir, SIGKILL, &err), 0, "%s", err.msg);
    wait_for(&r, GM_SUP_EXITED, 0, 5000);
}

static char cg_root[PATH_MAX - 64];

/* The parent cgroup of this test's launches, or a skip. */
static void need_cgroup(void)
{
    char rel[64];
    snprintf(rel, sizeof(rel), "gpumux-unit-sup-%d", (int)getpid());
    enum gm_cg_kind kind;
    struct gm_error err = {0};
    if (gm_cgroup_resolve_root(rel, cg_root, sizeof(cg_root), &kind, &err) < 0)
        cr_skip("no writable cgroup here: %s", err.msg);
}

static void launch_cg(struct run *r, const char *name, char *const *argv, char *cg, size_t len)
{
    snprintf(cg, len, "%s/%s", cg_root, name);
    snprintf(r->dir, sizeof(r->dir), "%s/workloads/%s/1", base, name);
    snprintf(r->log, sizeof(r->log), "%s/%s.log", base, name);
    struct gm_launch l = {.monitor_path = monitor,
                          .dir = r->dir,
                          .log_path = r->log,
                          .argv = argv,
                          .envp = default_env,
                          .cgroup = cg};
    struct gm_error err = {0};
    cr_assert_eq(gm_sup_launch(&l, &r->monitor_pid, &r->monitor_start, &err), 0, "%s", err.msg);
}

static pid_t read_pid(const char *file)
{
    for (int i = 0; i < 1000 && access(file, F_OK) != 0; i++)
        sleep_ms(5);
    char *s = slurp(file);
    pid_t p = atoi(s);
    free(s);
    cr_assert_gt(p, 0, "%s", file);
    return p;
}

static void cg_cleanup(const char *cg)
{
    gm_cgroup_kill(cg, 5000, NULL);
    gm_cgroup_remove(cg, NULL);
    rmdir(cg_root);
}

Test(supervise, cgroup_leftovers_end_before_the_exit_is_recorded)
{
    need_cgroup();
    struct run r;
    char cg[PATH_MAX], bgfile[128], script[512];
    snprintf(bgfile, sizeof(bgfile), "%s/bg.pid", base);
    snprintf(script, sizeof(script),
             "setsid sleep 1000 & echo $! > %s.tmp; mv %s.tmp %s; sleep 0.3; exit 0", bgfile,
             bgfile, bgfile);
    char *argv[] = {"sh", "-c", script, NULL};
    launch_cg(&r, "leftover", argv, cg, sizeof(cg));
    pid_t bg = read_pid(bgfile);
    uint64_t bg_start = gm_proc_start_time(bg);
    cr_assert(gm_proc_alive(bg, bg_start));
    /* setsid(1) calls setsid(2) after the pid file may already name it: wait for the call. */
    pid_t main_sid = getsid(wait_for(&r, GM_SUP_ALIVE, 1, 5000).pid);
    for (int i = 0; i < 1000 && getsid(bg) == main_sid; i++)
        sleep_ms(5);
    cr_assert_neq(getsid(bg), main_sid, "the child left the workload's session");
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, 0);
    cr_assert(!gm_proc_alive(bg, bg_start), "exit recorded while its child %d still ran", (int)bg);
    cr_assert(wait_dead(r.monitor_pid, r.monitor_start, 5000));
    struct gm_error err = {0};
    cr_assert_eq(gm_sup_remove(r.dir, &err), 0, "%s", err.msg);
    cr_assert_neq(access(cg, F_OK), 0, "the launch's cgroup is removed with it");
    char *log = slurp(r.log);
    cr_assert(strstr(log, "killing the 1 process(es) it left behind") != NULL, "log: %s", log);
    free(log);
    cg_cleanup(cg);
}

Test(supervise, cgroup_escaped_child_keeps_the_launch_alive_and_is_signalled)
{
    need_cgroup();
    struct run r;
    char cg[PATH_MAX], bgfile[128], script[512];
    snprintf(bgfile, sizeof(bgfile), "%s/esc.pid", base);
    /* A double fork into a new session, all descriptors closed. */
    snprintf(script, sizeof(script),
             "(setsid sh -c 'exec 0<&- 1>&- 2>&- 3>&-; exec sleep 1000' & echo $! > %s.tmp; "
             "mv %s.tmp %s) ; exec sleep 1000",
             bgfile, bgfile, bgfile);
    char *argv[] = {"sh", "-c", script, NULL};
    launch_cg(&r, "escape", argv, cg, sizeof(cg));
    struct gm_sup_status st = wait_for(&r, GM_SUP_ALIVE, 1, 5000);
    pid_t bg = read_pid(bgfile);
    uint64_t bg_start = gm_proc_start_time(bg);
    /* Its monitor and its main process gone, only the escaped child is left. */
    cr_assert_eq(kill(r.monitor_pid, SIGKILL), 0);
    cr_assert(wait_dead(r.monitor_pid, r.monitor_start, 5000));
    cr_assert_eq(kill(st.pid, SIGKILL), 0);
    cr_assert(wait_dead(st.pid, st.pid_start, 5000));
    cr_assert(gm_proc_alive(bg, bg_start));
    struct gm_error err = {0};
    cr_assert_eq(gm_sup_poll(r.dir, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.state, GM_SUP_ALIVE, "its cgroup says a process of it lives");
    cr_assert_eq(gm_sup_remove(r.dir, &err), -GM_EBUSY);
    cr_assert_eq(gm_sup_signal(r.dir, SIGTERM, &err), 0, "%s", err.msg);
    cr_assert(wait_dead(bg, bg_start, 5000), "the escaped child got the signal");
    st = wait_for(&r, GM_SUP_GONE, 0, 5000);
    cr_assert_eq(gm_sup_remove(r.dir, &err), 0, "%s", err.msg);
    cg_cleanup(cg);
}

Test(supervise, cgroup_workload_holds_no_lock)
{
    need_cgroup();
    struct run r;
    char cg[PATH_MAX];
    char *argv[] = {"sh", "-c", "ls /proc/self/fd/3 2>/dev/null && echo has-3 || echo no-3", NULL};
    launch_cg(&r, "nolock", argv, cg, sizeof(cg));
    struct gm_sup_status st = wait_for(&r, GM_SUP_EXITED, 0, 5000);
    cr_assert_eq(st.exit_code, 0);
    char *log = slurp(r.log);
    cr_assert_str_eq(log, "no-3\n");
    free(log);
    struct gm_error err = {0};
    cr_assert(wait_dead(r.monitor_pid, r.monitor_start, 5000));
    cr_assert_eq(gm_sup_remove(r.dir, &err), 0, "%s", err.msg);
    cg_cleanup(cg);
}

/* A daemon killed while it named a launch's cgroup leaves the launch directory as it was then:
 * a lock nobody holds and an empty `cgroup` (as older builds could) or a `cgroup.new`. The
 * launch reads as gone (nothing ever ran), not as an error every poll, and can be removed. */
Test(supervise, launch_cut_short_while_naming_its_cgroup_reads_as_gone)
{
    char dir[PATH_MAX], path[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/cut/1", base);
    snprintf(path, sizeof(path), "%s/cut", base);
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(mkdir(dir, 0700), 0);
    const char *files[] = {"lock", "cgroup", "cgroup.new"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
        close(fd);
    }
    struct gm_sup_status st;
    struct gm_error err = {0};
    cr_assert_eq(gm_sup_poll(dir, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.state, GM_SUP_GONE);
    cr_assert_eq(gm_sup_remove(dir, &err), 0, "%s", err.msg);
    cr_assert_neq(access(dir, F_OK), 0);
}
