/* gpusim's libcuda.so.1: initialisation, the visible devices and their attributes, the driver's
 * version and its error strings. */
#include "gpusim/cuda/cuda_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gm_sim_cuda gm_sim_cuda_g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* X(code, name, string): the driver's own names and descriptions. */
#define GM_SIM_CUDA_ERRORS(X)                                                                      \
    X(CUDA_SUCCESS, "no error")                                                                    \
    X(CUDA_ERROR_INVALID_VALUE, "invalid argument")                                                \
    X(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")                                                   \
    X(CUDA_ERROR_NOT_INITIALIZED, "initialization error")                                          \
    X(CUDA_ERROR_DEINITIALIZED, "driver shutting down")                                            \
    X(CUDA_ERROR_PROFILER_DISABLED, "profiler disabled while using external profiling tool")       \
    X(CUDA_ERROR_STUB_LIBRARY, "CUDA driver is a stub library")                                    \
    X(CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA-capable device(s) is/are busy or unavailable")          \
    X(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected")                                  \
    X(CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal")                                         \
    X(CUDA_ERROR_DEVICE_NOT_LICENSED, "device doesn't have valid Grid license")                    \
    X(CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid")                                  \
    X(CUDA_ERROR_INVALID_CONTEXT, "invalid device context")                                        \
    X(CUDA_ERROR_CONTEXT_ALREADY_CURRENT, "context already current")                               \
    X(CUDA_ERROR_MAP_FAILED, "mapping of buffer object failed")                                    \
    X(CUDA_ERROR_NO_BINARY_FOR_GPU, "no kernel image is available for execution on the device")    \
    X(CUDA_ERROR_CONTEXT_ALREADY_IN_USE,                                                           \
      "exclusive-thread device already in use by a different thread")                              \
    X(CUDA_ERROR_INVALID_PTX, "a PTX JIT compilation failed")                                      \
    X(CUDA_ERROR_JIT_COMPILER_NOT_FOUND, "PTX JIT compiler library not found")                     \
    X(CUDA_ERROR_UNSUPPORTED_PTX_VERSION,                                                          \
      "the provided PTX was compiled with an unsupported toolchain.")                              \
    X(CUDA_ERROR_INVALID_SOURCE, "device kernel image is invalid")                                 \
    X(CUDA_ERROR_FILE_NOT_FOUND, "file not found")                                                 \
    X(CUDA_ERROR_OPERATING_SYSTEM, "OS call failed or operation not supported on this OS")         \
    X(CUDA_ERROR_INVALID_HANDLE, "invalid resource handle")                                        \
    X(CUDA_ERROR_ILLEGAL_STATE, "the operation cannot be performed in the present state")          \
    X(CUDA_ERROR_NOT_FOUND, "named symbol not found")                                              \
    X(CUDA_ERROR_NOT_READY, "device not ready")                                                    \
    X(CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered")                      \
    X(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources requested for launch")               \
    X(CUDA_ERROR_LAUNCH_TIMEOUT, "the launch timed out and was terminated")                        \
    X(CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE, "primary context active")                                 \
    X(CUDA_ERROR_CONTEXT_IS_DESTROYED, "context is destroyed")                                     \
    X(CUDA_ERROR_LAUNCH_FAILED, "unspecified launch failure")                                      \
    X(CUDA_ERROR_NOT_PERMITTED, "operation not permitted")                                         \
    X(CUDA_ERROR_NOT_SUPPORTED, "operation not supported")                                         \
    X(CUDA_ERROR_SYSTEM_NOT_READY, "system not yet initialized")                                   \
    X(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH,                                                           \
      "system has unsupported display driver / cuda driver combination")                           \
    X(CUDA_ERROR_MPS_CONNECTION_FAILED,                                                            \
      "MPS client failed to connect to the MPS control daemon or the MPS server")                  \
    X(CUDA_ERROR_MPS_RPC_FAILURE,                                                                  \
      "the remote procedural call between the MPS server and the MPS client failed")               \
    X(CUDA_ERROR_MPS_SERVER_NOT_READY,                                                             \
      "MPS server is not ready to accept new MPS client requests")                                 \
    X(CUDA_ERROR_MPS_MAX_CLIENTS_REACHED,                                                          \
      "the hardware resources required to create MPS client have been exhausted")                  \
    X(CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED,                                                      \
      "the hardware resources required to support device connections have been exhausted")         \
    X(CUDA_ERROR_MPS_CLIENT_TERMINATED, "the MPS client has been terminated by the server")        \
    X(CUDA_ERROR_UNKNOWN, "unknown error")

/* X(gm code, at cuInit, in a call, in a launch). A code not listed reads as `other` below: no
 * device at cuInit, CUDA_ERROR_UNKNOWN in a call, a failed launch. Behaviour a program sees: a
 * state file of another layout or a bad config is a driver mismatch at cuInit, any other failure to
 * attach means no device; a GPU without room is out of memory; a timeline that cannot be reached
 * fails the launch. */
#define GM_SIM_CUDA_FROM_GM(X)                                                                     \
    X(0, CUDA_SUCCESS, CUDA_SUCCESS, CUDA_SUCCESS)                                                 \
    X(-GM_EINVAL, CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, CUDA_ERROR_UNKNOWN, CUDA_ERROR_LAUNCH_FAILED) \
    X(-GM_EDRIVER, CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, CUDA_ERROR_UNKNOWN,                          \
      CUDA_ERROR_LAUNCH_FAILED)                                                                    \
    X(-GM_ENOSPACE, CUDA_ERROR_NO_DEVICE, CUDA_ERROR_OUT_OF_MEMORY, CUDA_ERROR_LAUNCH_FAILED)      \
    X(-GM_ENOMEM, CUDA_ERROR_NO_DEVICE, CUDA_ERROR_OUT_OF_MEMORY, CUDA_ERROR_LAUNCH_FAILED)

CUresult gm_sim_cuda_from_gm(int rc, enum gm_sim_cuda_edge edge)
{
    static const CUresult other[] = {CUDA_ERROR_NO_DEVICE, CUDA_ERROR_UNKNOWN,
                                     CUDA_ERROR_LAUNCH_FAILED};
    switch (rc) {
#define GM_X(gm, at_init, in_call, launch)                                                         \
    case gm: {                                                                                     \
        static const CUresult r[] = {at_init, in_call, launch};                                    \
        return r[edge];                                                                            \
    }
        GM_SIM_CUDA_FROM_GM(GM_X)
#undef GM_X
    }
    return other[edge];
}

GM_SIM_CUDA_API CUresult cuGetErrorName(CUresult error, const char **str)
{
    if (str == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
#define GM_X(code, text)                                                                           \
    case code:                                                                                     \
        *str = #code;                                                                              \
        return CUDA_SUCCESS;
        GM_SIM_CUDA_ERRORS(GM_X)
#undef GM_X
    }
    *str = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

GM_SIM_CUDA_API CUresult cuGetErrorString(CUresult error, const char **str)
{
    if (str == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
#define GM_X(code, text)                                                                           \
    case code:                                                                                     \
        *str = text;                                                                               \
        return CUDA_SUCCESS;
        GM_SIM_CUDA_ERRORS(GM_X)
#undef GM_X
    }
    *str = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

/* CUDA_VISIBLE_DEVICES as the driver reads it. */
static int visible_gpus(const struct gm_sim_state *st, int *out)
{
    return gm_sim_visible_gpus(st, getenv("CUDA_VISIBLE_DEVICES"), out, GM_SIM_MAX_GPUS);
}

static CUresult init_locked(void)
{
    struct gm_error err;
    gm_error_clear(&err);
    struct gm_sim_state *st = NULL;
    int rc = gm_sim_attach(&st, &err);
    if (rc < 0) {
        /* The one place a driver may talk: without it "no device" would hide a state file
         * that a newer or older gpusim made. */
        fprintf(stderr, "gpusim libcuda.so.1: %s\n", err.msg);
        return gm_sim_cuda_from_gm(rc, GM_SIM_CUDA_AT_INIT);
    }
    struct gm_sim_cuda *g = &gm_sim_cuda_g;
    int gpus[GM_SIM_MAX_GPUS];
    int n = visible_gpus(st, gpus);
    memset(g->dev, 0, sizeof(g->dev));
    for (int i = 0; i < n; i++) {
        g->dev[i].gpu = gpus[i];
        g->dev[i].mps_client.fd = -1;
        g->dev[i].share = 1.0;
    }
    g->ndev = n;
    g->st = st;
    return n > 0 ? CUDA_SUCCESS : CUDA_ERROR_NO_DEVICE;
}

GM_SIM_CUDA_API CUresult cuInit(unsigned int flags)
{
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct gm_sim_cuda *g = &gm_sim_cuda_g;
    pthread_mutex_lock(&g->lock);
    CUresult rc;
    if (g->init_done && g->pid != getpid())
        rc = CUDA_ERROR_NOT_INITIALIZED; /* as the driver in a child forked after cuInit */
    else if (g->init_done)
        rc = g->init_rc;
    else {
        rc = init_locked();
        g->init_rc = rc;
        g->pid = getpid();
        g->init_done = 1;
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

CUresult gm_sim_cuda_check_init(void)
{
    struct gm_sim_cuda *g = &gm_sim_cuda_g;
    int done = __atomic_load_n(&g->init_done, __ATOMIC_ACQUIRE);
    if (!done || g->pid != getpid())
        return CUDA_ERROR_NOT_INITIALIZED;
    return g->init_rc;
}

struct gm_sim_cuda_dev *gm_sim_cuda_device(CUdevice ordinal)
{
    if (ordinal < 0 || ordinal >= gm_sim_cuda_g.ndev)
        return NULL;
    return &gm_sim_cuda_g.dev[ordinal];
}

static CUresult get_dev(CUdevice dev, const struct gm_sim_gpu_info **info)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    struct gm_sim_cuda_dev *d = gm_sim_cuda_device(dev);
    if (d == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    *info = &gm_sim_cuda_g.st->gpus[d->gpu].info;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDriverGetVersion(int *version)
{
    if (version == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    /* Works before cuInit, as the driver's does. */
    struct gm_sim_state *st = NULL;
    if (gm_sim_cuda_check_init() == CUDA_SUCCESS)
        st = gm_sim_cuda_g.st;
    if (st != NULL) {
        *version = st->cuda_version_int;
        return CUDA_SUCCESS;
    }
    if (gm_sim_attach(&st, NULL) == 0) {
        *version = st->cuda_version_int;
        gm_sim_detach(st);
    } else {
        *version = CUDA_VERSION;
    }
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDeviceGetCount(int *count)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc == CUDA_ERROR_NO_DEVICE && count != NULL) {
        *count = 0;
        return CUDA_SUCCESS;
    }
    if (rc != CUDA_SUCCESS)
        return rc;
    if (count == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *count = gm_sim_cuda_g.ndev;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (gm_sim_cuda_device(ordinal) == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    const struct gm_sim_gpu_info *info;
    CUresult rc = get_dev(dev, &info);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (name == NULL || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "%s", info->name);
    return CUDA_SUCCESS;
}

/* "GPU-8-4-4-4-12" hex digits into the 16 bytes cuDeviceGetUuid returns. */
static void parse_uuid(const char *s, CUuuid *out)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(s, "GPU-", 4) == 0)
        s += 4;
    int n = 0;
    for (; *s != '\0' && n < 32; s++) {
        if (!isxdigit((unsigned char)*s))
            continue;
        int v = isdigit((unsigned char)*s) ? *s - '0' : (tolower((unsigned char)*s) - 'a' + 10);
        out->bytes[n / 2] = (char)(out->bytes[n / 2] | (n % 2 == 0 ? v << 4 : v));
        n++;
    }
}

GM_SIM_CUDA_API CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
    const struct gm_sim_gpu_info *info;
    CUresult rc = get_dev(dev, &info);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (uuid == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    parse_uuid(info->uuid, uuid);
    return CUDA_SUCCESS;
}

/* The first version differs only for MIG instances, which gpusim does not have. */
GM_SIM_CUDA_API CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
    return cuDeviceGetUuid_v2(uuid, dev);
}

GM_SIM_CUDA_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    const struct gm_sim_gpu_info *info;
    CUresult rc = get_dev(dev, &info);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (bytes == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *bytes = info->memory_total;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
    size_t b = 0;
    CUresult rc = cuDeviceTotalMem_v2(bytes != NULL ? &b : NULL, dev);
    if (rc == CUDA_SUCCESS)
        *bytes = b > UINT32_MAX ? UINT32_MAX : (unsigned int)b;
    return rc;
}

/* The rest of a T4's (Turing, sm_75) limits; those that depend on the device come from the
 * state. */
static int attribute(const struct gm_sim_gpu_info *info, int compute_mode, CUdevice_attribute a,
                     int *out)
{
    switch (a) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
        *out = 1024;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X:
        *out = 1024;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y:
        *out = 1024;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z:
        *out = 64;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X:
        *out = 2147483647;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y:
        *out = 65535;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z:
        *out = 65535;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK:
        *out = 49152;
        break;
    case CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY:
        *out = 65536;
        break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE:
        *out = 32;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_PITCH:
        *out = 2147483647;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK:
        *out = 65536;
        break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE:
        *out = 1590000;
        break; /* kHz */
    case CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT:
        *out = 512;
        break;
    case CU_DEVICE_ATTRIBUTE_GPU_OVERLAP:
        *out = 1;
        break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
        *out = (int)info->sms;
        break;
    case CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT:
        *out = 0;
        break;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED:
        *out = 0;
        break;
    case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY:
        *out = 1;
        break;
    /* NVML and CUDA number the compute modes alike: 0 default, 2 prohibited, 3 exclusive. */
    case CU_DEVICE_ATTRIBUTE_COMPUTE_MODE:
        *out = compute_mode;
        break;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS:
        *out = 1;
        break;
    case CU_DEVICE_ATTRIBUTE_ECC_ENABLED:
        *out = 1;
        break;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID:
        *out = (int)info->pci_bus;
        break;
    case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID:
        *out = (int)info->pci_device;
        break;
    case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID:
        *out = (int)info->pci_domain;
        break;
    case CU_DEVICE_ATTRIBUTE_TCC_DRIVER:
        *out = 0;
        break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE:
        *out = 5001000;
        break; /* kHz */
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH:
        *out = 256;
        break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE:
        *out = 4194304;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR:
        *out = 1024;
        break;
    case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT:
        *out = 3;
        break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING:
        *out = 1;
        break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
        *out = info->cc_major;
        break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
        *out = info->cc_minor;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR:
        *out = 65536;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR:
        *out = 65536;
        break;
    case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY:
        *out = 1;
        break;
    case CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD:
        *out = 0;
        break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN:
        *out = 65536;
        break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED:
        *out = 1;
        break;
    default:
        /* Attributes this header does not name: 0 for the newer capability flags, as an old
         * GPU answers, but still an error for numbers no driver knows. */
        if ((int)a <= 0 || (int)a > 140)
            return CUDA_ERROR_INVALID_VALUE;
        *out = 0;
    }
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    const struct gm_sim_gpu_info *info;
    CUresult rc = get_dev(dev, &info);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pi == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    int mode = gm_sim_cuda_g.st->gpus[gm_sim_cuda_device(dev)->gpu].compute_mode;
    return attribute(info, mode, attrib, pi);
}

GM_SIM_CUDA_API CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice dev)
{
    const struct gm_sim_gpu_info *info;
    CUresult rc = get_dev(dev, &info);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (major == NULL || minor == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *major = info->cc_major;
    *minor = info->cc_minor;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
    const struct gm_sim_gpu_info *info;
    CUresult rc = get_dev(dev, &info);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pciBusId == NULL || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    /* CUDA's form is a 4-digit domain, "0000:3B:00.0"; NVML's has eight. */
    snprintf(pciBusId, (size_t)len, "%04x:%02x:%02x.0", info->pci_domain & 0xffff, info->pci_bus,
             info->pci_device);
    return CUDA_SUCCESS;
}
