/* Processes by pid and start time: the one place that reads /proc/PID/stat and the one rule for
 * "is this process still the one we knew".
 *
 * Async-signal-safe and fork-safe (open/read/close only, no stdio, no allocation), so the
 * daemon, the monitor, the interposer inside a workload (also between fork and exec) and gpusim
 * all use the same code. No dependency on the rest of gpumux. */
#ifndef GM_COMMON_PROC_H
#define GM_COMMON_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What is known of a (pid, start time) pair. */
enum gm_proc_state {
    GM_PROC_GONE,    /* no such process, a zombie, or the pid now belongs to another process */
    GM_PROC_SAME,    /* the process runs and its start time matches */
    GM_PROC_UNKNOWN, /* kill(pid, 0) finds a process, but its start time cannot be read
                        (hidepid, another pid namespace) or none was recorded */
};

/* Parses the text of /proc/PID/stat: the state letter (field 3) and the start time in clock
 * ticks since boot (field 22). Fields are counted from the last ')' because the command name
 * may hold spaces and parentheses. Returns 0 or -1. */
int gm_proc_parse_stat(const char *buf, size_t len, char *state, uint64_t *start);
/* Reads /proc/PID/stat. Returns 0, or -1 when it cannot be read. */
int gm_proc_stat(pid_t pid, char *state, uint64_t *start);
/* A process's parent, process group and session (fields 4, 5 and 6 of /proc/PID/stat). */
struct gm_proc_ids {
    pid_t ppid, pgrp, session;
};
int gm_proc_parse_ids(const char *buf, size_t len, struct gm_proc_ids *out); /* 0 or -1 */
int gm_proc_ids(pid_t pid, struct gm_proc_ids *out);                         /* 0 or -1 */
/* Start time of a live (not zombie) process, 0 when there is none or it cannot be read. */
uint64_t gm_proc_start_time(pid_t pid);
/* The one liveness rule. start 0 means "not recorded". */
enum gm_proc_state gm_proc_check(pid_t pid, uint64_t start);
/* May we act on pid as the process we recorded (signal it)? Only when it is certainly the
 * same: GM_PROC_SAME. */
static inline int gm_proc_alive(pid_t pid, uint64_t start)
{
    return gm_proc_check(pid, start) == GM_PROC_SAME;
}
/* May its resources (a limits slot, a reservation) be taken back? Only when it is certainly
 * gone: an unknown process is kept, so a workload cannot pass its limit by hiding its pids. */
static inline int gm_proc_gone(pid_t pid, uint64_t start)
{
    return gm_proc_check(pid, start) == GM_PROC_GONE;
}

#endif
