/* Shared by the interposer's tests: a limits region written the way gpumuxd writes one, and
 * running a program under the interposer. */
#ifndef GM_TEST_INTERPOSE_REGION_H
#define GM_TEST_INTERPOSE_REGION_H

#include "gpumux/region.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ull * 1024ull)

static inline uint64_t t_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Creates the region file (mode 0660, robust process-shared lock) and returns it mapped. The
 * magic is written last, as the daemon must: a reader never sees a half-made region as valid. */
static inline struct gm_region *t_region_create(const char *path, uint64_t memory_limit,
                                                uint32_t compute_pct)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
    cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
    cr_assert(ftruncate(fd, sizeof(struct gm_region)) == 0);
    struct gm_region *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert(r != MAP_FAILED);
    r->version = GM_REGION_VERSION;
    r->size = sizeof(*r);
    snprintf(r->workload, sizeof(r->workload), "test");
    r->memory_limit = memory_limit;
    r->compute_pct = compute_pct;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&r->lock, &a);
    pthread_mutexattr_destroy(&a);
    __atomic_store_n(&r->magic, GM_REGION_MAGIC, __ATOMIC_RELEASE);
    return r;
}

/* The daemon's side of a schedule change: fields first, then the generation. */
static inline void t_region_window(struct gm_region *r, uint64_t period, uint64_t offset,
                                   uint64_t len, uint64_t epoch)
{
    __atomic_store_n(&r->period_ns, period, __ATOMIC_RELAXED);
    __atomic_store_n(&r->window_offset_ns, offset, __ATOMIC_RELAXED);
    __atomic_store_n(&r->window_len_ns, len, __ATOMIC_RELAXED);
    __atomic_store_n(&r->epoch_ns, epoch, __ATOMIC_RELAXED);
    __atomic_add_fetch(&r->generation, 1, __ATOMIC_RELEASE);
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
