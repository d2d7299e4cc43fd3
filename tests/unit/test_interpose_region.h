/* Shared by the interposer's tests: a limits region made by the region module as gpumuxd makes
 * one, and running a program under the interposer. */
#ifndef GM_TEST_INTERPOSE_REGION_H
#define GM_TEST_INTERPOSE_REGION_H

#include "common/clock.h"
#include "common/proc.h"
#include "region/region.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024ull * 1024ull)

/* Creates the region file as gpumuxd does (src/region) and returns it mapped. */
static inline struct gm_region *t_region_create(const char *path, uint64_t memory_limit,
                                                uint32_t compute_pct)
{
    struct gm_region_init in = {.workload = "test",
                                .gpu_uuid = "",
                                .memory_limit = memory_limit,
                                .compute_pct = compute_pct,
                                .uid = (uid_t)-1,
                                .gid = (gid_t)-1};
    struct gm_region *r = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_region_create(path, &in, &r, &err), 0, "%s", err.msg);
    return r;
}

/* The daemon's side of a schedule change. */
static inline void t_region_window(struct gm_region *r, uint64_t period, uint64_t offset,
                                   uint64_t len, uint64_t epoch)
{
    gm_region_set_window(r, period, offset, len, epoch);
}

/* A child that only waits to be killed: a live process to give a slot to. It dies with the test
 * (also one that fails before it kills it) and keeps off the runner's output. */
static inline pid_t t_sleeper(void)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(1);
        close(2);
        for (;;)
            pause();
    }
    return pid;
}

/* pid's start time, once the child runs as itself. */
static inline uint64_t t_start_of(pid_t pid)
{
    uint64_t s = 0;
    for (int i = 0; i < 1000 && s == 0; i++, usleep(1000))
        s = gm_proc_start_time(pid);
    cr_assert_neq(s, 0);
    return s;
}

static inline void t_kill_wait(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static inline const char *t_build_dir(void)
{
    const char *b = getenv("GM_BUILD_DIR");
    cr_assert_not_null(b, "GM_BUILD_DIR is not set");
    return b;
}

static inline void t_preload_value(char *out, size_t len)
{
    snprintf(out, len, "%s/lib/libgpumux.so", t_build_dir());
}

/* In the sanitizer build, programs are not run with the interposer preloaded: libgpumux.so is
 * then instrumented and exports dlsym, which ASan's runtime calls while it starts, to find the
 * functions it intercepts, before it can serve the allocations libc's dlsym makes on our
 * behalf. The interposer's logic is still checked there, loaded into the test process. */
#if defined(__SANITIZE_ADDRESS__)
#define T_SKIP_PRELOAD_UNDER_ASAN()                                                                \
    cr_skip_test("preloading an instrumented libgpumux.so is not supported under ASan; the "       \
                 "ordinary build runs this test")
#else
#define T_SKIP_PRELOAD_UNDER_ASAN() (void)0
#endif

/* Starts argv with the interposer preloaded and gpusim first on the library path, stdout and
 * stderr to files; env is "K=V" pairs set in the child ("K" alone unsets). t_wait returns the
 * exit status, or 128 + signal. */
static inline pid_t t_spawn_preloaded(char *const argv[], const char *const env[], const char *out,
                                      const char *err)
{
    char preload[1024], libpath[600];
    t_preload_value(preload, sizeof(preload));
    snprintf(libpath, sizeof(libpath), "%s/lib/gpusim", t_build_dir());
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        unsetenv("BXFI_MAP"); /* the test runner's worker marker: a child is no worker */
        setenv("LD_PRELOAD", preload, 1);
        setenv("LD_LIBRARY_PATH", libpath, 1);
        for (int i = 0; env != NULL && env[i] != NULL; i++) {
            char kv[1024];
            snprintf(kv, sizeof(kv), "%s", env[i]);
            char *eq = strchr(kv, '=');
            if (eq == NULL) {
                unsetenv(kv);
                continue;
            }
            *eq = '\0';
            setenv(kv, eq + 1, 1);
        }
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static inline int t_wait(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline int t_run_preloaded(char *const argv[], const char *const env[], const char *out,
                                  const char *err)
{
    return t_wait(t_spawn_preloaded(argv, env, out, err));
}

static inline char *t_slurp(const char *path)
{
    static char buf[65536];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return buf;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static inline int t_count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

#endif
