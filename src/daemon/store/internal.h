/* Shared by the store_*.c files only: the handle, the statement cache and error mapping. */
#ifndef GM_DAEMON_STORE_INTERNAL_H
#define GM_DAEMON_STORE_INTERNAL_H

#include "daemon/store/store.h"

#include <sqlite3.h>
#include <stdarg.h>

/* Every statement the store runs, prepared once per handle on first use. Keeping them in one
 * list keeps the column orders that the readers depend on next to each other. */
#define GM_WORKLOAD_COLS                                                                           \
    "id, name, deployment, kind, spec_json, desired_running, state, gpus, compute_pct, "           \
    "memory_limit, restart, uid, gid, launch_id, monitor_pid, monitor_start, pid, pid_start, "     \
    "has_exit, exit_code, exit_signal, restart_count, reason, created_at, started_at, "            \
    "finished_at"
#define GM_GPU_COLS                                                                                \
    "uuid, idx, name, memory_total, pci_bus_id, mode, holder, holder_since, mps_default_pct, "     \
    "mps_default_mem, present"
#define GM_DEPLOYMENT_COLS "name, format, manifest, generation, created_at, updated_at"

#define GM_STORE_SQL(X)                                                                            \
    X(BEGIN, "BEGIN IMMEDIATE")                                                                    \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(GPU_INVENTORY, "INSERT INTO gpus (" GM_GPU_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,1) "          \
                     "ON CONFLICT(uuid) DO UPDATE SET idx = excluded.idx, name = excluded.name, "  \
                     "memory_total = excluded.memory_total, pci_bus_id = excluded.pci_bus_id, "    \
                     "present = 1")                                                                \
    X(GPU_ABSENT, "UPDATE gpus SET present = 0 WHERE present <> 0")                                \
    X(GPU_LIST, "SELECT " GM_GPU_COLS " FROM gpus ORDER BY idx, uuid")                             \
    X(GPU_GET, "SELECT " GM_GPU_COLS " FROM gpus WHERE uuid = ?")                                  \
    X(GPU_UPDATE, "UPDATE gpus SET mode = ?, holder = ?, holder_since = ?, mps_default_pct = ?, "  \
                  "mps_default_mem = ? WHERE uuid = ?")                                            \
    X(WL_INSERT, "INSERT INTO workloads (" GM_WORKLOAD_COLS ") VALUES (NULL,?,?,?,?,?,?,?,?,?,?,"  \
                 "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")                                                 \
    X(WL_UPDATE, "UPDATE workloads SET name = ?1, deployment = ?2, kind = ?3, spec_json = ?4, "    \
                 "desired_running = ?5, state = ?6, gpus = ?7, compute_pct = ?8, "                 \
                 "memory_limit = ?9, restart = ?10, uid = ?11, gid = ?12, launch_id = ?13, "       \
                 "monitor_pid = ?14, monitor_start = ?15, pid = ?16, pid_start = ?17, "            \
                 "has_exit = ?18, exit_code = ?19, exit_signal = ?20, restart_count = ?21, "       \
                 "reason = ?22, created_at = ?23, started_at = ?24, finished_at = ?25 "            \
                 "WHERE name = ?1")                                                                \
    X(WL_GET, "SELECT " GM_WORKLOAD_COLS " FROM workloads WHERE name = ?")                         \
    X(WL_LIST, "SELECT " GM_WORKLOAD_COLS " FROM workloads ORDER BY id")                           \
    X(WL_DELETE, "DELETE FROM workloads WHERE name = ?")                                           \
    X(WL_COUNT, "SELECT count(*) FROM workloads")                                                  \
    X(WL_OF_DEPLOYMENT, "SELECT name FROM workloads WHERE deployment = ? ORDER BY id LIMIT 4")     \
    X(DEP_INSERT, "INSERT INTO deployments (" GM_DEPLOYMENT_COLS ") VALUES (?,?,?,?,?,?)")         \
    X(DEP_UPDATE, "UPDATE deployments SET format = ?2, manifest = ?3, generation = ?4, "           \
                  "updated_at = ?6 WHERE name = ?1")                                               \
    X(DEP_GET, "SELECT " GM_DEPLOYMENT_COLS " FROM deployments WHERE name = ?")                    \
    X(DEP_LIST, "SELECT " GM_DEPLOYMENT_COLS " FROM deployments ORDER BY name")                    \
    X(DEP_DELETE, "DELETE FROM deployments WHERE name = ?")                                        \
    X(EV_INSERT, "INSERT INTO events (time_ms, level, object, message) VALUES (?,?,?,?)")          \
    X(EV_LIST, "SELECT id, time_ms, level, object, message FROM events WHERE id > ? "              \
               "ORDER BY id LIMIT ?")                                                              \
    X(EV_TRIM, "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?")

enum gm_store_stmt {
#define GM_X(n, sql) GM_SQL_##n,
    GM_STORE_SQL(GM_X)
#undef GM_X
        GM_SQL__COUNT
};

struct gm_store {
    sqlite3 *db;
    char dir[4096];
    char path[4200];
    sqlite3_stmt *stmt[GM_SQL__COUNT];
    unsigned events_since_trim;
    int in_txn;  /* inside gm_store_begin .. commit/rollback */
    int failing; /* the last commit failed for want of space or I/O: the WAL is truncated at the
                    next one that succeeds */
};

/* A file of GM_STORE_RESERVE bytes in the state directory, made while the disk has room and
 * given up when a commit finds the disk full, so that the commits after it (exits, stops) still
 * find space. */
#define GM_STORE_RESERVE (1 << 20)
/* Returns 0 when the reserve is in place (made now or before), -1 when there is no room. */
int gm_store_reserve_make(struct gm_store *s);
void gm_store_reserve_release(struct gm_store *s);
/* After a commit failed for want of space: copies the WAL into the database and truncates it,
 * so that the space it held is given back. */
void gm_store_wal_truncate(struct gm_store *s, const char *why);

/* The cached statement, reset and with its bindings cleared; NULL after filling err. */
sqlite3_stmt *gm_store_stmt(struct gm_store *s, enum gm_store_stmt which, struct gm_error *err);
/* Maps a failed SQLite call (rc) to a GM_E* code and a message "<context>: <reason>", where the
 * reason says in words what went wrong (the disk is full, the file is corrupt, ...). */
int gm_store_fail(struct gm_store *s, int rc, struct gm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Runs a statement that returns no rows; *changes gets the number of rows it touched. */
int gm_store_exec_stmt(struct gm_store *s, sqlite3_stmt *st, int *changes, struct gm_error *err,
                       const char *what);

void gm_store_bind_text(sqlite3_stmt *st, int i, const char *v); /* "" stays "" */
void gm_store_bind_i64(sqlite3_stmt *st, int i, int64_t v);
/* Copies a text column into a fixed buffer, cutting at a UTF-8 character boundary. */
void gm_store_col_text(sqlite3_stmt *st, int i, char *dst, size_t size);
/* Makes room for one more element of size elem in *v (len used of *cap), doubling from first.
 * Returns 0, or -GM_ENOMEM with "listing WHAT: out of memory" in err; *v stays valid. */
int gm_store_grow(void **v, size_t *cap, size_t len, size_t elem, size_t first, const char *what,
                  struct gm_error *err);
/* A text column as an owned string; NULL stays NULL. -GM_ENOMEM on allocation failure. */
int gm_store_col_strdup(sqlite3_stmt *st, int i, char **out);
void gm_store_copy_text(char *dst, size_t size, const char *src);

void gm_store_events_trim(struct gm_store *s);

#endif
