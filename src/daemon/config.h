/* Daemon configuration: one table drives defaults, bounds, the YAML file, the command line and
 * `gpumuxd --print-config` (the annotated sample). */
#ifndef GM_DAEMON_CONFIG_H
#define GM_DAEMON_CONFIG_H

#include "common/error.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

struct gm_config {
    char state_dir[PATH_MAX];
    char run_dir[PATH_MAX];
    char driver[8]; /* auto | nvml | sim */
    char gpusim_dir[PATH_MAX];
    char gpusim_config[PATH_MAX];
    char gpusim_state[PATH_MAX];
    char log_level[16];
    char placement[16]; /* binpack | spread, as configured */
    int spread;         /* placement, parsed by gm_config_finish: 1 spread, 0 bin-pack */
    char api_group[64];
    char admin_group[64];    /* "": only root changes GPU modes, MPS and VM claims */
    uint64_t memory_reserve; /* bytes kept free on every GPU for the driver */
    long long stop_timeout_s;
    long long poll_ms;
    char mps_control[PATH_MAX];
    long long mps_exclusive;
    char interposer[PATH_MAX];
    uint64_t memory_check_slack; /* bytes per process the driver counts beyond allocations */
    long long api_conns_per_user;
    long long api_conns_max;
    long long api_timeout_s;
    char log_dir[PATH_MAX];
    uint64_t log_max_size;
    long long log_max_files;
    char cgroup_root[PATH_MAX]; /* auto | none | a directory; resolved by gm_daemon_open */
};

/* X(key, type, field, default, min, max, help). type: S (string), Z (size), I (integer). Sizes
 * and integers are checked against min and max (a size only when max > 0). */
#define GM_CONFIG_KEYS(X)                                                                          \
    X("state_dir", S, state_dir, "/var/lib/gpumux", 0, 0,                                          \
      "directory of the state database (state.db)")                                                \
    X("run_dir", S, run_dir, "/run/gpumux", 0, 0,                                                  \
      "directory of the API socket (gpumux.sock), MPS pipes and launch records")                   \
    X("driver", S, driver, "auto", 0, 0,                                                           \
      "auto | nvml | sim: the real driver, gpusim, or the real one when it reports a GPU")         \
    X("gpusim_dir", S, gpusim_dir, "", 0, 0,                                                       \
      "directory holding gpusim's libnvidia-ml.so.1 (default: ../lib/gpusim beside gpumuxd)")      \
    X("gpusim_config", S, gpusim_config, "", 0, 0,                                                 \
      "gpusim's device description (YAML); empty: two Tesla T4")                                   \
    X("gpusim_state", S, gpusim_state, "", 0, 0,                                                   \
      "gpusim's shared device state file (default: gpusim's, /dev/shm/gpumux-gpusim)")             \
    X("log_level", S, log_level, "info", 0, 0, "debug | info | warning | error")                   \
    X("placement", S, placement, "binpack", 0, 0,                                                  \
      "binpack | spread: where a workload without --gpu goes")                                     \
    X("api_group", S, api_group, "gpumux", 0, 0,                                                   \
      "members of this group (and root) may create workloads and change their own")                \
    X("admin_group", S, admin_group, "", 0, 0,                                                     \
      "members of this group (and root) may change GPU modes, MPS and VM claims (empty: root "     \
      "only)")                                                                                     \
    X("memory_reserve", Z, memory_reserve, "0", 0, 0,                                              \
      "memory kept out of the memory limits on every GPU (e.g. 256M)")                             \
    X("stop_timeout", I, stop_timeout_s, "10", 0, 3600,                                            \
      "seconds between SIGTERM and SIGKILL when a workload is stopped")                            \
    X("poll_interval_ms", I, poll_ms, "200", 10, 10000,                                            \
      "how often workloads are checked, in milliseconds")                                          \
    X("mps_control", S, mps_control, "", 0, 0,                                                     \
      "the nvidia-cuda-mps-control binary (default: gpusim's with the sim driver, else PATH)")     \
    X("mps_exclusive", I, mps_exclusive, "0", 0, 1,                                                \
      "1: set the compute mode to EXCLUSIVE_PROCESS while MPS runs on a GPU (needs root)")         \
    X("interposer", S, interposer, "", 0, 0,                                                       \
      "libgpumux.so, preloaded into limited workloads (default: ../lib/libgpumux.so beside "       \
      "gpumuxd)")                                                                                  \
    X("memory_check_slack", Z, memory_check_slack, "512M", 0, 0,                                   \
      "memory the driver may show per process beyond its allocations (contexts, modules) before "  \
      "the memory check calls a workload over its limit")                                          \
    X("api_max_connections_per_user", I, api_conns_per_user, "32", 1, 4096,                        \
      "open API connections one user other than root may hold; more are refused at once")          \
    X("api_max_connections", I, api_conns_max, "512", 1, 16384,                                    \
      "open API connections of all users but root together (root has 64 more of its own)")         \
    X("api_timeout", I, api_timeout_s, "10", 1, 3600,                                              \
      "seconds an API connection may wait for its request (or the next) before it is closed")      \
    X("log_dir", S, log_dir, "/var/log/gpumux", 0, 0,                                              \
      "directory of the workload logs NAME.log, apart from state_dir so that logs cannot fill "    \
      "the database's disk")                                                                       \
    X("log_max_size", Z, log_max_size, "10M", 4096, 1LL << 40,                                     \
      "a workload's log is rotated at this size (4K to 1T)")                                       \
    X("log_max_files", I, log_max_files, "3", 0, 100,                                              \
      "rotated logs kept per workload (NAME.log.1..N); a log takes at most "                       \
      "log_max_size x (log_max_files + 1)")                                                        \
    X("cgroup_root", S, cgroup_root, "auto", 0, 0,                                                 \
      "parent of the per-launch cgroups: auto (MOUNT/gpumux on the cgroup2 mount, else the v1 "    \
      "pids or freezer hierarchy), a path (relative: under that mount), or none (lock-only "       \
      "tracking, which a workload can escape)")

void gm_config_defaults(struct gm_config *c);
/* Sets one key from text; errors name the key and the source ("--placement", "FILE:3"). */
int gm_config_set(struct gm_config *c, const char *key, const char *value, const char *source,
                  struct gm_error *err);
/* Reads a YAML mapping of the keys above; unknown keys and bad values are refused. */
int gm_config_load(struct gm_config *c, const char *path, struct gm_error *err);
/* Checks values that depend on each other and fills derived defaults. */
int gm_config_finish(struct gm_config *c, const char *exe_dir, struct gm_error *err);
void gm_config_print(const struct gm_config *c, FILE *out);

#endif
