#include "daemon/region.h"
#include "common/log.h"
#include "common/path.h"
#include "daemon/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PERIOD_NS ((uint64_t)100 * 1000 * 1000)

int gm_region_path(const struct gm_daemon *d, const char *name, char *buf, size_t len)
{
    return gm_path(NULL, buf, len, "%s/regions/%s.region", d->cfg.run_dir, name);
}

static int header_ok(const struct gm_region *r)
{
    return r->magic == GM_REGION_MAGIC && r->version == GM_REGION_VERSION &&
           r->size == sizeof(struct gm_region);
}

int gm_region_map(const char *path, struct gm_region **out, struct gm_error *err)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return gm_err_errno(err, GM_ENOTFOUND, errno, "region %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size != sizeof(struct gm_region)) {
        close(fd);
        return gm_err(err, GM_EINVAL, "region %s: wrong size", path);
    }
    void *p = mmap(NULL, sizeof(struct gm_region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return gm_err_errno(err, GM_EIO, e, "mapping region %s", path);
    if (!header_ok(p)) {
        munmap(p, sizeof(struct gm_region));
        return gm_err(err, GM_EINVAL, "region %s: not a gpumux region of this version", path);
    }
    *out = p;
    return 0;
}

void gm_region_unmap(struct gm_region *r)
{
    if (r != NULL)
        munmap(r, sizeof(*r));
}

void gm_region_set_limits(struct gm_region *r, uint64_t memory_limit, int compute_pct, int by_mps)
{
    uint32_t flags = __atomic_load_n(&r->flags, __ATOMIC_RELAXED);
    flags = by_mps ? flags | GM_REGION_COMPUTE_BY_MPS : flags & ~(uint32_t)GM_REGION_COMPUTE_BY_MPS;
    __atomic_store_n(&r->flags, flags, __ATOMIC_RELEASE);
    __atomic_store_n(&r->memory_limit, memory_limit, __ATOMIC_RELEASE);
    __atomic_store_n(&r->compute_pct, (uint32_t)compute_pct, __ATOMIC_RELEASE);
    __atomic_add_fetch(&r->generation, 1, __ATOMIC_RELEASE);
}

int gm_region_set_window(struct gm_region *r, uint64_t period_ns, uint64_t offset_ns,
                         uint64_t len_ns)
{
    if (__atomic_load_n(&r->period_ns, __ATOMIC_ACQUIRE) == period_ns &&
        __atomic_load_n(&r->window_offset_ns, __ATOMIC_ACQUIRE) == offset_ns &&
        __atomic_load_n(&r->window_len_ns, __ATOMIC_ACQUIRE) == len_ns)
        return 0;
    /* Seqlock: the generation is odd while the window changes, and readers retry when it
     * moved; length 0 first, so even a reader that does not check never pairs the new offset
     * with the old length. */
    __atomic_add_fetch(&r->generation, 1, __ATOMIC_ACQ_REL);
    __atomic_store_n(&r->window_len_ns, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&r->period_ns, period_ns, __ATOMIC_RELEASE);
    __atomic_store_n(&r->window_offset_ns, offset_ns, __ATOMIC_RELEASE);
    __atomic_store_n(&r->epoch_ns, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&r->window_len_ns, len_ns, __ATOMIC_RELEASE);
    __atomic_add_fetch(&r->generation, 1, __ATOMIC_RELEASE);
    return 1;
}

static int lock(struct gm_region *r)
{
    int rc = pthread_mutex_lock(&r->lock);
    if (rc == EOWNERDEAD) {
        /* Its holder died mid-update: the slots are the truth, the total is recomputed. */
        uint64_t sum = 0;
        for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
            if (r->procs[i].pid != 0)
                sum += r->procs[i].mem_used;
        r->mem_used = sum;
        pthread_mutex_consistent(&r->lock);
        rc = 0;
    }
    return rc;
}

int gm_region_reap(struct gm_region *r)
{
    if (lock(r) != 0)
        return 0;
    int n = 0;
    uint64_t sum = 0;
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++) {
        struct gm_region_proc *p = &r->procs[i];
        if (p->pid == 0)
            continue;
        if (!gm_proc_alive((pid_t)p->pid, p->start_time)) {
            memset(p, 0, sizeof(*p));
            n++;
            continue;
        }
        sum += p->mem_used;
    }
    r->mem_used = sum;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static int create(const char *path, const struct gm_workload_rec *w, struct gm_error *err)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
    if (fd < 0)
        return gm_err_errno(err, GM_EIO, errno, "creating region %s", tmp);
    struct gm_region *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        close(fd);
        return gm_err(err, GM_ENOMEM, "out of memory");
    }
    r->magic = GM_REGION_MAGIC;
    r->version = GM_REGION_VERSION;
    r->size = sizeof(*r);
    snprintf(r->workload, sizeof(r->workload), "%s", w->name);
    snprintf(r->gpu_uuid, sizeof(r->gpu_uuid), "%s", w->ngpus ? w->gpus[0] : "");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&r->lock, &a);
    pthread_mutexattr_destroy(&a);
    ssize_t wr = write(fd, r, sizeof(*r));
    free(r);
    int rc = 0;
    if (wr != (ssize_t)sizeof(*r))
        rc = gm_err_errno(err, GM_EIO, errno, "writing region %s", tmp);
    /* The workload maps it read-write under its own identity; 0660 whatever the umask. */
    else if (fchmod(fd, 0660) < 0 ||
             (geteuid() == 0 && fchown(fd, (uid_t)w->uid, (gid_t)w->gid) < 0))
        rc = gm_err_errno(err, GM_EIO, errno, "region %s: chown", tmp);
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = gm_err_errno(err, GM_EIO, errno, "region %s", path);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int gm_region_prepare(struct gm_daemon *d, const struct gm_workload_rec *w, int by_mps,
                      struct gm_error *err)
{
    char dir[PATH_MAX], path[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/regions", d->cfg.run_dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return gm_err_errno(err, GM_EIO, errno, "creating %s", dir);
    gm_region_path(d, w->name, path, sizeof(path));
    struct gm_region *r;
    if (gm_region_map(path, &r, NULL) < 0 || strcmp(r->gpu_uuid, w->ngpus ? w->gpus[0] : "") != 0) {
        int rc = create(path, w, err);
        if (rc < 0)
            return rc;
        if ((rc = gm_region_map(path, &r, err)) < 0)
            return rc;
    }
    gm_region_reap(r);
    gm_region_set_limits(r, w->memory_limit, w->compute_pct, by_mps);
    gm_region_unmap(r);
    return 0;
}

void gm_region_control(struct gm_daemon *d, const struct gm_gpu_rec *gpus, size_t ngpus,
                       const struct gm_workload_rec *ws, size_t n)
{
    for (size_t g = 0; g < ngpus; g++) {
        /* Caps are limits: when they add up past 100% each gets its share of the period. */
        int sum = 0;
        for (size_t i = 0; i < n; i++)
            if (gm_workload_active(&ws[i]) && ws[i].ngpus == 1 &&
                strcmp(ws[i].gpus[0], gpus[g].uuid) == 0)
                sum += ws[i].compute_pct;
        uint64_t offset = 0;
        for (size_t i = 0; i < n; i++) {
            const struct gm_workload_rec *w = &ws[i];
            if (w->ngpus != 1 || strcmp(w->gpus[0], gpus[g].uuid) != 0 ||
                (w->compute_pct == 0 && w->memory_limit == 0))
                continue;
            char path[PATH_MAX];
            gm_region_path(d, w->name, path, sizeof(path));
            struct gm_region *r;
            if (gm_region_map(path, &r, NULL) < 0)
                continue;
            gm_region_reap(r);
            if (gm_workload_active(w) && w->compute_pct > 0 && gpus[g].mode == GM_MODE_SHARED) {
                uint64_t len =
                    PERIOD_NS * (uint64_t)w->compute_pct / (uint64_t)(sum > 100 ? sum : 100);
                if (gm_region_set_window(r, PERIOD_NS, offset, len))
                    gm_debug("workload %s: compute window %llu+%llu ms of %llu ms", w->name,
                             (unsigned long long)(offset / 1000000),
                             (unsigned long long)(len / 1000000),
                             (unsigned long long)(PERIOD_NS / 1000000));
                offset += len;
            }
            gm_region_unmap(r);
        }
    }
}
