/* Transactions, the statement cache and error mapping. Opening the database is in
 * store/open.c; the record functions are in store/gpu.c, store/workload.c, store/deployment.c
 * and store/event.c. */
#include "daemon/store/store.h"
#include "common/log.h"
#include "daemon/store/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const store_sql[GM_SQL__COUNT] = {
#define GM_X(n, sql) sql,
    GM_STORE_SQL(GM_X)
#undef GM_X
};

/* ---- errors ---- */

int gm_store_fail(struct gm_store *s, int rc, struct gm_error *err, const char *fmt, ...)
{
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof(ctx), fmt, ap);
    va_end(ap);
    const char *file = s != NULL ? s->path : "state database";
    const char *detail = s != NULL && s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    int sys = s != NULL && s->db != NULL ? sqlite3_system_errno(s->db) : 0;
    const char *sysmsg = sys != 0 ? strerror(sys) : "";
    const char *sep = sys != 0 ? ": " : "";

    switch (rc & 0xff) {
    case SQLITE_FULL:
        return gm_err(err, GM_EIO, "%s: the disk holding %s is full (%s%s%s)", ctx, file, detail,
                      sep, sysmsg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return gm_err(err, GM_EIO, "%s: %s is corrupt (%s)", ctx, file, detail);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return gm_err(err, GM_EBUSY, "%s: %s is locked by another process (%s)", ctx, file, detail);
    case SQLITE_NOMEM:
        return gm_err(err, GM_ENOMEM, "%s: out of memory", ctx);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
        return gm_err(err, GM_EIO, "%s: cannot read or write %s (%s%s%s)", ctx, file, detail, sep,
                      sysmsg);
    case SQLITE_CONSTRAINT:
        return gm_err(err, GM_ECONFLICT, "%s: %s", ctx, detail);
    default:
        return gm_err(err, GM_EINTERNAL, "%s: %s (%s)", ctx, detail, file);
    }
}

/* ---- statements and columns ---- */

/* A commit failed for want of space (or I/O): give the reserve up and the WAL's space back,
 * so that the next try (the reconciler's, on its next poll) finds room. */
static void store_failed(struct gm_store *s, int kind)
{
    int first = !s->failing;
    s->failing = 1;
    if (kind == SQLITE_FULL) {
        gm_store_reserve_release(s);
        gm_store_wal_truncate(s, first ? "the disk is full" : NULL);
    }
}

static int txn_lost(struct gm_store *s, struct gm_error *err)
{
    s->in_txn = 0;
    store_failed(s, SQLITE_FULL);
    return gm_err(err, GM_EIO,
                  "%s: the transaction was rolled back after an earlier error; nothing of it "
                  "was written",
                  s->path);
}

sqlite3_stmt *gm_store_stmt(struct gm_store *s, enum gm_store_stmt which, struct gm_error *err)
{
    /* SQLite ends a transaction by itself on some errors (a full disk, I/O). Running the
     * caller's next statements on their own would commit half of what it meant as one. */
    if (s->in_txn && which != GM_SQL_ROLLBACK && sqlite3_get_autocommit(s->db)) {
        txn_lost(s, err);
        return NULL;
    }
    sqlite3_stmt *st = s->stmt[which];
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
    }
    int rc = sqlite3_prepare_v3(s->db, store_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                &s->stmt[which], NULL);
    if (rc != SQLITE_OK) {
        gm_store_fail(s, rc, err, "preparing a statement");
        return NULL;
    }
    return s->stmt[which];
}

int gm_store_exec_stmt(struct gm_store *s, sqlite3_stmt *st, int *changes, struct gm_error *err,
                       const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        int ret = gm_store_fail(s, rc, err, "%s", what);
        sqlite3_reset(st);
        return ret;
    }
    if (changes != NULL)
        *changes = sqlite3_changes(s->db);
    sqlite3_reset(st);
    return 0;
}

void gm_store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v != NULL ? v : "", -1, SQLITE_STATIC);
}

void gm_store_bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
    sqlite3_bind_int64(st, i, v);
}

void gm_store_copy_text(char *dst, size_t size, const char *src)
{
    if (size == 0)
        return;
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= size) {
        /* Never leave half a UTF-8 sequence: the API encodes these strings as JSON. */
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void gm_store_col_text(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    gm_store_copy_text(dst, size, (const char *)sqlite3_column_text(st, i));
}

int gm_store_col_strdup(sqlite3_stmt *st, int i, char **out)
{
    *out = NULL;
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return 0;
    const char *v = (const char *)sqlite3_column_text(st, i);
    if (v == NULL || (*out = strdup(v)) == NULL)
        return -GM_ENOMEM;
    return 0;
}

/* ---- transactions ---- */

static int run_simple(struct gm_store *s, enum gm_store_stmt which, struct gm_error *err,
                      const char *what)
{
    sqlite3_stmt *st = gm_store_stmt(s, which, err);
    if (st == NULL)
        return -err->code;
    return gm_store_exec_stmt(s, st, NULL, err, what);
}

int gm_store_begin(struct gm_store *s, struct gm_error *err)
{
    if (s->in_txn)
        return gm_err(err, GM_EINTERNAL, "%s: a transaction is already open", s->path);
    int rc = run_simple(s, GM_SQL_BEGIN, err, "starting a transaction");
    if (rc == 0)
        s->in_txn = 1;
    return rc;
}

int gm_store_commit(struct gm_store *s, struct gm_error *err)
{
    if (sqlite3_get_autocommit(s->db))
        return txn_lost(s, err);
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_COMMIT, err);
    if (st == NULL)
        return -err->code;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        s->in_txn = 0;
        if (s->failing && gm_store_reserve_make(s) == 0) {
            /* Room for the reserve and as much again: the disk is not full any more. */
            s->failing = 0;
            gm_store_wal_truncate(s, "the disk has room again");
        }
        return 0;
    }
    int kind = rc & 0xff;
    /* The message is taken before the rollback replaces SQLite's error. */
    int ret;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        ret = gm_err(err, GM_ECONFLICT,
                     "%s: commit refused: a workload names a deployment that does not exist; the "
                     "transaction was rolled back",
                     s->path);
    else
        ret = gm_store_fail(s, rc, err, "committing (the transaction was rolled back)");
    sqlite3_reset(st);
    /* A failed COMMIT leaves the transaction open; the caller is told nothing was written, so
     * make that true. */
    gm_store_rollback(s);
    if (kind == SQLITE_FULL || kind == SQLITE_IOERR)
        store_failed(s, kind);
    return ret;
}

void gm_store_rollback(struct gm_store *s)
{
    if (s == NULL)
        return;
    s->in_txn = 0;
    if (sqlite3_get_autocommit(s->db))
        return;
    struct gm_error err = {0};
    if (run_simple(s, GM_SQL_ROLLBACK, &err, "rolling back") < 0)
        gm_warn("%s", err.msg);
}

int gm_store_grow(void **v, size_t *cap, size_t len, size_t elem, size_t first, const char *what,
                  struct gm_error *err)
{
    if (len < *cap)
        return 0;
    size_t ncap = *cap != 0 ? *cap * 2 : first;
    void *nv = realloc(*v, ncap * elem);
    if (nv == NULL)
        return gm_err(err, GM_ENOMEM, "listing %s: out of memory", what);
    *v = nv;
    *cap = ncap;
    return 0;
}
