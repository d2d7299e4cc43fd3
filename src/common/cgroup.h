/* Cgroups as exact process membership for workload launches (as container runtimes use them).
 *
 * Each launch gets one cgroup; its workload joins it before it drops privileges and execs, and
 * everything it forks stays in it, whatever it does to sessions, process groups or descriptors:
 * only a process allowed to write another cgroup's cgroup.procs (root) can leave. No controller
 * is enabled: the cgroup only counts and kills.
 *
 * Three kinds, found from the file system of a path: cgroup v2 (populated from cgroup.events,
 * killing through cgroup.kill), and on hosts with only v1 hierarchies the v1 `pids` hierarchy
 * (killing with pids.max=0, so nothing forks while the listed pids are killed) or the v1
 * `freezer` (freeze, kill the listed pids, thaw). A path is always a directory in a mounted
 * cgroup file system; functions given a path that does not exist treat it as an empty cgroup. */
#ifndef GM_COMMON_CGROUP_H
#define GM_COMMON_CGROUP_H

#include "common/error.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum gm_cg_kind {
    GM_CG_NONE, /* not a cgroup (or none configured): lock-only tracking */
    GM_CG_V2,
    GM_CG_V1_PIDS,
    GM_CG_V1_FREEZER,
};

const char *gm_cgroup_kind_name(enum gm_cg_kind k); /* "cgroup v2", "cgroup v1 pids", ... */

/* Resolves the parent of a daemon's launch cgroups from the setting cgroup_root:
 *   "none"          no cgroup: out is "" and *kind GM_CG_NONE;
 *   "auto"          MOUNT/gpumux, MOUNT the cgroup2 mount of /proc/self/mountinfo, else the v1
 *                   pids hierarchy's, else the v1 freezer's;
 *   a relative path MOUNT/PATH, MOUNT found as for auto;
 *   an absolute one that directory, which must lie in a cgroup file system.
 * The directory is created (0755, parents too) and must be writable. On failure out is "" and
 * the error says why; for "auto" the caller may carry on without a cgroup. */
int gm_cgroup_resolve_root(const char *setting, char *out, size_t len, enum gm_cg_kind *kind,
                           struct gm_error *err);

/* The kind of cgroup path is in (GM_CG_NONE when it is not in a cgroup file system). */
enum gm_cg_kind gm_cgroup_kind(const char *path);

/* Creates the cgroup path (parents too). An existing, empty one is fine; a populated one is
 * GM_EBUSY. */
int gm_cgroup_create(const char *path, struct gm_error *err);

/* Moves pid (0: the caller) into the cgroup path. Only open, write and close: safe between fork
 * and exec. Returns 0 or -errno. */
int gm_cgroup_join(const char *path, pid_t pid);

/* 1 when a live process is in path (zombies do not count), 0 when none is or path does not
 * exist, or a negative GM_E* code. */
int gm_cgroup_populated(const char *path, struct gm_error *err);

/* The pids in path, in *pids (free() it), their number in *n. */
int gm_cgroup_pids(const char *path, pid_t **pids, size_t *n, struct gm_error *err);

/* Sends sig to every process in path. Returns the number signalled (0 when none), or a negative
 * GM_E* code. */
int gm_cgroup_signal(const char *path, int sig, struct gm_error *err);

/* Kills every process in path, including those forked meanwhile, and waits until none is left
 * or timeout_ms passed (GM_EBUSY then). The caller reaps its own children: a zombie is not
 * counted. */
int gm_cgroup_kill(const char *path, int64_t timeout_ms, struct gm_error *err);

/* Removes the cgroup path: GM_EBUSY while populated; nothing to do when it does not exist. */
int gm_cgroup_remove(const char *path, struct gm_error *err);

#endif
