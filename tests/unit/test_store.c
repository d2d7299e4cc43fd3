#include "daemon/store/store.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmp[PATH_MAX];
static char dbpath[PATH_MAX + 16];

static void setup(void)
{
    const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    snprintf(tmp, sizeof(tmp), "%s/gm-store-XXXXXX", base);
    cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
    snprintf(dbpath, sizeof(dbpath), "%s/state.db", tmp);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

static void teardown(void)
{
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct gm_store *open_ok(const char *dir)
{
    struct gm_store *s = NULL;
    struct gm_error err = {0};
    int rc = gm_store_open(dir, &s, &err);
    cr_assert_eq(rc, 0, "open %s: %d %s", dir, rc, err.msg);
    cr_assert_not_null(s);
    return s;
}

static void open_refused(int code, struct gm_error *err)
{
    struct gm_store *s = (struct gm_store *)1;
    gm_error_clear(err);
    int rc = gm_store_open(tmp, &s, err);
    cr_assert_eq(rc, -code, "open: expected -%d, got %d (%s)", code, rc, err->msg);
    cr_assert_null(s);
    cr_assert_eq(err->code, code);
    cr_assert(strstr(err->msg, dbpath) != NULL, "message does not name the file: %s", err->msg);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, n = 0, k;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        k = fread(buf + n, 1, cap - n, f);
        n += k;
    } while (k > 0);
    fclose(f);
    *len = n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void raw_exec(const char *sql)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "");
    sqlite3_close(db);
}

static struct gm_gpu_rec gpu(int idx, const char *uuid)
{
    struct gm_gpu_rec g = {0};
    snprintf(g.uuid, sizeof(g.uuid), "%s", uuid);
    g.idx = idx;
    snprintf(g.name, sizeof(g.name), "Tesla T4 #%d", idx);
    g.memory_total = 15842934784ULL + (uint64_t)idx;
    snprintf(g.pci_bus_id, sizeof(g.pci_bus_id), "00000000:%02X:00.0", idx + 1);
    g.mode = GM_MODE_SHARED;
    g.present = 1;
    return g;
}

/* Every field set to a distinct value that a mix-up of two columns would show. */
static struct gm_workload_rec workload(const char *name)
{
    struct gm_workload_rec w = {0};
    w.id = 999999;
    snprintf(w.name, sizeof(w.name), "%s", name);
    snprintf(w.kind, sizeof(w.kind), "process");
    w.spec_json = strdup("{\"command\":[\"sleep\",\"100\"],\"env\":{\"K\":\"V \\\" ü\"}}");
    w.desired_running = 1;
    w.state = GM_W_RUNNING;
    w.ngpus = 2;
    snprintf(w.gpus[0], sizeof(w.gpus[0]), "GPU-aaaa-%s", name);
    snprintf(w.gpus[1], sizeof(w.gpus[1]), "GPU-bbbb");
    w.compute_pct = 30;
    w.memory_limit = UINT64_MAX - 7;
    w.restart = GM_RESTART_ON_FAILURE;
    w.uid = 1001;
    w.gid = 1002;
    w.launch_id = 5000000000LL;
    w.monitor_pid = 4242;
    w.monitor_start = 18446744073709551000ULL;
    w.pid = 4343;
    w.pid_start = 123456789012ULL;
    w.has_exit = 1;
    w.exit_code = -1;
    w.exit_signal = 9;
    w.restart_count = 3;
    snprintf(w.reason, sizeof(w.reason), "killed by signal 9");
    w.created_at = 1700000000001LL;
    w.started_at = 1700000000002LL;
    w.finished_at = 1700000000003LL;
    return w;
}

static void assert_workload_eq(const struct gm_workload_rec *a, const struct gm_workload_rec *b)
{
    cr_assert_eq(a->id, b->id);
    cr_assert_str_eq(a->name, b->name);
    cr_assert_str_eq(a->deployment, b->deployment);
    cr_assert_str_eq(a->kind, b->kind);
    if (a->spec_json == NULL || b->spec_json == NULL)
        cr_assert_eq(a->spec_json, b->spec_json);
    else
        cr_assert_str_eq(a->spec_json, b->spec_json);
    cr_assert_eq(a->desired_running, b->desired_running);
    cr_assert_eq(a->state, b->state);
    cr_assert_eq(a->ngpus, b->ngpus);
    for (int i = 0; i < a->ngpus; i++)
        cr_assert_str_eq(a->gpus[i], b->gpus[i]);
    cr_assert_eq(a->compute_pct, b->compute_pct);
    cr_assert_eq(a->memory_limit, b->memory_limit);
    cr_assert_eq(a->restart, b->restart);
    cr_assert_eq(a->uid, b->uid);
    cr_assert_eq(a->gid, b->gid);
    cr_assert_eq(a->launch_id, b->launch_id);
    cr_assert_eq(a->monitor_pid, b->monitor_pid);
    cr_assert_eq(a->monitor_start, b->monitor_start);
    cr_assert_eq(a->pid, b->pid);
    cr_assert_eq(a->pid_start, b->pid_start);
    cr_assert_eq(a->has_exit, b->has_exit);
    cr_assert_eq(a->exit_code, b->exit_code);
    cr_assert_eq(a->exit_signal, b->exit_signal);
    cr_assert_eq(a->restart_count, b->restart_count);
    cr_assert_str_eq(a->reason, b->reason);
    cr_assert_eq(a->created_at, b->created_at);
    cr_assert_eq(a->started_at, b->started_at);
    cr_assert_eq(a->finished_at, b->finished_at);
}

static void assert_gpu_eq(const struct gm_gpu_rec *a, const struct gm_gpu_rec *b)
{
    cr_assert_str_eq(a->uuid, b->uuid);
    cr_assert_eq(a->idx, b->idx);
    cr_assert_str_eq(a->name, b->name);
    cr_assert_eq(a->memory_total, b->memory_total);
    cr_assert_str_eq(a->pci_bus_id, b->pci_bus_id);
    cr_assert_eq(a->mode, b->mode);
    cr_assert_str_eq(a->holder, b->holder);
    cr_assert_eq(a->holder_since, b->holder_since);
    cr_assert_eq(a->mps_default_pct, b->mps_default_pct);
    cr_assert_eq(a->mps_default_mem, b->mps_default_mem);
    cr_assert_eq(a->present, b->present);
}

Test(store, creates_directory_with_parents)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/a/b/state", tmp);
    struct gm_store *s = open_ok(dir);
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 0027, 0, "directory mode %o is too open", st.st_mode & 0777);
    char db[PATH_MAX + 48];
    snprintf(db, sizeof(db), "%s/state.db", dir);
    cr_assert_str_eq(gm_store_path(s), db);
    cr_assert_eq(stat(db, &st), 0);
    cr_assert_eq(st.st_mode & 0077, 0, "database mode %o is readable by others", st.st_mode & 0777);
    gm_store_close(s);
}

Test(store, database_settings)
{
    gm_store_close(open_ok(tmp));
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
                                    &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "1");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(store, gpu_round_trip_and_inventory_keeps_mode)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_gpu_rec g1 = gpu(1, "GPU-1111"), g0 = gpu(0, "GPU-0000");
    g1.mode = GM_MODE_VM;
    snprintf(g1.holder, sizeof(g1.holder), "vm1");
    g1.holder_since = 1700000000123LL;
    g1.mps_default_pct = 25;
    g1.mps_default_mem = 1ULL << 33;
    cr_assert_eq(gm_store_gpu_inventory(s, &g1, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_gpu_inventory(s, &g0, &err), 0, "%s", err.msg);

    struct gm_gpu_rec got;
    cr_assert_eq(gm_store_gpu_get(s, "GPU-1111", &got, &err), 0, "%s", err.msg);
    assert_gpu_eq(&got, &g1);

    /* Refresh: the driver's view changes, our settings stay. */
    cr_assert_eq(gm_store_gpu_mark_all_absent(s, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_gpu_get(s, "GPU-1111", &got, &err), 0);
    cr_assert_eq(got.present, 0);
    struct gm_gpu_rec seen = gpu(5, "GPU-1111");
    snprintf(seen.name, sizeof(seen.name), "Renamed");
    seen.memory_total = 42;
    cr_assert_eq(gm_store_gpu_inventory(s, &seen, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_gpu_get(s, "GPU-1111", &got, &err), 0);
    cr_assert_eq(got.idx, 5);
    cr_assert_str_eq(got.name, "Renamed");
    cr_assert_eq(got.memory_total, 42);
    cr_assert_str_eq(got.pci_bus_id, seen.pci_bus_id);
    cr_assert_eq(got.present, 1);
    cr_assert_eq(got.mode, GM_MODE_VM);
    cr_assert_str_eq(got.holder, "vm1");
    cr_assert_eq(got.holder_since, 1700000000123LL);
    cr_assert_eq(got.mps_default_pct, 25);
    cr_assert_eq(got.mps_default_mem, 1ULL << 33);

    /* update changes only the settings. */
    struct gm_gpu_rec upd = got;
    upd.mode = GM_MODE_MPS;
    upd.holder[0] = '\0';
    upd.holder_since = 0;
    upd.mps_default_pct = 50;
    upd.mps_default_mem = 7;
    upd.idx = 77;
    cr_assert_eq(gm_store_gpu_update(s, &upd, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_gpu_get(s, "GPU-1111", &got, &err), 0);
    upd.idx = 5;
    assert_gpu_eq(&got, &upd);

    struct gm_gpu_rec *v = NULL;
    size_t n = 0;
    cr_assert_eq(gm_store_gpu_list(s, &v, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].uuid, "GPU-0000");
    cr_assert_eq(v[0].present, 0);
    cr_assert_str_eq(v[1].uuid, "GPU-1111");
    free(v);

    cr_assert_eq(gm_store_gpu_get(s, "GPU-nope", &got, &err), -GM_ENOTFOUND);
    cr_assert(strstr(err.msg, "GPU-nope") != NULL, "%s", err.msg);
    struct gm_gpu_rec missing = gpu(9, "GPU-nope");
    cr_assert_eq(gm_store_gpu_update(s, &missing, &err), -GM_ENOTFOUND);
    missing.mode = (enum gm_mode)9;
    cr_assert_eq(gm_store_gpu_inventory(s, &missing, &err), -GM_EINVAL);
    gm_store_close(s);
}

Test(store, workload_round_trip)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_workload_rec w = workload("a");
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    cr_assert_neq(w.id, 999999);
    cr_assert_gt(w.id, 0);

    struct gm_workload_rec got;
    cr_assert_eq(gm_store_workload_get(s, "a", &got, &err), 0, "%s", err.msg);
    assert_workload_eq(&got, &w);
    gm_workload_rec_free(&got);

    /* update: every field changes, including back to the zero values. */
    struct gm_workload_rec u = {0};
    u.id = w.id;
    snprintf(u.name, sizeof(u.name), "a");
    snprintf(u.kind, sizeof(u.kind), "container");
    u.state = GM_W_STOPPED;
    u.restart = GM_RESTART_ALWAYS;
    u.ngpus = 1;
    snprintf(u.gpus[0], sizeof(u.gpus[0]), "GPU-cccc");
    snprintf(u.reason, sizeof(u.reason), "stopped by request");
    cr_assert_eq(gm_store_workload_update(s, &u, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_get(s, "a", &got, &err), 0, "%s", err.msg);
    assert_workload_eq(&got, &u);
    gm_workload_rec_free(&got);

    size_t count = 0;
    cr_assert_eq(gm_store_workload_count(s, &count, &err), 0);
    cr_assert_eq(count, 1);
    cr_assert_eq(gm_store_workload_delete(s, "a", &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_count(s, &count, &err), 0);
    cr_assert_eq(count, 0);

    /* A deleted workload's id is not handed out again. */
    struct gm_workload_rec w2 = workload("a");
    cr_assert_eq(gm_store_workload_insert(s, &w2, &err), 0, "%s", err.msg);
    cr_assert_gt(w2.id, w.id);
    gm_workload_rec_free(&w);
    gm_workload_rec_free(&w2);
    gm_store_close(s);
}

Test(store, workload_duplicate_name_conflicts)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_workload_rec w = workload("dup"), w2 = workload("dup");
    w2.pid = 1;
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_insert(s, &w2, &err), -GM_ECONFLICT);
    cr_assert_eq(err.code, GM_ECONFLICT);
    cr_assert_str_eq(err.msg, "workload dup already exists");
    struct gm_workload_rec got;
    cr_assert_eq(gm_store_workload_get(s, "dup", &got, &err), 0);
    cr_assert_eq(got.pid, w.pid, "the first workload was overwritten");
    gm_workload_rec_free(&got);
    gm_workload_rec_free(&w);
    gm_workload_rec_free(&w2);
    gm_store_close(s);
}

Test(store, workload_not_found)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_workload_rec got;
    cr_assert_eq(gm_store_workload_get(s, "ghost", &got, &err), -GM_ENOTFOUND);
    cr_assert_str_eq(err.msg, "no workload named ghost");
    gm_error_clear(&err);
    cr_assert_eq(gm_store_workload_delete(s, "ghost", &err), -GM_ENOTFOUND);
    cr_assert_str_eq(err.msg, "no workload named ghost");
    struct gm_workload_rec w = workload("ghost");
    gm_error_clear(&err);
    cr_assert_eq(gm_store_workload_update(s, &w, &err), -GM_ENOTFOUND);
    cr_assert_str_eq(err.msg, "no workload named ghost");
    gm_workload_rec_free(&w);
    gm_store_close(s);
}

Test(store, invalid_workload_refused)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_workload_rec w = workload("bad");
    w.state = (enum gm_wstate)17;
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), -GM_EINVAL);
    w.state = GM_W_RUNNING;
    w.ngpus = GM_MAX_WORKLOAD_GPUS + 1;
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), -GM_EINVAL);
    w.ngpus = 0;
    w.name[0] = '\0';
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), -GM_EINVAL);
    size_t n = 9;
    cr_assert_eq(gm_store_workload_count(s, &n, &err), 0);
    cr_assert_eq(n, 0);
    gm_workload_rec_free(&w);
    gm_store_close(s);
}

Test(store, deployment_round_trip)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_deployment_rec d = {0};
    snprintf(d.name, sizeof(d.name), "web");
    snprintf(d.format, sizeof(d.format), "kubernetes");
    d.manifest = "apiVersion: v1\nkind: Pod\n";
    d.generation = 3;
    d.created_at = 1700000000001LL;
    d.updated_at = 1700000000002LL;
    cr_assert_eq(gm_store_deployment_insert(s, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_deployment_insert(s, &d, &err), -GM_ECONFLICT);
    cr_assert_str_eq(err.msg, "deployment web already exists");

    struct gm_deployment_rec got;
    cr_assert_eq(gm_store_deployment_get(s, "web", &got, &err), 0, "%s", err.msg);
    cr_assert_str_eq(got.name, "web");
    cr_assert_str_eq(got.format, "kubernetes");
    cr_assert_str_eq(got.manifest, d.manifest);
    cr_assert_eq(got.generation, 3);
    cr_assert_eq(got.created_at, 1700000000001LL);
    cr_assert_eq(got.updated_at, 1700000000002LL);
    gm_store_deployment_rec_free(&got);

    struct gm_deployment_rec u = d;
    snprintf(u.format, sizeof(u.format), "iotedge");
    u.manifest = "{\"modulesContent\": {}}";
    u.generation = 4;
    u.created_at = 5;
    u.updated_at = 1700000000009LL;
    cr_assert_eq(gm_store_deployment_update(s, &u, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_deployment_get(s, "web", &got, &err), 0, "%s", err.msg);
    cr_assert_str_eq(got.format, "iotedge");
    cr_assert_str_eq(got.manifest, u.manifest);
    cr_assert_eq(got.generation, 4);
    cr_assert_eq(got.created_at, 1700000000001LL, "update must keep created_at");
    cr_assert_eq(got.updated_at, 1700000000009LL);
    gm_store_deployment_rec_free(&got);

    struct gm_deployment_rec other = d;
    snprintf(other.name, sizeof(other.name), "alpha");
    snprintf(other.format, sizeof(other.format), "native");
    cr_assert_eq(gm_store_deployment_insert(s, &other, &err), 0, "%s", err.msg);
    snprintf(other.format, sizeof(other.format), "helm");
    snprintf(other.name, sizeof(other.name), "zeta");
    cr_assert_eq(gm_store_deployment_insert(s, &other, &err), -GM_EINVAL);

    struct gm_deployment_rec *v = NULL;
    size_t n = 0;
    cr_assert_eq(gm_store_deployment_list(s, &v, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].name, "alpha");
    cr_assert_str_eq(v[1].name, "web");
    gm_store_deployment_list_free(v, n);

    /* Workloads name their deployment: it cannot go while they exist. */
    struct gm_workload_rec w = workload("web-0");
    snprintf(w.deployment, sizeof(w.deployment), "web");
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    struct gm_workload_rec gw;
    cr_assert_eq(gm_store_workload_get(s, "web-0", &gw, &err), 0);
    cr_assert_str_eq(gw.deployment, "web");
    gm_workload_rec_free(&gw);
    cr_assert_eq(gm_store_deployment_delete(s, "web", &err), -GM_EBUSY);
    cr_assert(strstr(err.msg, "web-0") != NULL, "%s", err.msg);
    cr_assert_eq(gm_store_deployment_get(s, "web", &got, &err), 0);
    gm_store_deployment_rec_free(&got);

    struct gm_workload_rec orphan = workload("orphan");
    snprintf(orphan.deployment, sizeof(orphan.deployment), "nosuch");
    cr_assert_eq(gm_store_workload_insert(s, &orphan, &err), -GM_ENOTFOUND);
    cr_assert(strstr(err.msg, "nosuch") != NULL, "%s", err.msg);

    cr_assert_eq(gm_store_workload_delete(s, "web-0", &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_deployment_delete(s, "web", &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_deployment_get(s, "web", &got, &err), -GM_ENOTFOUND);
    cr_assert_str_eq(err.msg, "no deployment named web");
    cr_assert_eq(gm_store_deployment_delete(s, "web", &err), -GM_ENOTFOUND);
    cr_assert_eq(gm_store_deployment_update(s, &u, &err), -GM_ENOTFOUND);
    gm_workload_rec_free(&w);
    gm_workload_rec_free(&orphan);
    gm_store_close(s);
}

Test(store, deferred_deployment_check_fails_commit_and_rolls_back)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_workload_rec w = workload("w");
    snprintf(w.deployment, sizeof(w.deployment), "later");
    cr_assert_eq(gm_store_begin(s, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_gpu_inventory(s, &(struct gm_gpu_rec){.uuid = "GPU-x"}, &err), 0);
    cr_assert_lt(gm_store_commit(s, &err), 0);
    cr_assert_neq(err.msg[0], '\0');
    size_t n = 9;
    cr_assert_eq(gm_store_workload_count(s, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 0);
    struct gm_gpu_rec g;
    cr_assert_eq(gm_store_gpu_get(s, "GPU-x", &g, &err), -GM_ENOTFOUND);

    /* In the other order inside one transaction, it is fine. */
    struct gm_deployment_rec d = {.name = "later", .format = "native", .manifest = "{}"};
    cr_assert_eq(gm_store_begin(s, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_deployment_insert(s, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_commit(s, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_count(s, &n, &err), 0);
    cr_assert_eq(n, 1);
    gm_workload_rec_free(&w);
    gm_store_close(s);
}

Test(store, persists_across_reopen)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_gpu_rec g = gpu(0, "GPU-p");
    g.mode = GM_MODE_MPS;
    struct gm_workload_rec w = workload("keep");
    struct gm_deployment_rec d = {.name = "dep", .format = "native", .manifest = "x: 1"};
    cr_assert_eq(gm_store_gpu_inventory(s, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_deployment_insert(s, &d, &err), 0, "%s", err.msg);
    gm_store_event(s, GM_LEVEL_INFO, "workload/keep", "started (pid %d)", 4343);
    gm_store_close(s);

    s = open_ok(tmp);
    struct gm_gpu_rec gg;
    cr_assert_eq(gm_store_gpu_get(s, "GPU-p", &gg, &err), 0, "%s", err.msg);
    assert_gpu_eq(&gg, &g);
    struct gm_workload_rec got;
    cr_assert_eq(gm_store_workload_get(s, "keep", &got, &err), 0, "%s", err.msg);
    assert_workload_eq(&got, &w);
    gm_workload_rec_free(&got);
    struct gm_deployment_rec gd;
    cr_assert_eq(gm_store_deployment_get(s, "dep", &gd, &err), 0, "%s", err.msg);
    cr_assert_str_eq(gd.manifest, "x: 1");
    gm_store_deployment_rec_free(&gd);
    struct gm_event *ev = NULL;
    size_t n = 0;
    cr_assert_eq(gm_store_event_list(s, 0, 0, &ev, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ev[0].message, "started (pid 4343)");
    free(ev);
    gm_workload_rec_free(&w);
    gm_store_close(s);
}

Test(store, rollback_leaves_nothing)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_workload_rec before = workload("before"), w = workload("tx"), dup = workload("tx");
    struct gm_gpu_rec g = gpu(0, "GPU-r");
    cr_assert_eq(gm_store_workload_insert(s, &before, &err), 0, "%s", err.msg);

    cr_assert_eq(gm_store_begin(s, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_gpu_inventory(s, &g, &err), 0, "%s", err.msg);
    struct gm_deployment_rec d = {.name = "d", .format = "native", .manifest = ""};
    cr_assert_eq(gm_store_deployment_insert(s, &d, &err), 0, "%s", err.msg);
    gm_store_event(s, GM_LEVEL_INFO, "workload/tx", "created");
    before.pid = 1;
    cr_assert_eq(gm_store_workload_update(s, &before, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_delete(s, "before", &err), 0, "%s", err.msg);
    /* A failed statement inside the transaction does not end it. */
    cr_assert_eq(gm_store_workload_insert(s, &dup, &err), -GM_ECONFLICT);
    size_t n = 0;
    cr_assert_eq(gm_store_workload_count(s, &n, &err), 0);
    cr_assert_eq(n, 1, "the transaction sees its own writes");
    gm_store_rollback(s);

    struct gm_workload_rec got;
    cr_assert_eq(gm_store_workload_get(s, "tx", &got, &err), -GM_ENOTFOUND);
    cr_assert_eq(gm_store_workload_get(s, "before", &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got.pid, 4343);
    gm_workload_rec_free(&got);
    struct gm_gpu_rec gg;
    cr_assert_eq(gm_store_gpu_get(s, "GPU-r", &gg, &err), -GM_ENOTFOUND);
    struct gm_deployment_rec gd;
    cr_assert_eq(gm_store_deployment_get(s, "d", &gd, &err), -GM_ENOTFOUND);
    struct gm_event *ev = NULL;
    cr_assert_eq(gm_store_event_list(s, 0, 0, &ev, &n, &err), 0);
    cr_assert_eq(n, 0);
    free(ev);
    gm_store_close(s);

    /* And after reopening. */
    s = open_ok(tmp);
    cr_assert_eq(gm_store_workload_count(s, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(gm_store_workload_get(s, "tx", &got, &err), -GM_ENOTFOUND);

    /* A transaction left open by a handle that closes is not committed either. */
    cr_assert_eq(gm_store_begin(s, &err), 0);
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    gm_store_close(s);
    s = open_ok(tmp);
    cr_assert_eq(gm_store_workload_get(s, "tx", &got, &err), -GM_ENOTFOUND);
    gm_store_close(s);
    gm_workload_rec_free(&before);
    gm_workload_rec_free(&w);
    gm_workload_rec_free(&dup);
}

Test(store, garbage_file_refused_untouched)
{
    char junk[16384];
    srand(7);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(rand() & 0xff);
    write_file(dbpath, junk, sizeof(junk));
    struct gm_error err;
    open_refused(GM_EIO, &err);
    cr_assert(strstr(err.msg, "corrupt") != NULL, "%s", err.msg);
    size_t len = 0;
    char *after = read_all(dbpath, &len);
    cr_assert_eq(len, sizeof(junk));
    cr_assert_eq(memcmp(after, junk, len), 0, "the corrupt file was modified");
    free(after);
    char wal[PATH_MAX + 32];
    snprintf(wal, sizeof(wal), "%s-wal", dbpath);
    cr_assert_neq(access(wal, F_OK), 0, "a WAL file was created next to a corrupt database");
}

Test(store, truncated_file_refused_untouched)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    cr_assert_eq(gm_store_begin(s, &err), 0);
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%d", i);
        struct gm_workload_rec w = workload(name);
        cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
        gm_workload_rec_free(&w);
    }
    cr_assert_eq(gm_store_commit(s, &err), 0, "%s", err.msg);
    gm_store_close(s);

    struct stat st;
    cr_assert_eq(stat(dbpath, &st), 0);
    cr_assert_gt(st.st_size, 8 * 4096, "test needs a database of several pages");
    cr_assert_eq(truncate(dbpath, st.st_size / 2), 0);
    size_t len0 = 0;
    char *before = read_all(dbpath, &len0);
    open_refused(GM_EIO, &err);
    cr_assert(strstr(err.msg, "corrupt") != NULL, "%s", err.msg);
    size_t len = 0;
    char *after = read_all(dbpath, &len);
    cr_assert_eq(len, len0);
    cr_assert_eq(memcmp(after, before, len), 0, "the corrupt file was modified");
    free(before);
    free(after);

    cr_assert_eq(truncate(dbpath, 0), 0);
    open_refused(GM_EIO, &err);
    cr_assert(strstr(err.msg, "corrupt") != NULL, "%s", err.msg);
    cr_assert_eq(stat(dbpath, &st), 0);
    cr_assert_eq(st.st_size, 0, "an empty database was silently recreated");
}

Test(store, foreign_database_refused_untouched)
{
    raw_exec("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');");
    size_t len0 = 0;
    char *before = read_all(dbpath, &len0);
    struct gm_error err;
    open_refused(GM_EINVAL, &err);
    cr_assert(strstr(err.msg, "not a gpumux state database") != NULL, "%s", err.msg);
    size_t len = 0;
    char *after = read_all(dbpath, &len);
    cr_assert_eq(len, len0);
    cr_assert_eq(memcmp(after, before, len), 0, "the foreign file was modified");
    free(before);
    free(after);

    /* Someone else's table named meta is not ours either. */
    raw_exec("CREATE TABLE meta (key TEXT, value TEXT);"
             "INSERT INTO meta VALUES ('schema_version', '1');");
    open_refused(GM_EINVAL, &err);
    cr_assert(strstr(err.msg, "not a gpumux state database") != NULL, "%s", err.msg);
}

Test(store, newer_schema_refused)
{
    gm_store_close(open_ok(tmp));
    raw_exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
    struct gm_error err;
    open_refused(GM_EINVAL, &err);
    cr_assert(strstr(err.msg, "newer") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "99") != NULL, "%s", err.msg);

    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
                                    &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "99", "the version was changed");
    sqlite3_finalize(st);
    sqlite3_close(db);

    raw_exec("UPDATE meta SET value = 'banana' WHERE key = 'schema_version'");
    open_refused(GM_EIO, &err);
}

Test(store, directory_under_a_file_refused)
{
    char file[PATH_MAX + 16], dir[PATH_MAX + 32];
    snprintf(file, sizeof(file), "%s/file", tmp);
    snprintf(dir, sizeof(dir), "%s/sub", file);
    write_file(file, "x", 1);
    struct gm_store *s = (struct gm_store *)1;
    struct gm_error err = {0};
    int rc = gm_store_open(dir, &s, &err);
    cr_assert_lt(rc, 0);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, dir) != NULL, "message does not name the directory: %s", err.msg);

    /* The directory path is a regular file itself. */
    rc = gm_store_open(file, &s, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, file) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "not a directory") != NULL, "%s", err.msg);
}

Test(store, unwritable_directory_refused)
{
    if (geteuid() == 0) {
        teardown(); /* a skipped test does not run .fini */
        cr_skip_test("permissions do not stop root");
    }
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/ro", tmp);
    cr_assert_eq(mkdir(dir, 0500), 0);
    struct gm_store *s = (struct gm_store *)1;
    struct gm_error err = {0};
    int rc = gm_store_open(dir, &s, &err);
    cr_assert_lt(rc, 0);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, dir) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "not writable") != NULL, "%s", err.msg);
}

Test(store, events_since_and_limit)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    int64_t t0 = gm_now_ms();
    for (int i = 1; i <= 10; i++)
        gm_store_event(s, i % 2 ? GM_LEVEL_INFO : GM_LEVEL_WARNING, "workload/e", "event %d", i);
    int64_t t1 = gm_now_ms();

    struct gm_event *ev = NULL;
    size_t n = 0;
    cr_assert_eq(gm_store_event_list(s, 0, 0, &ev, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "event %zu", i + 1);
        cr_assert_str_eq(ev[i].message, want);
        cr_assert_eq(ev[i].level, (i + 1) % 2 ? GM_LEVEL_INFO : GM_LEVEL_WARNING);
        cr_assert_str_eq(ev[i].object, "workload/e");
        cr_assert(ev[i].time_ms >= t0 && ev[i].time_ms <= t1);
        if (i > 0)
            cr_assert_gt(ev[i].id, ev[i - 1].id);
    }
    int64_t id3 = ev[2].id, last = ev[9].id;
    free(ev);

    cr_assert_eq(gm_store_event_list(s, id3, 4, &ev, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(ev[0].message, "event 4");
    cr_assert_str_eq(ev[3].message, "event 7");
    free(ev);

    cr_assert_eq(gm_store_event_list(s, last, 5, &ev, &n, &err), 0);
    cr_assert_eq(n, 0);
    free(ev);

    /* A long message is cut at the record's size, on a character boundary. */
    char big[2000];
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    memcpy(big + 510, "\xc3\xbc", 2);
    gm_store_event(s, GM_LEVEL_ERROR, "daemon", "%s", big);
    cr_assert_eq(gm_store_event_list(s, last, 0, &ev, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(strlen(ev[0].message), 510);
    free(ev);
    gm_store_close(s);
}

Test(store, events_trimmed_to_newest, .timeout = 120)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    int total = GM_STORE_EVENTS_KEEP + 1000;
    cr_assert_eq(gm_store_begin(s, &err), 0);
    for (int i = 1; i <= total; i++)
        gm_store_event(s, GM_LEVEL_INFO, "daemon", "e%d", i);
    cr_assert_eq(gm_store_commit(s, &err), 0, "%s", err.msg);

    struct gm_event *ev = NULL;
    size_t n = 0;
    cr_assert_eq(gm_store_event_list(s, 0, 1, &ev, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ev[0].message, "e1001", "oldest kept: %s", ev[0].message);
    int64_t first = ev[0].id;
    free(ev);
    cr_assert_eq(gm_store_event_list(s, first + GM_STORE_EVENTS_KEEP - 2, 0, &ev, &n, &err), 0);
    cr_assert_eq(n, 1, "the newest event is missing");
    cr_assert_str_eq(ev[0].message, "e101000");
    free(ev);
    gm_store_close(s);
}

Test(store, thousand_workloads_list_fast)
{
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    cr_assert_eq(gm_store_begin(s, &err), 0);
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%04d", i);
        struct gm_workload_rec w = workload(name);
        w.pid = 10000 + i;
        cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
        gm_workload_rec_free(&w);
    }
    cr_assert_eq(gm_store_commit(s, &err), 0, "%s", err.msg);

    struct timespec a, b;
    struct gm_workload_rec *v = NULL;
    size_t n = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(gm_store_workload_list(s, &v, &n, &err), 0, "%s", err.msg);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    cr_assert_eq(n, 1000);
    for (size_t i = 0; i < n; i++) {
        char name[32], g0[64];
        snprintf(name, sizeof(name), "w%04zu", i);
        snprintf(g0, sizeof(g0), "GPU-aaaa-%s", name);
        cr_assert_str_eq(v[i].name, name);
        cr_assert_eq(v[i].pid, 10000 + (int)i);
        cr_assert_eq(v[i].ngpus, 2);
        cr_assert_str_eq(v[i].gpus[0], g0);
        cr_assert_not_null(v[i].spec_json);
        if (i > 0)
            cr_assert_gt(v[i].id, v[i - 1].id);
    }
    gm_workload_list_free(v, n);
    /* Generous for sanitizer builds; one query takes a few milliseconds. */
    cr_assert_lt(ms, 250.0, "listing 1000 workloads took %.1f ms", ms);
    gm_store_close(s);
}

/* SQLite's unix VFS lets its system calls be replaced, which gives a full disk without needing
 * a small file system to fill. */
static int disk_full;
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);

static ssize_t full_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (disk_full) {
        errno = ENOSPC;
        return -1;
    }
    return real_pwrite(fd, buf, n, off);
}

static ssize_t full_pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    if (disk_full) {
        errno = ENOSPC;
        return -1;
    }
    return real_pwrite64(fd, buf, n, off);
}

static ssize_t full_write(int fd, const void *buf, size_t n)
{
    if (disk_full) {
        errno = ENOSPC;
        return -1;
    }
    return real_write(fd, buf, n);
}

static void hook_writes(void)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    cr_assert_not_null(vfs);
    cr_assert_not_null(vfs->xGetSystemCall, "this SQLite does not allow replacing system calls");
    int hooked = 0;
#define HOOK(name, real, fake)                                                                     \
    do {                                                                                           \
        sqlite3_syscall_ptr p = vfs->xGetSystemCall(vfs, name);                                    \
        if (p != NULL) {                                                                           \
            real = (__typeof__(real))p;                                                            \
            cr_assert_eq(vfs->xSetSystemCall(vfs, name, (sqlite3_syscall_ptr)fake), SQLITE_OK);    \
            hooked++;                                                                              \
        }                                                                                          \
    } while (0)
    HOOK("pwrite", real_pwrite, full_pwrite);
    HOOK("pwrite64", real_pwrite64, full_pwrite64);
    HOOK("write", real_write, full_write);
#undef HOOK
    cr_assert_gt(hooked, 0);
}

Test(store, disk_full_reported)
{
    hook_writes();
    struct gm_store *s = open_ok(tmp);
    struct gm_error err = {0};
    struct gm_workload_rec w = workload("full");
    disk_full = 1;
    int rc = gm_store_workload_insert(s, &w, &err);
    disk_full = 0;
    cr_assert_eq(rc, -GM_EIO, "got %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "disk") != NULL && strstr(err.msg, "is full") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "workload full") != NULL, "%s", err.msg);

    /* Inside a transaction the commit fails and nothing stays behind. */
    cr_assert_eq(gm_store_begin(s, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    disk_full = 1;
    rc = gm_store_commit(s, &err);
    disk_full = 0;
    cr_assert_eq(rc, -GM_EIO, "got %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "is full") != NULL, "%s", err.msg);

    /* A transaction larger than the page cache spills into the WAL before the commit, so the
     * full disk hits a statement in the middle; SQLite may then abandon the transaction, and
     * the statements after it must not be committed one by one. */
    cr_assert_eq(gm_store_begin(s, &err), 0, "%s", err.msg);
    char *big = malloc(20000);
    cr_assert_not_null(big);
    memset(big, 'x', 19999);
    big[19999] = '\0';
    rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        struct gm_workload_rec b = workload("b");
        snprintf(b.name, sizeof(b.name), "big%d", i);
        free(b.spec_json);
        b.spec_json = big;
        disk_full = i >= 10;
        rc = gm_store_workload_insert(s, &b, &err);
    }
    disk_full = 0;
    free(big);
    cr_assert_eq(rc, -GM_EIO, "got %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "is full") != NULL, "%s", err.msg);
    struct gm_workload_rec after = workload("after");
    int rc2 = gm_store_workload_insert(s, &after, &err);
    cr_log_info("after a failure inside a transaction: %d %s", rc2, err.msg);
    gm_store_rollback(s);
    size_t count = 9;
    cr_assert_eq(gm_store_workload_count(s, &count, &err), 0, "%s", err.msg);
    cr_assert_eq(count, 0, "part of an abandoned transaction was committed");
    gm_workload_rec_free(&after);

    /* Nothing half-written, and the handle works again once there is room. */
    struct gm_workload_rec got;
    cr_assert_eq(gm_store_workload_get(s, "full", &got, &err), -GM_ENOTFOUND, "%s", err.msg);
    cr_assert_eq(gm_store_workload_insert(s, &w, &err), 0, "%s", err.msg);
    gm_store_close(s);
    s = open_ok(tmp);
    cr_assert_eq(gm_store_workload_get(s, "full", &got, &err), 0, "%s", err.msg);
    gm_workload_rec_free(&got);
    gm_workload_rec_free(&w);
    gm_store_close(s);
}
