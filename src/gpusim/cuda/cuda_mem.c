/* gpusim's libcuda.so.1: device memory. Every allocation is real host memory (anonymous,
 * reserved lazily, so a 14 GiB allocation costs nothing until it is written), handed out at a
 * device-looking address that a table maps back. What a process holds counts against the GPU in
 * the shared process table, so allocations of all processes together cannot exceed the GPU.
 * Physical memory of the virtual memory family (cuMemCreate) lives in a memfd, so that cuMemMap
 * can map the same pages into a reserved range (MAP_FIXED over the range's placeholder). */
#include "gpusim/cuda/cuda_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Device addresses start here and stay below DEV_END; managed memory is at its host address. */
#define DEV_BASE 0x7f0000000000ull
#define DEV_END  0x7ff000000000ull

/* K_VMM is a physical allocation from cuMemCreate: its handle is its address in the device
 * table, which is no pointer (nothing may copy to it); K_RESERVED a range from
 * cuMemAddressReserve, usable where mapped with access set. */
enum kind { K_DEVICE, K_MANAGED, K_HOST, K_ARRAY, K_VMM, K_GLOBALS, K_RESERVED };

/* One cuMemMap in a reserved range. */
struct vm_map {
    size_t off, size; /* in the range */
    CUmemGenericAllocationHandle handle;
    int access; /* cuMemSetAccess gave read or read-write access */
};

struct alloc {
    CUdeviceptr base;
    size_t size;
    void *host;
    size_t map_len;
    struct CUctx_st *ctx; /* NULL for host memory */
    enum kind kind;
    uint64_t counted;  /* bytes in the device's data_bytes */
    int fd;            /* K_VMM: the memfd, else -1 */
    unsigned maps;     /* K_VMM: mappings of it in reserved ranges */
    int released;      /* K_VMM: cuMemRelease'd while mapped; goes with its last mapping */
    struct vm_map *vm; /* K_RESERVED: its mappings */
    size_t nvm, cap_vm;
};

/* Device ranges sorted by base; managed and host memory in a second, unsorted list. */
static struct alloc *devs, *others;
static size_t ndevs, cap_devs, nothers, cap_others;

struct CUarray_st {
    uint32_t magic;
    CUdeviceptr dptr;
    CUDA_ARRAY_DESCRIPTOR desc;
};

struct CUmemPoolHandle_st {
    uint32_t magic;
    int dev;
    int is_default;
};

static struct CUmemPoolHandle_st default_pools[GM_SIM_MAX_GPUS];

static uint64_t round_up(uint64_t v, uint64_t to)
{
    return (v + to - 1) / to * to;
}

int gm_sim_cuda_account_locked(struct gm_sim_cuda_dev *d, int64_t data_delta, int64_t module_delta)
{
    uint64_t data = d->data_bytes + (uint64_t)data_delta;
    uint64_t mod = d->module_bytes + (uint64_t)module_delta;
    /* MPS's pinned limit caps what the client allocates, not its context. */
    if (data_delta > 0 && d->mps && d->mps_client.pinned_mem_limit > 0 &&
        data > d->mps_client.pinned_mem_limit)
        return -GM_ENOSPACE;
    uint64_t total = (uint64_t)d->nctx * d->ctx_memory + round_up(data + mod, GM_SIM_CUDA_PAGE);
    if (total != d->registered_bytes) {
        int rc = gm_sim_proc_set_memory(gm_sim_cuda_g.st, d->gpu, (uint32_t)getpid(), total, NULL);
        if (rc < 0 && total > d->registered_bytes)
            return -GM_ENOSPACE; /* whatever the table's reason, the device took no more */
        d->registered_bytes = total;
    }
    d->data_bytes = data;
    d->module_bytes = mod;
    return CUDA_SUCCESS;
}

/* The host memory behind an allocation: anonymous, a memfd for K_VMM (*fd), an inaccessible
 * placeholder for K_RESERVED. */
static void *map(size_t len, enum kind kind, size_t *map_len, int *fd)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    *map_len = round_up(len == 0 ? 1 : len, page);
    *fd = -1;
    if (kind == K_VMM) {
        *fd = memfd_create("gpusim-vmm", MFD_CLOEXEC);
        if (*fd < 0)
            return NULL;
        void *p = MAP_FAILED;
        if (ftruncate(*fd, (off_t)*map_len) == 0)
            p = mmap(NULL, *map_len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
        if (p == MAP_FAILED) {
            close(*fd);
            *fd = -1;
            return NULL;
        }
        return p;
    }
    void *p = mmap(NULL, *map_len, kind == K_RESERVED ? PROT_NONE : PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void unmap(struct alloc *a)
{
    munmap(a->host, a->map_len);
    if (a->fd >= 0)
        close(a->fd);
    free(a->vm);
}

static int grow(struct alloc **arr, size_t *cap, size_t n)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap == 0 ? 64 : *cap * 2;
    struct alloc *a = realloc(*arr, nc * sizeof(*a));
    if (a == NULL)
        return -1;
    *arr = a;
    *cap = nc;
    return 0;
}

/* First fit in the device address space; allocations keep a 2 MiB-aligned start (or align,
 * when larger), as the driver's large ones do, so that addresses look like a real GPU's. */
static CUdeviceptr place(size_t size, uint64_t align, size_t *index)
{
    uint64_t need = round_up(size == 0 ? 1 : size, GM_SIM_CUDA_ALIGN);
    align = align > GM_SIM_CUDA_PAGE ? align : GM_SIM_CUDA_PAGE;
    uint64_t cur = round_up(DEV_BASE, align);
    size_t i = 0;
    for (; i < ndevs; i++) {
        if (devs[i].base >= cur + need)
            break;
        uint64_t next = round_up(devs[i].base + devs[i].size, align);
        cur = next > cur ? next : cur;
    }
    if (cur + need > DEV_END)
        return 0;
    *index = i;
    return cur;
}

static CUresult insert_aligned(struct CUctx_st *ctx, size_t size, uint64_t align, enum kind kind,
                               int counted, CUdeviceptr *out)
{
    size_t map_len;
    int fd;
    void *host = map(size, kind, &map_len, &fd);
    if (host == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    struct alloc a = {
        .size = size, .host = host, .map_len = map_len, .ctx = ctx, .kind = kind, .fd = fd};
    uint64_t charge = counted ? round_up(size, GM_SIM_CUDA_ALIGN) : 0;
    struct gm_sim_cuda_dev *d = ctx != NULL ? &gm_sim_cuda_g.dev[ctx->dev] : NULL;
    CUresult rc = CUDA_SUCCESS;
    if (charge > 0)
        rc = gm_sim_cuda_from_gm(gm_sim_cuda_account_locked(d, (int64_t)charge, 0),
                                 GM_SIM_CUDA_IN_CALL);
    if (rc != CUDA_SUCCESS) {
        unmap(&a);
        return rc;
    }
    a.counted = charge;
    if (kind == K_MANAGED || kind == K_HOST) {
        if (grow(&others, &cap_others, nothers) < 0)
            goto nomem;
        a.base = (CUdeviceptr)(uintptr_t)host;
        others[nothers++] = a;
    } else {
        size_t i = 0;
        a.base = place(size, align, &i);
        if (a.base == 0 || grow(&devs, &cap_devs, ndevs) < 0)
            goto nomem;
        memmove(&devs[i + 1], &devs[i], (ndevs - i) * sizeof(*devs));
        devs[i] = a;
        ndevs++;
    }
    *out = a.base;
    return CUDA_SUCCESS;
nomem:
    if (charge > 0)
        gm_sim_cuda_account_locked(d, -(int64_t)charge, 0);
    unmap(&a);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult insert(struct CUctx_st *ctx, size_t size, enum kind kind, int counted,
                       CUdeviceptr *out)
{
    return insert_aligned(ctx, size, GM_SIM_CUDA_PAGE, kind, counted, out);
}

static void drop(struct alloc *a)
{
    if (a->counted > 0 && a->ctx != NULL)
        gm_sim_cuda_account_locked(&gm_sim_cuda_g.dev[a->ctx->dev], -(int64_t)a->counted, 0);
    unmap(a);
}

static struct alloc *find_dev(CUdeviceptr p, size_t *index)
{
    size_t lo = 0, hi = ndevs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (devs[mid].base + (devs[mid].size == 0 ? 1 : devs[mid].size) <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ndevs && devs[lo].base <= p) {
        *index = lo;
        return &devs[lo];
    }
    return NULL;
}

static struct alloc *find_other(CUdeviceptr p, size_t *index)
{
    for (size_t i = 0; i < nothers; i++)
        if (others[i].base <= p &&
            p < others[i].base + (others[i].size == 0 ? 1 : others[i].size)) {
            *index = i;
            return &others[i];
        }
    return NULL;
}

/* Bytes of [off, off + len) in the reserved range a that are mapped (with access, if asked). */
static size_t vm_covered(const struct alloc *a, size_t off, size_t len, int need_access)
{
    size_t n = 0;
    for (size_t j = 0; j < a->nvm; j++) {
        const struct vm_map *m = &a->vm[j];
        size_t lo = off > m->off ? off : m->off;
        size_t hi = off + len < m->off + m->size ? off + len : m->off + m->size;
        if (lo < hi && (!need_access || m->access))
            n += hi - lo;
    }
    return n;
}

void *gm_sim_cuda_host_ptr_locked(CUdeviceptr p, size_t len)
{
    size_t i;
    struct alloc *a = find_dev(p, &i);
    if (a == NULL) {
        a = find_other(p, &i);
        if (a == NULL || a->kind == K_HOST)
            return NULL;
    }
    if (a->kind == K_VMM || len > a->size || p - a->base > a->size - len)
        return NULL;
    if (a->kind == K_RESERVED && vm_covered(a, p - a->base, len, 1) != len)
        return NULL; /* unmapped, or mapped without cuMemSetAccess: an illegal address */
    return (char *)a->host + (p - a->base);
}

CUresult gm_sim_cuda_alloc_locked(struct CUctx_st *ctx, size_t bytes, int managed, CUdeviceptr *out)
{
    return insert(ctx, bytes, managed ? K_MANAGED : K_DEVICE, 1, out);
}

/* Only what cuMemAlloc and its kin hand out; arrays, VMM handles and globals have their own. */
static CUresult free_kind_locked(CUdeviceptr p, int allow_kinds)
{
    size_t i;
    struct alloc *a = find_dev(p, &i);
    if (a != NULL && a->base == p && (allow_kinds & (1 << a->kind))) {
        drop(a);
        memmove(&devs[i], &devs[i + 1], (ndevs - i - 1) * sizeof(*devs));
        ndevs--;
        return CUDA_SUCCESS;
    }
    a = find_other(p, &i);
    if (a != NULL && a->base == p && (allow_kinds & (1 << a->kind))) {
        drop(a);
        others[i] = others[--nothers];
        return CUDA_SUCCESS;
    }
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult gm_sim_cuda_free_locked(CUdeviceptr p)
{
    return free_kind_locked(p, 1 << K_GLOBALS);
}

static void vm_remove_locked(CUdeviceptr range, size_t j);

void gm_sim_cuda_mem_release_ctx_locked(struct CUctx_st *ctx)
{
    /* Mappings first, so that what they held is accounted for before the ranges go. */
    for (size_t i = 0; i < ndevs; i++) {
        while (i < ndevs && devs[i].ctx == ctx && devs[i].kind == K_RESERVED && devs[i].nvm > 0) {
            CUdeviceptr b = devs[i].base;
            vm_remove_locked(b, devs[i].nvm - 1);
            find_dev(b, &i);
        }
    }
    for (size_t i = 0; i < ndevs;) {
        if (devs[i].ctx == ctx) {
            drop(&devs[i]);
            memmove(&devs[i], &devs[i + 1], (ndevs - i - 1) * sizeof(*devs));
            ndevs--;
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < nothers;) {
        if (others[i].ctx == ctx) {
            drop(&others[i]);
            others[i] = others[--nothers];
        } else {
            i++;
        }
    }
}

void gm_sim_cuda_mem_release_all_locked(void)
{
    for (size_t i = 0; i < ndevs; i++)
        unmap(&devs[i]);
    for (size_t i = 0; i < nothers; i++)
        unmap(&others[i]);
    free(devs);
    free(others);
    devs = others = NULL;
    ndevs = nothers = cap_devs = cap_others = 0;
}

/* Shared by the allocating entry points: the current context and a check of its device. */
static CUresult alloc_common(CUdeviceptr *dptr, size_t bytes, enum kind kind)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (dptr == NULL || bytes == 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    rc = insert(ctx, bytes, kind, 1, dptr);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    return alloc_common(dptr, bytesize, K_DEVICE);
}

GM_SIM_CUDA_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
                                            size_t Height, unsigned int ElementSizeBytes)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pPitch == NULL || WidthInBytes == 0 || Height == 0 ||
        (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16))
        return CUDA_ERROR_INVALID_VALUE;
    size_t pitch = round_up(WidthInBytes, GM_SIM_CUDA_ALIGN);
    if (Height > SIZE_MAX / pitch)
        return CUDA_ERROR_OUT_OF_MEMORY;
    rc = alloc_common(dptr, pitch * Height, K_DEVICE);
    if (rc == CUDA_SUCCESS)
        *pPitch = pitch;
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST)
        return gm_sim_cuda_check_init() == CUDA_SUCCESS ? CUDA_ERROR_INVALID_VALUE
                                                        : gm_sim_cuda_check_init();
    return alloc_common(dptr, bytesize, K_MANAGED);
}

static CUresult check_stream(CUstream s)
{
    if (s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD)
        return CUDA_SUCCESS;
    if (s->magic != GM_SIM_CUDA_MAGIC_STREAM)
        return CUDA_ERROR_INVALID_HANDLE;
    return gm_sim_cuda_check_ctx(s->ctx) == CUDA_SUCCESS ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* Stream-ordered allocation: the simulated device never runs the kernels that would use the
 * memory early, so the memory is simply there at once. */
GM_SIM_CUDA_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc == CUDA_SUCCESS)
        rc = check_stream(hStream);
    return rc != CUDA_SUCCESS ? rc : alloc_common(dptr, bytesize, K_DEVICE);
}

GM_SIM_CUDA_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize,
                                                 CUmemoryPool pool, CUstream hStream)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc == CUDA_SUCCESS && (pool == NULL || pool->magic != GM_SIM_CUDA_MAGIC_POOL))
        rc = CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS)
        rc = check_stream(hStream);
    return rc != CUDA_SUCCESS ? rc : alloc_common(dptr, bytesize, K_DEVICE);
}

/* The per-thread default stream is ordered as the legacy one in gpusim (cuda_exec.c). */
GM_SIM_CUDA_API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    return cuMemAllocAsync(dptr, bytesize, hStream);
}

GM_SIM_CUDA_API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                                      CUmemoryPool pool, CUstream hStream)
{
    return cuMemAllocFromPoolAsync(dptr, bytesize, pool, hStream);
}

static CUresult free_common(CUdeviceptr dptr)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (dptr == 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    rc = free_kind_locked(dptr, (1 << K_DEVICE) | (1 << K_MANAGED));
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    return free_common(dptr);
}

GM_SIM_CUDA_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc == CUDA_SUCCESS)
        rc = check_stream(hStream);
    return rc != CUDA_SUCCESS ? rc : free_common(dptr);
}

GM_SIM_CUDA_API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    return cuMemFreeAsync(dptr, hStream);
}

GM_SIM_CUDA_API CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pp == NULL || bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUdeviceptr p = 0;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    /* Pinned host memory belongs to the process, not the device: it outlives the context. */
    rc = insert(NULL, bytesize, K_HOST, 0, &p);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    if (rc == CUDA_SUCCESS)
        *pp = (void *)(uintptr_t)p;
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemFreeHost(void *p)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (p == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    rc = free_kind_locked((CUdeviceptr)(uintptr_t)p, 1 << K_HOST);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (free == NULL || total == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct gm_sim_cuda_dev *d = &gm_sim_cuda_g.dev[ctx->dev];
    struct gm_sim_reading r;
    if (gm_sim_gpu_snapshot(gm_sim_cuda_g.st, d->gpu, NULL, &r, NULL) < 0)
        return CUDA_ERROR_UNKNOWN;
    uint64_t all = gm_sim_cuda_g.st->gpus[d->gpu].info.memory_total;
    *total = all;
    *free = r.memory_used >= all ? 0 : all - r.memory_used;
    return CUDA_SUCCESS;
}

/* Synchronous copies wait for the context's queued work, as the legacy stream orders them. */
static void wait_ctx(struct CUctx_st *ctx)
{
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    uint64_t t = gm_sim_cuda_ctx_tail_locked(ctx);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    gm_sleep_until_ns(t);
}

enum dir { H2D, D2H, D2D };

static CUresult copy(enum dir dir, void *dst_host, CUdeviceptr dst, const void *src_host,
                     CUdeviceptr src, size_t n, int sync, CUstream stream)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc == CUDA_SUCCESS && !sync)
        rc = check_stream(stream);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (n == 0)
        return CUDA_SUCCESS;
    if ((dir != D2H && dst == 0) || (dir == D2H && dst_host == NULL) || (dir != H2D && src == 0) ||
        (dir == H2D && src_host == NULL))
        return CUDA_ERROR_INVALID_VALUE;
    if (sync)
        wait_ctx(ctx);
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    void *d = dir == D2H ? dst_host : gm_sim_cuda_host_ptr_locked(dst, n);
    const void *s = dir == H2D ? src_host : gm_sim_cuda_host_ptr_locked(src, n);
    if (d == NULL || s == NULL)
        rc = CUDA_ERROR_INVALID_VALUE;
    else
        memmove(d, s, n);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost,
                                         size_t ByteCount)
{
    return copy(H2D, NULL, dstDevice, srcHost, 0, ByteCount, 1, NULL);
}

GM_SIM_CUDA_API CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount)
{
    return copy(D2H, dstHost, 0, NULL, srcDevice, ByteCount, 1, NULL);
}

GM_SIM_CUDA_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                         size_t ByteCount)
{
    return copy(D2D, NULL, dstDevice, NULL, srcDevice, ByteCount, 1, NULL);
}

GM_SIM_CUDA_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost,
                                              size_t ByteCount, CUstream hStream)
{
    return copy(H2D, NULL, dstDevice, srcHost, 0, ByteCount, 0, hStream);
}

GM_SIM_CUDA_API CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice,
                                              size_t ByteCount, CUstream hStream)
{
    return copy(D2H, dstHost, 0, NULL, srcDevice, ByteCount, 0, hStream);
}

GM_SIM_CUDA_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                              size_t ByteCount, CUstream hStream)
{
    return copy(D2D, NULL, dstDevice, NULL, srcDevice, ByteCount, 0, hStream);
}

static CUresult memset_common(CUdeviceptr dst, unsigned value, size_t width, size_t n)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (dst == 0 || dst % width != 0 || n > SIZE_MAX / width)
        return CUDA_ERROR_INVALID_VALUE;
    if (n == 0)
        return CUDA_SUCCESS;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    unsigned char *p = gm_sim_cuda_host_ptr_locked(dst, n * width);
    if (p == NULL) {
        rc = CUDA_ERROR_INVALID_VALUE;
    } else if (width == 1) {
        memset(p, (int)(value & 0xff), n);
    } else {
        uint32_t v = value;
        for (size_t i = 0; i < n; i++)
            memcpy(p + i * 4, &v, 4);
    }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemsetD8_v2(CUdeviceptr dstDevice, unsigned char uc, size_t N)
{
    return memset_common(dstDevice, uc, 1, N);
}

GM_SIM_CUDA_API CUresult cuMemsetD32_v2(CUdeviceptr dstDevice, unsigned int ui, size_t N)
{
    return memset_common(dstDevice, ui, 4, N);
}

static size_t format_bytes(CUarray_format f)
{
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
        return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
        return 2;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT:
        return 4;
    }
    return 0;
}

/* 1D, 2D, 3D and layered arrays: width x max(height, 1) x max(depth, 1) elements. */
static CUresult array_create(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *a)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pHandle == NULL || a == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    size_t elem = format_bytes(a->Format);
    unsigned ch = a->NumChannels;
    if (elem == 0 || (ch != 1 && ch != 2 && ch != 4) || a->Width == 0 || a->Width > 131072 ||
        a->Height > 65536 || a->Depth > 16384 ||
        (a->Depth > 0 && a->Height == 0 && !(a->Flags & CUDA_ARRAY3D_LAYERED)))
        return CUDA_ERROR_INVALID_VALUE;
    size_t bytes =
        a->Width * (a->Height == 0 ? 1 : a->Height) * (a->Depth == 0 ? 1 : a->Depth) * elem * ch;
    struct CUarray_st *arr = calloc(1, sizeof(*arr));
    if (arr == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    rc = insert(ctx, bytes, K_ARRAY, 1, &arr->dptr);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    if (rc != CUDA_SUCCESS) {
        free(arr);
        return rc;
    }
    arr->magic = GM_SIM_CUDA_MAGIC_ARRAY;
    arr->desc = (CUDA_ARRAY_DESCRIPTOR){a->Width, a->Height, a->Format, a->NumChannels};
    *pHandle = arr;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuArrayCreate_v2(CUarray *pHandle,
                                          const CUDA_ARRAY_DESCRIPTOR *pAllocateArray)
{
    if (pAllocateArray == NULL)
        return array_create(pHandle, NULL);
    const CUDA_ARRAY_DESCRIPTOR *a = pAllocateArray;
    CUDA_ARRAY3D_DESCRIPTOR d = {a->Width, a->Height, 0, a->Format, a->NumChannels, 0};
    return array_create(pHandle, &d);
}

GM_SIM_CUDA_API CUresult cuArray3DCreate_v2(CUarray *pHandle,
                                            const CUDA_ARRAY3D_DESCRIPTOR *pAllocateArray)
{
    return array_create(pHandle, pAllocateArray);
}

GM_SIM_CUDA_API CUresult cuArrayDestroy(CUarray hArray)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (hArray == NULL || hArray->magic != GM_SIM_CUDA_MAGIC_ARRAY)
        return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    /* Already gone when its context was destroyed; the handle is freed either way. */
    free_kind_locked(hArray->dptr, 1 << K_ARRAY);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    hArray->magic = 0;
    free(hArray);
    return CUDA_SUCCESS;
}

static CUresult check_prop(const CUmemAllocationProp *prop)
{
    if (prop == NULL || prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
        prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    return gm_sim_cuda_device(prop->location.id) == NULL ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuMemGetAllocationGranularity(size_t *granularity,
                                                       const CUmemAllocationProp *prop,
                                                       CUmemAllocationGranularity_flags option)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc == CUDA_SUCCESS)
        rc = check_prop(prop);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (granularity == NULL || (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM &&
                                option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
        return CUDA_ERROR_INVALID_VALUE;
    *granularity = GM_SIM_CUDA_PAGE;
    return CUDA_SUCCESS;
}

/* A physical allocation is counted like any other from the moment it is created (what a real
 * driver does is docs/interpose.md's open question); its handle is the address it lives at in
 * the simulated device, not a pointer: only cuMemMap makes it addressable. */
GM_SIM_CUDA_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                                     const CUmemAllocationProp *prop, unsigned long long flags)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc == CUDA_SUCCESS)
        rc = check_prop(prop);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (handle == NULL || flags != 0 || size == 0 || size % GM_SIM_CUDA_PAGE != 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (prop->location.id != ctx->dev)
        return CUDA_ERROR_INVALID_DEVICE;
    CUdeviceptr p = 0;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    rc = insert(ctx, size, K_VMM, 1, &p);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    if (rc == CUDA_SUCCESS)
        *handle = p;
    return rc;
}

static struct alloc *find_handle(CUmemGenericAllocationHandle h)
{
    size_t i;
    struct alloc *a = find_dev(h, &i);
    return a != NULL && a->base == h && a->kind == K_VMM && !a->released ? a : NULL;
}

/* A released handle's memory stays while it is mapped, as the driver keeps it. */
GM_SIM_CUDA_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    struct alloc *a = find_handle(handle);
    if (a == NULL)
        rc = CUDA_ERROR_INVALID_VALUE;
    else if (a->maps > 0)
        a->released = 1;
    else
        rc = free_kind_locked(handle, 1 << K_VMM);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

/* The reserved range holding [p, p + size), or NULL. */
static struct alloc *find_range(CUdeviceptr p, size_t size)
{
    size_t i;
    struct alloc *a = find_dev(p, &i);
    if (a == NULL || a->kind != K_RESERVED || size > a->size || p - a->base > a->size - size)
        return NULL;
    return a;
}

GM_SIM_CUDA_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment,
                                             CUdeviceptr addr, unsigned long long flags)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    (void)addr; /* a hint the driver may ignore, and gpusim does */
    if (ptr == NULL || size == 0 || size % GM_SIM_CUDA_PAGE != 0 || flags != 0 ||
        (alignment & (alignment - 1)) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    rc = insert_aligned(ctx, size, alignment, K_RESERVED, 0, ptr);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

/* Only a whole range with nothing mapped in it. */
GM_SIM_CUDA_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    struct alloc *a = find_range(ptr, size);
    if (a == NULL || a->base != ptr || a->size != size || a->nvm > 0)
        rc = CUDA_ERROR_INVALID_VALUE;
    else
        rc = free_kind_locked(ptr, 1 << K_RESERVED);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                                  CUmemGenericAllocationHandle handle, unsigned long long flags)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (size == 0 || flags != 0 || ptr % GM_SIM_CUDA_PAGE != 0 || size % GM_SIM_CUDA_PAGE != 0 ||
        offset % GM_SIM_CUDA_PAGE != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    struct alloc *h = find_handle(handle);
    struct alloc *r = find_range(ptr, size);
    if (h == NULL || r == NULL || offset > h->size || size > h->size - offset ||
        vm_covered(r, ptr - r->base, size, 0) != 0)
        rc = CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS && r->nvm == r->cap_vm) {
        size_t nc = r->cap_vm == 0 ? 8 : r->cap_vm * 2;
        struct vm_map *v = realloc(r->vm, nc * sizeof(*v));
        if (v == NULL) {
            rc = CUDA_ERROR_OUT_OF_MEMORY;
        } else {
            r->vm = v;
            r->cap_vm = nc;
        }
    }
    if (rc == CUDA_SUCCESS && mmap((char *)r->host + (ptr - r->base), size, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_FIXED, h->fd, (off_t)offset) == MAP_FAILED)
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (rc == CUDA_SUCCESS) {
        r->vm[r->nvm++] = (struct vm_map){.off = ptr - r->base, .size = size, .handle = handle};
        h->maps++;
    }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

/* Takes mapping j out of the range at base range: the placeholder goes back over it, and a
 * released handle whose last mapping this was is freed (which moves the table's entries). */
static void vm_remove_locked(CUdeviceptr range, size_t j)
{
    size_t i;
    struct alloc *r = find_dev(range, &i);
    struct vm_map m = r->vm[j];
    mmap((char *)r->host + m.off, m.size, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    r->vm[j] = r->vm[--r->nvm];
    struct alloc *h = find_dev(m.handle, &i);
    if (h == NULL || h->base != m.handle || h->kind != K_VMM)
        return; /* gone with its own context */
    if (--h->maps == 0 && h->released)
        free_kind_locked(m.handle, 1 << K_VMM);
}

/* Whole mappings only: [ptr, ptr + size) must be mapped throughout and cut none in two. */
GM_SIM_CUDA_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    struct alloc *r = size == 0 ? NULL : find_range(ptr, size);
    size_t off = r != NULL ? ptr - r->base : 0;
    if (r == NULL || vm_covered(r, off, size, 0) != size)
        rc = CUDA_ERROR_INVALID_VALUE;
    for (size_t j = 0; rc == CUDA_SUCCESS && j < r->nvm; j++) {
        const struct vm_map *m = &r->vm[j];
        int overlaps = m->off < off + size && off < m->off + m->size;
        if (overlaps && (m->off < off || m->off + m->size > off + size))
            rc = CUDA_ERROR_INVALID_VALUE;
    }
    if (rc == CUDA_SUCCESS) {
        CUdeviceptr base = r->base;
        for (size_t j = 0; j < r->nvm;) {
            if (r->vm[j].off >= off && r->vm[j].off < off + size) {
                vm_remove_locked(base, j);
                size_t i;
                r = find_dev(base, &i);
            } else {
                j++;
            }
        }
    }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

/* Access is per mapping: a range that covers part of a mapping sets it for the whole of it. */
GM_SIM_CUDA_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,
                                        size_t count)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (desc == NULL || count == 0 || size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    int access = -1;
    for (size_t k = 0; k < count; k++) {
        if (desc[k].location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
            (desc[k].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE &&
             desc[k].flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
             desc[k].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE))
            return CUDA_ERROR_INVALID_VALUE;
        if (gm_sim_cuda_device(desc[k].location.id) == NULL)
            return CUDA_ERROR_INVALID_DEVICE;
        access = desc[k].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE;
    }
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    struct alloc *r = find_range(ptr, size);
    size_t off = r != NULL ? ptr - r->base : 0;
    if (r == NULL || vm_covered(r, off, size, 0) != size) {
        rc = CUDA_ERROR_INVALID_VALUE;
    } else {
        for (size_t j = 0; j < r->nvm; j++)
            if (r->vm[j].off < off + size && off < r->vm[j].off + r->vm[j].size)
                r->vm[j].access = access;
    }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pool == NULL || poolProps == NULL ||
        poolProps->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
        poolProps->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    if (gm_sim_cuda_device(poolProps->location.id) == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    struct CUmemPoolHandle_st *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    p->magic = GM_SIM_CUDA_MAGIC_POOL;
    p->dev = poolProps->location.id;
    *pool = p;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pool == NULL || pool->magic != GM_SIM_CUDA_MAGIC_POOL || pool->is_default)
        return CUDA_ERROR_INVALID_VALUE;
    pool->magic = 0;
    free(pool);
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pool_out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (gm_sim_cuda_device(dev) == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    struct CUmemPoolHandle_st *p = &default_pools[dev];
    p->magic = GM_SIM_CUDA_MAGIC_POOL;
    p->dev = dev;
    p->is_default = 1;
    *pool_out = p;
    return CUDA_SUCCESS;
}

CUresult gm_sim_cuda_globals_alloc_locked(struct CUctx_st *ctx, size_t bytes, CUdeviceptr *out)
{
    return insert(ctx, bytes, K_GLOBALS, 0, out);
}
