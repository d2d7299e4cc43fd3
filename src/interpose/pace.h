/* The compute cap's decision, pure: given the workload's window, the workload's pacing state
 * (struct gm_region_pace, in its region, shared by all its processes), this process's part, the
 * clock and the expected device time of the kernel about to be launched, say whether it goes
 * now, or what to do first (wait for a window, drain the work launched). launch.c is the
 * executor: it takes the region's lock around each call, sleeps, synchronizes and launches
 * outside it, and hands the outcomes back. The rule, and why the share converges to the cap,
 * is in docs/interpose.md ("Compute", "What the interposer does"). */
#ifndef GM_INTERPOSE_PACE_H
#define GM_INTERPOSE_PACE_H

#include <gpumux/region.h>

#include <stdint.h>

/* The workload's window: it may launch in [epoch + k*period + offset, ... + len). */
struct gm_pace_window {
    uint64_t period, offset, len, epoch;
    uint32_t peers; /* other capped workloads of the GPU the daemon named: hold for them */
};

/* One process's part: what it launched and has not drained. */
struct gm_pace_proc {
    int64_t k;            /* the window its launches belong to */
    uint32_t launched;    /* its launches in window k not drained yet */
    uint32_t first;       /* it launched the workload's first kernel of window k */
    uint64_t last_e;      /* the expected time the last launch was counted for */
    uint64_t end_est;     /* when its last launch should end, by the estimates */
    uint32_t timing;      /* it holds the workload's claim to time a kernel alone */
    uint32_t peers_read;  /* peers_until was just read from the peers, for one decision */
    uint64_t peers_until; /* when the peers' work should be done (gm_pace_peer_busy), 0: done */
    uint64_t peers_ws;    /* the start of the window they were asked for */
};

/* A balance never goes below this: a kernel longer than anything sane must not silence a
 * workload for minutes. */
#define GM_PACE_MAX_DEBT_NS 10000000000ll
/* ratio's unit; the learned ratio stays within [ONE / 16, ONE * 16]. */
#define GM_PACE_RATIO_ONE 1024u

enum gm_pace_act {
    GM_PACE_LAUNCH, /* launch now: the state counts it (tail moved by the expected time) */
    GM_PACE_WAIT,   /* sleep until `until`, then ask again */
    GM_PACE_DRAIN,  /* synchronize the context, call gm_pace_drained, then ask again */
    GM_PACE_PEERS,  /* read the peers' pacing states into me->peers_until, then ask again */
};

struct gm_pace_step {
    enum gm_pace_act act;
    int first;      /* GM_PACE_LAUNCH: the workload's first kernel of the window (time it) */
    uint64_t until; /* GM_PACE_WAIT: CLOCK_MONOTONIC ns */
    uint64_t e;     /* GM_PACE_LAUNCH: the expected time it was counted for (e x ratio) */
};

void gm_pace_proc_init(struct gm_pace_proc *me);

/* The window containing now (returns 1), or the next one (0): its index and bounds. */
int gm_pace_window_at(const struct gm_pace_window *w, uint64_t now, int64_t *k, uint64_t *ws,
                      uint64_t *we);

/* One decision for a kernel expected to take e ns by this process's measurements (0: never
 * measured: it is launched alone, once the workload's work launched before has ended and with
 * the workload's other launches held back, and timed by the clock). */
struct gm_pace_step gm_pace_decide(const struct gm_pace_window *w, struct gm_region_pace *st,
                                   struct gm_pace_proc *me, uint64_t now, uint64_t e);

/* The window's first launch waits while a peer's work is outstanding, polling this often, and
 * never more than half a period in all: a peer's claim can delay it, not stop it. */
#define GM_PACE_HOLD_POLL_NS 100000ull

/* Until when a peer, by the pacing state it published, keeps a window starting at ws (ours,
 * me->peers_ws) waiting: while its work is outstanding, its tail (its own estimate) plus a
 * quarter of its window's work, since it says it is done (settles) the moment its work really
 * ends and an end guessed too early would queue behind it; while it holds for a window that
 * began before ours, one more poll (the windows go in their order). 0: it keeps us from
 * nothing. */
uint64_t gm_pace_peer_busy(const struct gm_region_pace *peer, uint64_t ws, uint64_t period,
                           uint64_t now);

/* The drain asked for ended: before is the clock when it began, after when the synchronize
 * returned, waited how long the window's first kernel waited for the GPU to finish work from
 * before the window (another workload's overrun: not charged to us; 0 when unknown; only the
 * process that launched it knows). When the last process with work in the window has drained,
 * the window's balance is carried. */
void gm_pace_drained(struct gm_region_pace *st, struct gm_pace_proc *me, uint64_t before,
                     uint64_t after, uint64_t waited);

/* A kernel never measured before ran alone and ended at t (by the clock): the window's tail is
 * at least that, and the workload's other processes may launch again. */
void gm_pace_timed(struct gm_region_pace *st, struct gm_pace_proc *me, uint64_t t);

/* The last launch the state counted failed (nothing queued): its time is given back. */
void gm_pace_unlaunch(struct gm_region_pace *st, struct gm_pace_proc *me);

#endif
