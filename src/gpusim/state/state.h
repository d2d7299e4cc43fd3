/* gpusim's device state: one file mapped MAP_SHARED by every process that loads a gpusim part
 * (libcuda, the MPS control daemon, gpusimctl; libnvidia-ml reads it through a private view, see
 * below), so that all of them see one device.
 *
 * The file is created and initialised from the config exactly once, under flock; its header is
 * checked on every attach. The static part of each GPU is written only at creation; everything
 * else is guarded by one robust process-shared mutex, so a process killed while holding it does
 * not block the others. Dead processes are pruned from the process tables whenever they are read.
 *
 * All functions return 0 or a negative GM_E* code and fill err. */
#ifndef GM_GPUSIM_STATE_H
#define GM_GPUSIM_STATE_H

#include "common/error.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#define GM_SIM_MAGIC         "GPUSIMST"
#define GM_SIM_LAYOUT        5
#define GM_SIM_MAX_GPUS      8
#define GM_SIM_MAX_PROCS     64
#define GM_SIM_DEFAULT_STATE "/dev/shm/gpumux-gpusim"
/* Memory the driver keeps on a GPU while any process has a context there: the seed's nvidia-smi
 * shows used = sum of the processes + 3 MiB both with and without MPS (221 = 2 x 109 + 3,
 * 242 = 2 x 107 + 25 + 3), and 0 MiB on an idle GPU. */
#define GM_SIM_DRIVER_RESERVE ((uint64_t)3 * 1048576)

/* What a process is doing on a GPU; nvidia-smi's Type column is derived from these. The MPS
 * server shows in the compute list, an MPS client in both the compute and the MPS list. */
enum gm_sim_proc_flags {
    GM_SIM_PROC_COMPUTE = 1u << 0,
    GM_SIM_PROC_MPS_CLIENT = 1u << 1,
    GM_SIM_PROC_MPS_SERVER = 1u << 2,
    GM_SIM_PROC_GRAPHICS = 1u << 3,
};

/* Sampling period of nvmlDeviceGetProcessUtilization and the periods a process keeps: kernels
 * are booked up to about a second ahead, so the ring reaches that far and keeps the last
 * complete periods behind now. */
#define GM_SIM_UTIL_PERIOD_NS 100000000ull
#define GM_SIM_UTIL_PERIODS   16
struct gm_sim_proc {
    uint32_t pid;
    uint32_t flags;       /* enum gm_sim_proc_flags */
    uint64_t start_time;  /* /proc/PID/stat field 22, so that a reused pid is not mistaken */
    uint64_t used_memory; /* bytes */
    /* Busy time for per-process utilisation: the simulated driver adds the time its kernels ran
     * (gm_sim_proc_add_busy); sm_util is the share of the last reported interval. */
    uint64_t busy_ns;
    uint64_t busy_ts_us; /* CLOCK_REALTIME of the last report, 0 when none */
    uint32_t sm_util;
    uint32_t reserved;
    char name[256];
    /* Per-process utilisation as the real driver samples it: the time the process's kernels
     * ran in each sampling period of GM_SIM_UTIL_PERIOD_NS (CLOCK_MONOTONIC), a ring keyed by
     * the absolute period number (ns / GM_SIM_UTIL_PERIOD_NS). See gm_sim_proc_record_busy. */
    struct gm_sim_util_period {
        uint64_t period;
        uint64_t busy_ns;
    } util[GM_SIM_UTIL_PERIODS];
};

/* The device timeline the simulated libcuda schedules kernels on (CLOCK_MONOTONIC ns), shared
 * so that the processes of one GPU see each other's work. Time is cut into slots of
 * GM_SIM_SLOT_NS; a ring keeps GM_SIM_SLOT_HISTORY slots of the past (for utilisation) and the
 * rest of the future. See docs/gpusim.md, "CUDA and the device timeline". */
#define GM_SIM_SLOT_NS      1000000ull
#define GM_SIM_SLOTS        8192
#define GM_SIM_SLOT_HISTORY 1100
struct gm_sim_timeline {
    uint64_t tail_ns;     /* end of the last kernel scheduled on the GPU */
    uint64_t last_end_ns; /* latest end of any kernel; 0 while utilisation is left to gpusimctl */
    /* The end of each process's queued work, to tell a contended GPU (time-sliced, paying for
     * context switches) from one that a process has to itself. Free when end_ns has passed. */
    struct gm_sim_timeline_proc {
        uint32_t pid;
        uint32_t reserved;
        uint64_t end_ns;
    } procs[GM_SIM_MAX_PROCS];
    uint64_t first_slot;      /* absolute slot number (ns / GM_SIM_SLOT_NS) of the oldest slot */
    float used[GM_SIM_SLOTS]; /* share of the SMs taken, 0..1, at ring[slot % GM_SIM_SLOTS] */
    float busy[GM_SIM_SLOTS]; /* fraction of the slot during which any kernel ran, 0..1 */
};

/* Static properties: written once when the state file is created, never changed after. */
struct gm_sim_gpu_info {
    char name[96];
    char uuid[96];
    char pci_bus_id[32]; /* "00002C74:00:00.0" */
    char serial[32];
    uint32_t pci_domain, pci_bus, pci_device;
    uint32_t pci_device_id, pci_subsystem_id;
    uint64_t memory_total; /* bytes */
    uint32_t power_limit_mw;
    uint32_t sms;
    int cc_major, cc_minor;
};

struct gm_sim_gpu {
    struct gm_sim_gpu_info info;
    /* Dynamic part, under the mutex. */
    int compute_mode; /* NVML numbers */
    int persistence;
    int util_gpu, util_memory; /* percent */
    int temp_pinned;           /* -1: the thermal model decides; else a fixed temperature in C */
    double temp_c;             /* model temperature at temp_ts_ns */
    uint64_t temp_ts_ns;       /* CLOCK_MONOTONIC */
    uint32_t nprocs;
    uint32_t reserved;
    struct gm_sim_proc procs[GM_SIM_MAX_PROCS];
};

struct gm_sim_state {
    char magic[8];   /* written last: a file without it was never fully initialised */
    uint32_t layout; /* GM_SIM_LAYOUT */
    uint32_t size;   /* sizeof(struct gm_sim_state) */
    char driver_version[80];
    char cuda_version[16]; /* "12.2" */
    int cuda_version_int;  /* 12020, as nvmlSystemGetCudaDriverVersion reports it */
    char config[PATH_MAX]; /* the config the file was created from, "" for the defaults */
    uint32_t ngpus;
    pthread_mutex_t lock;
    /* Odd while a locker may be changing the state: gm_sim_lock makes it odd, gm_sim_unlock even
     * again, so a reader without the mutex (the private view) knows a consistent copy when it
     * reads the same even number before and after. */
    uint64_t seq;
    struct gm_sim_gpu gpus[GM_SIM_MAX_GPUS];
    /* Apart from the GPUs so that their snapshots stay small; under the mutex. */
    struct gm_sim_timeline timelines[GM_SIM_MAX_GPUS];
};

/* Derived, instantaneous readings of one GPU (see power_model.c). */
struct gm_sim_reading {
    uint64_t memory_used;
    int pstate; /* 0 or 8 */
    uint32_t power_mw;
    int temperature;
};

/* $GPUSIM_STATE or the default. */
const char *gm_sim_state_path(void);
/* $GPUSIM_CONFIG or NULL (the built-in defaults). */
const char *gm_sim_config_path(void);

/* Map the state file at path, creating it from config (NULL: defaults) when it does not exist.
 * An existing file is used as it is, whatever config it was created from. */
int gm_sim_attach_path(const char *path, const char *config, struct gm_sim_state **out,
                       struct gm_error *err);
/* gm_sim_attach_path with the environment's paths. */
int gm_sim_attach(struct gm_sim_state **out, struct gm_error *err);
void gm_sim_detach(struct gm_sim_state *st);
/* Remove the state file and create it anew from config. Processes that still have the old file
 * mapped keep seeing the old device until they attach again. */
int gm_sim_reset(const char *path, const char *config, struct gm_error *err);

/* The mutex, recovered when its owner died. Hold it for as short as possible. */
int gm_sim_lock(struct gm_sim_state *st, struct gm_error *err);
void gm_sim_unlock(struct gm_sim_state *st);

/* Process table of one GPU. Each takes the lock itself. pid must be alive; name NULL or ""
 * takes argv[0] of the process. Memory counts against the GPU's total: past it -GM_ENOSPACE. */
int gm_sim_proc_register(struct gm_sim_state *st, int gpu, uint32_t pid, uint32_t flags,
                         uint64_t memory, const char *name, struct gm_error *err);
int gm_sim_proc_set_memory(struct gm_sim_state *st, int gpu, uint32_t pid, uint64_t memory,
                           struct gm_error *err);
int gm_sim_proc_unregister(struct gm_sim_state *st, int gpu, uint32_t pid, struct gm_error *err);
/* Record that pid's work kept the GPU busy for busy_ns out of the last interval_ns. */
int gm_sim_proc_add_busy(struct gm_sim_state *st, int gpu, uint32_t pid, uint64_t busy_ns,
                         uint64_t interval_ns, struct gm_error *err);

/* Record that p's kernel ran [start_ns, end_ns) (CLOCK_MONOTONIC) doing work_ns of GPU time:
 * each sampling period it overlaps gets its share (work spread evenly over the interval, so an
 * MPS client at 30% counts 30% of the time). Periods past the ring's reach ahead of now_ns are
 * not recorded. Caller holds the lock. */
void gm_sim_proc_record_busy(struct gm_sim_proc *p, uint64_t start_ns, uint64_t end_ns,
                             uint64_t work_ns, uint64_t now_ns);
/* p's utilisation (percent) in the last sampling period that ended at or before now_ns, whose
 * end is stored in end_ns; 0 when it did not run then. */
unsigned gm_sim_proc_period_util(const struct gm_sim_proc *p, uint64_t now_ns, uint64_t *end_ns);
/* Utilisation in percent; -1 leaves a value as it is. */
int gm_sim_set_util(struct gm_sim_state *st, int gpu, int util_gpu, int util_memory,
                    struct gm_error *err);
/* Pin the temperature (C), or hand it back to the thermal model with -1. */
int gm_sim_set_temp(struct gm_sim_state *st, int gpu, int temp_c, struct gm_error *err);
int gm_sim_set_compute_mode(struct gm_sim_state *st, int gpu, int mode, struct gm_error *err);

/* A consistent copy of one GPU after pruning dead processes, with its derived readings. */
int gm_sim_gpu_snapshot(struct gm_sim_state *st, int gpu, struct gm_sim_gpu *out,
                        struct gm_sim_reading *reading, struct gm_error *err);

/* Drop the timeline's slots older than its history so that the ring reaches past now; caller
 * holds the lock. */
void gm_sim_timeline_advance_locked(struct gm_sim_timeline *t, uint64_t now_ns);
/* Percent of the last second during which a kernel ran on the timeline. */
int gm_sim_timeline_util_locked(struct gm_sim_timeline *t, uint64_t now_ns);

/* Internal helpers shared by the state files. */
/* Open path under flock, creating it from config when it does not exist or was never fully
 * initialised, and check its header; out: mapped there when not NULL; fd_out: the open file is
 * left there when not NULL. gm_sim_attach_path and the private view are built on it. */
int gm_sim_open_state(const char *path, const char *config, struct gm_sim_state **out, int *fd_out,
                      struct gm_error *err);
int gm_sim_check_gpu(const struct gm_sim_state *st, int gpu, struct gm_error *err);
/* /proc/PID/stat field 22 (gm_proc_start_time); -GM_ENOTFOUND when the process does not exist
 * or is a zombie: a dead process has released its contexts, as a real driver sees it. */
int gm_sim_proc_start_time(uint32_t pid, uint64_t *out, struct gm_error *err);
/* argv[0] of pid (falling back to comm); -GM_ENOTFOUND when the process does not exist. */
int gm_sim_proc_name(uint32_t pid, char *buf, size_t len);
/* Drop entries whose process has died; caller holds the lock. */
void gm_sim_prune_locked(struct gm_sim_gpu *g);
/* Advance the thermal model to now and compute the readings; caller holds the lock. */
void gm_sim_model_update_locked(struct gm_sim_gpu *g, struct gm_sim_reading *out);

/* Utilisation while kernels run and for the second after (from the timeline), then back to what
 * gpusimctl set; caller holds the lock (or owns g and t, as the private view does). */
void gm_sim_timeline_to_util_locked(struct gm_sim_gpu *g, struct gm_sim_timeline *t);

/* ---- The private view ---------------------------------------------------------------------
 * Anyone may write the state file (it is mode 0666, as workloads of every user take part in the
 * simulation), so a process that must survive what others do to it, gpumuxd through gpusim's
 * libnvidia-ml, never maps it: a mapping of a file that another process truncates raises SIGBUS
 * at the next access, whatever was checked before. The view reads the file with pread into
 * private memory, a consistent copy by the state's sequence number, and validates every copy
 * (header, sizes, counts, strings, ranges, the static part against the one seen at open) before
 * use. A file that fails is reported as damaged (-GM_EDRIVER, "damaged"), never trusted; once it
 * reads well again the view uses it again. The view is thread-safe. */
struct gm_sim_view;
/* Open path as gm_sim_attach_path does (creating it from config when it does not exist), but
 * without mapping it. */
int gm_sim_view_open(const char *path, const char *config, struct gm_sim_view **out,
                     struct gm_error *err);
void gm_sim_view_close(struct gm_sim_view *v);
/* The state as validated at open: the header and the static part of each GPU. Private memory. */
const struct gm_sim_state *gm_sim_view_base(const struct gm_sim_view *v);
/* gm_sim_gpu_snapshot on a fresh, validated copy; nothing is written to the file (pruning and
 * the models act on the copy; the view keeps its own thermal model). */
int gm_sim_view_snapshot(struct gm_sim_view *v, int gpu, struct gm_sim_gpu *out,
                         struct gm_sim_reading *reading, struct gm_error *err);
/* gm_sim_set_compute_mode without the mutex: one aligned int, written only when the file has
 * just read well. */
int gm_sim_view_set_compute_mode(struct gm_sim_view *v, int gpu, int mode, struct gm_error *err);

/* The view's checks, for the tests: the header against the file's size, and one GPU's copy
 * against the static part it had at open (NULL: not compared). The copy's strings are
 * terminated in place. */
int gm_sim_validate_header(const struct gm_sim_state *st, long long file_size, const char *path,
                           struct gm_error *err);
int gm_sim_validate_gpu(struct gm_sim_gpu *g, const struct gm_sim_gpu_info *expected, int gpu,
                        const char *path, struct gm_error *err);

/* The GPUs named by cvd (CUDA_VISIBLE_DEVICES: indices, UUIDs or unique UUID prefixes), in its
 * order; the list ends at the first entry that names no GPU or one already listed. NULL shows
 * every GPU, "" none. Returns how many, at most max. */
int gm_sim_visible_gpus(const struct gm_sim_state *st, const char *cvd, int *out, int max);

#endif
