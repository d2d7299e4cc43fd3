/* libgpumux.so on gpusim: symbols, the memory limit across threads and processes, the region's
 * robustness, and the modes without a region.
 *
 * Most tests load gpusim's libcuda.so.1 and libgpumux.so into the test process and call the
 * hooks by address; those about dlsym, the warning line and strict mode run a program with the
 * interposer preloaded, as gpumuxd runs workloads. */
#include "interpose/hooks.h"
#include "test_interpose_region.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

static char dir[64];
static char region_path[128];
static void *cuda, *ip;

static void *sym_in(void *h, const char *name)
{
    void *p = dlsym(h, name);
    cr_assert_not_null(p, "%s: %s", name, dlerror());
    return p;
}
/* The hook (from libgpumux.so) and the real function (from gpusim), typed. */
#define H(sym) ((__typeof__(&sym))sym_in(ip, #sym))
#define R(sym) ((__typeof__(&sym))sym_in(cuda, #sym))

static void make_dir(void)
{
    strcpy(dir, "/tmp/gm-ip-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char p[160];
    snprintf(p, sizeof(p), "%s/gpusim", dir);
    setenv("GPUSIM_STATE", p, 1);
    unsetenv("GPUSIM_CONFIG");
    unsetenv(GM_REGION_STRICT_ENV);
    snprintf(region_path, sizeof(region_path), "%s/w.region", dir);
}

static void load(void)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/lib/gpusim/libcuda.so.1", t_build_dir());
    cuda = dlopen(p, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(cuda, "%s: %s", p, dlerror());
    snprintf(p, sizeof(p), "%s/lib/libgpumux.so", t_build_dir());
    ip = dlopen(p, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(ip, "%s: %s", p, dlerror());
}

static void setup(void)
{
    make_dir();
    setenv(GM_REGION_ENV, region_path, 1);
}

static void teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

/* In a forked child the test runner's assertions are off limits (they report to the runner as
 * if from the test), so children use these and report through their exit status. */
#define HC(sym) ((__typeof__(&sym))dlsym(ip, #sym))
#define RC(sym) ((__typeof__(&sym))dlsym(cuda, #sym))

static CUresult last_rc;

static int cuda_up_child(void)
{
    CUdevice dev;
    CUcontext ctx;
    CUresult rc = CUDA_SUCCESS;
    if ((rc = HC(cuInit)(0)) != CUDA_SUCCESS || (rc = RC(cuDeviceGet)(&dev, 0)) != CUDA_SUCCESS ||
        (rc = RC(cuDevicePrimaryCtxRetain)(&ctx, dev)) != CUDA_SUCCESS ||
        (rc = RC(cuCtxSetCurrent)(ctx)) != CUDA_SUCCESS) {
        last_rc = rc;
        return -1;
    }
    return 0;
}

/* cuInit through the hook and the primary context of device 0 made current. */
static void cuda_up(void)
{
    cr_assert_eq(H(cuInit)(0), CUDA_SUCCESS);
    CUdevice dev;
    CUcontext ctx;
    cr_assert_eq(R(cuDeviceGet)(&dev, 0), CUDA_SUCCESS);
    cr_assert_eq(R(cuDevicePrimaryCtxRetain)(&ctx, dev), CUDA_SUCCESS);
    cr_assert_eq(R(cuCtxSetCurrent)(ctx), CUDA_SUCCESS);
}

/* ---- symbols ---- */

TestSuite(symbols, .init = setup, .fini = teardown);

Test(symbols, exports_only_the_hooks_and_dlsym)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "nm -D --defined-only %s/lib/libgpumux.so", t_build_dir());
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    static const char *const hooks[] = {
#define X(ret, sym, base, since, ptds, params) #sym,
        GM_IP_HOOKS(X)
#undef X
    };
    size_t nhooks = sizeof(hooks) / sizeof(hooks[0]);
    int seen[sizeof(hooks) / sizeof(hooks[0])] = {0}, seen_dlsym = 0;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        char addr[64], type[8], name[256];
        if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3)
            continue;
        if (strcmp(type, "A") == 0)
            continue; /* version-node markers, none expected */
        if (strcmp(name, "dlsym") == 0) {
            seen_dlsym = 1;
            continue;
        }
        size_t i;
        for (i = 0; i < nhooks && strcmp(hooks[i], name) != 0; i++)
            ;
        cr_expect(i < nhooks, "libgpumux.so exports %s, which is not a hook", name);
        if (i < nhooks)
            seen[i]++;
    }
    cr_assert_eq(pclose(f), 0, "nm failed");
    cr_expect(seen_dlsym, "dlsym is not exported");
    for (size_t i = 0; i < nhooks; i++)
        cr_expect_eq(seen[i], 1, "hook %s exported %d times", hooks[i], seen[i]);
}

Test(symbols, get_proc_address_answers_hooks)
{
    load();
    t_region_create(region_path, 0, 0);
    cuda_up();
    void *p = NULL;
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    cr_assert_eq(H(cuGetProcAddress_v2)("cuMemAlloc", &p, 12020, 0, &st), CUDA_SUCCESS);
    cr_expect_eq(st, CU_GET_PROC_ADDRESS_SUCCESS);
    cr_expect_eq(p, (void *)H(cuMemAlloc_v2), "cuMemAlloc at 12.2 is not the _v2 hook");
    cr_assert_eq(H(cuGetProcAddress_v2)("cuMemAlloc", &p, 3010, 0, &st), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)H(cuMemAlloc), "cuMemAlloc at 3.1 is not the first version's hook");
    cr_assert_eq(H(cuGetProcAddress)("cuLaunchKernel", &p, 12020, 0), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)H(cuLaunchKernel));
    cr_assert_eq(H(cuGetProcAddress)("cuMemGetInfo", &p, 12020, 0), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)H(cuMemGetInfo_v2));
    cr_assert_eq(H(cuGetProcAddress)("cuGetProcAddress", &p, 12020, 0), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)H(cuGetProcAddress_v2));
    cr_assert_eq(H(cuGetProcAddress)("cuCtxSynchronize", &p, 12020, 0), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)R(cuCtxSynchronize), "an unhooked call must reach the driver");
}

/* Run in a process with libgpumux.so preloaded (see the next test). */
Test(symbols, preloaded_dlsym)
{
    const char *region = getenv("GM_IP_PRELOADED");
    if (region == NULL)
        return; /* the caller below runs it preloaded */
    setenv(GM_REGION_ENV, region, 1);
    char p[600];
    snprintf(p, sizeof(p), "%s/lib/gpusim/libcuda.so.1", t_build_dir());
    void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h);
    void *hook_v2 = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"); /* our export, first in the process */
    cr_assert_not_null(hook_v2);
    cr_expect_eq(dlsym(h, "cuMemAlloc_v2"), hook_v2, "dlsym on libcuda's handle bypassed the hook");
    cr_expect_eq(dlsym(h, "cuMemAlloc"), dlsym(RTLD_DEFAULT, "cuMemAlloc"));
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    cr_assert_not_null(libc);
    cr_expect_null(dlsym(libc, "cuMemAlloc_v2"),
                   "a library without the name gives NULL: so must we");
    void *sync = dlsym(h, "cuCtxSynchronize");
    cr_expect_not_null(sync);
    cr_expect_neq(sync, dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"));

    /* The pointers work, and are limited. */
    __typeof__(&cuInit) init = (__typeof__(&cuInit))dlsym(h, "cuInit");
    __typeof__(&cuMemAlloc_v2) alloc = (__typeof__(&cuMemAlloc_v2))dlsym(h, "cuMemAlloc_v2");
    __typeof__(&cuDevicePrimaryCtxRetain) retain =
        (__typeof__(&cuDevicePrimaryCtxRetain))dlsym(h, "cuDevicePrimaryCtxRetain");
    __typeof__(&cuCtxSetCurrent) set = (__typeof__(&cuCtxSetCurrent))dlsym(h, "cuCtxSetCurrent");
    __typeof__(&cuGetProcAddress_v2) gpa =
        (__typeof__(&cuGetProcAddress_v2))dlsym(h, "cuGetProcAddress_v2");
    cr_assert_eq(init(0), CUDA_SUCCESS);
    CUcontext ctx;
    cr_assert_eq(retain(&ctx, 0), CUDA_SUCCESS);
    cr_assert_eq(set(ctx), CUDA_SUCCESS);
    CUdeviceptr d;
    cr_expect_eq(alloc(&d, 8 * MIB), CUDA_SUCCESS);
    cr_expect_eq(alloc(&d, 9 * MIB), CUDA_ERROR_OUT_OF_MEMORY);
    void *q = NULL;
    cr_assert_eq(gpa("cuMemAlloc", &q, 12020, 0, NULL), CUDA_SUCCESS);
    cr_expect_eq(q, hook_v2);

    /* What the driver itself answers the interposer is its own function, not the preloaded
     * export of the same name; the interposer maps it to the hook. libc's dlsym, by version,
     * reaches the driver's cuGetProcAddress_v2 past ours. */
    __typeof__(&dlsym) libc_dlsym = NULL;
    static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17"};
    for (size_t i = 0; i < 3 && libc_dlsym == NULL; i++) {
        void *v = dlvsym(RTLD_DEFAULT, "dlsym", versions[i]);
        memcpy(&libc_dlsym, &v, sizeof(v));
    }
    cr_assert_not_null(libc_dlsym);
    __typeof__(&cuGetProcAddress_v2) real_gpa =
        (__typeof__(&cuGetProcAddress_v2))libc_dlsym(h, "cuGetProcAddress_v2");
    cr_assert_not_null(real_gpa);
    cr_assert_neq((void *)real_gpa, (void *)gpa);
    static const char *const hooked[] = {"cuMemAlloc",       "cuMemCreate",     "cuLaunchKernel",
                                         "cuLaunchKernelEx", "cuArray3DCreate", "cuMemMap"};
    for (size_t i = 0; i < sizeof(hooked) / sizeof(hooked[0]); i++) {
        void *drv = NULL, *ours = NULL;
        cr_assert_eq(real_gpa(hooked[i], &drv, 12020, 0, NULL), CUDA_SUCCESS, "%s", hooked[i]);
        Dl_info di;
        cr_assert(dladdr(drv, &di) != 0 && di.dli_fname != NULL);
        cr_expect(strstr(di.dli_fname, "gpusim/libcuda.so") != NULL,
                  "the driver's %s is in %s, not gpusim's library", hooked[i], di.dli_fname);
        cr_assert_eq(gpa(hooked[i], &ours, 12020, 0, NULL), CUDA_SUCCESS);
        cr_assert(dladdr(ours, &di) != 0 && di.dli_fname != NULL);
        cr_expect(strstr(di.dli_fname, "libgpumux.so") != NULL,
                  "the program's %s is in %s, not the hook", hooked[i], di.dli_fname);
    }
    /* And what the program got is charged: the 8 MiB above fill the 16 MiB limit. */
    void *drv_alloc = NULL;
    cr_assert_eq(real_gpa("cuMemAlloc", &drv_alloc, 12020, 0, NULL), CUDA_SUCCESS);
    cr_assert_neq(q, drv_alloc);
    cr_expect_eq(((__typeof__(&cuMemAlloc_v2))q)(&d, 8 * MIB), CUDA_SUCCESS);
    cr_expect_eq(((__typeof__(&cuMemAlloc_v2))q)(&d, 1), CUDA_ERROR_OUT_OF_MEMORY);
}

Test(symbols, dlsym_and_libcuda_handle_give_hooks)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    t_region_create(region_path, 16 * MIB, 0);
    char self[512], out[200], err[200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert(n > 0);
    self[n] = '\0';
    snprintf(out, sizeof(out), "%s/out", dir);
    snprintf(err, sizeof(err), "%s/err", dir);
    char *argv[] = {self, "--filter=symbols/preloaded_dlsym", "--jobs=1", NULL};
    char envv[200];
    snprintf(envv, sizeof(envv), "GM_IP_PRELOADED=%s", region_path);
    const char *env[] = {envv, NULL};
    int rc = t_run_preloaded(argv, env, out, err);
    cr_assert_eq(rc, 0, "preloaded run failed (%d):\n%s\n%s", rc, t_slurp(out), t_slurp(err));
    cr_expect(strstr(t_slurp(err), "Synthesis: Tested: 1 | Passing: 1") != NULL ||
                  strstr(t_slurp(out), "Synthesis: Tested: 1 | Passing: 1") != NULL,
              "the preloaded test did not run:\n%s", t_slurp(err));
}

/* Every hook is backed by gpusim: gpusim exports it, gpusim's cuGetProcAddress hands out that
 * very function for the hook's base name, version and stream flag, the interposer maps that
 * pointer to the hook, and a test here drives the hook through gpusim (the table names it; a
 * hook added to hooks.h without a test fails this one). */
static const struct {
    const char *hook, *test;
} hook_tests[] = {
    {"cuInit", "every test (cuda_up)"},
    {"cuGetProcAddress", "symbols/get_proc_address_answers_hooks"},
    {"cuGetProcAddress_v2", "symbols/preloaded_dlsym"},
    {"cuDeviceTotalMem", "memory/limit_info_and_total"},
    {"cuDeviceTotalMem_v2", "memory/limit_info_and_total"},
    {"cuMemGetInfo", "memory/limit_info_and_total"},
    {"cuMemGetInfo_v2", "memory/vmm_family_charged_until_released_and_unmapped"},
    {"cuMemAlloc", "memory/first_versions_refused_by_gpusim"},
    {"cuMemAlloc_v2", "memory/limit_info_and_total"},
    {"cuMemAllocPitch", "memory/first_versions_refused_by_gpusim"},
    {"cuMemAllocPitch_v2", "memory/every_family_counted_and_freed"},
    {"cuMemAllocManaged", "memory/every_family_counted_and_freed"},
    {"cuMemAllocAsync", "memory/every_family_counted_and_freed"},
    {"cuMemAllocAsync_ptsz", "memory/ptsz_and_3d_arrays"},
    {"cuMemAllocFromPoolAsync", "memory/every_family_counted_and_freed"},
    {"cuMemAllocFromPoolAsync_ptsz", "memory/ptsz_and_3d_arrays"},
    {"cuMemFree", "memory/first_versions_refused_by_gpusim"},
    {"cuMemFree_v2", "memory/limit_info_and_total"},
    {"cuMemFreeAsync", "memory/every_family_counted_and_freed"},
    {"cuMemFreeAsync_ptsz", "memory/ptsz_and_3d_arrays"},
    {"cuMemCreate", "memory/vmm_family_charged_until_released_and_unmapped"},
    {"cuMemRelease", "memory/vmm_family_charged_until_released_and_unmapped"},
    {"cuMemMap", "memory/vmm_family_charged_until_released_and_unmapped"},
    {"cuMemUnmap", "memory/vmm_family_charged_until_released_and_unmapped"},
    {"cuArrayCreate", "memory/ptsz_and_3d_arrays"},
    {"cuArrayCreate_v2", "memory/every_family_counted_and_freed"},
    {"cuArray3DCreate", "memory/ptsz_and_3d_arrays"},
    {"cuArray3DCreate_v2", "memory/ptsz_and_3d_arrays"},
    {"cuArrayDestroy", "memory/every_family_counted_and_freed"},
    {"cuCtxDestroy", "contexts/destroyed_context_returns_its_memory"},
    {"cuCtxDestroy_v2", "contexts/destroyed_context_returns_its_memory"},
    {"cuDevicePrimaryCtxRelease", "contexts/last_primary_release_returns_its_memory"},
    {"cuDevicePrimaryCtxRelease_v2", "contexts/last_primary_release_returns_its_memory"},
    {"cuDevicePrimaryCtxReset", "contexts/primary_reset_returns_its_memory"},
    {"cuDevicePrimaryCtxReset_v2", "contexts/primary_reset_returns_its_memory"},
    {"cuLaunchKernel", "launch/every_variant_paced"},
    {"cuLaunchKernel_ptsz", "launch/every_variant_paced"},
    {"cuLaunchKernelEx", "launch/every_variant_paced"},
    {"cuLaunchKernelEx_ptsz", "launch/every_variant_paced"},
    {"cuLaunchCooperativeKernel", "launch/every_variant_paced"},
    {"cuLaunchCooperativeKernel_ptsz", "launch/every_variant_paced"},
};

Test(symbols, every_hook_is_backed_by_gpusim)
{
    load();
    t_region_create(region_path, 0, 0);
    cuda_up();
    __typeof__(&cuGetProcAddress_v2) drv_gpa = R(cuGetProcAddress_v2);
#define X(ret, sym, base, since, ptds, params)                                                     \
    do {                                                                                           \
        size_t i_ = 0;                                                                             \
        while (i_ < sizeof(hook_tests) / sizeof(hook_tests[0]) &&                                  \
               strcmp(hook_tests[i_].hook, #sym) != 0)                                             \
            i_++;                                                                                  \
        cr_expect(i_ < sizeof(hook_tests) / sizeof(hook_tests[0]),                                 \
                  "hook %s has no test through gpusim", #sym);                                     \
        void *own_ = dlsym(cuda, #sym);                                                            \
        cr_expect_not_null(own_, "gpusim does not export %s", #sym);                               \
        cuuint64_t fl_ = (ptds) ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM : 0;               \
        void *p_ = NULL;                                                                           \
        cr_expect_eq(drv_gpa(#base, &p_, since, fl_, NULL), CUDA_SUCCESS, "%s", #sym);             \
        cr_expect_eq(p_, own_, "gpusim's cuGetProcAddress(%s, %d, %d) is not its %s", #base,       \
                     since, ptds, #sym);                                                           \
        p_ = NULL;                                                                                 \
        cr_expect_eq(H(cuGetProcAddress_v2)(#base, &p_, since, fl_, NULL), CUDA_SUCCESS);          \
        cr_expect_eq(p_, dlsym(ip, #sym), "cuGetProcAddress(%s, %d, %d) is not the hook %s",       \
                     #base, since, ptds, #sym);                                                    \
    } while (0);
    GM_IP_HOOKS(X)
#undef X
}

/* ---- memory ---- */

TestSuite(memory, .init = setup, .fini = teardown);

Test(memory, limit_info_and_total)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    load();
    cuda_up();
    CUdeviceptr a, b;
    cr_assert_eq(H(cuMemAlloc_v2)(&a, 40 * MIB), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 40 * MIB);
    cr_expect_eq(H(cuMemAlloc_v2)(&b, 30 * MIB), CUDA_ERROR_OUT_OF_MEMORY);
    cr_expect_eq(r->oom_count, 1);
    cr_expect_eq(r->mem_used, 40 * MIB);
    size_t free_b, total_b;
    cr_assert_eq(H(cuMemGetInfo_v2)(&free_b, &total_b), CUDA_SUCCESS);
    cr_expect_eq(total_b, 64 * MIB);
    cr_expect_eq(free_b, 24 * MIB);
    unsigned f32, t32;
    cr_assert_eq(H(cuMemGetInfo)(&f32, &t32), CUDA_SUCCESS);
    cr_expect_eq(t32, 64 * MIB);
    cr_expect_eq(f32, 24 * MIB);
    size_t tot;
    cr_assert_eq(H(cuDeviceTotalMem_v2)(&tot, 0), CUDA_SUCCESS);
    cr_expect_eq(tot, 64 * MIB);
    unsigned tot32;
    cr_assert_eq(H(cuDeviceTotalMem)(&tot32, 0), CUDA_SUCCESS);
    cr_expect_eq(tot32, 64 * MIB);
    cr_assert_eq(H(cuMemAlloc_v2)(&b, 24 * MIB), CUDA_SUCCESS, "exactly the rest must fit");
    cr_expect_eq(H(cuMemAlloc_v2)(&b, 1), CUDA_ERROR_OUT_OF_MEMORY, "one byte past the limit");
    cr_assert_eq(H(cuMemFree_v2)(a), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 24 * MIB);
    cr_expect_eq(r->mem_peak, 64 * MIB);
    cr_expect_eq(r->procs[0].pid, (uint32_t)getpid());
    cr_expect_eq(r->procs[0].mem_used, 24 * MIB);
}

Test(memory, every_family_counted_and_freed)
{
    struct gm_region *r = t_region_create(region_path, 1024 * MIB, 0);
    load();
    cuda_up();
    CUdeviceptr d;
    cr_assert_eq(H(cuMemAlloc_v2)(&d, 3 * MIB), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 3 * MIB);
    cr_assert_eq(H(cuMemFree_v2)(d), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);

    size_t pitch;
    cr_assert_eq(H(cuMemAllocPitch_v2)(&d, &pitch, 1000, 100, 4), CUDA_SUCCESS);
    cr_expect_geq(pitch, 1000);
    cr_expect_eq(r->mem_used, (uint64_t)pitch * 100, "pitch %zu x 100 != %llu", pitch,
                 (unsigned long long)r->mem_used);
    cr_assert_eq(H(cuMemFree_v2)(d), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);

    cr_assert_eq(H(cuMemAllocManaged)(&d, 5 * MIB, CU_MEM_ATTACH_GLOBAL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 5 * MIB);
    cr_assert_eq(H(cuMemFree_v2)(d), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);

    cr_assert_eq(H(cuMemAllocAsync)(&d, 7 * MIB, NULL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 7 * MIB);
    cr_assert_eq(H(cuMemFreeAsync)(d, NULL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);

    CUmemoryPool pool;
    cr_assert_eq(R(cuDeviceGetDefaultMemPool)(&pool, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemAllocFromPoolAsync)(&d, 9 * MIB, pool, NULL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 9 * MIB);
    cr_assert_eq(H(cuMemFree_v2)(d), CUDA_SUCCESS, "a pool allocation freed synchronously");
    cr_expect_eq(r->mem_used, 0);

    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    size_t gran = 0;
    cr_assert_eq(R(cuMemGetAllocationGranularity)(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
                 CUDA_SUCCESS);
    CUmemGenericAllocationHandle mh;
    cr_assert_eq(H(cuMemCreate)(&mh, 4 * gran, &prop, 0), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 4 * gran);
    cr_assert_eq(H(cuMemRelease)(mh), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);

    CUDA_ARRAY_DESCRIPTOR ad = {
        .Width = 1024, .Height = 512, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    CUarray arr;
    cr_assert_eq(H(cuArrayCreate_v2)(&arr, &ad), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 1024ull * 512 * 16);
    cr_assert_eq(H(cuArrayDestroy)(arr), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);

    /* Refusals are counted against the limit too, for every family. */
    __atomic_store_n(&r->memory_limit, 1 * MIB, __ATOMIC_RELEASE);
    cr_expect_eq(H(cuMemAllocManaged)(&d, 2 * MIB, CU_MEM_ATTACH_GLOBAL), CUDA_ERROR_OUT_OF_MEMORY);
    cr_expect_eq(H(cuMemAllocAsync)(&d, 2 * MIB, NULL), CUDA_ERROR_OUT_OF_MEMORY);
    cr_expect_eq(H(cuMemAllocFromPoolAsync)(&d, 2 * MIB, pool, NULL), CUDA_ERROR_OUT_OF_MEMORY);
    cr_expect_eq(H(cuMemCreate)(&mh, 2 * MIB, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY);
    cr_expect_eq(H(cuArrayCreate_v2)(&arr, &ad), CUDA_ERROR_OUT_OF_MEMORY);
    cr_expect_eq(H(cuMemAllocPitch_v2)(&d, &pitch, 4096, 1024, 4), CUDA_ERROR_OUT_OF_MEMORY);
    cr_expect_eq(r->oom_count, 6);
    /* A free of memory the interposer never saw (or a failing free) changes nothing. */
    cr_expect_neq(H(cuMemFree_v2)(0x1234), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);
}

/* The first versions take 32-bit device pointers, which gpusim (as any 64-bit driver) cannot
 * hand out: the hooks pass gpusim's refusal through and charge nothing. */
Test(memory, first_versions_refused_by_gpusim)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    load();
    cuda_up();
    CUdeviceptr_v1 d = 0;
    unsigned pitch = 0;
    cr_expect_eq(H(cuMemAlloc)(&d, 1 * MIB), CUDA_ERROR_NOT_SUPPORTED);
    cr_expect_eq(H(cuMemAllocPitch)(&d, &pitch, 1024, 16, 4), CUDA_ERROR_NOT_SUPPORTED);
    cr_expect_eq(r->mem_used, 0, "a refused allocation stayed charged");
    cr_expect_eq(H(cuMemFree)(0x1000), CUDA_ERROR_NOT_SUPPORTED);
    cr_expect_eq(H(cuMemAlloc)(&d, 65 * MIB), CUDA_ERROR_OUT_OF_MEMORY, "past the limit");
}

Test(memory, ptsz_and_3d_arrays)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    load();
    cuda_up();
    CUdeviceptr d;
    cr_assert_eq(H(cuMemAllocAsync_ptsz)(&d, 7 * MIB, NULL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 7 * MIB);
    cr_assert_eq(H(cuMemFreeAsync_ptsz)(d, CU_STREAM_PER_THREAD), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);
    CUmemoryPool pool;
    cr_assert_eq(R(cuDeviceGetDefaultMemPool)(&pool, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemAllocFromPoolAsync_ptsz)(&d, 9 * MIB, pool, NULL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 9 * MIB);
    cr_expect_eq(H(cuMemAllocAsync_ptsz)(&d, 56 * MIB, NULL), CUDA_ERROR_OUT_OF_MEMORY);
    cr_assert_eq(H(cuMemFreeAsync_ptsz)(d, NULL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);

    /* 3D: 64 x 64 x 16 float4 = 1 MiB; layered 1D: 256 x 8 layers x 4 bytes. */
    CUDA_ARRAY3D_DESCRIPTOR d3 = {
        .Width = 64, .Height = 64, .Depth = 16, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    CUarray a, b, c;
    cr_assert_eq(H(cuArray3DCreate_v2)(&a, &d3), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 1 * MIB);
    CUDA_ARRAY3D_DESCRIPTOR_v1 d1 = {.Width = 256,
                                     .Depth = 8,
                                     .Format = CU_AD_FORMAT_UNSIGNED_INT8,
                                     .NumChannels = 4,
                                     .Flags = CUDA_ARRAY3D_LAYERED};
    cr_assert_eq(H(cuArray3DCreate)(&b, &d1), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 1 * MIB + 256 * 8 * 4);
    CUDA_ARRAY_DESCRIPTOR_v1 d2 = {
        .Width = 128, .Height = 128, .Format = CU_AD_FORMAT_HALF, .NumChannels = 2};
    cr_assert_eq(H(cuArrayCreate)(&c, &d2), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 1 * MIB + 256 * 8 * 4 + 128 * 128 * 4);
    d3.Depth = 64 * 16; /* 64 MiB more: past the limit */
    cr_expect_eq(H(cuArray3DCreate_v2)(&a, &d3), CUDA_ERROR_OUT_OF_MEMORY);
    cr_expect_eq(r->oom_count, 2);
    cr_assert_eq(H(cuArrayDestroy)(b), CUDA_SUCCESS);
    cr_assert_eq(H(cuArrayDestroy)(c), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 1 * MIB);
    d3.Depth = 16;
    size_t free_b, total_b;
    cr_assert_eq(H(cuMemGetInfo_v2)(&free_b, &total_b), CUDA_SUCCESS);
    cr_expect_eq(free_b, 63 * MIB);
}

/* cuMemCreate is charged at once; a handle released while mapped (what llama.cpp does right
 * after cuMemMap) stays charged until its last mapping goes, as the driver keeps the memory.
 * The mapped memory is usable as cuMemAlloc's is. */
Test(memory, vmm_family_charged_until_released_and_unmapped)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    load();
    cuda_up();
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    size_t gran = 0;
    cr_assert_eq(R(cuMemGetAllocationGranularity)(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
                 CUDA_SUCCESS);
    cr_assert_eq(gran, 2 * MIB);
    size_t gfree0, gtotal;
    cr_assert_eq(R(cuMemGetInfo_v2)(&gfree0, &gtotal), CUDA_SUCCESS);
    CUdeviceptr va;
    cr_assert_eq(R(cuMemAddressReserve)(&va, 64 * MIB, 0, 0, 0), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0, "a reservation is no memory");
    CUmemGenericAllocationHandle h1, h2, h3;
    cr_assert_eq(H(cuMemCreate)(&h1, 8 * MIB, &prop, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemCreate)(&h2, 16 * MIB, &prop, 0), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 24 * MIB);
    size_t gfree;
    cr_assert_eq(R(cuMemGetInfo_v2)(&gfree, &gtotal), CUDA_SUCCESS);
    cr_expect_eq(gfree0 - gfree, 24 * MIB, "gpusim counts cuMemCreate memory at create time");
    size_t free_b, total_b;
    cr_assert_eq(H(cuMemGetInfo_v2)(&free_b, &total_b), CUDA_SUCCESS);
    cr_expect_eq(total_b, 64 * MIB);
    cr_expect_eq(free_b, 40 * MIB);
    cr_expect_eq(H(cuMemCreate)(&h3, 42 * MIB, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY);

    cr_assert_eq(H(cuMemMap)(va, 8 * MIB, 0, h1, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemMap)(va + 8 * MIB, 16 * MIB, 0, h2, 0), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 24 * MIB, "mapping charges nothing more");
    static char buf[4096];
    cr_expect_neq(R(cuMemcpyHtoD_v2)(va, buf, sizeof(buf)), CUDA_SUCCESS,
                  "mapped memory without cuMemSetAccess is not accessible");
    CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                           .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    cr_assert_eq(R(cuMemSetAccess)(va, 24 * MIB, &acc, 1), CUDA_SUCCESS);
    /* One copy across both mappings, a memset, and the bytes back. */
    memset(buf, 0x5a, sizeof(buf));
    CUdeviceptr edge = va + 8 * MIB - sizeof(buf) / 2;
    cr_assert_eq(R(cuMemcpyHtoD_v2)(edge, buf, sizeof(buf)), CUDA_SUCCESS);
    cr_assert_eq(R(cuMemsetD8_v2)(va + 8 * MIB, 0x11, 16), CUDA_SUCCESS);
    static char back[4096];
    cr_assert_eq(R(cuMemcpyDtoH_v2)(back, edge, sizeof(back)), CUDA_SUCCESS);
    cr_expect_eq(back[0], 0x5a);
    cr_expect_eq(back[sizeof(back) / 2], 0x11);
    cr_expect_eq(back[sizeof(back) / 2 + 16], 0x5a);
    cr_expect_neq(R(cuMemcpyHtoD_v2)(va + 24 * MIB, buf, 16), CUDA_SUCCESS, "unmapped");

    /* h1 released while mapped: still charged, and its memory still there. */
    cr_assert_eq(H(cuMemRelease)(h1), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 24 * MIB, "released while mapped, the memory is not free yet");
    cr_assert_eq(R(cuMemcpyDtoH_v2)(back, va, 16), CUDA_SUCCESS);
    cr_expect_neq(H(cuMemUnmap)(va, 4 * MIB), CUDA_SUCCESS, "half a mapping");
    cr_expect_eq(r->mem_used, 24 * MIB);
    cr_assert_eq(H(cuMemUnmap)(va, 8 * MIB), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 16 * MIB, "its last mapping gone, the released handle is free");
    cr_assert_eq(R(cuMemGetInfo_v2)(&gfree, &gtotal), CUDA_SUCCESS);
    cr_expect_eq(gfree0 - gfree, 16 * MIB);

    /* h2 unmapped first, then released: returned at the release. */
    cr_assert_eq(H(cuMemUnmap)(va + 8 * MIB, 16 * MIB), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 16 * MIB);
    cr_assert_eq(H(cuMemRelease)(h2), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);
    cr_expect_neq(H(cuMemRelease)(h2), CUDA_SUCCESS, "released twice");
    cr_expect_eq(r->mem_used, 0);
    cr_assert_eq(R(cuMemAddressFree)(va, 64 * MIB), CUDA_SUCCESS);

    /* A released, still mapped handle goes with its context too. */
    CUcontext ctx;
    cr_assert_eq(R(cuCtxCreate_v2)(&ctx, 0, 0), CUDA_SUCCESS);
    cr_assert_eq(R(cuMemAddressReserve)(&va, 8 * MIB, 0, 0, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemCreate)(&h3, 8 * MIB, &prop, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemMap)(va, 8 * MIB, 0, h3, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemRelease)(h3), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 8 * MIB);
    cr_assert_eq(H(cuCtxDestroy_v2)(ctx), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);
}

Test(memory, limit_changed_live)
{
    struct gm_region *r = t_region_create(region_path, 100 * MIB, 0);
    load();
    cuda_up();
    CUdeviceptr a, b;
    cr_assert_eq(H(cuMemAlloc_v2)(&a, 50 * MIB), CUDA_SUCCESS);
    __atomic_store_n(&r->memory_limit, 40 * MIB, __ATOMIC_RELEASE);
    __atomic_add_fetch(&r->generation, 1, __ATOMIC_RELEASE);
    cr_expect_eq(H(cuMemAlloc_v2)(&b, 1 * MIB), CUDA_ERROR_OUT_OF_MEMORY);
    size_t free_b, total_b;
    cr_assert_eq(H(cuMemGetInfo_v2)(&free_b, &total_b), CUDA_SUCCESS);
    cr_expect_eq(total_b, 40 * MIB);
    cr_expect_eq(free_b, 0);
    __atomic_store_n(&r->memory_limit, 60 * MIB, __ATOMIC_RELEASE);
    cr_expect_eq(H(cuMemAlloc_v2)(&b, 10 * MIB), CUDA_SUCCESS);
    cr_expect_eq(H(cuMemAlloc_v2)(&b, 1), CUDA_ERROR_OUT_OF_MEMORY);
    __atomic_store_n(&r->memory_limit, 0, __ATOMIC_RELEASE); /* no limit */
    cr_expect_eq(H(cuMemAlloc_v2)(&b, 200 * MIB), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 260 * MIB, "usage is still counted without a limit");
}

/* Several processes x threads allocate random sizes, never freeing, until each has been refused.
 * Every refusal of s bytes means the workload held more than limit - s at that moment, and
 * holdings only grow: so at the end, held + s > limit for every refused s, held <= limit, and
 * held is exactly the sum of the successes. */
#define RACE_PROCS   4
#define RACE_THREADS 4
#define RACE_LIMIT   (256 * MIB)

struct race_thread {
    unsigned seed;
    uint64_t ok_bytes;
    uint64_t refused_min; /* smallest refused size */
    unsigned refusals, other_errors;
};

static void *race_thread(void *arg)
{
    struct race_thread *t = arg;
    __typeof__(&cuMemAlloc_v2) alloc = HC(cuMemAlloc_v2);
    __typeof__(&cuCtxSetCurrent) set = RC(cuCtxSetCurrent);
    CUcontext ctx;
    RC(cuDevicePrimaryCtxRetain)(&ctx, 0);
    set(ctx);
    t->refused_min = UINT64_MAX;
    while (t->refusals < 8 && t->other_errors == 0) {
        uint64_t size = 1 + (uint64_t)rand_r(&t->seed) % (12 * MIB);
        CUdeviceptr d;
        CUresult rc = alloc(&d, size);
        if (rc == CUDA_SUCCESS)
            t->ok_bytes += size;
        else if (rc == CUDA_ERROR_OUT_OF_MEMORY) {
            t->refusals++;
            if (size < t->refused_min)
                t->refused_min = size;
        } else
            t->other_errors++;
    }
    return NULL;
}

struct race_report {
    uint64_t ok_bytes, refused_min;
    unsigned refusals, other_errors;
};

static volatile int race_watch_stop;
static uint64_t race_watch_max;
static void *race_watch(void *arg)
{
    struct gm_region *r = arg;
    while (!race_watch_stop) {
        uint64_t u = __atomic_load_n(&r->mem_used, __ATOMIC_RELAXED);
        if (u > race_watch_max)
            race_watch_max = u;
    }
    return NULL;
}

Test(memory, racing_processes_and_threads_never_pass_the_limit)
{
    struct gm_region *r = t_region_create(region_path, RACE_LIMIT, 0);
    load();
    int fds[RACE_PROCS][2];
    pid_t pids[RACE_PROCS];
    int go[2], hold[2]; /* closed by the parent: every child sees EOF at once */
    cr_assert(pipe(go) == 0 && pipe(hold) == 0);
    for (int p = 0; p < RACE_PROCS; p++) {
        cr_assert(pipe(fds[p]) == 0);
        pids[p] = fork();
        cr_assert(pids[p] >= 0);
        if (pids[p] == 0) {
            for (int q = 0; q < p; q++)
                close(fds[q][0]);
            if (cuda_up_child() != 0) {
                struct race_report bad = {.other_errors = 1000 + (unsigned)last_rc};
                (void)!write(fds[p][1], &bad, sizeof(bad));
                _exit(2);
            }
            char c;
            close(go[1]);
            close(hold[1]);
            if (read(go[0], &c, 1) != 0)
                _exit(3);
            pthread_t th[RACE_THREADS];
            struct race_thread t[RACE_THREADS];
            memset(t, 0, sizeof(t));
            for (int i = 0; i < RACE_THREADS; i++) {
                t[i].seed = (unsigned)(p * 100 + i + 1);
                pthread_create(&th[i], NULL, race_thread, &t[i]);
            }
            struct race_report rep = {.refused_min = UINT64_MAX};
            for (int i = 0; i < RACE_THREADS; i++) {
                pthread_join(th[i], NULL);
                rep.ok_bytes += t[i].ok_bytes;
                rep.refusals += t[i].refusals;
                rep.other_errors += t[i].other_errors;
                if (t[i].refused_min < rep.refused_min)
                    rep.refused_min = t[i].refused_min;
            }
            if (write(fds[p][1], &rep, sizeof(rep)) != sizeof(rep))
                _exit(4);
            /* Hold the memory until the parent has checked the totals. */
            if (read(hold[0], &c, 1) != 0)
                _exit(5);
            _exit(0);
        }
        close(fds[p][1]);
    }
    close(go[0]);
    close(hold[0]);
    pthread_t watch;
    race_watch_stop = 0;
    pthread_create(&watch, NULL, race_watch, r);
    usleep(200000); /* every child has its context */
    close(go[1]);
    struct race_report all = {.refused_min = UINT64_MAX};
    unsigned refusals = 0;
    for (int p = 0; p < RACE_PROCS; p++) {
        struct race_report rep;
        cr_assert_eq(read(fds[p][0], &rep, sizeof(rep)), (ssize_t)sizeof(rep));
        all.ok_bytes += rep.ok_bytes;
        refusals += rep.refusals;
        cr_expect_eq(rep.other_errors, 0,
                     "process %d: %u errors other than out of memory (over "
                     "1000: CUDA start-up failed with that - 1000)",
                     p, rep.other_errors);
        if (rep.refused_min < all.refused_min)
            all.refused_min = rep.refused_min;
    }
    race_watch_stop = 1;
    pthread_join(watch, NULL);
    uint64_t held = __atomic_load_n(&r->mem_used, __ATOMIC_RELAXED);
    cr_expect_eq(held, all.ok_bytes, "region says %llu held, the processes %llu",
                 (unsigned long long)held, (unsigned long long)all.ok_bytes);
    cr_expect_leq(held, RACE_LIMIT);
    cr_expect_leq(race_watch_max, RACE_LIMIT, "mem_used reached %llu",
                  (unsigned long long)race_watch_max);
    cr_expect_leq(r->mem_peak, RACE_LIMIT);
    cr_expect_gt(held + all.refused_min, RACE_LIMIT,
                 "a refused %llu bytes would have fit: %llu held of %llu",
                 (unsigned long long)all.refused_min, (unsigned long long)held,
                 (unsigned long long)RACE_LIMIT);
    cr_expect_eq(r->oom_count, refusals);
    uint64_t slots = 0;
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
        slots += r->procs[i].mem_used;
    cr_expect_eq(slots, held);
    close(hold[1]);
    for (int p = 0; p < RACE_PROCS; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    /* They left with _exit, no destructor ran: the next allocation that needs their room finds
     * their slots dead and takes it. */
    cuda_up();
    CUdeviceptr all_of_it;
    cr_expect_eq(H(cuMemAlloc_v2)(&all_of_it, RACE_LIMIT), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, RACE_LIMIT);
}

/* The process that forks has met the interposer already (its slot is claimed, as when a
 * program forks workers); each child takes a slot of its own under the same limit. CUDA itself
 * is started in the children only: a CUDA context does not survive fork. */
Test(memory, forked_children_share_the_limit)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    load();
    size_t f, t;
    H(cuMemGetInfo_v2)(&f, &t); /* before cuInit: fails, but the interposer is up */
    cr_assert_eq(r->procs[0].pid, (uint32_t)getpid());
    int ready[2], hold[2];
    cr_assert(pipe(ready) == 0 && pipe(hold) == 0);
    pid_t holder = fork();
    cr_assert(holder >= 0);
    if (holder == 0) {
        close(hold[1]);
        CUdeviceptr a;
        if (cuda_up_child() != 0 || HC(cuMemAlloc_v2)(&a, 40 * MIB) != CUDA_SUCCESS)
            _exit(1);
        (void)!write(ready[1], "r", 1);
        char c;
        (void)!read(hold[0], &c, 1);
        _exit(0);
    }
    close(ready[1]);
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the first child could not allocate");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int bad = 0;
        CUdeviceptr b;
        if (cuda_up_child() != 0)
            _exit(64);
        bad |= HC(cuMemAlloc_v2)(&b, 30 * MIB) != CUDA_ERROR_OUT_OF_MEMORY;
        bad |= (HC(cuMemAlloc_v2)(&b, 24 * MIB) != CUDA_SUCCESS) << 1;
        bad |= (r->mem_used != 64 * MIB) << 2;
        int mine = 0, parents = 0, holders = 0;
        for (int i = 0; i < GM_REGION_MAX_PROCS; i++) {
            mine += r->procs[i].pid == (uint32_t)getpid() && r->procs[i].mem_used == 24 * MIB;
            parents += r->procs[i].pid == (uint32_t)getppid() && r->procs[i].mem_used == 0;
            holders += r->procs[i].pid == (uint32_t)holder && r->procs[i].mem_used == 40 * MIB;
        }
        bad |= (mine != 1 || parents != 1 || holders != 1) << 3;
        _exit(bad);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st));
    cr_expect_eq(WEXITSTATUS(st), 0, "child check failed: mask %d", WEXITSTATUS(st));
    close(hold[1]);
    waitpid(holder, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- memory the driver frees with its context ---- */

TestSuite(contexts, .init = setup, .fini = teardown);

Test(contexts, get_proc_address_answers_context_hooks)
{
    load();
    t_region_create(region_path, 0, 0);
    cuda_up();
    void *p = NULL;
    cr_assert_eq(H(cuGetProcAddress)("cuCtxDestroy", &p, 12020, 0), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)H(cuCtxDestroy_v2));
    cr_assert_eq(H(cuGetProcAddress)("cuDevicePrimaryCtxRelease", &p, 12020, 0), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)H(cuDevicePrimaryCtxRelease_v2));
    cr_assert_eq(H(cuGetProcAddress)("cuDevicePrimaryCtxRelease", &p, 10020, 0), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)H(cuDevicePrimaryCtxRelease));
    cr_assert_eq(H(cuGetProcAddress)("cuDevicePrimaryCtxReset", &p, 12020, 0), CUDA_SUCCESS);
    cr_expect_eq(p, (void *)H(cuDevicePrimaryCtxReset_v2));
}

/* This process's slot in the region. */
static struct gm_region_proc *own_slot(struct gm_region *r)
{
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
        if (r->procs[i].pid == (uint32_t)getpid())
            return &r->procs[i];
    cr_assert_fail("no slot for this process");
    return NULL;
}

Test(contexts, destroyed_context_returns_its_memory)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    load();
    cuda_up();
    CUdeviceptr keep, d;
    cr_assert_eq(H(cuMemAlloc_v2)(&keep, 8 * MIB), CUDA_SUCCESS, "in the primary context");
    uint64_t before = r->mem_used;
    cr_assert_eq(before, 8 * MIB);

    CUcontext ctx;
    cr_assert_eq(R(cuCtxCreate_v2)(&ctx, 0, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_SUCCESS);
    CUDA_ARRAY_DESCRIPTOR ad = {
        .Width = 1024, .Height = 256, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    CUarray arr;
    cr_assert_eq(H(cuArrayCreate_v2)(&arr, &ad), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before + 44 * MIB);
    cr_expect_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_ERROR_OUT_OF_MEMORY);

    cr_assert_eq(H(cuCtxDestroy_v2)(ctx), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before, "the destroyed context's memory is still counted: %llu",
                 (unsigned long long)r->mem_used);
    cr_expect_eq(own_slot(r)->mem_used, before);

    /* The same amount again, in a new context; the primary context's allocation stayed. */
    cr_assert_eq(R(cuCtxCreate_v2)(&ctx, 0, 0), CUDA_SUCCESS);
    cr_expect_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_SUCCESS);
    cr_expect_eq(H(cuArrayCreate_v2)(&arr, &ad), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before + 44 * MIB);
    cr_assert_eq(H(cuCtxDestroy)(ctx), CUDA_SUCCESS, "the first version's hook");
    cr_expect_eq(r->mem_used, before);
    /* A failed destroy changes nothing. */
    cr_expect_neq(H(cuCtxDestroy_v2)(ctx), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before);
    cr_expect_eq(H(cuMemFree_v2)(keep), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, 0);
}

Test(contexts, primary_reset_returns_its_memory)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    load();
    cuda_up();
    /* An ordinary context's allocation, which the reset must leave counted. */
    CUcontext other, popped;
    CUdeviceptr keep, d;
    cr_assert_eq(R(cuCtxCreate_v2)(&other, 0, 0), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemAlloc_v2)(&keep, 8 * MIB), CUDA_SUCCESS);
    cr_assert_eq(R(cuCtxPopCurrent_v2)(&popped), CUDA_SUCCESS);
    cr_assert_eq(popped, other);
    uint64_t before = r->mem_used;
    cr_assert_eq(before, 8 * MIB);

    cr_assert_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_SUCCESS, "in the primary context");
    cr_assert_eq(H(cuMemAllocManaged)(&d, 4 * MIB, CU_MEM_ATTACH_GLOBAL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before + 44 * MIB);
    cr_expect_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_ERROR_OUT_OF_MEMORY);

    cr_assert_eq(H(cuDevicePrimaryCtxReset_v2)(0), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before, "the reset primary context's memory is still counted: %llu",
                 (unsigned long long)r->mem_used);
    cr_expect_eq(own_slot(r)->mem_used, before);

    CUcontext primary;
    cr_assert_eq(R(cuDevicePrimaryCtxRetain)(&primary, 0), CUDA_SUCCESS);
    cr_assert_eq(R(cuCtxSetCurrent)(primary), CUDA_SUCCESS);
    cr_expect_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_SUCCESS);
    cr_expect_eq(H(cuMemAllocManaged)(&d, 4 * MIB, CU_MEM_ATTACH_GLOBAL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before + 44 * MIB);
    cr_assert_eq(H(cuDevicePrimaryCtxReset)(0), CUDA_SUCCESS, "the first version's hook");
    cr_expect_eq(r->mem_used, before);
    /* A reset of an inactive primary context succeeds and changes nothing. */
    cr_expect_eq(H(cuDevicePrimaryCtxReset_v2)(0), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before);
}

Test(contexts, last_primary_release_returns_its_memory)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    load();
    cuda_up(); /* the first reference */
    CUcontext primary;
    cr_assert_eq(R(cuDevicePrimaryCtxRetain)(&primary, 0), CUDA_SUCCESS); /* the second */
    uint64_t before = r->mem_used;
    CUdeviceptr d;
    cr_assert_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_SUCCESS);
    cr_assert_eq(H(cuMemAllocAsync)(&d, 4 * MIB, NULL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before + 44 * MIB);
    cr_expect_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_ERROR_OUT_OF_MEMORY);

    /* Not the last reference: the context and its memory live on. */
    cr_assert_eq(H(cuDevicePrimaryCtxRelease_v2)(0), CUDA_SUCCESS);
    unsigned flags;
    int active = 0;
    cr_assert_eq(R(cuDevicePrimaryCtxGetState)(0, &flags, &active), CUDA_SUCCESS);
    cr_assert(active, "the check for the last reference released one of its own");
    cr_expect_eq(r->mem_used, before + 44 * MIB);

    cr_assert_eq(H(cuDevicePrimaryCtxRelease)(0), CUDA_SUCCESS, "the first version's hook");
    cr_assert_eq(R(cuDevicePrimaryCtxGetState)(0, &flags, &active), CUDA_SUCCESS);
    cr_assert(!active);
    cr_expect_eq(r->mem_used, before,
                 "the released primary context's memory is still counted: %llu",
                 (unsigned long long)r->mem_used);
    cr_expect_eq(own_slot(r)->mem_used, before);

    cr_assert_eq(R(cuDevicePrimaryCtxRetain)(&primary, 0), CUDA_SUCCESS);
    cr_assert_eq(R(cuCtxSetCurrent)(primary), CUDA_SUCCESS);
    cr_expect_eq(H(cuMemAlloc_v2)(&d, 40 * MIB), CUDA_SUCCESS);
    cr_expect_eq(H(cuMemAllocAsync)(&d, 4 * MIB, NULL), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before + 44 * MIB);
    cr_assert_eq(H(cuDevicePrimaryCtxRelease_v2)(0), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before);
    /* A release with no reference left fails and changes nothing. */
    cr_expect_neq(H(cuDevicePrimaryCtxRelease_v2)(0), CUDA_SUCCESS);
    cr_expect_eq(r->mem_used, before);
}

/* ---- launches ---- */

TestSuite(launch, .init = setup, .fini = teardown);

/* Under a 50% cap every launch entry point goes through the pacing: each launch adds its
 * expected device time to the slot's busy_ns, and each reaches gpusim's timeline. */
Test(launch, every_variant_paced)
{
    struct gm_region *r = t_region_create(region_path, 0, 50);
    t_region_window(r, 100 * 1000000ull, 0, 50 * 1000000ull, gm_mono_ns());
    load();
    cuda_up();
    CUmodule mod;
    cr_assert_eq(R(cuModuleLoadData)(&mod, ".version 7.0\n.target sm_75\n"
                                           ".visible .entry k()\n{\n ret;\n}\n"),
                 CUDA_SUCCESS);
    CUfunction f;
    cr_assert_eq(R(cuModuleGetFunction)(&f, mod, "k"), CUDA_SUCCESS);
    CUlaunchConfig cfg = {.gridDimX = 4096,
                          .gridDimY = 1,
                          .gridDimZ = 1,
                          .blockDimX = 256,
                          .blockDimY = 1,
                          .blockDimZ = 1};
    struct gm_region_proc *slot = NULL;
    for (int v = 0; v < 6; v++) {
        uint64_t before = slot != NULL ? __atomic_load_n(&slot->busy_ns, __ATOMIC_RELAXED) : 0;
        CUresult rc = CUDA_ERROR_UNKNOWN;
        switch (v) {
        case 0:
            rc = H(cuLaunchKernel)(f, 4096, 1, 1, 256, 1, 1, 0, NULL, NULL, NULL);
            break;
        case 1:
            rc = H(cuLaunchKernel_ptsz)(f, 4096, 1, 1, 256, 1, 1, 0, NULL, NULL, NULL);
            break;
        case 2:
            rc = H(cuLaunchKernelEx)(&cfg, f, NULL, NULL);
            break;
        case 3:
            rc = H(cuLaunchKernelEx_ptsz)(&cfg, f, NULL, NULL);
            break;
        case 4:
            rc = H(cuLaunchCooperativeKernel)(f, 4096, 1, 1, 256, 1, 1, 0, NULL, NULL);
            break;
        case 5:
            rc = H(cuLaunchCooperativeKernel_ptsz)(f, 4096, 1, 1, 256, 1, 1, 0, NULL, NULL);
            break;
        }
        cr_assert_eq(rc, CUDA_SUCCESS, "launch variant %d: %d", v, rc);
        if (slot == NULL)
            slot = own_slot(r);
        cr_expect_gt(__atomic_load_n(&slot->busy_ns, __ATOMIC_RELAXED), before,
                     "launch variant %d was not paced", v);
    }
    cr_assert_eq(R(cuCtxSynchronize)(), CUDA_SUCCESS);
    /* gpusim refuses a launch without a configuration, through the hook as well. */
    cr_expect_eq(H(cuLaunchKernelEx)(NULL, f, NULL, NULL), CUDA_ERROR_INVALID_VALUE);
}

/* ---- region robustness ---- */

TestSuite(region, .init = setup, .fini = teardown);

Test(region, holder_killed_with_the_lock)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    int ready[2];
    cr_assert(pipe(ready) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* A process of the workload dies in the middle of an update: slot and total disagree
         * and the lock is held. */
        gm_region_lock(r, GM_REGION_WAIT);
        char slot = (char)gm_region_slot_claim_locked(r, (uint32_t)getpid(),
                                                      gm_proc_start_time(getpid()), 30 * MIB);
        r->mem_used += 20 * MIB;
        (void)!write(ready[1], &slot, 1);
        pause();
        _exit(0);
    }
    char slot;
    cr_assert_eq(read(ready[0], &slot, 1), 1);
    cr_assert(slot >= 0 && slot < GM_REGION_MAX_PROCS);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    load();
    cuda_up();
    CUdeviceptr a;
    uint64_t t0 = gm_mono_ns();
    cr_assert_eq(H(cuMemAlloc_v2)(&a, 60 * MIB), CUDA_SUCCESS,
                 "the dead holder's memory is still counted");
    cr_expect_lt(gm_mono_ns() - t0, 1000000000ull, "blocked on the dead holder's lock");
    cr_expect_eq(r->mem_used, 60 * MIB);
    cr_expect_neq(r->procs[(int)slot].pid, (uint32_t)pid, "the dead process's slot was kept");
    cr_expect_eq(gm_region_lock(r, GM_REGION_DAEMON_LOCK_NS), 0,
                 "the lock was not made consistent");
    gm_region_unlock(r);
}

static int slot_of_pid(const struct gm_region *r, pid_t pid)
{
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
        if (r->procs[i].pid == (uint32_t)pid)
            return i;
    return -1;
}

/* The daemon frees this process's slot (its reaper thought it gone, or a test clears it), another
 * process claims that very slot, and then this process allocates: its memory must go to a slot
 * of its own, never into the other's. */
Test(region, slot_freed_and_claimed_by_another_is_not_reused)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    /* Forked before the interposer is up, so that its fork handler claims nothing for it. */
    pid_t other = t_sleeper();
    load();
    cuda_up();
    CUdeviceptr a, b;
    cr_assert_eq(H(cuMemAlloc_v2)(&a, 8 * MIB), CUDA_SUCCESS);
    int mine = slot_of_pid(r, getpid());
    cr_assert_geq(mine, 0);
    cr_assert_eq(r->procs[mine].mem_used, 8 * MIB);

    uint64_t other_start = t_start_of(other);
    cr_assert_eq(gm_region_lock(r, GM_REGION_DAEMON_LOCK_NS), 0);
    gm_region_slot_release_locked(r, mine);
    int theirs = gm_region_slot_claim_locked(r, (uint32_t)other, other_start, 5 * MIB);
    gm_region_unlock(r);
    cr_assert_eq(theirs, mine, "the other process did not get the freed slot");
    cr_assert_eq(r->mem_used, 5 * MIB);

    cr_assert_eq(H(cuMemAlloc_v2)(&b, 4 * MIB), CUDA_SUCCESS);
    int now = slot_of_pid(r, getpid());
    cr_expect_neq(now, -1, "this process has no slot after its slot was taken");
    cr_expect_neq(now, theirs, "this process counts into the other's slot");
    cr_expect_eq(r->procs[theirs].pid, (uint32_t)other);
    cr_expect_eq(r->procs[theirs].mem_used, 5 * MIB, "the other's slot was charged: %llu",
                 (unsigned long long)r->procs[theirs].mem_used);
    if (now >= 0)
        cr_expect_eq(r->procs[now].mem_used, 12 * MIB, "what this process holds: %llu",
                     (unsigned long long)r->procs[now].mem_used);
    cr_expect_eq(r->mem_used, 17 * MIB);

    cr_assert_eq(H(cuMemFree_v2)(a), CUDA_SUCCESS);
    cr_expect_eq(r->procs[theirs].mem_used, 5 * MIB, "a free came off the other's slot");
    cr_expect_eq(r->mem_used, 9 * MIB);
    t_kill_wait(other);
}

/* A running process whose start time was not recorded (or cannot be read) is neither certainly
 * the same nor certainly gone: the interposer's sweep before refusing keeps its slot, as the
 * daemon's reaper does, so its memory still counts against the limit. */
Test(region, unknown_process_keeps_its_slot)
{
    struct gm_region *r = t_region_create(region_path, 64 * MIB, 0);
    pid_t other = t_sleeper();
    cr_assert_eq(gm_region_lock(r, GM_REGION_WAIT), 0);
    int s = gm_region_slot_claim_locked(r, (uint32_t)other, 0, 40 * MIB);
    gm_region_unlock(r);
    cr_assert_geq(s, 0);
    cr_assert_eq(gm_proc_check(other, 0), GM_PROC_UNKNOWN);
    load();
    cuda_up();
    CUdeviceptr a;
    cr_expect_eq(H(cuMemAlloc_v2)(&a, 30 * MIB), CUDA_ERROR_OUT_OF_MEMORY,
                 "the unknown process's memory was dropped by the interposer");
    cr_expect_eq(r->procs[s].pid, (uint32_t)other);
    cr_expect_eq(gm_region_reap(r, GM_REGION_DAEMON_LOCK_NS), 0, "the daemon's reaper freed it");
    cr_expect_eq(r->procs[s].pid, (uint32_t)other);
    cr_expect_eq(r->mem_used, 40 * MIB);
    t_kill_wait(other);
    cr_expect_eq(H(cuMemAlloc_v2)(&a, 30 * MIB), CUDA_SUCCESS, "a gone process still counts");
    cr_expect_eq(r->procs[s].pid == (uint32_t)other, 0);
}

Test(region, wrong_header_is_no_region)
{
    struct gm_region *r = t_region_create(region_path, 1 * MIB, 0);
    r->version = GM_REGION_VERSION + 1;
    load();
    cuda_up();
    CUdeviceptr a;
    cr_expect_eq(H(cuMemAlloc_v2)(&a, 8 * MIB), CUDA_SUCCESS, "a foreign region was obeyed");
    cr_expect_eq(r->mem_used, 0);
}

/* Runs gpumux-sample preloaded; returns its exit status, output in dir/out, dir/err. */
static int run_sample(const char *const env[], const char *n)
{
    char sample[600], out[200], err[200], nopt[64];
    snprintf(sample, sizeof(sample), "%s/bin/gpumux-sample", t_build_dir());
    snprintf(out, sizeof(out), "%s/out", dir);
    snprintf(err, sizeof(err), "%s/err", dir);
    snprintf(nopt, sizeof(nopt), "-n=%s", n);
    char *argv[] = {sample, nopt, "-i=3", NULL};
    return t_run_preloaded(argv, env, out, err);
}

static const char *err_text(void)
{
    char p[200];
    snprintf(p, sizeof(p), "%s/err", dir);
    return t_slurp(p);
}

Test(region, none_warns_once_and_runs_unlimited)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    const char *env[] = {GM_REGION_ENV, NULL};
    cr_assert_eq(run_sample(env, "4096"), 0, "%s", err_text());
    const char *e = err_text();
    cr_expect_eq(t_count_lines_with(e, "gpumux:"), 1, "stderr:\n%s", e);
    cr_expect(strstr(e, "gpumux: no limits region ($GPUMUX_REGION is not set): running without "
                        "limits\n") != NULL,
              "stderr:\n%s", e);
}

Test(region, foreign_files_warn_and_run_unlimited)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    struct gm_region *r = t_region_create(region_path, 1024, 0); /* 1 KiB: nothing would fit */
    char envv[200];
    snprintf(envv, sizeof(envv), "%s=%s", GM_REGION_ENV, region_path);
    const char *env[] = {envv, NULL};
    cr_assert_neq(run_sample(env, "4096"), 0, "the limit was not enforced on the sample");
    cr_expect(strstr(err_text(), "CUDA_ERROR_OUT_OF_MEMORY") != NULL, "%s", err_text());

    __atomic_store_n(&r->magic, 0x12345678u, __ATOMIC_RELEASE);
    cr_assert_eq(run_sample(env, "4096"), 0, "%s", err_text());
    cr_expect(strstr(err_text(), "bad magic 0x12345678): running without limits") != NULL, "%s",
              err_text());
    r->magic = GM_REGION_LIMITS_MAGIC;
    r->version = 99;
    cr_assert_eq(run_sample(env, "4096"), 0, "%s", err_text());
    cr_expect(strstr(err_text(), "layout version 99") != NULL, "%s", err_text());
    r->version = GM_REGION_VERSION;
    r->size = 12;
    cr_assert_eq(run_sample(env, "4096"), 0, "%s", err_text());
    cr_expect(strstr(err_text(), "header says 12 bytes") != NULL, "%s", err_text());
    cr_expect_eq(t_count_lines_with(err_text(), "gpumux:"), 1, "%s", err_text());
    r->size = sizeof(struct gm_region);
    /* The usage part (the workload's own file) is checked as well. */
    __atomic_store_n(&r->usage_magic, 0x0badf00du, __ATOMIC_RELEASE);
    cr_assert_eq(run_sample(env, "4096"), 0, "%s", err_text());
    cr_expect(strstr(err_text(), "w.region: bad magic 0x0badf00d): running without limits") != NULL,
              "%s", err_text());
    char missing[200];
    snprintf(missing, sizeof(missing), "%s=%s/nope", GM_REGION_ENV, dir);
    const char *env2[] = {missing, NULL};
    cr_assert_eq(run_sample(env2, "4096"), 0, "%s", err_text());
    cr_expect(strstr(err_text(), "No such file or directory): running without limits") != NULL,
              "%s", err_text());
}

Test(region, strict_refuses_cuda)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    const char *env[] = {GM_REGION_ENV, "GPUMUX_ENFORCE=strict", NULL};
    int rc = run_sample(env, "4096");
    const char *e = err_text();
    cr_expect_eq(rc, 1, "the sample ran (%d):\n%s", rc, e);
    cr_expect(strstr(e, "gpumux: no limits region ($GPUMUX_REGION is not set): GPUMUX_ENFORCE="
                        "strict, so CUDA is refused (cuInit returns CUDA_ERROR_NOT_PERMITTED)\n") !=
                  NULL,
              "stderr:\n%s", e);
    cr_expect(strstr(e, "CUDA_ERROR_NOT_PERMITTED") != NULL, "stderr:\n%s", e);
    cr_expect_eq(t_count_lines_with(e, "gpumux:"), 1, "stderr:\n%s", e);
}

Test(region, sample_counted_and_released)
{
    T_SKIP_PRELOAD_UNDER_ASAN();
    struct gm_region *r = t_region_create(region_path, 1024 * MIB, 0);
    char envv[200];
    snprintf(envv, sizeof(envv), "%s=%s", GM_REGION_ENV, region_path);
    const char *env[] = {envv, NULL};
    cr_assert_eq(run_sample(env, "4096"), 0, "%s", err_text());
    cr_expect_eq(t_count_lines_with(err_text(), "gpumux:"), 0, "%s", err_text());
    cr_expect_eq(r->mem_peak, 3 * 4096 * 16, "the sample's three buffers");
    cr_expect_eq(r->mem_used, 0);
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
        cr_expect_eq(r->procs[i].pid, 0, "slot %d kept after exit", i);
}
