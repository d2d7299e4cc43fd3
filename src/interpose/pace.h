/* The compute cap's decision, pure: given the workload's window, the pacing state, the clock
 * and the expected device time of the kernel about to be launched, say whether it goes now, or
 * what to do first (wait for a window, drain the work launched). launch.c is the executor: it
 * sleeps, synchronizes and launches, and hands the outcomes back. The rule, and why the share
 * converges to the cap, is in docs/interpose.md ("Compute", "What the interposer does"). */
#ifndef GM_INTERPOSE_PACE_H
#define GM_INTERPOSE_PACE_H

#include <stdint.h>

/* The workload's window: it may launch in [epoch + k*period + offset, ... + len). */
struct gm_pace_window {
    uint64_t period, offset, len, epoch;
};

struct gm_pace_state {
    int64_t k;         /* the window the fields below belong to; GM_PACE_NONE before any */
    uint64_t ws, we;   /* its start and end */
    int64_t be;        /* the end of its budget: we + the balance it started with */
    uint64_t tail;     /* when the work launched in it should be done */
    int64_t balance;   /* carried between windows: < 0 an overrun to pay, > 0 a rounding credit */
    uint32_t launched; /* launches in window k not yet drained */
    uint32_t refused;  /* a launch did not fit window k's budget */
    uint32_t settled;  /* window k is over for us: its balance is carried */
};

#define GM_PACE_NONE INT64_MIN
/* A balance never goes below this: a kernel longer than anything sane must not silence a
 * workload for minutes. */
#define GM_PACE_MAX_DEBT_NS 10000000000ll

enum gm_pace_act {
    GM_PACE_LAUNCH, /* launch now: the state counts it (tail moved by the expected time) */
    GM_PACE_WAIT,   /* sleep until `until`, then ask again */
    GM_PACE_DRAIN,  /* synchronize the context, call gm_pace_drained, then ask again */
};

struct gm_pace_step {
    enum gm_pace_act act;
    uint64_t until; /* GM_PACE_WAIT: CLOCK_MONOTONIC ns */
};

void gm_pace_init(struct gm_pace_state *st);

/* The window containing now (returns 1), or the next one (0): its index and bounds. */
int gm_pace_window_at(const struct gm_pace_window *w, uint64_t now, int64_t *k, uint64_t *ws,
                      uint64_t *we);

/* One decision for a kernel expected to take e ns (0: never measured, it is launched on an
 * idle context and timed). */
struct gm_pace_step gm_pace_decide(const struct gm_pace_window *w, struct gm_pace_state *st,
                                   uint64_t now, uint64_t e);

/* The drain asked for ended: before is the clock when it began, after when the synchronize
 * returned, waited how long the window's first kernel waited for the GPU to finish work from
 * before the window (another workload's overrun: not charged to us; 0 when unknown). Carries
 * the window's balance. */
void gm_pace_drained(struct gm_pace_state *st, uint64_t before, uint64_t after, uint64_t waited);

/* A launch the state counted failed (nothing queued): its time is given back. */
void gm_pace_unlaunch(struct gm_pace_state *st, uint64_t e);

#endif
