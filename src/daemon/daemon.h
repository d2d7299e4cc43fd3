/* The daemon's context, passed explicitly to the parts that need it. */
#ifndef GM_DAEMON_DAEMON_H
#define GM_DAEMON_DAEMON_H

#include "common/error.h"
#include "daemon/config.h"
#include "daemon/fields.h"
#include "daemon/gpu.h"
#include "daemon/model.h"
#include "daemon/store.h"

#include <pthread.h>
#include <stdatomic.h>

/* Timers kept in memory only: a daemon restart re-derives them from the records. */
struct gm_backoff {
    char name[64];
    int64_t restart_at_ms; /* when an exited workload may be started again */
    int64_t kill_at_ms;    /* when a stopping workload gets SIGKILL */
};

struct gm_daemon {
    struct gm_config cfg;
    struct gm_store *store;
    struct gm_driver_info driver;
    char monitor_path[PATH_MAX];
    char hostname[256];
    /* One lock serialises the store and every decision taken on it: admission must see the
     * state it commits to. */
    pthread_mutex_t lock;
    atomic_int stopping;
    struct gm_backoff *backoff; /* restart back-off per workload, in memory only */
    size_t nbackoff;
    int mps_pid[64];           /* last known MPS control daemon per GPU index, 0 = none */
    int mps_set_exclusive[64]; /* 1 when gpumux changed the compute mode for MPS */
    int64_t mps_retry_at[64];  /* after a failed restart, when to try again (unix ms) */
};

/* Workload operations (workload.c). All take d->lock themselves. */
/* A workload to create, as the API parsed it: values are typed, checked at the edge. */
struct gm_run_request {
    const char *name;
    char **argv;           /* NULL-terminated */
    struct gm_strmap env;  /* the user's environment */
    const char *gpu;       /* NULL: place by policy */
    int compute_pct;       /* 1..100, 0: no cap */
    uint64_t memory_limit; /* bytes, 0: no limit */
    enum gm_restart restart;
    enum gm_enforce enforce;
    int uid, gid;
};
int gm_workload_create(struct gm_daemon *d, const struct gm_run_request *r,
                       struct gm_workload_rec *out, struct gm_error *err);
/* Changes a workload's limits: compute_pct -1 keeps it, 0 removes it; memory UINT64_MAX keeps
 * it, 0 removes it. Live through the region where the workload runs with the interposer; msgs
 * says what applies when. */
int gm_workload_set_limits(struct gm_daemon *d, const char *name, int compute_pct, uint64_t memory,
                           struct gm_workload_rec *out, char *msgs, size_t len,
                           struct gm_error *err);
int gm_workload_start(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                      struct gm_error *err);
int gm_workload_stop(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                     struct gm_error *err);
int gm_workload_delete(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                       struct gm_error *err);
/* Path of the launch directory of a workload's launch. */
void gm_workload_launch_dir(const struct gm_daemon *d, const char *name, int64_t launch_id,
                            char *buf, size_t len);
void gm_workload_log_path(const struct gm_daemon *d, const char *name, char *buf, size_t len);

/* Starts launch number w->launch_id of a recorded workload (the record is committed first).
 * Caller holds d->lock. Fills monitor pid and, when it appears quickly, the workload's pid. */
int gm_workload_launch(struct gm_daemon *d, struct gm_workload_rec *w, struct gm_error *err);
struct gm_backoff *gm_backoff_get(struct gm_daemon *d, const char *name);
void gm_backoff_forget(struct gm_daemon *d, const char *name);

/* Reconciliation (reconcile.c): compare the database with what runs; called at start and on
 * every poll. Takes d->lock. */
void gm_reconcile(struct gm_daemon *d, int at_start);

/* GPU inventory (inventory.c): record the GPUs the driver reports. */
int gm_inventory_sync(struct gm_daemon *d, struct gm_error *err);
enum gm_on_busy {
    GM_ON_BUSY_REFUSE,  /* refuse, naming the workloads */
    GM_ON_BUSY_STOP,    /* stop them first */
    GM_ON_BUSY_RESTART, /* stop them, change, start them again under the new mode */
};
/* msgs (may be NULL) receives what was done, one line each, as the appliance prints it. */
int gm_gpu_set_mode(struct gm_daemon *d, const char *id, enum gm_mode mode, enum gm_on_busy on_busy,
                    struct gm_gpu_rec *out, char *msgs, size_t len, struct gm_error *err);
/* pct 0 / mem 0 keep the current value. Applied when MPS (re)starts on the GPU. */
int gm_gpu_set_mps_defaults(struct gm_daemon *d, const char *id, int pct, uint64_t mem,
                            struct gm_error *err);
int gm_vm_attach(struct gm_daemon *d, const char *vm, const char *gpu, struct gm_gpu_rec *out,
                 struct gm_error *err);
int gm_vm_detach(struct gm_daemon *d, const char *vm, struct gm_gpu_rec *out, struct gm_error *err);

/* HTTP API (http.c). */
struct gm_http;
int gm_http_start(struct gm_daemon *d, struct gm_http **out, struct gm_error *err);
void gm_http_stop(struct gm_http *h);

#endif
