/* The per-workload shared region: created by gpumuxd (RUN_DIR/regions/NAME.region, mode 0660),
 * mapped by libgpumux.so in every process of the workload (path in $GPUMUX_REGION).
 *
 * It carries the workload's limits, which the daemon may change live, the compute schedule the
 * daemon's controller computes for the workload's GPU, and per-process slots and counters.
 * Fields marked "atomic" are read and written with __atomic builtins and need no lock; the rest
 * is guarded by `lock`, a robust process-shared mutex: a process killed while holding it does
 * not block the others (the next locker gets EOWNERDEAD, repairs the counters from the slots and
 * marks the mutex consistent). */
#ifndef GPUMUX_REGION_H
#define GPUMUX_REGION_H

#include <pthread.h>
#include <stdint.h>

#define GM_REGION_MAGIC      0x47524d47u /* "GMRG" */
#define GM_REGION_VERSION    1u
#define GM_REGION_MAX_PROCS  64
#define GM_REGION_ENV        "GPUMUX_REGION"
#define GM_REGION_STRICT_ENV "GPUMUX_ENFORCE" /* "strict": refuse to run without a region */

enum gm_region_flags {
    GM_REGION_COMPUTE_BY_MPS = 1u << 0, /* the GPU is in mps mode: MPS caps compute */
};

struct gm_region_proc {
    uint32_t pid; /* 0 = free slot */
    uint32_t reserved;
    uint64_t start_time;  /* /proc/PID/stat field 22, to tell a reused pid */
    uint64_t mem_used;    /* bytes this process holds */
    uint64_t launches;    /* kernel launches */
    uint64_t busy_ns;     /* device time its kernels took, as measured */
    uint64_t throttle_ns; /* time the pacing held its launches back */
};

struct gm_region {
    /* Header: checked on attach; a mismatch is refused. */
    uint32_t magic;
    uint32_t version;
    uint32_t size; /* sizeof(struct gm_region) */
    uint32_t flags;
    char workload[64];
    char gpu_uuid[96];

    /* Limits, set by the daemon (atomic). 0 = none. */
    uint64_t memory_limit;
    uint32_t compute_pct;
    uint32_t pad0;

    /* Compute schedule for the workload on a time-sliced GPU (atomic), written by the daemon's
     * controller: the workload may launch only inside [offset, offset + length) of every period,
     * counted from epoch on CLOCK_MONOTONIC. length 0 with compute_pct > 0: not scheduled yet. */
    uint64_t period_ns;
    uint64_t window_offset_ns;
    uint64_t window_len_ns;
    uint64_t epoch_ns;
    uint64_t generation; /* bumped after every change of limits or schedule */

    /* Guarded by lock. */
    pthread_mutex_t lock;
    uint64_t mem_used; /* sum of the slots' mem_used */
    uint64_t mem_peak;
    uint64_t oom_count; /* allocations refused for the limit */
    struct gm_region_proc procs[GM_REGION_MAX_PROCS];
};

#endif
