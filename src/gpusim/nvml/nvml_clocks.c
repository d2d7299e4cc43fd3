/* Clocks, PCIe, thresholds, energy, memory v2, BAR1, VBIOS, video engines, clock event reasons
 * and identity of gpusim's libnvidia-ml.so.1: what tools such as nvidia-smi -q and monitoring
 * libraries read besides the basics. The values are a Tesla T4's (nvidia-smi -q on a T4 with
 * driver 535) for every simulated GPU; what changes follows the P-state of the power model:
 * P8 (idle) runs the idle clocks, P0 the maximum ones. Signatures from NVIDIA's nvml.h, NVML
 * API 13. */
#include "gpusim/nvml/nvml_internal.h"

#include "common/clock.h"

#include <pthread.h>
#include <string.h>

/* MHz: graphics, SM, memory, video; idle (P8), maximum (P0 and boost), application default. */
static const unsigned clock_idle[NVML_CLOCK_COUNT] = {300, 300, 405, 540};
static const unsigned clock_max[NVML_CLOCK_COUNT] = {1590, 1590, 5001, 1470};
static const unsigned clock_app[NVML_CLOCK_COUNT] = {585, 585, 5001, 1470};

#define T4_PCIE_GEN       3
#define T4_PCIE_WIDTH     16
#define T4_BAR1_TOTAL     (256ull << 20)
#define T4_BAR1_USED      (2ull << 20)
#define T4_VBIOS          "90.04.96.00.02"
#define VIDEO_SAMPLING_US 167000u
#define TEMP_SHUTDOWN_C   96u
#define TEMP_SLOWDOWN_C   93u
#define TEMP_GPU_MAX_C    85u

/* The handle, the pointers, then a reading; r may be NULL for static answers. */
static nvmlReturn_t read_dev(nvmlDevice_t device, int ok, struct gm_sim_gpu *g,
                             struct gm_sim_reading *r)
{
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS && !ok)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS && (g != NULL || r != NULL))
        rc = gm_sim_nvml_snapshot(device, g, r);
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetClock(nvmlDevice_t device, nvmlClockType_t clockType,
                                           nvmlClockId_t clockId, unsigned int *clockMHz)
{
    struct gm_sim_reading r;
    int ok = clockMHz != NULL && (int)clockType >= 0 && clockType < NVML_CLOCK_COUNT &&
             (int)clockId >= 0 && clockId < NVML_CLOCK_ID_COUNT;
    nvmlReturn_t rc =
        read_dev(device, ok, NULL, ok && clockId == NVML_CLOCK_ID_CURRENT ? &r : NULL);
    if (rc != NVML_SUCCESS)
        return rc;
    switch (clockId) {
    case NVML_CLOCK_ID_CURRENT:
        *clockMHz = r.pstate == 0 ? clock_max[clockType] : clock_idle[clockType];
        break;
    case NVML_CLOCK_ID_APP_CLOCK_TARGET:
    case NVML_CLOCK_ID_APP_CLOCK_DEFAULT:
        *clockMHz = clock_app[clockType];
        break;
    default:
        *clockMHz = clock_max[clockType];
        break;
    }
    return NVML_SUCCESS;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type,
                                               unsigned int *clock)
{
    return nvmlDeviceGetClock(device, type, NVML_CLOCK_ID_CURRENT, clock);
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, nvmlClockType_t type,
                                                  unsigned int *clock)
{
    return nvmlDeviceGetClock(device, type, NVML_CLOCK_ID_CUSTOMER_BOOST_MAX, clock);
}

/* Getters of one constant of the device. */
#define CONST_GETTER(fn, type, value)                                                              \
    GM_SIM_API nvmlReturn_t fn(nvmlDevice_t device, type *out)                                     \
    {                                                                                              \
        nvmlReturn_t rc = read_dev(device, out != NULL, NULL, NULL);                               \
        if (rc == NVML_SUCCESS)                                                                    \
            *out = (value);                                                                        \
        return rc;                                                                                 \
    }
CONST_GETTER(nvmlDeviceGetCurrPcieLinkGeneration, unsigned int, T4_PCIE_GEN)
CONST_GETTER(nvmlDeviceGetMaxPcieLinkGeneration, unsigned int, T4_PCIE_GEN)
CONST_GETTER(nvmlDeviceGetGpuMaxPcieLinkGeneration, unsigned int, T4_PCIE_GEN)
CONST_GETTER(nvmlDeviceGetCurrPcieLinkWidth, unsigned int, T4_PCIE_WIDTH)
CONST_GETTER(nvmlDeviceGetMaxPcieLinkWidth, unsigned int, T4_PCIE_WIDTH)

/* The minor number of /dev/nvidiaN is the GPU's index. */
GM_SIM_API nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)
{
    return nvmlDeviceGetIndex(device, minorNumber);
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device,
                                                  nvmlDeviceArchitecture_t *arch)
{
    const struct gm_sim_gpu_info *info;
    nvmlReturn_t rc = gm_sim_nvml_info(device, &info);
    if (rc == NVML_SUCCESS && arch == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc != NVML_SUCCESS)
        return rc;
    int cc = info->cc_major * 10 + info->cc_minor;
    *arch = cc >= 100  ? NVML_DEVICE_ARCH_BLACKWELL
            : cc >= 90 ? NVML_DEVICE_ARCH_HOPPER
            : cc >= 89 ? NVML_DEVICE_ARCH_ADA
            : cc >= 80 ? NVML_DEVICE_ARCH_AMPERE
            : cc >= 75 ? NVML_DEVICE_ARCH_TURING
            : cc >= 70 ? NVML_DEVICE_ARCH_VOLTA
            : cc >= 60 ? NVML_DEVICE_ARCH_PASCAL
            : cc >= 50 ? NVML_DEVICE_ARCH_MAXWELL
                       : NVML_DEVICE_ARCH_KEPLER;
    return NVML_SUCCESS;
}

/* Copies are not simulated (they take no device time), so nothing crosses the bus. */
GM_SIM_API nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t device,
                                                    nvmlPcieUtilCounter_t counter,
                                                    unsigned int *value)
{
    nvmlReturn_t rc = read_dev(
        device, value != NULL && (int)counter >= 0 && counter < NVML_PCIE_UTIL_COUNT, NULL, NULL);
    if (rc == NVML_SUCCESS)
        *value = 0;
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device,
                                                          nvmlTemperatureThresholds_t thresholdType,
                                                          unsigned int *temp)
{
    nvmlReturn_t rc = read_dev(device, temp != NULL, NULL, NULL);
    if (rc != NVML_SUCCESS)
        return rc;
    switch (thresholdType) {
    case NVML_TEMPERATURE_THRESHOLD_SHUTDOWN:
        *temp = TEMP_SHUTDOWN_C;
        return NVML_SUCCESS;
    case NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
        *temp = TEMP_SLOWDOWN_C;
        return NVML_SUCCESS;
    case NVML_TEMPERATURE_THRESHOLD_GPU_MAX:
        *temp = TEMP_GPU_MAX_C;
        return NVML_SUCCESS;
    default:
        return (int)thresholdType < 0 || thresholdType >= NVML_TEMPERATURE_THRESHOLD_COUNT
                   ? NVML_ERROR_INVALID_ARGUMENT
                   : NVML_ERROR_NOT_SUPPORTED; /* no memory sensor, no acoustic limits */
    }
}

/* Energy in mJ since this library first read it: the power of each reading held until the
 * next one. It never goes back, as the driver's counter since load does not. */
static pthread_mutex_t energy_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    unsigned long long mj;
    uint64_t last_ns;
    uint32_t last_mw;
} energy[GM_SIM_MAX_GPUS];

GM_SIM_API nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device,
                                                            unsigned long long *out)
{
    struct gm_sim_reading r;
    int idx;
    nvmlReturn_t rc = gm_sim_nvml_index(device, &idx);
    if (rc == NVML_SUCCESS)
        rc = read_dev(device, out != NULL, NULL, &r);
    if (rc != NVML_SUCCESS)
        return rc;
    uint64_t now = gm_mono_ns();
    pthread_mutex_lock(&energy_lock);
    if (energy[idx].last_ns != 0)
        energy[idx].mj +=
            (unsigned long long)energy[idx].last_mw * (now - energy[idx].last_ns) / 1000000000ull;
    energy[idx].last_ns = now;
    energy[idx].last_mw = r.power_mw;
    *out = energy[idx].mj;
    pthread_mutex_unlock(&energy_lock);
    return NVML_SUCCESS;
}

/* v2 splits v1's used into the driver's reserve and the processes' memory; free is v1's. */
GM_SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    nvmlMemory_t m;
    nvmlReturn_t rc = nvmlDeviceGetMemoryInfo(device, memory == NULL ? NULL : &m);
    if (rc == NVML_SUCCESS && memory->version != nvmlMemory_v2)
        rc = NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (rc != NVML_SUCCESS)
        return rc;
    memory->total = m.total;
    memory->reserved = m.used >= GM_SIM_DRIVER_RESERVE ? GM_SIM_DRIVER_RESERVE : 0;
    memory->used = m.used - memory->reserved;
    memory->free = m.free;
    return NVML_SUCCESS;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetBAR1MemoryInfo(nvmlDevice_t device,
                                                    nvmlBAR1Memory_t *bar1Memory)
{
    nvmlReturn_t rc = read_dev(device, bar1Memory != NULL, NULL, NULL);
    if (rc == NVML_SUCCESS) {
        bar1Memory->bar1Total = T4_BAR1_TOTAL;
        bar1Memory->bar1Used = T4_BAR1_USED;
        bar1Memory->bar1Free = T4_BAR1_TOTAL - T4_BAR1_USED;
    }
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version,
                                                  unsigned int length)
{
    nvmlReturn_t rc = read_dev(device, 1, NULL, NULL);
    return rc != NVML_SUCCESS ? rc : gm_sim_nvml_copy(version, length, T4_VBIOS);
}

/* Nothing encodes or decodes video on the simulated device. */
#define VIDEO_UTIL(fn)                                                                             \
    GM_SIM_API nvmlReturn_t fn(nvmlDevice_t device, unsigned int *utilization,                     \
                               unsigned int *samplingPeriodUs)                                     \
    {                                                                                              \
        nvmlReturn_t rc =                                                                          \
            read_dev(device, utilization != NULL && samplingPeriodUs != NULL, NULL, NULL);         \
        if (rc == NVML_SUCCESS) {                                                                  \
            *utilization = 0;                                                                      \
            *samplingPeriodUs = VIDEO_SAMPLING_US;                                                 \
        }                                                                                          \
        return rc;                                                                                 \
    }
VIDEO_UTIL(nvmlDeviceGetEncoderUtilization)
VIDEO_UTIL(nvmlDeviceGetDecoderUtilization)

/* An idle GPU (P8) clocks down because it is idle; a busy one runs unthrottled. */
GM_SIM_API nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                               unsigned long long *reasons)
{
    struct gm_sim_reading r;
    nvmlReturn_t rc = read_dev(device, reasons != NULL, NULL, &r);
    if (rc == NVML_SUCCESS)
        *reasons = r.pstate == 0 ? nvmlClocksEventReasonNone : nvmlClocksEventReasonGpuIdle;
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device,
                                                                  unsigned long long *reasons)
{
    return nvmlDeviceGetCurrentClocksEventReasons(device, reasons);
}
