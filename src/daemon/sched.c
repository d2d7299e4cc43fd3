#include "daemon/sched.h"
#include "daemon/daemon.h"
#include "common/gpuid.h"
#include "common/parse.h"
#include "common/strv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int on_gpu(const struct gm_workload_rec *w, const char *uuid)
{
    for (int i = 0; i < w->ngpus; i++)
        if (strcmp(w->gpus[i], uuid) == 0)
            return 1;
    return 0;
}

static int counts(const struct gm_workload_rec *w, const char *uuid, const char *except)
{
    return gm_workload_active(w) && on_gpu(w, uuid) &&
           (except == NULL || strcmp(w->name, except) != 0);
}

int gm_sched_users(const struct gm_workload_rec *ws, size_t nws, const char *uuid,
                   const char *except)
{
    int n = 0;
    for (size_t i = 0; i < nws; i++)
        n += counts(&ws[i], uuid, except);
    return n;
}

uint64_t gm_sched_reserved(const struct gm_workload_rec *ws, size_t nws, const char *uuid,
                           const char *except)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < nws; i++)
        if (counts(&ws[i], uuid, except))
            sum += ws[i].memory_limit;
    return sum;
}

int gm_gpu_resolve(const struct gm_gpu_rec *gpus, size_t n, const char *id, size_t *out,
                   struct gm_error *err)
{
    struct gm_gpu_id *ids = calloc(n + 1, sizeof(*ids));
    if (ids == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        ids[i] = (struct gm_gpu_id){gpus[i].idx, gpus[i].uuid, gpus[i].pci_bus_id};
    int rc = gm_gpu_id_find(ids, n, id, out, err);
    free(ids);
    return rc;
}

/* Why GPU g cannot take the request, or 0 when it can. */
static int refuse(const struct gm_gpu_rec *g, const struct gm_workload_rec *ws, size_t nws,
                  const struct gm_sched_req *req, struct gm_error *err)
{
    char size_a[32], size_b[32];
    if (!g->present)
        return gm_err(err, GM_ENOSPACE, "GPU %d (%s) is not present", g->idx, g->uuid);
    if (g->mode == GM_MODE_VM) {
        if (g->holder[0])
            return gm_err(err, GM_ECONFLICT, "GPU %d (%s) is held by VM %s", g->idx, g->uuid,
                          g->holder);
        return gm_err(err, GM_ECONFLICT, "GPU %d (%s) is reserved for VMs (mode vm)", g->idx,
                      g->uuid);
    }
    if (req->memory > 0) {
        uint64_t usable = g->memory_total > req->reserve ? g->memory_total - req->reserve : 0;
        if (req->memory > usable) {
            gm_format_size(req->memory, size_a, sizeof(size_a));
            gm_format_size(usable, size_b, sizeof(size_b));
            return gm_err(err, GM_ENOSPACE,
                          "memory limit %s is larger than GPU %d's %s of usable memory", size_a,
                          g->idx, size_b);
        }
        uint64_t taken = gm_sched_reserved(ws, nws, g->uuid, req->name);
        if (taken + req->memory > usable) {
            gm_format_size(req->memory, size_a, sizeof(size_a));
            gm_format_size(usable - (taken < usable ? taken : usable), size_b, sizeof(size_b));
            return gm_err(err, GM_ENOSPACE,
                          "GPU %d (%s) has %s of memory left for limits; %s was asked", g->idx,
                          g->uuid, size_b, size_a);
        }
    }
    if (g->mode == GM_MODE_MPS && gm_sched_users(ws, nws, g->uuid, req->name) >= GM_MPS_MAX_CLIENTS)
        return gm_err(err, GM_ENOSPACE,
                      "GPU %d (%s) already has %d MPS clients, the most MPS allows on one GPU",
                      g->idx, g->uuid, GM_MPS_MAX_CLIENTS);
    return 0;
}

static int explicit_gpus(const struct gm_gpu_rec *gpus, size_t ngpus,
                         const struct gm_sched_req *req, struct gm_sched_result *out,
                         struct gm_error *err)
{
    if (strcasecmp(req->gpu, "all") == 0) {
        for (size_t i = 0; i < ngpus && out->ngpus < GM_MAX_WORKLOAD_GPUS; i++)
            out->gpu[out->ngpus++] = i;
        return 0;
    }
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", req->gpu);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t idx;
        int rc = gm_gpu_resolve(gpus, ngpus, tok, &idx, err);
        if (rc < 0)
            return rc;
        for (int i = 0; i < out->ngpus; i++)
            if (out->gpu[i] == idx)
                return gm_err(err, GM_EINVAL, "GPU %s is named twice", tok);
        if (out->ngpus == GM_MAX_WORKLOAD_GPUS)
            return gm_err(err, GM_EINVAL, "at most %d GPUs per workload", GM_MAX_WORKLOAD_GPUS);
        out->gpu[out->ngpus++] = idx;
    }
    if (out->ngpus == 0)
        return gm_err(err, GM_EINVAL, "GPU '%s': no GPU named", req->gpu);
    return 0;
}

int gm_sched_admit(const struct gm_gpu_rec *gpus, size_t ngpus, const struct gm_workload_rec *ws,
                   size_t nws, const struct gm_sched_req *req, struct gm_sched_result *out,
                   struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    if (req->gpu != NULL && (req->gpu[0] == '\0' || strcasecmp(req->gpu, "none") == 0 ||
                             strcasecmp(req->gpu, "void") == 0)) {
        if (req->compute_pct || req->memory)
            return gm_err(err, GM_EINVAL,
                          "a compute or memory limit needs a GPU, but no GPU was asked for");
        return 0;
    }
    if (req->gpu != NULL) {
        int rc = explicit_gpus(gpus, ngpus, req, out, err);
        if (rc < 0)
            return rc;
        if (out->ngpus > 1 && (req->compute_pct || req->memory))
            return gm_err(err, GM_EINVAL,
                          "a fractional share (--compute, --memory) applies to exactly one GPU, "
                          "but %d GPUs were asked for",
                          out->ngpus);
        for (int i = 0; i < out->ngpus; i++) {
            int rc2 = refuse(&gpus[out->gpu[i]], ws, nws, req, err);
            if (rc2 < 0)
                return rc2;
        }
        return 0;
    }

    /* Placement: bin-pack fills the GPU with the least room left that still fits; spread takes
     * the one with the fewest workloads. */
    long best = -1;
    uint64_t best_free = 0;
    int best_users = 0;
    struct gm_strv why = {0};
    for (size_t i = 0; i < ngpus; i++) {
        struct gm_error e;
        if (refuse(&gpus[i], ws, nws, req, &e) < 0) {
            gm_strv_add(&why, e.msg);
            continue;
        }
        uint64_t free_mem =
            gpus[i].memory_total - gm_sched_reserved(ws, nws, gpus[i].uuid, req->name);
        int users = gm_sched_users(ws, nws, gpus[i].uuid, req->name);
        int better;
        if (best < 0)
            better = 1;
        else if (req->spread)
            better = users < best_users || (users == best_users && free_mem > best_free);
        else
            better = free_mem < best_free || (free_mem == best_free && users > best_users);
        if (better) {
            best = (long)i;
            best_free = free_mem;
            best_users = users;
        }
    }
    if (best < 0) {
        char *list = gm_strv_join(&why, "; ");
        gm_strv_free(&why);
        int rc = ngpus == 0
                     ? gm_err(err, GM_ENOSPACE, "Insufficient nvidia.com/gpu: this node has no GPU")
                     : gm_err(err, GM_ENOSPACE,
                              "Insufficient nvidia.com/gpu: 0 of %zu GPUs can take it (%s)", ngpus,
                              list ? list : "out of memory");
        free(list);
        return rc;
    }
    gm_strv_free(&why);
    out->ngpus = 1;
    out->gpu[0] = (size_t)best;
    return 0;
}
