/* gpusim's libcuda.so.1: what its files share. The library keeps one process-wide table of
 * the devices CUDA_VISIBLE_DEVICES leaves visible, with this process's contexts, memory and
 * MPS connection on each; the device itself (memory, process tables, the timeline) lives in
 * gpusim's shared state.
 *
 * Locking: gm_sim_cuda.lock guards every table here; it is never held while sleeping, and the
 * shared state's lock is only taken inside it, never the other way round. */
#ifndef GM_GPUSIM_CUDA_INTERNAL_H
#define GM_GPUSIM_CUDA_INTERNAL_H

#define GM_CUDA_NO_API_NAMES
#include "common/clock.h"
#include "common/cuda_api.h"
#include "gpusim/mps/mps_client.h"
#include "gpusim/mps/mps_proto.h"
#include "gpusim/state/state.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#define GM_SIM_CUDA_API __attribute__((visibility("default")))

#define GM_SIM_CUDA_MIB ((uint64_t)1048576)
/* Memory a context costs on a T4-class GPU (code, stacks, printf and heap buffers), sized so
 * that nvidia-smi shows an n-body process as the seed does: 105 + 2 (module) + 2 (data) = 109
 * MiB. An MPS client's context is smaller because the server holds the shared part: 107 MiB. */
#define GM_SIM_CUDA_CTX_MEMORY     (105 * GM_SIM_CUDA_MIB)
#define GM_SIM_CUDA_MPS_CTX_MEMORY (103 * GM_SIM_CUDA_MIB)
/* A loaded module's code and constant banks. */
#define GM_SIM_CUDA_MODULE_MEMORY (2 * GM_SIM_CUDA_MIB)
/* The driver hands out device memory in 2 MiB pages, so that is the unit the process table
 * sees; single allocations are aligned to 512 bytes as cuMemAlloc's are. */
#define GM_SIM_CUDA_PAGE  (2 * GM_SIM_CUDA_MIB)
#define GM_SIM_CUDA_ALIGN 512

#define GM_SIM_CUDA_MAGIC_CTX    0x43545831u
#define GM_SIM_CUDA_MAGIC_STREAM 0x53545231u
#define GM_SIM_CUDA_MAGIC_EVENT  0x45564e31u
#define GM_SIM_CUDA_MAGIC_MODULE 0x4d4f4431u
#define GM_SIM_CUDA_MAGIC_FUNC   0x46554e31u
#define GM_SIM_CUDA_MAGIC_ARRAY  0x41525231u
#define GM_SIM_CUDA_MAGIC_POOL   0x504f4f31u

/* Launches one stream may have outstanding before cuLaunchKernel blocks, and how far ahead of
 * now its work may reach, as a real driver's command queue fills. */
#define GM_SIM_CUDA_QUEUE_DEPTH    64
#define GM_SIM_CUDA_QUEUE_AHEAD_NS 1000000000ull

struct CUstream_st {
    uint32_t magic;
    unsigned flags;
    struct CUctx_st *ctx;
    uint64_t tail_ns;                       /* when the work queued so far is done */
    uint64_t ends[GM_SIM_CUDA_QUEUE_DEPTH]; /* end times of the last launches, a ring */
    unsigned next_end;
    struct CUstream_st *next; /* in the context's list */
};

struct CUctx_st {
    uint32_t magic;
    int dev; /* CUDA ordinal */
    int primary;
    int live; /* 0 once destroyed (or an inactive primary context) */
    unsigned flags;
    struct CUstream_st null_stream; /* the legacy default stream */
    struct CUstream_st *streams;
    struct CUctx_st *next_all; /* every context ever made, so none is ever leaked or reused */
};

struct CUevent_st {
    uint32_t magic;
    unsigned flags;
    struct CUctx_st *ctx;
    int recorded;
    uint64_t t_ns;
};

struct gm_sim_cuda_param {
    char type[8]; /* "u32", "u64", "f32", ... */
};

struct CUfunc_st {
    uint32_t magic;
    struct CUmod_st *mod;
    char name[128];
    int nparams;
    struct gm_sim_cuda_param params[32];
};

struct gm_sim_cuda_global {
    char name[128];
    size_t offset, size;
};

struct CUmod_st {
    uint32_t magic;
    struct CUctx_st *ctx;
    int nfuncs;
    struct CUfunc_st *funcs;
    int nglobals;
    struct gm_sim_cuda_global *globals;
    CUdeviceptr globals_base; /* one allocation holds all .global variables */
};

/* One visible device and what this process holds on it. */
struct gm_sim_cuda_dev {
    int gpu;  /* index in the shared state */
    int nctx; /* live contexts; the process is registered while > 0 */
    int mps;  /* an MPS client of the daemon's server */
    struct gm_sim_mps_client mps_client;
    double share;        /* of the SMs this process's kernels may use */
    uint64_t ctx_memory; /* per context */
    uint64_t data_bytes; /* allocations, each rounded to GM_SIM_CUDA_ALIGN */
    uint64_t module_bytes;
    uint64_t registered_bytes; /* what the process table holds */
    uint64_t busy_prev_end;    /* end of this process's last kernel, for per-process samples */
    struct CUctx_st *primary;
    int primary_refs;
    unsigned primary_flags;
};

struct gm_sim_cuda {
    pthread_mutex_t lock;
    int init_done;
    CUresult init_rc;
    pid_t pid; /* of the process that called cuInit; a forked child must start over */
    struct gm_sim_state *st;
    int ndev;
    struct gm_sim_cuda_dev dev[GM_SIM_MAX_GPUS];
    struct CUctx_st *all_ctx;
};

extern struct gm_sim_cuda gm_sim_cuda_g;

/* The one place where gpusim's own errors (0 or -GM_E*, as the state, the process tables and
 * the timeline return them) become CUresult. The same internal failure reads differently
 * depending on what the program asked for, so the caller says which kind of call it is. */
enum gm_sim_cuda_edge {
    GM_SIM_CUDA_AT_INIT, /* cuInit attaching the device state */
    GM_SIM_CUDA_IN_CALL, /* any other call: contexts, memory, modules */
    GM_SIM_CUDA_LAUNCH,  /* placing a kernel on the device timeline */
};
CUresult gm_sim_cuda_from_gm(int rc, enum gm_sim_cuda_edge edge);

/* Every entry point begins with this: CUDA_ERROR_NOT_INITIALIZED before cuInit (or in a forked
 * child of the process that initialised), else whatever cuInit returned. */
CUresult gm_sim_cuda_check_init(void);
/* The device for ordinal, or NULL. */
struct gm_sim_cuda_dev *gm_sim_cuda_device(CUdevice ordinal);
/* The calling thread's current context when it is live, else an error. */
CUresult gm_sim_cuda_current(struct CUctx_st **out);
CUresult gm_sim_cuda_check_ctx(const struct CUctx_st *ctx);
/* CUDA_ERROR_MPS_CLIENT_TERMINATED once the MPS daemon has ended this client, else 0. */
CUresult gm_sim_cuda_mps_check(const struct gm_sim_cuda_dev *d);

/* Memory: caller holds the lock. Re-registers the process's memory on dev after data_bytes or
 * module_bytes changed by delta; leaves them as they were and returns -GM_ENOSPACE when the
 * device (or the MPS limit) cannot take more, whatever the process table's reason. */
int gm_sim_cuda_account_locked(struct gm_sim_cuda_dev *d, int64_t data_delta, int64_t module_delta);
CUresult gm_sim_cuda_alloc_locked(struct CUctx_st *ctx, size_t bytes, int managed,
                                  CUdeviceptr *out);
CUresult gm_sim_cuda_free_locked(CUdeviceptr p);
/* One allocation for a module's .global variables, charged as part of the module. */
CUresult gm_sim_cuda_globals_alloc_locked(struct CUctx_st *ctx, size_t bytes, CUdeviceptr *out);
/* Frees everything ctx owns (allocations, modules, streams). */
void gm_sim_cuda_mem_release_ctx_locked(struct CUctx_st *ctx);
void gm_sim_cuda_modules_release_ctx_locked(struct CUctx_st *ctx);
/* At unload: everything the library still holds, whatever the program left behind. */
void gm_sim_cuda_mem_release_all_locked(void);
void gm_sim_cuda_modules_release_all_locked(void);
/* The host memory behind [p, p + len), or NULL when the range is not one allocation. */
void *gm_sim_cuda_host_ptr_locked(CUdeviceptr p, size_t len);

/* Execution. */
void gm_sim_cuda_streams_release_ctx_locked(struct CUctx_st *ctx);
/* When all work queued in ctx is done. */
uint64_t gm_sim_cuda_ctx_tail_locked(const struct CUctx_st *ctx);

/* The device timeline in the shared state (cuda_timeline.c). */
struct gm_sim_cuda_job {
    uint32_t pid;
    int gpu;
    int mps;          /* fill the capacity ledger; else take the GPU alone (time-slicing) */
    double share;     /* of the SMs, for MPS */
    uint64_t work_ns; /* GPU time at the full device */
    uint64_t not_before_ns;
    uint64_t prev_end_ns; /* of this process's previous kernel on the GPU, 0 if none */
};
/* 0, or -GM_E* when the state cannot be locked. */
int gm_sim_cuda_schedule(struct gm_sim_state *st, const struct gm_sim_cuda_job *job,
                         uint64_t *start_ns, uint64_t *end_ns);
/* Work of one launch in ns of the full device (see docs/gpusim.md). */
uint64_t gm_sim_cuda_kernel_work(const struct CUfunc_st *f, uint32_t sms, uint64_t threads,
                                 void **params);

/* Modules. */
CUresult gm_sim_cuda_ptx_parse(const char *text, struct CUmod_st *mod, char *log, size_t loglen);

#endif
