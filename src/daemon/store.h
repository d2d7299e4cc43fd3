/* The state database: one SQLite file (STATE_DIR/state.db) in WAL mode.
 *
 * Every change is written in a transaction before it is acted on. All functions return 0 or a
 * negative GM_E* code and fill err. The store is not thread-safe: the daemon serialises access
 * with its own lock. */
#ifndef GM_DAEMON_STORE_H
#define GM_DAEMON_STORE_H

#include "common/error.h"
#include "daemon/model.h"

#include <stddef.h>

struct gm_store;

/* Opens (creating when absent) DIR/state.db. Creates DIR (0750) if needed. Refuses a file that
 * is not a gpumux database, is corrupt (quick_check), or has a newer schema, with a message that
 * names the file. */
int gm_store_open(const char *dir, struct gm_store **out, struct gm_error *err);
void gm_store_close(struct gm_store *s);

int gm_store_begin(struct gm_store *s, struct gm_error *err); /* BEGIN IMMEDIATE */
int gm_store_commit(struct gm_store *s, struct gm_error *err);
void gm_store_rollback(struct gm_store *s);

/* GPUs, keyed by UUID. inventory: insert a GPU first seen, or refresh idx/name/memory/pci and
 * set present=1 on a known one, keeping its mode, holder and MPS defaults. */
int gm_store_gpu_inventory(struct gm_store *s, const struct gm_gpu_rec *g, struct gm_error *err);
int gm_store_gpu_mark_all_absent(struct gm_store *s, struct gm_error *err);
int gm_store_gpu_list(struct gm_store *s, struct gm_gpu_rec **out, size_t *n,
                      struct gm_error *err); /* ordered by idx; caller frees *out */
int gm_store_gpu_get(struct gm_store *s, const char *uuid, struct gm_gpu_rec *out,
                     struct gm_error *err); /* -GM_ENOTFOUND */
int gm_store_gpu_update(struct gm_store *s, const struct gm_gpu_rec *g,
                        struct gm_error *err); /* mode, holder, holder_since, MPS defaults */

/* Workloads, keyed by name. insert sets w->id; -GM_ECONFLICT when the name exists. */
int gm_store_workload_insert(struct gm_store *s, struct gm_workload_rec *w, struct gm_error *err);
int gm_store_workload_update(struct gm_store *s, const struct gm_workload_rec *w,
                             struct gm_error *err);
int gm_store_workload_get(struct gm_store *s, const char *name, struct gm_workload_rec *out,
                          struct gm_error *err); /* -GM_ENOTFOUND; free with gm_workload_rec_free */
int gm_store_workload_list(struct gm_store *s, struct gm_workload_rec **out, size_t *n,
                           struct gm_error *err); /* ordered by id; gm_workload_list_free */
int gm_store_workload_delete(struct gm_store *s, const char *name, struct gm_error *err);

/* Events. add never fails the caller's operation: errors are logged. */
void gm_store_event(struct gm_store *s, const char *level, const char *object, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
int gm_store_event_list(struct gm_store *s, int64_t since_id, int limit, struct gm_event **out,
                        size_t *n, struct gm_error *err); /* oldest first, id > since_id */

#endif
