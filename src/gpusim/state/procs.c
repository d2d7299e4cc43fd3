/* The per-GPU process tables: what the driver knows about the processes that hold a context. */
#include "gpusim/state/state.h"

#include "common/clock.h"
#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB ((uint64_t)1048576)

static ssize_t read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

int gm_sim_proc_start_time(uint32_t pid, uint64_t *out, struct gm_error *err)
{
    /* 0 for no process and for a zombie alike: a zombie has released its GPU contexts, as a
     * real driver sees it. */
    uint64_t start = pid > 0 && pid <= INT_MAX ? gm_proc_start_time((pid_t)pid) : 0;
    if (start == 0)
        return gm_err(err, GM_ENOTFOUND, "pid %u: no such process (or it has exited)", pid);
    *out = start;
    return 0;
}

int gm_sim_proc_name(uint32_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
    /* nvidia-smi shows argv[0] ("/tmp/nbody"); kernel threads and zombies have none. */
    if (read_file(path, buf, len) > 0 && buf[0] != '\0')
        return 0;
    snprintf(path, sizeof(path), "/proc/%u/comm", pid);
    if (read_file(path, buf, len) < 0)
        return -GM_ENOTFOUND;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* Only a process that is certainly the one registered keeps its entry: one that cannot be
 * read in /proc is dropped, as gpusim needs its users in the host pid namespace anyway. */
static int alive(const struct gm_sim_proc *p)
{
    return p->pid <= INT_MAX && gm_proc_alive((pid_t)p->pid, p->start_time);
}

void gm_sim_prune_locked(struct gm_sim_gpu *g)
{
    uint32_t kept = 0, before = g->nprocs;
    for (uint32_t i = 0; i < g->nprocs; i++)
        if (alive(&g->procs[i])) {
            if (kept != i)
                g->procs[kept] = g->procs[i];
            kept++;
        }
    g->nprocs = kept;
    /* With no context left nothing can keep the GPU busy. */
    if (kept == 0 && before > 0)
        g->util_gpu = g->util_memory = 0;
}

static struct gm_sim_proc *find(struct gm_sim_gpu *g, uint32_t pid)
{
    for (uint32_t i = 0; i < g->nprocs; i++)
        if (g->procs[i].pid == pid)
            return &g->procs[i];
    return NULL;
}

static uint64_t used_by_others(const struct gm_sim_gpu *g, const struct gm_sim_proc *except)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < g->nprocs; i++)
        if (&g->procs[i] != except)
            sum += g->procs[i].used_memory;
    return sum;
}

/* Memory check shared by register and set_memory; the driver's reservation counts too. */
static int fits(int gpu, const struct gm_sim_gpu *g, const struct gm_sim_proc *except,
                uint64_t memory, struct gm_error *err)
{
    uint64_t other = used_by_others(g, except) + GM_SIM_DRIVER_RESERVE;
    if (memory > g->info.memory_total || other + memory > g->info.memory_total)
        return gm_err(err, GM_ENOSPACE, "GPU %d: %llu MiB asked for, %llu MiB free", gpu,
                      (unsigned long long)(memory / MIB),
                      (unsigned long long)(other >= g->info.memory_total
                                               ? 0
                                               : (g->info.memory_total - other) / MIB));
    return 0;
}

/* Lock, find the GPU and prune it; on success the caller must unlock. */
static int open_gpu(struct gm_sim_state *st, int gpu, struct gm_sim_gpu **g, struct gm_error *err)
{
    int rc = gm_sim_check_gpu(st, gpu, err);
    if (rc == 0)
        rc = gm_sim_lock(st, err);
    if (rc < 0)
        return rc;
    *g = &st->gpus[gpu];
    gm_sim_prune_locked(*g);
    return 0;
}

int gm_sim_proc_register(struct gm_sim_state *st, int gpu, uint32_t pid, uint32_t flags,
                         uint64_t memory, const char *name, struct gm_error *err)
{
    const uint32_t known = GM_SIM_PROC_COMPUTE | GM_SIM_PROC_MPS_CLIENT | GM_SIM_PROC_MPS_SERVER |
                           GM_SIM_PROC_GRAPHICS;
    if (flags == 0 || (flags & ~known) != 0)
        return gm_err(err, GM_EINVAL, "pid %u: invalid process flags 0x%x", pid, flags);
    struct gm_sim_proc p;
    memset(&p, 0, sizeof(p));
    p.pid = pid;
    p.flags = flags;
    p.used_memory = memory;
    int rc = gm_sim_proc_start_time(pid, &p.start_time, err);
    if (rc < 0)
        return rc;
    if (name != NULL && name[0] != '\0')
        snprintf(p.name, sizeof(p.name), "%s", name);
    else if (gm_sim_proc_name(pid, p.name, sizeof(p.name)) < 0)
        return gm_err(err, GM_ENOTFOUND, "pid %u: no such process", pid);

    struct gm_sim_gpu *g;
    rc = open_gpu(st, gpu, &g, err);
    if (rc < 0)
        return rc;
    if (find(g, pid) != NULL)
        rc = gm_err(err, GM_ECONFLICT, "GPU %d: pid %u is already registered", gpu, pid);
    else if (g->nprocs >= GM_SIM_MAX_PROCS)
        rc = gm_err(err, GM_ENOSPACE, "GPU %d: process table full (%d processes)", gpu,
                    GM_SIM_MAX_PROCS);
    else
        rc = fits(gpu, g, NULL, memory, err);
    if (rc == 0) {
        g->procs[g->nprocs] = p;
        g->nprocs++;
    }
    gm_sim_unlock(st);
    return rc;
}

int gm_sim_proc_set_memory(struct gm_sim_state *st, int gpu, uint32_t pid, uint64_t memory,
                           struct gm_error *err)
{
    struct gm_sim_gpu *g;
    int rc = open_gpu(st, gpu, &g, err);
    if (rc < 0)
        return rc;
    struct gm_sim_proc *p = find(g, pid);
    if (p == NULL)
        rc = gm_err(err, GM_ENOTFOUND, "GPU %d: pid %u is not registered", gpu, pid);
    else
        rc = fits(gpu, g, p, memory, err);
    if (rc == 0)
        p->used_memory = memory;
    gm_sim_unlock(st);
    return rc;
}

int gm_sim_proc_unregister(struct gm_sim_state *st, int gpu, uint32_t pid, struct gm_error *err)
{
    struct gm_sim_gpu *g;
    int rc = open_gpu(st, gpu, &g, err);
    if (rc < 0)
        return rc;
    struct gm_sim_proc *p = find(g, pid);
    if (p == NULL) {
        rc = gm_err(err, GM_ENOTFOUND, "GPU %d: pid %u is not registered", gpu, pid);
    } else {
        uint32_t i = (uint32_t)(p - g->procs);
        memmove(&g->procs[i], &g->procs[i + 1], (g->nprocs - i - 1) * sizeof(*p));
        g->nprocs--;
        if (g->nprocs == 0)
            g->util_gpu = g->util_memory = 0;
    }
    gm_sim_unlock(st);
    return rc;
}

int gm_sim_proc_add_busy(struct gm_sim_state *st, int gpu, uint32_t pid, uint64_t busy_ns,
                         uint64_t interval_ns, struct gm_error *err)
{
    if (interval_ns == 0 || busy_ns > interval_ns)
        return gm_err(err, GM_EINVAL, "pid %u: busy %llu ns out of %llu ns", pid,
                      (unsigned long long)busy_ns, (unsigned long long)interval_ns);
    struct gm_sim_gpu *g;
    int rc = open_gpu(st, gpu, &g, err);
    if (rc < 0)
        return rc;
    struct gm_sim_proc *p = find(g, pid);
    if (p == NULL) {
        rc = gm_err(err, GM_ENOTFOUND, "GPU %d: pid %u is not registered", gpu, pid);
    } else {
        p->busy_ns += busy_ns;
        p->sm_util = (uint32_t)(busy_ns * 100 / interval_ns);
        p->busy_ts_us = gm_now_us();
        uint64_t now = gm_mono_ns();
        gm_sim_proc_record_busy(p, now - interval_ns, now, busy_ns, now);
    }
    gm_sim_unlock(st);
    return rc;
}

void gm_sim_proc_record_busy(struct gm_sim_proc *p, uint64_t start_ns, uint64_t end_ns,
                             uint64_t work_ns, uint64_t now_ns)
{
    if (end_ns <= start_ns)
        return;
    double density = (double)work_ns / (double)(end_ns - start_ns);
    if (density > 1.0)
        density = 1.0;
    uint64_t last = now_ns / GM_SIM_UTIL_PERIOD_NS + GM_SIM_UTIL_PERIODS - 3;
    for (uint64_t k = start_ns / GM_SIM_UTIL_PERIOD_NS;
         k * GM_SIM_UTIL_PERIOD_NS < end_ns && k <= last; k++) {
        uint64_t a = k * GM_SIM_UTIL_PERIOD_NS, b = a + GM_SIM_UTIL_PERIOD_NS;
        if (a < start_ns)
            a = start_ns;
        if (b > end_ns)
            b = end_ns;
        struct gm_sim_util_period *u = &p->util[k % GM_SIM_UTIL_PERIODS];
        if (u->period != k) {
            u->period = k;
            u->busy_ns = 0;
        }
        u->busy_ns += (uint64_t)((double)(b - a) * density);
        if (u->busy_ns > GM_SIM_UTIL_PERIOD_NS)
            u->busy_ns = GM_SIM_UTIL_PERIOD_NS;
    }
}

unsigned gm_sim_proc_period_util(const struct gm_sim_proc *p, uint64_t now_ns, uint64_t *end_ns)
{
    uint64_t k = now_ns / GM_SIM_UTIL_PERIOD_NS;
    k = k == 0 ? 0 : k - 1; /* the last complete period */
    *end_ns = (k + 1) * GM_SIM_UTIL_PERIOD_NS;
    const struct gm_sim_util_period *u = &p->util[k % GM_SIM_UTIL_PERIODS];
    if (u->period != k)
        return 0;
    uint64_t busy = u->busy_ns < GM_SIM_UTIL_PERIOD_NS ? u->busy_ns : GM_SIM_UTIL_PERIOD_NS;
    return (unsigned)((busy * 100 + GM_SIM_UTIL_PERIOD_NS / 2) / GM_SIM_UTIL_PERIOD_NS);
}

static int check_pct(int v, const char *what, struct gm_error *err)
{
    if (v < -1 || v > 100)
        return gm_err(err, GM_EINVAL, "%s %d: not a percentage 0..100", what, v);
    return 0;
}

int gm_sim_set_util(struct gm_sim_state *st, int gpu, int util_gpu, int util_memory,
                    struct gm_error *err)
{
    int rc = check_pct(util_gpu, "GPU utilisation", err);
    if (rc == 0)
        rc = check_pct(util_memory, "memory utilisation", err);
    struct gm_sim_gpu *g = NULL;
    if (rc == 0)
        rc = open_gpu(st, gpu, &g, err);
    if (rc < 0)
        return rc;
    /* A timeline whose second has passed no longer speaks for the GPU (as a snapshot finds). */
    gm_sim_timeline_to_util_locked(g, &st->timelines[gpu]);
    if (util_gpu >= 0)
        g->util_gpu = util_gpu;
    if (util_memory >= 0)
        g->util_memory = util_memory;
    gm_sim_unlock(st);
    return 0;
}

int gm_sim_set_temp(struct gm_sim_state *st, int gpu, int temp_c, struct gm_error *err)
{
    if (temp_c < -1 || temp_c > 120)
        return gm_err(err, GM_EINVAL, "temperature %d: not in 0..120 C", temp_c);
    struct gm_sim_gpu *g;
    int rc = open_gpu(st, gpu, &g, err);
    if (rc < 0)
        return rc;
    g->temp_pinned = temp_c;
    if (temp_c >= 0) {
        g->temp_c = temp_c; /* when unpinned, the model moves on from here */
        g->temp_ts_ns = gm_mono_ns();
    }
    gm_sim_unlock(st);
    return 0;
}

int gm_sim_set_compute_mode(struct gm_sim_state *st, int gpu, int mode, struct gm_error *err)
{
    if (mode != 0 && mode != 2 && mode != 3)
        return gm_err(err, GM_EINVAL,
                      "compute mode %d: not 0 (Default), 2 (Prohibited) or 3 "
                      "(Exclusive_Process)",
                      mode);
    struct gm_sim_gpu *g;
    int rc = open_gpu(st, gpu, &g, err);
    if (rc < 0)
        return rc;
    g->compute_mode = mode;
    gm_sim_unlock(st);
    return 0;
}
