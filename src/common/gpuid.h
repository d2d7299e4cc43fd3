/* A GPU id as users give it: an index, a UUID or a unique prefix of one ("GPU-910a", as
 * CUDA_VISIBLE_DEVICES takes it), a PCI bus id or nvidia-smi's short form of it
 * ("2C74:00:00.0"); blanks around it are ignored. One rule for the daemon (admission, modes,
 * VMs) and the CLI (smi -i). */
#ifndef GM_COMMON_GPUID_H
#define GM_COMMON_GPUID_H

#include "common/error.h"

#include <stddef.h>

struct gm_gpu_id {
    int idx;
    const char *uuid, *pci_bus_id;
};

/* The GPU of gpus[0..n) that id names: 0 and *out its position, or -GM_ENOTFOUND with a
 * message that lists the GPUs (or says the UUID prefix names several). */
int gm_gpu_id_find(const struct gm_gpu_id *gpus, size_t n, const char *id, size_t *out,
                   struct gm_error *err);

#endif
