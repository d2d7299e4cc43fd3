/* gpusim's libcuda.so.1: streams, events, launches and synchronisation. A launch returns as
 * soon as the kernel has a place on the device timeline; everything that waits for the device
 * sleeps until the simulated end of what it waits for. Events carry simulated times, so a
 * program's own timing measures the simulated device. */
#include "gpusim/cuda/cuda_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

uint64_t gm_sim_cuda_ctx_tail_locked(const struct CUctx_st *ctx)
{
    uint64_t t = ctx->null_stream.tail_ns;
    for (const struct CUstream_st *s = ctx->streams; s != NULL; s = s->next)
        t = max_u64(t, s->tail_ns);
    return t;
}

/* When work queued now on s may start: the legacy stream waits for every blocking stream of
 * its context, and they wait for it. */
static uint64_t not_before_locked(const struct CUstream_st *s)
{
    const struct CUctx_st *ctx = s->ctx;
    if (s == &ctx->null_stream) {
        uint64_t t = ctx->null_stream.tail_ns;
        for (const struct CUstream_st *o = ctx->streams; o != NULL; o = o->next)
            if (!(o->flags & CU_STREAM_NON_BLOCKING))
                t = max_u64(t, o->tail_ns);
        return t;
    }
    if (s->flags & CU_STREAM_NON_BLOCKING)
        return s->tail_ns;
    return max_u64(s->tail_ns, ctx->null_stream.tail_ns);
}

/* The stream a call names, in the current context: NULL and CU_STREAM_LEGACY are the context's
 * legacy stream, and so is CU_STREAM_PER_THREAD (gpusim keeps no per-thread default streams:
 * work on them is ordered as on the legacy stream, a stricter order than a real driver's). */
static CUresult resolve_stream(CUstream h, struct CUctx_st **ctx, struct CUstream_st **out)
{
    CUresult rc = gm_sim_cuda_current(ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (h == NULL || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD) {
        *out = &(*ctx)->null_stream;
        return CUDA_SUCCESS;
    }
    if (h->magic != GM_SIM_CUDA_MAGIC_STREAM || h->ctx != *ctx)
        return CUDA_ERROR_INVALID_HANDLE;
    *out = h;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (phStream == NULL || (Flags & ~(unsigned)CU_STREAM_NON_BLOCKING) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct CUstream_st *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    s->magic = GM_SIM_CUDA_MAGIC_STREAM;
    s->flags = Flags;
    s->ctx = ctx;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    s->next = ctx->streams;
    ctx->streams = s;
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    *phStream = s;
    return CUDA_SUCCESS;
}

static void stream_free(struct CUstream_st *s)
{
    s->magic = 0;
    free(s);
}

void gm_sim_cuda_streams_release_ctx_locked(struct CUctx_st *ctx)
{
    while (ctx->streams != NULL) {
        struct CUstream_st *s = ctx->streams;
        ctx->streams = s->next;
        stream_free(s);
    }
}

/* Like the driver, destroying a stream with work still queued lets that work finish. */
GM_SIM_CUDA_API CUresult cuStreamDestroy_v2(CUstream hStream)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (hStream == NULL || hStream == CU_STREAM_LEGACY || hStream == CU_STREAM_PER_THREAD ||
        hStream->magic != GM_SIM_CUDA_MAGIC_STREAM)
        return CUDA_ERROR_INVALID_HANDLE;
    rc = CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    struct CUctx_st *ctx = hStream->ctx;
    for (struct CUstream_st **l = &ctx->streams; *l != NULL; l = &(*l)->next)
        if (*l == hStream) {
            *l = hStream->next;
            /* Its queued work still holds back the legacy stream. */
            ctx->null_stream.tail_ns = max_u64(ctx->null_stream.tail_ns, hStream->tail_ns);
            stream_free(hStream);
            rc = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuStreamDestroy(CUstream hStream)
{
    return cuStreamDestroy_v2(hStream);
}

static CUresult stream_tail(CUstream h, uint64_t *t, struct gm_sim_cuda_dev **dev)
{
    struct CUctx_st *ctx;
    struct CUstream_st *s;
    CUresult rc = resolve_stream(h, &ctx, &s);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    *t = not_before_locked(s);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    *dev = &gm_sim_cuda_g.dev[ctx->dev];
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuStreamSynchronize(CUstream hStream)
{
    uint64_t t;
    struct gm_sim_cuda_dev *d;
    CUresult rc = stream_tail(hStream, &t, &d);
    if (rc != CUDA_SUCCESS)
        return rc;
    gm_sleep_until_ns(t);
    return gm_sim_cuda_mps_check(d);
}

GM_SIM_CUDA_API CUresult cuStreamQuery(CUstream hStream)
{
    uint64_t t;
    struct gm_sim_cuda_dev *d;
    CUresult rc = stream_tail(hStream, &t, &d);
    if (rc != CUDA_SUCCESS)
        return rc;
    return t <= gm_mono_ns() ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

GM_SIM_CUDA_API CUresult cuCtxSynchronize(void)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    uint64_t t = gm_sim_cuda_ctx_tail_locked(ctx);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    gm_sleep_until_ns(t);
    return gm_sim_cuda_mps_check(&gm_sim_cuda_g.dev[ctx->dev]);
}

static int valid_event(const struct CUevent_st *e)
{
    return e != NULL && e->magic == GM_SIM_CUDA_MAGIC_EVENT;
}

GM_SIM_CUDA_API CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    const unsigned interprocess = 0x4;
    if (phEvent == NULL ||
        (Flags & ~(unsigned)(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | interprocess)) ||
        ((Flags & interprocess) && !(Flags & CU_EVENT_DISABLE_TIMING)))
        return CUDA_ERROR_INVALID_VALUE;
    struct CUevent_st *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    e->magic = GM_SIM_CUDA_MAGIC_EVENT;
    e->flags = Flags;
    e->ctx = ctx;
    *phEvent = e;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuEventDestroy_v2(CUevent hEvent)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (!valid_event(hEvent))
        return CUDA_ERROR_INVALID_HANDLE;
    hEvent->magic = 0;
    free(hEvent);
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuEventDestroy(CUevent hEvent)
{
    return cuEventDestroy_v2(hEvent);
}

GM_SIM_CUDA_API CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
{
    struct CUctx_st *ctx;
    struct CUstream_st *s;
    CUresult rc = resolve_stream(hStream, &ctx, &s);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (!valid_event(hEvent))
        return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    hEvent->t_ns = max_u64(gm_mono_ns(), not_before_locked(s));
    hEvent->recorded = 1;
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuEventQuery(CUevent hEvent)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (!valid_event(hEvent))
        return CUDA_ERROR_INVALID_HANDLE;
    return !hEvent->recorded || hEvent->t_ns <= gm_mono_ns() ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

GM_SIM_CUDA_API CUresult cuEventSynchronize(CUevent hEvent)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (!valid_event(hEvent))
        return CUDA_ERROR_INVALID_HANDLE;
    if (hEvent->recorded)
        gm_sleep_until_ns(hEvent->t_ns);
    return gm_sim_cuda_check_ctx(hEvent->ctx) == CUDA_SUCCESS
               ? gm_sim_cuda_mps_check(&gm_sim_cuda_g.dev[hEvent->ctx->dev])
               : CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (pMilliseconds == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_event(hStart) || !valid_event(hEnd) || !hStart->recorded || !hEnd->recorded ||
        ((hStart->flags | hEnd->flags) & CU_EVENT_DISABLE_TIMING))
        return CUDA_ERROR_INVALID_HANDLE;
    uint64_t now = gm_mono_ns();
    if (hStart->t_ns > now || hEnd->t_ns > now)
        return CUDA_ERROR_NOT_READY;
    *pMilliseconds = (float)(((double)hEnd->t_ns - (double)hStart->t_ns) / 1e6);
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags)
{
    struct CUctx_st *ctx;
    struct CUstream_st *s;
    CUresult rc = resolve_stream(hStream, &ctx, &s);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (!valid_event(hEvent))
        return CUDA_ERROR_INVALID_HANDLE;
    if (Flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    if (hEvent->recorded)
        s->tail_ns = max_u64(s->tail_ns, hEvent->t_ns);
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return CUDA_SUCCESS;
}

static CUresult check_launch(CUfunction f, const struct CUctx_st *ctx, unsigned gx, unsigned gy,
                             unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                             void **params, void **extra)
{
    if (f == NULL || f->magic != GM_SIM_CUDA_MAGIC_FUNC || f->mod == NULL ||
        f->mod->magic != GM_SIM_CUDA_MAGIC_MODULE)
        return CUDA_ERROR_INVALID_HANDLE;
    if (f->mod->ctx != ctx)
        return CUDA_ERROR_INVALID_HANDLE;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || gx > 2147483647u ||
        gy > 65535 || gz > 65535 || bx > 1024 || by > 1024 || bz > 64 ||
        (uint64_t)bx * by * bz > 1024 || shmem > 49152)
        return CUDA_ERROR_INVALID_VALUE;
    if (f->nparams > 0 && params == NULL && extra == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

/* Every launch entry point ends here: cuLaunchKernel and its _ptsz variant, cuLaunchKernelEx
 * (whose attributes gpusim accepts and ignores) and the cooperative launches. */
static CUresult launch(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                       unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                       unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                       void **kernelParams, void **extra)
{
    struct CUctx_st *ctx;
    struct CUstream_st *s;
    CUresult rc = resolve_stream(hStream, &ctx, &s);
    if (rc == CUDA_SUCCESS)
        rc = check_launch(f, ctx, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,
                          sharedMemBytes, kernelParams, extra);
    if (rc != CUDA_SUCCESS)
        return rc;
    struct gm_sim_cuda *g = &gm_sim_cuda_g;
    struct gm_sim_cuda_dev *d = &g->dev[ctx->dev];
    uint64_t threads = (uint64_t)gridDimX * gridDimY * gridDimZ * blockDimX * blockDimY * blockDimZ;
    uint64_t work = gm_sim_cuda_kernel_work(f, g->st->gpus[d->gpu].info.sms, threads, kernelParams);

    /* A full queue blocks the launch until its oldest entry is done, as the driver's does. */
    for (;;) {
        pthread_mutex_lock(&g->lock);
        uint64_t oldest = s->ends[s->next_end];
        uint64_t tail = s->tail_ns;
        pthread_mutex_unlock(&g->lock);
        uint64_t until = max_u64(
            oldest, tail > GM_SIM_CUDA_QUEUE_AHEAD_NS ? tail - GM_SIM_CUDA_QUEUE_AHEAD_NS : 0);
        if (until <= gm_mono_ns())
            break;
        gm_sleep_until_ns(until);
    }

    pthread_mutex_lock(&g->lock);
    if (!ctx->live) {
        pthread_mutex_unlock(&g->lock);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    struct gm_sim_cuda_job job = {
        .pid = (uint32_t)getpid(),
        .gpu = d->gpu,
        .mps = d->mps,
        .share = d->share,
        .work_ns = work,
        .not_before_ns = not_before_locked(s),
        .prev_end_ns = d->busy_prev_end,
    };
    uint64_t start, end;
    rc = gm_sim_cuda_from_gm(gm_sim_cuda_schedule(g->st, &job, &start, &end), GM_SIM_CUDA_LAUNCH);
    if (rc == CUDA_SUCCESS) {
        s->tail_ns = end;
        s->ends[s->next_end] = end;
        s->next_end = (s->next_end + 1) % GM_SIM_CUDA_QUEUE_DEPTH;
        d->busy_prev_end = end;
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

GM_SIM_CUDA_API CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                        unsigned int gridDimZ, unsigned int blockDimX,
                                        unsigned int blockDimY, unsigned int blockDimZ,
                                        unsigned int sharedMemBytes, CUstream hStream,
                                        void **kernelParams, void **extra)
{
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes,
                  hStream, kernelParams, extra);
}

GM_SIM_CUDA_API CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX,
                                             unsigned int gridDimY, unsigned int gridDimZ,
                                             unsigned int blockDimX, unsigned int blockDimY,
                                             unsigned int blockDimZ, unsigned int sharedMemBytes,
                                             CUstream hStream, void **kernelParams, void **extra)
{
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes,
                  hStream == NULL ? CU_STREAM_PER_THREAD : hStream, kernelParams, extra);
}

static CUresult launch_ex(const CUlaunchConfig *c, CUfunction f, void **kernelParams, void **extra,
                          CUstream null_is)
{
    if (c == NULL || (c->numAttrs > 0 && c->attrs == NULL)) {
        CUresult rc = gm_sim_cuda_check_init();
        return rc != CUDA_SUCCESS ? rc : CUDA_ERROR_INVALID_VALUE;
    }
    return launch(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY,
                  c->blockDimZ, c->sharedMemBytes, c->hStream == NULL ? null_is : c->hStream,
                  kernelParams, extra);
}

GM_SIM_CUDA_API CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f,
                                          void **kernelParams, void **extra)
{
    return launch_ex(config, f, kernelParams, extra, NULL);
}

GM_SIM_CUDA_API CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f,
                                               void **kernelParams, void **extra)
{
    return launch_ex(config, f, kernelParams, extra, CU_STREAM_PER_THREAD);
}

/* A cooperative launch runs like any other: gpusim does not check that the grid fits on the
 * device at once. */
GM_SIM_CUDA_API CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX,
                                                   unsigned int gridDimY, unsigned int gridDimZ,
                                                   unsigned int blockDimX, unsigned int blockDimY,
                                                   unsigned int blockDimZ,
                                                   unsigned int sharedMemBytes, CUstream hStream,
                                                   void **kernelParams)
{
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes,
                  hStream, kernelParams, NULL);
}

GM_SIM_CUDA_API CUresult cuLaunchCooperativeKernel_ptsz(
    CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
    unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
    unsigned int sharedMemBytes, CUstream hStream, void **kernelParams)
{
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes,
                  hStream == NULL ? CU_STREAM_PER_THREAD : hStream, kernelParams, NULL);
}
