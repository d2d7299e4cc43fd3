/* The one implementation of the per-workload limits region (layout: include/gpumux/region.h).
 *
 * Used by the daemon (create, limits, windows), by libgpumux.so inside the workload's
 * processes (attach, slots, charges, the schedule), by the tests and by the benchmark. It is
 * compiled into the interposer with hidden visibility, so it depends on nothing of gpumux but
 * common/proc.c and common/error.c, allocates nothing and never aborts, exits or signals.
 *
 * Errors follow the project's convention (common/error.h): 0 (or a count) on success, a
 * negative GM_E* code on failure, and a caller's struct gm_error (may be NULL) that names the
 * file and the reason ("/run/gpumux/regions/w.region: bad magic 0x00000000"). The interposer
 * maps codes to CUresult at its hooks, the daemon passes the error on.
 *
 * Trust: the limits part is the daemon's (its own file, read-only to workloads); the usage part
 * is the workload's, and whatever a workload writes there (its counters, its slots, the lock)
 * only changes what its own cooperative interposer believes, never its limits. The daemon does
 * not map the usage part at all (gm_region_open_limits); what a workload really uses it learns
 * from the driver (daemon/memcheck.c).
 *
 * Locking: the region's robust process-shared mutex guards the slots and the counters.
 * Workload processes wait for it (GM_REGION_WAIT); a caller that must not be held up by the
 * workload passes a bound (GM_REGION_DAEMON_LOCK_NS) and gets -GM_EBUSY when a process of the
 * workload holds the lock longer (stopped with it, or malicious).
 *
 * Liveness: a slot is taken back only when its process is certainly gone
 * (gm_proc_gone: GM_PROC_GONE). A process that runs but whose start time cannot be read or was
 * not recorded (GM_PROC_UNKNOWN) keeps its slot, in a bounded sweep and in the interposer's
 * repair alike: hiding a pid must not let a workload past its limit. */
#ifndef GM_REGION_REGION_H
#define GM_REGION_REGION_H

#include "common/error.h"

#include <gpumux/region.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GM_REGION_WAIT           0ull                         /* lock timeout: wait for it */
#define GM_REGION_DAEMON_LOCK_NS (100ull * 1000ull * 1000ull) /* the daemon's bound: 100 ms */

/* What a new region holds. uid/gid: the owner to give the usage file when running as root
 * ((uid_t)-1 / (gid_t)-1 keep the creator's); the limits file stays the creator's. */
struct gm_region_init {
    const char *workload;
    const char *gpu_uuid;
    uint64_t memory_limit;
    uint32_t compute_pct;
    uint32_t flags; /* enum gm_region_flags */
    uid_t uid;
    gid_t gid;
};

/* The limits file of the region whose usage file is path: ".region" replaced by ".limits"
 * (appended when path has no ".region"). Returns 0, or -GM_EINVAL when it does not fit. */
int gm_region_limits_path(const char *path, char *buf, size_t len, struct gm_error *err);

/* Creates (or replaces) both files of the region whose usage file is path. Each is made as a
 * temporary file beside it (O_EXCL, O_NOFOLLOW), written in place with its magic last and
 * renamed over its name, so a reader never maps a half-made part:
 *   - the limits file (gm_region_limits_path) with mode 0644 whatever the umask, owned by the
 *     creator: the workload can read its limits and not change them;
 *   - the usage file with mode 0644, its lock and empty slots, and chowned to uid/gid (when
 *     root) only after the creator unmapped it, so the new owner cannot shrink it under a
 *     mapping of the creator's. Others may read it (the pacing state, gm_region_peer_pace),
 *     never write it.
 * out (may be NULL) receives a mapping with both parts writable (tests, the benchmark); the
 * daemon passes NULL and writes limits through gm_region_open_limits. Unmap with
 * gm_region_detach. Returns 0, or -GM_EINVAL (path too long), -GM_EPERM, -GM_EIO with err
 * filled. Both temporary files are made before either is renamed, so a failure to make one
 * replaces neither name (only a failed second rename, in the same directory, leaves the new
 * limits beside the old usage part). */
int gm_region_create(const char *path, const struct gm_region_init *init, struct gm_region **out,
                     struct gm_error *err);

/* The workload's view (the interposer, the tests' tools): the limits file opened O_RDONLY and
 * mapped PROT_READ, the usage file mapped read-write (MAP_SHARED), one struct gm_region. Both
 * opened with O_NOFOLLOW, regular files of at least their part's size, magic, version and sizes
 * checked. A store to a field of the limits part faults; mprotect cannot make it writable (the
 * file is open read-only). Returns 0, -GM_ENOTFOUND (no file), -GM_EPERM (a symbolic link, or
 * not ours to open), -GM_EIO, or -GM_EINVAL for a file that is not a region of this layout; err
 * says which. */
int gm_region_attach(const char *path, struct gm_region **out, struct gm_error *err);
/* The daemon's view: the limits part mapped read-write (the file must belong to the caller's
 * effective uid), the usage part not mapped at all (PROT_NONE): the daemon never touches memory
 * a workload can write, truncate or corrupt. Only the writers below and the header fields may
 * be used on it. Same returns as gm_region_attach. */
int gm_region_open_limits(const char *path, struct gm_region **out, struct gm_error *err);
/* Checks the usage file's header with read(2), not a mapping (a workload may truncate its own
 * file at any time): 0 when it is a usage part of this layout, else -GM_ENOTFOUND, -GM_EPERM,
 * -GM_EIO or -GM_EINVAL with err filled. */
int gm_region_check_usage(const char *path, struct gm_error *err);
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
/* A sweep from outside: lock (bounded by timeout_ns), repair, unlock. Returns the number of
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
/* 1 when slot i (may be -1) still holds (pid, start): a slot another process cleared (a
 * sweep) and perhaps claimed since is no longer ours. Atomic loads, no lock. */
int gm_region_slot_holds(const struct gm_region *r, int i, uint32_t pid, uint64_t start);
/* Caller holds the lock. Counts size bytes into the total, the peak and slot i (-1: total
 * only), or takes them off again (never below zero). */
void gm_region_charge_locked(struct gm_region *r, int i, uint64_t size);
void gm_region_uncharge_locked(struct gm_region *r, int i, uint64_t size);

/* The writers (the daemon, on gm_region_open_limits's mapping), both under the region's seqlock:
 * the generation is odd while they write and bumped to the next even value after. No region lock is
 * needed: the fields are atomic, so a region whose lock a workload holds still gets its limits. */
void gm_region_set_limits(struct gm_region *r, uint64_t memory_limit, uint32_t compute_pct,
                          int by_mps);
/* Sets the compute window (epoch_ns: origin of the periods, 0 for CLOCK_MONOTONIC's); returns
 * 1 when it changed, 0 when it already was this one. */
int gm_region_set_window(struct gm_region *r, uint64_t period_ns, uint64_t offset_ns,
                         uint64_t len_ns, uint64_t epoch_ns);

/* Names the other capped workloads of the GPU (at most GM_REGION_MAX_PEERS, each shorter than
 * GM_REGION_NAME_MAX; longer lists and names are cut), under the seqlock; returns 1 when the
 * list changed, 0 when it already was this one. */
int gm_region_set_peers(struct gm_region *r, const char *const *names, size_t n);
/* Reads the peer list as one writer left it into names (GM_REGION_MAX_PEERS entries); returns
 * how many there are. */
size_t gm_region_read_peers(const struct gm_region *r, union gm_region_name *names);

/* A peer's usage part, to read its pacing state: the file NAME.region in the directory of path
 * (the caller's own usage file), opened O_RDONLY | O_NOFOLLOW, a regular file of the usage
 * part's size. Returns the descriptor, or an error as gm_region_check_usage. */
int gm_region_peer_open(const char *path, const char *name, struct gm_error *err);
/* The pacing state of the peer opened as fd, with pread: its owner may truncate or rewrite its
 * file at any time, so it is never mapped, and what it says is only a hint (torn or made up,
 * it can only make the reader wait, never longer than the reader's own bound). Returns 0, or
 * -GM_EIO / -GM_EINVAL when the file is not a usage part of this layout now. */
int gm_region_peer_pace(int fd, struct gm_region_pace *out);

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
