/* gpusimctl: look at and drive the simulated device. */
#ifndef GM_GPUSIM_GPUSIMCTL_H
#define GM_GPUSIM_GPUSIMCTL_H

#include "gpusim/state/state.h"

#include <stdint.h>

/* nvidia-smi's Type column for a set of process flags: "C", "M+C", "G", ... */
const char *gm_sim_proc_type(uint32_t flags);
/* Print the whole state as JSON on stdout. */
int gm_sim_show(struct gm_sim_state *st, const char *path, struct gm_error *err);
/* `gpusimctl sysfs create|kernel ...` (argv[0] is "sysfs"): a simulated sysfs for VM passthrough
 * and the kernel that honours writes to it. Returns the exit status. */
int gm_sim_sysfs_main(int argc, char **argv);

#endif
