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
/* Creates w's region (region/region.h): RUN_DIR/regions/NAME.limits (the daemon's, mode 0644:
 * the workload reads its limits and cannot write them) and RUN_DIR/regions/NAME.region (the
 * usage part, mode 0600, owned by the workload's user); or refreshes the limits of an existing
 * one with the right layout and GPU; a region with another layout or GPU is replaced. by_mps:
 * the GPU is in mps mode, so MPS caps compute. Never maps the usage part (the workload may
 * truncate or scribble over its own file) and never takes its lock. Caller holds
 * d->region_lock. */
int gm_region_prepare(struct gm_daemon *d, const struct gm_workload_rec *w, int by_mps,
                      struct gm_error *err);
/* Maps an existing region's limits part writable, its usage part not at all
 * (gm_region_open_limits, with a struct gm_error: GM_ENOTFOUND when there is no file, GM_EINVAL
 * for a foreign one, GM_EPERM for a limits file that is not the daemon's); unmap with
 * gm_region_unmap. */
int gm_region_map(const char *path, struct gm_region **out, struct gm_error *err);
void gm_region_unmap(struct gm_region *r);
/* The controller: applies gm_windows_plan to the workloads' regions (windows written to their
 * limits files). Dead processes' slots are the interposer's to sweep (before it refuses an
 * allocation, and when its slots run out): the daemon does not touch the usage part. Called
 * without d->lock and with d->region_lock, on a snapshot of the records (exec.c). */
void gm_region_control(struct gm_daemon *d, const struct gm_gpu_rec *gpus, size_t ngpus,
                       const struct gm_workload_rec *ws, size_t n);

#endif
