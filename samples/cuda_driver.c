/* Loading libcuda.so.1 and turning its errors into messages. */
#include "cuda_driver.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GM_STR_(x) #x
#define GM_STR(x)  GM_STR_(x)

struct gm_sample_cuda gm_cu;

/* GM_STR expands the plain name first, so the table holds the exported, versioned name. */
static const struct {
    const char *name;
    int required;
    size_t offset;
} syms[] = {
#define GM_X(sym, required) {GM_STR(sym), required, offsetof(struct gm_sample_cuda, sym)},
    GM_SAMPLE_CUDA_SYMBOLS(GM_X)
#undef GM_X
};

static void *lib;
static char lib_path[4096] = "libcuda.so.1";

int gm_sample_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gpumux-sample: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

const char *gm_sample_cuda_path(void)
{
    return lib_path;
}

int gm_sample_cuda_load(void)
{
    dlerror();
    lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *why = dlerror();
        return gm_sample_fail("cannot load libcuda.so.1: %s (is an NVIDIA driver installed, or "
                              "gpusim's directory first on LD_LIBRARY_PATH?)",
                              why != NULL ? why : "unknown error");
    }
    void *any = NULL;
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        void *p = dlsym(lib, syms[i].name);
        /* POSIX guarantees that dlsym's object pointers convert to function pointers. */
        memcpy((char *)&gm_cu + syms[i].offset, &p, sizeof(p));
        if (p != NULL && any == NULL)
            any = p;
    }
    Dl_info info;
    if (any != NULL && dladdr(any, &info) != 0 && info.dli_fname != NULL)
        snprintf(lib_path, sizeof(lib_path), "%s", info.dli_fname);
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        void *p;
        memcpy(&p, (char *)&gm_cu + syms[i].offset, sizeof(p));
        if (p == NULL && syms[i].required) {
            gm_sample_fail("%s lacks %s", lib_path, syms[i].name);
            gm_sample_cuda_unload();
            return -1;
        }
    }
    if (gm_cu.cuModuleLoadDataEx == NULL && gm_cu.cuModuleLoadData == NULL) {
        gm_sample_fail("%s lacks both cuModuleLoadDataEx and cuModuleLoadData", lib_path);
        gm_sample_cuda_unload();
        return -1;
    }
    return 0;
}

void gm_sample_cuda_unload(void)
{
    if (lib != NULL)
        dlclose(lib);
    lib = NULL;
    memset(&gm_cu, 0, sizeof(gm_cu));
}

/* What to try next, for the errors that sharing a GPU makes likely. */
static const char *hint(CUresult rc)
{
    switch (rc) {
    case CUDA_ERROR_MPS_MAX_CLIENTS_REACHED:
        return "the MPS server of this GPU already serves as many clients as it allows; "
               "wait for one to exit";
    case CUDA_ERROR_MPS_CONNECTION_FAILED:
    case CUDA_ERROR_MPS_SERVER_NOT_READY:
        return "cannot reach the MPS server; check that its control daemon runs and that "
               "CUDA_MPS_PIPE_DIRECTORY names its pipe directory";
    case CUDA_ERROR_MPS_CLIENT_TERMINATED:
        return "the MPS server ended this client, after a fault or on request";
    case CUDA_ERROR_STUB_LIBRARY:
        return "the libcuda.so.1 found is the toolkit's stub, not a driver";
    case CUDA_ERROR_NO_DEVICE:
        return "no GPU is visible to this process (see CUDA_VISIBLE_DEVICES)";
    case CUDA_ERROR_DEVICE_UNAVAILABLE:
        return "the GPU is in exclusive-process mode and held by another process";
    default:
        return NULL;
    }
}

int gm_sample_cuda_fail(CUresult rc, const char *fmt, ...)
{
    const char *name = NULL, *desc = NULL;
    if (gm_cu.cuGetErrorName == NULL || gm_cu.cuGetErrorName(rc, &name) != CUDA_SUCCESS)
        name = NULL;
    if (gm_cu.cuGetErrorString == NULL || gm_cu.cuGetErrorString(rc, &desc) != CUDA_SUCCESS)
        desc = NULL;

    va_list ap;
    va_start(ap, fmt);
    fputs("gpumux-sample: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (name != NULL)
        fprintf(stderr, ": %s", name);
    else
        fprintf(stderr, ": CUDA error %d", (int)rc);
    if (desc != NULL)
        fprintf(stderr, ": %s", desc);
    const char *h = hint(rc);
    if (h != NULL)
        fprintf(stderr, " (%s)", h);
    fputc('\n', stderr);
    return -1;
}
