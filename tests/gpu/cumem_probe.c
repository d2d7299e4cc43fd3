/* The cuMemCreate question on a real driver: creates physical memory with cuMemCreate, maps it
 * with cuMemAddressReserve/cuMemMap/cuMemSetAccess, and prints at each step what cuMemGetInfo
 * and NVML's per-process usedGpuMemory say. libcuda.so.1 and libnvidia-ml.so.1 are dlopen'ed, so
 * the same program runs on a real driver and on gpusim (which has no cuMemMap: those steps are
 * then reported as absent). Usage: gm-cumem-probe [MIB] (default 256). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cuda_api.h"
#include "common/nvml_api.h"

/* CUmemAccessDesc and its enum, layout from NVIDIA's cuda.h (CUDA 12). */
struct probe_access_desc {
    CUmemLocation location;
    int flags; /* CU_MEM_ACCESS_FLAGS_PROT_READWRITE = 3 */
};

static void *cu, *nv;
static nvmlDevice_t nvdev;

static void *sym(void *lib, const char *name)
{
    return lib != NULL ? dlsym(lib, name) : NULL;
}

/* One line per step: the call's result and both views of memory. */
static void report(const char *step, int rc)
{
    CUresult (*meminfo)(size_t *, size_t *) =
        (CUresult(*)(size_t *, size_t *))sym(cu, "cuMemGetInfo_v2");
    size_t free_b = 0, total_b = 0;
    printf("step %-8s rc %d", step, rc);
    if (meminfo != NULL && meminfo(&free_b, &total_b) == CUDA_SUCCESS)
        printf(" cuMemGetInfo free %zu MiB total %zu MiB used %zu MiB", free_b >> 20, total_b >> 20,
               (total_b - free_b) >> 20);
    nvmlReturn_t (*procs)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *) =
        (nvmlReturn_t(*)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *))sym(
            nv, "nvmlDeviceGetComputeRunningProcesses_v3");
    const char *mine = "absent";
    char buf[64];
    if (procs != NULL && nvdev != NULL) {
        nvmlProcessInfo_t info[64];
        unsigned int n = 64;
        if (procs(nvdev, &n, info) == NVML_SUCCESS) {
            mine = "not listed";
            for (unsigned int i = 0; i < n; i++)
                if (info[i].pid == (unsigned int)getpid()) {
                    if (info[i].usedGpuMemory == (unsigned long long)NVML_VALUE_NOT_AVAILABLE)
                        mine = "n/a";
                    else {
                        snprintf(buf, sizeof(buf), "%llu MiB", info[i].usedGpuMemory >> 20);
                        mine = buf;
                    }
                }
        }
    }
    printf(" nvml usedGpuMemory %s\n", mine);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    size_t size = (size_t)(argc > 1 ? strtoull(argv[1], NULL, 10) : 256) << 20;
    cu = dlopen("libcuda.so.1", RTLD_NOW);
    nv = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (cu == NULL) {
        printf("libcuda.so.1: %s\n", dlerror());
        return 2;
    }
    CUresult (*init)(unsigned int) = (CUresult(*)(unsigned int))sym(cu, "cuInit");
    CUresult (*retain)(CUcontext *, CUdevice) =
        (CUresult(*)(CUcontext *, CUdevice))sym(cu, "cuDevicePrimaryCtxRetain");
    CUresult (*setcur)(CUcontext) = (CUresult(*)(CUcontext))sym(cu, "cuCtxSetCurrent");
    CUresult (*busid)(char *, int, CUdevice) =
        (CUresult(*)(char *, int, CUdevice))sym(cu, "cuDeviceGetPCIBusId");
    CUresult (*gran)(size_t *, const CUmemAllocationProp *, CUmemAllocationGranularity_flags) =
        (CUresult(*)(size_t *, const CUmemAllocationProp *, CUmemAllocationGranularity_flags))sym(
            cu, "cuMemGetAllocationGranularity");
    CUresult (*create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                       unsigned long long) =
        (CUresult(*)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                     unsigned long long))sym(cu, "cuMemCreate");
    CUresult (*release)(CUmemGenericAllocationHandle) =
        (CUresult(*)(CUmemGenericAllocationHandle))sym(cu, "cuMemRelease");
    CUresult (*reserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long) =
        (CUresult(*)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long))sym(
            cu, "cuMemAddressReserve");
    CUresult (*map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long) =
        (CUresult(*)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle,
                     unsigned long long))sym(cu, "cuMemMap");
    CUresult (*access)(CUdeviceptr, size_t, const struct probe_access_desc *, size_t) =
        (CUresult(*)(CUdeviceptr, size_t, const struct probe_access_desc *, size_t))sym(
            cu, "cuMemSetAccess");
    CUresult (*unmap)(CUdeviceptr, size_t) =
        (CUresult(*)(CUdeviceptr, size_t))sym(cu, "cuMemUnmap");
    CUresult (*unreserve)(CUdeviceptr, size_t) =
        (CUresult(*)(CUdeviceptr, size_t))sym(cu, "cuMemAddressFree");
    if (init == NULL || retain == NULL || setcur == NULL || create == NULL || release == NULL ||
        gran == NULL) {
        printf("libcuda.so.1 lacks the entry points of cuMemCreate\n");
        return 2;
    }
    CUcontext ctx;
    int rc = init(0);
    if (rc == CUDA_SUCCESS)
        rc = retain(&ctx, 0);
    if (rc == CUDA_SUCCESS)
        rc = setcur(ctx);
    if (rc != CUDA_SUCCESS) {
        printf("no CUDA context on device 0: rc %d\n", rc);
        return 2;
    }
    nvmlReturn_t (*nvinit)(void) = (nvmlReturn_t(*)(void))sym(nv, "nvmlInit_v2");
    nvmlReturn_t (*bybus)(const char *, nvmlDevice_t *) =
        (nvmlReturn_t(*)(const char *, nvmlDevice_t *))sym(nv, "nvmlDeviceGetHandleByPciBusId_v2");
    char bus[32];
    if (nvinit != NULL && bybus != NULL && busid != NULL && nvinit() == NVML_SUCCESS &&
        busid(bus, sizeof(bus), 0) == CUDA_SUCCESS && bybus(bus, &nvdev) != NVML_SUCCESS)
        nvdev = NULL;
    report("context", 0);

    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof(prop));
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    size_t g = 0;
    rc = gran(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    if (rc == CUDA_SUCCESS && g > 0)
        size = (size + g - 1) / g * g;
    printf("granularity %zu KiB, size %zu MiB\n", g >> 10, size >> 20);
    CUmemGenericAllocationHandle h = 0;
    rc = create(&h, size, &prop, 0);
    report("create", rc);
    int created = rc == CUDA_SUCCESS;
    CUdeviceptr va = 0;
    if (created && reserve != NULL && map != NULL && access != NULL) {
        rc = reserve(&va, size, 0, 0, 0);
        report("reserve", rc);
        if (rc == CUDA_SUCCESS) {
            rc = map(va, size, 0, h, 0);
            report("map", rc);
            struct probe_access_desc d = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, 3};
            if (rc == CUDA_SUCCESS) {
                rc = access(va, size, &d, 1);
                report("access", rc);
                if (unmap != NULL)
                    report("unmap", unmap(va, size));
            }
            if (unreserve != NULL)
                unreserve(va, size);
        }
    } else if (created) {
        printf("cuMemMap: not exported by this driver\n");
    }
    if (created)
        report("release", release(h));
    printf("done\n");
    return created ? 0 : 1;
}
