/* The daemon's view of the GPU driver: NVML loaded with dlopen by soname, every symbol looked up
 * through a typed pointer. Works the same on a real driver and on gpusim. */
#ifndef GM_DAEMON_GPU_H
#define GM_DAEMON_GPU_H

#include "common/error.h"

#include <limits.h>
#include <stdint.h>

#define GM_GPU_MAX_PROCS 128

enum gm_driver_kind { GM_DRIVER_NVML, GM_DRIVER_SIM };
const char *gm_driver_kind_name(enum gm_driver_kind k); /* "nvml" (a real driver), "sim" */

struct gm_driver_info {
    enum gm_driver_kind kind;
    char driver_version[80];
    char nvml_version[80];
    char cuda_version[16];  /* "12.2" */
    char library[PATH_MAX]; /* the libnvidia-ml.so.1 that was loaded */
    char sim_dir[PATH_MAX]; /* gpusim's library directory when kind is "sim", else "" */
};

struct gm_gpu_proc {
    unsigned pid;
    char type[4];         /* "C", "G", "M+C", "C+G" as nvidia-smi shows it */
    uint64_t used_memory; /* bytes; UINT64_MAX when NVML does not know */
    char name[256];
    int sm_util, mem_util; /* percent over the driver's last samples; -1 when it has none */
};

/* Live state of one GPU. Numbers NVML does not support on the device are -1 (nvidia-smi: N/A). */
struct gm_gpu_live {
    int index;
    char uuid[96];
    char name[96];
    char pci_bus_id[32]; /* "00002C74:00:00.0" as nvidia-smi prints it (8-digit domain) */
    uint64_t memory_total, memory_used, memory_free; /* bytes */
    int util_gpu, util_memory;                       /* percent */
    int temperature;                                 /* C */
    int power_draw_mw, power_limit_mw;
    int pstate;       /* 0..15 */
    int compute_mode; /* NVML value: 0 Default, 2 Prohibited, 3 Exclusive_Process */
    int persistence;  /* 1 on, 0 off */
    int display_active;
    int fan; /* percent */
    long long ecc_uncorrected_volatile;
    int mig_mode; /* 1 enabled, 0 disabled */
    int cc_major, cc_minor;
    /* Read for nvidia-smi's query fields and -q: -1 or "" when the driver does not say. */
    char serial[64], vbios[64];
    int minor_number;
    int clock_sm, clock_mem, clock_graphics; /* MHz */
    int clock_max_sm, clock_max_mem, clock_max_graphics;
    int pcie_gen, pcie_width, pcie_gen_max, pcie_width_max;
    int util_encoder, util_decoder; /* percent */
    int power_mgmt_limit_mw;
    long long memory_driver_reserved; /* bytes the driver keeps for itself */
    int ecc_mode;                     /* 1 on, 0 off */
    long long clocks_event_reasons;   /* nvmlClocksEventReason bits */
    int temperature_memory;           /* C, from the field values */
    int power_average_mw;             /* over one second, from the field values */
    int nprocs;
    struct gm_gpu_proc procs[GM_GPU_MAX_PROCS];
};

/* mode: "auto", "nvml" or "sim". sim_dir: gpusim's directory (holding libnvidia-ml.so.1).
 * auto takes the real driver when libnvidia-ml.so.1 loads and reports at least one GPU, else
 * gpusim. Fills info. Idempotent per process: a second call fails with -GM_EINVAL. */
int gm_gpu_open(const char *mode, const char *sim_dir, struct gm_driver_info *info,
                struct gm_error *err);
void gm_gpu_close(void);
int gm_gpu_count(void);
/* -GM_EDRIVER when the driver fails the GPU (NVML_ERROR_GPU_IS_LOST: on gpusim, a damaged state
 * file): the first such failure of a GPU is logged as a warning, and its recovery once. */
int gm_gpu_query(int index, struct gm_gpu_live *out, struct gm_error *err);
/* Compute mode as NVML numbers; needs root on a real driver. */
int gm_gpu_set_compute_mode(int index, int mode, struct gm_error *err);
const char *gm_compute_mode_name(int mode);  /* "Default", "Exclusive_Process", "Prohibited" */
const char *gm_compute_mode_short(int mode); /* "Default", "E. Process", "Prohibited" */

#endif
