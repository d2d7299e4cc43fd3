/* The compute-window plan (daemon/windows.c): a pure function of GPUs and workloads. */
#include "daemon/windows.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define MS 1000000ull

static struct gm_gpu_rec gpu(const char *uuid, enum gm_mode mode)
{
    struct gm_gpu_rec g = {0};
    snprintf(g.uuid, sizeof(g.uuid), "%s", uuid);
    g.mode = mode;
    g.present = 1;
    return g;
}

static struct gm_workload_rec wl(const char *name, const char *uuid, int pct, uint64_t mem,
                                 enum gm_wstate state)
{
    struct gm_workload_rec w = {0};
    snprintf(w.name, sizeof(w.name), "%s", name);
    w.ngpus = 1;
    snprintf(w.gpus[0], sizeof(w.gpus[0]), "%s", uuid);
    w.compute_pct = pct;
    w.memory_limit = mem;
    w.state = state;
    w.desired_running = state == GM_W_RUNNING || state == GM_W_STARTING;
    return w;
}

static void expect_window(const struct gm_window_plan *p, size_t w, uint64_t off, uint64_t len)
{
    const struct gm_window *x = gm_window_plan_find(p, w);
    cr_assert_not_null(x, "workload %zu has no window", w);
    cr_expect_eq(x->period_ns, 100 * MS);
    cr_expect_eq(x->offset_ns, off, "workload %zu: offset %llu", w,
                 (unsigned long long)x->offset_ns);
    cr_expect_eq(x->len_ns, len, "workload %zu: len %llu", w, (unsigned long long)x->len_ns);
}

Test(windows, thirty_seventy)
{
    struct gm_gpu_rec g[] = {gpu("A", GM_MODE_SHARED)};
    struct gm_workload_rec w[] = {wl("a", "A", 30, 0, GM_W_RUNNING),
                                  wl("b", "A", 70, 0, GM_W_RUNNING)};
    struct gm_window_plan p;
    cr_assert_eq(gm_windows_plan(g, 1, w, 2, &p), 0);
    cr_expect_eq(p.nwindows, 2);
    expect_window(&p, 0, 0, 30 * MS);
    expect_window(&p, 1, 30 * MS, 70 * MS);
    cr_expect_eq(p.nreap, 2);
    gm_window_plan_free(&p);
}

Test(windows, caps_past_one_hundred_share_the_period)
{
    struct gm_gpu_rec g[] = {gpu("A", GM_MODE_SHARED)};
    struct gm_workload_rec w[] = {wl("a", "A", 60, 0, GM_W_RUNNING),
                                  wl("b", "A", 90, 0, GM_W_RUNNING),
                                  wl("c", "A", 50, 0, GM_W_RUNNING)};
    struct gm_window_plan p;
    cr_assert_eq(gm_windows_plan(g, 1, w, 3, &p), 0);
    /* scale 200: 30 + 45 + 25 ms, back to back. */
    expect_window(&p, 0, 0, 30 * MS);
    expect_window(&p, 1, 30 * MS, 45 * MS);
    expect_window(&p, 2, 75 * MS, 25 * MS);
    gm_window_plan_free(&p);
}

Test(windows, mps_gpu_gets_no_window)
{
    struct gm_gpu_rec g[] = {gpu("A", GM_MODE_MPS)};
    struct gm_workload_rec w[] = {wl("a", "A", 30, 0, GM_W_RUNNING)};
    struct gm_window_plan p;
    cr_assert_eq(gm_windows_plan(g, 1, w, 1, &p), 0);
    cr_expect_eq(p.nwindows, 0);
    cr_expect_eq(p.nreap, 1, "its region is still swept");
    gm_window_plan_free(&p);
}

Test(windows, stopped_workloads_are_left_out)
{
    struct gm_gpu_rec g[] = {gpu("A", GM_MODE_SHARED)};
    struct gm_workload_rec w[] = {
        wl("a", "A", 80, 0, GM_W_STOPPED), wl("b", "A", 40, 0, GM_W_RUNNING),
        wl("c", "A", 0, 1 << 20, GM_W_RUNNING), wl("d", "A", 0, 0, GM_W_RUNNING)};
    struct gm_window_plan p;
    cr_assert_eq(gm_windows_plan(g, 1, w, 4, &p), 0);
    cr_expect_eq(p.nwindows, 1);
    cr_expect_null(gm_window_plan_find(&p, 0), "a stopped workload got a window");
    /* The stopped one's cap does not count: 40 of 100, not of 120. */
    expect_window(&p, 1, 0, 40 * MS);
    /* Swept: every limited workload (a, b, c); d has no limits and no region. */
    cr_expect_eq(p.nreap, 3);
    cr_expect_eq(p.reap[0], 0);
    cr_expect_eq(p.reap[1], 1);
    cr_expect_eq(p.reap[2], 2);
    gm_window_plan_free(&p);
}

Test(windows, gpus_are_planned_apart)
{
    struct gm_gpu_rec g[] = {gpu("A", GM_MODE_SHARED), gpu("B", GM_MODE_SHARED),
                             gpu("C", GM_MODE_MPS)};
    struct gm_workload_rec w[] = {
        wl("a1", "A", 50, 0, GM_W_RUNNING), wl("b1", "B", 20, 0, GM_W_RUNNING),
        wl("a2", "A", 70, 0, GM_W_RUNNING), wl("b2", "B", 30, 0, GM_W_STARTING),
        wl("c1", "C", 50, 0, GM_W_RUNNING), wl("x", "unknown-gpu", 50, 0, GM_W_RUNNING)};
    struct gm_window_plan p;
    cr_assert_eq(gm_windows_plan(g, 3, w, 6, &p), 0);
    cr_expect_eq(p.nwindows, 4);
    /* A: 120 in all, 50/120 and 70/120 of 100 ms. */
    expect_window(&p, 0, 0, 100 * MS * 50 / 120);
    expect_window(&p, 2, 100 * MS * 50 / 120, 100 * MS * 70 / 120);
    expect_window(&p, 1, 0, 20 * MS);
    expect_window(&p, 3, 20 * MS, 30 * MS);
    cr_expect_null(gm_window_plan_find(&p, 4));
    cr_expect_null(gm_window_plan_find(&p, 5), "a workload on no known GPU got a window");
    cr_expect_eq(p.nreap, 5);
    /* Order: by GPU, then by workload. */
    cr_expect_eq(p.windows[0].workload, 0);
    cr_expect_eq(p.windows[1].workload, 2);
    cr_expect_eq(p.windows[2].workload, 1);
    cr_expect_eq(p.windows[3].workload, 3);
    /* Each window's peers are the other windows of its GPU, and only those. */
    size_t peers[4];
    cr_expect_eq(gm_window_plan_peers(&p, 0, peers, 4), 1u);
    cr_expect_eq(peers[0], 2u, "a1's peer is a2");
    cr_expect_eq(gm_window_plan_peers(&p, 3, peers, 4), 1u);
    cr_expect_eq(peers[0], 1u, "b2's peer is b1");
    gm_window_plan_free(&p);
}

/* Three workloads of one GPU: each names the two others, in window order; a list cut short
 * still counts them all. */
Test(windows, peers_are_the_other_windows_of_the_gpu)
{
    struct gm_gpu_rec g[] = {gpu("A", GM_MODE_SHARED)};
    struct gm_workload_rec w[] = {
        wl("a", "A", 20, 0, GM_W_RUNNING), wl("m", "A", 0, 64 * MS, GM_W_RUNNING),
        wl("b", "A", 30, 0, GM_W_RUNNING), wl("c", "A", 50, 0, GM_W_RUNNING)};
    struct gm_window_plan p;
    cr_assert_eq(gm_windows_plan(g, 1, w, 4, &p), 0);
    cr_assert_eq(p.nwindows, 3);
    size_t peers[3];
    cr_expect_eq(gm_window_plan_peers(&p, 1, peers, 3), 2u);
    cr_expect(peers[0] == 0 && peers[1] == 3, "b's peers: %zu %zu", peers[0], peers[1]);
    cr_expect_eq(gm_window_plan_peers(&p, 0, peers, 1), 2u);
    cr_expect_eq(peers[0], 2u, "a's first peer is b (the memory-only workload has no window)");
    gm_window_plan_free(&p);
}

Test(windows, order_is_stable)
{
    struct gm_gpu_rec g[] = {gpu("A", GM_MODE_SHARED)};
    struct gm_workload_rec w[] = {wl("a", "A", 10, 0, GM_W_RUNNING),
                                  wl("b", "A", 20, 0, GM_W_RUNNING),
                                  wl("c", "A", 30, 0, GM_W_RUNNING)};
    struct gm_window_plan p, q;
    cr_assert_eq(gm_windows_plan(g, 1, w, 3, &p), 0);
    cr_assert_eq(gm_windows_plan(g, 1, w, 3, &q), 0);
    cr_assert_eq(p.nwindows, q.nwindows);
    for (size_t i = 0; i < p.nwindows; i++) {
        cr_expect_eq(p.windows[i].workload, q.windows[i].workload);
        cr_expect_eq(p.windows[i].offset_ns, q.windows[i].offset_ns);
        cr_expect_eq(p.windows[i].len_ns, q.windows[i].len_ns);
    }
    expect_window(&p, 0, 0, 10 * MS);
    expect_window(&p, 1, 10 * MS, 20 * MS);
    expect_window(&p, 2, 30 * MS, 30 * MS);
    gm_window_plan_free(&p);
    gm_window_plan_free(&q);
}

Test(windows, nothing_to_plan)
{
    struct gm_window_plan p;
    cr_assert_eq(gm_windows_plan(NULL, 0, NULL, 0, &p), 0);
    cr_expect_eq(p.nwindows, 0);
    cr_expect_eq(p.nreap, 0);
    gm_window_plan_free(&p);
}
