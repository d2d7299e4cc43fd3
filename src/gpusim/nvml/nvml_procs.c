/* Process lists, per-process utilisation and process names of gpusim's libnvidia-ml.so.1. */
#include "gpusim/nvml/nvml_internal.h"

#include "common/clock.h"

#include <stdlib.h>
#include <string.h>

/* Which table entries each list shows: the MPS server is an ordinary compute process, an MPS
 * client is in both the compute and the MPS list (nvidia-smi's "M+C"). */
#define LIST_COMPUTE  (GM_SIM_PROC_COMPUTE | GM_SIM_PROC_MPS_SERVER)
#define LIST_GRAPHICS GM_SIM_PROC_GRAPHICS
#define LIST_MPS      GM_SIM_PROC_MPS_CLIENT

/* NVML's contract: *infoCount is the room in infos on entry and the number of entries on
 * return. Too little room (including a size query with *infoCount == 0, where infos may be NULL)
 * gives INSUFFICIENT_SIZE with *infoCount set to the number needed; none running is SUCCESS
 * with 0. */
static nvmlReturn_t list(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos,
                         uint32_t mask)
{
    struct gm_sim_gpu g;
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS && (infoCount == NULL || (infos == NULL && *infoCount != 0)))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        rc = gm_sim_nvml_snapshot(device, &g, NULL);
    if (rc != NVML_SUCCESS)
        return rc;
    unsigned need = 0;
    for (uint32_t i = 0; i < g.nprocs; i++)
        if (g.procs[i].flags & mask)
            need++;
    if (need > *infoCount) {
        *infoCount = need;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned n = 0;
    for (uint32_t i = 0; i < g.nprocs; i++) {
        if (!(g.procs[i].flags & mask))
            continue;
        infos[n].pid = g.procs[i].pid;
        infos[n].usedGpuMemory = g.procs[i].used_memory;
        infos[n].gpuInstanceId = NVML_GPU_INSTANCE_ID_INVALID;
        infos[n].computeInstanceId = NVML_GPU_INSTANCE_ID_INVALID;
        n++;
    }
    *infoCount = n;
    return NVML_SUCCESS;
}

#define PROCESS_LIST(fn, type, mask)                                                               \
    GM_SIM_API nvmlReturn_t fn(nvmlDevice_t device, unsigned int *infoCount, type *infos)          \
    {                                                                                              \
        return list(device, infoCount, infos, mask);                                               \
    }
PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses_v3, nvmlProcessInfo_t, LIST_COMPUTE)
PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses_v2, nvmlProcessInfo_v2_t, LIST_COMPUTE)
PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses_v3, nvmlProcessInfo_t, LIST_GRAPHICS)
PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses_v2, nvmlProcessInfo_v2_t, LIST_GRAPHICS)
PROCESS_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v3, nvmlProcessInfo_t, LIST_MPS)
PROCESS_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v2, nvmlProcessInfo_v2_t, LIST_MPS)

/* The first versions' entries carry only pid and memory. */
static nvmlReturn_t list_v1(nvmlDevice_t device, unsigned int *infoCount,
                            nvmlProcessInfo_v1_t *infos, uint32_t mask)
{
    nvmlProcessInfo_t full[GM_SIM_MAX_PROCS];
    unsigned n = infoCount == NULL ? 0 : *infoCount;
    if (n > GM_SIM_MAX_PROCS)
        n = GM_SIM_MAX_PROCS;
    nvmlReturn_t rc =
        list(device, infoCount == NULL ? NULL : &n, infos == NULL ? NULL : full, mask);
    if (infoCount != NULL && (rc == NVML_SUCCESS || rc == NVML_ERROR_INSUFFICIENT_SIZE))
        *infoCount = n;
    for (unsigned i = 0; rc == NVML_SUCCESS && i < n; i++) {
        infos[i].pid = full[i].pid;
        infos[i].usedGpuMemory = full[i].usedGpuMemory;
    }
    return rc;
}
#define PROCESS_LIST_V1(fn, mask)                                                                  \
    GM_SIM_API nvmlReturn_t fn(nvmlDevice_t device, unsigned int *infoCount,                       \
                               nvmlProcessInfo_v1_t *infos)                                        \
    {                                                                                              \
        return list_v1(device, infoCount, infos, mask);                                            \
    }
PROCESS_LIST_V1(nvmlDeviceGetComputeRunningProcesses, LIST_COMPUTE)
PROCESS_LIST_V1(nvmlDeviceGetGraphicsRunningProcesses, LIST_GRAPHICS)
PROCESS_LIST_V1(nvmlDeviceGetMPSComputeRunningProcesses, LIST_MPS)

/* As the real driver: one sample per process that ran during the last complete sampling
 * period (GM_SIM_UTIL_PERIOD_NS), smUtil the share of that period its kernels ran, timeStamp
 * the period's end in CPU time (CLOCK_REALTIME microseconds), returned when newer than
 * lastSeenTimeStamp. A NULL buffer asks for the count, answered with INSUFFICIENT_SIZE as the
 * real library does; no newer sample is NOT_FOUND. memUtil, encUtil and decUtil are 0: memory
 * bandwidth and the video engines are not simulated. */
GM_SIM_API nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                                        nvmlProcessUtilizationSample_t *utilization,
                                                        unsigned int *processSamplesCount,
                                                        unsigned long long lastSeenTimeStamp)
{
    struct gm_sim_gpu g;
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS && processSamplesCount == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        rc = gm_sim_nvml_snapshot(device, &g, NULL);
    if (rc != NVML_SUCCESS)
        return rc;
    /* Period ends are on the monotonic clock; the offset to CPU time is rounded to a
     * millisecond so that one period keeps one timestamp across calls. */
    uint64_t mono = gm_mono_ns();
    uint64_t offset_ms = (gm_now_us() * 1000 - mono + 500000) / 1000000;
    unsigned util[GM_SIM_MAX_PROCS];
    unsigned long long ts[GM_SIM_MAX_PROCS];
    unsigned need = 0;
    for (uint32_t i = 0; i < g.nprocs; i++) {
        uint64_t end;
        util[i] = gm_sim_proc_period_util(&g.procs[i], mono, &end);
        ts[i] = (end + offset_ms * 1000000) / 1000;
        if (util[i] > 0 && ts[i] > lastSeenTimeStamp)
            need++;
    }
    if (need == 0)
        return NVML_ERROR_NOT_FOUND;
    if (utilization == NULL || need > *processSamplesCount) {
        *processSamplesCount = need;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned n = 0;
    for (uint32_t i = 0; i < g.nprocs; i++) {
        if (util[i] == 0 || ts[i] <= lastSeenTimeStamp)
            continue;
        memset(&utilization[n], 0, sizeof(utilization[n]));
        utilization[n].pid = g.procs[i].pid;
        utilization[n].timeStamp = ts[i];
        utilization[n].smUtil = util[i];
        n++;
    }
    *processSamplesCount = n;
    return NVML_SUCCESS;
}

GM_SIM_API nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (name == NULL || length == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t start;
    if (gm_sim_proc_start_time(pid, &start, NULL) < 0)
        return NVML_ERROR_NOT_FOUND;
    /* The name given at registration wins: it is what the simulated driver was told. */
    char buf[256] = "";
    struct gm_sim_gpu *g = malloc(sizeof(*g));
    if (g == NULL)
        return NVML_ERROR_MEMORY;
    for (uint32_t i = 0; i < st->ngpus && buf[0] == '\0'; i++) {
        struct gm_error err;
        int rc = gm_sim_view_snapshot(gm_sim_nvml_view(), (int)i, g, NULL, &err);
        if (rc < 0) {
            free(g);
            return gm_sim_nvml_from_gm(rc, GM_SIM_NVML_IN_CALL);
        }
        for (uint32_t j = 0; j < g->nprocs; j++) {
            const struct gm_sim_proc *p = &g->procs[j];
            if (p->pid == pid && p->start_time == start) {
                memcpy(buf, p->name, sizeof(buf));
                break;
            }
        }
    }
    free(g);
    if (buf[0] == '\0' && gm_sim_proc_name(pid, buf, sizeof(buf)) < 0)
        return NVML_ERROR_NOT_FOUND;
    /* Like the real library, a short buffer gets a truncated name. */
    size_t n = strnlen(buf, sizeof(buf) - 1);
    if (n >= length)
        n = length - 1;
    memcpy(name, buf, n);
    name[n] = '\0';
    return NVML_SUCCESS;
}
