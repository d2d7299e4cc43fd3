/* Admission and placement: pure functions over the recorded GPUs and workloads, so that every
 * rule can be tested without a daemon. */
#ifndef GM_DAEMON_SCHED_H
#define GM_DAEMON_SCHED_H

#include "common/error.h"
#include "daemon/model.h"

#include <stddef.h>
#include <stdint.h>

struct gm_sched_req {
    const char *name; /* the workload; its own record is not counted against it */
    const char *gpu;  /* NULL: by policy; "none"/"void"/"": no GPU; "all"; "0"; "0,1"; UUID;
                         PCI bus id */
    int compute_pct;  /* 0: no cap */
    uint64_t memory;  /* 0: no limit */
    uint64_t reserve; /* memory kept out of limits on every GPU */
    int spread;       /* 1: spread, 0: bin-pack */
};

struct gm_sched_result {
    int ngpus;
    size_t gpu[GM_MAX_WORKLOAD_GPUS]; /* indices into the gpus array */
};

int gm_sched_admit(const struct gm_gpu_rec *gpus, size_t ngpus, const struct gm_workload_rec *ws,
                   size_t nws, const struct gm_sched_req *req, struct gm_sched_result *out,
                   struct gm_error *err);

/* Resolve an index, UUID or PCI bus id (long or short form) among the known GPUs. */
int gm_gpu_resolve(const struct gm_gpu_rec *gpus, size_t n, const char *id, size_t *out,
                   struct gm_error *err);

/* How many active workloads a GPU has, not counting except (may be NULL). Their names, as a
 * list: gm_plan_users. */
int gm_sched_users(const struct gm_workload_rec *ws, size_t nws, const char *uuid,
                   const char *except);
/* Sum of the memory limits of the active workloads on a GPU. */
uint64_t gm_sched_reserved(const struct gm_workload_rec *ws, size_t nws, const char *uuid,
                           const char *except);

#endif
