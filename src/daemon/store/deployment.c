/* The deployments table: each applied manifest as given, with its generation. */
#include "daemon/store/store.h"
#include "daemon/store/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_deployment(const struct gm_deployment_rec *d, struct gm_error *err)
{
    if (d->name[0] == '\0')
        return gm_err(err, GM_EINVAL, "deployment: empty name");
    if (strcmp(d->format, "kubernetes") != 0 && strcmp(d->format, "iotedge") != 0 &&
        strcmp(d->format, "native") != 0)
        return gm_err(err, GM_EINVAL,
                      "deployment %s: unknown format '%s' (kubernetes, iotedge or native)", d->name,
                      d->format);
    return 0;
}

static int read_deployment(sqlite3_stmt *st, struct gm_deployment_rec *d, struct gm_error *err)
{
    memset(d, 0, sizeof(*d));
    gm_store_col_text(st, 0, d->name, sizeof(d->name));
    gm_store_col_text(st, 1, d->format, sizeof(d->format));
    if (gm_store_col_strdup(st, 2, &d->manifest) < 0)
        return gm_err(err, GM_ENOMEM, "reading deployment %s: out of memory", d->name);
    d->generation = sqlite3_column_int64(st, 3);
    d->created_at = sqlite3_column_int64(st, 4);
    d->updated_at = sqlite3_column_int64(st, 5);
    return 0;
}

static int write_deployment(struct gm_store *s, enum gm_store_stmt which,
                            const struct gm_deployment_rec *d, struct gm_error *err)
{
    int ret = check_deployment(d, err);
    if (ret < 0)
        return ret;
    sqlite3_stmt *st = gm_store_stmt(s, which, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, d->name);
    gm_store_bind_text(st, 2, d->format);
    gm_store_bind_text(st, 3, d->manifest);
    gm_store_bind_i64(st, 4, d->generation);
    if (which == GM_SQL_DEP_INSERT)
        gm_store_bind_i64(st, 5, d->created_at);
    gm_store_bind_i64(st, 6, d->updated_at);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        if (which == GM_SQL_DEP_UPDATE && sqlite3_changes(s->db) == 0)
            ret = gm_err(err, GM_ENOTFOUND, "no deployment named %s", d->name);
    } else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        ret = gm_err(err, GM_ECONFLICT, "deployment %s already exists", d->name);
    } else {
        ret = gm_store_fail(s, rc, err, "%s deployment %s",
                            which == GM_SQL_DEP_INSERT ? "recording" : "updating", d->name);
    }
    sqlite3_reset(st);
    return ret;
}

int gm_store_deployment_insert(struct gm_store *s, const struct gm_deployment_rec *d,
                               struct gm_error *err)
{
    return write_deployment(s, GM_SQL_DEP_INSERT, d, err);
}

int gm_store_deployment_update(struct gm_store *s, const struct gm_deployment_rec *d,
                               struct gm_error *err)
{
    return write_deployment(s, GM_SQL_DEP_UPDATE, d, err);
}

int gm_store_deployment_get(struct gm_store *s, const char *name, struct gm_deployment_rec *out,
                            struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_DEP_GET, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, name);
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_ROW)
        ret = read_deployment(st, out, err);
    else if (rc == SQLITE_DONE)
        ret = gm_err(err, GM_ENOTFOUND, "no deployment named %s", name);
    else
        ret = gm_store_fail(s, rc, err, "reading deployment %s", name);
    sqlite3_reset(st);
    return ret;
}

int gm_store_deployment_list(struct gm_store *s, struct gm_deployment_rec **out, size_t *n,
                             struct gm_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_DEP_LIST, err);
    if (st == NULL)
        return -err->code;
    struct gm_deployment_rec *v = NULL;
    size_t len = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = gm_store_grow((void **)&v, &cap, len, sizeof(*v), 8, "deployments", err)) < 0)
            goto done;
        if ((ret = read_deployment(st, &v[len], err)) < 0)
            goto done;
        len++;
    }
    if (rc != SQLITE_DONE)
        ret = gm_store_fail(s, rc, err, "listing deployments");
done:
    sqlite3_reset(st);
    if (ret < 0) {
        gm_store_deployment_list_free(v, len);
        return ret;
    }
    *out = v;
    *n = len;
    return 0;
}

/* Names up to three workloads that still belong to the deployment, for the refusal message. */
static int workloads_of(struct gm_store *s, const char *name, char *buf, size_t size,
                        struct gm_error *err)
{
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_WL_OF_DEPLOYMENT, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, name);
    int rc, count = 0;
    size_t used = 0;
    buf[0] = '\0';
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *w = (const char *)sqlite3_column_text(st, 0);
        int k = count < 3 ? snprintf(buf + used, size - used, "%s%s", count ? ", " : "", w)
                          : snprintf(buf + used, size - used, ", ...");
        if (k > 0 && (size_t)k < size - used)
            used += (size_t)k;
        count++;
    }
    int ret = rc == SQLITE_DONE ? count : gm_store_fail(s, rc, err, "reading deployment %s", name);
    sqlite3_reset(st);
    return ret;
}

int gm_store_deployment_delete(struct gm_store *s, const char *name, struct gm_error *err)
{
    char names[256];
    int ret = workloads_of(s, name, names, sizeof(names), err);
    if (ret < 0)
        return ret;
    if (ret > 0)
        return gm_err(err, GM_EBUSY, "deployment %s still has workloads: %s", name, names);
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_DEP_DELETE, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, name);
    char what[128];
    snprintf(what, sizeof(what), "deleting deployment %s", name);
    int changes = 0;
    if ((ret = gm_store_exec_stmt(s, st, &changes, err, what)) < 0)
        return ret;
    if (changes == 0)
        return gm_err(err, GM_ENOTFOUND, "no deployment named %s", name);
    return 0;
}

void gm_store_deployment_rec_free(struct gm_deployment_rec *d)
{
    if (d != NULL) {
        free(d->manifest);
        d->manifest = NULL;
    }
}

void gm_store_deployment_list_free(struct gm_deployment_rec *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        gm_store_deployment_rec_free(&v[i]);
    free(v);
}
