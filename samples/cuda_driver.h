/* The CUDA driver for the sample: libcuda.so.1 dlopen'ed by soname and never linked, so that the
 * library path decides whether gpusim or the real driver answers. Every entry point goes through
 * a pointer typed from its declaration in common/cuda_api.h. The list uses the plain names, and
 * cuda_api.h maps them to the versioned symbols the driver exports (cuMemAlloc is looked up as
 * cuMemAlloc_v2), exactly as a program compiled against cuda.h would call them. */
#ifndef GM_SAMPLE_CUDA_DRIVER_H
#define GM_SAMPLE_CUDA_DRIVER_H

#include "common/cuda_api.h"

#include <stdarg.h>

/* X(symbol, required). cuGetErrorName/String only improve messages; of the two module loaders
 * the one with a JIT log is preferred, and either will do. */
#define GM_SAMPLE_CUDA_SYMBOLS(X)                                                                  \
    X(cuInit, 1)                                                                                   \
    X(cuGetErrorName, 0)                                                                           \
    X(cuGetErrorString, 0)                                                                         \
    X(cuDeviceGetCount, 1)                                                                         \
    X(cuDeviceGet, 1)                                                                              \
    X(cuDeviceGetName, 1)                                                                          \
    X(cuDeviceGetAttribute, 1)                                                                     \
    X(cuDevicePrimaryCtxRetain, 1)                                                                 \
    X(cuDevicePrimaryCtxRelease, 1)                                                                \
    X(cuCtxSetCurrent, 1)                                                                          \
    X(cuCtxSynchronize, 1)                                                                         \
    X(cuModuleLoadDataEx, 0)                                                                       \
    X(cuModuleLoadData, 0)                                                                         \
    X(cuModuleGetFunction, 1)                                                                      \
    X(cuModuleUnload, 1)                                                                           \
    X(cuMemAlloc, 1)                                                                               \
    X(cuMemFree, 1)                                                                                \
    X(cuMemcpyHtoD, 1)                                                                             \
    X(cuMemcpyDtoH, 1)                                                                             \
    X(cuLaunchKernel, 1)                                                                           \
    X(cuEventCreate, 1)                                                                            \
    X(cuEventDestroy, 1)                                                                           \
    X(cuEventRecord, 1)                                                                            \
    X(cuEventSynchronize, 1)                                                                       \
    X(cuEventElapsedTime, 1)

/* The macro arguments are expanded before they are pasted in, so a field is named after the
 * versioned symbol (cuMemAlloc_v2) and gm_cu.cuMemAlloc(...) reaches it. */
struct gm_sample_cuda {
#define GM_X(sym, required) __typeof__(&sym) sym;
    GM_SAMPLE_CUDA_SYMBOLS(GM_X)
#undef GM_X
};

/* Filled by gm_sample_cuda_load(); a missing optional symbol stays NULL. */
extern struct gm_sample_cuda gm_cu;

/* Loads libcuda.so.1 and resolves the list. On failure prints why and returns -1. */
int gm_sample_cuda_load(void);
void gm_sample_cuda_unload(void);
/* The file the driver was loaded from, for messages; "libcuda.so.1" when unknown. */
const char *gm_sample_cuda_path(void);

/* Prints "gpumux-sample: <what>: CUDA_ERROR_X: description" (with a hint for the errors a
 * shared GPU brings, such as an MPS server that is full) to stderr and returns -1. */
int gm_sample_cuda_fail(CUresult rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "gpumux-sample: <message>" to stderr and returns -1. */
int gm_sample_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
