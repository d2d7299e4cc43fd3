/* The private view of the state file (see state.h): read with pread into private memory and
 * validated, never mapped, so that no truncation or scribble by another process can fault or
 * mislead its reader. */
#include "gpusim/state/state.h"

#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A reader that keeps finding the state being changed (a locker died holding the mutex, or a
 * writer never lets go of it) takes the copy it has after this many tries; it is validated as
 * any other. The first half yield, the second sleep RETRY_NS each: a few ms in all. */
#define RETRIES  200
#define RETRY_NS 20000

/* What precedes the mutex: magic, layout, size, versions, config, GPU count. */
#define HEAD_LEN offsetof(struct gm_sim_state, lock)

struct gm_sim_view {
    int fd;
    char path[PATH_MAX];
    pthread_mutex_t lock;     /* cur, the thermal model, fd */
    struct gm_sim_state base; /* as validated at open: its header and static parts are used */
    struct gm_sim_state cur;  /* the last copy read: header, one GPU, its timeline */
    /* The view's own thermal model: the file's is advanced only by those who map it. */
    double temp_c[GM_SIM_MAX_GPUS];
    uint64_t temp_ts_ns[GM_SIM_MAX_GPUS];
};

static int damaged(struct gm_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int damaged(struct gm_error *err, const char *path, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return gm_err(err, GM_EDRIVER, "gpusim state %s: damaged: %s", path, why);
}

static int terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

int gm_sim_validate_header(const struct gm_sim_state *st, long long file_size, const char *path,
                           struct gm_error *err)
{
    if (file_size != (long long)sizeof(*st))
        return damaged(err, path, "%lld bytes, a state file has %zu", file_size, sizeof(*st));
    if (memcmp(st->magic, GM_SIM_MAGIC, sizeof(st->magic)) != 0)
        return damaged(err, path, "no gpusim magic");
    if (st->layout != GM_SIM_LAYOUT || st->size != sizeof(*st))
        return damaged(err, path, "layout %u of %u bytes, not %u of %zu", st->layout, st->size,
                       GM_SIM_LAYOUT, sizeof(*st));
    if (st->ngpus > GM_SIM_MAX_GPUS)
        return damaged(err, path, "%u GPUs, at most %d", st->ngpus, GM_SIM_MAX_GPUS);
    if (!terminated(st->driver_version, sizeof(st->driver_version)) ||
        !terminated(st->cuda_version, sizeof(st->cuda_version)) ||
        !terminated(st->config, sizeof(st->config)))
        return damaged(err, path, "a version or the config name is not terminated");
    return 0;
}

static int check_info(const struct gm_sim_gpu_info *in, int gpu, const char *path,
                      struct gm_error *err)
{
    if (!terminated(in->name, sizeof(in->name)) || !terminated(in->uuid, sizeof(in->uuid)) ||
        !terminated(in->pci_bus_id, sizeof(in->pci_bus_id)) ||
        !terminated(in->serial, sizeof(in->serial)))
        return damaged(err, path, "GPU %d: a name, UUID, PCI bus id or serial is not terminated",
                       gpu);
    /* The config's bounds (config.c): 1 MiB..1 TiB, 1..1000 W, 1..1024 SMs. */
    if (in->memory_total < 1048576 || in->memory_total > 1048576ull * 1048576 ||
        in->power_limit_mw < 1000 || in->power_limit_mw > 1000000 || in->sms < 1 || in->sms > 1024)
        return damaged(err, path, "GPU %d: %llu bytes, %u mW, %u SMs", gpu,
                       (unsigned long long)in->memory_total, in->power_limit_mw, in->sms);
    return 0;
}

int gm_sim_validate_gpu(struct gm_sim_gpu *g, const struct gm_sim_gpu_info *expected, int gpu,
                        const char *path, struct gm_error *err)
{
    int rc = 0;
    if (expected != NULL && memcmp(&g->info, expected, sizeof(*expected)) != 0)
        rc = damaged(err, path, "GPU %d: its static properties changed", gpu);
    else if (expected == NULL)
        rc = check_info(&g->info, gpu, path, err);
    if (rc < 0)
        return rc;
    if (g->nprocs > GM_SIM_MAX_PROCS)
        return damaged(err, path, "GPU %d: %u processes, at most %d", gpu, g->nprocs,
                       GM_SIM_MAX_PROCS);
    if (g->compute_mode != 0 && g->compute_mode != 2 && g->compute_mode != 3)
        return damaged(err, path, "GPU %d: compute mode %d", gpu, g->compute_mode);
    if ((g->persistence != 0 && g->persistence != 1) || g->util_gpu < 0 || g->util_gpu > 100 ||
        g->util_memory < 0 || g->util_memory > 100)
        return damaged(err, path, "GPU %d: persistence %d, utilisation %d%%, memory %d%%", gpu,
                       g->persistence, g->util_gpu, g->util_memory);
    if (g->temp_pinned < -1 || g->temp_pinned > 120 || !isfinite(g->temp_c) || g->temp_c < -100 ||
        g->temp_c > 300)
        return damaged(err, path, "GPU %d: temperature %g C (pinned %d)", gpu, g->temp_c,
                       g->temp_pinned);
    const uint32_t known = GM_SIM_PROC_COMPUTE | GM_SIM_PROC_MPS_CLIENT | GM_SIM_PROC_MPS_SERVER |
                           GM_SIM_PROC_GRAPHICS;
    for (uint32_t i = 0; i < g->nprocs; i++) {
        struct gm_sim_proc *p = &g->procs[i];
        if (p->flags == 0 || (p->flags & ~known) != 0 || p->used_memory > g->info.memory_total ||
            p->sm_util > 100)
            return damaged(err, path, "GPU %d: process %u: flags 0x%x, %llu bytes, %u%% busy", gpu,
                           p->pid, p->flags, (unsigned long long)p->used_memory, p->sm_util);
        p->name[sizeof(p->name) - 1] = '\0';
    }
    return 0;
}

static int read_at(struct gm_sim_view *v, void *buf, size_t len, size_t off, struct gm_error *err)
{
    ssize_t n = pread(v->fd, buf, len, (off_t)off);
    if (n == (ssize_t)len)
        return 0;
    if (n < 0)
        return gm_err_errno(err, GM_EIO, errno, "gpusim state %s: reading", v->path);
    return damaged(err, v->path, "the file ends before byte %zu", off + len);
}

/* A consistent copy of the header and of GPU gpu (with its timeline when it has run kernels
 * lately) into v->cur, validated. Caller holds v->lock. */
static int read_gpu(struct gm_sim_view *v, int gpu, struct gm_error *err)
{
    struct gm_sim_state *c = &v->cur;
    const size_t seq_off = offsetof(struct gm_sim_state, seq);
    const size_t gpu_off =
        offsetof(struct gm_sim_state, gpus) + (size_t)gpu * sizeof(struct gm_sim_gpu);
    const size_t tl_off =
        offsetof(struct gm_sim_state, timelines) + (size_t)gpu * sizeof(struct gm_sim_timeline);
    struct gm_sim_timeline *t = &c->timelines[gpu];
    struct stat sb;
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        uint64_t before, after;
        if (fstat(v->fd, &sb) < 0)
            return gm_err_errno(err, GM_EIO, errno, "gpusim state %s", v->path);
        if (sb.st_size != (off_t)sizeof(*c))
            break; /* refused below, with the size */
        rc = read_at(v, &before, sizeof(before), seq_off, err);
        if (rc == 0)
            rc = read_at(v, c, HEAD_LEN, 0, err);
        if (rc == 0)
            rc = read_at(v, &c->gpus[gpu], sizeof(c->gpus[gpu]), gpu_off, err);
        if (rc == 0)
            rc = read_at(v, &t->last_end_ns, sizeof(t->last_end_ns),
                         tl_off + offsetof(struct gm_sim_timeline, last_end_ns), err);
        if (rc == 0 && t->last_end_ns != 0)
            rc = read_at(v, t, sizeof(*t), tl_off, err);
        if (rc == 0)
            rc = read_at(v, &after, sizeof(after), seq_off, err);
        if (rc < 0)
            return rc;
        if ((before == after && (before & 1) == 0) || attempt >= RETRIES)
            break;
        if (attempt < RETRIES / 2) {
            sched_yield();
        } else {
            struct timespec ts = {0, RETRY_NS};
            nanosleep(&ts, NULL);
        }
    }
    rc = gm_sim_validate_header(c, (long long)sb.st_size, v->path, err);
    if (rc == 0 && c->ngpus != v->base.ngpus)
        rc = damaged(err, v->path, "%u GPUs, it had %u", c->ngpus, v->base.ngpus);
    if (rc == 0)
        rc = gm_sim_validate_gpu(&c->gpus[gpu], &v->base.gpus[gpu].info, gpu, v->path, err);
    return rc;
}

/* After a failed read: when path is now another file (`gpusimctl reset`), read that one from
 * now on. Its static part must still match, or it stays damaged. */
static void follow_path(struct gm_sim_view *v)
{
    struct stat a, b;
    if (fstat(v->fd, &a) < 0 || stat(v->path, &b) < 0 ||
        (a.st_ino == b.st_ino && a.st_dev == b.st_dev))
        return;
    int fd = open(v->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    close(v->fd);
    v->fd = fd;
}

static int read_gpu_following(struct gm_sim_view *v, int gpu, struct gm_error *err)
{
    int rc = read_gpu(v, gpu, err);
    if (rc < 0) {
        int fd = v->fd;
        follow_path(v);
        if (v->fd != fd)
            rc = read_gpu(v, gpu, err);
    }
    return rc;
}

int gm_sim_view_open(const char *path, const char *config, struct gm_sim_view **out,
                     struct gm_error *err)
{
    struct gm_sim_view *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return gm_err(err, GM_ENOMEM, "gpusim state %s: out of memory", path);
    snprintf(v->path, sizeof(v->path), "%s", path);
    int rc = gm_sim_open_state(path, config, NULL, &v->fd, err);
    if (rc < 0) {
        free(v);
        return rc;
    }
    struct stat sb;
    if (fstat(v->fd, &sb) < 0)
        rc = gm_err_errno(err, GM_EIO, errno, "gpusim state %s", path);
    if (rc == 0)
        rc = read_at(v, &v->base, sizeof(v->base), 0, err);
    if (rc == 0)
        rc = gm_sim_validate_header(&v->base, (long long)sb.st_size, path, err);
    for (uint32_t i = 0; rc == 0 && i < v->base.ngpus; i++)
        rc = gm_sim_validate_gpu(&v->base.gpus[i], NULL, (int)i, path, err);
    if (rc == 0)
        rc = pthread_mutex_init(&v->lock, NULL) == 0
                 ? 0
                 : gm_err(err, GM_EINTERNAL, "gpusim state %s: mutex", path);
    if (rc < 0) {
        close(v->fd);
        free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void gm_sim_view_close(struct gm_sim_view *v)
{
    if (v == NULL)
        return;
    pthread_mutex_destroy(&v->lock);
    close(v->fd);
    free(v);
}

const struct gm_sim_state *gm_sim_view_base(const struct gm_sim_view *v)
{
    return &v->base;
}

static int check_index(const struct gm_sim_view *v, int gpu, struct gm_error *err)
{
    return gm_sim_check_gpu(&v->base, gpu, err);
}

int gm_sim_view_snapshot(struct gm_sim_view *v, int gpu, struct gm_sim_gpu *out,
                         struct gm_sim_reading *reading, struct gm_error *err)
{
    int rc = check_index(v, gpu, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&v->lock);
    rc = read_gpu_following(v, gpu, err);
    if (rc == 0) {
        struct gm_sim_gpu *g = &v->cur.gpus[gpu];
        gm_sim_prune_locked(g);
        gm_sim_timeline_to_util_locked(g, &v->cur.timelines[gpu]);
        /* The model goes on from whichever reading is newer: the file's or the view's own. */
        if (g->temp_pinned < 0 && v->temp_ts_ns[gpu] > g->temp_ts_ns) {
            g->temp_c = v->temp_c[gpu];
            g->temp_ts_ns = v->temp_ts_ns[gpu];
        }
        struct gm_sim_reading r;
        gm_sim_model_update_locked(g, &r);
        v->temp_c[gpu] = g->temp_c;
        v->temp_ts_ns[gpu] = g->temp_ts_ns;
        if (out != NULL)
            memcpy(out, g, sizeof(*g));
        if (reading != NULL)
            *reading = r;
    }
    pthread_mutex_unlock(&v->lock);
    return rc;
}

int gm_sim_view_set_compute_mode(struct gm_sim_view *v, int gpu, int mode, struct gm_error *err)
{
    if (mode != 0 && mode != 2 && mode != 3)
        return gm_err(err, GM_EINVAL,
                      "compute mode %d: not 0 (Default), 2 (Prohibited) or 3 "
                      "(Exclusive_Process)",
                      mode);
    int rc = check_index(v, gpu, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&v->lock);
    rc = read_gpu_following(v, gpu, err);
    if (rc == 0) {
        size_t off = offsetof(struct gm_sim_state, gpus) + (size_t)gpu * sizeof(struct gm_sim_gpu) +
                     offsetof(struct gm_sim_gpu, compute_mode);
        if (pwrite(v->fd, &mode, sizeof(mode), (off_t)off) != (ssize_t)sizeof(mode))
            rc = gm_err_errno(err, GM_EIO, errno, "gpusim state %s: writing", v->path);
    }
    pthread_mutex_unlock(&v->lock);
    return rc;
}
