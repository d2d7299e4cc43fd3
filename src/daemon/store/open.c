/* Opening the state database: creating it whole, or checking that an existing file is ours,
 * intact and not from a newer version before anything is written to it. */
#include "common/path.h"
#include "common/safedir.h"
#include "daemon/store/store.h"
#include "common/log.h"
#include "daemon/store/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define STORE_SCHEMA_VERSION 1
/* "gmux": lets file(1) and our own open tell a gpumux database from any other SQLite file. */
#define STORE_APPLICATION_ID  0x676d7578
#define STORE_BUSY_TIMEOUT_MS 5000

static const char *const schema_v1[] = {
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE gpus ("
    " uuid TEXT PRIMARY KEY NOT NULL CHECK (uuid <> ''),"
    " idx INTEGER NOT NULL,"
    " name TEXT NOT NULL,"
    " memory_total INTEGER NOT NULL,"
    " pci_bus_id TEXT NOT NULL,"
    " mode TEXT NOT NULL CHECK (mode IN ('shared', 'mps', 'vm')),"
    " holder TEXT NOT NULL DEFAULT '',"
    " holder_since INTEGER NOT NULL DEFAULT 0,"
    " mps_default_pct INTEGER NOT NULL DEFAULT 0,"
    " mps_default_mem INTEGER NOT NULL DEFAULT 0,"
    " present INTEGER NOT NULL DEFAULT 1)",
    "CREATE TABLE deployments ("
    " name TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),"
    " format TEXT NOT NULL CHECK (format IN ('kubernetes', 'iotedge', 'native')),"
    " manifest TEXT NOT NULL,"
    " generation INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL)",
    /* AUTOINCREMENT: an id is never reused, so a log or event that names an old id cannot be
     * mistaken for a later workload. The deployment reference is deferred so that a transaction
     * may create or remove a deployment and its workloads in any order. */
    "CREATE TABLE workloads ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE CHECK (name <> ''),"
    " deployment TEXT REFERENCES deployments (name) DEFERRABLE INITIALLY DEFERRED,"
    " kind TEXT NOT NULL,"
    " spec_json TEXT,"
    " desired_running INTEGER NOT NULL,"
    " state TEXT NOT NULL"
    "  CHECK (state IN ('starting', 'running', 'stopping', 'exited', 'stopped')),"
    " gpus TEXT NOT NULL DEFAULT '[]',"
    " compute_pct INTEGER NOT NULL DEFAULT 0,"
    " memory_limit INTEGER NOT NULL DEFAULT 0,"
    " restart TEXT NOT NULL CHECK (restart IN ('never', 'on-failure', 'always')),"
    " uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
    " launch_id INTEGER NOT NULL DEFAULT 0,"
    " monitor_pid INTEGER NOT NULL DEFAULT 0, monitor_start INTEGER NOT NULL DEFAULT 0,"
    " pid INTEGER NOT NULL DEFAULT 0, pid_start INTEGER NOT NULL DEFAULT 0,"
    " has_exit INTEGER NOT NULL DEFAULT 0, exit_code INTEGER NOT NULL DEFAULT 0,"
    " exit_signal INTEGER NOT NULL DEFAULT 0,"
    " restart_count INTEGER NOT NULL DEFAULT 0,"
    " reason TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL DEFAULT 0, started_at INTEGER NOT NULL DEFAULT 0,"
    " finished_at INTEGER NOT NULL DEFAULT 0)",
    /* Without it every deployment delete scans all workloads for the foreign key check. */
    "CREATE INDEX workloads_deployment ON workloads (deployment)",
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time_ms INTEGER NOT NULL,"
    " level TEXT NOT NULL,"
    " object TEXT NOT NULL,"
    " message TEXT NOT NULL)",
};

static int mkdir_parents(const char *dir, struct gm_error *err)
{
    if (dir[0] == '\0')
        return gm_err(err, GM_EINVAL, "state directory '': empty");
    /* Root writes the database here: nobody else may be able to put a link or a file of
     * theirs at its names (common/safedir.h). */
    int fd = gm_safedir_open(dir, 0750, 1, err);
    if (fd < 0)
        return gm_err_wrap(err, "state directory %s", dir);
    close(fd);
    /* WAL needs to create state.db-wal and -shm next to the database, so a read-only directory
     * fails later and less clearly than here. */
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0)
        return gm_err_errno(err, GM_EPERM, errno, "state directory %s is not writable", dir);
    return 0;
}

static int exec_sql(sqlite3 *db, const char *sql, const char *path, struct gm_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        gm_err(err, GM_EIO, "%s: %s: %s", path, sql, msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -GM_EIO;
    }
    return 0;
}

static int fsync_path(const char *path, int flags, struct gm_error *err)
{
    int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return gm_err_errno(err, GM_EIO, errno, "opening %s", path);
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc < 0)
        return gm_err_errno(err, GM_EIO, e, "syncing %s", path);
    return 0;
}

static void unlink_leftovers(const char *tmp)
{
    static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};
    char p[4300];
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", tmp, suffixes[i]);
        unlink(p);
    }
}

/* A new database is built under a temporary name and renamed into place, so state.db exists
 * only once it holds the whole schema: an empty or partial state.db is then always damage to
 * report, never a first start to repeat. */
static int create_db(struct gm_store *s, struct gm_error *err)
{
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.new", s->path);
    unlink_leftovers(tmp);
    /* 0600: specs may carry secrets in their environment; SQLite gives -wal and -shm the mode of
     * the database. */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return gm_err_errno(err, GM_EIO, errno, "creating %s", tmp);
    close(fd);

    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc != SQLITE_OK) {
        gm_err(err, GM_EIO, "creating %s: %s", tmp, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto fail;
    }
    char sql[256];
    if (exec_sql(db, "PRAGMA synchronous = FULL", tmp, err) < 0 ||
        exec_sql(db, "BEGIN IMMEDIATE", tmp, err) < 0)
        goto fail;
    snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", STORE_APPLICATION_ID);
    if (exec_sql(db, sql, tmp, err) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof(schema_v1) / sizeof(schema_v1[0]); i++)
        if (exec_sql(db, schema_v1[i], tmp, err) < 0)
            goto fail;
    snprintf(sql, sizeof(sql),
             "INSERT INTO meta (key, value) VALUES ('schema_version', '%d'), "
             "('created_by', 'gpumux %s'), ('created_at', '%lld')",
             STORE_SCHEMA_VERSION, GM_VERSION, (long long)gm_now_ms());
    if (exec_sql(db, sql, tmp, err) < 0 || exec_sql(db, "COMMIT", tmp, err) < 0)
        goto fail;
    /* Persistent in the file header; set here while no other connection can exist. */
    if (exec_sql(db, "PRAGMA journal_mode = WAL", tmp, err) < 0)
        goto fail;
    rc = sqlite3_close(db);
    db = NULL;
    if (rc != SQLITE_OK) {
        gm_err(err, GM_EIO, "closing %s: %s", tmp, sqlite3_errstr(rc));
        goto fail;
    }
    if (fsync_path(tmp, O_RDONLY, err) < 0)
        goto fail;
    if (rename(tmp, s->path) < 0) {
        gm_err_errno(err, GM_EIO, errno, "renaming %s to %s", tmp, s->path);
        goto fail;
    }
    if (fsync_path(s->dir, O_RDONLY | O_DIRECTORY, err) < 0)
        return -err->code;
    gm_info("created state database %s (schema %d)", s->path, STORE_SCHEMA_VERSION);
    return 0;
fail:
    sqlite3_close(db);
    unlink_leftovers(tmp);
    return -err->code;
}

static int refuse_corrupt(struct gm_store *s, struct gm_error *err, const char *why)
{
    return gm_err(err, GM_EIO,
                  "state database %s is corrupt (%s); it was left untouched: restore it from a "
                  "backup, or move it aside to start with an empty state",
                  s->path, why);
}

static int check_integrity(struct gm_store *s, struct gm_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(3)", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        const char *first = (const char *)sqlite3_column_text(st, 0);
        if (first == NULL || strcmp(first, "ok") != 0) {
            char why[512];
            gm_store_copy_text(why, sizeof(why), first != NULL ? first : "quick_check failed");
            ret = refuse_corrupt(s, err, why);
        }
    } else if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
        ret = refuse_corrupt(s, err, sqlite3_errmsg(s->db));
    } else {
        ret = gm_store_fail(s, rc, err, "checking state database %s", s->path);
    }
    sqlite3_finalize(st);
    return ret;
}

/* Reads one integer from a query; -1 with rc when it fails (e.g. "no such table"). */
static int64_t query_int(sqlite3 *db, const char *sql, int *rc_out)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
            v = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
            rc = SQLITE_MISMATCH;
        }
    }
    sqlite3_finalize(st);
    *rc_out = rc;
    return v;
}

static int check_identity(struct gm_store *s, struct gm_error *err)
{
    int rc;
    int64_t app = query_int(s->db, "PRAGMA application_id", &rc);
    if (rc != SQLITE_OK)
        return gm_store_fail(s, rc, err, "reading state database %s", s->path);
    int64_t version = query_int(
        s->db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'", &rc);
    if (app != STORE_APPLICATION_ID || (rc != SQLITE_OK && rc != SQLITE_MISMATCH))
        return gm_err(err, GM_EINVAL,
                      "%s is an SQLite database but not a gpumux state database (%s); refusing "
                      "to use it: move it aside or point the daemon at another state directory",
                      s->path,
                      app != STORE_APPLICATION_ID ? "wrong application id" : "no meta table");
    if (rc == SQLITE_MISMATCH || version < 1)
        return refuse_corrupt(s, err, "its schema_version is missing or invalid");
    if (version > STORE_SCHEMA_VERSION)
        return gm_err(err, GM_EINVAL,
                      "state database %s has schema version %lld, written by a newer gpumux; "
                      "this gpumuxd understands up to version %d: upgrade gpumux, or restore a "
                      "backup made by this version",
                      s->path, (long long)version, STORE_SCHEMA_VERSION);
    /* Version 1 is the first schema: migrations from older versions go here, in one
     * transaction each, when there are any. */
    return 0;
}

static int configure(struct gm_store *s, struct gm_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL &&
              strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return gm_store_fail(s, rc, err, "enabling WAL on %s", s->path);
    if (!wal)
        return gm_err(err, GM_EIO,
                      "%s: the file system does not support SQLite's WAL mode (it needs shared "
                      "memory files next to the database)",
                      s->path);
    /* FULL: in WAL mode only FULL syncs the log on every commit; NORMAL can lose the last
     * acknowledged changes in a power cut. */
    if (exec_sql(s->db, "PRAGMA synchronous = FULL", s->path, err) < 0 ||
        exec_sql(s->db, "PRAGMA foreign_keys = ON", s->path, err) < 0 ||
        exec_sql(s->db, "PRAGMA trusted_schema = OFF", s->path, err) < 0 ||
        /* After a burst of writes the WAL file would otherwise stay at its largest size; a
         * full disk also truncates it at once (gm_store_wal_truncate). */
        exec_sql(s->db, "PRAGMA journal_size_limit = 4194304", s->path, err) < 0)
        return -err->code;
    int64_t fk = query_int(s->db, "PRAGMA foreign_keys", &rc);
    if (rc != SQLITE_OK || fk != 1)
        return gm_err(err, GM_EINTERNAL, "%s: this SQLite cannot enforce foreign keys", s->path);
    return 0;
}

/* ---- space ---- */

static void reserve_path(const struct gm_store *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s/reserve", s->dir);
}

int gm_store_reserve_make(struct gm_store *s)
{
    char path[4300];
    reserve_path(s, path, sizeof(path));
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size >= GM_STORE_RESERVE)
        return 0;
    /* Only where it leaves as much again free: taking the last space would make the full disk
     * it is there for. */
    struct statvfs vfs;
    if (statvfs(s->dir, &vfs) < 0 ||
        (uint64_t)vfs.f_bavail * vfs.f_frsize < 4 * (uint64_t)GM_STORE_RESERVE)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    int rc = posix_fallocate(fd, 0, GM_STORE_RESERVE);
    if (rc == EOPNOTSUPP || rc == EINVAL) {
        /* Without fallocate: written out, which allocates it just as well. */
        static const char zero[65536];
        rc = 0;
        for (off_t off = 0; rc == 0 && off < GM_STORE_RESERVE; off += (off_t)sizeof(zero))
            rc = pwrite(fd, zero, sizeof(zero), off) == (ssize_t)sizeof(zero) ? 0 : errno;
    }
    if (rc == 0)
        rc = fsync(fd) < 0 ? errno : 0;
    close(fd);
    if (rc != 0) {
        unlink(path);
        return -1;
    }
    return 0;
}

void gm_store_reserve_release(struct gm_store *s)
{
    char path[4300];
    reserve_path(s, path, sizeof(path));
    if (unlink(path) == 0)
        gm_warn("the disk holding %s is full: gave up its %d MiB reserve (%s) so that exits and "
                "stops can still be recorded; it is made again when the disk has room",
                s->path, GM_STORE_RESERVE >> 20, path);
}

static int64_t file_kb(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_blocks / 2 : 0;
}

void gm_store_wal_truncate(struct gm_store *s, const char *why)
{
    char wal[4300];
    snprintf(wal, sizeof(wal), "%s-wal", s->path);
    int64_t before = file_kb(wal);
    int logged = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &logged, &copied);
    if (why == NULL)
        return;
    if (rc == SQLITE_OK)
        gm_info("%s: %s: the WAL was checkpointed and truncated (%lld KiB to %lld KiB)", s->path,
                why, (long long)before, (long long)file_kb(wal));
    else
        gm_warn("%s: %s: the WAL could not be truncated yet (%s); tried again with the next "
                "commit",
                s->path, why, sqlite3_errmsg(s->db));
}

int gm_store_open(const char *dir, struct gm_store **out, struct gm_error *err)
{
    *out = NULL;
    struct gm_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return gm_err(err, GM_ENOMEM, "opening state: out of memory");
    int ret;
    if (strlen(dir) >= sizeof(s->dir) - 16) {
        ret = gm_err(err, GM_EINVAL, "state directory path too long: %.64s...", dir);
        goto fail;
    }
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    snprintf(s->path, sizeof(s->path), "%s/state.db", dir);
    if ((ret = mkdir_parents(dir, err)) < 0)
        goto fail;

    struct stat st;
    if (lstat(s->path, &st) < 0) {
        if (errno != ENOENT) {
            ret = gm_err_errno(err, GM_EIO, errno, "state database %s", s->path);
            goto fail;
        }
        if ((ret = create_db(s, err)) < 0)
            goto fail;
    } else if (!S_ISREG(st.st_mode)) {
        ret = gm_err(err, GM_EIO, "state database %s is not a regular file", s->path);
        goto fail;
    } else if (st.st_size == 0) {
        /* SQLite would take an empty file for a new database; ours are never empty. */
        ret = refuse_corrupt(s, err, "the file is empty: it was truncated");
        goto fail;
    }

    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc != SQLITE_OK) {
        ret = gm_store_fail(s, rc, err, "opening state database");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    /* Nothing is written until the file is known to be ours, whole and not from the future. */
    if ((ret = check_integrity(s, err)) < 0 || (ret = check_identity(s, err)) < 0 ||
        (ret = configure(s, err)) < 0)
        goto fail;
    gm_store_events_trim(s);
    gm_store_reserve_make(s);
    *out = s;
    return 0;
fail:
    gm_store_close(s);
    return ret;
}

void gm_store_close(struct gm_store *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < GM_SQL__COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    if (s->db != NULL) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        int rc = sqlite3_close(s->db);
        if (rc != SQLITE_OK)
            gm_warn("closing %s: %s", s->path, sqlite3_errstr(rc));
    }
    free(s);
}

const char *gm_store_path(const struct gm_store *s)
{
    return s->path;
}
