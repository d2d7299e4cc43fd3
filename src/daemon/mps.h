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

void gm_mps_dirs(const struct gm_daemon *d, const struct gm_gpu_rec *g, char *pipe, char *log,
                 size_t len);
/* Starts (or finds running) the control daemon of g and applies its defaults. Appends what it
 * did, in the manner of the appliance, to msgs. Caller holds d->lock. */
int gm_mps_start(struct gm_daemon *d, const struct gm_gpu_rec *g, char *msgs, size_t len,
                 struct gm_error *err);
/* Quits the control daemon of g (its servers end with it). Caller holds d->lock. */
int gm_mps_stop(struct gm_daemon *d, const struct gm_gpu_rec *g, char *msgs, size_t len,
                struct gm_error *err);
/* Sends one command; out receives the answer. */
int gm_mps_command(struct gm_daemon *d, const struct gm_gpu_rec *g, const char *cmd, char *out,
                   size_t len, struct gm_error *err);
int gm_mps_status(struct gm_daemon *d, const struct gm_gpu_rec *g, struct gm_mps_status *st);
/* Restarts control daemons of GPUs in mps mode that are not running; records an event for
 * each. Caller holds d->lock. at_start: the daemon starts (after a reboot nothing runs). */
void gm_mps_check(struct gm_daemon *d, int at_start);

#endif
