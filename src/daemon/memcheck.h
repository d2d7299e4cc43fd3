/* The driver's word on memory: the backstop behind the interposer.
 *
 * libgpumux.so counts a workload's memory inside its processes, cooperatively: a static binary,
 * a raw ioctl, a process that drops LD_PRELOAD or points $GPUMUX_REGION elsewhere, or one that
 * lowers its own counters in its usage part, is not held by it. So at every poll the daemon asks
 * the driver (NVML, per process) what each limited workload's processes really hold on the GPUs,
 * sums it per workload and compares it with the workload's memory limit:
 *
 *   - over the limit: the event "over memory limit: uses X MiB of Y MiB (seen by the driver)",
 *     once per crossing (and "back under memory limit ..." once it is back), and the flag in
 *     `ps` (the state detail) and `-o json` (over_memory_limit, memory_used);
 *   - with `--enforce strict` the workload is stopped, with that reason.
 *
 * The decision (gm_memcheck_decide) and the mapping of a process to its workload
 * (gm_memcheck_owner) are pure functions, unit-tested in tests/unit/test_memcheck.c; the pass
 * (gm_memcheck) asks the driver and reads /proc without d->lock, decides and records under it,
 * and stops through the executor without it. */
#ifndef GM_DAEMON_MEMCHECK_H
#define GM_DAEMON_MEMCHECK_H

#include "daemon/model.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct gm_daemon;

/* What is known of one GPU process, to tell whose it is: its process group, its session and
 * its ancestors, against the workload's pid (the workload leads its own session and process
 * group, see the monitor), and the launch it is known to belong to: the launch whose cgroup
 * holds it (exact), or without cgroups the launch lock it holds open (the workload's `wlock`,
 * fd 3, inherited by everything a launch starts: it finds a process that left the session and
 * was reparented, as long as it keeps the fd). */
#define GM_MEMCHECK_MAX_ANCESTORS 32
struct gm_mc_proc {
    pid_t pid, pgrp, session;
    pid_t ancestors[GM_MEMCHECK_MAX_ANCESTORS]; /* parent first, up to (not including) pid 1 */
    int nancestors;
    char lock_workload[64]; /* the workload of the launch it belongs to, "" for none known */
    int64_t lock_launch;    /* and that launch's number */
};

/* The index in ws of the workload that owns process p, or -1 when none does. Only workloads
 * with a live pid (starting, running, stopping) own processes. Pure. */
int gm_memcheck_owner(const struct gm_mc_proc *p, const struct gm_workload_rec *ws, size_t n);

/* What to do about one workload after a poll. */
struct gm_mc_plan {
    int over;            /* the flag after this poll */
    int event;           /* record message (a crossing, either way) */
    enum gm_level level; /* of the event */
    int stop;            /* --enforce strict and over: stop it, with message as the reason */
    char message[200];   /* "over memory limit: uses X MiB of Y MiB (seen by the driver)" */
    char reason[256];    /* the stop's reason, when stop */
};

/* Decides for workload w whose processes hold used bytes on the GPUs (as the driver says),
 * given whether it was over at the last poll of the same launch. The driver counts what the
 * interposer does not (each process's contexts and modules: about 105 MiB a context on gpusim,
 * a few hundred MiB on real GPUs): slack bytes per process are allowed for that, so a workload
 * is over when used > memory_limit + nprocs x slack. A workload without a memory limit is never
 * over. Reads w->spec_json for `enforce`. Pure. */
void gm_memcheck_decide(const struct gm_workload_rec *w, uint64_t used, int nprocs, uint64_t slack,
                        int was_over, struct gm_mc_plan *p);

/* The state the pass keeps (per workload, in memory only), behind its own mutex. */
struct gm_memcheck;
int gm_memcheck_new(struct gm_memcheck **out);
void gm_memcheck_free(struct gm_memcheck *m);

/* What the last pass saw of w's current launch: 1 with *used (bytes) and *over filled, 0 when
 * nothing is known (not limited, not running, or the driver was not asked yet). Takes only the
 * memcheck mutex: callable with or without d->lock. */
int gm_memcheck_seen(const struct gm_daemon *d, const struct gm_workload_rec *w, uint64_t *used,
                     int *over);

/* One pass (the poll): called without d->lock. Asks the driver only when a limited workload
 * runs. */
void gm_memcheck(struct gm_daemon *d);

#endif
