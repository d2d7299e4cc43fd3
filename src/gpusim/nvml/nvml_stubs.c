/* Every function NVIDIA's nvml.h declares (nvml_functions.h, generated from the header by
 * scripts/gen-nvml-functions.py) is exported by gpusim's libnvidia-ml.so.1, as a real library
 * exports all of them, versioned and unversioned names alike. This file defines each one as a
 * weak entry point that answers NVML_ERROR_NOT_SUPPORTED, what the real library answers for a
 * feature the GPU lacks; the functions gpusim models (nvml_system.c, nvml_device.c,
 * nvml_clocks.c, nvml_procs.c) are strong definitions that take their place at link time. The
 * parameters are ABI-correct: types the header has and src/common/nvml_api.h lacks are passed
 * as void * (pointers) or the integer of the same size (enums). */
#include "gpusim/nvml/nvml_internal.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

#define GM_NVML_STUB_R(name, params)                                                               \
    GM_SIM_API nvmlReturn_t name params;                                                           \
    __attribute__((weak)) GM_SIM_API nvmlReturn_t name params                                      \
    {                                                                                              \
        return NVML_ERROR_NOT_SUPPORTED;                                                           \
    }
/* The string function (nvmlErrorString) is always modelled. */
#define GM_NVML_STUB_S(name, params)
#define GM_NVML_FN(kind, name, params, proto) GM_NVML_STUB_##kind(name, params)
#include "gpusim/nvml/nvml_functions.h"
