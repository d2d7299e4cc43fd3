/* The one list of driver entry points libgpumux.so hooks. Everything that must name them is
 * generated from it: the hook declarations (checked against common/cuda_api.h, since a
 * redeclaration with other types does not compile), the typed table of the real functions,
 * the exported-symbol check of the tests, and the answers to dlsym and cuGetProcAddress.
 *
 * X(return type, exported symbol, base name, CUDA version that introduced this variant,
 *   per-thread default stream variant, parameter list)
 *
 * The base name and version say which variant cuGetProcAddress(base, version, flags) means:
 * the newest one not newer than the caller's version, the _ptsz one under
 * CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, exactly as the driver chooses. */
#ifndef GM_INTERPOSE_HOOKS_H
#define GM_INTERPOSE_HOOKS_H

#define GM_CUDA_NO_API_NAMES
#include "common/cuda_api.h"

#define GM_IP_HOOKS(X)                                                                             \
    X(CUresult, cuInit, cuInit, 2000, 0, (unsigned int flags))                                     \
    X(CUresult, cuGetProcAddress, cuGetProcAddress, 11030, 0,                                      \
      (const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags))                         \
    X(CUresult, cuGetProcAddress_v2, cuGetProcAddress, 12000, 0,                                   \
      (const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,                          \
       CUdriverProcAddressQueryResult *symbolStatus))                                              \
    X(CUresult, cuDeviceTotalMem, cuDeviceTotalMem, 2000, 0, (unsigned int *bytes, CUdevice dev))  \
    X(CUresult, cuDeviceTotalMem_v2, cuDeviceTotalMem, 3020, 0, (size_t * bytes, CUdevice dev))    \
    X(CUresult, cuMemGetInfo, cuMemGetInfo, 2000, 0, (unsigned int *free, unsigned int *total))    \
    X(CUresult, cuMemGetInfo_v2, cuMemGetInfo, 3020, 0, (size_t * free, size_t * total))           \
    X(CUresult, cuMemAlloc, cuMemAlloc, 2000, 0, (CUdeviceptr_v1 * dptr, unsigned int bytesize))   \
    X(CUresult, cuMemAlloc_v2, cuMemAlloc, 3020, 0, (CUdeviceptr * dptr, size_t bytesize))         \
    X(CUresult, cuMemAllocPitch, cuMemAllocPitch, 2000, 0,                                         \
      (CUdeviceptr_v1 * dptr, unsigned int *pPitch, unsigned int WidthInBytes,                     \
       unsigned int Height, unsigned int ElementSizeBytes))                                        \
    X(CUresult, cuMemAllocPitch_v2, cuMemAllocPitch, 3020, 0,                                      \
      (CUdeviceptr * dptr, size_t * pPitch, size_t WidthInBytes, size_t Height,                    \
       unsigned int ElementSizeBytes))                                                             \
    X(CUresult, cuMemAllocManaged, cuMemAllocManaged, 6000, 0,                                     \
      (CUdeviceptr * dptr, size_t bytesize, unsigned int flags))                                   \
    X(CUresult, cuMemAllocAsync, cuMemAllocAsync, 11020, 0,                                        \
      (CUdeviceptr * dptr, size_t bytesize, CUstream hStream))                                     \
    X(CUresult, cuMemAllocAsync_ptsz, cuMemAllocAsync, 11020, 1,                                   \
      (CUdeviceptr * dptr, size_t bytesize, CUstream hStream))                                     \
    X(CUresult, cuMemAllocFromPoolAsync, cuMemAllocFromPoolAsync, 11020, 0,                        \
      (CUdeviceptr * dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream))                  \
    X(CUresult, cuMemAllocFromPoolAsync_ptsz, cuMemAllocFromPoolAsync, 11020, 1,                   \
      (CUdeviceptr * dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream))                  \
    X(CUresult, cuMemFree, cuMemFree, 2000, 0, (CUdeviceptr_v1 dptr))                              \
    X(CUresult, cuMemFree_v2, cuMemFree, 3020, 0, (CUdeviceptr dptr))                              \
    X(CUresult, cuMemFreeAsync, cuMemFreeAsync, 11020, 0, (CUdeviceptr dptr, CUstream hStream))    \
    X(CUresult, cuMemFreeAsync_ptsz, cuMemFreeAsync, 11020, 1,                                     \
      (CUdeviceptr dptr, CUstream hStream))                                                        \
    X(CUresult, cuMemCreate, cuMemCreate, 10020, 0,                                                \
      (CUmemGenericAllocationHandle * handle, size_t size, const CUmemAllocationProp *prop,        \
       unsigned long long flags))                                                                  \
    X(CUresult, cuMemRelease, cuMemRelease, 10020, 0, (CUmemGenericAllocationHandle handle))       \
    X(CUresult, cuMemMap, cuMemMap, 10020, 0,                                                      \
      (CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,           \
       unsigned long long flags))                                                                  \
    X(CUresult, cuMemUnmap, cuMemUnmap, 10020, 0, (CUdeviceptr ptr, size_t size))                  \
    X(CUresult, cuArrayCreate, cuArrayCreate, 2000, 0,                                             \
      (CUarray * pHandle, const CUDA_ARRAY_DESCRIPTOR_v1 *pAllocateArray))                         \
    X(CUresult, cuArrayCreate_v2, cuArrayCreate, 3020, 0,                                          \
      (CUarray * pHandle, const CUDA_ARRAY_DESCRIPTOR *pAllocateArray))                            \
    X(CUresult, cuArray3DCreate, cuArray3DCreate, 2000, 0,                                         \
      (CUarray * pHandle, const CUDA_ARRAY3D_DESCRIPTOR_v1 *pAllocateArray))                       \
    X(CUresult, cuArray3DCreate_v2, cuArray3DCreate, 3020, 0,                                      \
      (CUarray * pHandle, const CUDA_ARRAY3D_DESCRIPTOR *pAllocateArray))                          \
    X(CUresult, cuArrayDestroy, cuArrayDestroy, 2000, 0, (CUarray hArray))                         \
    X(CUresult, cuCtxDestroy, cuCtxDestroy, 2000, 0, (CUcontext ctx))                              \
    X(CUresult, cuCtxDestroy_v2, cuCtxDestroy, 4000, 0, (CUcontext ctx))                           \
    X(CUresult, cuDevicePrimaryCtxRelease, cuDevicePrimaryCtxRelease, 7000, 0, (CUdevice dev))     \
    X(CUresult, cuDevicePrimaryCtxRelease_v2, cuDevicePrimaryCtxRelease, 11000, 0, (CUdevice dev)) \
    X(CUresult, cuDevicePrimaryCtxReset, cuDevicePrimaryCtxReset, 7000, 0, (CUdevice dev))         \
    X(CUresult, cuDevicePrimaryCtxReset_v2, cuDevicePrimaryCtxReset, 11000, 0, (CUdevice dev))     \
    X(CUresult, cuLaunchKernel, cuLaunchKernel, 4000, 0,                                           \
      (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,          \
       unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                     \
       unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra))          \
    X(CUresult, cuLaunchKernel_ptsz, cuLaunchKernel, 7000, 1,                                      \
      (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,          \
       unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                     \
       unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra))          \
    X(CUresult, cuLaunchKernelEx, cuLaunchKernelEx, 11060, 0,                                      \
      (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra))             \
    X(CUresult, cuLaunchKernelEx_ptsz, cuLaunchKernelEx, 11060, 1,                                 \
      (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra))             \
    X(CUresult, cuLaunchCooperativeKernel, cuLaunchCooperativeKernel, 9000, 0,                     \
      (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,          \
       unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                     \
       unsigned int sharedMemBytes, CUstream hStream, void **kernelParams))                        \
    X(CUresult, cuLaunchCooperativeKernel_ptsz, cuLaunchCooperativeKernel, 9000, 1,                \
      (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,          \
       unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                     \
       unsigned int sharedMemBytes, CUstream hStream, void **kernelParams))

/* Driver calls the interposer makes for itself and never hooks. */
#define GM_IP_INTERNAL(X)                                                                          \
    X(cuCtxGetCurrent)                                                                             \
    X(cuDevicePrimaryCtxRetain)                                                                    \
    X(cuDevicePrimaryCtxGetState)                                                                  \
    X(cuCtxSynchronize)                                                                            \
    X(cuEventCreate)                                                                               \
    X(cuEventDestroy_v2)                                                                           \
    X(cuEventRecord)                                                                               \
    X(cuEventQuery)                                                                                \
    X(cuEventSynchronize)                                                                          \
    X(cuEventElapsedTime)

#endif
