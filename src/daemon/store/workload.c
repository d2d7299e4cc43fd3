/* The workloads table. A workload's GPUs are a JSON array of UUIDs in one column, so that listing
 * every workload is a single query. */
#include "daemon/store/store.h"
#include "daemon/store/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_workload(const struct gm_workload_rec *w, struct gm_error *err)
{
    if (w->name[0] == '\0')
        return gm_err(err, GM_EINVAL, "workload: empty name");
    if ((unsigned)w->state > GM_W_STOPPED)
        return gm_err(err, GM_EINVAL, "workload %s: invalid state %d", w->name, (int)w->state);
    if ((unsigned)w->restart > GM_RESTART_ALWAYS)
        return gm_err(err, GM_EINVAL, "workload %s: invalid restart policy %d", w->name,
                      (int)w->restart);
    if (w->ngpus < 0 || w->ngpus > GM_MAX_WORKLOAD_GPUS)
        return gm_err(err, GM_EINVAL, "workload %s: %d GPUs (at most %d)", w->name, w->ngpus,
                      GM_MAX_WORKLOAD_GPUS);
    return 0;
}

static char *gpus_to_json(const struct gm_workload_rec *w)
{
    json_t *a = json_array();
    for (int i = 0; a != NULL && i < w->ngpus; i++) {
        if (json_array_append_new(a, json_string(w->gpus[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    char *text = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

static int gpus_from_json(const char *text, struct gm_workload_rec *w)
{
    json_t *a = json_loads(text != NULL ? text : "", 0, NULL);
    if (!json_is_array(a) || json_array_size(a) > GM_MAX_WORKLOAD_GPUS) {
        json_decref(a);
        return -1;
    }
    w->ngpus = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *u = json_string_value(json_array_get(a, i));
        if (u == NULL) {
            json_decref(a);
            return -1;
        }
        gm_store_copy_text(w->gpus[w->ngpus++], sizeof(w->gpus[0]), u);
    }
    json_decref(a);
    return 0;
}

/* Binds ?1..?25 in the column order of GM_WORKLOAD_COLS without the id. */
static void bind_workload(sqlite3_stmt *st, const struct gm_workload_rec *w, const char *gpus)
{
    gm_store_bind_text(st, 1, w->name);
    if (w->deployment[0] != '\0')
        gm_store_bind_text(st, 2, w->deployment);
    else
        sqlite3_bind_null(st, 2);
    gm_store_bind_text(st, 3, w->kind);
    if (w->spec_json != NULL)
        gm_store_bind_text(st, 4, w->spec_json);
    else
        sqlite3_bind_null(st, 4);
    gm_store_bind_i64(st, 5, w->desired_running);
    gm_store_bind_text(st, 6, gm_wstate_name(w->state));
    gm_store_bind_text(st, 7, gpus);
    gm_store_bind_i64(st, 8, w->compute_pct);
    gm_store_bind_i64(st, 9, (int64_t)w->memory_limit);
    gm_store_bind_text(st, 10, gm_restart_name(w->restart));
    gm_store_bind_i64(st, 11, w->uid);
    gm_store_bind_i64(st, 12, w->gid);
    gm_store_bind_i64(st, 13, w->launch_id);
    gm_store_bind_i64(st, 14, w->monitor_pid);
    gm_store_bind_i64(st, 15, (int64_t)w->monitor_start);
    gm_store_bind_i64(st, 16, w->pid);
    gm_store_bind_i64(st, 17, (int64_t)w->pid_start);
    gm_store_bind_i64(st, 18, w->has_exit);
    gm_store_bind_i64(st, 19, w->exit_code);
    gm_store_bind_i64(st, 20, w->exit_signal);
    gm_store_bind_i64(st, 21, w->restart_count);
    gm_store_bind_text(st, 22, w->reason);
    gm_store_bind_i64(st, 23, w->created_at);
    gm_store_bind_i64(st, 24, w->started_at);
    gm_store_bind_i64(st, 25, w->finished_at);
}

static int read_workload(struct gm_store *s, sqlite3_stmt *st, struct gm_workload_rec *w,
                         struct gm_error *err)
{
    memset(w, 0, sizeof(*w));
    w->id = sqlite3_column_int64(st, 0);
    gm_store_col_text(st, 1, w->name, sizeof(w->name));
    gm_store_col_text(st, 2, w->deployment, sizeof(w->deployment));
    gm_store_col_text(st, 3, w->kind, sizeof(w->kind));
    if (gm_store_col_strdup(st, 4, &w->spec_json) < 0)
        return gm_err(err, GM_ENOMEM, "reading workload %s: out of memory", w->name);
    w->desired_running = sqlite3_column_int(st, 5);
    const char *bad = NULL;
    if (gm_wstate_parse((const char *)sqlite3_column_text(st, 6), &w->state) < 0)
        bad = "state";
    else if (gpus_from_json((const char *)sqlite3_column_text(st, 7), w) < 0)
        bad = "GPU list";
    else if (gm_restart_parse((const char *)sqlite3_column_text(st, 10), &w->restart) < 0)
        bad = "restart policy";
    if (bad != NULL) {
        gm_workload_rec_free(w);
        return gm_err(err, GM_EIO, "%s: workload %s has an invalid %s", s->path, w->name, bad);
    }
    w->compute_pct = sqlite3_column_int(st, 8);
    w->memory_limit = (uint64_t)sqlite3_column_int64(st, 9);
    w->uid = sqlite3_column_int(st, 11);
    w->gid = sqlite3_column_int(st, 12);
    w->launch_id = sqlite3_column_int64(st, 13);
    w->monitor_pid = sqlite3_column_int(st, 14);
    w->monitor_start = (uint64_t)sqlite3_column_int64(st, 15);
    w->pid = sqlite3_column_int(st, 16);
    w->pid_start = (uint64_t)sqlite3_column_int64(st, 17);
    w->has_exit = sqlite3_column_int(st, 18);
    w->exit_code = sqlite3_column_int(st, 19);
    w->exit_signal = sqlite3_column_int(st, 20);
    w->restart_count = sqlite3_column_int(st, 21);
    /* Kept in the spec, where older records have nothing: no bound, no --rm. Parsed only
     * where one is there: every poll lists the workloads. */
    json_t *spec = w->spec_json != NULL && ((w->restart == GM_RESTART_ON_FAILURE &&
                                             strstr(w->spec_json, "\"restart_max\"") != NULL) ||
                                            strstr(w->spec_json, "\"auto_remove\"") != NULL)
                       ? json_loads(w->spec_json, 0, NULL)
                       : NULL;
    w->auto_remove = json_is_true(json_object_get(spec, "auto_remove"));
    json_t *max = json_object_get(spec, "restart_max");
    w->restart_max = json_is_integer(max) && json_integer_value(max) > 0 &&
                             json_integer_value(max) <= GM_RESTART_MAX_BOUND
                         ? (int)json_integer_value(max)
                         : 0;
    json_decref(spec);
    gm_store_col_text(st, 22, w->reason, sizeof(w->reason));
    w->created_at = sqlite3_column_int64(st, 23);
    w->started_at = sqlite3_column_int64(st, 24);
    w->finished_at = sqlite3_column_int64(st, 25);
    return 0;
}

/* The foreign key on deployment is the only way a single-row write can fail a constraint
 * besides the unique name, so a constraint error is worded for it. */
static int write_failed(struct gm_store *s, int rc, const struct gm_workload_rec *w,
                        struct gm_error *err, const char *verb)
{
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return gm_err(err, GM_ECONFLICT, "workload %s already exists", w->name);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return gm_err(err, GM_ENOTFOUND, "workload %s: no deployment named %s", w->name,
                      w->deployment);
    return gm_store_fail(s, rc, err, "%s workload %s", verb, w->name);
}

static int write_workload(struct gm_store *s, enum gm_store_stmt which,
                          const struct gm_workload_rec *w, int *changes, struct gm_error *err)
{
    int ret = check_workload(w, err);
    if (ret < 0)
        return ret;
    sqlite3_stmt *st = gm_store_stmt(s, which, err);
    if (st == NULL)
        return -err->code;
    char *gpus = gpus_to_json(w);
    if (gpus == NULL)
        return gm_err(err, GM_ENOMEM, "workload %s: out of memory", w->name);
    bind_workload(st, w, gpus);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        *changes = sqlite3_changes(s->db);
        ret = 0;
    } else {
        ret = write_failed(s, rc, w, err, which == GM_SQL_WL_INSERT ? "recording" : "updating");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(gpus);
    return ret;
}

int gm_store_workload_insert(struct gm_store *s, struct gm_workload_rec *w, struct gm_error *err)
{
    int changes = 0;
    int ret = write_workload(s, GM_SQL_WL_INSERT, w, &changes, err);
    if (ret == 0)
        w->id = sqlite3_last_insert_rowid(s->db);
    return ret;
}

int gm_store_workload_update(struct gm_store *s, const struct gm_workload_rec *w,
                             struct gm_error *err)
{
    int changes = 0;
    int ret = write_workload(s, GM_SQL_WL_UPDATE, w, &changes, err);
    if (ret == 0 && changes == 0)
        return gm_err(err, GM_ENOTFOUND, "no workload named %s", w->name);
    return ret;
}

int gm_store_workload_get(struct gm_store *s, const char *name, struct gm_workload_rec *out,
                          struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_WL_GET, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, name);
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_ROW)
        ret = read_workload(s, st, out, err);
    else if (rc == SQLITE_DONE)
        ret = gm_err(err, GM_ENOTFOUND, "no workload named %s", name);
    else
        ret = gm_store_fail(s, rc, err, "reading workload %s", name);
    sqlite3_reset(st);
    return ret;
}

int gm_store_workload_list(struct gm_store *s, struct gm_workload_rec **out, size_t *n,
                           struct gm_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_WL_LIST, err);
    if (st == NULL)
        return -err->code;
    struct gm_workload_rec *v = NULL;
    size_t len = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = gm_store_grow((void **)&v, &cap, len, sizeof(*v), 64, "workloads", err)) < 0)
            goto done;
        if ((ret = read_workload(s, st, &v[len], err)) < 0)
            goto done;
        len++;
    }
    if (rc != SQLITE_DONE)
        ret = gm_store_fail(s, rc, err, "listing workloads");
done:
    sqlite3_reset(st);
    if (ret < 0) {
        gm_workload_list_free(v, len);
        return ret;
    }
    *out = v;
    *n = len;
    return 0;
}

int gm_store_workload_delete(struct gm_store *s, const char *name, struct gm_error *err)
{
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_WL_DELETE, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_text(st, 1, name);
    char what[128];
    snprintf(what, sizeof(what), "deleting workload %s", name);
    int changes = 0;
    int ret = gm_store_exec_stmt(s, st, &changes, err, what);
    if (ret == 0 && changes == 0)
        return gm_err(err, GM_ENOTFOUND, "no workload named %s", name);
    return ret;
}

int gm_store_workload_count(struct gm_store *s, size_t *n, struct gm_error *err)
{
    *n = 0;
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_WL_COUNT, err);
    if (st == NULL)
        return -err->code;
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        *n = (size_t)sqlite3_column_int64(st, 0);
    else
        ret = gm_store_fail(s, rc, err, "counting workloads");
    sqlite3_reset(st);
    return ret;
}
