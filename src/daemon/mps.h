/* The MPS manager: one NVIDIA MPS control daemon per GPU in mps mode, each with its own pipe
 * and log directories under RUN_DIR/mps/UUID, driven through the nvidia-cuda-mps-control
 * client protocol (commands on its stdin), so the same code drives NVIDIA's binary and
 * gpusim's. */
#ifndef GM_DAEMON_MPS_H
#define GM_DAEMON_MPS_H

#include "daemon/daemon.h"

struct gm_mps_status {
    int running;
    int control_pid;
    char pipe_dir[PATH_MAX];
    char log_dir[PATH_MAX];
    char servers[256];    /* get_server_list, space separated */
    char default_pct[32]; /* get_default_active_thread_percentage */
};

/* The manager's memory (control daemon pids, compute modes it changed, retry times), keyed
 * by GPU UUID; d->mps. */
int gm_mps_new(struct gm_mps **out);
void gm_mps_free(struct gm_mps *m);
/* RUN_DIR/mps/UUID/{pipe,log}; -GM_EINVAL when the paths do not fit. */
int gm_mps_dirs(const struct gm_daemon *d, const struct gm_gpu_rec *g, char *pipe, char *log,
                size_t len);
/* None of the functions below may be called with d->lock held: they run the control program
 * and wait for it (up to 10 s). */
/* Starts (or finds running) the control daemon of g and applies its defaults; o says what was
 * done. */
int gm_mps_start(struct gm_daemon *d, const struct gm_gpu_rec *g, struct gm_mps_outcome *o,
                 struct gm_error *err);
/* Quits the control daemon of g (its servers end with it), killing it when it does not quit. */
int gm_mps_stop(struct gm_daemon *d, const struct gm_gpu_rec *g, struct gm_mps_outcome *o);
/* Sends one command; out receives the answer. */
int gm_mps_command(struct gm_daemon *d, const struct gm_gpu_rec *g, const char *cmd, char *out,
                   size_t len, struct gm_error *err);
int gm_mps_status(struct gm_daemon *d, const struct gm_gpu_rec *g, struct gm_mps_status *st);
/* Restarts control daemons of GPUs in mps mode that are not running (not of GPUs whose mode is
 * changing); records an event for each. at_start: the daemon starts (after a reboot nothing
 * runs). Takes d->lock only to read the GPUs and to record. */
void gm_mps_check(struct gm_daemon *d, int at_start);

#endif
