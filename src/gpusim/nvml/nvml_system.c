/* Library lifetime and system-wide queries of gpusim's libnvidia-ml.so.1. */
#include "gpusim/nvml/nvml_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_refs;
static struct gm_sim_view *view;

GM_SIM_API const char *gpusim_nvml_version(void)
{
    return "gpusim " GM_VERSION;
}

struct gm_sim_view *gm_sim_nvml_view(void)
{
    return __atomic_load_n(&view, __ATOMIC_ACQUIRE);
}

const struct gm_sim_state *gm_sim_nvml_state(void)
{
    struct gm_sim_view *v = gm_sim_nvml_view();
    return v != NULL ? gm_sim_view_base(v) : NULL;
}

/* Like the real library, every nvmlInit must be matched by an nvmlShutdown; the device goes
 * away with the last one. */
/* X(gm code, in a call). Not listed: NVML_ERROR_UNKNOWN (a lock that cannot be taken, an I/O
 * error). At init every failure is NVML_ERROR_DRIVER_NOT_LOADED, as the real library reports
 * a driver it cannot reach. In a call GM_EDRIVER is a state file that fails the view's checks
 * (truncated, overwritten): the real library's answer for a GPU that fell off the bus. */
#define GM_SIM_NVML_FROM_GM(X)                                                                     \
    X(0, NVML_SUCCESS)                                                                             \
    X(-GM_EINVAL, NVML_ERROR_INVALID_ARGUMENT)                                                     \
    X(-GM_ENOTFOUND, NVML_ERROR_NOT_FOUND)                                                         \
    X(-GM_EPERM, NVML_ERROR_NO_PERMISSION)                                                         \
    X(-GM_ENOMEM, NVML_ERROR_MEMORY)                                                               \
    X(-GM_EDRIVER, NVML_ERROR_GPU_IS_LOST)

nvmlReturn_t gm_sim_nvml_from_gm(int rc, enum gm_sim_nvml_edge edge)
{
    if (rc == 0)
        return NVML_SUCCESS;
    if (edge == GM_SIM_NVML_AT_INIT)
        return NVML_ERROR_DRIVER_NOT_LOADED;
    switch (rc) {
#define GM_X(gm, in_call)                                                                          \
    case gm:                                                                                       \
        return in_call;
        GM_SIM_NVML_FROM_GM(GM_X)
#undef GM_X
    }
    return NVML_ERROR_UNKNOWN;
}

GM_SIM_API nvmlReturn_t nvmlInit_v2(void)
{
    nvmlReturn_t rc = NVML_SUCCESS;
    pthread_mutex_lock(&init_lock);
    if (init_refs == 0) {
        struct gm_sim_view *v;
        struct gm_error err;
        int r = gm_sim_view_open(gm_sim_state_path(), gm_sim_config_path(), &v, &err);
        if (r < 0) {
            /* NVML has no way to say why; without this line a user sees only "Driver Not
             * Loaded" and cannot tell a bad config from a missing file. */
            fprintf(stderr, "gpusim: %s\n", err.msg);
            rc = gm_sim_nvml_from_gm(r, GM_SIM_NVML_AT_INIT);
        } else {
            __atomic_store_n(&view, v, __ATOMIC_RELEASE);
        }
    }
    if (rc == NVML_SUCCESS)
        init_refs++;
    pthread_mutex_unlock(&init_lock);
    return rc;
}

GM_SIM_API nvmlReturn_t nvmlInit(void)
{
    return nvmlInit_v2();
}

GM_SIM_API nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags; /* NO_GPUS and NO_ATTACH change nothing for a simulated device */
    return nvmlInit_v2();
}

GM_SIM_API nvmlReturn_t nvmlShutdown(void)
{
    nvmlReturn_t rc = NVML_SUCCESS;
    pthread_mutex_lock(&init_lock);
    if (init_refs == 0) {
        rc = NVML_ERROR_UNINITIALIZED;
    } else if (--init_refs == 0) {
        struct gm_sim_view *v = view;
        __atomic_store_n(&view, NULL, __ATOMIC_RELEASE);
        gm_sim_view_close(v);
    }
    pthread_mutex_unlock(&init_lock);
    return rc;
}

#define NVML_ERROR_STRINGS(X)                                                                      \
    X(NVML_SUCCESS, "Success")                                                                     \
    X(NVML_ERROR_UNINITIALIZED, "Uninitialized")                                                   \
    X(NVML_ERROR_INVALID_ARGUMENT, "Invalid Argument")                                             \
    X(NVML_ERROR_NOT_SUPPORTED, "Not Supported")                                                   \
    X(NVML_ERROR_NO_PERMISSION, "Insufficient Permissions")                                        \
    X(NVML_ERROR_ALREADY_INITIALIZED, "Already Initialized")                                       \
    X(NVML_ERROR_NOT_FOUND, "Not Found")                                                           \
    X(NVML_ERROR_INSUFFICIENT_SIZE, "Insufficient Size")                                           \
    X(NVML_ERROR_INSUFFICIENT_POWER, "Insufficient External Power")                                \
    X(NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded")                                           \
    X(NVML_ERROR_TIMEOUT, "Timeout")                                                               \
    X(NVML_ERROR_IRQ_ISSUE, "Interrupt request issue")                                             \
    X(NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found")                               \
    X(NVML_ERROR_FUNCTION_NOT_FOUND, "Function Not Found")                                         \
    X(NVML_ERROR_CORRUPTED_INFOROM, "Corrupted infoROM")                                           \
    X(NVML_ERROR_GPU_IS_LOST, "GPU is lost")                                                       \
    X(NVML_ERROR_RESET_REQUIRED, "GPU requires restart")                                           \
    X(NVML_ERROR_OPERATING_SYSTEM, "The operating system has blocked the request.")                \
    X(NVML_ERROR_LIB_RM_VERSION_MISMATCH, "RM has detected an NVML/RM version mismatch.")          \
    X(NVML_ERROR_IN_USE, "In use by another client")                                               \
    X(NVML_ERROR_MEMORY, "Insufficient Memory")                                                    \
    X(NVML_ERROR_NO_DATA, "No data")                                                               \
    X(NVML_ERROR_VGPU_ECC_NOT_SUPPORTED, "The requested vgpu operation is not available on "       \
                                         "target device, because ECC is enabled")                  \
    X(NVML_ERROR_INSUFFICIENT_RESOURCES, "Insufficient resources")                                 \
    X(NVML_ERROR_FREQ_NOT_SUPPORTED, "Frequency not supported")                                    \
    X(NVML_ERROR_ARGUMENT_VERSION_MISMATCH, "Argument version mismatch")                           \
    X(NVML_ERROR_DEPRECATED, "Deprecated")                                                         \
    X(NVML_ERROR_NOT_READY, "Not ready")                                                           \
    X(NVML_ERROR_GPU_NOT_FOUND, "GPU not found")                                                   \
    X(NVML_ERROR_INVALID_STATE, "Invalid state")

GM_SIM_API const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
#define GM_X(code, text)                                                                           \
    case code:                                                                                     \
        return text;
        NVML_ERROR_STRINGS(GM_X)
#undef GM_X
    default:
        return "Unknown Error";
    }
}

nvmlReturn_t gm_sim_nvml_copy(char *dst, unsigned int length, const char *src)
{
    if (dst == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(src);
    if (n + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, n + 1);
    return NVML_SUCCESS;
}

GM_SIM_API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    return gm_sim_nvml_copy(version, length, st->driver_version);
}

GM_SIM_API nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    /* Real drivers report "<CUDA major>.<driver version>", e.g. 12.535.104.05. */
    char buf[NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE + 16];
    snprintf(buf, sizeof(buf), "%d.%s", NVML_CUDA_DRIVER_VERSION_MAJOR(st->cuda_version_int),
             st->driver_version);
    return gm_sim_nvml_copy(version, length, buf);
}

GM_SIM_API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)
{
    const struct gm_sim_state *st = gm_sim_nvml_state();
    if (st == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (cudaDriverVersion == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *cudaDriverVersion = st->cuda_version_int;
    return NVML_SUCCESS;
}

GM_SIM_API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)
{
    return nvmlSystemGetCudaDriverVersion(cudaDriverVersion);
}
