/* NVML for the daemon: dlopen'ed by soname and never linked, so that one binary runs on a real
 * driver, on gpusim, and on a machine with neither. Every entry point goes through a pointer
 * typed from its declaration in common/nvml_api.h; a symbol the loaded library lacks is an
 * error value, never a crash. */
#include "daemon/gpu.h"

#include "common/log.h"
#include "common/nvml_api.h"

#include <dlfcn.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* X(symbol, older name to fall back to or NULL, required). Older drivers lack some _vN names;
 * the fallbacks take the same arguments. */
/* Declared here, not in nvml_api.h: gpusim defines its entry point with the array as void *. */
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int valuesCount,
                                      nvmlFieldValue_t *values);

#define GM_NVML_SYMBOLS(X)                                                                         \
    X(nvmlInit_v2, "nvmlInit", 1)                                                                  \
    X(nvmlShutdown, NULL, 1)                                                                       \
    X(nvmlErrorString, NULL, 1)                                                                    \
    X(nvmlDeviceGetCount_v2, "nvmlDeviceGetCount", 1)                                              \
    X(nvmlDeviceGetHandleByIndex_v2, "nvmlDeviceGetHandleByIndex", 1)                              \
    X(nvmlSystemGetDriverVersion, NULL, 0)                                                         \
    X(nvmlSystemGetNVMLVersion, NULL, 0)                                                           \
    X(nvmlSystemGetCudaDriverVersion_v2, "nvmlSystemGetCudaDriverVersion", 0)                      \
    X(nvmlSystemGetProcessName, NULL, 0)                                                           \
    X(nvmlDeviceGetName, NULL, 0)                                                                  \
    X(nvmlDeviceGetUUID, NULL, 0)                                                                  \
    X(nvmlDeviceGetPciInfo_v3, "nvmlDeviceGetPciInfo_v2", 0)                                       \
    X(nvmlDeviceGetMemoryInfo, NULL, 0)                                                            \
    X(nvmlDeviceGetUtilizationRates, NULL, 0)                                                      \
    X(nvmlDeviceGetTemperature, NULL, 0)                                                           \
    X(nvmlDeviceGetPowerUsage, NULL, 0)                                                            \
    X(nvmlDeviceGetEnforcedPowerLimit, "nvmlDeviceGetPowerManagementLimit", 0)                     \
    X(nvmlDeviceGetPerformanceState, NULL, 0)                                                      \
    X(nvmlDeviceGetComputeMode, NULL, 0)                                                           \
    X(nvmlDeviceSetComputeMode, NULL, 0)                                                           \
    X(nvmlDeviceGetPersistenceMode, NULL, 0)                                                       \
    X(nvmlDeviceGetDisplayActive, NULL, 0)                                                         \
    X(nvmlDeviceGetFanSpeed, NULL, 0)                                                              \
    X(nvmlDeviceGetTotalEccErrors, NULL, 0)                                                        \
    X(nvmlDeviceGetMigMode, NULL, 0)                                                               \
    X(nvmlDeviceGetCudaComputeCapability, NULL, 0)                                                 \
    X(nvmlDeviceGetComputeRunningProcesses_v3, "nvmlDeviceGetComputeRunningProcesses_v2", 0)       \
    X(nvmlDeviceGetGraphicsRunningProcesses_v3, "nvmlDeviceGetGraphicsRunningProcesses_v2", 0)     \
    X(nvmlDeviceGetMPSComputeRunningProcesses_v3, "nvmlDeviceGetMPSComputeRunningProcesses_v2", 0) \
    X(nvmlDeviceGetFieldValues, NULL, 0)                                                           \
    X(nvmlDeviceGetProcessUtilization, NULL, 0)                                                    \
    X(nvmlDeviceGetSerial, NULL, 0)                                                                \
    X(nvmlDeviceGetVbiosVersion, NULL, 0)                                                          \
    X(nvmlDeviceGetMinorNumber, NULL, 0)                                                           \
    X(nvmlDeviceGetClockInfo, NULL, 0)                                                             \
    X(nvmlDeviceGetMaxClockInfo, NULL, 0)                                                          \
    X(nvmlDeviceGetCurrPcieLinkGeneration, NULL, 0)                                                \
    X(nvmlDeviceGetCurrPcieLinkWidth, NULL, 0)                                                     \
    X(nvmlDeviceGetMaxPcieLinkGeneration, NULL, 0)                                                 \
    X(nvmlDeviceGetMaxPcieLinkWidth, NULL, 0)                                                      \
    X(nvmlDeviceGetEncoderUtilization, NULL, 0)                                                    \
    X(nvmlDeviceGetDecoderUtilization, NULL, 0)                                                    \
    X(nvmlDeviceGetMemoryInfo_v2, NULL, 0)                                                         \
    X(nvmlDeviceGetEccMode, NULL, 0)                                                               \
    X(nvmlDeviceGetPowerManagementLimit, NULL, 0)                                                  \
    X(nvmlDeviceGetCurrentClocksEventReasons, "nvmlDeviceGetCurrentClocksThrottleReasons", 0)

static struct nvml_syms {
#define GM_X(sym, fallback, required) __typeof__(&sym) sym;
    GM_NVML_SYMBOLS(GM_X)
#undef GM_X
} nv;

static const struct {
    const char *name, *fallback;
    int required;
    size_t offset;
} nvml_syms[] = {
#define GM_X(sym, fallback, required) {#sym, fallback, required, offsetof(struct nvml_syms, sym)},
    GM_NVML_SYMBOLS(GM_X)
#undef GM_X
};

static void *lib;
static int ngpus;

/* Call an NVML entry point through its typed pointer; missing is FUNCTION_NOT_FOUND. */
#define NV(sym, ...) (nv.sym != NULL ? nv.sym(__VA_ARGS__) : NVML_ERROR_FUNCTION_NOT_FOUND)

static const char *nv_strerror(nvmlReturn_t rc)
{
    if (rc == NVML_ERROR_FUNCTION_NOT_FOUND && nv.nvmlErrorString == NULL)
        return "Function Not Found";
    return nv.nvmlErrorString != NULL ? nv.nvmlErrorString(rc) : "unknown NVML error";
}

static int lookup(void *h, const char *path, struct gm_error *err)
{
    for (size_t i = 0; i < sizeof(nvml_syms) / sizeof(nvml_syms[0]); i++) {
        void *p = dlsym(h, nvml_syms[i].name);
        if (p == NULL && nvml_syms[i].fallback != NULL)
            p = dlsym(h, nvml_syms[i].fallback);
        if (p == NULL && nvml_syms[i].required)
            return gm_err(err, GM_EDRIVER, "NVML %s: lacks %s", path, nvml_syms[i].name);
        /* POSIX guarantees that dlsym's object pointers convert to function pointers. */
        memcpy((char *)&nv + nvml_syms[i].offset, &p, sizeof(p));
    }
    return 0;
}

static void unload(void)
{
    if (lib != NULL) {
        if (nv.nvmlShutdown != NULL)
            nv.nvmlShutdown();
        dlclose(lib);
    }
    lib = NULL;
    ngpus = 0;
    memset(&nv, 0, sizeof(nv));
}

/* Load and initialise the library at path (a soname or a file). */
static int load(const char *path, struct gm_error *err)
{
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        return gm_err(err, GM_EDRIVER, "NVML %s: cannot load: %s", path,
                      why != NULL ? why : "unknown error");
    }
    lib = h;
    int rc = lookup(h, path, err);
    if (rc < 0) {
        memset(&nv, 0, sizeof(nv));
        unload();
        return rc;
    }
    nvmlReturn_t nrc = nv.nvmlInit_v2();
    if (nrc != NVML_SUCCESS) {
        rc = gm_err(err, GM_EDRIVER, "NVML %s: nvmlInit failed: %s", path, nv_strerror(nrc));
        nv.nvmlShutdown = NULL; /* nothing to shut down */
        unload();
        return rc;
    }
    unsigned n = 0;
    nrc = nv.nvmlDeviceGetCount_v2(&n);
    if (nrc != NVML_SUCCESS) {
        rc = gm_err(err, GM_EDRIVER, "NVML %s: nvmlDeviceGetCount failed: %s", path,
                    nv_strerror(nrc));
        unload();
        return rc;
    }
    ngpus = (int)n;
    return 0;
}

static void fill_info(struct gm_driver_info *info)
{
    memset(info, 0, sizeof(*info));
    int is_sim = dlsym(lib, "gpusim_nvml_version") != NULL;
    info->kind = is_sim ? GM_DRIVER_SIM : GM_DRIVER_NVML;
    if (NV(nvmlSystemGetDriverVersion, info->driver_version,
           (unsigned)sizeof(info->driver_version)) != NVML_SUCCESS)
        info->driver_version[0] = '\0';
    if (NV(nvmlSystemGetNVMLVersion, info->nvml_version, (unsigned)sizeof(info->nvml_version)) !=
        NVML_SUCCESS)
        info->nvml_version[0] = '\0';
    int cuda = 0;
    if (NV(nvmlSystemGetCudaDriverVersion_v2, &cuda) == NVML_SUCCESS)
        snprintf(info->cuda_version, sizeof(info->cuda_version), "%d.%d",
                 NVML_CUDA_DRIVER_VERSION_MAJOR(cuda), NVML_CUDA_DRIVER_VERSION_MINOR(cuda));
    Dl_info dl;
    void *init_addr;
    memcpy(&init_addr, &nv.nvmlInit_v2, sizeof(init_addr));
    if (dladdr(init_addr, &dl) != 0 && dl.dli_fname != NULL) {
        char real[PATH_MAX];
        snprintf(info->library, sizeof(info->library), "%s",
                 realpath(dl.dli_fname, real) != NULL ? real : dl.dli_fname);
    }
    if (is_sim) {
        snprintf(info->sim_dir, sizeof(info->sim_dir), "%s", info->library);
        char *slash = strrchr(info->sim_dir, '/');
        if (slash != NULL)
            *slash = '\0';
    }
}

static int load_sim(const char *sim_dir, struct gm_error *err)
{
    if (sim_dir == NULL || sim_dir[0] == '\0')
        return gm_err(err, GM_EINVAL, "driver sim: no gpusim directory given");
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/libnvidia-ml.so.1", sim_dir) >= sizeof(path))
        return gm_err(err, GM_EINVAL, "driver sim: gpusim directory too long");
    return load(path, err);
}

int gm_gpu_open(const char *mode, const char *sim_dir, struct gm_driver_info *info,
                struct gm_error *err)
{
    if (lib != NULL)
        return gm_err(err, GM_EINVAL, "GPU driver: already open");
    if (mode == NULL)
        mode = "auto";
    int rc;
    if (strcmp(mode, "nvml") == 0) {
        rc = load("libnvidia-ml.so.1", err);
    } else if (strcmp(mode, "sim") == 0) {
        rc = load_sim(sim_dir, err);
        if (rc == 0 && dlsym(lib, "gpusim_nvml_version") == NULL) {
            unload();
            rc = gm_err(err, GM_EDRIVER, "driver sim: %s/libnvidia-ml.so.1 is not gpusim", sim_dir);
        }
    } else if (strcmp(mode, "auto") == 0) {
        struct gm_error real_err;
        rc = load("libnvidia-ml.so.1", &real_err);
        if (rc == 0 && ngpus == 0) {
            unload();
            rc = gm_err(&real_err, GM_EDRIVER, "NVML libnvidia-ml.so.1: no GPUs");
        }
        if (rc < 0) {
            rc = load_sim(sim_dir, err);
            if (rc < 0)
                gm_err_wrap(err, "driver auto: no usable NVIDIA driver (%s), and gpusim failed",
                            real_err.msg);
        }
    } else {
        return gm_err(err, GM_EINVAL, "driver '%s': not auto, nvml or sim", mode);
    }
    if (rc < 0)
        return rc;
    if (info != NULL)
        fill_info(info);
    return 0;
}

void gm_gpu_close(void)
{
    unload();
}

int gm_gpu_count(void)
{
    return lib != NULL ? ngpus : 0;
}

static int handle(int index, nvmlDevice_t *dev, struct gm_error *err)
{
    if (lib == NULL)
        return gm_err(err, GM_EDRIVER, "GPU %d: the GPU driver is not open", index);
    if (index < 0 || index >= ngpus)
        return gm_err(err, GM_ENOTFOUND, "GPU %d: no such GPU (this node has %d)", index, ngpus);
    nvmlReturn_t rc = nv.nvmlDeviceGetHandleByIndex_v2((unsigned)index, dev);
    if (rc != NVML_SUCCESS)
        return gm_err(err, GM_EDRIVER, "GPU %d: nvmlDeviceGetHandleByIndex: %s", index,
                      nv_strerror(rc));
    return 0;
}

/* An unsigned NVML reading, or -1 (N/A) when the device does not support it. */
#define OPTIONAL_UINT(dst, call)                                                                   \
    do {                                                                                           \
        unsigned v_ = 0;                                                                           \
        (dst) = (call) == NVML_SUCCESS ? (int)v_ : -1;                                             \
    } while (0)

/* One process list, grown until it fits: it may change between the size query and the read. */
static int read_list(int index, const char *what,
                     nvmlReturn_t (*fn)(nvmlDevice_t, unsigned *, nvmlProcessInfo_t *),
                     nvmlDevice_t dev, nvmlProcessInfo_t **out, unsigned *n, struct gm_error *err)
{
    *out = NULL;
    *n = 0;
    if (fn == NULL)
        return 0;
    unsigned cap = 16;
    for (int attempt = 0; attempt < 8; attempt++) {
        nvmlProcessInfo_t *v = calloc(cap, sizeof(*v));
        if (v == NULL)
            return gm_err(err, GM_ENOMEM, "GPU %d: %s: out of memory", index, what);
        unsigned count = cap;
        nvmlReturn_t rc = fn(dev, &count, v);
        if (rc == NVML_SUCCESS) {
            *out = v;
            *n = count;
            return 0;
        }
        free(v);
        if (rc == NVML_ERROR_NOT_SUPPORTED)
            return 0;
        if (rc != NVML_ERROR_INSUFFICIENT_SIZE)
            return gm_err(err, GM_EDRIVER, "GPU %d: %s: %s", index, what, nv_strerror(rc));
        cap = count + 8;
    }
    return gm_err(err, GM_EDRIVER, "GPU %d: %s: the process list keeps growing", index, what);
}

enum { SEEN_C = 1, SEEN_G = 2, SEEN_M = 4 };

static struct gm_gpu_proc *proc_slot(struct gm_gpu_live *out, int *seen, unsigned pid)
{
    for (int i = 0; i < out->nprocs; i++)
        if (out->procs[i].pid == pid)
            return &out->procs[i];
    if (out->nprocs >= GM_GPU_MAX_PROCS)
        return NULL;
    struct gm_gpu_proc *p = &out->procs[out->nprocs];
    seen[out->nprocs] = 0;
    out->nprocs++;
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    p->used_memory = UINT64_MAX;
    return p;
}

static const char *proc_type(int seen)
{
    /* As nvidia-smi: an MPS client also listed as compute is "M+C". */
    if (seen & SEEN_M)
        return (seen & SEEN_C) ? "M+C" : "M";
    if (seen & SEEN_C)
        return (seen & SEEN_G) ? "C+G" : "C";
    return "G";
}

/* Each process's SM and memory utilisation: the newest of the driver's samples for its pid
 * (nvidia-smi pmon's sm and mem columns). */
static void proc_utilization(nvmlDevice_t dev, struct gm_gpu_live *out)
{
    for (int i = 0; i < out->nprocs; i++)
        out->procs[i].sm_util = out->procs[i].mem_util = -1;
    unsigned n = 0;
    if (nv.nvmlDeviceGetProcessUtilization == NULL ||
        nv.nvmlDeviceGetProcessUtilization(dev, NULL, &n, 0) != NVML_ERROR_INSUFFICIENT_SIZE ||
        n == 0)
        return;
    n += 8; /* samples may arrive between the two calls */
    nvmlProcessUtilizationSample_t *v = calloc(n, sizeof(*v));
    if (v == NULL)
        return;
    if (nv.nvmlDeviceGetProcessUtilization(dev, v, &n, 0) == NVML_SUCCESS) {
        for (int i = 0; i < out->nprocs; i++) {
            unsigned long long newest = 0;
            for (unsigned k = 0; k < n; k++) {
                if (v[k].pid != out->procs[i].pid || v[k].timeStamp < newest)
                    continue;
                newest = v[k].timeStamp;
                out->procs[i].sm_util = (int)v[k].smUtil;
                out->procs[i].mem_util = (int)v[k].memUtil;
            }
        }
    }
    free(v);
}

static int query_procs(int index, nvmlDevice_t dev, struct gm_gpu_live *out, struct gm_error *err)
{
    struct {
        const char *what;
        nvmlReturn_t (*fn)(nvmlDevice_t, unsigned *, nvmlProcessInfo_t *);
        int bit;
    } lists[] = {
        {"compute processes", nv.nvmlDeviceGetComputeRunningProcesses_v3, SEEN_C},
        {"graphics processes", nv.nvmlDeviceGetGraphicsRunningProcesses_v3, SEEN_G},
        {"MPS processes", nv.nvmlDeviceGetMPSComputeRunningProcesses_v3, SEEN_M},
    };
    int seen[GM_GPU_MAX_PROCS] = {0};
    out->nprocs = 0;
    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
        nvmlProcessInfo_t *v;
        unsigned n;
        int rc = read_list(index, lists[l].what, lists[l].fn, dev, &v, &n, err);
        if (rc < 0)
            return rc;
        for (unsigned i = 0; i < n; i++) {
            struct gm_gpu_proc *p = proc_slot(out, seen, v[i].pid);
            if (p == NULL)
                break;
            seen[p - out->procs] |= lists[l].bit;
            if (v[i].usedGpuMemory != (unsigned long long)NVML_VALUE_NOT_AVAILABLE &&
                p->used_memory == UINT64_MAX)
                p->used_memory = v[i].usedGpuMemory;
        }
        free(v);
    }
    proc_utilization(dev, out);
    for (int i = 0; i < out->nprocs; i++) {
        struct gm_gpu_proc *p = &out->procs[i];
        snprintf(p->type, sizeof(p->type), "%s", proc_type(seen[i]));
        if (NV(nvmlSystemGetProcessName, p->pid, p->name, (unsigned)sizeof(p->name)) !=
            NVML_SUCCESS)
            snprintf(p->name, sizeof(p->name), "N/A");
    }
    return 0;
}

/* A field value as a whole number, whatever type the driver answers with. */
static unsigned long long field_uint(const nvmlFieldValue_t *f)
{
    switch (f->valueType) {
    case NVML_VALUE_TYPE_DOUBLE:
        return f->value.dVal < 0 ? 0 : (unsigned long long)f->value.dVal;
    case NVML_VALUE_TYPE_UNSIGNED_LONG:
        return f->value.ulVal;
    case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
        return f->value.ullVal;
    case NVML_VALUE_TYPE_SIGNED_LONG_LONG:
        return f->value.sllVal < 0 ? 0 : (unsigned long long)f->value.sllVal;
    case NVML_VALUE_TYPE_SIGNED_INT:
        return f->value.siVal < 0 ? 0 : (unsigned long long)f->value.siVal;
    case NVML_VALUE_TYPE_UNSIGNED_SHORT:
        return f->value.usVal;
    default:
        return f->value.uiVal;
    }
}

/* What nvidia-smi's query fields and -q read besides the table's values; each one the driver
 * does not support stays N/A (-1, or an empty string). */
static void query_details(nvmlDevice_t dev, struct gm_gpu_live *out)
{
    if (NV(nvmlDeviceGetSerial, dev, out->serial, (unsigned)sizeof(out->serial)) != NVML_SUCCESS)
        out->serial[0] = '\0';
    if (NV(nvmlDeviceGetVbiosVersion, dev, out->vbios, (unsigned)sizeof(out->vbios)) !=
        NVML_SUCCESS)
        out->vbios[0] = '\0';
    OPTIONAL_UINT(out->minor_number, NV(nvmlDeviceGetMinorNumber, dev, &v_));
    OPTIONAL_UINT(out->clock_sm, NV(nvmlDeviceGetClockInfo, dev, NVML_CLOCK_SM, &v_));
    OPTIONAL_UINT(out->clock_mem, NV(nvmlDeviceGetClockInfo, dev, NVML_CLOCK_MEM, &v_));
    OPTIONAL_UINT(out->clock_graphics, NV(nvmlDeviceGetClockInfo, dev, NVML_CLOCK_GRAPHICS, &v_));
    OPTIONAL_UINT(out->clock_max_sm, NV(nvmlDeviceGetMaxClockInfo, dev, NVML_CLOCK_SM, &v_));
    OPTIONAL_UINT(out->clock_max_mem, NV(nvmlDeviceGetMaxClockInfo, dev, NVML_CLOCK_MEM, &v_));
    OPTIONAL_UINT(out->clock_max_graphics,
                  NV(nvmlDeviceGetMaxClockInfo, dev, NVML_CLOCK_GRAPHICS, &v_));
    OPTIONAL_UINT(out->pcie_gen, NV(nvmlDeviceGetCurrPcieLinkGeneration, dev, &v_));
    OPTIONAL_UINT(out->pcie_width, NV(nvmlDeviceGetCurrPcieLinkWidth, dev, &v_));
    OPTIONAL_UINT(out->pcie_gen_max, NV(nvmlDeviceGetMaxPcieLinkGeneration, dev, &v_));
    OPTIONAL_UINT(out->pcie_width_max, NV(nvmlDeviceGetMaxPcieLinkWidth, dev, &v_));
    unsigned period;
    OPTIONAL_UINT(out->util_encoder, NV(nvmlDeviceGetEncoderUtilization, dev, &v_, &period));
    OPTIONAL_UINT(out->util_decoder, NV(nvmlDeviceGetDecoderUtilization, dev, &v_, &period));
    OPTIONAL_UINT(out->power_mgmt_limit_mw, NV(nvmlDeviceGetPowerManagementLimit, dev, &v_));
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
    out->memory_driver_reserved =
        NV(nvmlDeviceGetMemoryInfo_v2, dev, &m2) == NVML_SUCCESS ? (long long)m2.reserved : -1;
    nvmlEnableState_t cur, pending;
    out->ecc_mode = NV(nvmlDeviceGetEccMode, dev, &cur, &pending) == NVML_SUCCESS ? (int)cur : -1;
    /* Field values: what the device does not have answers per field. */
    nvmlFieldValue_t fv[2] = {{.fieldId = NVML_FI_DEV_MEMORY_TEMP},
                              {.fieldId = NVML_FI_DEV_POWER_AVERAGE}};
    out->temperature_memory = out->power_average_mw = -1;
    if (NV(nvmlDeviceGetFieldValues, dev, 2, fv) == NVML_SUCCESS) {
        if (fv[0].nvmlReturn == NVML_SUCCESS)
            out->temperature_memory = (int)field_uint(&fv[0]);
        if (fv[1].nvmlReturn == NVML_SUCCESS)
            out->power_average_mw = (int)field_uint(&fv[1]);
    }
    unsigned long long reasons;
    out->clocks_event_reasons =
        NV(nvmlDeviceGetCurrentClocksEventReasons, dev, &reasons) == NVML_SUCCESS
            ? (long long)reasons
            : -1;
}

static int query(int index, struct gm_gpu_live *out, struct gm_error *err)
{
    nvmlDevice_t dev;
    int rc = handle(index, &dev, err);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    out->index = index;

    nvmlReturn_t nrc;
    nvmlMemory_t mem;
    nvmlPciInfo_t pci;
    if ((nrc = NV(nvmlDeviceGetName, dev, out->name, (unsigned)sizeof(out->name))) != 0 ||
        (nrc = NV(nvmlDeviceGetUUID, dev, out->uuid, (unsigned)sizeof(out->uuid))) != 0 ||
        (nrc = NV(nvmlDeviceGetPciInfo_v3, dev, &pci)) != 0 ||
        (nrc = NV(nvmlDeviceGetMemoryInfo, dev, &mem)) != 0)
        return gm_err(err, GM_EDRIVER, "GPU %d: reading name, UUID, PCI id and memory: %s", index,
                      nv_strerror(nrc));
    snprintf(out->pci_bus_id, sizeof(out->pci_bus_id), "%s", pci.busId);
    out->memory_total = mem.total;
    out->memory_used = mem.used;
    out->memory_free = mem.free;

    nvmlUtilization_t util;
    if (NV(nvmlDeviceGetUtilizationRates, dev, &util) == NVML_SUCCESS) {
        out->util_gpu = (int)util.gpu;
        out->util_memory = (int)util.memory;
    } else {
        out->util_gpu = out->util_memory = -1;
    }
    OPTIONAL_UINT(out->temperature, NV(nvmlDeviceGetTemperature, dev, NVML_TEMPERATURE_GPU, &v_));
    OPTIONAL_UINT(out->power_draw_mw, NV(nvmlDeviceGetPowerUsage, dev, &v_));
    OPTIONAL_UINT(out->power_limit_mw, NV(nvmlDeviceGetEnforcedPowerLimit, dev, &v_));
    OPTIONAL_UINT(out->fan, NV(nvmlDeviceGetFanSpeed, dev, &v_));

    nvmlPstates_t ps;
    out->pstate = NV(nvmlDeviceGetPerformanceState, dev, &ps) == NVML_SUCCESS ? (int)ps : -1;
    nvmlComputeMode_t cm;
    out->compute_mode = NV(nvmlDeviceGetComputeMode, dev, &cm) == NVML_SUCCESS ? (int)cm : -1;
    nvmlEnableState_t es;
    out->persistence = NV(nvmlDeviceGetPersistenceMode, dev, &es) == NVML_SUCCESS ? (int)es : -1;
    out->display_active = NV(nvmlDeviceGetDisplayActive, dev, &es) == NVML_SUCCESS ? (int)es : -1;
    unsigned long long ecc;
    out->ecc_uncorrected_volatile =
        NV(nvmlDeviceGetTotalEccErrors, dev, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC,
           &ecc) == NVML_SUCCESS
            ? (long long)ecc
            : -1;
    unsigned mig_cur, mig_pending;
    out->mig_mode =
        NV(nvmlDeviceGetMigMode, dev, &mig_cur, &mig_pending) == NVML_SUCCESS ? (int)mig_cur : -1;
    if (NV(nvmlDeviceGetCudaComputeCapability, dev, &out->cc_major, &out->cc_minor) != NVML_SUCCESS)
        out->cc_major = out->cc_minor = -1;
    query_details(dev, out);
    return query_procs(index, dev, out, err);
}

/* Per GPU: 1 while its queries fail, so that the log says so once, and once when it reads again. */
#define TRACKED 64
static int failing[TRACKED];

int gm_gpu_query(int index, struct gm_gpu_live *out, struct gm_error *err)
{
    struct gm_error local;
    struct gm_error *e = err != NULL ? err : &local;
    int rc = query(index, out, e);
    if (index < 0 || index >= TRACKED || (rc < 0 && rc != -GM_EDRIVER))
        return rc;
    if (rc < 0 && __atomic_exchange_n(&failing[index], 1, __ATOMIC_RELAXED) == 0)
        gm_warn("%s; the GPU is reported as lost until it reads again", e->msg);
    else if (rc == 0 && __atomic_exchange_n(&failing[index], 0, __ATOMIC_RELAXED) == 1)
        gm_info("GPU %d: reads again", index);
    return rc;
}

int gm_gpu_set_compute_mode(int index, int mode, struct gm_error *err)
{
    nvmlDevice_t dev;
    int rc = handle(index, &dev, err);
    if (rc < 0)
        return rc;
    nvmlReturn_t nrc = NV(nvmlDeviceSetComputeMode, dev, (nvmlComputeMode_t)mode);
    switch (nrc) {
    case NVML_SUCCESS:
        return 0;
    case NVML_ERROR_NO_PERMISSION:
        return gm_err(err, GM_EPERM, "GPU %d: setting the compute mode needs root", index);
    case NVML_ERROR_INVALID_ARGUMENT:
    case NVML_ERROR_NOT_SUPPORTED:
        return gm_err(err, GM_EINVAL, "GPU %d: compute mode %d (%s): %s", index, mode,
                      gm_compute_mode_name(mode), nv_strerror(nrc));
    default:
        return gm_err(err, GM_EDRIVER, "GPU %d: setting compute mode %s: %s", index,
                      gm_compute_mode_name(mode), nv_strerror(nrc));
    }
}

const char *gm_compute_mode_name(int mode)
{
    switch (mode) {
    case NVML_COMPUTEMODE_DEFAULT:
        return "Default";
    case NVML_COMPUTEMODE_EXCLUSIVE_THREAD:
        return "Exclusive_Thread";
    case NVML_COMPUTEMODE_PROHIBITED:
        return "Prohibited";
    case NVML_COMPUTEMODE_EXCLUSIVE_PROCESS:
        return "Exclusive_Process";
    default:
        return "Unknown";
    }
}

const char *gm_compute_mode_short(int mode)
{
    switch (mode) {
    case NVML_COMPUTEMODE_DEFAULT:
        return "Default";
    case NVML_COMPUTEMODE_EXCLUSIVE_THREAD:
        return "E. Thread";
    case NVML_COMPUTEMODE_PROHIBITED:
        return "Prohibited";
    case NVML_COMPUTEMODE_EXCLUSIVE_PROCESS:
        return "E. Process";
    default:
        return "N/A";
    }
}

const char *gm_driver_kind_name(enum gm_driver_kind k)
{
    return k == GM_DRIVER_SIM ? "sim" : "nvml";
}
