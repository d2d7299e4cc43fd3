/* The compute-window plan: which capped workload of a time-sliced GPU may launch when, and
 * whose regions are swept. A pure function of the GPU and workload records; the daemon's
 * controller (region.c, gm_region_control) applies it. */
#ifndef GM_DAEMON_WINDOWS_H
#define GM_DAEMON_WINDOWS_H

#include "daemon/model.h"

#include <stddef.h>
#include <stdint.h>

#define GM_WINDOW_PERIOD_NS ((uint64_t)100 * 1000 * 1000) /* 100 ms */

struct gm_window {
    size_t workload; /* index into the workload array */
    size_t gpu;      /* index into the GPU array: the windows of one GPU are each other's peers */
    uint64_t period_ns, offset_ns, len_ns;
};

struct gm_window_plan {
    struct gm_window *windows; /* in the order of the GPUs, then of the workloads */
    size_t nwindows;
    size_t *reap; /* indices of the workloads whose region is refreshed (every limited one) */
    size_t nreap;
};

/* For every GPU in mode GM_MODE_SHARED, the active workloads on it alone (one GPU) with a cap
 * get disjoint windows of one period, in the order of ws: len = period x cap / max(100, sum of
 * the caps of the GPU's active workloads), each starting where the one before ended; the other
 * windows of its GPU are its peers (gm_window_plan_peers). Workloads
 * with a memory limit or a cap on a known GPU are listed for the sweep, active or not. Fills
 * out (free with gm_window_plan_free); 0, or -GM_ENOMEM. */
int gm_windows_plan(const struct gm_gpu_rec *gpus, size_t ngpus, const struct gm_workload_rec *ws,
                    size_t nws, struct gm_window_plan *out);
void gm_window_plan_free(struct gm_window_plan *p);
/* The workloads whose windows share window i's GPU, in window order, i's own left out: up to max
 * of their indices into peers; returns how many there are (may exceed max). */
size_t gm_window_plan_peers(const struct gm_window_plan *p, size_t i, size_t *peers, size_t max);
/* The window of workload index w in the plan, or NULL. */
const struct gm_window *gm_window_plan_find(const struct gm_window_plan *p, size_t w);

#endif
