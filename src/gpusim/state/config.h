/* gpusim's config file: which driver and which GPUs to simulate. Read once, when the state file
 * is created. */
#ifndef GM_GPUSIM_CONFIG_H
#define GM_GPUSIM_CONFIG_H

#include "common/error.h"
#include "gpusim/state/state.h"

struct gm_sim_config {
    char driver_version[80];
    char cuda_version[16];
    int cuda_version_int;
    int ngpus;
    struct gm_sim_gpu_info gpus[GM_SIM_MAX_GPUS];
};

/* Two Tesla T4s on driver 535.104.05, CUDA 12.2. */
void gm_sim_config_defaults(struct gm_sim_config *cfg);
/* The defaults for GPU index i, which a config's GPU entry starts from. */
void gm_sim_config_gpu_defaults(int index, struct gm_sim_gpu_info *gpu);
/* Parse path over the defaults. Unknown keys, bad values and malformed YAML are refused with a
 * message "PATH:LINE: ..." naming the key. */
int gm_sim_config_load(const char *path, struct gm_sim_config *cfg, struct gm_error *err);

#endif
