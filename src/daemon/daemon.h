/* The daemon's context, passed explicitly to the parts that need it. */
#ifndef GM_DAEMON_DAEMON_H
#define GM_DAEMON_DAEMON_H

#include "common/error.h"
#include "common/strv.h"
#include "daemon/config.h"
#include "daemon/fields.h"
#include "daemon/gpu.h"
#include "daemon/model.h"
#include "daemon/plan.h"
#include "daemon/vfio.h"
#include "daemon/store/store.h"

#include <pthread.h>
#include <stdatomic.h>

/* What the daemon knows of a workload in memory only: a restart re-derives it from the
 * records. */
struct gm_wmem {
    char name[64];
    struct gm_timers timers;
    int launching; /* a launch of it is being made outside the lock; reconcile leaves it alone */
    /* A stop or delete that was acted on while the store could not record it (a full disk): the
     * reconciler applies it to the record on every poll until a commit takes it. */
    int stop_pending, delete_pending;
    char stop_why[64];
    char pending_err[256]; /* why it is not recorded yet, for the answer */
};

struct gm_mps; /* mps.c */

struct gm_daemon {
    struct gm_config cfg;
    struct gm_store *store;
    struct gm_driver_info driver;
    char monitor_path[PATH_MAX];
    /* The parent of the per-launch cgroups (cfg.cgroup_root resolved), "" when launches are
     * tracked by their locks only. */
    char cgroup_root[PATH_MAX];
    int cgroup_kind; /* enum gm_cg_kind */
    char hostname[256];
    /* One lock serialises the store and every decision taken on it: admission must see the
     * state it commits to. */
    pthread_mutex_t lock;
    atomic_int stopping;
    struct gm_wmem *wmem; /* per workload, in memory only */
    size_t nwmem;
    struct gm_strv changing; /* UUIDs of GPUs whose mode is changing: placement avoids them */
    /* GPUs (a bit per index) whose functions are on vfio-pci for a VM: NVML is not asked about
     * them (vfio.h). Read without the lock by the memory check: atomic. */
    uint64_t vfio_bound;
    struct gm_mps *mps;           /* the MPS manager's own state (mps.c), keyed by GPU UUID */
    struct gm_memcheck *memcheck; /* what the driver says limited workloads hold (memcheck.c) */
    int lock_fd;                  /* the state directory's single-instance lock */
    /* The state and run directories, checked as trusted (common/safedir.h) when opened: files
     * in them are opened relative to these, without following links. */
    int state_fd, run_fd;
    /* Serialises the daemon's writes to regions' limits files (their seqlock takes one writer);
     * never held with d->lock. */
    pthread_mutex_t region_lock;
    int gpu_open;
};

/* Opens what a daemon needs on d->cfg (finished): its directories, the single-instance lock of
 * the state directory, the store, the driver and the GPU inventory; the monitor is looked for
 * in exe_dir, then in exe_dir/../libexec/gpumux (where `make install` puts it).
 * gm_daemon_close undoes what was opened, also after a failed open. (daemon.c) */
int gm_daemon_open(struct gm_daemon *d, const char *exe_dir, struct gm_error *err);
void gm_daemon_close(struct gm_daemon *d);

/* Workload operations (workload.c). Each takes d->lock itself, only around its decisions and
 * records: launches, signals and waits happen outside it. */
/* A workload to create, as the API parsed it: values are typed, checked at the edge. */
struct gm_run_request {
    const char *name;
    char **argv;           /* NULL-terminated */
    struct gm_strmap env;  /* the user's environment */
    const char *gpu;       /* NULL: place by policy */
    int compute_pct;       /* 1..100, 0: no cap */
    uint64_t memory_limit; /* bytes, 0: no limit */
    enum gm_restart restart;
    int restart_max;         /* on-failure: at most this many restarts; 0: no bound */
    int auto_remove;         /* --rm: deleted once it has ended; only with restart never */
    enum gm_enforce enforce; /* best-effort: run unlimited without a region; strict: refuse */
    int uid, gid;
};
int gm_workload_create(struct gm_daemon *d, const struct gm_run_request *r,
                       struct gm_workload_rec *out, struct gm_error *err);
/* apply -f / delete -f: a manifest as given (daemon/manifest.h), applied as the caller. */
struct gm_apply_req {
    const char *file;     /* its name, for messages */
    const char *manifest; /* its text */
    int dry_run;          /* decide and say, change nothing */
    int uid, gid;
};
/* Applies req's manifest as one: parsed, expanded and planned (daemon/apply.h), admitted as a
 * whole (when one workload cannot be placed nothing changes and the error names it), recorded
 * in one transaction, then launched; the workloads it no longer asks for are deleted. lines:
 * one line of what was done per workload. */
int gm_workload_apply(struct gm_daemon *d, const struct gm_apply_req *req, struct gm_strv *lines,
                      struct gm_error *err);
/* Deletes every workload of the manifest's objects, and their deployments. */
int gm_workload_unapply(struct gm_daemon *d, const struct gm_apply_req *req, struct gm_strv *lines,
                        struct gm_error *err);
/* The record r asks for, before admission (no GPU placed, no run-time fields), with the GPU it
 * asks for in *gpu (NULL: by policy; may point into r). The checks gm_workload_create makes of
 * the request. 0, -GM_EINVAL, -GM_ENOMEM. */
int gm_workload_from_request(const struct gm_run_request *r, struct gm_workload_rec *w,
                             const char **gpu, struct gm_error *err);

/* What a change of limits did. */
struct gm_limits_outcome {
    int live;             /* the running workload's region took the new limits */
    int compute_next_run; /* on an mps GPU MPS applies a new compute share at the next start */
    int not_interposed;   /* it runs without the interposer: the limits apply at its next start */
};
/* Changes a workload's limits: compute_pct -1 keeps the cap, 0 removes it; memory UINT64_MAX
 * keeps the limit, 0 removes it. Live through the region where the workload runs with the
 * interposer. */
int gm_workload_set_limits(struct gm_daemon *d, const char *name, int compute_pct, uint64_t memory,
                           struct gm_workload_rec *out, struct gm_limits_outcome *what,
                           struct gm_error *err);
int gm_workload_start(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                      struct gm_error *err);
/* grace_s: seconds between SIGTERM and SIGKILL; -1: the daemon's stop_timeout. */
int gm_workload_stop(struct gm_daemon *d, const char *name, int grace_s,
                     struct gm_workload_rec *out, struct gm_error *err);
int gm_workload_delete(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                       struct gm_error *err);
/* Stops launch launch_id of name for the daemon's own reason (why: recorded as the record's
 * reason and in its event), as a stop by request does; nothing when the record moved on to
 * another launch or nothing runs. */
int gm_workload_stop_for(struct gm_daemon *d, const char *name, int64_t launch_id, const char *why,
                         struct gm_error *err);
/* Path of the launch directory of a workload's launch, and of its log. */
int gm_workload_launch_dir(const struct gm_daemon *d, const char *name, int64_t launch_id,
                           char *buf, size_t len);
int gm_workload_log_path(const struct gm_daemon *d, const char *name, char *buf, size_t len);
/* The log's file k: 0 the current one (gm_workload_log_path), k >= 1 the rotated NAME.log.k,
 * older as k grows. */
int gm_workload_log_file(const struct gm_daemon *d, const char *name, int k, char *buf, size_t len);

/* The executor (exec.c). */
/* The memory-only state of a workload, created on first use. Caller holds d->lock. */
struct gm_wmem *gm_wmem_get(struct gm_daemon *d, const char *name);
const struct gm_wmem *gm_wmem_find(const struct gm_daemon *d, const char *name);
void gm_wmem_forget(struct gm_daemon *d, const char *name);
/* What a launch that could not be made does to its record. */
enum gm_undo {
    GM_UNDO_DELETE, /* a new workload: its record goes */
    GM_UNDO_STOP,   /* an explicit start: stopped, with the reason */
    GM_UNDO_EXITED, /* a restart: exited, not to be restarted, with the reason */
};
/* Makes launch `launch_id` of workload `name`, whose record (state starting) the caller
 * committed and marked launching (gm_wmem_get(...)->launching = 1) under d->lock. Called
 * WITHOUT d->lock: prepares the region, starts the monitor, waits briefly for the workload's
 * pid, then records the outcome and clears the mark. out (may be NULL) receives the record. */
int gm_exec_launch(struct gm_daemon *d, const char *name, int64_t launch_id, enum gm_undo undo,
                   struct gm_workload_rec *out, struct gm_error *err);
/* An effect a committed plan asks for: a signal to a launch, the removal of an ended launch's
 * directory, a launch to make (marked launching by the committer). */
struct gm_effect {
    char name[64];
    int64_t launch_id;     /* of the launch to signal or make */
    int64_t old_launch_id; /* whose directory to remove, 0 for none */
    int signal;            /* 0 for none */
    int launch;
    enum gm_undo undo; /* what a launch that cannot be made does to its record */
    int remove_files;  /* its record was deleted: remove its files (gm_exec_remove_files) */
};
/* Performs the effects in order, without d->lock. */
void gm_exec_effects(struct gm_daemon *d, const struct gm_effect *fx, size_t n);
/* Waits, without d->lock, until nothing of launch launch_id of name runs any more (its lock is
 * free); -GM_EBUSY after timeout_ms. */
int gm_exec_wait_launch_gone(struct gm_daemon *d, const char *name, int64_t launch_id,
                             int64_t timeout_ms, struct gm_error *err);
/* Removes what the daemon kept of a deleted workload: its last launch directory, its log, its
 * region. keep_launch: its record is not deleted yet, so the launch directory (the evidence of
 * how it ended) stays until it is. */
void gm_exec_remove_files(struct gm_daemon *d, const char *name, int64_t launch_id,
                          int keep_launch);
/* Gives a running workload's region its new limits (atomic stores: no lock of the workload's
 * is taken). Returns 1 when the workload has a region, 0 when it runs without one. */
int gm_exec_region_limits(struct gm_daemon *d, const struct gm_workload_rec *w, int by_mps);
/* Sends sig to launch launch_id of name (outside d->lock). */
void gm_exec_signal(struct gm_daemon *d, const char *name, int64_t launch_id, int sig);
/* Waits, without d->lock, until no active workload is left among names; SIGKILL after
 * stop_timeout. */
int gm_exec_wait_stopped(struct gm_daemon *d, const struct gm_strv *names, struct gm_error *err);
/* Refreshes every limited workload's compute window in its limits file (outside d->lock). */
void gm_exec_windows(struct gm_daemon *d);

/* Reconciliation (reconcile.c): compare the database with what runs; called at start and on
 * every poll. */
void gm_reconcile(struct gm_daemon *d, int at_start);

/* GPU inventory (inventory.c): record the GPUs the driver reports. */
int gm_inventory_sync(struct gm_daemon *d, struct gm_error *err);

struct gm_mps_outcome {
    int gpu_idx;
    int already_ran; /* start: it ran already (pid) */
    int started;     /* start: pid, pipe_dir */
    int stopped;     /* stop: pid */
    int was_not_running;
    int killed;        /* stop: it did not quit and was killed */
    int exclusive_set; /* the compute mode was set to EXCLUSIVE_PROCESS / back to DEFAULT */
    int exclusive_reset;
    int pct_set;             /* default active thread percentage applied */
    double pct_was;          /* what a running control daemon had before, or -1 */
    int defaults_to_running; /* the defaults went to a control daemon that ran already */
    uint64_t mem_set;        /* default pinned memory limit applied, bytes */
    int pid;
    char pci_bus_id[32];
    char pipe_dir[PATH_MAX];
};

/* What a mode change did, for the answer. */
struct gm_mode_outcome {
    struct gm_gpu_rec gpu; /* the record afterwards */
    enum gm_mode from;
    int changed;
    struct gm_mps_outcome mps_start, mps_stop;
    int mps_started, mps_stopped;          /* which of the two are filled */
    struct gm_strv stopped;                /* workloads stopped for the change */
    struct gm_strv restarted;              /* stopped ones started again under the new mode */
    struct gm_strv not_restarted, why_not; /* stopped ones that could not start again, and why */
};
void gm_mode_outcome_free(struct gm_mode_outcome *o);
/* Changes a GPU's sharing mode (inventory.c). out may be NULL. */
int gm_gpu_set_mode(struct gm_daemon *d, const char *id, enum gm_mode mode, enum gm_on_busy on_busy,
                    struct gm_mode_outcome *out, struct gm_error *err);
/* pct 0 / mem 0 keep the current value. Applied when MPS (re)starts on the GPU. */
int gm_gpu_set_mps_defaults(struct gm_daemon *d, const char *id, int pct, uint64_t mem,
                            struct gm_error *err);
/* What vm attach and detach did to the GPU's functions (inventory.c). */
struct gm_vm_outcome {
    int passthrough;                 /* the functions were moved (to vfio-pci, or back) */
    int claim_only;                  /* gpusim without a sysfs tree: only the claim was recorded */
    struct gm_vfio_group group;      /* attach: the group as it is now, on vfio-pci */
    struct gm_vfio_journal released; /* detach: the functions and the drivers they are back on */
};
/* Claims GPU gpu for VM vm (the claim rules of SYSTEM.md §1) and moves its IOMMU group to
 * vfio-pci, all or nothing. o may be NULL. */
int gm_vm_attach(struct gm_daemon *d, const char *vm, const char *gpu, struct gm_gpu_rec *out,
                 struct gm_vm_outcome *o, struct gm_error *err);
/* Gives the VM's GPU back: its functions to their drivers, the GPU to shared. Refused while a
 * running VM holds the group's vfio node, unless force. */
int gm_vm_detach(struct gm_daemon *d, const char *vm, int force, struct gm_gpu_rec *out,
                 struct gm_vm_outcome *o, struct gm_error *err);
/* Records whether g's functions are on vfio-pci, and asks it by the GPU's index; GPUs indexed
 * from GM_VFIO_MAX_GPUS on are never passed through (attach refuses them). */
#define GM_VFIO_MAX_GPUS 64
void gm_vfio_mark(struct gm_daemon *d, const struct gm_gpu_rec *g, int bound);
int gm_vfio_bound(const struct gm_daemon *d, int idx);
/* At start, before any workload is placed: finishes or undoes what the journals say an attach
 * or a detach left, and binds claimed GPUs to vfio-pci again after a reboot (inventory.c). */
void gm_vfio_recover(struct gm_daemon *d);

/* The lines users see for outcomes, as the appliance prints them (messages.c). */
void gm_msg_mps(const struct gm_mps_outcome *o, int starting, struct gm_strv *lines);
void gm_msg_mode(const struct gm_mode_outcome *o, struct gm_strv *lines);
void gm_msg_limits(const char *name, const struct gm_workload_rec *w,
                   const struct gm_limits_outcome *o, struct gm_strv *lines);

/* HTTP API (http.c). */
struct gm_http;
int gm_http_start(struct gm_daemon *d, struct gm_http **out, struct gm_error *err);
void gm_http_stop(struct gm_http *h);

#endif
