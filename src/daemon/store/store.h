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

/* How many events are kept; older ones are trimmed every so often. */
#define GM_STORE_EVENTS_KEEP 100000

/* A deployment as applied: the manifest is kept exactly as given so that it can be shown and
 * re-applied; its workloads name it in gm_workload_rec.deployment. */
struct gm_deployment_rec {
    char name[64];
    char format[16]; /* "kubernetes", "iotedge" or "native" */
    char *manifest;  /* owned */
    int64_t generation;
    int64_t created_at, updated_at; /* unix ms */
};

/* Opens (creating when absent) DIR/state.db. Creates DIR (0750) if needed. Refuses a file that
 * is not a gpumux database, is corrupt (quick_check), or has a newer schema, with a message that
 * names the file, and leaves such a file untouched: -GM_EIO for a corrupt file or an unusable
 * directory, -GM_EPERM for a directory we may not write, -GM_EINVAL for a foreign or newer
 * database. The caller owns *out and closes it with gm_store_close. */
int gm_store_open(const char *dir, struct gm_store **out, struct gm_error *err);
void gm_store_close(struct gm_store *s);
const char *gm_store_path(const struct gm_store *s); /* DIR/state.db, for messages */

/* Every other function also works on its own (autocommit). A failed commit rolls back; after
 * SQLite abandons a transaction on an error (a full disk), later calls fail until rollback. A
 * full disk is -GM_EIO with a message saying so. */
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

/* Workloads, keyed by name. insert sets w->id (never reused); -GM_ECONFLICT when the name
 * exists. update rewrites every field but id of the workload named w->name. */
int gm_store_workload_insert(struct gm_store *s, struct gm_workload_rec *w, struct gm_error *err);
int gm_store_workload_update(struct gm_store *s, const struct gm_workload_rec *w,
                             struct gm_error *err);
int gm_store_workload_get(struct gm_store *s, const char *name, struct gm_workload_rec *out,
                          struct gm_error *err); /* -GM_ENOTFOUND; free with gm_workload_rec_free */
int gm_store_workload_list(struct gm_store *s, struct gm_workload_rec **out, size_t *n,
                           struct gm_error *err); /* ordered by id; gm_workload_list_free */
int gm_store_workload_delete(struct gm_store *s, const char *name, struct gm_error *err);
int gm_store_workload_count(struct gm_store *s, size_t *n, struct gm_error *err);

/* Deployments, keyed by name. insert: -GM_ECONFLICT when the name exists, -GM_EINVAL for an
 * unknown format. update rewrites format, manifest, generation and updated_at. delete refuses
 * with -GM_EBUSY while workloads still name the deployment (delete them first; inside one
 * transaction is fine). A workload may only name an existing deployment; inside a transaction
 * this is checked at commit, which then fails and rolls back. */
int gm_store_deployment_insert(struct gm_store *s, const struct gm_deployment_rec *d,
                               struct gm_error *err);
int gm_store_deployment_update(struct gm_store *s, const struct gm_deployment_rec *d,
                               struct gm_error *err); /* -GM_ENOTFOUND */
int gm_store_deployment_get(struct gm_store *s, const char *name, struct gm_deployment_rec *out,
                            struct gm_error *err); /* -GM_ENOTFOUND */
int gm_store_deployment_list(struct gm_store *s, struct gm_deployment_rec **out, size_t *n,
                             struct gm_error *err); /* ordered by name */
int gm_store_deployment_delete(struct gm_store *s, const char *name, struct gm_error *err);
void gm_store_deployment_rec_free(struct gm_deployment_rec *d); /* owned members only */
void gm_store_deployment_list_free(struct gm_deployment_rec *v, size_t n);

/* A record saved (inserted or updated) together with its event in one transaction; nothing
 * is kept when the record cannot be. event NULL or "": no event. */
int gm_store_workload_save(struct gm_store *s, struct gm_workload_rec *w, int insert,
                           enum gm_level level, const char *event, struct gm_error *err);
int gm_store_gpu_save(struct gm_store *s, const struct gm_gpu_rec *g, const char *object,
                      enum gm_level level, const char *event, struct gm_error *err);

/* Events. add never fails the caller's operation: errors are logged. list: at most limit
 * events, all when limit <= 0; the caller frees *out. */
void gm_store_event(struct gm_store *s, enum gm_level level, const char *object, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
int gm_store_event_list(struct gm_store *s, int64_t since_id, int limit, struct gm_event **out,
                        size_t *n, struct gm_error *err); /* oldest first, id > since_id */

#endif
