/* The memory limit: every allocation family is charged to the workload before the driver is
 * asked, under the region lock, so that no interleaving of threads and processes can take the
 * workload past its limit by a single byte; the charge is returned when the driver refuses or
 * the memory is freed. Sizes are the bytes asked for (pitch x height, array extents x element
 * size), not the driver's rounding.
 *
 * Each allocation also remembers the context that was current when it was made: the driver frees
 * a context's memory with the context (cuCtxDestroy, the primary context's reset or last release),
 * and the charge goes with it. */
#include "interpose/interpose.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* KIND_HANDLE is a cuMemCreate handle; KIND_MAP a cuMemMap (key: its address), charged to
 * nothing itself but holding its owner: the handle, or, once the handle is released while
 * still mapped, a KIND_ORPHAN (key: a serial) that keeps the handle's charge until its last
 * mapping goes, as the driver keeps the memory. */
enum kind { KIND_PTR = 1, KIND_ARRAY, KIND_HANDLE, KIND_MAP, KIND_ORPHAN };

/* Live allocations of this process: (kind, key) -> (size, context), open addressing with
 * tombstones. */
struct cell {
    uint64_t key;
    uint64_t size;      /* charged; for KIND_MAP the mapping's length, not charged */
    CUcontext ctx;      /* current when it was made; NULL when none was */
    uint8_t kind;       /* 0 empty, 0xff deleted */
    uint8_t owner_kind; /* KIND_MAP: KIND_HANDLE or KIND_ORPHAN */
    uint32_t maps;      /* KIND_HANDLE, KIND_ORPHAN: live KIND_MAP cells that name it */
    uint64_t owner;     /* KIND_MAP: the owner's key */
};
#define DELETED 0xff

static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cell *cells;
static size_t ncells, nused, nlive;

static size_t hash(uint64_t key, int kind)
{
    uint64_t h = (key ^ ((uint64_t)kind << 56)) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h ^ (h >> 29));
}

static int map_grow_locked(void)
{
    size_t n = ncells == 0 ? 1024 : (nlive * 4 > ncells ? ncells * 2 : ncells);
    struct cell *c = calloc(n, sizeof(*c));
    if (c == NULL)
        return -1;
    for (size_t i = 0; i < ncells; i++) {
        if (cells[i].kind == 0 || cells[i].kind == DELETED)
            continue;
        size_t j = hash(cells[i].key, cells[i].kind) & (n - 1);
        while (c[j].kind != 0)
            j = (j + 1) & (n - 1);
        c[j] = cells[i];
    }
    free(cells);
    cells = c;
    ncells = n;
    nused = nlive;
    return 0;
}

static int map_put(int kind, uint64_t key, uint64_t size, CUcontext ctx)
{
    pthread_mutex_lock(&map_lock);
    if ((nused + 1) * 2 > ncells && map_grow_locked() != 0) {
        pthread_mutex_unlock(&map_lock);
        return -1;
    }
    size_t j = hash(key, kind) & (ncells - 1);
    while (cells[j].kind != 0 && cells[j].kind != DELETED)
        j = (j + 1) & (ncells - 1);
    if (cells[j].kind == 0)
        nused++;
    cells[j] = (struct cell){.key = key, .size = size, .ctx = ctx, .kind = (uint8_t)kind};
    nlive++;
    pthread_mutex_unlock(&map_lock);
    return 0;
}

/* The live cell (kind, key), or NULL; caller holds map_lock. */
static struct cell *map_find_locked(int kind, uint64_t key)
{
    if (ncells == 0)
        return NULL;
    size_t j = hash(key, kind) & (ncells - 1);
    while (cells[j].kind != 0) {
        if (cells[j].kind == kind && cells[j].key == key)
            return &cells[j];
        j = (j + 1) & (ncells - 1);
    }
    return NULL;
}

/* Removes (kind, key); 1 with its size and context when it was there. */
static int map_take(int kind, uint64_t key, uint64_t *size, CUcontext *ctx)
{
    int found = 0;
    pthread_mutex_lock(&map_lock);
    if (ncells > 0) {
        size_t j = hash(key, kind) & (ncells - 1);
        while (cells[j].kind != 0) {
            if (cells[j].kind == kind && cells[j].key == key) {
                *size = cells[j].size;
                *ctx = cells[j].ctx;
                cells[j].kind = DELETED;
                nlive--;
                found = 1;
                break;
            }
            j = (j + 1) & (ncells - 1);
        }
    }
    pthread_mutex_unlock(&map_lock);
    return found;
}

void gm_ip_memory_atfork_prepare(void)
{
    pthread_mutex_lock(&map_lock);
}

void gm_ip_memory_atfork_parent(void)
{
    pthread_mutex_unlock(&map_lock);
}

void gm_ip_memory_atfork_child(void)
{
    pthread_mutex_init(&map_lock, NULL);
    free(cells);
    cells = NULL;
    ncells = nused = nlive = 0;
}

/* A charge taken before the driver is called. */
struct charge {
    uint64_t size;
    int counted;
};

/* 0 with the charge taken (or nothing to count), else -GM_ENOSPACE (past the limit) or
 * -GM_EPERM (strict enforcement without a region): the hook answers gm_ip_cu_result of it
 * without calling the driver. The limit is read at every charge, so a live change applies at
 * once. */
static int charge(struct charge *c, uint64_t size)
{
    c->size = size;
    c->counted = 0;
    gm_ip_init();
    if (gm_ip_refused)
        return -GM_EPERM;
    struct gm_region *r = gm_ip_region;
    if (r == NULL || size == 0 || gm_ip_region_lock() != 0)
        return 0;
    uint64_t limit = __atomic_load_n(&r->memory_limit, __ATOMIC_ACQUIRE);
    int over = limit != 0 && (r->mem_used > limit || size > limit - r->mem_used);
    if (over) {
        /* Before refusing, make sure the room is not held by the dead: a refusal is rare and
         * the daemon's sweep may not have come yet. */
        gm_ip_region_sweep_locked();
        over = r->mem_used > limit || size > limit - r->mem_used;
    }
    if (over) {
        r->oom_count++;
        gm_ip_region_unlock();
        return -GM_ENOSPACE;
    }
    gm_ip_charge_locked(size);
    gm_ip_region_unlock();
    c->counted = 1;
    return 0;
}

static void uncharge(uint64_t size)
{
    if (size == 0 || gm_ip_region_lock() != 0)
        return;
    gm_ip_uncharge_locked(size);
    gm_ip_region_unlock();
}

/* The context the driver makes allocations in now, asked of the driver itself. */
static CUcontext current_ctx(void)
{
    CUcontext ctx = NULL;
    if (GM_CALL_REAL(cuCtxGetCurrent, &ctx) != CUDA_SUCCESS)
        return NULL;
    return ctx;
}

/* After the driver answered: keep the charge for a new allocation, return it on failure. An
 * allocation the map cannot record (no memory) stays charged until the process exits. */
static void settle(const struct charge *c, CUresult rc, int kind, uint64_t key)
{
    if (!c->counted)
        return;
    if (rc != CUDA_SUCCESS)
        uncharge(c->size);
    else
        map_put(kind, key, c->size, current_ctx());
}

/* The driver's free succeeded: return the charge. The entry leaves the map before the driver
 * frees, so that another thread that gets the same address back cannot have its entry taken. */
#define GM_IP_FREE(sym, kind_, key_, ...)                                                          \
    do {                                                                                           \
        if (gm_ip_depth > 0)                                                                       \
            return GM_CALL_REAL(sym, __VA_ARGS__);                                                 \
        uint64_t size_ = 0;                                                                        \
        CUcontext ctx_ = NULL;                                                                     \
        int found_ = map_take(kind_, (uint64_t)(key_), &size_, &ctx_);                             \
        gm_ip_depth++;                                                                             \
        CUresult rc_ = GM_CALL_REAL(sym, __VA_ARGS__);                                             \
        gm_ip_depth--;                                                                             \
        if (found_ && rc_ == CUDA_SUCCESS)                                                         \
            uncharge(size_);                                                                       \
        else if (found_)                                                                           \
            map_put(kind_, (uint64_t)(key_), size_, ctx_);                                         \
        return rc_;                                                                                \
    } while (0)

/* Charge size, call the driver, settle with the key the call wrote. */
#define GM_IP_ALLOC(sym, size_, kind_, out_, ...)                                                  \
    do {                                                                                           \
        if (gm_ip_depth > 0)                                                                       \
            return GM_CALL_REAL(sym, __VA_ARGS__);                                                 \
        struct charge c_;                                                                          \
        int grc_ = charge(&c_, (size_));                                                           \
        if (grc_ < 0)                                                                              \
            return gm_ip_cu_result(grc_);                                                          \
        gm_ip_depth++;                                                                             \
        CUresult rc_ = GM_CALL_REAL(sym, __VA_ARGS__);                                             \
        gm_ip_depth--;                                                                             \
        settle(&c_, rc_, kind_, rc_ == CUDA_SUCCESS ? (uint64_t)(uintptr_t) * (out_) : 0);         \
        return rc_;                                                                                \
    } while (0)

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    GM_IP_ALLOC(cuMemAlloc_v2, bytesize, KIND_PTR, dptr, dptr, bytesize);
}

CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int bytesize)
{
    GM_IP_ALLOC(cuMemAlloc, bytesize, KIND_PTR, dptr, dptr, bytesize);
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    GM_IP_ALLOC(cuMemAllocManaged, bytesize, KIND_PTR, dptr, dptr, bytesize, flags);
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    GM_IP_ALLOC(cuMemAllocAsync, bytesize, KIND_PTR, dptr, dptr, bytesize, hStream);
}

CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    GM_IP_ALLOC(cuMemAllocAsync_ptsz, bytesize, KIND_PTR, dptr, dptr, bytesize, hStream);
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                 CUstream hStream)
{
    GM_IP_ALLOC(cuMemAllocFromPoolAsync, bytesize, KIND_PTR, dptr, dptr, bytesize, pool, hStream);
}

CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                      CUstream hStream)
{
    GM_IP_ALLOC(cuMemAllocFromPoolAsync_ptsz, bytesize, KIND_PTR, dptr, dptr, bytesize, pool,
                hStream);
}

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                     const CUmemAllocationProp *prop, unsigned long long flags)
{
    GM_IP_ALLOC(cuMemCreate, size, KIND_HANDLE, handle, handle, size, prop, flags);
}

static uint64_t element_bytes(CUarray_format f, unsigned channels)
{
    uint64_t b;
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
        b = 1;
        break;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
        b = 2;
        break;
    default: /* 32-bit formats, and any newer one counted as at least that */
        b = 4;
        break;
    }
    return b * (channels == 0 ? 1 : channels);
}

static uint64_t extent(uint64_t v)
{
    return v == 0 ? 1 : v;
}

static uint64_t array_bytes(uint64_t w, uint64_t h, uint64_t d, CUarray_format f, unsigned ch)
{
    /* Saturate: an absurd descriptor must be refused by the limit, not wrap to a small size. */
    uint64_t e = element_bytes(f, ch), n = w;
    if (__builtin_mul_overflow(n, extent(h), &n) || __builtin_mul_overflow(n, extent(d), &n) ||
        __builtin_mul_overflow(n, e, &n))
        return UINT64_MAX;
    return n;
}

CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *pAllocateArray)
{
    const CUDA_ARRAY_DESCRIPTOR *a = pAllocateArray;
    uint64_t n = a == NULL ? 0 : array_bytes(a->Width, a->Height, 1, a->Format, a->NumChannels);
    GM_IP_ALLOC(cuArrayCreate_v2, n, KIND_ARRAY, pHandle, pHandle, pAllocateArray);
}

CUresult cuArrayCreate(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR_v1 *pAllocateArray)
{
    const CUDA_ARRAY_DESCRIPTOR_v1 *a = pAllocateArray;
    uint64_t n = a == NULL ? 0 : array_bytes(a->Width, a->Height, 1, a->Format, a->NumChannels);
    GM_IP_ALLOC(cuArrayCreate, n, KIND_ARRAY, pHandle, pHandle, pAllocateArray);
}

CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *pAllocateArray)
{
    const CUDA_ARRAY3D_DESCRIPTOR *a = pAllocateArray;
    uint64_t n =
        a == NULL ? 0 : array_bytes(a->Width, a->Height, a->Depth, a->Format, a->NumChannels);
    GM_IP_ALLOC(cuArray3DCreate_v2, n, KIND_ARRAY, pHandle, pHandle, pAllocateArray);
}

CUresult cuArray3DCreate(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR_v1 *pAllocateArray)
{
    const CUDA_ARRAY3D_DESCRIPTOR_v1 *a = pAllocateArray;
    uint64_t n =
        a == NULL ? 0 : array_bytes(a->Width, a->Height, a->Depth, a->Format, a->NumChannels);
    GM_IP_ALLOC(cuArray3DCreate, n, KIND_ARRAY, pHandle, pHandle, pAllocateArray);
}

/* The pitch is the driver's choice, so the charge is a bound on it (rows padded to 512 bytes,
 * the largest pitch alignment drivers use), trued up to pitch x height once it is known. */
#define GM_IP_PITCH_ALIGN 512u

static int pitch_settle(struct charge *c, uint64_t pitch, uint64_t height)
{
    if (!c->counted)
        return 0;
    uint64_t actual = pitch * height;
    if (actual < c->size) {
        uncharge(c->size - actual);
        c->size = actual;
    } else if (actual > c->size) {
        struct charge more;
        int rc = charge(&more, actual - c->size);
        if (rc < 0)
            return rc;
        c->size = actual;
    }
    return 0;
}

static uint64_t pitch_bound(uint64_t width, uint64_t height)
{
    uint64_t row = (width + GM_IP_PITCH_ALIGN - 1) / GM_IP_PITCH_ALIGN * GM_IP_PITCH_ALIGN, n;
    if (width == 0 || height == 0)
        return 0;
    return __builtin_mul_overflow(row, height, &n) ? UINT64_MAX : n;
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                            unsigned int ElementSizeBytes)
{
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuMemAllocPitch_v2, dptr, pPitch, WidthInBytes, Height,
                            ElementSizeBytes);
    struct charge c;
    int grc = charge(&c, pitch_bound(WidthInBytes, Height));
    if (grc < 0)
        return gm_ip_cu_result(grc);
    CUresult rc;
    gm_ip_depth++;
    rc = GM_CALL_REAL(cuMemAllocPitch_v2, dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    if (rc == CUDA_SUCCESS && (grc = pitch_settle(&c, *pPitch, Height)) < 0) {
        GM_CALL_REAL(cuMemFree_v2, *dptr);
        rc = gm_ip_cu_result(grc);
    }
    gm_ip_depth--;
    settle(&c, rc, KIND_PTR, rc == CUDA_SUCCESS ? *dptr : 0);
    return rc;
}

CUresult cuMemAllocPitch(CUdeviceptr_v1 *dptr, unsigned int *pPitch, unsigned int WidthInBytes,
                         unsigned int Height, unsigned int ElementSizeBytes)
{
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuMemAllocPitch, dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    struct charge c;
    int grc = charge(&c, pitch_bound(WidthInBytes, Height));
    if (grc < 0)
        return gm_ip_cu_result(grc);
    CUresult rc;
    gm_ip_depth++;
    rc = GM_CALL_REAL(cuMemAllocPitch, dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    if (rc == CUDA_SUCCESS && (grc = pitch_settle(&c, *pPitch, Height)) < 0) {
        GM_CALL_REAL(cuMemFree, *dptr);
        rc = gm_ip_cu_result(grc);
    }
    gm_ip_depth--;
    settle(&c, rc, KIND_PTR, rc == CUDA_SUCCESS ? *dptr : 0);
    return rc;
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    GM_IP_FREE(cuMemFree_v2, KIND_PTR, dptr, dptr);
}

CUresult cuMemFree(CUdeviceptr_v1 dptr)
{
    GM_IP_FREE(cuMemFree, KIND_PTR, dptr, dptr);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    GM_IP_FREE(cuMemFreeAsync, KIND_PTR, dptr, dptr, hStream);
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    GM_IP_FREE(cuMemFreeAsync_ptsz, KIND_PTR, dptr, dptr, hStream);
}

CUresult cuArrayDestroy(CUarray hArray)
{
    GM_IP_FREE(cuArrayDestroy, KIND_ARRAY, (uintptr_t)hArray, hArray);
}

/* A handle released while mapped keeps its charge: it moves to an orphan that its mappings
 * now name, returned with the last of them (cuMemUnmap). Without mappings, as any free. */
CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuMemRelease, handle);
    pthread_mutex_lock(&map_lock);
    struct cell *h = map_find_locked(KIND_HANDLE, handle);
    int mapped = h != NULL && h->maps > 0;
    pthread_mutex_unlock(&map_lock);
    if (!mapped)
        GM_IP_FREE(cuMemRelease, KIND_HANDLE, handle, handle);
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuMemRelease, handle);
    gm_ip_depth--;
    if (rc != CUDA_SUCCESS)
        return rc;
    static uint64_t serial;
    uint64_t size = 0;
    CUcontext ctx = NULL;
    pthread_mutex_lock(&map_lock);
    h = map_find_locked(KIND_HANDLE, handle);
    uint32_t maps = h != NULL ? h->maps : 0;
    pthread_mutex_unlock(&map_lock);
    if (h == NULL || map_take(KIND_HANDLE, handle, &size, &ctx) == 0)
        return rc; /* gone with its context meanwhile */
    uint64_t key = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
    if (map_put(KIND_ORPHAN, key, size, ctx) != 0)
        return rc; /* cannot be tracked: stays charged until the process exits */
    pthread_mutex_lock(&map_lock);
    struct cell *o = map_find_locked(KIND_ORPHAN, key);
    if (o != NULL)
        o->maps = maps;
    for (size_t i = 0; i < ncells; i++)
        if (cells[i].kind == KIND_MAP && cells[i].owner_kind == KIND_HANDLE &&
            cells[i].owner == handle) {
            cells[i].owner_kind = KIND_ORPHAN;
            cells[i].owner = key;
        }
    pthread_mutex_unlock(&map_lock);
    return rc;
}

/* Mapping charges nothing (the handle was charged at cuMemCreate); it is remembered so that a
 * released handle's charge lasts as long as the driver keeps its memory. */
CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                  unsigned long long flags)
{
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuMemMap, ptr, size, offset, handle, flags);
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuMemMap, ptr, size, offset, handle, flags);
    gm_ip_depth--;
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&map_lock);
    struct cell *h = map_find_locked(KIND_HANDLE, handle);
    int known = h != NULL;
    if (known)
        h->maps++;
    pthread_mutex_unlock(&map_lock);
    if (!known || map_put(KIND_MAP, ptr, size, current_ctx()) != 0)
        return rc; /* a handle never charged, or a mapping that cannot be tracked */
    pthread_mutex_lock(&map_lock);
    struct cell *m = map_find_locked(KIND_MAP, ptr);
    if (m != NULL) {
        m->owner_kind = KIND_HANDLE;
        m->owner = handle;
    }
    pthread_mutex_unlock(&map_lock);
    return rc;
}

/* After the driver unmapped [ptr, ptr + size): each mapping in it drops its owner's count, and
 * an orphan whose last mapping this was returns its charge. */
CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuMemUnmap, ptr, size);
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuMemUnmap, ptr, size);
    gm_ip_depth--;
    if (rc != CUDA_SUCCESS)
        return rc;
    uint64_t freed = 0;
    pthread_mutex_lock(&map_lock);
    for (size_t i = 0; i < ncells; i++) {
        struct cell *m = &cells[i];
        if (m->kind != KIND_MAP || m->key < ptr || m->key - ptr >= size)
            continue;
        m->kind = DELETED;
        nlive--;
        struct cell *o = map_find_locked(m->owner_kind, m->owner);
        if (o == NULL || o->maps == 0)
            continue;
        if (--o->maps == 0 && o->kind == KIND_ORPHAN) {
            freed += o->size;
            o->kind = DELETED;
            nlive--;
        }
    }
    pthread_mutex_unlock(&map_lock);
    uncharge(freed);
    return rc;
}

/* ---- memory the driver frees with its context ---- */

/* Caller holds map_lock: drops every allocation made in ctx and returns their charge. */
static void release_ctx_locked(CUcontext ctx)
{
    uint64_t total = 0;
    for (size_t i = 0; i < ncells; i++) {
        struct cell *c = &cells[i];
        if (c->kind == 0 || c->kind == DELETED || c->ctx != ctx)
            continue;
        if (c->kind == KIND_MAP) {
            struct cell *o = map_find_locked(c->owner_kind, c->owner);
            if (o != NULL && o->maps > 0 && --o->maps == 0 && o->kind == KIND_ORPHAN &&
                o->ctx != ctx) {
                total += o->size; /* an orphan of another context, unmapped with this one */
                o->kind = DELETED;
                nlive--;
            }
        } else {
            total += c->size;
        }
        c->kind = DELETED;
        nlive--;
    }
    if (total > 0 && gm_ip_region_lock() == 0) {
        gm_ip_uncharge_locked(total);
        gm_ip_region_unlock();
    }
}

typedef CUresult primary_fn(CUdevice dev);

/* 1 when dev's primary context is active, 0 when it is not, -1 when the driver cannot say. */
static int primary_active(CUdevice dev)
{
    unsigned flags = 0;
    int active = 0;
    if (GM_CALL_REAL(cuDevicePrimaryCtxGetState, dev, &flags, &active) != CUDA_SUCCESS)
        return -1;
    return active != 0;
}

/* The handle of dev's primary context while it is active, else NULL. A retain and a release
 * that cancel out: the release cannot be the last one, since the context was active and holds
 * our reference too. */
static CUcontext primary_handle(CUdevice dev, primary_fn *release)
{
    CUcontext ctx = NULL;
    if (primary_active(dev) != 1 ||
        GM_CALL_REAL(cuDevicePrimaryCtxRetain, &ctx, dev) != CUDA_SUCCESS)
        return NULL;
    release(dev);
    return ctx;
}

/* The map lock is held across the driver's call, so that an allocation made meanwhile in a
 * context that reuses the handle (a new context at the same address, the primary context
 * retained again) enters the map only after the purge and keeps its charge. No other hook holds
 * the map lock inside the driver (they take it before or after their driver call), and calls
 * the driver makes into its own entry points pass through without it (gm_ip_depth). */
static CUresult ctx_destroy(CUresult (*real)(CUcontext), CUcontext ctx)
{
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (gm_ip_depth > 0)
        return real(ctx);
    gm_ip_depth++;
    pthread_mutex_lock(&map_lock);
    CUresult rc = real(ctx);
    if (rc == CUDA_SUCCESS && ctx != NULL)
        release_ctx_locked(ctx);
    pthread_mutex_unlock(&map_lock);
    gm_ip_depth--;
    return rc;
}

/* Release or reset of dev's primary context: its memory goes when the context does, which the
 * driver's own state tells after the call (a release that drops the last reference; a reset). */
static CUresult primary_drop(primary_fn *real, primary_fn *undo, CUdevice dev)
{
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (gm_ip_depth > 0)
        return real(dev);
    gm_ip_depth++;
    pthread_mutex_lock(&map_lock);
    int any = nlive > 0;
    pthread_mutex_unlock(&map_lock);
    CUcontext ctx = any && undo != NULL ? primary_handle(dev, undo) : NULL;
    pthread_mutex_lock(&map_lock);
    CUresult rc = real(dev);
    if (rc == CUDA_SUCCESS && ctx != NULL && primary_active(dev) == 0)
        release_ctx_locked(ctx);
    pthread_mutex_unlock(&map_lock);
    gm_ip_depth--;
    return rc;
}

/* The release that undoes primary_handle's retain, whichever variant the driver has. */
static primary_fn *real_primary_release(void)
{
    primary_fn *f = GM_REAL(cuDevicePrimaryCtxRelease_v2);
    return f != NULL ? f : GM_REAL(cuDevicePrimaryCtxRelease);
}

CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    gm_ip_init();
    return ctx_destroy(GM_REAL(cuCtxDestroy_v2), ctx);
}

CUresult cuCtxDestroy(CUcontext ctx)
{
    gm_ip_init();
    return ctx_destroy(GM_REAL(cuCtxDestroy), ctx);
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    gm_ip_init();
    return primary_drop(GM_REAL(cuDevicePrimaryCtxRelease_v2), real_primary_release(), dev);
}

CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
    gm_ip_init();
    return primary_drop(GM_REAL(cuDevicePrimaryCtxRelease), real_primary_release(), dev);
}

CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    gm_ip_init();
    return primary_drop(GM_REAL(cuDevicePrimaryCtxReset_v2), real_primary_release(), dev);
}

CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
    gm_ip_init();
    return primary_drop(GM_REAL(cuDevicePrimaryCtxReset), real_primary_release(), dev);
}

/* What the workload may still use: the limit less what all its processes hold, and never more
 * than the device really has free. */
static int limited(uint64_t *limit, uint64_t *used)
{
    gm_ip_init();
    struct gm_region *r = gm_ip_region;
    if (r == NULL)
        return 0;
    *limit = __atomic_load_n(&r->memory_limit, __ATOMIC_ACQUIRE);
    *used = __atomic_load_n(&r->mem_used, __ATOMIC_RELAXED);
    return *limit != 0;
}

static void clamp_info(uint64_t *free_b, uint64_t *total_b)
{
    uint64_t limit, used;
    if (!limited(&limit, &used))
        return;
    uint64_t left = used < limit ? limit - used : 0;
    if (left < *free_b)
        *free_b = left;
    if (limit < *total_b)
        *total_b = limit;
}

CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    gm_ip_init();
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuMemGetInfo_v2, free, total);
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuMemGetInfo_v2, free, total);
    gm_ip_depth--;
    if (rc == CUDA_SUCCESS && free != NULL && total != NULL) {
        uint64_t f = *free, t = *total;
        clamp_info(&f, &t);
        *free = f;
        *total = t;
    }
    return rc;
}

CUresult cuMemGetInfo(unsigned int *free, unsigned int *total)
{
    gm_ip_init();
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuMemGetInfo, free, total);
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuMemGetInfo, free, total);
    gm_ip_depth--;
    if (rc == CUDA_SUCCESS && free != NULL && total != NULL) {
        uint64_t f = *free, t = *total;
        clamp_info(&f, &t);
        *free = (unsigned int)f;
        *total = (unsigned int)t;
    }
    return rc;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    gm_ip_init();
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuDeviceTotalMem_v2, bytes, dev);
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuDeviceTotalMem_v2, bytes, dev);
    gm_ip_depth--;
    uint64_t limit, used;
    if (rc == CUDA_SUCCESS && bytes != NULL && limited(&limit, &used) && limit < *bytes)
        *bytes = limit;
    return rc;
}

CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
    gm_ip_init();
    if (gm_ip_depth > 0)
        return GM_CALL_REAL(cuDeviceTotalMem, bytes, dev);
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuDeviceTotalMem, bytes, dev);
    gm_ip_depth--;
    uint64_t limit, used;
    if (rc == CUDA_SUCCESS && bytes != NULL && limited(&limit, &used) && limit < *bytes)
        *bytes = (unsigned int)limit;
    return rc;
}
