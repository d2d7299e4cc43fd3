/* Workload supervision through a per-launch monitor process (as conmon and containerd-shim do).
 *
 * The daemon starts `gpumux-monitor` for each launch. The monitor owns the workload: it starts
 * it in a new session with stdout/stderr a pipe that the monitor copies into the bounded log,
 * waits for it, and records its exit status in a file, so the daemon holds no pipe the workload
 * could die on and a workload outlives a daemon crash with its output and exit status intact.
 *
 * Each launch has a directory DIR = RUN_DIR/workloads/NAME/LAUNCH_ID (0700, the daemon's) holding:
 *   lock    flock()ed before the monitor is forked and held by the monitor alone (close-on-exec
 *           for the workload): held exactly as long as the monitor lives.
 *   cgroup  the path of the launch's cgroup, when it has one (written before the cgroup is made).
 *           The workload joins it before it drops privileges and execs, and everything it forks
 *           stays in it: "populated" means some process of the launch lives.
 *   wlock   only without a cgroup: the workload's own lock, its fd 3 (a file description apart
 *           from the monitor's, so releasing it releases only the workload's). Weaker: a
 *           workload that closes or unlocks it is no longer seen once its monitor is gone.
 *   env     the workload's environment (0600, entries separated by NUL), written by the daemon
 *           and read and removed by the monitor, which applies it only in the workload after it
 *           became its user: the monitor itself runs with the daemon's own environment.
 *   pid     "MONITOR_PID MONITOR_START CHILD_PID CHILD_START\n", written by the monitor
 *           (temp file + rename) once the workload is started.
 *   exit    "EXIT_CODE SIGNAL FINISHED_MS\n", written by the monitor (temp file + fsync + rename)
 *           after the workload ended and, with a cgroup, after every process left in it was
 *           killed: then "exit file present" means nothing of the launch runs.
 */
#ifndef GM_DAEMON_SUPERVISE_H
#define GM_DAEMON_SUPERVISE_H

#include "common/error.h"
#include "common/proc.h"

#include <stdint.h>
#include <sys/types.h>

/* The monitor sets LD_PRELOAD to this variable's value in the workload only. */
#define GM_MONITOR_PRELOAD_ENV "GPUMUX_LD_PRELOAD"

/* A workload's log (see src/monitor/logsink.h): NAME.log, and at most log_max_files rotated files
 * NAME.log.1 (the newest) .. NAME.log.N, each at most log_max_size bytes. */
#define GM_LOG_FILES_MAX         100
#define GM_LOG_MAX_SIZE_DEFAULT  (10ULL << 20)
#define GM_LOG_MAX_FILES_DEFAULT 3
/* How long the monitor keeps reading the workload's output after the workload ended, while
 * processes it left behind still hold its standard output open, before writing the exit file. */
#define GM_MONITOR_DRAIN_MS 500

struct gm_launch {
    const char *monitor_path; /* the gpumux-monitor binary */
    const char *dir;          /* the launch directory (created, 0700, parents too) */
    const char *log_path;     /* NAME.log, written by the monitor from the workload's pipe */
    uint64_t log_max_size;    /* 0: the defaults above for both */
    int log_max_files;
    char *const *argv; /* argv[0] is looked up in PATH of envp */
    char *const *envp; /* the whole environment of the workload (never the monitor's) */
    uid_t uid;         /* run as this user when the daemon is root and uid != 0 */
    gid_t gid;
    const char *cwd;    /* NULL: "/" */
    const char *cgroup; /* the launch's cgroup, made here; NULL: lock-only tracking */
};

/* Starts the monitor, with the caller's own environment. Returns once the monitor runs, with its
 * pid and start time. When the command cannot be executed (not found, not executable) the monitor
 * writes it to the log and records exit code 127 (126 for permission), as a shell does;
 * gm_sup_launch itself fails only when the monitor cannot be started. */
int gm_sup_launch(const struct gm_launch *l, pid_t *monitor_pid, uint64_t *monitor_start,
                  struct gm_error *err);

enum gm_sup_state {
    GM_SUP_ALIVE,  /* the monitor lives (its lock is held) or a process of the workload does
                      (its cgroup is populated, or without one its lock is held) */
    GM_SUP_EXITED, /* exit file present */
    GM_SUP_GONE,   /* nothing holds the lock and no exit file: nothing runs, status unknown */
};

struct gm_sup_status {
    enum gm_sup_state state;
    pid_t monitor_pid; /* 0 when the pid file is not written yet */
    uint64_t monitor_start;
    pid_t pid; /* the workload's pid (its process group and session id), 0 when unknown */
    uint64_t pid_start;
    int exit_code; /* valid for GM_SUP_EXITED */
    int exit_signal;
    int64_t finished_ms;
};

/* Reads the state of the launch in dir without changing anything. */
int gm_sup_poll(const char *dir, struct gm_sup_status *out, struct gm_error *err);
/* Sends sig to every process of the launch: with a cgroup to each process in it (SIGKILL: the
 * whole cgroup, waiting until it is empty), else to the workload's process group when it is
 * alive (checked against pid_start). */
int gm_sup_signal(const char *dir, int sig, struct gm_error *err);
/* Removes the launch directory and its cgroup (after its exit was recorded). GM_EBUSY while
 * anything of the launch lives: the monitor in its last moments, or processes the workload left
 * behind (in its cgroup, or holding its lock). */
int gm_sup_remove(const char *dir, struct gm_error *err);

#endif
