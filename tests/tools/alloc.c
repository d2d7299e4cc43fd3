/* gm-alloc [--attack] [--bare] MIB SECONDS: a workload for the end-to-end tests of memory limits.
 *
 * Allocates MIB MiB of device memory through libcuda.so.1 (gpusim's, found on the library
 * path), prints the outcome and holds it for SECONDS. Exit 0 when the allocation succeeded, 1
 * when the driver (or the interposer) refused it, 2 on a usage error, 3 when an attack went
 * through.
 *
 *   --attack  first does what a workload could try against its own limits: finds its region
 *             the way the interposer does ($GPUMUX_REGION and the limits file beside it), opens
 *             the limits file for writing, changes its mode, replaces it, maps the region and
 *             stores memory_limit=0 and compute_pct=0, makes the limits page writable with
 *             mprotect. Each line says "refused: ..." or "ATTACK SUCCEEDED: ...".
 *   --bare    sheds the interposer: drops LD_PRELOAD and execs itself again (the same process,
 *             so the same workload), then allocates with the driver alone.
 *   --escape  allocates in a grandchild that left the workload's session (setsid) and was
 *             reparented (its parent exits), while the workload's own process waits SECONDS. */
#define GM_CUDA_NO_API_NAMES
#include "common/cuda_api.h"
#include "region/region.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int succeeded;
static sigjmp_buf fault;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(fault, 1);
}

/* ok first, then errno: the two are read in this order (TRY), not as arguments are. */
#define TRY(expr, what)                                                                            \
    do {                                                                                           \
        int ok_ = (expr);                                                                          \
        outcome(ok_, what, errno);                                                                 \
    } while (0)

static void outcome(int ok, const char *what, int e)
{
    if (ok) {
        succeeded++;
        printf("ATTACK SUCCEEDED: %s\n", what);
    } else {
        printf("refused: %s (%s)\n", what, e ? strerror(e) : "SIGSEGV");
    }
}

static void attack(void)
{
    const char *path = getenv(GM_REGION_ENV);
    char lpath[4096], planted[4200];
    if (path == NULL || gm_region_limits_path(path, lpath, sizeof(lpath), NULL) < 0) {
        printf("no region to attack\n");
        return;
    }
    int fd = -1;
    TRY((fd = open(lpath, O_RDWR | O_CLOEXEC)) >= 0, "open the limits file for writing");
    if (fd >= 0)
        close(fd);
    TRY(chmod(lpath, 0666) == 0, "chmod the limits file 0666");
    snprintf(planted, sizeof(planted), "%s.mine", lpath);
    TRY((fd = open(planted, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) >= 0,
        "create a limits file of its own beside it");
    if (fd >= 0) {
        TRY(rename(planted, lpath) == 0, "rename it over the limits file");
        close(fd);
        unlink(planted);
    }
    TRY(unlink(lpath) == 0, "remove the limits file");

    struct gm_region *r;
    struct gm_error err = {0};
    if (gm_region_attach(path, &r, &err) < 0) {
        printf("cannot map the region: %s\n", err.msg);
        return;
    }
    TRY(mprotect(r, GM_REGION_LIMITS_SIZE, PROT_READ | PROT_WRITE) == 0,
        "mprotect the limits page writable");
    struct sigaction sa = {.sa_handler = on_segv}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old);
    volatile int wrote = 0;
    if (sigsetjmp(fault, 1) == 0) {
        __atomic_store_n(&r->memory_limit, 0, __ATOMIC_RELEASE);
        wrote = 1;
    }
    outcome(wrote, "store memory_limit=0 in the mapped region", 0);
    wrote = 0;
    if (sigsetjmp(fault, 1) == 0) {
        __atomic_store_n(&r->compute_pct, 0, __ATOMIC_RELEASE);
        __atomic_add_fetch(&r->generation, 2, __ATOMIC_RELEASE);
        wrote = 1;
    }
    outcome(wrote, "store compute_pct=0 in the mapped region", 0);
    sigaction(SIGSEGV, &old, NULL);
    printf("memory_limit is %llu bytes\n",
           (unsigned long long)__atomic_load_n(&r->memory_limit, __ATOMIC_ACQUIRE));
    gm_region_detach(r);
}

#define NEED(h, f) ((__typeof__(&f))dlsym(h, #f))

int main(int argc, char **argv)
{
    int do_attack = 0, bare = 0, escape = 0, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--attack") == 0)
            do_attack = 1;
        else if (strcmp(argv[i], "--bare") == 0)
            bare = 1;
        else if (strcmp(argv[i], "--escape") == 0)
            escape = 1;
        else
            break;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: gm-alloc [--attack] [--bare] [--escape] MIB SECONDS\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (bare && getenv("LD_PRELOAD") != NULL) {
        unsetenv("LD_PRELOAD");
        execv("/proc/self/exe", argv);
        perror("gm-alloc: exec");
        return 2;
    }
    unsigned long long mib = strtoull(argv[i], NULL, 10);
    unsigned seconds = (unsigned)strtoul(argv[i + 1], NULL, 10);
    if (do_attack)
        attack();
    if (escape) {
        pid_t child = fork();
        if (child == 0) {
            setsid();
            if (fork() != 0)
                _exit(0); /* the grandchild goes to init */
            printf("escaped: pid %d, session %d\n", (int)getpid(), (int)getsid(0));
        } else {
            waitpid(child, NULL, 0);
            sleep(seconds);
            return 0;
        }
    }
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "gm-alloc: %s\n", dlerror());
        return 2;
    }
    __typeof__(&cuInit) init = NEED(h, cuInit);
    __typeof__(&cuDeviceGet) dev_get = NEED(h, cuDeviceGet);
    __typeof__(&cuCtxCreate_v2) ctx_create = NEED(h, cuCtxCreate_v2);
    __typeof__(&cuMemAlloc_v2) mem_alloc = NEED(h, cuMemAlloc_v2);
    if (init == NULL || dev_get == NULL || ctx_create == NULL || mem_alloc == NULL) {
        fprintf(stderr, "gm-alloc: libcuda.so.1 lacks a function\n");
        return 2;
    }
    CUdevice dev;
    CUcontext ctx;
    CUdeviceptr p;
    CUresult rc = init(0);
    if (rc == CUDA_SUCCESS)
        rc = dev_get(&dev, 0);
    if (rc == CUDA_SUCCESS)
        rc = ctx_create(&ctx, 0, dev);
    if (rc == CUDA_SUCCESS)
        rc = mem_alloc(&p, (size_t)mib << 20);
    printf("cuMemAlloc(%llu MiB)%s: %s (%d)\n", mib,
           getenv("LD_PRELOAD") ? "" : " without the interposer",
           rc == CUDA_SUCCESS               ? "ok"
           : rc == CUDA_ERROR_OUT_OF_MEMORY ? "CUDA_ERROR_OUT_OF_MEMORY"
                                            : "error",
           (int)rc);
    if (rc == CUDA_SUCCESS)
        sleep(seconds);
    return succeeded ? 3 : rc == CUDA_SUCCESS ? 0 : 1;
}
