/* Finding the real driver, and handing out the hooks: to the dynamic linker (the exported
 * names), to dlsym, and to cuGetProcAddress, which is how the CUDA runtime finds the driver. */
#include "interpose/interpose.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

struct gm_ip_real gm_ip_real;

struct entry {
    const char *name;
    const char *base;
    int since;
    int ptds;
    void *hook;
    size_t offset; /* of the real pointer in gm_ip_real */
};

/* -Bsymbolic makes &sym here our own definition, not whatever the dynamic linker found first. */
static const struct entry entries[GM_IP_SYM_COUNT] = {
#define GM_IP_X(ret, sym, base_, since_, ptds_, params)                                            \
    [GM_IP_SYM_##sym] = {.name = #sym,                                                             \
                         .base = #base_,                                                           \
                         .since = since_,                                                          \
                         .ptds = ptds_,                                                            \
                         .hook = (void *)&sym,                                                     \
                         .offset = offsetof(struct gm_ip_real, sym)},
    GM_IP_HOOKS(GM_IP_X)
#undef GM_IP_X
#define GM_IP_X(sym) [GM_IP_SYM_##sym] = {.name = #sym, .offset = offsetof(struct gm_ip_real, sym)},
        GM_IP_INTERNAL(GM_IP_X)
#undef GM_IP_X
};

void *gm_ip_hook_addr(int i)
{
    return i >= 0 && i < GM_IP_NHOOKS ? entries[i].hook : NULL;
}

typedef void *dlsym_fn(void *, const char *);
static dlsym_fn *real_dlsym;
static pthread_once_t dlsym_once = PTHREAD_ONCE_INIT;

/* libc's own dlsym, by version, since asking dlsym for "dlsym" would find this library's. */
static void find_real_dlsym(void)
{
    static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17"};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]) && real_dlsym == NULL; i++) {
        void *p = dlvsym(RTLD_NEXT, "dlsym", versions[i]);
        memcpy(&real_dlsym, &p, sizeof(p));
    }
}

static dlsym_fn *libc_dlsym(void)
{
    pthread_once(&dlsym_once, find_real_dlsym);
    return real_dlsym;
}

/* The handle of the libcuda.so.1 a program dlopen'ed itself (often RTLD_LOCAL, invisible to
 * RTLD_NEXT). */
static void *cuda_handle;

static void **real_slot(int i)
{
    return (void **)((char *)&gm_ip_real + entries[i].offset);
}

static int is_hook(const void *p)
{
    for (int i = 0; i < GM_IP_NHOOKS; i++)
        if (entries[i].hook == p)
            return 1;
    return 0;
}

static void *lookup_in(void *handle, const char *name)
{
    dlsym_fn *ds = libc_dlsym();
    if (ds == NULL || handle == NULL)
        return NULL;
    void *p = ds(handle, name);
    return p != NULL && !is_hook(p) ? p : NULL;
}

void gm_ip_resolve(enum gm_ip_sym i)
{
    if ((int)i < 0 || i >= GM_IP_SYM_COUNT)
        return;
    const char *name = entries[i].name;
    void *p = lookup_in(RTLD_NEXT, name);
    if (p == NULL)
        p = lookup_in(__atomic_load_n(&cuda_handle, __ATOMIC_ACQUIRE), name);
    if (p == NULL) {
        /* NOLOAD: only a driver the program loaded already; we never load one ourselves. */
        void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
        if (h != NULL) {
            void *expected = NULL;
            if (!__atomic_compare_exchange_n(&cuda_handle, &expected, h, 0, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE))
                dlclose(h);
            p = lookup_in(__atomic_load_n(&cuda_handle, __ATOMIC_ACQUIRE), name);
        }
    }
    if (p != NULL)
        __atomic_store_n(real_slot(i), p, __ATOMIC_RELEASE);
}

static int find_hook(const char *name)
{
    for (int i = 0; i < GM_IP_NHOOKS; i++)
        if (strcmp(entries[i].name, name) == 0)
            return i;
    return -1;
}

/* dlsym(RTLD_NEXT, ...) is answered relative to this library rather than to the caller; the
 * only difference that makes is this library's own symbols, which are the point. */
GM_IP_EXPORT void *dlsym(void *handle, const char *name)
{
    dlsym_fn *ds = libc_dlsym();
    if (ds == NULL)
        return NULL;
    if (name[0] != 'c' || name[1] != 'u')
        return ds(handle, name);
    int i = find_hook(name);
    if (i < 0)
        return ds(handle, name);
    void *p = ds(handle, name);
    if (p == NULL)
        return NULL; /* the driver behind handle lacks it: so do we */
    if (is_hook(p)) {
        /* RTLD_DEFAULT found our own export: the real one is behind us. */
        if (__atomic_load_n(real_slot(i), __ATOMIC_ACQUIRE) == NULL)
            gm_ip_resolve((enum gm_ip_sym)i);
        return __atomic_load_n(real_slot(i), __ATOMIC_ACQUIRE) != NULL ? entries[i].hook : NULL;
    }
    if (handle != RTLD_DEFAULT && handle != RTLD_NEXT) {
        void *expected = NULL;
        __atomic_compare_exchange_n(&cuda_handle, &expected, handle, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
    }
    void *expected = NULL;
    __atomic_compare_exchange_n(real_slot(i), &expected, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return entries[i].hook;
}

/* What cuGetProcAddress answered, mapped to our hook: by address first (whatever variant the
 * driver chose for that version and flags), then by the driver's own rule for the name. */
static void *map_proc(const char *symbol, void *p, int version, cuuint64_t flags)
{
    if (p == NULL || is_hook(p))
        return p;
    for (int i = 0; i < GM_IP_NHOOKS; i++) {
        void *r = __atomic_load_n(real_slot(i), __ATOMIC_ACQUIRE);
        if (r == NULL) {
            gm_ip_resolve((enum gm_ip_sym)i);
            r = __atomic_load_n(real_slot(i), __ATOMIC_ACQUIRE);
        }
        if (r == p)
            return entries[i].hook;
    }
    int want_ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    int best = -1;
    for (int i = 0; i < GM_IP_NHOOKS; i++) {
        const struct entry *e = &entries[i];
        if (strcmp(e->base, symbol) != 0 || e->since > version ||
            __atomic_load_n(real_slot(i), __ATOMIC_ACQUIRE) == NULL)
            continue;
        if (best < 0 || (e->ptds == want_ptds && entries[best].ptds != want_ptds) ||
            (e->ptds == entries[best].ptds && e->since > entries[best].since))
            best = i;
    }
    return best >= 0 ? entries[best].hook : p;
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus)
{
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuGetProcAddress_v2, symbol, pfn, cudaVersion, flags, symbolStatus);
    gm_ip_depth--;
    if (rc == CUDA_SUCCESS && pfn != NULL && symbol != NULL && gm_ip_depth == 0)
        *pfn = map_proc(symbol, *pfn, cudaVersion, flags);
    return rc;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    gm_ip_depth++;
    CUresult rc = GM_CALL_REAL(cuGetProcAddress, symbol, pfn, cudaVersion, flags);
    gm_ip_depth--;
    if (rc == CUDA_SUCCESS && pfn != NULL && symbol != NULL && gm_ip_depth == 0)
        *pfn = map_proc(symbol, *pfn, cudaVersion, flags);
    return rc;
}
