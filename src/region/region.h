/* The one implementation of the per-workload limits region (layout: include/gpumux/region.h).
 *
 * Used by the daemon (create, limits, windows, reap), by libgpumux.so inside the workload's
 * processes (attach, slots, charges, the schedule), by the tests and by the benchmark. It is
 * compiled into the interposer with hidden visibility, so it depends on nothing of gpumux but
 * common/proc.c and common/error.c, allocates nothing and never aborts, exits or signals.
 *
 * Errors follow the project's convention (common/error.h): 0 (or a count) on success, a
 * negative GM_E* code on failure, and a caller's struct gm_error (may be NULL) that names the
 * file and the reason ("/run/gpumux/regions/w.region: bad magic 0x00000000"). The interposer
 * maps codes to CUresult at its hooks, the daemon passes the error on.
 *
 * Locking: the region's robust process-shared mutex guards the slots and the counters.
 * Workload processes wait for it (GM_REGION_WAIT); the daemon never does: it passes a bound
 * (GM_REGION_DAEMON_LOCK_NS) and gets -GM_EBUSY when a process of the workload holds the lock
 * longer (stopped with it, or malicious), so an untrusted workload cannot block the daemon.
 *
 * Liveness: a slot is taken back only when its process is certainly gone
 * (gm_proc_gone: GM_PROC_GONE). A process that runs but whose start time cannot be read or was
 * not recorded (GM_PROC_UNKNOWN) keeps its slot, in the daemon's reaper and in the
 * interposer's repair alike: hiding a pid must not let a workload past its limit. */
#ifndef GM_REGION_REGION_H
#define GM_REGION_REGION_H

#include "common/error.h"

#include <gpumux/region.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GM_REGION_WAIT           0ull                         /* lock timeout: wait for it */
#define GM_REGION_DAEMON_LOCK_NS (100ull * 1000ull * 1000ull) /* the daemon's bound: 100 ms */

/* What a new region holds. uid/gid: the owner to give the file when running as root
 * ((uid_t)-1 / (gid_t)-1 keep the creator's). */
struct gm_region_init {
    const char *workload;
    const char *gpu_uuid;
    uint64_t memory_limit;
    uint32_t compute_pct;
    uint32_t flags; /* enum gm_region_flags */
    uid_t uid;
    gid_t gid;
};

/* Creates (or replaces) the region at path: a temporary file beside it (O_EXCL, O_NOFOLLOW,
 * mode 0660 whatever the umask, chowned to uid/gid when root), the header, limits and the
 * robust lock written in place, the magic last, then renamed over path. So a reader never maps
 * a half-made region. out (may be NULL) receives the mapping; unmap with gm_region_detach.
 * Returns 0, or -GM_EINVAL (path too long), -GM_EPERM, -GM_EIO with err filled. */
int gm_region_create(const char *path, const struct gm_region_init *init, struct gm_region **out,
                     struct gm_error *err);

/* Maps an existing region read-write (MAP_SHARED): opened with O_NOFOLLOW, a regular file of
 * at least the region's size, magic, version and header size checked. Returns 0,
 * -GM_ENOTFOUND (no file), -GM_EPERM (a symbolic link, or not ours to open), -GM_EIO, or
 * -GM_EINVAL for a file that is not a region of this layout; err says which. */
int gm_region_attach(const char *path, struct gm_region **out, struct gm_error *err);
void gm_region_detach(struct gm_region *r);

/* Takes the lock. timeout_ns GM_REGION_WAIT waits (workload processes); any other value bounds
 * the wait on CLOCK_MONOTONIC and returns -GM_EBUSY past it (the daemon). When the last holder
 * died holding it, repairs the region (gm_region_repair_locked) and makes it consistent.
 * Returns 0 (held), -GM_EBUSY, or -GM_EIO when the mutex is unusable (not held). */
int gm_region_lock(struct gm_region *r, uint64_t timeout_ns);
void gm_region_unlock(struct gm_region *r);

/* The liveness rule for slots: 1 when the slot's process is certainly gone and its slot may be
 * taken back (gm_proc_gone on its pid and start time). A free slot is not "gone". */
int gm_region_slot_gone(const struct gm_region_proc *p);
/* Caller holds the lock. Frees the slots whose process is gone and makes mem_used the sum of
 * the slots again: whatever a dead holder left half-done, the slots are the truth. Returns
 * how many slots it freed. */
int gm_region_repair_locked(struct gm_region *r);
/* The daemon's sweep: lock (bounded by timeout_ns), repair, unlock. Returns the number of
 * slots freed, or -GM_EBUSY when the lock could not be had in time (nothing done). */
int gm_region_reap(struct gm_region *r, uint64_t timeout_ns);

/* Caller holds the lock. Gives (pid, start) a slot holding mem_used bytes, added to the total:
 * the slot that already holds them (the image before an exec: its memory is dropped first) or
 * a free one, repairing once when none is free. Returns its index, or -1 when all are taken
 * (mem_used is then counted in the total only). */
int gm_region_slot_claim_locked(struct gm_region *r, uint32_t pid, uint64_t start,
                                uint64_t mem_used);
/* Caller holds the lock. Frees slot i and takes its memory off the total. */
void gm_region_slot_release_locked(struct gm_region *r, int i);
/* 1 when slot i (may be -1) still holds (pid, start): a slot another process cleared (the
 * daemon's reaper) and perhaps claimed since is no longer ours. Atomic loads, no lock. */
int gm_region_slot_holds(const struct gm_region *r, int i, uint32_t pid, uint64_t start);
/* Caller holds the lock. Counts size bytes into the total, the peak and slot i (-1: total
 * only), or takes them off again (never below zero). */
void gm_region_charge_locked(struct gm_region *r, int i, uint64_t size);
void gm_region_uncharge_locked(struct gm_region *r, int i, uint64_t size);

/* The writers (the daemon), both under the region's seqlock: the generation is odd while they
 * write and bumped to the next even value after. No region lock is needed: the fields are
 * atomic, so a region whose lock a workload holds still gets its limits. */
void gm_region_set_limits(struct gm_region *r, uint64_t memory_limit, uint32_t compute_pct,
                          int by_mps);
/* Sets the compute window (epoch_ns: origin of the periods, 0 for CLOCK_MONOTONIC's); returns
 * 1 when it changed, 0 when it already was this one. */
int gm_region_set_window(struct gm_region *r, uint64_t period_ns, uint64_t offset_ns,
                         uint64_t len_ns, uint64_t epoch_ns);

/* What a reader (the interposer) needs of the limits and the schedule, read consistently. */
struct gm_region_schedule {
    uint32_t flags;
    uint32_t compute_pct;
    uint64_t period_ns;
    uint64_t offset_ns;
    uint64_t len_ns;
    uint64_t epoch_ns;
};
/* Reads the schedule as one writer left it; returns the generation it belongs to. A writer
 * that died mid-write (odd generation for good) does not hang the reader: after a bounded
 * number of retries what is there is taken. */
uint64_t gm_region_read_schedule(const struct gm_region *r, struct gm_region_schedule *s);

#endif
