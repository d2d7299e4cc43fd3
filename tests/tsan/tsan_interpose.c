/* libgpumux.so under concurrent threads of one workload process: allocations and frees through
 * the hooks race each other and the daemon's writer, which changes the memory limit and the
 * compute window meanwhile. Checks that the region's total never passes the largest limit,
 * that a refusal is CUDA_ERROR_OUT_OF_MEMORY and nothing else, and that everything freed comes
 * off the total. Loads gpusim's libcuda.so.1 and the interposer with dlopen, as the interposer's
 * unit tests do. Run under ThreadSanitizer by `make test` (label tsan) and in every build. */
#include "tsan.h"
#include "common/clock.h"
#include "common/cuda_api.h"
#include "region/region.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_NS  (2000ull * 1000 * 1000)
#define THREADS 4
#define MIB     (1024ull * 1024ull)
#define LIMIT   (64 * MIB)

static void *cuda, *ip;
static struct gm_region *r;
static atomic_int done;
static atomic_long allocs, refusals;
static atomic_ullong seen_max;

#define HOOK(sym) ((__typeof__(&sym))dlsym(ip, #sym))
#define REAL(sym) ((__typeof__(&sym))dlsym(cuda, #sym))

static void *allocator(void *arg)
{
    unsigned seed = (unsigned)(intptr_t)arg;
    __typeof__(&cuMemAlloc_v2) alloc = HOOK(cuMemAlloc_v2);
    __typeof__(&cuMemFree_v2) release = HOOK(cuMemFree_v2);
    __typeof__(&cuMemGetInfo_v2) info = HOOK(cuMemGetInfo_v2);
    CUcontext ctx;
    CHECK(REAL(cuDevicePrimaryCtxRetain)(&ctx, 0) == CUDA_SUCCESS, "primary context");
    REAL(cuCtxSetCurrent)(ctx);
    CUdeviceptr held[16];
    int n = 0;
    while (!atomic_load(&done)) {
        if (n < 16) {
            size_t size = 1 + (size_t)rand_r(&seed) % (8 * MIB);
            CUresult rc = alloc(&held[n], size);
            if (rc == CUDA_SUCCESS) {
                n++;
                atomic_fetch_add(&allocs, 1);
            } else {
                CHECK(rc == CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc: %d", (int)rc);
                atomic_fetch_add(&refusals, 1);
            }
        }
        size_t free_b = 0, total_b = 0;
        CHECK(info(&free_b, &total_b) == CUDA_SUCCESS && total_b <= LIMIT,
              "cuMemGetInfo: total %zu, the limit is %llu", total_b, (unsigned long long)LIMIT);
        if (n > 0 && (n == 16 || rand_r(&seed) % 2))
            CHECK(release(held[--n]) == CUDA_SUCCESS, "cuMemFree");
    }
    while (n > 0)
        CHECK(release(held[--n]) == CUDA_SUCCESS, "cuMemFree");
    return NULL;
}

/* The daemon: limits and windows change while the workload runs. */
static void *daemon_writer(void *arg)
{
    (void)arg;
    for (int k = 0; !atomic_load(&done); k++) {
        gm_region_set_limits(r, k % 2 ? LIMIT / 2 : LIMIT, 50, 0);
        gm_region_set_window(r, 100000000ull, (uint64_t)(k % 2) * 50000000ull, 50000000ull, 0);
        gm_region_reap(r, GM_REGION_DAEMON_LOCK_NS);
        usleep(1000);
    }
    return NULL;
}

static void *watcher(void *arg)
{
    (void)arg;
    /* The total is guarded by the region's lock, as every reader of it takes it. */
    while (!atomic_load(&done)) {
        if (gm_region_lock(r, GM_REGION_DAEMON_LOCK_NS) != 0)
            continue;
        uint64_t u = r->mem_used;
        gm_region_unlock(r);
        if (u > atomic_load(&seen_max))
            atomic_store(&seen_max, u);
    }
    return NULL;
}

int main(void)
{
    const char *build = getenv("GM_BUILD_DIR");
    if (build == NULL) {
        fprintf(stderr, "GM_BUILD_DIR must name the build directory\n");
        return 2;
    }
    char dir[] = "/tmp/gm-tsan-ip-XXXXXX", path[PATH_MAX];
    struct gm_error err = {0};
    if (mkdtemp(dir) == NULL)
        return 2;
    snprintf(path, sizeof(path), "%s/gpusim", dir);
    setenv("GPUSIM_STATE", path, 1);
    unsetenv("GPUSIM_CONFIG");
    snprintf(path, sizeof(path), "%s/w.region", dir);
    struct gm_region_init init = {
        .workload = "w", .gpu_uuid = "", .memory_limit = LIMIT, .uid = (uid_t)-1, .gid = (gid_t)-1};
    if (gm_region_create(path, &init, &r, &err) < 0) {
        fprintf(stderr, "region: %s\n", err.msg);
        return 1;
    }
    setenv(GM_REGION_ENV, path, 1);
    char lib[PATH_MAX];
    snprintf(lib, sizeof(lib), "%s/lib/gpusim/libcuda.so.1", build);
    cuda = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    snprintf(lib, sizeof(lib), "%s/lib/libgpumux.so", build);
    ip = cuda ? dlopen(lib, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (ip == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    if (HOOK(cuInit)(0) != CUDA_SUCCESS) {
        fprintf(stderr, "cuInit through the interposer failed\n");
        return 1;
    }
    pthread_t th[THREADS], w, watch;
    pthread_create(&w, NULL, daemon_writer, NULL);
    pthread_create(&watch, NULL, watcher, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, allocator, (void *)(intptr_t)(i + 1));
    gm_sleep_until_ns(gm_mono_ns() + RUN_NS);
    atomic_store(&done, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_join(w, NULL);
    pthread_join(watch, NULL);

    CHECK(atomic_load(&seen_max) <= LIMIT, "the total reached %llu bytes, the limit is %llu",
          (unsigned long long)atomic_load(&seen_max), (unsigned long long)LIMIT);
    CHECK(gm_region_lock(r, GM_REGION_WAIT) == 0, "lock");
    uint64_t left = r->mem_used;
    gm_region_unlock(r);
    CHECK(left == 0, "%llu bytes left counted", (unsigned long long)left);
    CHECK(atomic_load(&allocs) > 100 && atomic_load(&refusals) > 0,
          "%ld allocations, %ld refusals: the limit was never reached", atomic_load(&allocs),
          atomic_load(&refusals));
    gm_region_detach(r);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("%ld allocations, %ld refusals, most held %llu MiB\n", atomic_load(&allocs),
           atomic_load(&refusals), (unsigned long long)(atomic_load(&seen_max) / MIB));
    return tsan_finish();
}
