/* libgpumux.so's costs and accuracy on gpusim.
 *
 *   bench_interpose BUILD_DIR [--quick]
 *
 * 1. Added cost per call without a compute cap: cuLaunchKernel and cuMemAlloc + cuMemFree, each
 *    called through the hook (libgpumux.so) and directly (gpusim's libcuda.so.1) in the same
 *    process, interleaved in batches; the medians of the per-call times and their difference.
 * 2. Compute-cap accuracy: gpumux-sample (-n=8192, small kernels) under duty-cycle windows of a
 *    100 ms period, as a share of its solo throughput: a 30/70 pair, 50 alone, 10..90 alone. */
#define GM_CUDA_NO_API_NAMES
#include "common/cuda_api.h"
#include "common/clock.h"
#include "region/region.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BATCH  32 /* launches between two synchronisations: the simulated queue never fills */
#define ROUNDS 3000
#define PERIOD (100 * 1000000ull)
#define RUN_S  "3"

static const char noop_ptx[] = ".version 6.0\n"
                               ".target sm_52\n"
                               ".address_size 64\n"
                               ".visible .entry noop()\n"
                               "{\n"
                               "\tret;\n"
                               "}\n";

static const char *build;
static char dir[64] = "/tmp/gm-bench-ip-XXXXXX";

static void *need(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (p == NULL) {
        fprintf(stderr, "bench_interpose: %s: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}
#define SYM(h, sym) ((__typeof__(&sym))need(h, #sym))

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void *open_lib(const char *rel)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", build, rel);
    void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "bench_interpose: %s\n", dlerror());
        exit(1);
    }
    return h;
}

static void check(CUresult rc, const char *what)
{
    if (rc != CUDA_SUCCESS) {
        fprintf(stderr, "bench_interpose: %s: CUDA error %d\n", what, (int)rc);
        exit(1);
    }
}

/* A region as gpumuxd makes it (src/region). */
static struct gm_region *region_create(const char *path, uint64_t limit, uint32_t pct)
{
    struct gm_region_init in = {.workload = "bench",
                                .gpu_uuid = "",
                                .memory_limit = limit,
                                .compute_pct = pct,
                                .uid = (uid_t)-1,
                                .gid = (gid_t)-1};
    struct gm_region *r = NULL;
    struct gm_error err = {0};
    if (gm_region_create(path, &in, &r, &err) < 0) {
        fprintf(stderr, "bench_interpose: %s\n", err.msg);
        exit(1);
    }
    return r;
}

static void window(struct gm_region *r, uint64_t off, uint64_t len, uint64_t epoch)
{
    gm_region_set_window(r, PERIOD, off, len, epoch);
}

/* Per-call costs in a process of its own (the interposer takes its region once). cap 0: a
 * memory-only workload, counted, no cap; else a capped one whose window is cap% of the period,
 * so that the launches measured run inside it and what is added is the pacing's bookkeeping. */
static void call_costs(int rounds, unsigned cap)
{
    char rp[128];
    snprintf(rp, sizeof(rp), "%s/%s.region", dir, cap ? "cap" : "nocap");
    struct gm_region *cr = region_create(rp, 0, cap);
    if (cap)
        window(cr, 0, PERIOD * cap / 100, gm_mono_ns());
    setenv(GM_REGION_ENV, rp, 1);
    void *cuda = open_lib("lib/gpusim/libcuda.so.1");
    void *ip = open_lib("lib/libgpumux.so");

    check(SYM(ip, cuInit)(0), "cuInit");
    CUcontext ctx;
    check(SYM(cuda, cuDevicePrimaryCtxRetain)(&ctx, 0), "cuDevicePrimaryCtxRetain");
    check(SYM(cuda, cuCtxSetCurrent)(ctx), "cuCtxSetCurrent");
    CUmodule mod;
    CUfunction fn;
    check(SYM(cuda, cuModuleLoadData)(&mod, noop_ptx), "cuModuleLoadData");
    check(SYM(cuda, cuModuleGetFunction)(&fn, mod, "noop"), "cuModuleGetFunction");
    __typeof__(&cuCtxSynchronize) sync = SYM(cuda, cuCtxSynchronize);

    __typeof__(&cuLaunchKernel) launch[2] = {SYM(cuda, cuLaunchKernel), SYM(ip, cuLaunchKernel)};
    __typeof__(&cuMemAlloc_v2) alloc[2] = {SYM(cuda, cuMemAlloc_v2), SYM(ip, cuMemAlloc_v2)};
    __typeof__(&cuMemFree_v2) mfree[2] = {SYM(cuda, cuMemFree_v2), SYM(ip, cuMemFree_v2)};

    double *lt[2], *mt[2];
    for (int w = 0; w < 2; w++) {
        lt[w] = calloc((size_t)rounds, sizeof(double));
        mt[w] = calloc((size_t)rounds, sizeof(double));
    }
    for (int i = 0; i < rounds; i++) {
        for (int w = 0; w < 2; w++) {
            int which = (i + w) % 2; /* alternate which goes first */
            uint64_t t0 = gm_mono_ns();
            for (int k = 0; k < BATCH; k++)
                check(launch[which](fn, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL), "cuLaunchKernel");
            lt[which][i] = (double)(gm_mono_ns() - t0) / BATCH;
            sync();
            CUdeviceptr d[BATCH];
            t0 = gm_mono_ns();
            for (int k = 0; k < BATCH; k++) {
                check(alloc[which](&d[k], 4096), "cuMemAlloc");
                check(mfree[which](d[k]), "cuMemFree");
            }
            mt[which][i] = (double)(gm_mono_ns() - t0) / BATCH;
        }
    }
    double l0 = median(lt[0], rounds), l1 = median(lt[1], rounds);
    double m0 = median(mt[0], rounds), m1 = median(mt[1], rounds);
    if (cap) {
        printf("cuLaunchKernel, compute cap %2u%%          %8.1f   %10.1f   %5.1f\n", cap, l0, l1,
               l1 - l0);
        return;
    }
    printf("per call, median of %d batches of %d (ns)   direct   interposed   added\n", rounds,
           BATCH);
    printf("cuLaunchKernel, no cap                   %8.1f   %10.1f   %5.1f\n", l0, l1, l1 - l0);
    printf("cuMemAlloc + cuMemFree, memory limit     %8.1f   %10.1f   %5.1f\n", m0, m1, m1 - m0);
}

static void call_costs_apart(int rounds, unsigned cap)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        call_costs(rounds, cap);
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_interpose: the per-call measurement failed\n");
        exit(1);
    }
}

static pid_t start_sample(const char *name)
{
    char sample[600], out[200], rp[200], preload[600], libpath[600];
    snprintf(sample, sizeof(sample), "%s/bin/gpumux-sample", build);
    snprintf(out, sizeof(out), "%s/%s.out", dir, name);
    snprintf(rp, sizeof(rp), "%s/%s.region", dir, name);
    snprintf(preload, sizeof(preload), "%s/lib/libgpumux.so", build);
    snprintf(libpath, sizeof(libpath), "%s/lib/gpusim", build);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("LD_LIBRARY_PATH", libpath, 1);
        setenv(GM_REGION_ENV, rp, 1);
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        execl(sample, sample, "-n=8192", "-t=" RUN_S, "-quiet", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static double rate_of(const char *name, pid_t pid)
{
    int st;
    waitpid(pid, &st, 0);
    char out[200], buf[4096];
    snprintf(out, sizeof(out), "%s/%s.out", dir, name);
    FILE *f = fopen(out, "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    const char *p = strstr(buf, "= ");
    double v = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || p == NULL || sscanf(p, "= %lf", &v) != 1) {
        fprintf(stderr, "bench_interpose: the sample under %s failed\n", name);
        exit(1);
    }
    return v;
}

static struct gm_region *region(const char *name, uint32_t pct)
{
    char rp[200];
    snprintf(rp, sizeof(rp), "%s/%s.region", dir, name);
    return region_create(rp, 0, pct);
}

static void accuracy(int quick)
{
    region("solo", 0);
    double solo = rate_of("solo", start_sample("solo"));
    printf("\ncompute cap on gpusim: gpumux-sample -n=8192 -t=%s, windows of a %llu ms period\n",
           RUN_S, PERIOD / 1000000);
    printf("solo: %.2f billion interactions/s\n", solo);
    printf("run           cap   measured share   error\n");

    uint64_t epoch = gm_mono_ns();
    window(region("a", 30), 0, PERIOD * 30 / 100, epoch);
    window(region("b", 70), PERIOD * 30 / 100, PERIOD * 70 / 100, epoch);
    pid_t pa = start_sample("a"), pb = start_sample("b");
    double ra = 100 * rate_of("a", pa) / solo, rb = 100 * rate_of("b", pb) / solo;
    printf("pair 30/70    30%%   %13.1f%%   %+5.1f\n", ra, ra - 30);
    printf("pair 30/70    70%%   %13.1f%%   %+5.1f\n", rb, rb - 70);
    for (unsigned cap = quick ? 50 : 10; cap <= 90; cap += quick ? 100 : 10) {
        char name[32];
        snprintf(name, sizeof(name), "alone%u", cap);
        window(region(name, cap), 0, PERIOD * cap / 100, gm_mono_ns());
        double s = 100 * rate_of(name, start_sample(name)) / solo;
        printf("alone         %2u%%   %13.1f%%   %+5.1f\n", cap, s, s - cap);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_interpose BUILD_DIR [--quick]\n");
        return 2;
    }
    build = argv[1];
    int quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
    if (mkdtemp(dir) == NULL)
        return 1;
    char state[128];
    snprintf(state, sizeof(state), "%s/gpusim", dir);
    setenv("GPUSIM_STATE", state, 1);
    unsetenv("GPUSIM_CONFIG");
    call_costs_apart(quick ? 300 : ROUNDS, 0);
    call_costs_apart(quick ? 300 : ROUNDS, 99);
    fflush(stdout);
    accuracy(quick);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
