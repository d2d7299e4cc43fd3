/* libgpumux.so's costs and accuracy on gpusim.
 *
 *   bench_interpose BUILD_DIR [--quick] [--caps [--kernel-ms=MS]]
 *
 * 1. Added cost per call without a compute cap: cuLaunchKernel and cuMemAlloc + cuMemFree, each
 *    called through the hook (libgpumux.so) and directly (gpusim's libcuda.so.1) in the same
 *    process, interleaved in batches; the medians of the per-call times and their difference.
 * 2. Compute-cap accuracy: gpumux-sample (-n=8192, small kernels) under duty-cycle windows of a
 *    100 ms period, as a share of its solo throughput: a 30/70 pair, 50 alone, 10..90 alone.
 * --caps instead: kernel duration (0.05 to 50 ms) x cap, alone, in groups of workloads whose
 *    caps add up to 100 (30/70, 50/50, 20/30/50) and for one workload of four processes;
 *    --quick: fewer durations and caps; --kernel-ms=MS: that duration alone, with every cap
 *    and group. For each duration a solo `gpumux-sample -kernel-ms=MS`
 *    finds the body count and every run of that duration uses it (-n), so that all of them run
 *    the same kernel. The four processes' share is the GPU's utilisation (NVML's, as
 *    nvidia-smi shows it) averaged over the run: their kernels interleave, and gpusim charges
 *    the context switches of a time-sliced GPU as a real one does, so throughput alone would
 *    not say how much of the GPU they held. */
#define GM_CUDA_NO_API_NAMES
#include "common/cuda_api.h"
#include "common/clock.h"
#include "common/nvml_api.h"
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

/* The sample under region NAME: -n=8192 (0.3 ms kernels on the simulated T4) for RUN_S, or
 * with kernel_ms > 0 kernels of that length for seconds. */
/* Set by the --caps sweep for each duration: the body count every run uses (0: -kernel-ms). */
static unsigned bodies;

static pid_t start_sample_ex(const char *name, const char *out_name, double kernel_ms,
                             double seconds)
{
    char sample[600], out[200], rp[200], preload[600], libpath[600], karg[64], targ[64];
    snprintf(sample, sizeof(sample), "%s/bin/gpumux-sample", build);
    snprintf(out, sizeof(out), "%s/%s.out", dir, out_name);
    snprintf(rp, sizeof(rp), "%s/%s.region", dir, name);
    snprintf(preload, sizeof(preload), "%s/lib/libgpumux.so", build);
    snprintf(libpath, sizeof(libpath), "%s/lib/gpusim", build);
    if (kernel_ms > 0 && bodies > 0)
        snprintf(karg, sizeof(karg), "-n=%u", bodies);
    else if (kernel_ms > 0)
        snprintf(karg, sizeof(karg), "-kernel-ms=%g", kernel_ms);
    else
        snprintf(karg, sizeof(karg), "-n=8192");
    snprintf(targ, sizeof(targ), "-t=%g", kernel_ms > 0 ? seconds : atof(RUN_S));
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("LD_LIBRARY_PATH", libpath, 1);
        setenv(GM_REGION_ENV, rp, 1);
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        execl(sample, sample, karg, targ, "-quiet", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static pid_t start_sample(const char *name)
{
    return start_sample_ex(name, name, 0, 0);
}

/* What the sample run as `name` printed (its first len - 1 bytes). */
static void read_output(const char *name, char *buf, size_t len)
{
    char out[200];
    snprintf(out, sizeof(out), "%s/%s.out", dir, name);
    FILE *f = fopen(out, "r");
    size_t n = f != NULL ? fread(buf, 1, len - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
}

static double rate_of(const char *name, pid_t pid)
{
    int st;
    waitpid(pid, &st, 0);
    char buf[4096];
    read_output(name, buf, sizeof(buf));
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

/* Names the other regions of a group as region i's peers, as gpumuxd does for the capped
 * workloads of one GPU. */
static void peers_of(struct gm_region **rs, char (*names)[32], int n, int i)
{
    const char *peers[8];
    int k = 0;
    for (int j = 0; j < n; j++)
        if (j != i)
            peers[k++] = names[j];
    gm_region_set_peers(rs[i], peers, (size_t)k);
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
    struct gm_region *rs[2] = {region("a", 30), region("b", 70)};
    char names[2][32] = {"a", "b"};
    window(rs[0], 0, PERIOD * 30 / 100, epoch);
    window(rs[1], PERIOD * 30 / 100, PERIOD * 70 / 100, epoch);
    peers_of(rs, names, 2, 0);
    peers_of(rs, names, 2, 1);
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

/* --caps: kernel duration x cap. Each duration gets its solo run (one process, and four for
 * the four-process workload) in the same run; shares are against it, and the pairs' splits
 * (a / (a + b)) do not depend on it at all. */
static double caps_run_s(double kernel_ms, int quick)
{
    /* Long kernels need more periods for the count of kernels to settle. */
    double s = kernel_ms * 0.24;
    double floor_s = quick ? 2.0 : 3.0;
    return s > floor_s ? s : floor_s;
}

static void caps_group(const char *label, double kernel_ms, double solo, double secs,
                       const unsigned *caps, int n)
{
    uint64_t epoch = gm_mono_ns(), off = 0;
    pid_t pids[8];
    char names[8][32];
    struct gm_region *rs[8];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "g%d_%u", i, caps[i]);
        rs[i] = region(names[i], caps[i]);
        window(rs[i], off, PERIOD * caps[i] / 100, epoch);
        off += PERIOD * caps[i] / 100;
    }
    for (int i = 0; i < n; i++)
        peers_of(rs, names, n, i);
    for (int i = 0; i < n; i++)
        pids[i] = start_sample_ex(names[i], names[i], kernel_ms, secs);
    double r[8], sum = 0, used = 0;
    for (int i = 0; i < n; i++) {
        r[i] = rate_of(names[i], pids[i]);
        sum += r[i];
        used += 100 * r[i] / solo;
    }
    printf("%6.2f ms  %-9s", kernel_ms, label);
    for (int i = 0; i < n; i++)
        printf(" %2u%%: %5.1f%% (split %5.1f%%)", caps[i], 100 * r[i] / solo, 100 * r[i] / sum);
    printf("  GPU used %5.1f%%\n", used);
    fflush(stdout);
}

/* GPU 0's utilisation through gpusim's NVML, as nvidia-smi reads it: the share of the last
 * second during which a kernel ran. */
static __typeof__(&nvmlDeviceGetUtilizationRates) util_rates;
static nvmlDevice_t gpu0;

static void nvml_open(void)
{
    void *h = open_lib("lib/gpusim/libnvidia-ml.so.1");
    if (SYM(h, nvmlInit_v2)() != NVML_SUCCESS ||
        SYM(h, nvmlDeviceGetHandleByIndex_v2)(0, &gpu0) != NVML_SUCCESS) {
        fprintf(stderr, "bench_interpose: gpusim's NVML does not answer\n");
        exit(1);
    }
    util_rates = SYM(h, nvmlDeviceGetUtilizationRates);
}

/* procs samples of kernel_ms under region name (out files name0..), for secs. Returns the sum
 * of their throughputs; *util (may be NULL): the GPU's utilisation averaged over the run, one
 * reading a second from the second second on. */
static double run_procs(const char *name, double kernel_ms, double secs, int procs, double *util)
{
    pid_t p[8];
    char out[32];
    uint64_t t0 = gm_mono_ns();
    for (int i = 0; i < procs; i++) {
        snprintf(out, sizeof(out), "%s%d", name, i);
        p[i] = start_sample_ex(name, out, kernel_ms, secs);
    }
    double sum_util = 0;
    int readings = 0;
    for (double t = 1.5; util != NULL && t + 0.3 < secs; t += 1.0) {
        gm_sleep_until_ns(t0 + (uint64_t)(t * 1e9));
        nvmlUtilization_t u;
        if (util_rates(gpu0, &u) == NVML_SUCCESS) {
            sum_util += u.gpu;
            readings++;
        }
    }
    if (util != NULL)
        *util = readings > 0 ? sum_util / readings : -1;
    double sum = 0;
    for (int i = 0; i < procs; i++) {
        snprintf(out, sizeof(out), "%s%d", name, i);
        sum += rate_of(out, p[i]);
    }
    return sum;
}

/* The body count a solo gpumux-sample -kernel-ms=MS run chose, from its summary. */
static unsigned bodies_for(double kernel_ms)
{
    bodies = 0;
    region("calib", 0);
    pid_t pid = start_sample_ex("calib", "calib", kernel_ms, 0.5);
    rate_of("calib", pid);
    char buf[4096];
    read_output("calib", buf, sizeof(buf));
    /* The summary's "N bodies, total time for K iterations: T ms". */
    const char *q = strstr(buf, " bodies, total time");
    while (q != NULL && q > buf && q[-1] != '\n')
        q--;
    unsigned v = 0;
    if (q == NULL || sscanf(q, "%u bodies", &v) != 1 || v == 0) {
        fprintf(stderr, "bench_interpose: -kernel-ms=%g printed no body count\n", kernel_ms);
        exit(1);
    }
    return v;
}

static void caps_sweep(int quick, double only_ms)
{
    static const double full_ms[] = {0.05, 0.3, 2, 8, 20, 50};
    static const double quick_ms[] = {0.3, 8, 50};
    static const unsigned full_caps[] = {10, 30, 50, 70, 90}, quick_caps[] = {10, 50, 90};
    const double *kms = quick ? quick_ms : full_ms;
    int nk = quick ? 3 : 6;
    if (only_ms > 0) {
        kms = &only_ms;
        nk = 1;
        quick = 0;
    }
    const unsigned *caps = quick ? quick_caps : full_caps;
    int nc = quick ? 3 : 5;
    printf("\ncompute caps on gpusim: gpumux-sample -kernel-ms=MS under windows of a %llu ms "
           "period; share = throughput / the solo run's of the same duration, in this run\n",
           PERIOD / 1000000);
    nvml_open();
    for (int i = 0; i < nk; i++) {
        double secs = caps_run_s(kms[i], quick);
        bodies = bodies_for(kms[i]);
        region("solo", 0);
        double solo = run_procs("solo", kms[i], secs, 1, NULL);
        printf("%6.2f ms  solo       %.2f billion interactions/s, -n=%u, runs of %.0f s\n", kms[i],
               solo, bodies, secs);
        printf("%6.2f ms  alone    ", kms[i]);
        for (int c = 0; c < nc; c++) {
            char name[32];
            snprintf(name, sizeof(name), "alone%u", caps[c]);
            window(region(name, caps[c]), 0, PERIOD * caps[c] / 100, gm_mono_ns());
            double sh = 100 * rate_of(name, start_sample_ex(name, name, kms[i], secs)) / solo;
            printf(" %2u%%: %5.1f%%", caps[c], sh);
            fflush(stdout);
        }
        printf("\n");
        static const unsigned p3070[] = {30, 70}, p5050[] = {50, 50}, t[] = {20, 30, 50};
        caps_group("30/70", kms[i], solo, secs, p3070, 2);
        if (!quick) {
            caps_group("50/50", kms[i], solo, secs, p5050, 2);
            caps_group("20/30/50", kms[i], solo, secs, t, 3);
        }
        /* One workload, four processes, one cap: the GPU's utilisation, uncapped and capped. */
        double secs4 = secs > 4 ? secs : 4;
        double u_solo4, u_four;
        region("solo4", 0);
        double solo4 = run_procs("solo4", kms[i], secs4, 4, &u_solo4);
        window(region("four", 30), 0, PERIOD * 30 / 100, gm_mono_ns());
        double four = run_procs("four", kms[i], secs4, 4, &u_four);
        printf("%6.2f ms  4 procs    30%%: GPU busy %5.1f%% (uncapped %5.1f%%); throughput %5.1f%% "
               "of 4 uncapped processes', %5.1f%% of one's\n",
               kms[i], u_four, u_solo4, 100 * four / solo4, 100 * four / solo);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_interpose BUILD_DIR [--quick] [--caps [--kernel-ms=MS]]\n");
        return 2;
    }
    build = argv[1];
    int quick = 0, caps = 0;
    double only_ms = 0;
    for (int i = 2; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--caps") == 0)
            caps = 1;
        else if (strncmp(argv[i], "--kernel-ms=", 12) == 0) {
            only_ms = strtod(argv[i] + 12, &end);
            if (end == argv[i] + 12 || *end != '\0' || !(only_ms >= 0.01 && only_ms <= 1000)) {
                fprintf(stderr, "bench_interpose: --kernel-ms wants 0.01 to 1000 ms, not '%s'\n",
                        argv[i] + 12);
                return 2;
            }
        } else {
            fprintf(stderr, "bench_interpose: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (mkdtemp(dir) == NULL)
        return 1;
    char state[128];
    snprintf(state, sizeof(state), "%s/gpusim", dir);
    setenv("GPUSIM_STATE", state, 1);
    unsetenv("GPUSIM_CONFIG");
    if (caps) {
        caps_sweep(quick, only_ms);
    } else {
        call_costs_apart(quick ? 300 : ROUNDS, 0);
        call_costs_apart(quick ? 300 : ROUNDS, 99);
        fflush(stdout);
        accuracy(quick);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
