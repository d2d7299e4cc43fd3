/* Records for the tests of pure decisions: two Tesla T4 GPU records, as gpumuxd's inventory
 * writes them for gpusim's default node, and the workloads a test adds. */
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

/* The records a test decides on: two GPUs and up to 64 workloads, reset before each test
 * (TestSuite(..., .init = setup)). */
static struct gm_gpu_rec gpus[2];
static struct gm_workload_rec ws[64];
static size_t nws;

static inline void setup(void)
{
    t_two_t4(gpus);
    memset(ws, 0, sizeof(ws));
    nws = 0;
}

#endif
