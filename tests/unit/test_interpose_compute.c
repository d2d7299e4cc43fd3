/* The compute cap on a time-sliced gpusim GPU: gpumux-sample processes under duty-cycle windows
 * written into their regions as gpumuxd's controller writes them, against the sample's solo
 * throughput on the same simulated GPU. */
#include "common/proc.h"
#include "test_interpose_region.h"

#include <math.h>

#define PERIOD_NS (100 * 1000000ull)
#define RUN_S     "4"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/gm-ipc-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char p[160];
    snprintf(p, sizeof(p), "%s/gpusim", dir);
    setenv("GPUSIM_STATE", p, 1);
    unsetenv("GPUSIM_CONFIG");
}

static void teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(compute, .init = setup, .fini = teardown, .timeout = 120);

/* Starts `gpumux-sample -n=8192 -t=RUN_S` (small kernels, saturating) under region `name`. */
static pid_t start_sample(const char *name)
{
    char sample[600], out[200], err[200], env0[200];
    snprintf(sample, sizeof(sample), "%s/bin/gpumux-sample", t_build_dir());
    snprintf(out, sizeof(out), "%s/%s.out", dir, name);
    snprintf(err, sizeof(err), "%s/%s.err", dir, name);
    snprintf(env0, sizeof(env0), "%s=%s/%s.region", GM_REGION_ENV, dir, name);
    char *argv[] = {sample, "-n=8192", "-t=" RUN_S, "-quiet", NULL};
    const char *env[] = {env0, NULL};
    return t_spawn_preloaded(argv, env, out, err);
}

/* Billion interactions per second the sample reported. */
static double rate_of(const char *name, pid_t pid)
{
    cr_assert_eq(t_wait(pid), 0, "%s failed", name);
    char out[200];
    snprintf(out, sizeof(out), "%s/%s.out", dir, name);
    const char *text = t_slurp(out);
    const char *p = strstr(text, "= ");
    double v = 0;
    cr_assert(p != NULL && sscanf(p, "= %lf billion", &v) == 1, "%s printed:\n%s", name, text);
    return v;
}

static struct gm_region *region(const char *name, uint32_t pct)
{
    char p[200];
    snprintf(p, sizeof(p), "%s/%s.region", dir, name);
    return t_region_create(p, 0, pct);
}

static const struct gm_region_proc *slot_of(const struct gm_region *r, pid_t pid)
{
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
        if (r->procs[i].pid == (uint32_t)pid)
            return &r->procs[i];
    return NULL;
}

/* The sample alone, measured once per run of this suite: the first test measures it and the
 * others read it back (each test runs in a process of its own, children of one runner). */
static void solo_cache(char *buf, size_t len, pid_t runner)
{
    /* The runner's start time too: a file a crashed run left is never another run's. */
    snprintf(buf, len, "/tmp/gm-ipc-solo.%d.%llu", (int)runner,
             (unsigned long long)gm_proc_start_time(runner));
}

static double solo_rate(void)
{
    char cache[96];
    solo_cache(cache, sizeof(cache), getppid());
    double v = 0;
    FILE *f = fopen(cache, "r");
    if (f != NULL) {
        int ok = fscanf(f, "%lf", &v) == 1 && v > 0;
        fclose(f);
        if (ok)
            return v;
    }
    /* The better of two runs: a busy machine only ever slows a run down, and a slow solo run
     * would let every capped run look above its cap. */
    region("solo", 0);
    v = rate_of("solo", start_sample("solo"));
    double again = rate_of("solo", start_sample("solo"));
    if (again > v)
        v = again;
    f = fopen(cache, "w");
    if (f != NULL) {
        fprintf(f, "%.6f\n", v);
        fclose(f);
    }
    return v;
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    char cache[96];
    solo_cache(cache, sizeof(cache), getpid());
    unlink(cache);
}

/* How far a share may stray from its cap here. The precision target (two points) is shown by
 * bench/bench_interpose --caps; this suite checks that the cap holds, and on a 2-core virtual
 * machine a single solo run against a single capped run has been seen nearly 7 points apart
 * for noise alone (an uncapped run at 93.4% of the better of two solo runs). Six points still
 * tell a 50% cap from no cap, or from four processes each taking one; the pair's split, which
 * needs no solo run, is held to two. */
#define SHARE_SLACK 6.0

static void expect_share(const char *what, double rate, double solo, double cap)
{
    double share = 100.0 * rate / solo;
    cr_log_info("%s: %.2f of %.2f billion/s solo = %.1f%% (cap %.0f%%)", what, rate, solo, share,
                cap);
    cr_expect(fabs(share - cap) <= SHARE_SLACK, "%s: %.1f%% of the solo throughput, cap %.0f%%",
              what, share, cap);
}

Test(compute, pair_30_70_in_disjoint_windows)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    double solo = solo_rate();
    uint64_t epoch = gm_mono_ns();
    struct gm_region *a = region("a", 30), *b = region("b", 70);
    t_region_window(a, PERIOD_NS, 0, PERIOD_NS * 30 / 100, epoch);
    t_region_window(b, PERIOD_NS, PERIOD_NS * 30 / 100, PERIOD_NS * 70 / 100, epoch);
    pid_t pa = start_sample("a"), pb = start_sample("b");
    usleep(2000000);
    /* Midway, each process's slot shows the time it was held back and the device time used. */
    const struct gm_region_proc *sa = slot_of(a, pa), *sb = slot_of(b, pb);
    cr_assert(sa != NULL && sb != NULL, "no slots for the samples");
    uint64_t ta = sa->throttle_ns, ba = sa->busy_ns, tb = sb->throttle_ns, bb = sb->busy_ns;
    double ra = rate_of("a", pa), rb = rate_of("b", pb);
    expect_share("30% window", ra, solo, 30);
    expect_share("70% window", rb, solo, 70);
    /* The split between the two needs no solo run: both ran side by side. */
    double split = 100.0 * ra / (ra + rb);
    cr_log_info("30/70 split: %.1f / %.1f", split, 100 - split);
    cr_expect(fabs(split - 30) <= 2.0, "30/70 pair split %.1f / %.1f", split, 100 - split);
    cr_expect_gt(ta, 1000000000ull, "30%%: held back only %llu ns in 2 s", (unsigned long long)ta);
    cr_expect_gt(tb, 400000000ull, "70%%: held back only %llu ns in 2 s", (unsigned long long)tb);
    cr_expect_gt(ba, 400000000ull, "30%%: busy %llu ns in 2 s", (unsigned long long)ba);
    cr_expect_gt(bb, 1000000000ull, "70%%: busy %llu ns in 2 s", (unsigned long long)bb);
    cr_expect_gt(bb, ba);
}

Test(compute, alone_at_50)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    double solo = solo_rate();
    struct gm_region *r = region("half", 50);
    t_region_window(r, PERIOD_NS, 0, PERIOD_NS / 2, gm_mono_ns());
    expect_share("50% window", rate_of("half", start_sample("half")), solo, 50);
}

/* Before the daemon has computed a window the cap still holds, with a window of the
 * interposer's own. */
Test(compute, cap_without_a_window_yet)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    double solo = solo_rate();
    region("own", 40);
    expect_share("40% cap, no window", rate_of("own", start_sample("own")), solo, 40);
}

/* Under MPS the cap is MPS's to enforce: launches are not paced. */
Test(compute, mps_gpu_is_not_paced)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    double solo = solo_rate();
    struct gm_region *r = region("mps", 30);
    r->flags = GM_REGION_COMPUTE_BY_MPS;
    pid_t pid = start_sample("mps");
    usleep(2000000);
    /* Never held back: the slot's throttle time stays zero while it runs... */
    const struct gm_region_proc *s = slot_of(r, pid);
    cr_assert(s != NULL, "no slot for the sample");
    uint64_t throttled = s->throttle_ns;
    double share = 100.0 * rate_of("mps", pid) / solo;
    cr_log_info("30%% cap on an mps GPU: %.1f%% of the solo throughput", share);
    cr_expect_eq(throttled, 0, "mps GPU: held back %llu ns in 2 s", (unsigned long long)throttled);
    /* ...and the throughput is the solo run's, far from a 30% pace (the margin is the noise of an
     * uncapped run against the better of two solo runs on a busy machine). */
    cr_expect_gt(share, 85.0, "30%% cap on an mps GPU: %.1f%% of the solo throughput, not paced",
                 share);
}
