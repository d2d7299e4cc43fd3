/* The gpus table: one row per GPU UUID ever seen, kept when the GPU disappears so that its mode
 * and holder come back with it. */
#include "daemon/store/store.h"
#include "daemon/store/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_gpu(const struct gm_gpu_rec *g, struct gm_error *err)
{
    if (g->uuid[0] == '\0')
        return gm_err(err, GM_EINVAL, "GPU %d: empty UUID", g->idx);
    if ((unsigned)g->mode > GM_MODE_VM)
        return gm_err(err, GM_EINVAL, "GPU %s: invalid mode %d", g->uuid, (int)g->mode);
    return 0;
}

static int read_gpu(struct gm_store *s, sqlite3_stmt *st, struct gm_gpu_rec *g,
                    struct gm_error *err)
{
    memset(g, 0, sizeof(*g));
    gm_store_col_text(st, 0, g->uuid, sizeof(g->uuid));
    g->idx = sqlite3_column_int(st, 1);
    gm_store_col_text(st, 2, g->name, sizeof(g->name));
    g->memory_total = (uint64_t)sqlite3_column_int64(st, 3);
    gm_store_col_text(st, 4, g->pci_bus_id, sizeof(g->pci_bus_id));
    if (gm_mode_parse((const char *)sqlite3_column_text(st, 5), &g->mode) < 0)
        return gm_err(err, GM_EIO, "%s: GPU %s has an unknown mode '%s'", s->path, g->uuid,
                      (const char *)sqlite3_column_text(st, 5));
    gm_store_col_text(st, 6, g->holder, sizeof(g->holder));
    g->holder_since = sqlite3_column_int64(st, 7);
    g->mps_default_pct = sqlite3_column_int(st, 8);
    g->mps_default_mem = (uint64_t)sqlite3_column_int64(st, 9);
    g->present = sqlite3_column_int(st, 10);
    return 0;
}

int gm_store_gpu_inventory(struct gm_store *s, const struct gm_gpu_rec *g, struct gm_error *err)
{
    int rc = check_gpu(g, err);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_GPU_INVENTORY, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, g->uuid);
    gm_store_bind_i64(st, 2, g->idx);
    gm_store_bind_text(st, 3, g->name);
    gm_store_bind_i64(st, 4, (int64_t)g->memory_total);
    gm_store_bind_text(st, 5, g->pci_bus_id);
    gm_store_bind_text(st, 6, gm_mode_name(g->mode));
    gm_store_bind_text(st, 7, g->holder);
    gm_store_bind_i64(st, 8, g->holder_since);
    gm_store_bind_i64(st, 9, g->mps_default_pct);
    gm_store_bind_i64(st, 10, (int64_t)g->mps_default_mem);
    char what[160];
    snprintf(what, sizeof(what), "recording GPU %d (%s)", g->idx, g->uuid);
    return gm_store_exec_stmt(s, st, NULL, err, what);
}

int gm_store_gpu_mark_all_absent(struct gm_store *s, struct gm_error *err)
{
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_GPU_ABSENT, err);
    if (st == NULL)
        return -err->code;
    return gm_store_exec_stmt(s, st, NULL, err, "marking GPUs absent");
}

int gm_store_gpu_list(struct gm_store *s, struct gm_gpu_rec **out, size_t *n, struct gm_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_GPU_LIST, err);
    if (st == NULL)
        return -err->code;
    struct gm_gpu_rec *v = NULL;
    size_t len = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = gm_store_grow((void **)&v, &cap, len, sizeof(*v), 8, "GPUs", err)) < 0)
            goto done;
        if ((ret = read_gpu(s, st, &v[len], err)) < 0)
            goto done;
        len++;
    }
    if (rc != SQLITE_DONE)
        ret = gm_store_fail(s, rc, err, "listing GPUs");
done:
    sqlite3_reset(st);
    if (ret < 0) {
        free(v);
        return ret;
    }
    *out = v;
    *n = len;
    return 0;
}

int gm_store_gpu_get(struct gm_store *s, const char *uuid, struct gm_gpu_rec *out,
                     struct gm_error *err)
{
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_GPU_GET, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, uuid);
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_ROW)
        ret = read_gpu(s, st, out, err);
    else if (rc == SQLITE_DONE)
        ret = gm_err(err, GM_ENOTFOUND, "no GPU with UUID %s", uuid);
    else
        ret = gm_store_fail(s, rc, err, "reading GPU %s", uuid);
    sqlite3_reset(st);
    return ret;
}

int gm_store_gpu_update(struct gm_store *s, const struct gm_gpu_rec *g, struct gm_error *err)
{
    int rc = check_gpu(g, err);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_GPU_UPDATE, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, gm_mode_name(g->mode));
    gm_store_bind_text(st, 2, g->holder);
    gm_store_bind_i64(st, 3, g->holder_since);
    gm_store_bind_i64(st, 4, g->mps_default_pct);
    gm_store_bind_i64(st, 5, (int64_t)g->mps_default_mem);
    gm_store_bind_text(st, 6, g->uuid);
    char what[160];
    snprintf(what, sizeof(what), "updating GPU %d (%s)", g->idx, g->uuid);
    int changes = 0;
    if ((rc = gm_store_exec_stmt(s, st, &changes, err, what)) < 0)
        return rc;
    if (changes == 0)
        return gm_err(err, GM_ENOTFOUND, "no GPU with UUID %s", g->uuid);
    return 0;
}
