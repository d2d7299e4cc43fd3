/* Records for the tests of pure decisions: two Tesla T4 GPU records, as gpumuxd's inventory
 * writes them for gpusim's default node. */
#ifndef GM_TEST_RECORDS_H
#define GM_TEST_RECORDS_H

#include "common/parse.h"
#include "daemon/model.h"

#include <stdio.h>
#include <string.h>

#define T4_MEM (15109 * GM_MIB)

static inline void t_two_t4(struct gm_gpu_rec gpus[2])
{
    memset(gpus, 0, 2 * sizeof(gpus[0]));
    for (int i = 0; i < 2; i++) {
        gpus[i].idx = i;
        snprintf(gpus[i].uuid, sizeof(gpus[i].uuid), "GPU-0000000%d-aaaa-bbbb-cccc-dddddddddddd",
                 i);
        snprintf(gpus[i].name, sizeof(gpus[i].name), "Tesla T4");
        snprintf(gpus[i].pci_bus_id, sizeof(gpus[i].pci_bus_id),
                 i ? "0000E00B:00:00.0" : "00002C74:00:00.0");
        gpus[i].memory_total = T4_MEM;
        gpus[i].present = 1;
    }
}

#endif
