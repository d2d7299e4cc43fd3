/* gpusim's libcuda.so.1 as a program sees it: loaded with dlopen by path, driven through the
 * driver API, and checked against the shared device state that nvidia-smi would read. Each
 * test has a private state, pipe and log directory; tests that need several processes on one
 * GPU (time-slicing, MPS) fork children that load the library themselves. */
#include "common/cuda_api.h"
#include "gpusim/mps/mps_client.h"
#include "gpusim/mps/mps_proto.h"
#include "gpusim/state/state.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB 1048576ull

/* The plain names expand to the versioned symbols, as in a program built against cuda.h. */
#define SYMBOLS(X)                                                                                 \
    X(cuInit)                                                                                      \
    X(cuDriverGetVersion)                                                                          \
    X(cuGetErrorName)                                                                              \
    X(cuGetErrorString)                                                                            \
    X(cuGetProcAddress)                                                                            \
    X(cuGetProcAddress_v2)                                                                         \
    X(cuDeviceGetCount)                                                                            \
    X(cuDeviceGet)                                                                                 \
    X(cuDeviceGetName)                                                                             \
    X(cuDeviceGetUuid)                                                                             \
    X(cuDeviceTotalMem)                                                                            \
    X(cuDeviceGetAttribute)                                                                        \
    X(cuDevicePrimaryCtxRetain)                                                                    \
    X(cuDevicePrimaryCtxRelease)                                                                   \
    X(cuCtxCreate)                                                                                 \
    X(cuCtxDestroy)                                                                                \
    X(cuCtxSetCurrent)                                                                             \
    X(cuCtxSynchronize)                                                                            \
    X(cuMemGetInfo)                                                                                \
    X(cuMemAlloc)                                                                                  \
    X(cuMemFree)                                                                                   \
    X(cuMemcpyHtoD)                                                                                \
    X(cuMemcpyDtoH)                                                                                \
    X(cuMemcpyDtoD)                                                                                \
    X(cuMemsetD8)                                                                                  \
    X(cuModuleLoadData)                                                                            \
    X(cuModuleLoadDataEx)                                                                          \
    X(cuModuleGetFunction)                                                                         \
    X(cuModuleUnload)                                                                              \
    X(cuLaunchKernel)                                                                              \
    X(cuEventCreate)                                                                               \
    X(cuEventRecord)                                                                               \
    X(cuEventSynchronize)                                                                          \
    X(cuEventElapsedTime)                                                                          \
    X(cuEventDestroy_v2)                                                                           \
    X(cuMemGetAllocationGranularity)                                                               \
    X(cuMemCreate)                                                                                 \
    X(cuMemRelease)                                                                                \
    X(cuMemAddressReserve)                                                                         \
    X(cuMemAddressFree)                                                                            \
    X(cuMemMap)                                                                                    \
    X(cuMemUnmap)                                                                                  \
    X(cuMemSetAccess)

static struct {
    void *lib;
#define X(sym) __typeof__(&sym) sym;
    SYMBOLS(X)
#undef X
} cu;

#define STR_(x) #x
#define STR(x)  STR_(x)

static char dir[64], pipe_dir[128], log_dir[128];

/* 0, or -1 with the reason in why; usable in forked children, where no assertion may fire. */
static int try_load(char *why, size_t len)
{
    const char *build = getenv("GM_BUILD_DIR");
    if (build == NULL) {
        snprintf(why, len, "GM_BUILD_DIR is not set");
        return -1;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/lib/gpusim/libcuda.so.1", build);
    cu.lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (cu.lib == NULL) {
        snprintf(why, len, "%s", dlerror());
        return -1;
    }
#define X(sym)                                                                                     \
    {                                                                                              \
        void *p = dlsym(cu.lib, STR(sym));                                                         \
        if (p == NULL) {                                                                           \
            snprintf(why, len, "libcuda.so.1 lacks %s", STR(sym));                                 \
            return -1;                                                                             \
        }                                                                                          \
        memcpy(&cu.sym, &p, sizeof(p));                                                            \
    }
    SYMBOLS(X)
#undef X
    return 0;
}

static void load(void)
{
    char why[512];
    cr_assert_eq(try_load(why, sizeof(why)), 0, "%s", why);
}

static void setup(void)
{
    strcpy(dir, "/tmp/gm-cuda-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char state[128];
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(pipe_dir, sizeof(pipe_dir), "%s/pipe", dir);
    snprintf(log_dir, sizeof(log_dir), "%s/log", dir);
    setenv("GPUSIM_STATE", state, 1);
    setenv("CUDA_MPS_PIPE_DIRECTORY", pipe_dir, 1); /* empty: no daemon unless a test starts one */
    setenv("CUDA_MPS_LOG_DIRECTORY", log_dir, 1);
    unsetenv("GPUSIM_CONFIG");
    unsetenv("CUDA_VISIBLE_DEVICES");
    unsetenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE");
    unsetenv("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT");
}

static int mps_ctl(const char *args, const char *input)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "echo '%s' | %s/lib/gpusim/nvidia-cuda-mps-control %s >/dev/null 2>&1", input,
             getenv("GM_BUILD_DIR"), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void teardown(void)
{
    if (access(pipe_dir, F_OK) == 0)
        mps_ctl("", "quit");
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(gpusim_cuda, .init = setup, .fini = teardown, .timeout = 60);

#define OK(call) cr_assert_eq((call), CUDA_SUCCESS, "%s failed", #call)

static void start(void)
{
    load();
    OK(cu.cuInit(0));
}

static CUcontext make_ctx(int dev)
{
    CUcontext c = NULL;
    OK(cu.cuCtxCreate(&c, 0, dev));
    return c;
}

static struct gm_sim_state *state(void)
{
    struct gm_sim_state *st;
    struct gm_error err;
    cr_assert_eq(gm_sim_attach(&st, &err), 0, "%s", err.msg);
    return st;
}

/* The process-table entry of pid on gpu; flags 0 when it has none. */
static struct gm_sim_proc proc_on(int gpu, int pid)
{
    struct gm_sim_state *st = state();
    static struct gm_sim_gpu g;
    struct gm_sim_proc none;
    memset(&none, 0, sizeof(none));
    cr_assert_eq(gm_sim_gpu_snapshot(st, gpu, &g, NULL, NULL), 0);
    gm_sim_detach(st);
    for (uint32_t i = 0; i < g.nprocs; i++)
        if ((int)g.procs[i].pid == pid)
            return g.procs[i];
    return none;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char *nbody_ptx(void)
{
    char path[512];
    const char *src = getenv("GM_SOURCE_DIR");
    cr_assert_not_null(src, "GM_SOURCE_DIR is not set");
    snprintf(path, sizeof(path), "%s/samples/nbody.ptx", src);
    return read_file(path);
}

static CUfunction nbody_kernel(void)
{
    CUmodule mod;
    CUfunction f;
    OK(cu.cuModuleLoadData(&mod, nbody_ptx()));
    OK(cu.cuModuleGetFunction(&f, mod, "integrateBodies"));
    return f;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One n-body step's launch, parameters as the sample passes them. */
static CUresult step(CUfunction f, unsigned n, CUdeviceptr buf)
{
    float dt = 0.016f, damping = 1.0f, soft = 0.01f;
    void *params[] = {&buf, &buf, &buf, &n, &dt, &damping, &soft};
    return cu.cuLaunchKernel(f, (n + 255) / 256, 1, 1, 256, 1, 1, 0, NULL, params, NULL);
}

Test(gpusim_cuda, init_devices_and_attributes)
{
    load();
    int count = -1;
    cr_assert_eq(cu.cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
    int version = 0;
    OK(cu.cuDriverGetVersion(&version)); /* needs no cuInit */
    cr_assert_eq(version, 12020);
    cr_assert_eq(cu.cuInit(1), CUDA_ERROR_INVALID_VALUE);
    OK(cu.cuInit(0));
    OK(cu.cuDeviceGetCount(&count));
    cr_assert_eq(count, 2);
    CUdevice dev;
    OK(cu.cuDeviceGet(&dev, 1));
    cr_assert_eq(cu.cuDeviceGet(&dev, 2), CUDA_ERROR_INVALID_DEVICE);
    char name[64];
    OK(cu.cuDeviceGetName(name, sizeof(name), 0));
    cr_assert_str_eq(name, "Tesla T4");
    int v;
    OK(cu.cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0));
    cr_assert_eq(v, 40);
    OK(cu.cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0));
    cr_assert_eq(v, 7);
    OK(cu.cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0));
    cr_assert_eq(v, 5);
    OK(cu.cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 0));
    cr_assert_eq(v, 1024);
    cr_assert_eq(cu.cuDeviceGetAttribute(&v, (CUdevice_attribute)100000, 0),
                 CUDA_ERROR_INVALID_VALUE);
    size_t total;
    OK(cu.cuDeviceTotalMem(&total, 0));
    cr_assert_eq(total, 15109 * MIB);
    const char *s;
    OK(cu.cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s));
    cr_assert_str_eq(s, "CUDA_ERROR_OUT_OF_MEMORY");
    OK(cu.cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s));
    cr_assert_str_eq(s, "out of memory");
    OK(cu.cuGetErrorName(CUDA_ERROR_MPS_MAX_CLIENTS_REACHED, &s));
    cr_assert_str_eq(s, "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED");
    cr_assert_eq(cu.cuGetErrorName((CUresult)12345, &s), CUDA_ERROR_INVALID_VALUE);
}

/* In a child, since cuInit reads CUDA_VISIBLE_DEVICES once: the visible count and the UUID of
 * the first visible device (empty when none), or "init=RC" when cuInit fails. */
static void visible(const char *cvd, char *out, size_t len)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        setenv("CUDA_VISIBLE_DEVICES", cvd, 1);
        char buf[256] = "";
        if (try_load(buf, sizeof(buf)) < 0)
            _exit(1);
        CUresult rc = cu.cuInit(0);
        int n = 0;
        CUuuid u;
        if (rc != CUDA_SUCCESS) {
            snprintf(buf, sizeof(buf), "init=%d", (int)rc);
        } else if (cu.cuDeviceGetCount(&n) == CUDA_SUCCESS && n > 0 &&
                   cu.cuDeviceGetUuid(&u, 0) == CUDA_SUCCESS) {
            int k = snprintf(buf, sizeof(buf), "%d ", n);
            for (int i = 0; i < 16; i++)
                k += snprintf(buf + k, sizeof(buf) - (size_t)k, "%02x", (unsigned char)u.bytes[i]);
        }
        if (write(fd[1], buf, strlen(buf)) < 0)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], out, len - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* "GPU-8-4-4-4-12" as the 32 hex digits cuDeviceGetUuid's bytes print as. */
static void hex_of(const char *uuid, char *out)
{
    int k = 0;
    for (const char *p = uuid + 4; *p; p++)
        if (*p != '-')
            out[k++] = *p;
    out[k] = '\0';
}

Test(gpusim_cuda, cuda_visible_devices)
{
    struct gm_sim_state *st = state();
    char uuid0[96], uuid1[96], hex0[40], hex1[40], want[64], got[256];
    snprintf(uuid0, sizeof(uuid0), "%s", st->gpus[0].info.uuid);
    snprintf(uuid1, sizeof(uuid1), "%s", st->gpus[1].info.uuid);
    gm_sim_detach(st);
    hex_of(uuid0, hex0);
    hex_of(uuid1, hex1);

    visible("1", got, sizeof(got));
    snprintf(want, sizeof(want), "1 %s", hex1);
    cr_assert_str_eq(got, want);
    visible(uuid1, got, sizeof(got));
    cr_assert_str_eq(got, want, "by UUID");
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.12s", uuid1);
    visible(prefix, got, sizeof(got));
    cr_assert_str_eq(got, want, "by UUID prefix %s", prefix);
    visible("1,0", got, sizeof(got));
    snprintf(want, sizeof(want), "2 %s", hex1);
    cr_assert_str_eq(got, want, "order");
    /* The list stops at the first entry that names no GPU, or repeats one. */
    visible("0,7,1", got, sizeof(got));
    snprintf(want, sizeof(want), "1 %s", hex0);
    cr_assert_str_eq(got, want);
    visible("0,0,1", got, sizeof(got));
    cr_assert_str_eq(got, want);
    visible("", got, sizeof(got));
    cr_assert_str_eq(got, "init=100", "empty list: %s", got);
    visible("junk", got, sizeof(got));
    cr_assert_str_eq(got, "init=100");
}

Test(gpusim_cuda, error_codes)
{
    start();
    CUdeviceptr p;
    cr_assert_eq(cu.cuMemAlloc(&p, 1024), CUDA_ERROR_INVALID_CONTEXT, "no context yet");
    cr_assert_eq(cu.cuCtxSynchronize(), CUDA_ERROR_INVALID_CONTEXT);
    CUcontext c = make_ctx(0);
    cr_assert_eq(cu.cuMemAlloc(NULL, 1024), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cu.cuMemAlloc(&p, 0), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cu.cuMemFree(0x1234), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cu.cuCtxCreate(&c, 0, 9), CUDA_ERROR_INVALID_DEVICE);
    CUmodule mod;
    CUfunction f;
    OK(cu.cuModuleLoadData(&mod, nbody_ptx()));
    cr_assert_eq(cu.cuModuleGetFunction(&f, mod, "noSuchKernel"), CUDA_ERROR_NOT_FOUND);
    OK(cu.cuModuleGetFunction(&f, mod, "integrateBodies"));
    cr_assert_eq(cu.cuLaunchKernel(f, 1, 1, 1, 2048, 1, 1, 0, NULL, NULL, NULL),
                 CUDA_ERROR_INVALID_VALUE, "a block of 2048 threads");
    OK(cu.cuCtxDestroy(c));
    cr_assert_eq(cu.cuMemAlloc(&p, 1024), CUDA_ERROR_INVALID_CONTEXT, "destroyed context");
    cr_assert_eq(cu.cuCtxSetCurrent(c), CUDA_ERROR_INVALID_CONTEXT);
}

Test(gpusim_cuda, memory_round_trip_and_out_of_memory)
{
    start();
    make_ctx(0);
    const size_t n = 3 * MIB + 5;
    unsigned char *in = malloc(n), *back = malloc(n);
    cr_assert(in != NULL && back != NULL);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)(i * 7 + 3);
    CUdeviceptr a, b;
    OK(cu.cuMemAlloc(&a, n));
    OK(cu.cuMemAlloc(&b, n));
    cr_assert_geq(a, 0x7f0000000000ull, "0x%llx does not look like a device address", a);
    OK(cu.cuMemcpyHtoD(a, in, n));
    OK(cu.cuMemcpyDtoD(b, a, n));
    OK(cu.cuMemsetD8(a, 0, n));
    OK(cu.cuMemcpyDtoH(back, b, n));
    cr_assert_eq(memcmp(in, back, n), 0);
    OK(cu.cuMemcpyDtoH(back, a + 100, 10));
    cr_assert_eq(back[0], 0);
    cr_assert_eq(cu.cuMemcpyDtoH(back, a + n - 4, 10), CUDA_ERROR_INVALID_VALUE, "past the end");

    size_t free_b, total;
    OK(cu.cuMemGetInfo(&free_b, &total));
    cr_assert_eq(total, 15109 * MIB);
    /* 105 MiB context + 8 MiB (two 3 MiB buffers in 2 MiB pages) + 3 MiB driver reserve */
    cr_assert_eq(total - free_b, 116 * MIB, "used %zu MiB", (total - free_b) / MIB);
    CUdeviceptr big;
    cr_assert_eq(cu.cuMemAlloc(&big, total), CUDA_ERROR_OUT_OF_MEMORY);
    OK(cu.cuMemAlloc(&big, free_b - 64 * MIB));
    CUdeviceptr more;
    cr_assert_eq(cu.cuMemAlloc(&more, 128 * MIB), CUDA_ERROR_OUT_OF_MEMORY);
    OK(cu.cuMemFree(big));
    OK(cu.cuMemAlloc(&more, 128 * MIB));
    OK(cu.cuMemFree(more));
    OK(cu.cuMemFree(a));
    cr_assert_eq(cu.cuMemFree(a), CUDA_ERROR_INVALID_VALUE, "double free");
    free(in);
    free(back);
}

Test(gpusim_cuda, process_table_follows_contexts)
{
    start();
    int me = (int)getpid();
    cr_assert_eq(proc_on(0, me).flags, 0);
    CUcontext c = make_ctx(0);
    struct gm_sim_proc p = proc_on(0, me);
    cr_assert_eq(p.flags, GM_SIM_PROC_COMPUTE);
    cr_assert_eq(p.used_memory, 105 * MIB);
    CUdeviceptr d;
    OK(cu.cuMemAlloc(&d, 10 * MIB));
    cr_assert_eq(proc_on(0, me).used_memory, 115 * MIB);
    nbody_kernel();
    cr_assert_eq(proc_on(0, me).used_memory, 117 * MIB, "a module costs 2 MiB");
    cr_assert_eq(proc_on(1, me).flags, 0, "nothing on the other GPU");
    OK(cu.cuCtxDestroy(c));
    cr_assert_eq(proc_on(0, me).flags, 0, "still registered after the last context");

    /* The primary context: registered while retained. */
    CUcontext pc;
    OK(cu.cuDevicePrimaryCtxRetain(&pc, 1));
    OK(cu.cuDevicePrimaryCtxRetain(&pc, 1));
    cr_assert_eq(proc_on(1, me).flags, GM_SIM_PROC_COMPUTE);
    OK(cu.cuDevicePrimaryCtxRelease(1));
    cr_assert_eq(proc_on(1, me).flags, GM_SIM_PROC_COMPUTE, "one reference left");
    OK(cu.cuDevicePrimaryCtxRelease(1));
    cr_assert_eq(proc_on(1, me).flags, 0);
}

/* The virtual memory family: physical memory counts in the process table (what NVML reports
 * per process) from cuMemCreate on, and stays while mapped after cuMemRelease; mapped memory
 * in a reserved range is used as cuMemAlloc's is. */
Test(gpusim_cuda, virtual_memory_mapped_and_counted)
{
    start();
    int me = (int)getpid();
    CUcontext c = make_ctx(0);
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    size_t gran = 0;
    OK(cu.cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    cr_assert_eq(gran, 2 * MIB);
    uint64_t base = proc_on(0, me).used_memory;
    CUdeviceptr va, va2;
    OK(cu.cuMemAddressReserve(&va, 32 * MIB, 16 * MIB, 0, 0));
    cr_expect_eq(va % (16 * MIB), 0, "alignment");
    cr_expect_eq(proc_on(0, me).used_memory, base, "a reservation is no memory");
    CUmemGenericAllocationHandle h;
    cr_assert_eq(cu.cuMemCreate(&h, 3 * MIB, &prop, 0), CUDA_ERROR_INVALID_VALUE,
                 "not a multiple of the granularity");
    OK(cu.cuMemCreate(&h, 8 * MIB, &prop, 0));
    cr_expect_eq(proc_on(0, me).used_memory, base + 8 * MIB);
    char buf[64] = "mapped";
    cr_expect_eq(cu.cuMemcpyHtoD(h, buf, sizeof(buf)), CUDA_ERROR_INVALID_VALUE,
                 "a handle is not a pointer");
    /* The same memory at two addresses: what is written through one reads through the other. */
    OK(cu.cuMemMap(va, 8 * MIB, 0, h, 0));
    OK(cu.cuMemMap(va + 16 * MIB, 4 * MIB, 4 * MIB, h, 0));
    cr_expect_eq(cu.cuMemMap(va + 2 * MIB, 2 * MIB, 0, h, 0), CUDA_ERROR_INVALID_VALUE,
                 "over a mapping");
    cr_expect_eq(cu.cuMemcpyHtoD(va, buf, sizeof(buf)), CUDA_ERROR_INVALID_VALUE, "no access yet");
    CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                           .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    cr_expect_eq(cu.cuMemSetAccess(va, 32 * MIB, &acc, 1), CUDA_ERROR_INVALID_VALUE,
                 "not mapped throughout");
    OK(cu.cuMemSetAccess(va, 8 * MIB, &acc, 1));
    OK(cu.cuMemSetAccess(va + 16 * MIB, 4 * MIB, &acc, 1));
    OK(cu.cuMemcpyHtoD(va + 4 * MIB + 100, buf, sizeof(buf)));
    char back[64] = "";
    OK(cu.cuMemcpyDtoH(back, va + 16 * MIB + 100, sizeof(back)));
    cr_expect_str_eq(back, "mapped");
    OK(cu.cuMemsetD8(va + 16 * MIB + 100, 'M', 1));
    OK(cu.cuMemcpyDtoH(back, va + 4 * MIB + 100, sizeof(back)));
    cr_expect_str_eq(back, "Mapped");
    cr_expect_eq(proc_on(0, me).used_memory, base + 8 * MIB, "mapped twice, counted once");

    OK(cu.cuMemRelease(h));
    cr_expect_eq(proc_on(0, me).used_memory, base + 8 * MIB, "released but mapped");
    OK(cu.cuMemcpyDtoH(back, va + 4 * MIB + 100, sizeof(back)));
    cr_expect_str_eq(back, "Mapped");
    cr_expect_eq(cu.cuMemAddressFree(va, 32 * MIB), CUDA_ERROR_INVALID_VALUE, "still mapped");
    cr_expect_eq(cu.cuMemUnmap(va, 4 * MIB), CUDA_ERROR_INVALID_VALUE, "half a mapping");
    OK(cu.cuMemUnmap(va, 8 * MIB));
    cr_expect_eq(proc_on(0, me).used_memory, base + 8 * MIB, "one mapping left");
    cr_expect_eq(cu.cuMemcpyDtoH(back, va, 1), CUDA_ERROR_INVALID_VALUE, "unmapped");
    OK(cu.cuMemUnmap(va + 16 * MIB, 4 * MIB));
    cr_expect_eq(proc_on(0, me).used_memory, base, "the last mapping took the memory along");
    OK(cu.cuMemAddressFree(va, 32 * MIB));
    OK(cu.cuMemAddressReserve(&va2, 2 * MIB, 0, 0, 0));

    /* Past the device, cuMemCreate is refused like cuMemAlloc. */
    cr_expect_eq(cu.cuMemCreate(&h, 64ull * 1024 * MIB, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY);
    OK(cu.cuMemCreate(&h, 2 * MIB, &prop, 0));
    OK(cu.cuMemMap(va2, 2 * MIB, 0, h, 0));
    OK(cu.cuCtxDestroy(c));
    cr_expect_eq(proc_on(0, me).flags, 0, "the context took its mappings and memory along");
}

Test(gpusim_cuda, modules)
{
    start();
    make_ctx(0);
    CUmodule mod;
    OK(cu.cuModuleLoadData(&mod, nbody_ptx()));
    OK(cu.cuModuleUnload(mod));
    cr_assert_eq(cu.cuModuleLoadData(&mod, "hello, world"), CUDA_ERROR_INVALID_IMAGE);
    cr_assert_eq(cu.cuModuleLoadData(&mod, "\x7f"
                                           "ELF\x02\x01"),
                 CUDA_ERROR_INVALID_IMAGE);
    char log[512] = "";
    CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *vals[] = {log, (void *)(uintptr_t)sizeof(log)};
    const char *broken = ".version 6.0\n.target sm_52\n.address_size 64\n"
                         ".visible .entry k(.param .u32 n)\n{\n ret;\n";
    cr_assert_eq(cu.cuModuleLoadDataEx(&mod, broken, 2, opts, vals), CUDA_ERROR_INVALID_PTX);
    cr_assert_not_null(strstr(log, "error"), "JIT log: '%s'", log);
    cr_assert_eq(cu.cuModuleLoadData(&mod, ".version 9.9\n.target sm_52\n"),
                 CUDA_ERROR_UNSUPPORTED_PTX_VERSION);
    cr_assert_eq(cu.cuModuleLoadData(&mod, ".version 7.8\n.target sm_90\n"), CUDA_ERROR_INVALID_PTX,
                 "sm_90 code on a 7.5 device");
    const char *two = "// two kernels\n.version 7.0\n.target sm_75\n.address_size 64\n"
                      ".global .align 4 .b8 table[64];\n"
                      ".visible .entry first(.param .u64 p, .param .align 8 .b8 s[16])\n{ ret; }\n"
                      ".entry second\n{\n ret;\n}\n";
    OK(cu.cuModuleLoadData(&mod, two));
    CUfunction f;
    OK(cu.cuModuleGetFunction(&f, mod, "first"));
    OK(cu.cuModuleGetFunction(&f, mod, "second"));
    cr_assert_eq(cu.cuModuleGetFunction(&f, mod, "third"), CUDA_ERROR_NOT_FOUND);
}

/* The model: n^2 interactions at 216.4e9/s on a 40-SM T4, measured by the program's events. */
Test(gpusim_cuda, kernel_time_follows_the_model)
{
    start();
    make_ctx(0);
    CUfunction f = nbody_kernel();
    CUdeviceptr buf;
    OK(cu.cuMemAlloc(&buf, 16 * 16384));
    CUevent a, b;
    OK(cu.cuEventCreate(&a, 0));
    OK(cu.cuEventCreate(&b, 0));
    const unsigned n = 16384;
    const int iters = 20;
    double t0 = now_s();
    OK(cu.cuEventRecord(a, NULL));
    for (int i = 0; i < iters; i++)
        OK(step(f, n, buf));
    OK(cu.cuEventRecord(b, NULL));
    double launched = now_s() - t0;
    OK(cu.cuEventSynchronize(b));
    double waited = now_s() - t0;
    float ms = 0;
    OK(cu.cuEventElapsedTime(&ms, a, b));
    double want = (double)n * n * iters / 216.4e9 * 1e3;
    cr_assert(ms > want * 0.99 && ms < want * 1.01, "%.3f ms, model says %.3f ms", (double)ms,
              want);
    cr_assert_lt(launched, want / 1e3 / 2, "launches should not wait for the kernels");
    cr_assert_geq(waited, want / 1e3 * 0.98, "the event wait should take the simulated time");

    /* Another kernel: 1 ns of the whole GPU per thread, at least 5 us. */
    CUmodule mod;
    OK(cu.cuModuleLoadData(&mod, ".version 7.0\n.target sm_75\n.entry fill(.param .u64 p)\n"
                                 "{ ret; }\n"));
    CUfunction g;
    OK(cu.cuModuleGetFunction(&g, mod, "fill"));
    void *params[] = {&buf};
    OK(cu.cuEventRecord(a, NULL));
    OK(cu.cuLaunchKernel(g, 40000, 1, 1, 256, 1, 1, 0, NULL, params, NULL));
    OK(cu.cuEventRecord(b, NULL));
    OK(cu.cuEventSynchronize(b));
    OK(cu.cuEventElapsedTime(&ms, a, b));
    cr_assert(ms > 10.24 * 0.99 && ms < 10.24 * 1.01, "%.3f ms for 10.24 M threads", (double)ms);
    OK(cu.cuEventDestroy_v2(a));
    OK(cu.cuEventDestroy_v2(b));
}

/* A child that runs n-body steps of n bodies from start_at (CLOCK_MONOTONIC seconds) for
 * seconds and writes its event-measured rate (interactions/s) to fd. */
static void load_child(int fd, const char *ptx, double start_at, double seconds, unsigned n)
{
    char why[512];
    if (try_load(why, sizeof(why)) < 0)
        _exit(1);
    CUcontext c;
    CUdeviceptr buf;
    CUevent a, b;
    CUmodule mod;
    CUfunction f;
    if (cu.cuInit(0) != CUDA_SUCCESS || cu.cuDevicePrimaryCtxRetain(&c, 0) != CUDA_SUCCESS ||
        cu.cuCtxSetCurrent(c) != CUDA_SUCCESS || cu.cuMemAlloc(&buf, 16 * n) != CUDA_SUCCESS ||
        cu.cuModuleLoadData(&mod, ptx) != CUDA_SUCCESS ||
        cu.cuModuleGetFunction(&f, mod, "integrateBodies") != CUDA_SUCCESS ||
        cu.cuEventCreate(&a, 0) != CUDA_SUCCESS || cu.cuEventCreate(&b, 0) != CUDA_SUCCESS)
        _exit(2);
    while (now_s() < start_at)
        usleep(1000);
    long iters = 0;
    cu.cuEventRecord(a, NULL);
    while (now_s() < start_at + seconds) {
        if (step(f, n, buf) != CUDA_SUCCESS)
            _exit(3);
        iters++;
    }
    cu.cuEventRecord(b, NULL);
    cu.cuEventSynchronize(b);
    float ms = 0;
    if (cu.cuEventElapsedTime(&ms, a, b) != CUDA_SUCCESS || ms <= 0)
        _exit(4);
    double rate = (double)n * n * (double)iters / ((double)ms / 1e3);
    if (write(fd, &rate, sizeof(rate)) != sizeof(rate))
        _exit(5);
    _exit(0);
}

/* Runs one load child per entry of pcts (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE, NULL for none)
 * at once and collects their rates; gpu_util receives the GPU's utilisation mid-run. */
static void run_together(int k, const char *const *pcts, double *rates, int *gpu_util)
{
    const double seconds = 1.5;
    const char *ptx = nbody_ptx();
    double start_at = now_s() + 0.5;
    int fds[8][2];
    pid_t pids[8];
    for (int i = 0; i < k; i++) {
        cr_assert_eq(pipe(fds[i]), 0);
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            if (pcts[i] != NULL)
                setenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", pcts[i], 1);
            close(fds[i][0]);
            load_child(fds[i][1], ptx, start_at, seconds, 24576);
        }
        close(fds[i][1]);
    }
    while (now_s() < start_at + seconds * 0.85) /* a full second of the run behind */
        usleep(10000);
    if (gpu_util != NULL) {
        struct gm_sim_state *st = state();
        static struct gm_sim_gpu g;
        cr_assert_eq(gm_sim_gpu_snapshot(st, 0, &g, NULL, NULL), 0);
        *gpu_util = g.util_gpu;
        gm_sim_detach(st);
    }
    for (int i = 0; i < k; i++) {
        int st;
        cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "load child %d failed (%d)", i,
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        cr_assert_eq(read(fds[i][0], &rates[i], sizeof(rates[i])), (ssize_t)sizeof(rates[i]));
        close(fds[i][0]);
    }
}

Test(gpusim_cuda, two_processes_time_sliced)
{
    const char *pcts[] = {NULL, NULL};
    double r[2];
    int util = -1;
    run_together(2, pcts, r, &util);
    /* Half the device each, less the 9.9% the context switches cost. */
    double want = 216.4e9 / 2 / 1.099;
    for (int i = 0; i < 2; i++)
        cr_assert(r[i] > want * 0.94 && r[i] < want * 1.06, "process %d: %.2f G/s, want %.2f", i,
                  r[i] / 1e9, want / 1e9);
    cr_assert_geq(util, 95, "utilization.gpu %d%% while both run", util);
}

static void start_mps(void)
{
    cr_assert_eq(mps_ctl("-d", ""), 0, "nvidia-cuda-mps-control -d failed");
}

Test(gpusim_cuda, mps_client_registers_as_m_plus_c)
{
    start_mps();
    setenv("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "0=64M", 1);
    start();
    make_ctx(0);
    struct gm_sim_proc p = proc_on(0, (int)getpid());
    cr_assert_eq(p.flags, GM_SIM_PROC_COMPUTE | GM_SIM_PROC_MPS_CLIENT);
    cr_assert_eq(p.used_memory, 103 * MIB);
    CUdeviceptr d;
    cr_assert_eq(cu.cuMemAlloc(&d, 100 * MIB), CUDA_ERROR_OUT_OF_MEMORY, "past the pinned limit");
    OK(cu.cuMemAlloc(&d, 32 * MIB));
}

Test(gpusim_cuda, mps_clients_at_30_and_70_percent)
{
    start_mps();
    const char *pcts[] = {"30", "70"};
    double r[2];
    run_together(2, pcts, r, NULL);
    double share = r[0] / (r[0] + r[1]) * 100;
    cr_assert(share > 28 && share < 32, "30%% client got %.1f%% (%.2f and %.2f G/s)", share,
              r[0] / 1e9, r[1] / 1e9);
    /* Together they use the whole device: no context switches under MPS. */
    cr_assert((r[0] + r[1]) > 216.4e9 * 0.95, "together %.2f G/s", (r[0] + r[1]) / 1e9);
}

Test(gpusim_cuda, the_49th_mps_client_is_refused)
{
    start_mps();
    struct gm_sim_state *st = state();
    char uuid[96];
    snprintf(uuid, sizeof(uuid), "%s", st->gpus[0].info.uuid);
    gm_sim_detach(st);
    static struct gm_sim_mps_client held[GM_SIM_MPS_MAX_CLIENTS];
    for (int i = 0; i < GM_SIM_MPS_MAX_CLIENTS; i++)
        cr_assert_eq(gm_sim_mps_attach(pipe_dir, uuid, 0, 0, &held[i]), 0, "client %d", i + 1);
    start();
    CUcontext c;
    cr_assert_eq(cu.cuCtxCreate(&c, 0, 0), CUDA_ERROR_MPS_MAX_CLIENTS_REACHED);
    cr_assert_eq(proc_on(0, (int)getpid()).flags, 0, "a refused client stays off the GPU");
    gm_sim_mps_detach(&held[0]);
    usleep(100000); /* the daemon notices the closed connection */
    OK(cu.cuCtxCreate(&c, 0, 0));
    for (int i = 1; i < GM_SIM_MPS_MAX_CLIENTS; i++)
        gm_sim_mps_detach(&held[i]);
}

Test(gpusim_cuda, get_proc_address)
{
    load();
    void *p = NULL;
    OK(cu.cuGetProcAddress("cuMemAlloc", &p, 12000, 0));
    cr_assert_eq(p, dlsym(cu.lib, "cuMemAlloc_v2"));
    OK(cu.cuGetProcAddress("cuMemAlloc", &p, 3010, 0));
    cr_assert_eq(p, dlsym(cu.lib, "cuMemAlloc"), "before 3.2 the first version");
    OK(cu.cuGetProcAddress("cuDevicePrimaryCtxRelease", &p, 12020, 0));
    cr_assert_eq(p, dlsym(cu.lib, "cuDevicePrimaryCtxRelease_v2"));
    CUdriverProcAddressQueryResult status;
    cr_assert_eq(cu.cuGetProcAddress_v2("cuNoSuchThing", &p, 12000, 0, &status),
                 CUDA_ERROR_NOT_FOUND);
    cr_assert_eq(status, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    cr_assert_eq(cu.cuGetProcAddress_v2("cuMemAllocAsync", &p, 11000, 0, &status),
                 CUDA_ERROR_NOT_FOUND);
    cr_assert_eq(status, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    /* Only the API is exported: the old plain names too, nothing of gpusim's own. */
    cr_assert_not_null(dlsym(cu.lib, "cuCtxCreate"));
    cr_assert_not_null(dlsym(cu.lib, "cuCtxCreate_v2"));
    cr_assert_null(dlsym(cu.lib, "gm_sim_cuda_schedule"));
    cr_assert_null(dlsym(cu.lib, "gm_sim_attach"));
}
