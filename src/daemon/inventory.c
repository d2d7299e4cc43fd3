/* GPU inventory, sharing modes and VM claims. */
#include "common/log.h"
#include "common/parse.h"
#include "daemon/daemon.h"
#include "daemon/mps.h"
#include "daemon/sched.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gm_inventory_sync(struct gm_daemon *d, struct gm_error *err)
{
    /* The driver is asked without the lock (NVML calls may take long); then recorded. */
    int n = gm_gpu_count(), rc = 0;
    struct gm_gpu_rec *found = calloc((size_t)(n > 0 ? n : 1), sizeof(*found));
    struct gm_gpu_live *live = calloc(1, sizeof(*live));
    if (found == NULL || live == NULL)
        rc = gm_err(err, GM_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = gm_gpu_query(i, live, err);
        if (rc < 0)
            break;
        struct gm_gpu_rec *g = &found[i];
        snprintf(g->uuid, sizeof(g->uuid), "%s", live->uuid);
        snprintf(g->name, sizeof(g->name), "%s", live->name);
        snprintf(g->pci_bus_id, sizeof(g->pci_bus_id), "%s", live->pci_bus_id);
        g->idx = live->index;
        g->memory_total = live->memory_total;
        g->present = 1;
    }
    free(live);
    if (rc < 0) {
        free(found);
        return rc;
    }
    pthread_mutex_lock(&d->lock);
    rc = gm_store_begin(d->store, err);
    int began = rc == 0;
    if (rc == 0)
        rc = gm_store_gpu_mark_all_absent(d->store, err);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = gm_store_gpu_inventory(d->store, &found[i], err);
    if (rc == 0)
        rc = gm_store_commit(d->store, err);
    else if (began)
        gm_store_rollback(d->store);
    pthread_mutex_unlock(&d->lock);
    for (int i = 0; rc == 0 && i < n; i++)
        gm_info("GPU %d: %s %s (%s), %" PRIu64 " MiB", found[i].idx, found[i].name, found[i].uuid,
                found[i].pci_bus_id, found[i].memory_total / GM_MIB);
    free(found);
    return rc;
}

/* Loads GPUs and workloads, resolves id. Caller holds d->lock and frees both lists. */
static int load(struct gm_daemon *d, const char *id, struct gm_gpu_rec **gpus, size_t *ngpus,
                struct gm_workload_rec **ws, size_t *nws, size_t *idx, struct gm_error *err)
{
    *gpus = NULL;
    *ws = NULL;
    int rc = gm_store_gpu_list(d->store, gpus, ngpus, err);
    if (rc == 0)
        rc = gm_store_workload_list(d->store, ws, nws, err);
    if (rc == 0 && id != NULL)
        rc = gm_gpu_resolve(*gpus, *ngpus, id, idx, err);
    return rc;
}

static int save(struct gm_daemon *d, const struct gm_gpu_rec *g, const char *object,
                const char *msg, struct gm_error *err)
{
    return gm_store_gpu_save(d->store, g, object, GM_LEVEL_INFO, msg, err);
}

void gm_mode_outcome_free(struct gm_mode_outcome *o)
{
    if (o == NULL)
        return;
    gm_strv_free(&o->stopped);
    gm_strv_free(&o->restarted);
    gm_strv_free(&o->not_restarted);
    gm_strv_free(&o->why_not);
}

static void changing_done(struct gm_daemon *d, const char *uuid)
{
    long i = gm_strv_find(&d->changing, uuid);
    if (i < 0)
        return;
    free(d->changing.v[i]);
    d->changing.v[i] = d->changing.v[--d->changing.n];
    d->changing.v[d->changing.n] = NULL;
}

/* Stops the workloads of the plan and waits until none of them runs. Without d->lock. */
static int stop_users(struct gm_daemon *d, const struct gm_strv *names, struct gm_error *err)
{
    for (size_t i = 0; i < names->n; i++)
        gm_workload_stop(d, names->v[i], -1, NULL, NULL);
    return gm_exec_wait_stopped(d, names, err);
}

int gm_gpu_set_mode(struct gm_daemon *d, const char *id, enum gm_mode m, enum gm_on_busy on_busy,
                    struct gm_mode_outcome *out, struct gm_error *err)
{
    struct gm_mode_outcome local;
    struct gm_mode_outcome *o = out != NULL ? out : &local;
    memset(o, 0, sizeof(*o));
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus = 0, nws = 0;
    struct gm_mode_plan plan;

    /* Decide on a snapshot; the GPU is marked changing, so that placement and a second mode
     * change keep off it while the effects run without the lock. */
    pthread_mutex_lock(&d->lock);
    int rc = load(d, NULL, &gpus, &ngpus, &ws, &nws, NULL, err);
    if (rc == 0)
        rc = gm_plan_mode(gpus, ngpus, ws, nws, id, m, on_busy, &d->changing, &plan, err);
    struct gm_gpu_rec g;
    if (rc == 0) {
        g = gpus[plan.gpu];
        if (gm_strv_add(&d->changing, g.uuid) < 0)
            rc = gm_err(err, GM_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&d->lock);
    free(gpus);
    gm_workload_list_free(ws, nws);
    if (rc < 0) {
        if (out == NULL)
            gm_mode_outcome_free(o);
        return rc;
    }
    o->from = plan.from;
    o->gpu = g;

    if (plan.stop_users) {
        for (size_t i = 0; i < plan.users.n; i++)
            gm_strv_add(&o->stopped, plan.users.v[i]);
        rc = stop_users(d, &plan.users, err);
    }
    /* MPS goes first: when it cannot start the GPU stays as it was. */
    if (rc == 0 && plan.start_mps) {
        rc = gm_mps_start(d, &g, &o->mps_start, err);
        o->mps_started = rc == 0;
    }
    if (rc == 0 && plan.stop_mps) {
        gm_mps_stop(d, &g, &o->mps_stop);
        o->mps_stopped = 1;
    }
    pthread_mutex_lock(&d->lock);
    if (rc == 0 && plan.change) {
        /* Record the mode, checking that nothing started on the GPU meanwhile. */
        struct gm_gpu_rec now;
        struct gm_strv users = {0};
        rc = gm_store_gpu_get(d->store, g.uuid, &now, err);
        if (rc == 0 && gm_store_workload_list(d->store, &ws, &nws, err) == 0) {
            gm_plan_users(ws, nws, g.uuid, &users);
            gm_workload_list_free(ws, nws);
        }
        if (rc == 0 && users.n > 0) {
            char *list = gm_strv_join(&users, ", ");
            rc = gm_err(err, GM_EBUSY, "GPU %d (%s): workloads %s started again meanwhile", g.idx,
                        g.uuid, list ? list : "");
            free(list);
        }
        gm_strv_free(&users);
        if (rc == 0) {
            char msg[256], object[32];
            snprintf(msg, sizeof(msg), "mode changed from %s to %s", gm_mode_name(now.mode),
                     gm_mode_name(m));
            snprintf(object, sizeof(object), "gpu/%d", now.idx);
            now.mode = m;
            now.holder[0] = '\0';
            now.holder_since = 0;
            rc = save(d, &now, object, msg, err);
            if (rc == 0) {
                gm_info("GPU %d (%s): %s", now.idx, now.uuid, msg);
                o->gpu = now;
                o->changed = 1;
            }
        }
    }
    changing_done(d, g.uuid);
    pthread_mutex_unlock(&d->lock);
    /* Not recorded: the MPS daemons go back to what the record says. */
    struct gm_mps_outcome undo;
    if (rc < 0 && plan.change && o->mps_started && o->mps_start.started)
        gm_mps_stop(d, &g, &undo);
    if (rc < 0 && plan.change && o->mps_stopped)
        gm_mps_start(d, &g, &undo, NULL);

    /* Workloads stopped for the change start again under the new mode when asked. */
    if (rc == 0 && plan.restart_users) {
        for (size_t i = 0; i < plan.users.n; i++) {
            struct gm_error e;
            if (gm_workload_start(d, plan.users.v[i], NULL, &e) < 0) {
                gm_strv_add(&o->not_restarted, plan.users.v[i]);
                gm_strv_add(&o->why_not, e.msg);
            } else {
                gm_strv_add(&o->restarted, plan.users.v[i]);
            }
        }
    }
    gm_mode_plan_free(&plan);
    if (out == NULL || rc < 0)
        gm_mode_outcome_free(o);
    return rc;
}

int gm_gpu_set_mps_defaults(struct gm_daemon *d, const char *id, int pct, uint64_t mem,
                            struct gm_error *err)
{
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus = 0, nws = 0, i = 0;
    pthread_mutex_lock(&d->lock);
    int rc = load(d, id, &gpus, &ngpus, &ws, &nws, &i, err);
    if (rc == 0) {
        struct gm_gpu_rec g = gpus[i];
        if (pct > 0)
            g.mps_default_pct = pct;
        if (mem > 0)
            g.mps_default_mem = mem;
        char object[32], msg[160];
        snprintf(object, sizeof(object), "gpu/%d", g.idx);
        snprintf(msg, sizeof(msg),
                 "MPS defaults: active thread percentage %d, pinned memory %lluMiB",
                 g.mps_default_pct, (unsigned long long)(g.mps_default_mem / GM_MIB));
        rc = save(d, &g, object, msg, err);
    }
    pthread_mutex_unlock(&d->lock);
    free(gpus);
    gm_workload_list_free(ws, nws);
    return rc;
}

int gm_vm_attach(struct gm_daemon *d, const char *vm, const char *gpu, struct gm_gpu_rec *out,
                 struct gm_error *err)
{
    int rc = gm_check_name(vm, "VM", err);
    if (rc < 0)
        return rc;
    if (gpu == NULL || gpu[0] == '\0')
        return gm_err(err, GM_EINVAL, "VM %s: a GPU is required (--gpu ID)", vm);
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus = 0, nws = 0, i = 0;
    struct gm_gpu_rec g;
    int marked = 0;
    pthread_mutex_lock(&d->lock);
    rc = load(d, gpu, &gpus, &ngpus, &ws, &nws, &i, err);
    if (rc < 0)
        goto out;
    for (size_t k = 0; k < ngpus; k++) {
        if (strcmp(gpus[k].holder, vm) == 0) {
            rc = gm_err(err, GM_ECONFLICT, "VM %s already holds GPU %d (%s)", vm, gpus[k].idx,
                        gpus[k].uuid);
            goto out;
        }
    }
    g = gpus[i];
    if (!g.present) {
        rc = gm_err(err, GM_ENOSPACE,
                    "VM %s: no GPU resources available: GPU %d (%s) is not present", vm, g.idx,
                    g.uuid);
        goto out;
    }
    if (g.holder[0]) {
        rc = gm_err(err, GM_ENOSPACE,
                    "VM %s: no GPU resources available: GPU %d (%s) is held by VM %s", vm, g.idx,
                    g.uuid, g.holder);
        goto out;
    }
    if (gm_strv_find(&d->changing, g.uuid) >= 0) {
        rc = gm_err(err, GM_EBUSY, "VM %s: GPU %d (%s) is changing its mode now; try again", vm,
                    g.idx, g.uuid);
        goto out;
    }
    struct gm_strv users = {0};
    if (gm_plan_users(ws, nws, g.uuid, &users) > 0) {
        char names[1024];
        gm_plan_name_list(&users, names, sizeof(names));
        gm_strv_free(&users);
        rc = gm_err(err, GM_ENOSPACE,
                    "VM %s: no GPU resources available: GPU %d (%s) is in use by workloads %s", vm,
                    g.idx, g.uuid, names);
        goto out;
    }
    if (g.mode == GM_MODE_MPS) {
        /* Its MPS daemon is stopped without the lock; the GPU is kept from placement meanwhile. */
        if ((rc = gm_strv_add(&d->changing, g.uuid)) < 0) {
            rc = gm_err(err, GM_ENOMEM, "out of memory");
            goto out;
        }
        marked = 1;
        pthread_mutex_unlock(&d->lock);
        struct gm_mps_outcome o;
        gm_mps_stop(d, &g, &o);
        pthread_mutex_lock(&d->lock);
    }
    g.mode = GM_MODE_VM;
    snprintf(g.holder, sizeof(g.holder), "%s", vm);
    g.holder_since = gm_now_ms();
    char object[80], msg[160];
    snprintf(object, sizeof(object), "vm/%s", vm);
    snprintf(msg, sizeof(msg), "attached GPU %d (%s)", g.idx, g.uuid);
    rc = save(d, &g, object, msg, err);
    if (rc == 0 && out != NULL)
        *out = g;
out:
    if (marked)
        changing_done(d, g.uuid);
    pthread_mutex_unlock(&d->lock);
    free(gpus);
    gm_workload_list_free(ws, nws);
    return rc;
}

int gm_vm_detach(struct gm_daemon *d, const char *vm, struct gm_gpu_rec *out, struct gm_error *err)
{
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus = 0, nws = 0, i = 0;
    pthread_mutex_lock(&d->lock);
    int rc = load(d, NULL, &gpus, &ngpus, &ws, &nws, &i, err);
    if (rc < 0)
        goto out;
    rc = gm_err(err, GM_ENOTFOUND, "no VM named %s holds a GPU", vm);
    for (size_t k = 0; k < ngpus; k++) {
        if (strcmp(gpus[k].holder, vm) != 0)
            continue;
        struct gm_gpu_rec g = gpus[k];
        if (out != NULL)
            *out = g;
        g.mode = GM_MODE_SHARED;
        g.holder[0] = '\0';
        g.holder_since = 0;
        char object[80], msg[160];
        snprintf(object, sizeof(object), "vm/%s", vm);
        snprintf(msg, sizeof(msg), "detached GPU %d (%s); the GPU is shared again", g.idx, g.uuid);
        gm_error_clear(err);
        rc = save(d, &g, object, msg, err);
        break;
    }
out:
    pthread_mutex_unlock(&d->lock);
    free(gpus);
    gm_workload_list_free(ws, nws);
    return rc;
}
