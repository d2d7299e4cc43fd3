/* The daemon's side of the per-workload limits region (include/gpumux/region.h): creating it,
 * changing limits and the compute schedule live, and clearing the slots of dead processes. */
#ifndef GM_DAEMON_REGION_H
#define GM_DAEMON_REGION_H

#include "common/error.h"
#include "daemon/daemon.h"

#include <gpumux/region.h>

int gm_region_path(const struct gm_daemon *d, const char *name, char *buf, size_t len);
/* Creates RUN_DIR/regions/NAME.region for w (mode 0660, owned by the workload's user), or
 * refreshes the limits of an existing one with the right layout; a file with another layout is
 * replaced. by_mps: the GPU is in mps mode, so MPS caps compute. */
int gm_region_prepare(struct gm_daemon *d, const struct gm_workload_rec *w, int by_mps,
                      struct gm_error *err);
/* Maps an existing region; unmap with gm_region_unmap. */
int gm_region_map(const char *path, struct gm_region **out, struct gm_error *err);
void gm_region_unmap(struct gm_region *r);
/* Sets limits (atomically) and bumps the generation. */
void gm_region_set_limits(struct gm_region *r, uint64_t memory_limit, int compute_pct, int by_mps);
/* Sets the compute window; returns 1 when it changed. */
int gm_region_set_window(struct gm_region *r, uint64_t period_ns, uint64_t offset_ns,
                         uint64_t len_ns);
/* Frees the slots of processes that died and recomputes mem_used; returns how many. */
int gm_region_reap(struct gm_region *r);
/* The controller: gives the capped workloads of every time-sliced GPU disjoint windows of
 * the compute period in proportion to their caps, and reaps dead slots. Called without
 * d->lock, on a snapshot of the records. */
void gm_region_control(struct gm_daemon *d, const struct gm_gpu_rec *gpus, size_t ngpus,
                       const struct gm_workload_rec *ws, size_t n);

#endif
