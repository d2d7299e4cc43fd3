/* gpusim's libcuda.so.1: contexts. The first live context of the process on a GPU registers it
 * in that GPU's process table (and attaches it to the MPS daemon when one runs); the last one
 * to go unregisters it, as does the process's exit. */
#include "gpusim/cuda/cuda_internal.h"

#include "common/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STACK_MAX 64

/* The calling thread's context stack; the top is the current context. */
static __thread struct CUctx_st *stack[STACK_MAX];
static __thread int depth;

CUresult gm_sim_cuda_check_ctx(const struct CUctx_st *ctx)
{
    if (ctx == NULL || ctx->magic != GM_SIM_CUDA_MAGIC_CTX || !ctx->live)
        return CUDA_ERROR_INVALID_CONTEXT;
    return CUDA_SUCCESS;
}

CUresult gm_sim_cuda_current(struct CUctx_st **out)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    struct CUctx_st *c = depth > 0 ? stack[depth - 1] : NULL;
    rc = gm_sim_cuda_check_ctx(c);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = gm_sim_cuda_mps_check(&gm_sim_cuda_g.dev[c->dev]);
    if (rc != CUDA_SUCCESS)
        return rc;
    *out = c;
    return CUDA_SUCCESS;
}

CUresult gm_sim_cuda_mps_check(const struct gm_sim_cuda_dev *d)
{
    if (d->mps && d->nctx > 0 && gm_sim_mps_client_terminated(&d->mps_client))
        return CUDA_ERROR_MPS_CLIENT_TERMINATED;
    return CUDA_SUCCESS;
}

/* CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: "0=1G,1=512M" by device ordinal, or a UUID on the left,
 * or one bare size for every device. 0 when none applies. */
static uint64_t pinned_limit(int ordinal, const char *uuid)
{
    const char *env = getenv("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT");
    if (env == NULL || env[0] == '\0')
        return 0;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", env);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        char *eq = strchr(tok, '=');
        const char *size = tok;
        if (eq != NULL) {
            *eq = '\0';
            size = eq + 1;
            char idx[16];
            snprintf(idx, sizeof(idx), "%d", ordinal);
            if (strcmp(tok, idx) != 0 && strcmp(tok, uuid) != 0)
                continue;
        }
        uint64_t v = 0;
        if (gm_parse_size(size, &v, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", NULL) == 0)
            return v;
    }
    return 0;
}

static int requested_pct(void)
{
    const char *env = getenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE");
    if (env == NULL || env[0] == '\0')
        return 0;
    double v = strtod(env, NULL);
    return v > 0 && v <= 100 ? (int)v : 0;
}

/* Caller holds the lock. The process is not yet on this GPU. */
static CUresult device_open_locked(int ordinal)
{
    struct gm_sim_cuda_dev *d = &gm_sim_cuda_g.dev[ordinal];
    struct gm_sim_state *st = gm_sim_cuda_g.st;
    const char *uuid = st->gpus[d->gpu].info.uuid;
    if (st->gpus[d->gpu].compute_mode == 2) /* Prohibited */
        return CUDA_ERROR_DEVICE_UNAVAILABLE;
    int rc = gm_sim_mps_attach(gm_sim_mps_pipe_dir(), uuid, requested_pct(),
                               pinned_limit(ordinal, uuid), &d->mps_client);
    if (rc < 0)
        return (CUresult)-rc;
    d->mps = rc == 0;
    d->share =
        d->mps && d->mps_client.active_thread_pct > 0 && d->mps_client.active_thread_pct < 100
            ? d->mps_client.active_thread_pct / 100.0
            : 1.0;
    d->ctx_memory = d->mps ? GM_SIM_CUDA_MPS_CTX_MEMORY : GM_SIM_CUDA_CTX_MEMORY;
    d->data_bytes = d->module_bytes = 0;
    d->busy_prev_end = 0;
    uint32_t flags = GM_SIM_PROC_COMPUTE | (d->mps ? GM_SIM_PROC_MPS_CLIENT : 0);
    uint32_t pid = (uint32_t)getpid();
    struct gm_error err;
    gm_error_clear(&err);
    int r = gm_sim_proc_register(st, d->gpu, pid, flags, d->ctx_memory, NULL, &err);
    if (r == -GM_ECONFLICT) {
        /* Left behind by an earlier instance of this library in the same process. */
        gm_sim_proc_unregister(st, d->gpu, pid, NULL);
        r = gm_sim_proc_register(st, d->gpu, pid, flags, d->ctx_memory, NULL, &err);
    }
    if (r < 0) {
        gm_sim_mps_detach(&d->mps_client);
        d->mps = 0;
        return gm_sim_cuda_from_gm(r, GM_SIM_CUDA_IN_CALL);
    }
    d->registered_bytes = d->ctx_memory;
    return CUDA_SUCCESS;
}

static void device_close_locked(struct gm_sim_cuda_dev *d)
{
    gm_sim_proc_unregister(gm_sim_cuda_g.st, d->gpu, (uint32_t)getpid(), NULL);
    gm_sim_mps_detach(&d->mps_client);
    d->mps = 0;
    d->share = 1.0;
    d->registered_bytes = 0;
}

/* Caller holds the lock. Makes ctx live on its device, opening the device for the process
 * when it is the first context there. */
static CUresult ctx_activate_locked(struct CUctx_st *ctx)
{
    struct gm_sim_cuda_dev *d = &gm_sim_cuda_g.dev[ctx->dev];
    if (d->nctx == 0) {
        CUresult rc = device_open_locked(ctx->dev);
        if (rc != CUDA_SUCCESS)
            return rc;
    } else {
        CUresult rc = gm_sim_cuda_mps_check(d);
        if (rc != CUDA_SUCCESS)
            return rc;
    }
    d->nctx++;
    CUresult rc = gm_sim_cuda_from_gm(gm_sim_cuda_account_locked(d, 0, 0), GM_SIM_CUDA_IN_CALL);
    if (rc != CUDA_SUCCESS) {
        if (--d->nctx == 0)
            device_close_locked(d);
        return rc;
    }
    ctx->live = 1;
    memset(&ctx->null_stream, 0, sizeof(ctx->null_stream));
    ctx->null_stream.magic = GM_SIM_CUDA_MAGIC_STREAM;
    ctx->null_stream.ctx = ctx;
    ctx->streams = NULL;
    return CUDA_SUCCESS;
}

static void ctx_deactivate_locked(struct CUctx_st *ctx)
{
    struct gm_sim_cuda_dev *d = &gm_sim_cuda_g.dev[ctx->dev];
    gm_sim_cuda_modules_release_ctx_locked(ctx);
    gm_sim_cuda_mem_release_ctx_locked(ctx);
    gm_sim_cuda_streams_release_ctx_locked(ctx);
    ctx->live = 0;
    d->nctx--;
    if (d->nctx == 0)
        device_close_locked(d);
    else
        gm_sim_cuda_account_locked(d, 0, 0);
}

static struct CUctx_st *ctx_new_locked(int dev, int primary, unsigned flags)
{
    struct CUctx_st *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->magic = GM_SIM_CUDA_MAGIC_CTX;
    c->dev = dev;
    c->primary = primary;
    c->flags = flags;
    c->next_all = gm_sim_cuda_g.all_ctx;
    gm_sim_cuda_g.all_ctx = c;
    return c;
}

/* Removes every occurrence of ctx from this thread's stack. Other threads find it dead. */
static void unstack(struct CUctx_st *ctx)
{
    int k = 0;
    for (int i = 0; i < depth; i++)
        if (stack[i] != ctx)
            stack[k++] = stack[i];
    depth = k;
}

GM_SIM_CUDA_API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (gm_sim_cuda_device(dev) == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    if (depth >= STACK_MAX)
        return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    struct CUctx_st *c = ctx_new_locked(dev, 0, flags);
    rc = c == NULL ? CUDA_ERROR_OUT_OF_MEMORY : ctx_activate_locked(c);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    if (rc != CUDA_SUCCESS)
        return rc;
    stack[depth++] = c;
    *pctx = c;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    return cuCtxCreate_v2(pctx, flags, dev);
}

GM_SIM_CUDA_API CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (ctx == NULL || ctx->magic != GM_SIM_CUDA_MAGIC_CTX)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    if (!ctx->live)
        rc = CUDA_ERROR_INVALID_CONTEXT;
    else if (ctx->primary)
        rc = CUDA_ERROR_INVALID_CONTEXT; /* primary contexts go with their last release */
    else
        ctx_deactivate_locked(ctx);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    if (rc == CUDA_SUCCESS)
        unstack(ctx);
    return rc;
}

GM_SIM_CUDA_API CUresult cuCtxDestroy(CUcontext ctx)
{
    return cuCtxDestroy_v2(ctx);
}

GM_SIM_CUDA_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct gm_sim_cuda_dev *d = gm_sim_cuda_device(dev);
    if (d == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    if (d->primary == NULL)
        d->primary = ctx_new_locked(dev, 1, d->primary_flags);
    if (d->primary == NULL)
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    else if (!d->primary->live)
        rc = ctx_activate_locked(d->primary);
    if (rc == CUDA_SUCCESS) {
        d->primary_refs++;
        *pctx = d->primary;
    }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

static CUresult primary_release(CUdevice dev, int reset)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    struct gm_sim_cuda_dev *d = gm_sim_cuda_device(dev);
    if (d == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    struct CUctx_st *gone = NULL;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    if (d->primary == NULL || !d->primary->live) {
        rc = reset ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
    } else {
        d->primary_refs = reset ? 0 : d->primary_refs - 1;
        if (d->primary_refs <= 0) {
            d->primary_refs = 0;
            ctx_deactivate_locked(d->primary);
            gone = d->primary;
        }
    }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    /* The handle stays valid: a later retain brings the same context back to life. */
    (void)gone;
    return rc;
}

GM_SIM_CUDA_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    return primary_release(dev, 0);
}

GM_SIM_CUDA_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
    return primary_release(dev, 0);
}

GM_SIM_CUDA_API CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    return primary_release(dev, 1);
}

GM_SIM_CUDA_API CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
    return primary_release(dev, 1);
}

GM_SIM_CUDA_API CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    struct gm_sim_cuda_dev *d = gm_sim_cuda_device(dev);
    if (d == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    if (flags == NULL || active == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    *flags = d->primary_flags;
    *active = d->primary != NULL && d->primary->live;
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    struct gm_sim_cuda_dev *d = gm_sim_cuda_device(dev);
    if (d == NULL)
        return CUDA_ERROR_INVALID_DEVICE;
    /* Scheduling flags (0x07) and the map/local-memory flags the driver knows. */
    if ((flags & ~0x1fu) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    d->primary_flags = flags;
    if (d->primary != NULL)
        d->primary->flags = flags;
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
    return cuDevicePrimaryCtxSetFlags_v2(dev, flags);
}

GM_SIM_CUDA_API CUresult cuCtxSetCurrent(CUcontext ctx)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (ctx == NULL) {
        if (depth > 0)
            depth--;
        return CUDA_SUCCESS;
    }
    if (ctx->magic != GM_SIM_CUDA_MAGIC_CTX || !ctx->live)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (depth == 0)
        depth = 1;
    stack[depth - 1] = ctx;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pctx = depth > 0 ? stack[depth - 1] : NULL;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (ctx == NULL || ctx->magic != GM_SIM_CUDA_MAGIC_CTX || !ctx->live)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (depth >= STACK_MAX)
        return CUDA_ERROR_OUT_OF_MEMORY;
    stack[depth++] = ctx;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuCtxPushCurrent(CUcontext ctx)
{
    return cuCtxPushCurrent_v2(ctx);
}

GM_SIM_CUDA_API CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    depth--;
    if (pctx != NULL)
        *pctx = stack[depth];
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuCtxPopCurrent(CUcontext *pctx)
{
    return cuCtxPopCurrent_v2(pctx);
}

GM_SIM_CUDA_API CUresult cuCtxGetDevice(CUdevice *device)
{
    struct CUctx_st *c;
    CUresult rc = gm_sim_cuda_current(&c);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *device = c->dev;
    return CUDA_SUCCESS;
}

/* The process is going away: take it off the device now rather than leave it to the next
 * reader's pruning, and close the MPS connection so the daemon forgets it. */
__attribute__((destructor)) static void gm_sim_cuda_fini(void)
{
    struct gm_sim_cuda *g = &gm_sim_cuda_g;
    if (!g->init_done || g->pid != getpid() || g->st == NULL)
        return;
    if (pthread_mutex_trylock(&g->lock) != 0)
        return; /* another thread is inside the driver; pruning will do it */
    for (int i = 0; i < g->ndev; i++)
        if (g->dev[i].nctx > 0) {
            g->dev[i].nctx = 0;
            device_close_locked(&g->dev[i]);
        }
    /* On dlclose the process lives on: hand back what it can no longer reach. */
    gm_sim_cuda_modules_release_all_locked();
    gm_sim_cuda_mem_release_all_locked();
    while (g->all_ctx != NULL) {
        struct CUctx_st *c = g->all_ctx;
        g->all_ctx = c->next_all;
        gm_sim_cuda_streams_release_ctx_locked(c);
        c->magic = 0;
        free(c);
    }
    for (int i = 0; i < g->ndev; i++)
        g->dev[i].primary = NULL;
    gm_sim_detach(g->st);
    g->st = NULL;
    g->init_done = 0;
    pthread_mutex_unlock(&g->lock);
}
