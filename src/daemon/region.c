#include "daemon/region.h"
#include "common/log.h"
#include "common/path.h"
#include "daemon/windows.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int gm_region_path(const struct gm_daemon *d, const char *name, char *buf, size_t len)
{
    return gm_path(NULL, buf, len, "%s/regions/%s.region", d->cfg.run_dir, name);
}

int gm_region_map(const char *path, struct gm_region **out, struct gm_error *err)
{
    int rc = gm_region_open_limits(path, out, err);
    return rc < 0 ? gm_err_wrap(err, "region") : 0;
}

void gm_region_unmap(struct gm_region *r)
{
    gm_region_detach(r);
}

int gm_region_prepare(struct gm_daemon *d, const struct gm_workload_rec *w, int by_mps,
                      struct gm_error *err)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int rc;
    if ((rc = gm_path(err, dir, sizeof(dir), "%s/regions", d->cfg.run_dir)) < 0 ||
        (rc = gm_mkdir_p(dir, 0755, err)) < 0 ||
        (rc = gm_path(err, path, sizeof(path), "%s/regions/%s.region", d->cfg.run_dir, w->name)) <
            0)
        return rc;
    const char *gpu = w->ngpus ? w->gpus[0] : "";
    struct gm_region *r = NULL;
    if (gm_region_map(path, &r, NULL) < 0) {
        r = NULL;
    } else if (strcmp(r->gpu_uuid, gpu) != 0 || gm_region_check_usage(path, NULL) < 0) {
        /* Made for another GPU, or a usage part that is not one (the workload owns that file):
         * a new region, so no slot or window of the old one carries over. */
        gm_region_unmap(r);
        r = NULL;
    }
    if (r == NULL) {
        struct gm_region_init in = {
            .workload = w->name,
            .gpu_uuid = gpu,
            .memory_limit = w->memory_limit,
            .compute_pct = (uint32_t)w->compute_pct,
            .flags = by_mps ? GM_REGION_COMPUTE_BY_MPS : 0,
            .uid = (uid_t)w->uid,
            .gid = (gid_t)w->gid,
        };
        if ((rc = gm_region_create(path, &in, NULL, err)) < 0 ||
            (rc = gm_region_map(path, &r, err)) < 0)
            return rc;
    }
    gm_region_set_limits(r, w->memory_limit, (uint32_t)w->compute_pct, by_mps);
    gm_region_unmap(r);
    return 0;
}

void gm_region_control(struct gm_daemon *d, const struct gm_gpu_rec *gpus, size_t ngpus,
                       const struct gm_workload_rec *ws, size_t n)
{
    struct gm_window_plan plan;
    int rc = gm_windows_plan(gpus, ngpus, ws, n, &plan);
    if (rc < 0)
        return;
    for (size_t k = 0; k < plan.nreap; k++) {
        const struct gm_workload_rec *w = &ws[plan.reap[k]];
        const struct gm_window *win = gm_window_plan_find(&plan, plan.reap[k]);
        char path[PATH_MAX];
        struct gm_region *r;
        if (win == NULL || gm_region_path(d, w->name, path, sizeof(path)) < 0 ||
            gm_region_map(path, &r, NULL) < 0)
            continue;
        /* Atomic fields under the seqlock, in the daemon's own file: no lock of the workload's
         * is taken, and a workload holding its usage lock still gets its window. */
        if (gm_region_set_window(r, win->period_ns, win->offset_ns, win->len_ns, 0))
            gm_debug("workload %s: compute window %llu+%llu ms of %llu ms", w->name,
                     (unsigned long long)(win->offset_ns / 1000000),
                     (unsigned long long)(win->len_ns / 1000000),
                     (unsigned long long)(win->period_ns / 1000000));
        size_t peer[GM_REGION_MAX_PEERS];
        const char *names[GM_REGION_MAX_PEERS];
        size_t np =
            gm_window_plan_peers(&plan, (size_t)(win - plan.windows), peer, GM_REGION_MAX_PEERS);
        if (np > GM_REGION_MAX_PEERS)
            np = GM_REGION_MAX_PEERS;
        for (size_t j = 0; j < np; j++)
            names[j] = ws[peer[j]].name;
        gm_region_set_peers(r, names, np);
        gm_region_unmap(r);
    }
    gm_window_plan_free(&plan);
}
