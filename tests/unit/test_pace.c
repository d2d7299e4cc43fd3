/* The compute cap's rule (src/interpose/pace.c), driven by a simulated clock and a simulated
 * GPU that runs one process's kernels back to back: the long-run share of device time equals
 * the window's share for kernels from much shorter than the window to longer than it. */
#include "interpose/pace.h"

#include <criterion/criterion.h>
#include <math.h>

#define MS 1000000ull

/* A program that always has the next kernel ready: asks, waits or drains as told, launches,
 * and the GPU runs its kernels one after another. Returns the device time it got in
 * [0, horizon). */
static double run(uint64_t period, uint64_t len, uint64_t kernel, uint64_t horizon)
{
    struct gm_pace_window w = {.period = period, .offset = 0, .len = len, .epoch = 0};
    struct gm_pace_state st;
    gm_pace_init(&st);
    uint64_t now = 1, gpu_free = 0;
    double busy = 0;
    while (now < horizon) {
        struct gm_pace_step s = gm_pace_decide(&w, &st, now, kernel);
        if (s.act == GM_PACE_WAIT) {
            cr_assert_gt(s.until, now, "a wait must move the clock");
            now = s.until;
        } else if (s.act == GM_PACE_DRAIN) {
            uint64_t before = now;
            if (gpu_free > now)
                now = gpu_free;
            gm_pace_drained(&st, before, now + 1000, 0);
            now += 1000;
        } else {
            uint64_t start = gpu_free > now ? gpu_free : now;
            gpu_free = start + kernel;
            if (start < horizon)
                busy += (double)((gpu_free < horizon ? gpu_free : horizon) - start);
            /* The host runs at most one kernel ahead, as the sample does. */
            if (gpu_free > now + kernel)
                now = gpu_free - kernel;
            now += 1000;
        }
    }
    return 100.0 * busy / (double)horizon;
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
    struct gm_pace_state st;
    gm_pace_init(&st);
    struct gm_pace_step s = gm_pace_decide(&w, &st, 70 * MS, MS);
    cr_assert_eq(s.act, GM_PACE_WAIT);
    cr_assert_eq(s.until, 140 * MS);
    s = gm_pace_decide(&w, &st, 140 * MS, MS);
    cr_assert_eq(s.act, GM_PACE_LAUNCH);
}

/* A kernel longer than the whole window runs once the credit of the windows it could not use
 * covers half of it, and its overrun silences the windows after it. */
Test(pace, a_kernel_longer_than_the_window_runs_on_credit_then_pays)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 10 * MS};
    struct gm_pace_state st;
    gm_pace_init(&st);
    int launched_at = -1;
    for (int k = 0; k < 4 && launched_at < 0; k++) {
        struct gm_pace_step s = gm_pace_decide(&w, &st, (uint64_t)k * 100 * MS + MS, 50 * MS);
        if (s.act == GM_PACE_LAUNCH)
            launched_at = k;
        else
            cr_assert_eq(s.act, GM_PACE_WAIT, "window %d", k);
    }
    cr_assert_eq(launched_at, 2, "launched in window %d (credit 20 ms covers half of 50)",
                 launched_at);
    struct gm_pace_step s = gm_pace_decide(&w, &st, 201 * MS + 1, 50 * MS);
    cr_assert_eq(s.act, GM_PACE_DRAIN);
    gm_pace_drained(&st, 201 * MS + 1, 251 * MS, 0);
    cr_expect_eq(st.balance, (int64_t)(230 * MS) - (int64_t)(251 * MS));
}

/* A program that stopped launching keeps no credit: the cap is a limit, not a reservation. */
Test(pace, an_idle_program_earns_no_credit)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 30 * MS};
    struct gm_pace_state st;
    gm_pace_init(&st);
    cr_assert_eq(gm_pace_decide(&w, &st, MS, MS).act, GM_PACE_LAUNCH);
    /* Nothing more in window 0; the next call comes in window 3. */
    cr_assert_eq(gm_pace_decide(&w, &st, 301 * MS, MS).act, GM_PACE_DRAIN);
    gm_pace_drained(&st, 301 * MS, 301 * MS + 10, 0);
    cr_assert_eq(gm_pace_decide(&w, &st, 301 * MS, MS).act, GM_PACE_LAUNCH);
    cr_expect_eq(st.be, (int64_t)(330 * MS), "budget end %lld", (long long)st.be);
}

/* Debt larger than a window skips whole windows, each paying its length. */
Test(pace, debt_skips_windows)
{
    struct gm_pace_window w = {.period = 100 * MS, .len = 10 * MS};
    struct gm_pace_state st;
    gm_pace_init(&st);
    cr_assert_eq(gm_pace_decide(&w, &st, MS, 5 * MS).act, GM_PACE_LAUNCH);
    /* It ran 35 ms instead of 5 (say the estimate was wrong): 25 ms of debt. */
    cr_assert_eq(gm_pace_decide(&w, &st, 2 * MS, 5 * MS).act, GM_PACE_LAUNCH);
    cr_assert_eq(gm_pace_decide(&w, &st, 3 * MS, 5 * MS).act, GM_PACE_DRAIN);
    gm_pace_drained(&st, 3 * MS, 35 * MS, 0);
    cr_assert_eq(st.balance, -(int64_t)(25 * MS));
    cr_assert_eq(gm_pace_decide(&w, &st, 101 * MS, 5 * MS).act, GM_PACE_WAIT);
    cr_assert_eq(gm_pace_decide(&w, &st, 201 * MS, 5 * MS).act, GM_PACE_WAIT);
    cr_assert_eq(gm_pace_decide(&w, &st, 301 * MS, 5 * MS).act, GM_PACE_LAUNCH,
                 "the debt is paid by the two windows it skipped");
}
