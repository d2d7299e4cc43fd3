/* The daemon's side of the per-workload limits region: where it lives, creating it for a
 * workload, and the controller that applies the compute-window plan (daemon/windows.h). The
 * layout, the lock and the slots are src/region's (region/region.h). */
#ifndef GM_DAEMON_REGION_H
#define GM_DAEMON_REGION_H

#include "common/error.h"
#include "daemon/daemon.h"
#include "region/region.h"

/* RUN_DIR/regions/NAME.region. Returns 0, or -GM_EINVAL with buf "" when it does not fit. */
int gm_region_path(const struct gm_daemon *d, const char *name, char *buf, size_t len);
/* Creates RUN_DIR/regions/NAME.region for w (mode 0660, owned by the workload's user), or
 * refreshes the limits of an existing one with the right layout and GPU; a file with another
 * layout is replaced. by_mps: the GPU is in mps mode, so MPS caps compute. Never waits on the
 * region's lock for more than GM_REGION_DAEMON_LOCK_NS. */
int gm_region_prepare(struct gm_daemon *d, const struct gm_workload_rec *w, int by_mps,
                      struct gm_error *err);
/* Maps an existing region (gm_region_attach with a struct gm_error: GM_ENOTFOUND when there is
 * no file, GM_EINVAL for a foreign one); unmap with gm_region_unmap. */
int gm_region_map(const char *path, struct gm_region **out, struct gm_error *err);
void gm_region_unmap(struct gm_region *r);
/* The controller: applies gm_windows_plan to the workloads' regions (windows written, dead
 * slots swept). A region whose lock a process of the workload holds past the bound is skipped
 * this time and reported. Called without d->lock, on a snapshot of the records (exec.c). */
void gm_region_control(struct gm_daemon *d, const struct gm_gpu_rec *gpus, size_t ngpus,
                       const struct gm_workload_rec *ws, size_t n);

#endif
