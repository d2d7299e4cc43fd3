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

static void append_msg(char *msgs, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append_msg(char *msgs, size_t len, const char *fmt, ...)
{
    if (msgs == NULL || len == 0)
        return;
    size_t used = strlen(msgs);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msgs + used, len - used, fmt, ap);
    va_end(ap);
}

int gm_inventory_sync(struct gm_daemon *d, struct gm_error *err)
{
    int n = gm_gpu_count();
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_begin(d->store, err);
    if (rc < 0)
        goto out;
    rc = gm_store_gpu_mark_all_absent(d->store, err);
    for (int i = 0; rc == 0 && i < n; i++) {
        struct gm_gpu_live *live = calloc(1, sizeof(*live));
        if (live == NULL) {
            rc = gm_err(err, GM_ENOMEM, "out of memory");
            break;
        }
        rc = gm_gpu_query(i, live, err);
        if (rc == 0) {
            struct gm_gpu_rec g;
            memset(&g, 0, sizeof(g));
            snprintf(g.uuid, sizeof(g.uuid), "%s", live->uuid);
            snprintf(g.name, sizeof(g.name), "%s", live->name);
            snprintf(g.pci_bus_id, sizeof(g.pci_bus_id), "%s", live->pci_bus_id);
            g.idx = live->index;
            g.memory_total = live->memory_total;
            g.present = 1;
            rc = gm_store_gpu_inventory(d->store, &g, err);
            gm_info("GPU %d: %s %s (%s), %" PRIu64 " MiB", g.idx, g.name, g.uuid, g.pci_bus_id,
                    g.memory_total / GM_MIB);
        }
        free(live);
    }
    if (rc == 0)
        rc = gm_store_commit(d->store, err);
    else
        gm_store_rollback(d->store);
out:
    pthread_mutex_unlock(&d->lock);
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
    int rc = gm_store_begin(d->store, err);
    if (rc < 0)
        return rc;
    rc = gm_store_gpu_update(d->store, g, err);
    if (rc < 0) {
        gm_store_rollback(d->store);
        return rc;
    }
    gm_store_event(d->store, "info", object, "%s", msg);
    return gm_store_commit(d->store, err);
}

/* Stops (and waits for) the active workloads on GPU uuid; their names go to names. Called
 * without d->lock. */
static int stop_users(struct gm_daemon *d, const char *uuid, char *names, size_t len,
                      struct gm_error *err)
{
    struct gm_workload_rec *ws = NULL;
    size_t nws = 0;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_list(d->store, &ws, &nws, err);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0)
        return rc;
    names[0] = '\0';
    for (size_t i = 0; i < nws; i++) {
        int on = 0;
        for (int k = 0; k < ws[i].ngpus; k++)
            on |= strcmp(ws[i].gpus[k], uuid) == 0;
        if (!on || !gm_workload_active(&ws[i]))
            continue;
        size_t used = strlen(names);
        snprintf(names + used, len - used, "%s%s", used ? " " : "", ws[i].name);
        gm_workload_stop(d, ws[i].name, NULL, NULL);
    }
    gm_workload_list_free(ws, nws);
    /* Wait until none of them runs any more. */
    int64_t deadline = gm_now_ms() + (d->cfg.stop_timeout_s + 5) * 1000;
    for (;;) {
        pthread_mutex_lock(&d->lock);
        rc = gm_store_workload_list(d->store, &ws, &nws, err);
        pthread_mutex_unlock(&d->lock);
        if (rc < 0)
            return rc;
        char busy[512];
        int left = gm_sched_users(ws, nws, uuid, NULL, busy, sizeof(busy));
        gm_workload_list_free(ws, nws);
        if (left == 0)
            return 0;
        if (gm_now_ms() > deadline)
            return gm_err(err, GM_EBUSY, "workloads %s did not stop in time", busy);
        usleep(50000);
    }
}

int gm_gpu_set_mode(struct gm_daemon *d, const char *id, enum gm_mode m, enum gm_on_busy on_busy,
                    struct gm_gpu_rec *out, char *msgs, size_t len, struct gm_error *err)
{
    if ((unsigned)m > GM_MODE_VM)
        return gm_err(err, GM_EINVAL, "mode %d: must be one of shared, mps, vm", (int)m);
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus = 0, nws = 0, i = 0;
    char stopped[1024] = "";
    int locked = 1;
    pthread_mutex_lock(&d->lock);
    int rc = load(d, id, &gpus, &ngpus, &ws, &nws, &i, err);
    if (rc < 0)
        goto out;
    struct gm_gpu_rec g = gpus[i];
    if (g.mode == m) {
        if (m == GM_MODE_MPS) /* make sure it runs, as `mps start` promises */
            rc = gm_mps_start(d, &g, msgs, len, err);
        goto done;
    }
    if (g.mode == GM_MODE_VM && g.holder[0]) {
        rc = gm_err(err, GM_ECONFLICT,
                    "GPU %d (%s) is held by VM %s; detach it first (gpumux vm detach %s)", g.idx,
                    g.uuid, g.holder, g.holder);
        goto out;
    }
    char names[512];
    if (gm_sched_users(ws, nws, g.uuid, NULL, names, sizeof(names)) > 0) {
        if (on_busy == GM_ON_BUSY_REFUSE) {
            rc = gm_err(err, GM_EBUSY,
                        "GPU %d (%s): changing the mode from %s to %s would break the workloads "
                        "running on it: %s (stop or delete them first; gpumux mps stop --force "
                        "or gpu mode --stop-workloads stops them, gpu mode "
                        "--restart-workloads restarts them)",
                        g.idx, g.uuid, gm_mode_name(g.mode), gm_mode_name(m), names);
            goto out;
        }
        pthread_mutex_unlock(&d->lock);
        locked = 0;
        rc = stop_users(d, g.uuid, stopped, sizeof(stopped), err);
        if (rc < 0)
            goto out;
        pthread_mutex_lock(&d->lock);
        locked = 1;
        free(gpus);
        gm_workload_list_free(ws, nws);
        rc = load(d, id, &gpus, &ngpus, &ws, &nws, &i, err);
        if (rc < 0)
            goto out;
        g = gpus[i];
        if (gm_sched_users(ws, nws, g.uuid, NULL, names, sizeof(names)) > 0) {
            rc = gm_err(err, GM_EBUSY, "GPU %d (%s): workloads %s started again meanwhile", g.idx,
                        g.uuid, names);
            goto out;
        }
    }
    /* MPS goes first: when it cannot start the GPU stays as it was. */
    if (m == GM_MODE_MPS && (rc = gm_mps_start(d, &g, msgs, len, err)) < 0)
        goto out;
    if (g.mode == GM_MODE_MPS)
        gm_mps_stop(d, &g, msgs, len, err);
    char msg[256];
    snprintf(msg, sizeof(msg), "mode changed from %s to %s", gm_mode_name(g.mode), gm_mode_name(m));
    enum gm_mode was = g.mode;
    g.mode = m;
    g.holder[0] = '\0';
    g.holder_since = 0;
    char object[32];
    snprintf(object, sizeof(object), "gpu/%d", g.idx);
    rc = save(d, &g, object, msg, err);
    if (rc < 0 && m == GM_MODE_MPS)
        gm_mps_stop(d, &g, NULL, 0, NULL);
    if (rc < 0 && was == GM_MODE_MPS)
        gm_mps_start(d, &gpus[i], NULL, 0, NULL);
    if (rc == 0)
        gm_info("GPU %d (%s): %s", g.idx, g.uuid, msg);
done:
    if (rc == 0 && out != NULL)
        *out = g;
out:
    if (locked)
        pthread_mutex_unlock(&d->lock);
    free(gpus);
    gm_workload_list_free(ws, nws);
    /* Workloads stopped for the change start again under the new mode when asked. */
    if (rc == 0 && on_busy == GM_ON_BUSY_RESTART && stopped[0]) {
        char *save_p = NULL;
        for (char *n = strtok_r(stopped, " ", &save_p); n; n = strtok_r(NULL, " ", &save_p)) {
            struct gm_error e;
            if (gm_workload_start(d, n, NULL, &e) < 0) {
                append_msg(msgs, len, "workload %s could not start again: %s\n", n, e.msg);
            } else {
                append_msg(msgs, len, "Restarted workload %s.\n", n);
            }
        }
    } else if (rc == 0 && stopped[0]) {
        append_msg(msgs, len, "Stopped workloads: %s.\n", stopped);
    }
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
    struct gm_gpu_rec g = gpus[i];
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
    char names[512];
    if (gm_sched_users(ws, nws, g.uuid, NULL, names, sizeof(names)) > 0) {
        rc = gm_err(err, GM_ENOSPACE,
                    "VM %s: no GPU resources available: GPU %d (%s) is in use by workloads %s", vm,
                    g.idx, g.uuid, names);
        goto out;
    }
    if (g.mode == GM_MODE_MPS)
        gm_mps_stop(d, &g, NULL, 0, NULL);
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
