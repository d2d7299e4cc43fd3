/* The compute cap on a time-sliced GPU: launches are held to the workload's duty-cycle window
 * (docs/interpose.md, "Compute"). The daemon computes the windows; this file only obeys them.
 *
 * Without a cap (or under MPS) a launch costs two relaxed loads and a counter increment on top
 * of the driver's: the "no pacing" answer is cached for the region's generation, so a live
 * change of the cap is seen at the next launch. */
#include "interpose/interpose.h"
#include "interpose/pace.h"
#include "common/clock.h"
#include "region/region.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define GM_IP_FALLBACK_PERIOD_NS 100000000ull /* when the daemon has not scheduled us yet */
#define GM_IP_FN_SLOTS           256
#define GM_IP_SAMPLE_FIRST       8  /* launches of a function measured before sampling */
#define GM_IP_SAMPLE_EVERY       16 /* then one launch in this many */
#define GM_IP_FLUSH_EVERY        4096u

/* gen + 1 of the region generation for which no pacing is needed (1 without a region); 0 while
 * unknown or while pacing. */
static uint64_t nopace_key;
static uint64_t launches;

/* Measured duration of one function's kernels of one shape (threads in the grid): a kernel's
 * time grows with its grid, and programs launch one function at many sizes. */
struct fn_stat {
    CUfunction f;
    uint64_t shape;
    /* The estimate: the shortest sample, drifting up by a sixteenth of the gap at each longer
     * one. A sample times everything between its two events, so when other processes of the
     * workload share the GPU it counts their kernels too: the shortest is the kernel itself,
     * and the drift follows a kernel that really grew. 0: never measured. */
    uint64_t est_ns;
    uint64_t launches;
    CUevent ev_start, ev_end;
    int pending; /* events recorded around a launch, not read yet */
};

static struct {
    pthread_mutex_t lock;
    struct gm_pace_proc me;
    /* Stands in for the region's shared state when its lock cannot be had (unusable). */
    struct gm_region_pace own;
    /* Events around the first kernel of a window: how long it waited for a GPU still busy
     * with work from before the window (another workload's overrun), which is not ours. */
    CUevent ev_w0, ev_w1;
    int first_pending;
    uint64_t first_e;
    struct fn_stat *first_fs; /* the function the window's first kernel ran */
    struct fn_stat fns[GM_IP_FN_SLOTS];
    /* The other capped workloads of the GPU, as the daemon named them for generation
     * peers_gen - 1. */
    uint64_t peers_gen;
    size_t npeers;
    union gm_region_name peer_names[GM_REGION_MAX_PEERS];
} pace = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A plain per-thread count, published in steps: an atomic add on a shared counter at every
 * launch would cost more than the rest of the fast path together. What a thread launched since
 * its last step is published at exit for the exiting thread only; the count is a statistic. */
static __thread unsigned thread_launches __attribute__((tls_model("initial-exec")));

static void count_launch(void)
{
    if (__builtin_expect(++thread_launches >= GM_IP_FLUSH_EVERY, 0)) {
        __atomic_add_fetch(&launches, thread_launches, __ATOMIC_RELAXED);
        thread_launches = 0;
        gm_ip_launch_flush();
    }
}

void gm_ip_launch_flush(void)
{
    struct gm_region_proc *p = gm_ip_slot();
    if (p != NULL)
        __atomic_store_n(&p->launches, __atomic_load_n(&launches, __ATOMIC_RELAXED),
                         __ATOMIC_RELAXED);
}

void gm_ip_launch_exit(void)
{
    __atomic_add_fetch(&launches, thread_launches, __ATOMIC_RELAXED);
    thread_launches = 0;
    gm_ip_launch_flush();
}

static inline int pace_off(void)
{
    uint64_t key = __atomic_load_n(&nopace_key, __ATOMIC_RELAXED);
    if (__builtin_expect(key == 0, 0))
        return 0;
    const struct gm_region *r = gm_ip_region;
    return r == NULL || __atomic_load_n(&r->generation, __ATOMIC_RELAXED) + 1 == key;
}

/* The schedule, consistent with one generation (*genp); 0 when launches need no pacing. */
static int read_schedule(struct gm_pace_window *s, uint64_t *genp)
{
    struct gm_region *r = gm_ip_region;
    if (r == NULL) {
        __atomic_store_n(&nopace_key, 1, __ATOMIC_RELAXED);
        return 0;
    }
    struct gm_region_schedule rs;
    uint64_t gen = gm_region_read_schedule(r, &rs);
    *genp = gen;
    s->peers = 1; /* scheduled by the daemon: its peers are looked up (peers_locked) */
    uint32_t pct = rs.compute_pct;
    if (pct == 0 || pct >= 100 || (rs.flags & GM_REGION_COMPUTE_BY_MPS) != 0) {
        __atomic_store_n(&nopace_key, gen + 1, __ATOMIC_RELAXED);
        return 0;
    }
    s->period = rs.period_ns;
    s->offset = rs.offset_ns;
    s->len = rs.len_ns;
    s->epoch = rs.epoch_ns;
    if (s->period == 0 || s->len == 0) {
        /* Not scheduled yet: a window of our own keeps the cap, though not yet disjoint from
         * the other workloads' windows. */
        s->period = GM_IP_FALLBACK_PERIOD_NS;
        s->offset = 0;
        s->len = GM_IP_FALLBACK_PERIOD_NS * pct / 100;
        s->epoch = 0;
        s->peers = 0;
    }
    if (s->len >= s->period) {
        __atomic_store_n(&nopace_key, gen + 1, __ATOMIC_RELAXED);
        return 0;
    }
    __atomic_store_n(&nopace_key, 0, __ATOMIC_RELAXED);
    return 1;
}

/* Caller holds pace.lock: the peer list of generation gen (read again when it moved); returns
 * how many. A region made without a daemon's schedule (fallback window) has none. */
static uint32_t peers_locked(uint64_t gen)
{
    if (pace.peers_gen != gen + 1) {
        pace.npeers = gm_region_read_peers(gm_ip_region, pace.peer_names);
        pace.peers_gen = gen + 1;
    }
    return (uint32_t)pace.npeers;
}

/* Caller holds pace.lock: until when the peers keep the window starting at ws waiting, by what
 * they published (0: they do not). Each peer's file is opened for the one read and closed: a
 * descriptor kept would be the program's to close or reuse, and a region made anew (a
 * restart) is a new file. */
static uint64_t peers_busy_locked(uint64_t ws, uint64_t period, uint64_t now)
{
    uint64_t until = 0;
    for (size_t i = 0; i < pace.npeers; i++) {
        int fd = gm_region_peer_open(gm_ip_region_path, pace.peer_names[i].s, NULL);
        if (fd < 0)
            continue;
        struct gm_region_pace p;
        int ok = gm_region_peer_pace(fd, &p) == 0;
        close(fd);
        uint64_t t = ok ? gm_pace_peer_busy(&p, ws, period, now) : 0;
        if (t > until)
            until = t;
    }
    return until;
}

static void add_throttle(uint64_t ns)
{
    struct gm_region_proc *p = gm_ip_slot();
    if (p != NULL)
        __atomic_add_fetch(&p->throttle_ns, ns, __ATOMIC_RELAXED);
}

static void sleep_to(uint64_t t)
{
    uint64_t now = gm_mono_ns();
    if (t <= now)
        return;
    gm_sleep_until_ns(t);
    add_throttle(gm_mono_ns() - now);
}

static struct fn_stat *fn_stat_locked(CUfunction f, uint64_t shape)
{
    uintptr_t h =
        (((uintptr_t)f >> 4) ^ (uintptr_t)(shape * 0x2545f4914f6cdd1dull)) * 0x9e3779b97f4a7c15ull;
    for (unsigned i = 0; i < GM_IP_FN_SLOTS; i++) {
        struct fn_stat *s = &pace.fns[(h + i) % GM_IP_FN_SLOTS];
        if (s->f == f && s->shape == shape)
            return s;
        if (s->f == NULL) {
            s->f = f;
            s->shape = shape;
            return s;
        }
    }
    return &pace.fns[h % GM_IP_FN_SLOTS]; /* full: share an estimate */
}

static void est_add(struct fn_stat *s, uint64_t ns)
{
    if (ns == 0)
        ns = 1;
    if (s->est_ns == 0 || ns < s->est_ns)
        s->est_ns = ns;
    else
        s->est_ns += (ns - s->est_ns) / 16;
}

/* Reads a finished sample. */
static void poll_sample_locked(struct fn_stat *s)
{
    if (!s->pending || GM_CALL_REAL(cuEventQuery, s->ev_end) != CUDA_SUCCESS)
        return;
    float ms = 0;
    if (GM_CALL_REAL(cuEventElapsedTime, &ms, s->ev_start, s->ev_end) == CUDA_SUCCESS && ms >= 0)
        est_add(s, (uint64_t)((double)ms * 1e6));
    s->pending = 0;
}

/* A pair of events, made once and kept: 0 when *a and *b are usable. */
static int event_pair(CUevent *a, CUevent *b)
{
    if (*a != NULL)
        return 0;
    if (GM_CALL_REAL(cuEventCreate, a, CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
        *a = NULL;
        return -1;
    }
    if (GM_CALL_REAL(cuEventCreate, b, CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
        GM_CALL_REAL(cuEventDestroy_v2, *a);
        *a = *b = NULL;
        return -1;
    }
    return 0;
}

/* The workload's pacing state, locked: the region's, or this process's own when the region's
 * lock is unusable. Caller holds pace.lock; release with shared_unlock. */
static struct gm_region_pace *shared_lock(void)
{
    struct gm_region *r = gm_ip_region;
    if (r != NULL && gm_region_lock(r, GM_REGION_WAIT) == 0)
        return &r->pace;
    return &pace.own;
}

static void shared_unlock(struct gm_region_pace *st)
{
    if (st != &pace.own)
        gm_region_unlock(gm_ip_region);
}

/* Caller holds pace.lock, after a synchronize: how long the window's first kernel waited for
 * the GPU (0 when it was not measured). */
static uint64_t first_wait_locked(void)
{
    if (!pace.first_pending)
        return 0;
    pace.first_pending = 0;
    float ms = 0;
    if (GM_CALL_REAL(cuEventElapsedTime, &ms, pace.ev_w0, pace.ev_w1) != CUDA_SUCCESS || ms <= 0)
        return 0;
    uint64_t took = (uint64_t)((double)ms * 1e6);
    /* What it took is at most the kernel's own time: a shorter estimate is taken from it (the
     * wait is not known apart from the kernel, so a longer time teaches nothing). Where a
     * window holds one kernel, this is the only sample the function gets, and the first
     * launch's timing, which counts whatever else the GPU ran meanwhile, is corrected. */
    if (pace.first_fs != NULL && took > 0 && took < pace.first_fs->est_ns)
        pace.first_fs->est_ns = took;
    return took > pace.first_e ? took - pace.first_e : 0;
}

/* Caller holds pace.lock. Carries out gm_pace_decide's steps until the kernel, expected to
 * take e ns, may be launched now: each decision under the region's lock, each sleep and
 * synchronize outside it. Returns the launch step; for the window's first kernel with the
 * lock still held (*held, for the caller to release once it is launched). */
static struct gm_pace_step wait_turn_locked(const struct gm_pace_window *w, uint64_t e,
                                            struct gm_region_pace **held)
{
    for (;;) {
        uint64_t now = gm_mono_ns();
        struct gm_region_pace *st = shared_lock();
        struct gm_pace_step step = gm_pace_decide(w, st, &pace.me, now, e);
        if (step.act == GM_PACE_LAUNCH && step.first && e != 0) {
            /* The window's first kernel is launched under the lock: no other process's
             * kernel of the workload may reach the GPU before it, or its time would read as
             * a wait. */
            *held = st;
            return step;
        }
        shared_unlock(st);
        if (step.act == GM_PACE_LAUNCH)
            return step;
        if (step.act == GM_PACE_WAIT) {
            sleep_to(step.until);
            continue;
        }
        if (step.act == GM_PACE_PEERS) {
            /* Outside the region's lock: the peers' files are read with pread. */
            pace.me.peers_until = peers_busy_locked(pace.me.peers_ws, w->period, gm_mono_ns());
            pace.me.peers_read = 1;
            continue;
        }
        /* Drain: the work of this window is done before the next window, another
         * workload's, begins; how long it really took is what the window is charged. */
        __typeof__(&cuCtxSynchronize) sync = GM_REAL(cuCtxSynchronize);
        if (sync != NULL)
            sync();
        uint64_t after = gm_mono_ns();
        uint64_t waited = first_wait_locked();
        st = shared_lock();
        gm_pace_drained(st, &pace.me, now, after, waited);
        shared_unlock(st);
    }
}

typedef CUresult launch_fn(const void *args);

/* The slow path: a cap applies (or the answer is not cached yet). */
static CUresult paced(CUfunction f, uint64_t shape, CUstream stream, launch_fn *launch,
                      const void *args)
{
    gm_ip_init();
    struct gm_pace_window s;
    uint64_t gen = 0;
    if (gm_ip_refused || !read_schedule(&s, &gen))
        return launch(args);

    pthread_mutex_lock(&pace.lock);
    if (s.peers != 0)
        s.peers = peers_locked(gen);
    struct fn_stat *fs = fn_stat_locked(f, shape);
    poll_sample_locked(fs);
    uint64_t e = fs->est_ns;
    struct gm_region_pace *held = NULL;
    struct gm_pace_step step = wait_turn_locked(&s, e, &held);

    CUresult rc;
    fs->launches++;
    if (e == 0) {
        /* Never measured: run it alone on an idle GPU (the workload's other processes hold
         * back, gm_pace_decide), timed by the clock, so that the first estimate is exact and
         * no unknown amount of work gets queued. */
        __typeof__(&cuCtxSynchronize) sync = GM_REAL(cuCtxSynchronize);
        if (sync != NULL)
            sync();
        uint64_t t0 = gm_mono_ns();
        rc = launch(args);
        if (rc == CUDA_SUCCESS) {
            int timed = sync != NULL && sync() == CUDA_SUCCESS;
            uint64_t t1 = gm_mono_ns();
            if (timed) {
                est_add(fs, t1 - t0);
                step.e = fs->est_ns;
            }
            struct gm_region_pace *st = shared_lock();
            gm_pace_timed(st, &pace.me, t1);
            shared_unlock(st);
        }
    } else if (step.first && event_pair(&pace.ev_w0, &pace.ev_w1) == 0 &&
               GM_CALL_REAL(cuEventRecord, pace.ev_w0, stream) == CUDA_SUCCESS) {
        /* The workload's first kernel of the window: timed by the window's events, not
         * sampled (its time may include a wait for the GPU). */
        rc = launch(args);
        pace.first_pending =
            rc == CUDA_SUCCESS && GM_CALL_REAL(cuEventRecord, pace.ev_w1, stream) == CUDA_SUCCESS;
        if (held != NULL)
            shared_unlock(held);
        held = NULL;
        pace.first_e = e;
        pace.first_fs = fs;
    } else {
        int sample =
            !fs->pending &&
            (fs->launches <= GM_IP_SAMPLE_FIRST || fs->launches % GM_IP_SAMPLE_EVERY == 0) &&
            event_pair(&fs->ev_start, &fs->ev_end) == 0;
        if (sample)
            sample = GM_CALL_REAL(cuEventRecord, fs->ev_start, stream) == CUDA_SUCCESS;
        rc = launch(args);
        if (sample && rc == CUDA_SUCCESS)
            fs->pending = GM_CALL_REAL(cuEventRecord, fs->ev_end, stream) == CUDA_SUCCESS;
    }
    if (held != NULL)
        shared_unlock(held);
    if (rc != CUDA_SUCCESS) {
        /* Nothing was queued: give the time back. */
        struct gm_region_pace *st = shared_lock();
        gm_pace_unlaunch(st, &pace.me);
        shared_unlock(st);
    } else {
        struct gm_region_proc *p = gm_ip_slot();
        if (p != NULL)
            __atomic_add_fetch(&p->busy_ns, step.e, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&pace.lock);
    return rc;
}

void gm_ip_launch_atfork_prepare(void)
{
    pthread_mutex_lock(&pace.lock);
}

void gm_ip_launch_atfork_parent(void)
{
    pthread_mutex_unlock(&pace.lock);
}

void gm_ip_launch_atfork_child(void)
{
    /* The parent's events and contexts are not the child's. */
    memset(&pace, 0, sizeof(pace));
    pthread_mutex_init(&pace.lock, NULL);
    __atomic_store_n(&launches, 0, __ATOMIC_RELAXED);
    thread_launches = 0;
    __atomic_store_n(&nopace_key, 0, __ATOMIC_RELAXED);
}

/* Each launch entry point packs its arguments for the slow path. */
struct kernel_args {
    __typeof__(&cuLaunchKernel) fn;
    CUfunction f;
    unsigned gx, gy, gz, bx, by, bz, shmem;
    CUstream stream;
    void **params, **extra;
};

static CUresult launch_kernel(const void *p)
{
    const struct kernel_args *a = p;
    return a->fn(a->f, a->gx, a->gy, a->gz, a->bx, a->by, a->bz, a->shmem, a->stream, a->params,
                 a->extra);
}

#define GM_IP_LAUNCH_KERNEL(sym, per_thread)                                                       \
    do {                                                                                           \
        __typeof__(&sym) real_ = GM_REAL(sym);                                                     \
        if (real_ == NULL)                                                                         \
            return CUDA_ERROR_NOT_FOUND;                                                           \
        count_launch();                                                                            \
        if (__builtin_expect(pace_off(), 1))                                                       \
            return real_(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,         \
                         sharedMemBytes, hStream, kernelParams, extra);                            \
        struct kernel_args a_ = {real_,          f,         gridDimX,     gridDimY,                \
                                 gridDimZ,       blockDimX, blockDimY,    blockDimZ,               \
                                 sharedMemBytes, hStream,   kernelParams, extra};                  \
        return paced(                                                                              \
            f, (uint64_t)gridDimX * gridDimY * gridDimZ * blockDimX * blockDimY * blockDimZ,       \
            (per_thread) && hStream == NULL ? CU_STREAM_PER_THREAD : hStream, launch_kernel, &a_); \
    } while (0)

CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                        unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                        unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                        void **kernelParams, void **extra)
{
    GM_IP_LAUNCH_KERNEL(cuLaunchKernel, 0);
}

CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                             unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                             unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                             void **kernelParams, void **extra)
{
    GM_IP_LAUNCH_KERNEL(cuLaunchKernel_ptsz, 1);
}

struct coop_args {
    __typeof__(&cuLaunchCooperativeKernel) fn;
    CUfunction f;
    unsigned gx, gy, gz, bx, by, bz, shmem;
    CUstream stream;
    void **params;
};

static CUresult launch_coop(const void *p)
{
    const struct coop_args *a = p;
    return a->fn(a->f, a->gx, a->gy, a->gz, a->bx, a->by, a->bz, a->shmem, a->stream, a->params);
}

#define GM_IP_LAUNCH_COOP(sym, per_thread)                                                         \
    do {                                                                                           \
        __typeof__(&sym) real_ = GM_REAL(sym);                                                     \
        if (real_ == NULL)                                                                         \
            return CUDA_ERROR_NOT_FOUND;                                                           \
        count_launch();                                                                            \
        if (__builtin_expect(pace_off(), 1))                                                       \
            return real_(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,         \
                         sharedMemBytes, hStream, kernelParams);                                   \
        struct coop_args a_ = {real_,          f,         gridDimX,    gridDimY,                   \
                               gridDimZ,       blockDimX, blockDimY,   blockDimZ,                  \
                               sharedMemBytes, hStream,   kernelParams};                           \
        return paced(                                                                              \
            f, (uint64_t)gridDimX * gridDimY * gridDimZ * blockDimX * blockDimY * blockDimZ,       \
            (per_thread) && hStream == NULL ? CU_STREAM_PER_THREAD : hStream, launch_coop, &a_);   \
    } while (0)

CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                   unsigned int gridDimZ, unsigned int blockDimX,
                                   unsigned int blockDimY, unsigned int blockDimZ,
                                   unsigned int sharedMemBytes, CUstream hStream,
                                   void **kernelParams)
{
    GM_IP_LAUNCH_COOP(cuLaunchCooperativeKernel, 0);
}

CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                        unsigned int gridDimZ, unsigned int blockDimX,
                                        unsigned int blockDimY, unsigned int blockDimZ,
                                        unsigned int sharedMemBytes, CUstream hStream,
                                        void **kernelParams)
{
    GM_IP_LAUNCH_COOP(cuLaunchCooperativeKernel_ptsz, 1);
}

struct ex_args {
    __typeof__(&cuLaunchKernelEx) fn;
    const CUlaunchConfig *config;
    CUfunction f;
    void **params, **extra;
};

static CUresult launch_ex(const void *p)
{
    const struct ex_args *a = p;
    return a->fn(a->config, a->f, a->params, a->extra);
}

#define GM_IP_LAUNCH_EX(sym, per_thread)                                                           \
    do {                                                                                           \
        __typeof__(&sym) real_ = GM_REAL(sym);                                                     \
        if (real_ == NULL)                                                                         \
            return CUDA_ERROR_NOT_FOUND;                                                           \
        count_launch();                                                                            \
        if (__builtin_expect(pace_off(), 1) || config == NULL)                                     \
            return real_(config, f, kernelParams, extra);                                          \
        struct ex_args a_ = {real_, config, f, kernelParams, extra};                               \
        CUstream s_ = config->hStream;                                                             \
        uint64_t shape_ = (uint64_t)config->gridDimX * config->gridDimY * config->gridDimZ *       \
                          config->blockDimX * config->blockDimY * config->blockDimZ;               \
        return paced(f, shape_, (per_thread) && s_ == NULL ? CU_STREAM_PER_THREAD : s_, launch_ex, \
                     &a_);                                                                         \
    } while (0)

CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                          void **extra)
{
    GM_IP_LAUNCH_EX(cuLaunchKernelEx, 0);
}

CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                               void **extra)
{
    GM_IP_LAUNCH_EX(cuLaunchKernelEx_ptsz, 1);
}
