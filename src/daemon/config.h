/* Daemon configuration: one table drives the defaults, the bounds, the YAML file, the command
 * line, `gpumuxd --print-config` (the effective settings, a configuration file itself) and the
 * settings section of docs/config.md (`gpumuxd --print-config-doc`). */
#ifndef GM_DAEMON_CONFIG_H
#define GM_DAEMON_CONFIG_H

#include "common/error.h"

#include <limits.h>
#include <stdbool.h>
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
    bool mps_exclusive;
    char interposer[PATH_MAX];
    uint64_t memory_check_slack; /* bytes per process the driver counts beyond allocations */
    long long api_conns_per_user;
    long long api_conns_max;
    long long api_timeout_s;
    char log_dir[PATH_MAX];
    uint64_t log_max_size;
    long long log_max_files;
    char cgroup_root[PATH_MAX]; /* auto | none | a directory; resolved by gm_daemon_open */
    char sysfs_root[PATH_MAX];  /* vfio: the sysfs to move GPUs' functions through */
    char dev_root[PATH_MAX];    /* vfio: where vfio/GROUP appears */
};

/* X(key, type, field, default, min, max, help): one row per setting, in the order
 * gpumuxd --print-config and docs/config.md list them. type:
 *   S  text, at most sizeof(field) - 1 bytes;
 *   P  a path (empty: the default the help describes; min 1: it may not be empty), made absolute
 *      and normalised when it is set: a relative path is taken from the configuration file's
 *      directory, or on the command line from the working directory;
 *   E(a | b | c)  one of the words a, b and c;
 *   Z  a size (512M; K, M, G and T are powers of 1024), within min and max when max > 0;
 *   I  a whole number within min and max;
 *   B  on or off: true or false, yes or no, on or off, 1 or 0 (each also Capitalised or UPPER).
 * help is what a user reads: full sentences. */
#define GM_CONFIG_KEYS(X)                                                                          \
    X("state_dir", P, state_dir, "/var/lib/gpumux", 1, 0,                                          \
      "The directory of the state database, state.db, which records the GPUs, their modes, the "   \
      "workloads and the events. gpumuxd creates it (mode 0750) when it is missing, and refuses "  \
      "to start when another user could write to it or to a directory above it (see "              \
      "docs/security.md).")                                                                        \
    X("run_dir", P, run_dir, "/run/gpumux", 1, 0,                                                  \
      "The directory of the API socket, gpumux.sock, and of what lives as long as the machine is " \
      "up: the launch records of running workloads, their limits regions and the MPS pipe and "    \
      "log directories. It is created (mode 0755) when missing and, like state_dir, must be "      \
      "writable by no other user.")                                                                \
    X("driver", E(auto | nvml | sim), driver, "auto", 0, 0,                                        \
      "The GPU driver: nvml, NVIDIA's (libnvidia-ml.so.1); sim, gpusim, the simulated driver in "  \
      "gpusim_dir; auto, NVIDIA's when it loads and reports a GPU, else gpusim.")                  \
    X("gpusim_dir", P, gpusim_dir, "", 0, 0,                                                       \
      "The directory of gpusim's libraries (libnvidia-ml.so.1, libcuda.so.1) and MPS programs, "   \
      "used with the sim driver. Empty: ../lib/gpusim beside the gpumuxd program.")                \
    X("gpusim_config", P, gpusim_config, "", 0, 0,                                                 \
      "gpusim's device description, a YAML file (see docs/gpusim.md), given to gpusim and to the " \
      "workloads as GPUSIM_CONFIG. Empty: gpusim's own, two Tesla T4.")                            \
    X("gpusim_state", P, gpusim_state, "", 0, 0,                                                   \
      "gpusim's device state, the file that gpumuxd, its workloads and gpusimctl share (given to " \
      "them as GPUSIM_STATE). Empty: gpusim's default, /dev/shm/gpumux-gpusim, which NVML tools "  \
      "started by hand with gpusim's library find too.")                                           \
    X("log_level", E(debug | info | warning | error), log_level, "info", 0, 0,                     \
      "The least severity of the messages gpumuxd writes to its standard error.")                  \
    X("placement", E(binpack | spread), placement, "binpack", 0, 0,                                \
      "Where a workload started without --gpu goes: binpack, to the GPU with the least memory "    \
      "left that still fits it, keeping other GPUs free for large workloads; spread, to the GPU "  \
      "with the fewest workloads.")                                                                \
    X("api_group", S, api_group, "gpumux", 0, 0,                                                   \
      "Members of this group, and root, may create workloads and change or remove their own. "     \
      "Anyone who can reach the socket may read.")                                                 \
    X("admin_group", S, admin_group, "", 0, 0,                                                     \
      "Members of this group, and root, may also change GPU modes, start and stop MPS and claim "  \
      "GPUs for VMs. Empty: only root may.")                                                       \
    X("memory_reserve", Z, memory_reserve, "0", 0, 0,                                              \
      "Memory kept back on every GPU for the driver and for programs gpumux does not run: the "    \
      "memory limits of the workloads on a GPU add up to at most its memory less this.")           \
    X("stop_timeout", I, stop_timeout_s, "10", 0, 3600,                                            \
      "Seconds from SIGTERM to SIGKILL when a workload is stopped. With 0, SIGKILL follows at "    \
      "the next check (poll_interval_ms).")                                                        \
    X("poll_interval_ms", I, poll_ms, "200", 10, 10000,                                            \
      "How often, in milliseconds, gpumuxd checks its workloads: exits, restarts, stops under "    \
      "way and memory use.")                                                                       \
    X("mps_control", P, mps_control, "", 0, 0,                                                     \
      "The nvidia-cuda-mps-control program that starts MPS on a GPU. Empty: gpusim's with the "    \
      "sim driver, else the one found in PATH.")                                                   \
    X("mps_exclusive", B, mps_exclusive, "false", 0, 0,                                            \
      "Whether starting MPS on a GPU also sets its compute mode to EXCLUSIVE_PROCESS, so that "    \
      "only the MPS server may use it, as NVIDIA advises; stopping MPS sets it back to DEFAULT. "  \
      "Changing the compute mode needs root.")                                                     \
    X("interposer", P, interposer, "", 0, 0,                                                       \
      "libgpumux.so, preloaded into each workload with a memory limit or a compute cap to "        \
      "enforce them inside its processes. Empty: ../lib/libgpumux.so beside the gpumuxd "          \
      "program. Without it such workloads run with their limits unenforced, and the log says "     \
      "so.")                                                                                       \
    X("memory_check_slack", Z, memory_check_slack, "512M", 0, 0,                                   \
      "Memory the driver may show for each process of a workload beyond the workload's memory "    \
      "limit (its CUDA context and modules, which the limit does not count) before the memory "    \
      "check calls the workload over its limit.")                                                  \
    X("api_max_connections_per_user", I, api_conns_per_user, "32", 1, 4096,                        \
      "Open API connections one user other than root may hold at once; further ones are "          \
      "refused at once.")                                                                          \
    X("api_max_connections", I, api_conns_max, "512", 1, 16384,                                    \
      "Open API connections of all users but root together. Root has 64 more of its own, so "      \
      "that it can always connect.")                                                               \
    X("api_timeout", I, api_timeout_s, "10", 1, 3600,                                              \
      "Seconds an API connection may wait for its request, or between requests on a kept-alive "   \
      "connection, before it is closed.")                                                          \
    X("log_dir", P, log_dir, "/var/log/gpumux", 1, 0,                                              \
      "The directory of the workloads' logs, NAME.log and its rotated files, apart from "          \
      "state_dir so that logs cannot fill the database's disk. It is created (mode 0750) when "    \
      "missing and, like state_dir, must be writable by no other user.")                           \
    X("log_max_size", Z, log_max_size, "10M", 4096, 1LL << 40,                                     \
      "The size at which a workload's log is rotated: NAME.log becomes NAME.log.1, the older "     \
      "ones move up by one, and a new NAME.log begins.")                                           \
    X("log_max_files", I, log_max_files, "3", 0, 100,                                              \
      "Rotated logs kept per workload, NAME.log.1 to NAME.log.N; the oldest beyond them is "       \
      "removed. A workload's log thus takes at most log_max_size x (log_max_files + 1); with 0 "   \
      "a full log starts again empty.")                                                            \
    X("cgroup_root", S, cgroup_root, "auto", 0, 0,                                                 \
      "The parent of the cgroups the launches run in, by which gpumuxd finds and stops every "     \
      "process of a workload. auto: gpumux on the cgroup2 mount, else in the v1 pids or freezer "  \
      "hierarchy, or none (the log says why) when neither works. A path (relative: under the "     \
      "cgroup mount) must work, or gpumuxd does not start. none: launches are tracked by their "   \
      "locks only, which a workload can escape.")                                                  \
    X("sysfs_root", P, sysfs_root, "/sys", 1, 0,                                                   \
      "The sysfs through which vm attach moves a GPU's PCI functions to vfio-pci and vm detach "   \
      "gives them back (bus/pci/devices, bus/pci/drivers, kernel/iommu_groups). A tree laid out "  \
      "by gpusimctl sysfs create, with its simulated kernel running, stands in for it on gpusim; " \
      "with the sim driver and this left at /sys, vm attach records the claim only and says "      \
      "so.")                                                                                       \
    X("dev_root", P, dev_root, "/dev", 1, 0,                                                       \
      "The directory holding vfio/GROUP, the node of an IOMMU group bound to vfio-pci, which vm "  \
      "attach checks appears and vm detach checks no running VM holds open.")

void gm_config_defaults(struct gm_config *c);
/* Sets one key (state_dir, or state-dir as on the command line) from text; errors name the
 * source, the key, the value and what is allowed ("--stop-timeout: stop_timeout: 99999 is out
 * of range (0..3600)"). A relative path is taken from the working directory. */
int gm_config_set(struct gm_config *c, const char *key, const char *value, const char *source,
                  struct gm_error *err);
/* Reads a YAML mapping of the keys above; unknown keys and bad values are refused, with the
 * file and line. A relative path is taken from the file's directory. */
int gm_config_load(struct gm_config *c, const char *path, struct gm_error *err);
/* Checks values that depend on each other and fills derived defaults. */
int gm_config_finish(struct gm_config *c, const char *exe_dir, struct gm_error *err);
/* Every setting once, with its value, as a commented YAML file that loads back the same. */
void gm_config_print(const struct gm_config *c, FILE *out);
/* The settings section of docs/config.md (Markdown), from the table. */
void gm_config_describe(FILE *out);
/* The configuration file `make install` ships: gm_config_print's form of the defaults, each
 * setting commented out (`gpumuxd --print-config-template`). */
void gm_config_print_template(FILE *out);

#endif
