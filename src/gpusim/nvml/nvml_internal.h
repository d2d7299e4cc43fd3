/* Shared by the files of gpusim's libnvidia-ml.so.1. Only the NVML entry points and
 * gpusim_nvml_version are exported (see nvml.map). */
#ifndef GM_GPUSIM_NVML_INTERNAL_H
#define GM_GPUSIM_NVML_INTERNAL_H

#include "common/nvml_api.h"
#include "gpusim/state/state.h"

#define GM_SIM_API __attribute__((visibility("default")))

/* The one place where gpusim's own errors (0 or -GM_E*, as the state and the process tables
 * return them) become nvmlReturn_t. At nvmlInit every failure to attach the device state is
 * NVML_ERROR_DRIVER_NOT_LOADED; in a later call the code says what went wrong: a state file
 * that no longer reads as a valid one (-GM_EDRIVER, "damaged") is NVML_ERROR_GPU_IS_LOST. */
enum gm_sim_nvml_edge {
    GM_SIM_NVML_AT_INIT,
    GM_SIM_NVML_IN_CALL,
};
nvmlReturn_t gm_sim_nvml_from_gm(int rc, enum gm_sim_nvml_edge edge);

/* The marker a loader looks up to tell gpusim from a real driver: "gpusim <gpumux version>". */
GM_SIM_API const char *gpusim_nvml_version(void);

/* The device state while nvmlInit's reference count is above zero, else NULL: a private view
 * (state.h), never a mapping, as the daemon must survive anything another user writes into
 * the world-writable file. gm_sim_nvml_state is the header and static part as validated at
 * nvmlInit (private memory); every dynamic reading goes through the view. */
struct gm_sim_view *gm_sim_nvml_view(void);
const struct gm_sim_state *gm_sim_nvml_state(void);
/* NVML_ERROR_UNINITIALIZED or NVML_ERROR_INVALID_ARGUMENT for a bad handle, else the index. */
nvmlReturn_t gm_sim_nvml_index(nvmlDevice_t dev, int *index);
/* Static properties of dev: immutable once the state exists, so read without the lock. */
nvmlReturn_t gm_sim_nvml_info(nvmlDevice_t dev, const struct gm_sim_gpu_info **info);
/* A pruned, consistent copy of dev's state; g or r may be NULL. */
nvmlReturn_t gm_sim_nvml_snapshot(nvmlDevice_t dev, struct gm_sim_gpu *g, struct gm_sim_reading *r);
/* Copy a string into an NVML buffer: INVALID_ARGUMENT for NULL, INSUFFICIENT_SIZE when it
 * does not fit with its terminator. */
nvmlReturn_t gm_sim_nvml_copy(char *dst, unsigned int length, const char *src);

#endif
