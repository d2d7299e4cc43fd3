/* gpusim's libcuda.so.1: cuGetProcAddress, answered from one table of every entry point, and
 * the first (CUDA 2.x/3.x) versions of the calls that later got a _v2, which the driver still
 * exports under the plain names. */
#include "gpusim/cuda/cuda_internal.h"

#include <string.h>

/* X(base name, CUDA version that introduced this variant, function). For a base name and a
 * caller's CUDA version, the driver hands out the newest variant not newer than that version:
 * ("cuMemAlloc", 12000) is cuMemAlloc_v2, ("cuMemAlloc", 3010) the 32-bit cuMemAlloc. */
#define GM_SIM_CUDA_ENTRIES(X)                                                                     \
    X(cuInit, 2000, cuInit)                                                                        \
    X(cuDriverGetVersion, 2020, cuDriverGetVersion)                                                \
    X(cuGetErrorString, 6000, cuGetErrorString)                                                    \
    X(cuGetErrorName, 6000, cuGetErrorName)                                                        \
    X(cuGetProcAddress, 11030, cuGetProcAddress)                                                   \
    X(cuGetProcAddress, 12000, cuGetProcAddress_v2)                                                \
    X(cuDeviceGet, 2000, cuDeviceGet)                                                              \
    X(cuDeviceGetCount, 2000, cuDeviceGetCount)                                                    \
    X(cuDeviceGetName, 2000, cuDeviceGetName)                                                      \
    X(cuDeviceGetUuid, 9020, cuDeviceGetUuid)                                                      \
    X(cuDeviceGetUuid, 11040, cuDeviceGetUuid_v2)                                                  \
    X(cuDeviceTotalMem, 2000, cuDeviceTotalMem)                                                    \
    X(cuDeviceTotalMem, 3020, cuDeviceTotalMem_v2)                                                 \
    X(cuDeviceGetAttribute, 2000, cuDeviceGetAttribute)                                            \
    X(cuDeviceComputeCapability, 2000, cuDeviceComputeCapability)                                  \
    X(cuDeviceGetPCIBusId, 4010, cuDeviceGetPCIBusId)                                              \
    X(cuDeviceGetDefaultMemPool, 11020, cuDeviceGetDefaultMemPool)                                 \
    X(cuDevicePrimaryCtxRetain, 7000, cuDevicePrimaryCtxRetain)                                    \
    X(cuDevicePrimaryCtxRelease, 7000, cuDevicePrimaryCtxRelease)                                  \
    X(cuDevicePrimaryCtxRelease, 11000, cuDevicePrimaryCtxRelease_v2)                              \
    X(cuDevicePrimaryCtxReset, 7000, cuDevicePrimaryCtxReset)                                      \
    X(cuDevicePrimaryCtxReset, 11000, cuDevicePrimaryCtxReset_v2)                                  \
    X(cuDevicePrimaryCtxGetState, 7000, cuDevicePrimaryCtxGetState)                                \
    X(cuDevicePrimaryCtxSetFlags, 7000, cuDevicePrimaryCtxSetFlags)                                \
    X(cuDevicePrimaryCtxSetFlags, 11000, cuDevicePrimaryCtxSetFlags_v2)                            \
    X(cuCtxCreate, 2000, cuCtxCreate)                                                              \
    X(cuCtxCreate, 3020, cuCtxCreate_v2)                                                           \
    X(cuCtxDestroy, 2000, cuCtxDestroy)                                                            \
    X(cuCtxDestroy, 4000, cuCtxDestroy_v2)                                                         \
    X(cuCtxSetCurrent, 4000, cuCtxSetCurrent)                                                      \
    X(cuCtxGetCurrent, 4000, cuCtxGetCurrent)                                                      \
    X(cuCtxPushCurrent, 2000, cuCtxPushCurrent)                                                    \
    X(cuCtxPushCurrent, 4000, cuCtxPushCurrent_v2)                                                 \
    X(cuCtxPopCurrent, 2000, cuCtxPopCurrent)                                                      \
    X(cuCtxPopCurrent, 4000, cuCtxPopCurrent_v2)                                                   \
    X(cuCtxGetDevice, 2000, cuCtxGetDevice)                                                        \
    X(cuCtxSynchronize, 2000, cuCtxSynchronize)                                                    \
    X(cuMemGetInfo, 2000, cuMemGetInfo)                                                            \
    X(cuMemGetInfo, 3020, cuMemGetInfo_v2)                                                         \
    X(cuMemAlloc, 2000, cuMemAlloc)                                                                \
    X(cuMemAlloc, 3020, cuMemAlloc_v2)                                                             \
    X(cuMemAllocPitch, 2000, cuMemAllocPitch)                                                      \
    X(cuMemAllocPitch, 3020, cuMemAllocPitch_v2)                                                   \
    X(cuMemAllocManaged, 6000, cuMemAllocManaged)                                                  \
    X(cuMemAllocAsync, 11020, cuMemAllocAsync)                                                     \
    X(cuMemAllocFromPoolAsync, 11020, cuMemAllocFromPoolAsync)                                     \
    X(cuMemFree, 2000, cuMemFree)                                                                  \
    X(cuMemFree, 3020, cuMemFree_v2)                                                               \
    X(cuMemFreeAsync, 11020, cuMemFreeAsync)                                                       \
    X(cuMemAllocHost, 2000, cuMemAllocHost)                                                        \
    X(cuMemAllocHost, 3020, cuMemAllocHost_v2)                                                     \
    X(cuMemFreeHost, 2000, cuMemFreeHost)                                                          \
    X(cuMemcpyHtoD, 2000, cuMemcpyHtoD)                                                            \
    X(cuMemcpyHtoD, 3020, cuMemcpyHtoD_v2)                                                         \
    X(cuMemcpyDtoH, 2000, cuMemcpyDtoH)                                                            \
    X(cuMemcpyDtoH, 3020, cuMemcpyDtoH_v2)                                                         \
    X(cuMemcpyDtoD, 2000, cuMemcpyDtoD)                                                            \
    X(cuMemcpyDtoD, 3020, cuMemcpyDtoD_v2)                                                         \
    X(cuMemcpyHtoDAsync, 2000, cuMemcpyHtoDAsync)                                                  \
    X(cuMemcpyHtoDAsync, 3020, cuMemcpyHtoDAsync_v2)                                               \
    X(cuMemcpyDtoHAsync, 2000, cuMemcpyDtoHAsync)                                                  \
    X(cuMemcpyDtoHAsync, 3020, cuMemcpyDtoHAsync_v2)                                               \
    X(cuMemcpyDtoDAsync, 3000, cuMemcpyDtoDAsync)                                                  \
    X(cuMemcpyDtoDAsync, 3020, cuMemcpyDtoDAsync_v2)                                               \
    X(cuMemsetD8, 2000, cuMemsetD8)                                                                \
    X(cuMemsetD8, 3020, cuMemsetD8_v2)                                                             \
    X(cuMemsetD32, 2000, cuMemsetD32)                                                              \
    X(cuMemsetD32, 3020, cuMemsetD32_v2)                                                           \
    X(cuArrayCreate, 2000, cuArrayCreate)                                                          \
    X(cuArrayCreate, 3020, cuArrayCreate_v2)                                                       \
    X(cuArray3DCreate, 2000, cuArray3DCreate)                                                      \
    X(cuArray3DCreate, 3020, cuArray3DCreate_v2)                                                   \
    X(cuArrayDestroy, 2000, cuArrayDestroy)                                                        \
    X(cuMemCreate, 10020, cuMemCreate)                                                             \
    X(cuMemRelease, 10020, cuMemRelease)                                                           \
    X(cuMemAddressReserve, 10020, cuMemAddressReserve)                                             \
    X(cuMemAddressFree, 10020, cuMemAddressFree)                                                   \
    X(cuMemMap, 10020, cuMemMap)                                                                   \
    X(cuMemUnmap, 10020, cuMemUnmap)                                                               \
    X(cuMemSetAccess, 10020, cuMemSetAccess)                                                       \
    X(cuMemGetAllocationGranularity, 10020, cuMemGetAllocationGranularity)                         \
    X(cuMemPoolCreate, 11020, cuMemPoolCreate)                                                     \
    X(cuMemPoolDestroy, 11020, cuMemPoolDestroy)                                                   \
    X(cuModuleLoadData, 2000, cuModuleLoadData)                                                    \
    X(cuModuleLoadDataEx, 2010, cuModuleLoadDataEx)                                                \
    X(cuModuleUnload, 2000, cuModuleUnload)                                                        \
    X(cuModuleGetFunction, 2000, cuModuleGetFunction)                                              \
    X(cuModuleGetGlobal, 2000, cuModuleGetGlobal)                                                  \
    X(cuModuleGetGlobal, 3020, cuModuleGetGlobal_v2)                                               \
    X(cuLaunchKernel, 4000, cuLaunchKernel)                                                        \
    X(cuLaunchKernelEx, 11060, cuLaunchKernelEx)                                                   \
    X(cuLaunchCooperativeKernel, 9000, cuLaunchCooperativeKernel)                                  \
    X(cuStreamCreate, 2000, cuStreamCreate)                                                        \
    X(cuStreamDestroy, 2000, cuStreamDestroy)                                                      \
    X(cuStreamDestroy, 4000, cuStreamDestroy_v2)                                                   \
    X(cuStreamSynchronize, 2000, cuStreamSynchronize)                                              \
    X(cuStreamQuery, 2000, cuStreamQuery)                                                          \
    X(cuStreamWaitEvent, 3020, cuStreamWaitEvent)                                                  \
    X(cuEventCreate, 2000, cuEventCreate)                                                          \
    X(cuEventDestroy, 2000, cuEventDestroy)                                                        \
    X(cuEventDestroy, 4000, cuEventDestroy_v2)                                                     \
    X(cuEventRecord, 2000, cuEventRecord)                                                          \
    X(cuEventSynchronize, 2000, cuEventSynchronize)                                                \
    X(cuEventQuery, 2000, cuEventQuery)                                                            \
    X(cuEventElapsedTime, 2000, cuEventElapsedTime)

/* The per-thread default stream variants, which cuGetProcAddress hands out instead under
 * CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM; X(base name, version, function). */
#define GM_SIM_CUDA_PTSZ_ENTRIES(X)                                                                \
    X(cuLaunchKernel, 7000, cuLaunchKernel_ptsz)                                                   \
    X(cuLaunchKernelEx, 11060, cuLaunchKernelEx_ptsz)                                              \
    X(cuLaunchCooperativeKernel, 9000, cuLaunchCooperativeKernel_ptsz)                             \
    X(cuMemAllocAsync, 11020, cuMemAllocAsync_ptsz)                                                \
    X(cuMemAllocFromPoolAsync, 11020, cuMemAllocFromPoolAsync_ptsz)                                \
    X(cuMemFreeAsync, 11020, cuMemFreeAsync_ptsz)

/* The library is linked -Bsymbolic (CMakeLists.txt), so &fn is gpusim's own function even when
 * a preloaded library exports the same name, as a real driver's table is. */
static const struct entry {
    const char *name;
    int version;
    int ptds;
    void *fn;
} entries[] = {
#define GM_X(base, version, fn) {#base, version, 0, (void *)&fn},
    GM_SIM_CUDA_ENTRIES(GM_X)
#undef GM_X
#define GM_X(base, version, fn) {#base, version, 1, (void *)&fn},
        GM_SIM_CUDA_PTSZ_ENTRIES(GM_X)
#undef GM_X
};

GM_SIM_CUDA_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                             cuuint64_t flags,
                                             CUdriverProcAddressQueryResult *symbolStatus)
{
    if (symbol == NULL || pfn == NULL ||
        flags > (CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM))
        return CUDA_ERROR_INVALID_VALUE;
    /* The newest variant not newer than the caller's version; a _ptsz one before any other
     * under CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, and never without it. */
    int want_ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    const struct entry *best = NULL;
    int known = 0;
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        const struct entry *e = &entries[i];
        if (strcmp(e->name, symbol) != 0)
            continue;
        known = 1;
        if (e->version > cudaVersion || (e->ptds && !want_ptds))
            continue;
        if (best == NULL || (e->ptds && !best->ptds) ||
            (e->ptds == best->ptds && e->version > best->version))
            best = e;
    }
    *pfn = best != NULL ? best->fn : NULL;
    if (symbolStatus != NULL)
        *symbolStatus = best != NULL ? CU_GET_PROC_ADDRESS_SUCCESS
                        : known      ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                                     : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return best != NULL ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

GM_SIM_CUDA_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                          cuuint64_t flags)
{
    return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}

/* The first versions. Those whose only change was a 64-bit size work; those that take 32-bit
 * device pointers cannot address gpusim's device memory (nor any 64-bit driver's), and say so. */
GM_SIM_CUDA_API CUresult cuMemGetInfo(unsigned int *free, unsigned int *total)
{
    size_t f = 0, t = 0;
    CUresult rc = cuMemGetInfo_v2(free != NULL ? &f : NULL, total != NULL ? &t : NULL);
    if (rc == CUDA_SUCCESS) {
        *free = f > UINT32_MAX ? UINT32_MAX : (unsigned int)f;
        *total = t > UINT32_MAX ? UINT32_MAX : (unsigned int)t;
    }
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemAllocHost(void **pp, unsigned int bytesize)
{
    return cuMemAllocHost_v2(pp, bytesize);
}

GM_SIM_CUDA_API CUresult cuArrayCreate(CUarray *pHandle,
                                       const CUDA_ARRAY_DESCRIPTOR_v1 *pAllocateArray)
{
    if (pAllocateArray == NULL)
        return cuArrayCreate_v2(pHandle, NULL);
    CUDA_ARRAY_DESCRIPTOR d = {pAllocateArray->Width, pAllocateArray->Height,
                               pAllocateArray->Format, pAllocateArray->NumChannels};
    return cuArrayCreate_v2(pHandle, &d);
}

GM_SIM_CUDA_API CUresult cuArray3DCreate(CUarray *pHandle,
                                         const CUDA_ARRAY3D_DESCRIPTOR_v1 *pAllocateArray)
{
    if (pAllocateArray == NULL)
        return cuArray3DCreate_v2(pHandle, NULL);
    const CUDA_ARRAY3D_DESCRIPTOR_v1 *a = pAllocateArray;
    CUDA_ARRAY3D_DESCRIPTOR d = {a->Width,  a->Height,      a->Depth,
                                 a->Format, a->NumChannels, a->Flags};
    return cuArray3DCreate_v2(pHandle, &d);
}

static CUresult v1_pointer(void)
{
    CUresult rc = gm_sim_cuda_check_init();
    return rc != CUDA_SUCCESS ? rc : CUDA_ERROR_NOT_SUPPORTED;
}

GM_SIM_CUDA_API CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int bytesize)
{
    (void)dptr;
    (void)bytesize;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemAllocPitch(CUdeviceptr_v1 *dptr, unsigned int *pPitch,
                                         unsigned int WidthInBytes, unsigned int Height,
                                         unsigned int ElementSizeBytes)
{
    (void)dptr;
    (void)pPitch;
    (void)WidthInBytes;
    (void)Height;
    (void)ElementSizeBytes;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemFree(CUdeviceptr_v1 dptr)
{
    (void)dptr;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemcpyHtoD(CUdeviceptr_v1 dstDevice, const void *srcHost,
                                      unsigned int ByteCount)
{
    (void)dstDevice;
    (void)srcHost;
    (void)ByteCount;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemcpyDtoH(void *dstHost, CUdeviceptr_v1 srcDevice,
                                      unsigned int ByteCount)
{
    (void)dstHost;
    (void)srcDevice;
    (void)ByteCount;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemcpyDtoD(CUdeviceptr_v1 dstDevice, CUdeviceptr_v1 srcDevice,
                                      unsigned int ByteCount)
{
    (void)dstDevice;
    (void)srcDevice;
    (void)ByteCount;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemcpyHtoDAsync(CUdeviceptr_v1 dstDevice, const void *srcHost,
                                           unsigned int ByteCount, CUstream hStream)
{
    (void)dstDevice;
    (void)srcHost;
    (void)ByteCount;
    (void)hStream;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemcpyDtoHAsync(void *dstHost, CUdeviceptr_v1 srcDevice,
                                           unsigned int ByteCount, CUstream hStream)
{
    (void)dstHost;
    (void)srcDevice;
    (void)ByteCount;
    (void)hStream;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemcpyDtoDAsync(CUdeviceptr_v1 dstDevice, CUdeviceptr_v1 srcDevice,
                                           unsigned int ByteCount, CUstream hStream)
{
    (void)dstDevice;
    (void)srcDevice;
    (void)ByteCount;
    (void)hStream;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemsetD8(CUdeviceptr_v1 dstDevice, unsigned char uc, unsigned int N)
{
    (void)dstDevice;
    (void)uc;
    (void)N;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuMemsetD32(CUdeviceptr_v1 dstDevice, unsigned int ui, unsigned int N)
{
    (void)dstDevice;
    (void)ui;
    (void)N;
    return v1_pointer();
}

GM_SIM_CUDA_API CUresult cuModuleGetGlobal(CUdeviceptr_v1 *dptr, unsigned int *bytes, CUmodule hmod,
                                           const char *name)
{
    (void)dptr;
    (void)bytes;
    (void)hmod;
    (void)name;
    return v1_pointer();
}
