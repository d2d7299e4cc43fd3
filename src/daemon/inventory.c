/* GPU inventory, sharing modes and VM claims. */
#include "common/log.h"
#include "common/parse.h"
#include "daemon/daemon.h"
#include "daemon/sched.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int gm_gpu_set_mode(struct gm_daemon *d, const char *id, const char *mode, struct gm_gpu_rec *out,
                    struct gm_error *err)
{
    enum gm_mode m;
    if (mode == NULL || gm_mode_parse(mode, &m) < 0)
        return gm_err(err, GM_EINVAL, "mode '%s': must be one of shared, mps, vm",
                      mode ? mode : "");
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus = 0, nws = 0, i = 0;
    pthread_mutex_lock(&d->lock);
    int rc = load(d, id, &gpus, &ngpus, &ws, &nws, &i, err);
    if (rc < 0)
        goto out;
    struct gm_gpu_rec g = gpus[i];
    if (g.mode == m)
        goto done;
    if (g.mode == GM_MODE_VM && g.holder[0]) {
        rc = gm_err(err, GM_ECONFLICT,
                    "GPU %d (%s) is held by VM %s; detach it first (gpumux vm detach %s)", g.idx,
                    g.uuid, g.holder, g.holder);
        goto out;
    }
    char names[512];
    if (gm_sched_users(ws, nws, g.uuid, NULL, names, sizeof(names)) > 0) {
        rc = gm_err(err, GM_EBUSY,
                    "GPU %d (%s): changing the mode from %s to %s would break the workloads "
                    "running on it: %s (stop or delete them first)",
                    g.idx, g.uuid, gm_mode_name(g.mode), gm_mode_name(m), names);
        goto out;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "mode changed from %s to %s", gm_mode_name(g.mode), gm_mode_name(m));
    g.mode = m;
    g.holder[0] = '\0';
    g.holder_since = 0;
    char object[32];
    snprintf(object, sizeof(object), "gpu/%d", g.idx);
    rc = save(d, &g, object, msg, err);
    if (rc == 0)
        gm_info("GPU %d (%s): %s", g.idx, g.uuid, msg);
done:
    if (rc == 0 && out != NULL)
        *out = g;
out:
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
