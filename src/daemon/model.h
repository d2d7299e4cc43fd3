/* The records gpumuxd keeps in its state database. */
#ifndef GM_DAEMON_MODEL_H
#define GM_DAEMON_MODEL_H

#include "common/clock.h"

#include <stddef.h>
#include <stdint.h>

#define GM_MAX_WORKLOAD_GPUS 8
#define GM_MPS_MAX_CLIENTS   48

enum gm_mode { GM_MODE_SHARED, GM_MODE_MPS, GM_MODE_VM };

struct gm_gpu_rec {
    char uuid[96];
    int idx;
    char name[96];
    uint64_t memory_total; /* bytes */
    char pci_bus_id[32];
    enum gm_mode mode;
    char holder[64];          /* VM name when a VM holds the GPU, else "" */
    int64_t holder_since;     /* unix ms */
    int mps_default_pct;      /* 0 = not set */
    uint64_t mps_default_mem; /* bytes, 0 = not set */
    int present;              /* 1 when the last inventory saw it */
};

enum gm_wstate { GM_W_STARTING, GM_W_RUNNING, GM_W_STOPPING, GM_W_EXITED, GM_W_STOPPED };
enum gm_restart { GM_RESTART_NEVER, GM_RESTART_ON_FAILURE, GM_RESTART_ALWAYS };
/* What a limited workload does when its limits cannot be enforced (no limits region):
 * best-effort runs unlimited and says so once; strict fails CUDA initialisation. */
enum gm_enforce { GM_ENFORCE_BEST_EFFORT, GM_ENFORCE_STRICT };

struct gm_workload_rec {
    int64_t id;
    char name[64];
    char deployment[64]; /* "" when run directly */
    char kind[16];       /* "process" */
    char *spec_json;     /* owned: {"command": [...], "env": {...}} */
    int desired_running; /* 1 = should run, 0 = stopped by request */
    enum gm_wstate state;
    int ngpus;
    char gpus[GM_MAX_WORKLOAD_GPUS][96]; /* GPU UUIDs */
    int compute_pct;                     /* 0 = no cap */
    uint64_t memory_limit;               /* bytes, 0 = no limit */
    enum gm_restart restart;
    int uid, gid;      /* who the workload runs as */
    int64_t launch_id; /* increases with every launch */
    int monitor_pid;
    uint64_t monitor_start; /* /proc start time, clock ticks since boot */
    int pid;
    uint64_t pid_start;
    int has_exit;  /* exit_code/exit_signal are valid */
    int exit_code; /* -1 when killed by a signal */
    int exit_signal;
    int restart_count;
    int restart_max; /* on-failure: restarts at most this many times; 0: no bound (spec_json) */
    int auto_remove; /* run --rm: the record goes once the workload has ended (spec_json) */
    char reason[256];
    int64_t created_at, started_at, finished_at; /* unix ms, 0 = never */
};

/* How much an event matters. */
enum gm_level { GM_LEVEL_INFO, GM_LEVEL_WARNING, GM_LEVEL_ERROR };

struct gm_event {
    int64_t id;
    int64_t time_ms;
    enum gm_level level;
    char object[96]; /* "workload/a", "gpu/0", "vm/vm1", "daemon" */
    char message[512];
};

const char *gm_mode_name(enum gm_mode m);
int gm_mode_parse(const char *s, enum gm_mode *out); /* 0 or -GM_EINVAL */
const char *gm_wstate_name(enum gm_wstate s);
int gm_wstate_parse(const char *s, enum gm_wstate *out);
const char *gm_restart_name(enum gm_restart r);
int gm_restart_parse(const char *s, enum gm_restart *out);
const char *gm_enforce_name(enum gm_enforce e);
const char *gm_level_name(enum gm_level l); /* "info", "warning", "error" */
int gm_level_parse(const char *s, enum gm_level *out);
int gm_enforce_parse(const char *s, enum gm_enforce *out);
/* The names of the values, indexed by value and NULL-terminated (the API's field specs). */
extern const char *const gm_mode_names[];
extern const char *const gm_restart_names[];
/* The most restarts on-failure:N may ask for. */
#define GM_RESTART_MAX_BOUND 1000000
extern const char *const gm_enforce_names[];
/* "GPU-uuid, GPU-uuid" or "no GPU", for messages. */
void gm_workload_where(const struct gm_workload_rec *w, char *buf, size_t len);
/* Is the workload counted against its GPU (memory, MPS slots, VM exclusivity)? */
int gm_workload_active(const struct gm_workload_rec *w);
void gm_workload_rec_free(struct gm_workload_rec *w); /* frees owned members only */
void gm_workload_list_free(struct gm_workload_rec *v, size_t n);

#endif
