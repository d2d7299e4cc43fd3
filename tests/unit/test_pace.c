/* The compute cap's rule (src/interpose/pace.c), driven by a simulated clock and a simulated
 * GPU that runs the kernels of one workload's processes one after another in the order they
 * were launched: the long-run share of device time equals the window's share for kernels from
 * much shorter than the window to longer than it, for one process or several sharing one
 * budget. */
#include "interpose/pace.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#define MS   1000000ull
#define MAXP 8

/* One process of the workload: its clock, its part of the pacing state, its kernels. */
struct sim_proc {
    uint64_t now;
    uint64_t last_end; /* when its last kernel ends on the GPU */
    uint64_t est;      /* its estimate of its kernels, as its events would measure it */
    struct gm_pace_proc me;
    int dead;
};

/* A workload of n processes that always have the next kernel ready: each asks, waits or drains
 * as told and launches; the GPU runs the kernels one after another. measured: each process
 * estimates its kernel as events around it would, from the later of its launch and the end of
 * its previous kernel to its end, so the other processes' kernels in between count too (else
 * the estimate is exact). Returns the device time the workload got in [0, horizon), in % of
 * it. */
static double run_n(uint64_t period, uint64_t len, uint64_t kernel, uint64_t horizon, int n,
                    int measured)
{
    struct gm_pace_window w = {.period = period, .offset = 0, .len = len, .epoch = 0};
    struct gm_region_pace st;
    memset(&st, 0, sizeof(st));
    struct sim_proc p[MAXP];
    memset(p, 0, sizeof(p));
    for (int i = 0; i < n; i++)
        p[i].now = 1 + (uint64_t)i * 333;
    uint64_t gpu_free = 0;
    double busy = 0;
    for (;;) {
        int i = 0;
        for (int j = 1; j < n; j++)
            if (p[j].now < p[i].now)
                i = j;
        struct sim_proc *q = &p[i];
        if (q->now >= horizon)
            break;
        uint64_t e = measured ? q->est : kernel;
        struct gm_pace_step s = gm_pace_decide(&w, &st, &q->me, q->now, e);
        if (s.act == GM_PACE_WAIT) {
            cr_assert_gt(s.until, q->now, "a wait must move the clock");
            q->now = s.until;
        } else if (s.act == GM_PACE_DRAIN) {
            uint64_t before = q->now;
            if (q->last_end > q->now)
                q->now = q->last_end;
            gm_pace_drained(&st, &q->me, before, q->now + 1000, 0);
            q->now += 1000;
        } else {
            uint64_t start = gpu_free > q->now ? gpu_free : q->now;
            uint64_t from = q->last_end > q->now ? q->last_end : q->now;
            gpu_free = start + kernel;
            if (start < horizon)
                busy += (double)((gpu_free < horizon ? gpu_free : horizon) - start);
            uint64_t took = gpu_free - from;
            q->est = q->est == 0 ? took : (q->est * 3 + took) / 4;
            /* The host runs at most one kernel ahead of its own work, as the sample does. */
            uint64_t prev = q->last_end;
            q->last_end = gpu_free;
            if (prev > q->now)
                q->now = prev;
            q->now += 1000;
        }
    }
    return 100.0 * busy / (double)horizon;
}

static double run(uint64_t period, uint64_t len, uint64_t kernel, uint64_t horizon)
{
    return run_n(period, len, kernel, horizon, 1, 0);
}

Test(pace, share_equals_the_window_for_kernels_of_any_length)
{
    const uint64_t kernels[] = {MS / 20, MS / 3, 2 * MS, 8 * MS, 20 * MS, 50 * MS};
    for (unsigned c = 10; c <= 90; c += 10)
        for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++) {
            double share = run(100 * MS, c * MS, kernels[i], 200000 * MS);
            cr_expect(fabs(share - c) <= 1.0, "cap %u, %.2f ms kernels: %.2f%%", c,
                      (double)kernels[i] / MS, share);
        }
}

/* The old rule, "launch only what fits", left up to a kernel of every window idle: 8 ms
 * kernels in a 30 ms window got 24 ms. */
Test(pace, rounds_to_the_nearer_kernel_and_carries_the_rest)
{
    double share = run(100 * MS, 30 * MS, 8 * MS, 20000 * MS);
    cr_expect(fabs(share - 30) <= 0.5, "8 ms kernels at 30%%: %.2f%%", share);
}

Test(pace, outside_the_window_it_waits_for_the_next_start)
{
    struct gm_pace_window w = {.period = 100 * MS, .offset = 40 * MS, .len = 20 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc me = {0};
    struct gm_pace_step s = gm_pace_decide(&w, &st, &me, 70 * MS, MS);
    cr_assert_eq(s.act, GM_PACE_WAIT);
    cr_assert_eq(s.until, 140 * MS);
    s = gm_pace_decide(&w, &st, &me, 140 * MS, MS);
    cr_assert_eq(s.act, GM_PACE_LAUNCH);
}

/* A kernel longer than the whole window runs once the credit of the windows it could not use
 * covers half of it, and its overrun silences the windows after it. */
Test(pace, a_kernel_longer_than_the_window_runs_on_credit_then_pays)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 10 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc me = {0};
    int launched_at = -1;
    for (int k = 0; k < 4 && launched_at < 0; k++) {
        struct gm_pace_step s = gm_pace_decide(&w, &st, &me, (uint64_t)k * 100 * MS + MS, 50 * MS);
        if (s.act == GM_PACE_LAUNCH)
            launched_at = k;
        else
            cr_assert_eq(s.act, GM_PACE_WAIT, "window %d", k);
    }
    cr_assert_eq(launched_at, 2, "launched in window %d (credit 20 ms covers half of 50)",
                 launched_at);
    struct gm_pace_step s = gm_pace_decide(&w, &st, &me, 201 * MS + 1, 50 * MS);
    cr_assert_eq(s.act, GM_PACE_DRAIN);
    gm_pace_drained(&st, &me, 201 * MS + 1, 251 * MS, 0);
    cr_expect_eq(st.balance, (int64_t)(230 * MS) - (int64_t)(251 * MS));
}

/* A program that stopped launching keeps no credit: the cap is a limit, not a reservation. */
Test(pace, an_idle_program_earns_no_credit)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 30 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc me = {0};
    cr_assert_eq(gm_pace_decide(&w, &st, &me, MS, MS).act, GM_PACE_LAUNCH);
    /* Nothing more in window 0; the next call comes in window 3. */
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 301 * MS, MS).act, GM_PACE_DRAIN);
    gm_pace_drained(&st, &me, 301 * MS, 301 * MS + 10, 0);
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 301 * MS, MS).act, GM_PACE_LAUNCH);
    cr_expect_eq(st.be, (int64_t)(330 * MS), "budget end %lld", (long long)st.be);
}

/* Debt larger than a window skips whole windows, each paying its length. */
Test(pace, debt_skips_windows)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 10 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc me = {0};
    cr_assert_eq(gm_pace_decide(&w, &st, &me, MS, 5 * MS).act, GM_PACE_LAUNCH);
    /* It ran 35 ms instead of 5 (say the estimate was wrong): 25 ms of debt, and the ratio
     * learns that kernels take longer than estimated. */
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 2 * MS, 5 * MS).act, GM_PACE_LAUNCH);
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 3 * MS, 5 * MS).act, GM_PACE_DRAIN);
    gm_pace_drained(&st, &me, 3 * MS, 35 * MS, 0);
    cr_assert_eq(st.balance, -(int64_t)(25 * MS));
    cr_assert_gt(st.ratio, GM_PACE_RATIO_ONE, "ratio %u", st.ratio);
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 101 * MS, 5 * MS).act, GM_PACE_WAIT);
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 201 * MS, 5 * MS).act, GM_PACE_WAIT);
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 301 * MS, 5 * MS).act, GM_PACE_LAUNCH,
                 "the debt is paid by the two windows it skipped");
}

/* Four processes of one workload share its window: together they get the cap, not four times
 * it, for kernels from 0.05 ms to half the period, with estimates that count the other
 * processes' kernels (as events around a kernel do when several contexts share the GPU). */
Test(pace, four_processes_share_one_budget)
{
    const uint64_t kernels[] = {MS / 20, MS / 3, 8 * MS, 20 * MS, 50 * MS};
    const unsigned caps[] = {10, 30, 50, 90};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
        for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++) {
            double share = run_n(100 * MS, caps[c] * MS, kernels[i], 60000 * MS, 4, 1);
            cr_log_info("4 processes, cap %u, %.2f ms: %.2f%%", caps[c], (double)kernels[i] / MS,
                        share);
            cr_expect(fabs(share - caps[c]) <= 1.5, "4 processes, cap %u, %.2f ms kernels: %.2f%%",
                      caps[c], (double)kernels[i] / MS, share);
        }
}

/* The budget is the workload's: two processes with 10 ms kernels in a 30 ms window launch three
 * kernels between them, not three each. */
Test(pace, one_budget_not_one_per_process)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 30 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc a = {0}, b = {0};
    int launched = 0;
    for (int t = 0; t < 8; t++) {
        struct gm_pace_proc *me = t % 2 == 0 ? &a : &b;
        struct gm_pace_step s = gm_pace_decide(&w, &st, me, MS + (uint64_t)t * 1000, 10 * MS);
        if (s.act == GM_PACE_LAUNCH)
            launched++;
    }
    cr_expect_eq(launched, 3, "%d launches of 10 ms in a 30 ms window", launched);
    cr_expect_eq(st.pending, 2, "both processes have work to drain");
    cr_expect_eq(st.refused, 1);
}

/* A process that launched and never came back (it died, or sleeps) does not hold the window
 * open: the next window opens for the others, its estimate charged. */
Test(pace, a_process_that_never_drains_does_not_stop_the_others)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 30 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc gone = {0}, b = {0};
    cr_assert_eq(gm_pace_decide(&w, &st, &gone, MS, 5 * MS).act, GM_PACE_LAUNCH);
    cr_assert_eq(gm_pace_decide(&w, &st, &b, 2 * MS, 5 * MS).act, GM_PACE_LAUNCH);
    /* b drains after the window's end; the window stays open for the one still pending. */
    cr_assert_eq(gm_pace_decide(&w, &st, &b, 40 * MS, 5 * MS).act, GM_PACE_DRAIN);
    gm_pace_drained(&st, &b, 40 * MS, 40 * MS + 10, 0);
    cr_assert_eq(st.settled, 0);
    struct gm_pace_step s = gm_pace_decide(&w, &st, &b, 40 * MS, 5 * MS);
    cr_assert_eq(s.act, GM_PACE_WAIT);
    cr_assert_eq(s.until, 100 * MS);
    s = gm_pace_decide(&w, &st, &b, 100 * MS, 5 * MS);
    cr_assert_eq(s.act, GM_PACE_LAUNCH, "the next window opens without the missing process");
    cr_expect_eq(st.k, 1);
    cr_expect_eq(st.pending, 1);
    /* The missing process's late drain belongs to a window long settled: ignored. */
    gm_pace_drained(&st, &gone, 150 * MS, 150 * MS + 10, 0);
    cr_expect_eq(st.pending, 1);
}

/* Estimates that are four times too long (each kernel's events saw three others) are corrected
 * by the ratio: a lone workload with such estimates still gets its cap. */
Test(pace, the_ratio_corrects_estimates_that_are_off)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 30 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc me = {0};
    uint64_t now = 1, gpu_free = 0, busy = 0, horizon = 20000 * MS, kernel = 2 * MS;
    while (now < horizon) {
        struct gm_pace_step s = gm_pace_decide(&w, &st, &me, now, 4 * kernel);
        if (s.act == GM_PACE_WAIT) {
            now = s.until;
        } else if (s.act == GM_PACE_DRAIN) {
            uint64_t before = now;
            now = gpu_free > now ? gpu_free : now;
            gm_pace_drained(&st, &me, before, now + 1000, 0);
            now += 1000;
        } else {
            uint64_t start = gpu_free > now ? gpu_free : now;
            gpu_free = start + kernel;
            busy += kernel;
            if (gpu_free > now + kernel)
                now = gpu_free - kernel;
            now += 1000;
        }
    }
    double share = 100.0 * (double)busy / (double)horizon;
    cr_expect(fabs(share - 30) <= 1.0, "estimates 4x too long: %.2f%%", share);
    cr_expect(st.ratio < GM_PACE_RATIO_ONE / 3, "ratio %u of %u", st.ratio, GM_PACE_RATIO_ONE);
}

/* Several workloads, one process each, in disjoint windows that fill the period, on one GPU
 * that runs every kernel in the order it was launched. switch_permille: what a kernel queued
 * while another workload's work is outstanding costs on top of its own time (gpusim charges 99,
 * 9.9%, as a real time-sliced GPU pays for its context switches; 0: nothing). peers: each
 * window's first kernel holds until the peers' work is done, by what their pacing states say;
 * else it queues at once behind it, and its events see the wait (not charged). A drain reports
 * at the time its work ended, never before: a peer must not learn the future. Shares are the
 * useful device time (the kernels' own length), as a throughput against a solo run. */
struct sim_workload {
    struct gm_pace_window w;
    struct gm_region_pace st;
    struct gm_pace_proc me;
    uint64_t now, last_end, est, busy;
    uint64_t first_from, first_end, first_e, drain_before;
    int first_pending, drain_due;
};

static void run_workloads(const unsigned *caps, int n, uint64_t kernel, uint64_t horizon,
                          unsigned switch_permille, int peers, double *shares, double *used)
{
    struct sim_workload x[4];
    memset(x, 0, sizeof(x));
    uint64_t offset = 0, gpu_free = 0, busy = 0;
    for (int j = 0; j < n; j++) {
        x[j].w = (struct gm_pace_window){.period = 100 * MS,
                                         .offset = offset,
                                         .len = caps[j] * MS,
                                         .epoch = 0,
                                         .peers = peers ? (uint32_t)n - 1 : 0};
        offset += caps[j] * MS;
        x[j].now = 1 + (uint64_t)j * 777;
    }
    for (;;) {
        struct sim_workload *q = &x[0];
        for (int j = 1; j < n; j++)
            if (x[j].now < q->now)
                q = &x[j];
        if (q->now >= horizon)
            break;
        if (q->drain_due) {
            uint64_t waited = 0;
            if (q->first_pending) {
                uint64_t took = q->first_end - q->first_from;
                waited = took > q->first_e ? took - q->first_e : 0;
                q->first_pending = 0;
            }
            gm_pace_drained(&q->st, &q->me, q->drain_before, q->now + 1000, waited);
            q->drain_due = 0;
            q->now += 1000;
            continue;
        }
        struct gm_pace_step s = gm_pace_decide(&q->w, &q->st, &q->me, q->now, q->est);
        if (s.act == GM_PACE_PEERS) {
            uint64_t until = 0;
            for (int j = 0; j < n; j++) {
                uint64_t t = &x[j] == q
                                 ? 0
                                 : gm_pace_peer_busy(&x[j].st, q->me.peers_ws, q->w.period, q->now);
                until = t > until ? t : until;
            }
            q->me.peers_until = until;
            q->me.peers_read = 1;
            continue;
        }
        cr_assert(peers || s.act != GM_PACE_PEERS);
        if (s.act == GM_PACE_WAIT) {
            cr_assert_gt(s.until, q->now, "a wait must move the clock");
            q->now = s.until;
            continue;
        }
        if (s.act == GM_PACE_DRAIN) {
            q->drain_before = q->now;
            q->drain_due = 1;
            if (q->last_end > q->now)
                q->now = q->last_end;
            continue;
        }
        int contended = 0;
        for (int j = 0; j < n; j++)
            if (&x[j] != q && x[j].last_end > q->now)
                contended = 1;
        uint64_t from = q->last_end > q->now ? q->last_end : q->now;
        uint64_t start = gpu_free > from ? gpu_free : from;
        gpu_free = start + (contended ? kernel + kernel * switch_permille / 1000 : kernel);
        if (start < horizon) {
            uint64_t b = start + kernel < horizon ? kernel : horizon - start;
            busy += b;
            q->busy += b;
        }
        if (q->est == 0) {
            q->est = kernel;
        } else if (s.first) {
            q->first_pending = 1;
            q->first_from = from;
            q->first_end = gpu_free;
            q->first_e = q->est;
        }
        uint64_t prev = q->last_end;
        q->last_end = gpu_free;
        if (prev > q->now)
            q->now = prev;
        q->now += 1000;
    }
    for (int j = 0; j < n; j++)
        shares[j] = 100.0 * (double)x[j].busy / (double)horizon;
    *used = 100.0 * (double)busy / (double)horizon;
}

/* Without a cost for switching and without the hold: the rule alone lands each cap within a
 * point with the GPU kept busy, for kernels from 0.05 ms to half the period. */
Test(pace, workloads_in_disjoint_windows_get_their_caps)
{
    const uint64_t kernels[] = {MS / 20, MS / 3, 2 * MS, 8 * MS, 20 * MS, 50 * MS};
    static const unsigned sets[][4] = {{30, 70}, {50, 50}, {20, 30, 50}};
    static const int count[] = {2, 2, 3};
    for (size_t c = 0; c < 3; c++)
        for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++) {
            double shares[4], used;
            run_workloads(sets[c], count[c], kernels[i], 100000 * MS, 0, 0, shares, &used);
            for (int j = 0; j < count[c]; j++)
                cr_expect(fabs(shares[j] - sets[c][j]) <= 1.0,
                          "%.2f ms kernels, set %zu: workload %d at cap %u got %.2f%%",
                          (double)kernels[i] / MS, c, j, sets[c][j], shares[j]);
            cr_expect_geq(used, 99.0, "%.2f ms kernels, set %zu: GPU used %.2f%%",
                          (double)kernels[i] / MS, c, used);
        }
}

Test(pace, holding_for_the_peers_keeps_caps_where_switching_costs)
{
    const uint64_t kernels[] = {MS / 20, MS / 3, 2 * MS, 8 * MS, 20 * MS, 35 * MS, 50 * MS};
    static const unsigned sets[][4] = {{30, 70}, {50, 50}, {20, 30, 50}};
    static const int count[] = {2, 2, 3};
    for (size_t c = 0; c < 3; c++)
        for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++) {
            double shares[4], used;
            run_workloads(sets[c], count[c], kernels[i], 20000 * MS, 99, 1, shares, &used);
            for (int j = 0; j < count[c]; j++)
                cr_expect(fabs(shares[j] - sets[c][j]) <= 2.0,
                          "%.2f ms kernels, set %zu: workload %d at cap %u got %.2f%%",
                          (double)kernels[i] / MS, c, j, sets[c][j], shares[j]);
            cr_expect_geq(used, 95.0, "%.2f ms kernels, set %zu: GPU used %.2f%%",
                          (double)kernels[i] / MS, c, used);
        }
    /* Without the hold the same GPU loses the switches at every boundary: the check above is
     * the hold's doing. */
    double shares[4], used;
    run_workloads(sets[0], 2, 50 * MS, 20000 * MS, 99, 0, shares, &used);
    cr_expect_lt(used, 95.0, "50 ms kernels without holding: GPU used %.2f%%", used);
}

/* A peer that lies (its pacing state always says its work ends a minute from now) delays each
 * of our windows by one period at most: the workload still launches, and gets at least half
 * its cap, which is what a neighbour that launches outside its windows costs it anyway. */
Test(pace, a_lying_peer_delays_a_window_by_a_period_at_most)
{
    const uint64_t kernels[] = {MS / 3, 8 * MS, 50 * MS};
    for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++) {
        uint64_t kernel = kernels[i];
        struct gm_pace_window w = {.period = 100 * MS, .len = 50 * MS, .peers = 1};
        struct gm_region_pace st;
        struct gm_pace_proc me;
        memset(&st, 0, sizeof(st));
        gm_pace_proc_init(&me);
        uint64_t now = 1, last_end = 0, busy = 0, est = kernel, horizon = 20000 * MS;
        uint64_t hold_from = 0, longest = 0;
        while (now < horizon) {
            struct gm_pace_step s = gm_pace_decide(&w, &st, &me, now, est);
            if (s.act == GM_PACE_PEERS) {
                me.peers_until = now + 60000 * MS;
                me.peers_read = 1;
                if (hold_from == 0)
                    hold_from = now;
            } else if (s.act == GM_PACE_WAIT) {
                cr_assert_gt(s.until, now);
                now = s.until;
            } else if (s.act == GM_PACE_DRAIN) {
                uint64_t before = now;
                now = last_end > now ? last_end : now;
                gm_pace_drained(&st, &me, before, now + 1000, 0);
                now += 1000;
            } else {
                if (s.first && hold_from != 0) {
                    longest = now - hold_from > longest ? now - hold_from : longest;
                    hold_from = 0;
                }
                uint64_t start = last_end > now ? last_end : now;
                busy += kernel;
                last_end = start + kernel;
                now = (last_end - kernel > now ? last_end - kernel : now) + 1000;
            }
        }
        double share = 100.0 * (double)busy / (double)horizon;
        cr_expect_leq(longest, 100 * MS + GM_PACE_HOLD_POLL_NS, "%.2f ms kernels: held %.1f ms",
                      (double)kernel / MS, (double)longest / MS);
        cr_expect(share >= 24.0 && share <= 52.0,
                  "%.2f ms kernels at 50%% with a lying peer: %.1f%%", (double)kernel / MS, share);
    }
}

/* A kernel never measured is timed alone: while one process times it, the workload's other
 * processes launch nothing, and one that also has a kernel to time waits its turn. */
Test(pace, a_first_timing_holds_the_other_processes_back)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 50 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc a = {0}, b = {0}, c = {0};
    cr_assert_eq(gm_pace_decide(&w, &st, &a, MS, 0).act, GM_PACE_LAUNCH);
    struct gm_pace_step s = gm_pace_decide(&w, &st, &b, MS + 10, 0);
    cr_assert_eq(s.act, GM_PACE_WAIT, "a second kernel to time waits for the first");
    cr_assert_lt(s.until, 2 * MS, "and looks again soon");
    cr_assert_eq(gm_pace_decide(&w, &st, &c, MS + 20, 2 * MS).act, GM_PACE_WAIT,
                 "a measured kernel waits too: it would run inside the timing");
    gm_pace_timed(&st, &a, 11 * MS);
    cr_expect_eq(st.tail, 11 * MS);
    cr_assert_eq(gm_pace_decide(&w, &st, &c, 11 * MS, 2 * MS).act, GM_PACE_LAUNCH);
    /* b's turn: it claims the timing and waits for the work launched before to end. */
    s = gm_pace_decide(&w, &st, &b, 11 * MS + 10, 0);
    cr_assert_eq(s.act, GM_PACE_WAIT);
    cr_expect_eq(s.until, 13 * MS, "until c's kernel should be done");
    cr_assert_eq(gm_pace_decide(&w, &st, &c, 12 * MS, 2 * MS).act, GM_PACE_WAIT,
                 "b holds the claim");
    cr_assert_eq(gm_pace_decide(&w, &st, &b, 13 * MS, 0).act, GM_PACE_LAUNCH);
}

/* A claim whose process died lapses: the others are not held for ever. */
Test(pace, a_timing_claim_lapses)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 50 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc dead = {0}, b = {0};
    cr_assert_eq(gm_pace_decide(&w, &st, &dead, MS, 0).act, GM_PACE_LAUNCH);
    cr_assert_eq(gm_pace_decide(&w, &st, &b, 2 * MS, MS).act, GM_PACE_WAIT);
    struct gm_pace_step s = gm_pace_decide(&w, &st, &b, 2001 * MS + MS, MS);
    cr_assert_eq(s.act, GM_PACE_LAUNCH, "2 s later the claim no longer holds");
}

/* The timed kernel is charged what it took, by the clock, even when its process drains only
 * after the window: 50 ms in a 30 ms window is 20 ms of debt. */
Test(pace, a_timed_kernel_is_charged)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 30 * MS};
    struct gm_region_pace st = {0};
    struct gm_pace_proc me = {0};
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 0, 0).act, GM_PACE_LAUNCH);
    gm_pace_timed(&st, &me, 50 * MS);
    /* Its next launch comes at 50 ms, past the window: it drains at once. */
    cr_assert_eq(gm_pace_decide(&w, &st, &me, 50 * MS, 50 * MS).act, GM_PACE_DRAIN);
    gm_pace_drained(&st, &me, 50 * MS, 50 * MS + 10, 0);
    cr_assert_eq(st.settled, 1);
    cr_expect_eq(st.balance, -(int64_t)(20 * MS), "balance %lld", (long long)st.balance);
}
