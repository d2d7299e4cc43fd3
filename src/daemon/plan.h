/* The daemon's decisions, as pure functions over a snapshot of records.
 *
 * Each function here reads only its arguments (no store, no clock, no environment, no files)
 * and returns a plan: what to record and which effects to perform. The executor (exec.c)
 * commits the records first, performs the effects outside the global lock, and records the
 * outcomes. Admission and placement are in sched.c, a GPU's compute windows in windows.c; both
 * follow the same rule. Every function has its unit tests in tests/unit/test_plan.c. */
#ifndef GM_DAEMON_PLAN_H
#define GM_DAEMON_PLAN_H

#include "common/error.h"
#include "common/strv.h"
#include "daemon/model.h"
#include "daemon/supervise.h"

#include <stddef.h>
#include <stdint.h>

/* ---- the launch environment ----------------------------------------------------------------- */

/* Everything outside the records that a launch's environment depends on. */
struct gm_launch_inputs {
    char *const *base_env;   /* the daemon's own environment */
    const char *interposer;  /* libgpumux.so, NULL when it is missing */
    const char *region_path; /* the workload's limits region, NULL when there is none */
    int sim;                 /* the driver is gpusim */
    const char *sim_dir;     /* gpusim's library directory */
    const char *gpusim_state, *gpusim_config;
    const char *mps_pipe, *mps_log; /* the GPU's MPS directories, for a GPU in mps mode */
};

/* Does w run with the interposer and a limits region? (a limit, on exactly one GPU) */
int gm_plan_needs_region(const struct gm_workload_rec *w);
/* The command and the whole environment of launch w: the daemon's environment less what gpumux
 * sets itself, the user's variables from the spec, then gpumux's (devices, limits, interposer,
 * MPS, gpusim). g is the workload's GPU when it has exactly one, else NULL. */
int gm_plan_launch(const struct gm_launch_inputs *in, const struct gm_workload_rec *w,
                   const struct gm_gpu_rec *g, struct gm_strv *argv, struct gm_strv *env,
                   struct gm_error *err);

/* ---- reconciliation: one record against what its launch directory shows ------------------ */

/* Timers kept in memory only: a daemon restart re-derives them from the records. */
struct gm_timers {
    int64_t restart_at_ms; /* when an exited workload may be started again, 0 = at once */
    int64_t kill_at_ms;    /* when a stopping workload gets SIGKILL, 0 = not yet signalled */
};

enum gm_rc_action {
    GM_RC_NONE,        /* nothing changed */
    GM_RC_PID,         /* alive with a new pid: record it */
    GM_RC_READOPTED,   /* at start: alive as recorded */
    GM_RC_SIGNAL,      /* stopping and alive: SIGTERM, SIGKILL once stop_timeout passed */
    GM_RC_ENDED,       /* the launch ended (exit file, or lost): record how */
    GM_RC_LAUNCH,      /* the daemon died between recording a launch and making it: make it */
    GM_RC_RESTART,     /* exited, restart policy and back-off say start it again */
    GM_RC_NEVER_RAN,   /* stopped before its launch was made */
    GM_RC_POLL_FAILED, /* the launch directory could not be read */
};

struct gm_rc_plan {
    enum gm_rc_action action;
    int save;                    /* next differs from the record and is saved with the event */
    struct gm_workload_rec next; /* shallow copy of the record (spec_json is not owned) */
    enum gm_level level;         /* of the event */
    char event[512];             /* "" for none */
    int signal;                  /* 0, or the signal for the launch's process group */
    int launch;                  /* make launch next.launch_id after the record is saved */
    int remove_dir;              /* remove the ended launch's directory */
    int remove_record;           /* run --rm: it has ended for good, delete the workload */
    int set_timers;              /* timers below replace the workload's */
    struct gm_timers timers;
};

/* A stop asked of w (by a user, a delete or a mode change): next is w with desired_running 0,
 * stopping when its launch may still run, stopped when a restart was pending, with why as its
 * reason. Returns 1 when the launch must get SIGTERM. next may be w. */
int gm_plan_stop(const struct gm_workload_rec *w, const char *why, struct gm_workload_rec *next);

/* Restart back-off: 0.1 s doubling with every restart, at most 10 s. */
int64_t gm_plan_backoff_ms(int restarts);
/* st: what gm_sup_poll saw of the current launch; NULL when it was not polled (the record is
 * stopped or exited) or the poll failed (then poll_failed is 1). t may be NULL (no timers). */
void gm_plan_reconcile(const struct gm_workload_rec *w, const struct gm_sup_status *st,
                       int poll_failed, const struct gm_timers *t, int64_t now_ms, int at_start,
                       int stop_timeout_s, struct gm_rc_plan *out);

/* ---- a GPU's mode change ------------------------------------------------------------------ */

enum gm_on_busy {
    GM_ON_BUSY_REFUSE,  /* refuse, naming the workloads */
    GM_ON_BUSY_STOP,    /* stop them first */
    GM_ON_BUSY_RESTART, /* stop them, change, start them again under the new mode */
};

struct gm_mode_plan {
    size_t gpu; /* index into the gpus array */
    enum gm_mode from, to;
    int change;           /* 0: the GPU is already in mode `to` */
    int start_mps;        /* start (or make sure of) the GPU's MPS control daemon first */
    int stop_mps;         /* quit it after the change */
    int stop_users;       /* stop the workloads in users before the change */
    int restart_users;    /* start them again afterwards */
    struct gm_strv users; /* the active workloads the change would break */
};

/* Decides a mode change of GPU id to `to`. changing: UUIDs of GPUs whose mode is changing now
 * (a second change of one of them is refused). Fails with the message users see. Free the plan
 * with gm_mode_plan_free. */
int gm_plan_mode(const struct gm_gpu_rec *gpus, size_t ngpus, const struct gm_workload_rec *ws,
                 size_t nws, const char *id, enum gm_mode to, enum gm_on_busy on_busy,
                 const struct gm_strv *changing, struct gm_mode_plan *out, struct gm_error *err);
void gm_mode_plan_free(struct gm_mode_plan *p);
/* Names of the active workloads on GPU uuid, in record order. */
int gm_plan_users(const struct gm_workload_rec *ws, size_t nws, const char *uuid,
                  struct gm_strv *out);
/* "a, b, c" for a message: at most eight names, then "and N others". */
void gm_plan_name_list(const struct gm_strv *names, char *buf, size_t len);

/* ---- desired against actual ------------------------------------------------------------- */

enum gm_diff_op { GM_DIFF_CREATE, GM_DIFF_UPDATE, GM_DIFF_DELETE, GM_DIFF_KEEP };

struct gm_diff_item {
    enum gm_diff_op op;
    long desired; /* index into desired, -1 for DELETE */
    long actual;  /* index into actual, -1 for CREATE */
};

struct gm_diff {
    struct gm_diff_item *items; /* desired order first, then deletions in actual order */
    size_t n;
    size_t count[4]; /* per gm_diff_op */
};

/* What a running workload runs with, which a limit changed since may not have reached (an MPS
 * client's active thread percentage is fixed at its start, a workload started without limits
 * runs without the interposer): noted with its spec as "in_force", which gm_plan_same_spec
 * leaves out. Each launch notes all three; a change applied live notes what it changed. mode
 * NULL, compute_pct or memory_limit below 0 keep what was noted; mode "" removes the note. */
void gm_plan_note_in_force(struct gm_workload_rec *w, const char *mode, int compute_pct,
                           long long memory_limit);
/* The noted values: 0, or -1 when nothing was noted (never launched since it was created). */
struct gm_in_force {
    char mode[16];
    int compute_pct;
    long long memory_limit;
};
int gm_plan_in_force(const struct gm_workload_rec *w, struct gm_in_force *out);

/* Do two records ask for the same workload (command, environment, GPUs asked for, limits,
 * restart policy)? Run-time fields (state, pids, counters, times) are not compared. */
int gm_plan_same_spec(const struct gm_workload_rec *a, const struct gm_workload_rec *b);
/* Matches desired and actual records by name: what to create, update, delete and keep. A name
 * given twice in desired is refused. */
int gm_plan_diff(const struct gm_workload_rec *desired, size_t nd,
                 const struct gm_workload_rec *actual, size_t na, struct gm_diff *out,
                 struct gm_error *err);
void gm_diff_free(struct gm_diff *d);

#endif
