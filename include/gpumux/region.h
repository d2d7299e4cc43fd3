/* The per-workload shared region, in two files that gpumuxd creates in RUN_DIR/regions/:
 *
 *   NAME.limits  the limits part: what the daemon decides (limits, compute schedule, flags).
 *                Owned by the daemon, mode 0644: workloads may read it and never write it.
 *                libgpumux.so opens it O_RDONLY and maps it PROT_READ.
 *   NAME.region  the usage part: what the workload's processes write (the lock, the counters,
 *                the per-process slots, the pacing state). Owned by the workload's user, mode
 *                0644: no other user (and no other user's workload) can write it; the other
 *                capped workloads of its GPU read its pacing state (pread, never mapped) to
 *                see when its work is done. Its path is $GPUMUX_REGION; the limits file is
 *                the same path with ".region" replaced by ".limits".
 *
 * A reader sees both as one struct gm_region: the limits part is mapped at offset 0 (one page,
 * GM_REGION_LIMITS_SIZE bytes) and the usage part right after it, so a field's address does not
 * depend on which file holds it, and a store to a limit from a workload faults (SIGSEGV).
 *
 * Fields marked "atomic" are read and written with __atomic builtins and need no lock; the
 * usage part is guarded by `lock`, a robust process-shared mutex: a process killed while
 * holding it does not block the others (the next locker gets EOWNERDEAD, repairs the counters
 * from the slots and marks the mutex consistent). */
#ifndef GPUMUX_REGION_H
#define GPUMUX_REGION_H

#include <pthread.h>
#include <stdint.h>

#define GM_REGION_MAGIC         0x47524d47u /* "GMRG": the usage part */
#define GM_REGION_LIMITS_MAGIC  0x4c524d47u /* "GMRL": the limits part */
#define GM_REGION_VERSION       4u
#define GM_REGION_LIMITS_SIZE   4096u /* the limits part: one page of its own file */
#define GM_REGION_MAX_PROCS     64
#define GM_REGION_MAX_PEERS     15 /* other capped workloads of a GPU a region names */
#define GM_REGION_NAME_MAX      64
#define GM_REGION_ENV           "GPUMUX_REGION"
#define GM_REGION_STRICT_ENV    "GPUMUX_ENFORCE" /* "strict": refuse to run without a region */
#define GM_REGION_SUFFIX        ".region"
#define GM_REGION_LIMITS_SUFFIX ".limits"

enum gm_region_flags {
    GM_REGION_COMPUTE_BY_MPS = 1u << 0, /* the GPU is in mps mode: MPS caps compute */
};

/* A workload's name in the limits part, stored and read a word at a time (atomic). */
union gm_region_name {
    char s[GM_REGION_NAME_MAX];
    uint64_t w[GM_REGION_NAME_MAX / 8];
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

/* The workload's compute pacing on a time-sliced GPU, one for all its processes (guarded by
 * lock): the window they are in and what they launched in it, so that the window's budget is
 * the workload's, not each process's. Written and read by the interposer only; the rule and
 * the meaning of each field are in src/interpose/pace.c. All zero: no window yet. */
struct gm_region_pace {
    uint32_t valid;     /* k and the fields below describe a window */
    uint32_t ratio;     /* device time per estimated time, x GM_PACE_RATIO_ONE; 0 = one */
    int64_t k;          /* the window's index */
    uint64_t ws, we;    /* its start and end */
    int64_t be;         /* the end of its budget: we + the balance it started with */
    uint64_t tail;      /* when the work launched in it should be done, by the estimates */
    int64_t balance;    /* carried between windows: < 0 an overrun to pay, > 0 a rounding credit */
    uint64_t done;      /* the latest end of its work a drain saw on the clock (0: none) */
    uint64_t done_est;  /* the latest end a late drain could only estimate (0: none) */
    uint64_t waited;    /* how long its first kernel waited for another workload's work */
    uint32_t pending;   /* processes with launches in it not drained yet */
    uint32_t launches;  /* launches in it */
    uint32_t refused;   /* a launch did not fit: no more launches in it */
    uint32_t settled;   /* it is over: its balance is carried */
    uint32_t prev_open; /* the window before was settled on an estimate: a late drain corrects it */
    uint32_t timing;    /* a process times a kernel never measured: nothing else is launched */
    int64_t prev_k;     /* that window */
    uint64_t prev_end;  /* the end of its work it was charged to */
    uint64_t timing_until; /* the timing's claim lapses then (its process may have died) */
    uint64_t
        hold_from; /* the window's first launch is held since then: a peer's work is not done */
    uint64_t held; /* how long it was held (a peer's work, or its own from the window before):
                    * the window and its budget end that much later */
    uint64_t last_done; /* when the work of the window settled last really ended, by the clock */
};

struct gm_region {
    /* ---- The limits part (NAME.limits, written by the daemon only). ---- */
    union {
        struct {
            /* Header: checked on attach; a mismatch is refused. */
            uint32_t magic; /* GM_REGION_LIMITS_MAGIC */
            uint32_t version;
            uint32_t size; /* sizeof(struct gm_region), both parts */
            uint32_t flags;
            char workload[64];
            char gpu_uuid[96];

            /* Limits (atomic). 0 = none. */
            uint64_t memory_limit;
            uint32_t compute_pct;
            uint32_t pad0;

            /* Compute schedule on a time-sliced GPU (atomic), written by the daemon's
             * controller: the workload may launch only inside [offset, offset + length) of
             * every period, counted from epoch on CLOCK_MONOTONIC. length 0 with compute_pct >
             * 0: not scheduled yet. */
            uint64_t period_ns;
            uint64_t window_offset_ns;
            uint64_t window_len_ns;
            uint64_t epoch_ns;
            uint64_t generation; /* bumped after every change of limits or schedule */
            /* The other capped workloads of the GPU, in window order (atomic words, under the
             * seqlock): the window's first kernel waits until their work is done, read from
             * their usage parts, so that it does not queue behind an overrun. */
            uint32_t npeers;
            uint32_t pad2;
            union gm_region_name peers[GM_REGION_MAX_PEERS];
        };
        unsigned char limits_page[GM_REGION_LIMITS_SIZE];
    };

    /* ---- The usage part (NAME.region, written by the workload's processes). ---- */
    uint32_t usage_magic; /* GM_REGION_MAGIC */
    uint32_t usage_version;
    uint32_t usage_size; /* sizeof(struct gm_region) - GM_REGION_LIMITS_SIZE */
    uint32_t pad1;
    /* Guarded by lock. */
    pthread_mutex_t lock;
    uint64_t mem_used; /* sum of the slots' mem_used */
    uint64_t mem_peak;
    uint64_t oom_count; /* allocations refused for the limit */
    struct gm_region_pace pace;
    struct gm_region_proc procs[GM_REGION_MAX_PROCS];
};

#define GM_REGION_USAGE_SIZE (sizeof(struct gm_region) - GM_REGION_LIMITS_SIZE)

#endif
