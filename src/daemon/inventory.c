/* GPU inventory, sharing modes and VM claims. */
#include "common/log.h"
#include "common/parse.h"
#include "daemon/daemon.h"
#include "daemon/vfio.h"
#include "daemon/mps.h"
#include "daemon/sched.h"
#include "daemon/spawn.h"

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

/* ---- VMs: claims and vfio-pci passthrough ------------------------------------------------- */

#define VFIO_STEP_MS 2000

/* Does vm attach move the GPU's functions, or only record the claim? On NVIDIA's driver always;
 * on gpusim only with a sysfs tree of its own (gpusimctl sysfs), since the machine's /sys has
 * none of gpusim's devices. */
static int passthrough_on(const struct gm_daemon *d)
{
    return d->driver.kind != GM_DRIVER_SIM || strcmp(d->cfg.sysfs_root, "/sys") != 0;
}

/* Keeps the GPU from placement and from other changes while it is worked on without the
 * lock; changing_done ends it. Caller holds d->lock. */
static int mark_changing(struct gm_daemon *d, const char *uuid, struct gm_error *err)
{
    return gm_strv_add(&d->changing, uuid) < 0 ? gm_err(err, GM_ENOMEM, "out of memory") : 0;
}

void gm_vfio_mark(struct gm_daemon *d, const struct gm_gpu_rec *g, int bound)
{
    if (g->idx < 0 || g->idx >= GM_VFIO_MAX_GPUS)
        return;
    uint64_t bit = (uint64_t)1 << g->idx;
    if (bound)
        __atomic_fetch_or(&d->vfio_bound, bit, __ATOMIC_RELAXED);
    else
        __atomic_fetch_and(&d->vfio_bound, ~bit, __ATOMIC_RELAXED);
}

int gm_vfio_bound(const struct gm_daemon *d, int idx)
{
    return idx >= 0 && idx < GM_VFIO_MAX_GPUS &&
           ((__atomic_load_n(&d->vfio_bound, __ATOMIC_RELAXED) >> idx) & 1);
}

/* Gives the functions of the journal back to their drivers; 0, or the error naming the step. */
static int restore(struct gm_daemon *d, const struct gm_vfio_journal *j, struct gm_error *err)
{
    struct gm_vfio_group grp;
    struct gm_vfio_plan plan;
    size_t done;
    int rc = gm_vfio_read(d->cfg.sysfs_root, d->cfg.dev_root, j->gpu_bdf, &grp, err);
    if (rc == 0)
        rc = gm_vfio_plan_restore(&grp, (const char(*)[32])j->bdf, (const char(*)[64])j->driver,
                                  j->n, &plan, err);
    if (rc == 0)
        rc = gm_vfio_apply(d->cfg.sysfs_root, &grp, &plan, VFIO_STEP_MS, &done, err);
    return rc;
}

/* Moves the GPU's group to vfio-pci, all or nothing: a step that fails rolls back what was
 * done. *jr: the journal, phase binding, kept for the caller to finish. */
static int bind_group(struct gm_daemon *d, const struct gm_gpu_rec *g, const char *vm,
                      struct gm_vfio_journal *j, struct gm_vm_outcome *o, struct gm_error *err)
{
    if (g->idx < 0 || g->idx >= GM_VFIO_MAX_GPUS)
        return gm_err(err, GM_EINVAL, "VM %s: GPU %d: only GPUs 0 to %d can be passed through", vm,
                      g->idx, GM_VFIO_MAX_GPUS - 1);
    char bdf[32];
    int rc = gm_vfio_bdf(g->pci_bus_id, bdf, sizeof(bdf));
    if (rc < 0)
        return gm_err(err, GM_EINVAL, "GPU %d: PCI bus id '%s' is not one sysfs knows", g->idx,
                      g->pci_bus_id);
    struct gm_vfio_group grp;
    struct gm_vfio_plan plan;
    if ((rc = gm_vfio_read(d->cfg.sysfs_root, d->cfg.dev_root, bdf, &grp, err)) < 0)
        return rc;
    /* vfio-pci not loaded on a real machine: load it, as an administrator would. */
    if (grp.found && grp.iommu && !grp.vfio_loaded && d->driver.kind != GM_DRIVER_SIM &&
        strcmp(d->cfg.sysfs_root, "/sys") == 0) {
        char *argv[] = {(char *)"modprobe", (char *)"vfio-pci", NULL}, out[512];
        int status = 0;
        if (gm_spawn_capture(argv, NULL, NULL, out, sizeof(out), 10000, &status, NULL) == 0 &&
            status == 0)
            gm_vfio_read(d->cfg.sysfs_root, d->cfg.dev_root, bdf, &grp, err);
    }
    if ((rc = gm_vfio_plan_bind(&grp, bdf, &plan, err)) < 0)
        return gm_err_wrap(err, "VM %s: GPU %d (%s) cannot be passed through", vm, g->idx, g->uuid);
    memset(j, 0, sizeof(*j));
    snprintf(j->uuid, sizeof(j->uuid), "%s", g->uuid);
    snprintf(j->vm, sizeof(j->vm), "%s", vm);
    snprintf(j->gpu_bdf, sizeof(j->gpu_bdf), "%s", bdf);
    j->phase = GM_VFIO_BINDING;
    j->group = grp.group;
    for (size_t i = 0; i < grp.n; i++) {
        if (gm_vfio_is_bridge(&grp.f[i]))
            continue; /* a bridge stays as it is */
        snprintf(j->bdf[j->n], sizeof(j->bdf[0]), "%s", grp.f[i].bdf);
        snprintf(j->driver[j->n], sizeof(j->driver[0]), "%s", grp.f[i].driver);
        j->n++;
    }
    /* Written before the first step: a daemon killed between two steps gives the functions back
     * at its next start. */
    if ((rc = gm_vfio_journal_write(d->cfg.state_dir, j, err)) < 0)
        return gm_err_wrap(err, "VM %s: GPU %d", vm, g->idx);
    size_t done = 0;
    rc = gm_vfio_apply(d->cfg.sysfs_root, &grp, &plan, VFIO_STEP_MS, &done, err);
    struct gm_vfio_group after;
    if (rc == 0 && gm_vfio_read(d->cfg.sysfs_root, d->cfg.dev_root, bdf, &after, err) == 0 &&
        (!after.dev_node || !gm_vfio_group_on_vfio(&after)))
        rc = gm_err(err, GM_EIO,
                    "the IOMMU group %d is on vfio-pci but %s/vfio/%d did not appear: not usable "
                    "by a VM",
                    grp.group, d->cfg.dev_root, grp.group);
    if (rc < 0) {
        struct gm_error rerr = {0};
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        if (restore(d, j, &rerr) == 0) {
            gm_vfio_journal_remove(d->cfg.state_dir, g->uuid);
            return gm_err(err, GM_EIO,
                          "VM %s: GPU %d (%s): %s; rolled back: every function of IOMMU group %d "
                          "is on its driver again",
                          vm, g->idx, g->uuid, why, grp.group);
        }
        /* The journal stays: the next start tries again. */
        return gm_err(err, GM_EIO,
                      "VM %s: GPU %d (%s): %s; the rollback failed too (%s): the journal "
                      "%s/vfio/%s.json keeps what to give back, tried again at the next start",
                      vm, g->idx, g->uuid, why, rerr.msg, d->cfg.state_dir, g->uuid);
    }
    if (o != NULL) {
        o->passthrough = 1;
        o->group = after;
    }
    return 0;
}

int gm_vm_attach(struct gm_daemon *d, const char *vm, const char *gpu, struct gm_gpu_rec *out,
                 struct gm_vm_outcome *o, struct gm_error *err)
{
    if (o != NULL)
        memset(o, 0, sizeof(*o));
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
    /* Kept from placement while its MPS daemon stops and its functions move, without the lock. */
    if ((rc = mark_changing(d, g.uuid, err)) < 0)
        goto out;
    marked = 1;
    pthread_mutex_unlock(&d->lock);
    if (g.mode == GM_MODE_MPS) {
        struct gm_mps_outcome mo;
        gm_mps_stop(d, &g, &mo);
    }
    /* Nothing of the host may use it: processes NVML lists on it (started outside gpumux). */
    struct gm_gpu_live *live = calloc(1, sizeof(*live));
    if (live != NULL && gm_gpu_query(g.idx, live, NULL) == 0 && live->nprocs > 0) {
        char names[1024] = "";
        size_t used = 0;
        for (int k = 0; k < live->nprocs && used < sizeof(names); k++) {
            int n = snprintf(names + used, sizeof(names) - used, "%s%u (%s)", k ? ", " : "",
                             live->procs[k].pid, live->procs[k].name);
            used += n > 0 ? (size_t)n : 0;
        }
        rc = gm_err(err, GM_ENOSPACE,
                    "VM %s: no GPU resources available: GPU %d (%s) is in use by processes the "
                    "driver lists: %s",
                    vm, g.idx, g.uuid, names);
    }
    free(live);
    struct gm_vfio_journal j;
    int bound = 0;
    if (rc == 0 && passthrough_on(d)) {
        rc = bind_group(d, &g, vm, &j, o, err);
        bound = rc == 0;
    }
    pthread_mutex_lock(&d->lock);
    if (rc < 0)
        goto out;
    g.mode = GM_MODE_VM;
    snprintf(g.holder, sizeof(g.holder), "%s", vm);
    g.holder_since = gm_now_ms();
    char object[80], msg[200];
    snprintf(object, sizeof(object), "vm/%s", vm);
    if (bound)
        snprintf(msg, sizeof(msg), "attached GPU %d (%s): IOMMU group %d on vfio-pci", g.idx,
                 g.uuid, j.group);
    else
        snprintf(msg, sizeof(msg), "attached GPU %d (%s)", g.idx, g.uuid);
    rc = save(d, &g, object, msg, err);
    if (rc < 0 && bound) {
        /* The claim could not be recorded: nothing stays done. */
        struct gm_error rerr = {0};
        pthread_mutex_unlock(&d->lock);
        if (restore(d, &j, &rerr) == 0)
            gm_vfio_journal_remove(d->cfg.state_dir, g.uuid);
        pthread_mutex_lock(&d->lock);
        goto out;
    }
    if (bound) {
        j.phase = GM_VFIO_ATTACHED;
        struct gm_error jerr = {0};
        if (gm_vfio_journal_write(d->cfg.state_dir, &j, &jerr) < 0)
            gm_warn("VM %s: %s (the claim is recorded; the next start completes it)", vm, jerr.msg);
        gm_vfio_mark(d, &g, 1);
    }
    if (rc == 0 && out != NULL)
        *out = g;
    if (o != NULL && !bound)
        o->claim_only = 1;
out:
    if (marked)
        changing_done(d, g.uuid);
    pthread_mutex_unlock(&d->lock);
    free(gpus);
    gm_workload_list_free(ws, nws);
    return rc;
}

int gm_vm_detach(struct gm_daemon *d, const char *vm, int force, struct gm_gpu_rec *out,
                 struct gm_vm_outcome *o, struct gm_error *err)
{
    if (o != NULL)
        memset(o, 0, sizeof(*o));
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus = 0, nws = 0, i = 0;
    struct gm_gpu_rec g;
    int marked = 0;
    pthread_mutex_lock(&d->lock);
    int rc = load(d, NULL, &gpus, &ngpus, &ws, &nws, &i, err);
    if (rc < 0)
        goto out;
    long k = -1;
    for (size_t n = 0; n < ngpus && k < 0; n++)
        if (strcmp(gpus[n].holder, vm) == 0)
            k = (long)n;
    if (k < 0) {
        rc = gm_err(err, GM_ENOTFOUND, "no VM named %s holds a GPU", vm);
        goto out;
    }
    g = gpus[k];
    if (gm_strv_find(&d->changing, g.uuid) >= 0) {
        rc = gm_err(err, GM_EBUSY, "VM %s: GPU %d (%s) is changing now; try again", vm, g.idx,
                    g.uuid);
        goto out;
    }
    if ((rc = mark_changing(d, g.uuid, err)) < 0)
        goto out;
    marked = 1;
    pthread_mutex_unlock(&d->lock);
    struct gm_vfio_journal j;
    int journal = gm_vfio_journal_read(d->cfg.state_dir, g.uuid, &j, err);
    if (journal == -GM_ENOTFOUND) {
        gm_error_clear(err);
        rc = 0;
    } else if (journal < 0) {
        rc = journal;
    }
    if (journal == 0) {
        /* A running VM holds the group's node: taking the GPU away would pull it from under it. */
        struct gm_strv holders = {0};
        if (gm_vfio_holders(d->cfg.dev_root, j.group, &holders) > 0 && !force) {
            char names[1024] = "";
            for (size_t n = 0, used = 0; n < holders.n && used < sizeof(names); n++) {
                int w = snprintf(names + used, sizeof(names) - used, "%s%s", n ? ", " : "",
                                 holders.v[n]);
                used += w > 0 ? (size_t)w : 0;
            }
            rc = gm_err(err, GM_EBUSY,
                        "VM %s: GPU %d (%s) is in use by a running VM: %s/vfio/%d is held open "
                        "by %s; shut the VM down first, or detach --force",
                        vm, g.idx, g.uuid, d->cfg.dev_root, j.group, names);
        }
        gm_strv_free(&holders);
        if (rc == 0) {
            j.phase = GM_VFIO_RELEASING;
            rc = gm_vfio_journal_write(d->cfg.state_dir, &j, err);
        }
        if (rc == 0 && (rc = restore(d, &j, err)) < 0)
            gm_err_wrap(err, "VM %s: GPU %d (%s): giving its functions back", vm, g.idx, g.uuid);
        if (rc == 0 && o != NULL) {
            o->passthrough = 1;
            o->released = j;
        }
    }
    pthread_mutex_lock(&d->lock);
    if (rc < 0)
        goto out;
    if (out != NULL)
        *out = g;
    g.mode = GM_MODE_SHARED;
    g.holder[0] = '\0';
    g.holder_since = 0;
    char object[80], msg[200];
    snprintf(object, sizeof(object), "vm/%s", vm);
    snprintf(msg, sizeof(msg), "detached GPU %d (%s)%s; the GPU is shared again", g.idx, g.uuid,
             journal == 0 ? ": its functions are on their drivers again" : "");
    gm_error_clear(err);
    rc = save(d, &g, object, msg, err);
    if (rc == 0 && journal == 0) {
        gm_vfio_journal_remove(d->cfg.state_dir, g.uuid);
        gm_vfio_mark(d, &g, 0);
    }
out:
    if (marked)
        changing_done(d, g.uuid);
    pthread_mutex_unlock(&d->lock);
    free(gpus);
    gm_workload_list_free(ws, nws);
    return rc;
}

/* One journal at start: what its phase and the GPU's record say is left to do. */
static void recover_one(struct gm_daemon *d, const char *uuid)
{
    struct gm_vfio_journal j;
    struct gm_error err = {0};
    int rc = gm_vfio_journal_read(d->cfg.state_dir, uuid, &j, &err);
    if (rc < 0) {
        gm_error("vfio: %s", err.msg);
        return;
    }
    struct gm_gpu_rec g;
    pthread_mutex_lock(&d->lock);
    int known = gm_store_gpu_get(d->store, uuid, &g, NULL) == 0;
    pthread_mutex_unlock(&d->lock);
    int claimed = known && strcmp(g.holder, j.vm) == 0;
    char object[80];
    snprintf(object, sizeof(object), "vm/%s", j.vm);
    int finish = j.phase == GM_VFIO_BINDING && claimed;
    if (finish)
        j.phase = GM_VFIO_ATTACHED; /* killed after recording the claim: the attach was made */
    if (j.phase == GM_VFIO_ATTACHED && claimed) {
        /* After a reboot the host driver has the functions again: back to vfio-pci, before
         * anything can place a workload on the GPU. */
        struct gm_vfio_group grp;
        struct gm_vfio_plan plan;
        size_t done = 0;
        rc = gm_vfio_read(d->cfg.sysfs_root, d->cfg.dev_root, j.gpu_bdf, &grp, &err);
        if (rc == 0 && !grp.found) {
            pthread_mutex_lock(&d->lock);
            gm_store_event(d->store, GM_LEVEL_WARNING, object,
                           "its GPU %s (%s) is no longer in sysfs: removed, or on another bus id; "
                           "the claim is kept until 'gpumux vm detach %s'",
                           uuid, j.gpu_bdf, j.vm);
            pthread_mutex_unlock(&d->lock);
            gm_warn("VM %s: its GPU %s (%s) has disappeared; the claim is kept", j.vm, uuid,
                    j.gpu_bdf);
            return;
        }
        if (rc == 0)
            rc = gm_vfio_plan_bind(&grp, j.gpu_bdf, &plan, &err);
        if (rc == 0 && plan.n > 0)
            rc = gm_vfio_apply(d->cfg.sysfs_root, &grp, &plan, VFIO_STEP_MS, &done, &err);
        pthread_mutex_lock(&d->lock);
        if (rc < 0)
            gm_store_event(d->store, GM_LEVEL_ERROR, object,
                           "its GPU %s could not be put on vfio-pci again: %s", uuid, err.msg);
        else if (plan.n > 0)
            gm_store_event(d->store, GM_LEVEL_INFO, object,
                           "its GPU %s is on vfio-pci again (IOMMU group %d)", uuid, j.group);
        gm_vfio_mark(d, &g, rc == 0);
        pthread_mutex_unlock(&d->lock);
        if (finish)
            gm_vfio_journal_write(d->cfg.state_dir, &j, NULL);
        return;
    }
    /* An attach that did not get to record its claim, a detach that did not finish, or a claim
     * gone from the records: the functions go back to their drivers. */
    rc = restore(d, &j, &err);
    pthread_mutex_lock(&d->lock);
    if (rc < 0) {
        gm_store_event(d->store, GM_LEVEL_ERROR, object,
                       "giving GPU %s's functions back to their drivers failed: %s (kept in "
                       "%s/vfio/%s.json, tried again at the next start)",
                       uuid, err.msg, d->cfg.state_dir, uuid);
    } else {
        if (j.phase == GM_VFIO_RELEASING && claimed) {
            g.mode = GM_MODE_SHARED;
            g.holder[0] = '\0';
            g.holder_since = 0;
            gm_store_gpu_save(d->store, &g, object, GM_LEVEL_INFO,
                              "detached GPU (finished at start); the GPU is shared again", NULL);
        }
        gm_store_event(d->store, GM_LEVEL_INFO, object,
                       "repaired: GPU %s's functions are on their drivers again (%s that did "
                       "not finish)",
                       uuid, j.phase == GM_VFIO_RELEASING ? "a detach" : "an attach");
        gm_vfio_journal_remove(d->cfg.state_dir, uuid);
    }
    pthread_mutex_unlock(&d->lock);
}

void gm_vfio_recover(struct gm_daemon *d)
{
    struct gm_strv uuids = {0};
    gm_vfio_journal_list(d->cfg.state_dir, &uuids);
    for (size_t i = 0; i < uuids.n; i++)
        recover_one(d, uuids.v[i]);
    gm_strv_free(&uuids);
}
