/* Device handles and per-device queries of gpusim's libnvidia-ml.so.1. */
#include "gpusim/nvml/nvml_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Handles point into this array, never into the mapping, so that a stale or forged handle can
 * be recognised by its address alone. */
struct nvmlDevice_st {
    int index;
};
static struct nvmlDevice_st devices[GM_SIM_MAX_GPUS] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};

nvmlReturn_t gm_sim_nvml_index(nvmlDevice_t dev, int *index)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    uintptr_t p = (uintptr_t)dev, base = (uintptr_t)devices;
    if (p < base || (p - base) % sizeof(devices[0]) != 0 ||
        (p - base) / sizeof(devices[0]) >= st->ngpus)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = (int)((p - base) / sizeof(devices[0]));
    return NVML_SUCCESS;
}

nvmlReturn_t gm_sim_nvml_info(nvmlDevice_t dev, const struct gm_sim_gpu_info **info)
{
    int i;
    nvmlReturn_t rc = gm_sim_nvml_index(dev, &i);
    if (rc == NVML_SUCCESS)
        *info = &gm_sim_nvml_state()->gpus[i].info;
    return rc;
}

nvmlReturn_t gm_sim_nvml_snapshot(nvmlDevice_t dev, struct gm_sim_gpu *g, struct gm_sim_reading *r)
{
    int i;
    nvmlReturn_t rc = gm_sim_nvml_index(dev, &i);
    if (rc != NVML_SUCCESS)
        return rc;
    struct gm_error err;
    return gm_sim_nvml_from_gm(gm_sim_view_snapshot(gm_sim_nvml_view(), i, g, r, &err),
                               GM_SIM_NVML_IN_CALL);
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (deviceCount == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *deviceCount = st->ngpus;
    return NVML_SUCCESS;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount)
{
    return nvmlDeviceGetCount_v2(deviceCount);
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= st->ngpus)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (uuid == NULL || device == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < st->ngpus; i++)
        if (strcmp(st->gpus[i].info.uuid, uuid) == 0) {
            *device = &devices[i];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_NOT_FOUND;
}

/* Accepts "domain:bus:device.function" with a 4- or 8-digit domain, or "bus:device.function". */
static int parse_bus_id(const char *s, unsigned *dom, unsigned *bus, unsigned *dev)
{
    unsigned fn;
    char tail;
    if (sscanf(s, "%x:%x:%x.%x%c", dom, bus, dev, &fn, &tail) == 4)
        return 0;
    *dom = 0;
    if (sscanf(s, "%x:%x.%x%c", bus, dev, &fn, &tail) == 3)
        return 0;
    return -1;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    unsigned dom, bus, dev;
    if (pciBusId == NULL || device == NULL || parse_bus_id(pciBusId, &dom, &bus, &dev) < 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < st->ngpus; i++) {
        const struct gm_sim_gpu_info *g = &st->gpus[i].info;
        if (g->pci_domain == dom && g->pci_bus == bus && g->pci_device == dev) {
            *device = &devices[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    int i;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &i);
    if (rc == NVML_SUCCESS && index == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        *index = (unsigned)i;
    return rc;
}

/* The string getters share one shape: look up, then copy with NVML's size rules. */
#define INFO_STRING(fn, field)                                                                     \
    GM_SIM_API nvmlReturn_t fn(nvmlDevice_t device, char *buf, unsigned int length)                \
    {                                                                                              \
        const struct gm_sim_gpu_info *info;                                                        \
        nvmlReturn_t rc = gm_sim_nvml_info(device, &info);                                         \
        return rc != NVML_SUCCESS ? rc : gm_sim_nvml_copy(buf, length, info->field);               \
    }
INFO_STRING(nvmlDeviceGetName, name)
INFO_STRING(nvmlDeviceGetUUID, uuid)
INFO_STRING(nvmlDeviceGetSerial, serial)

GM_SIM_API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    const struct gm_sim_gpu_info *info;
    nvmlReturn_t rc = gm_sim_nvml_info(device, &info);
    if (rc == NVML_SUCCESS && pci == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc != NVML_SUCCESS)
        return rc;
    memset(pci, 0, sizeof(*pci));
    pci->domain = info->pci_domain;
    pci->bus = info->pci_bus;
    pci->device = info->pci_device;
    pci->pciDeviceId = info->pci_device_id;
    pci->pciSubSystemId = info->pci_subsystem_id;
    snprintf(pci->busId, sizeof(pci->busId), NVML_DEVICE_PCI_BUS_ID_FMT, info->pci_domain,
             info->pci_bus, info->pci_device);
    /* The legacy field only has room for a 4-digit domain. */
    snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT,
             info->pci_domain & 0xffff, info->pci_bus, info->pci_device);
    return NVML_SUCCESS;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    return nvmlDeviceGetPciInfo_v3(device, pci);
}

/* The first version's struct is smaller: the bus id (4-digit domain, where v3 keeps
 * busIdLegacy), the five ids, then 4 reserved words where v3 has busId. */
#define PCI_INFO_V1_SIZE (offsetof(nvmlPciInfo_t, busId) + 4 * sizeof(unsigned int))
GM_SIM_API nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    nvmlPciInfo_t v3;
    nvmlReturn_t rc = nvmlDeviceGetPciInfo_v3(device, pci == NULL ? NULL : &v3);
    if (rc == NVML_SUCCESS) {
        memset(pci, 0, PCI_INFO_V1_SIZE);
        memcpy(pci, &v3, offsetof(nvmlPciInfo_t, busId));
    }
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *pciBusId, nvmlDevice_t *device)
{
    return nvmlDeviceGetHandleByPciBusId_v2(pciBusId, device);
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    struct gm_sim_reading r;
    const struct gm_sim_gpu_info *info;
    nvmlReturn_t rc = gm_sim_nvml_info(device, &info);
    if (rc == NVML_SUCCESS && memory == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        rc = gm_sim_nvml_snapshot(device, NULL, &r);
    if (rc != NVML_SUCCESS)
        return rc;
    memory->total = info->memory_total;
    memory->used = r.memory_used;
    memory->free = info->memory_total - r.memory_used;
    return NVML_SUCCESS;
}

/* Getters of one dynamic value: check the handle and the pointer, then read a snapshot. */
#define LIVE_GETTER(fn, type, expr)                                                                \
    GM_SIM_API nvmlReturn_t fn(nvmlDevice_t device, type *out)                                     \
    {                                                                                              \
        struct gm_sim_gpu g;                                                                       \
        struct gm_sim_reading r;                                                                   \
        int idx;                                                                                   \
        nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);                                         \
        if (rc == NVML_SUCCESS && out == NULL)                                                     \
            rc = NVML_ERROR_INVALID_ARGUMENT;                                                      \
        if (rc == NVML_SUCCESS)                                                                    \
            rc = gm_sim_nvml_snapshot(device, &g, &r);                                             \
        if (rc == NVML_SUCCESS)                                                                    \
            *out = (type)(expr);                                                                   \
        (void)g;                                                                                   \
        (void)r;                                                                                   \
        return rc;                                                                                 \
    }
LIVE_GETTER(nvmlDeviceGetPowerUsage, unsigned int, r.power_mw)
LIVE_GETTER(nvmlDeviceGetEnforcedPowerLimit, unsigned int, g.info.power_limit_mw)
LIVE_GETTER(nvmlDeviceGetPowerManagementLimit, unsigned int, g.info.power_limit_mw)
LIVE_GETTER(nvmlDeviceGetPerformanceState, nvmlPstates_t, r.pstate)
LIVE_GETTER(nvmlDeviceGetComputeMode, nvmlComputeMode_t, g.compute_mode)
LIVE_GETTER(nvmlDeviceGetPersistenceMode, nvmlEnableState_t, g.persistence)
/* A data-centre T4 drives no display. */
LIVE_GETTER(nvmlDeviceGetDisplayActive, nvmlEnableState_t, NVML_FEATURE_DISABLED)
LIVE_GETTER(nvmlDeviceGetDisplayMode, nvmlEnableState_t, NVML_FEATURE_DISABLED)
LIVE_GETTER(nvmlDeviceGetMultiGpuBoard, unsigned int, 0)

GM_SIM_API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                      nvmlUtilization_t *utilization)
{
    struct gm_sim_gpu g;
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS && utilization == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        rc = gm_sim_nvml_snapshot(device, &g, NULL);
    if (rc == NVML_SUCCESS) {
        utilization->gpu = (unsigned)g.util_gpu;
        utilization->memory = (unsigned)g.util_memory;
    }
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device,
                                                 nvmlTemperatureSensors_t sensorType,
                                                 unsigned int *temp)
{
    struct gm_sim_reading r;
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS && (temp == NULL || sensorType != NVML_TEMPERATURE_GPU))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        rc = gm_sim_nvml_snapshot(device, NULL, &r);
    if (rc == NVML_SUCCESS)
        *temp = (unsigned)r.temperature;
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceSetComputeMode(nvmlDevice_t device, nvmlComputeMode_t mode)
{
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc != NVML_SUCCESS)
        return rc;
    if ((int)mode < 0 || mode >= NVML_COMPUTEMODE_COUNT)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (mode == NVML_COMPUTEMODE_EXCLUSIVE_THREAD)
        return NVML_ERROR_NOT_SUPPORTED; /* removed from drivers since CUDA 8 */
    if (geteuid() != 0)
        return NVML_ERROR_NO_PERMISSION;
    struct gm_error err;
    return gm_sim_nvml_from_gm(
        gm_sim_view_set_compute_mode(gm_sim_nvml_view(), idx, (int)mode, &err),
        GM_SIM_NVML_IN_CALL);
}

/* A T4 is passively cooled: no fan for NVML to read. */
GM_SIM_API nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t device, unsigned int *speed)
{
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS && speed == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    return rc == NVML_SUCCESS ? NVML_ERROR_NOT_SUPPORTED : rc;
}

/* MIG needs an A100/H100-class GPU. */
GM_SIM_API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode,
                                             unsigned int *pendingMode)
{
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS && (currentMode == NULL || pendingMode == NULL))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    return rc == NVML_SUCCESS ? NVML_ERROR_NOT_SUPPORTED : rc;
}

/* ECC is on (as on a T4 out of the box) and the simulated memory never fails. */
GM_SIM_API nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current,
                                             nvmlEnableState_t *pending)
{
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS && (current == NULL || pending == NULL))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        *current = *pending = NVML_FEATURE_ENABLED;
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device,
                                                    nvmlMemoryErrorType_t errorType,
                                                    nvmlEccCounterType_t counterType,
                                                    unsigned long long *eccCounts)
{
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS &&
        (eccCounts == NULL || (int)errorType < 0 || errorType >= NVML_MEMORY_ERROR_TYPE_COUNT ||
         (int)counterType < 0 || counterType >= NVML_ECC_COUNTER_TYPE_COUNT))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        *eccCounts = 0;
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major,
                                                           int *minor)
{
    const struct gm_sim_gpu_info *info;
    nvmlReturn_t rc = gm_sim_nvml_info(device, &info);
    if (rc == NVML_SUCCESS && (major == NULL || minor == NULL))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS) {
        *major = info->cc_major;
        *minor = info->cc_minor;
    }
    return rc;
}
