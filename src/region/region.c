#include "region/region.h"
#include "common/clock.h"
#include "common/proc.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_RETRIES 1000

/* What a failed open or mmap means, in the project's codes. */
static int code_of(int e)
{
    return e == ENOENT ? GM_ENOTFOUND : e == EACCES || e == EPERM || e == ELOOP ? GM_EPERM : GM_EIO;
}

static void copy_str(char *dst, size_t len, const char *src)
{
    size_t n = src != NULL ? strnlen(src, len - 1) : 0;
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
}

/* ---- create, attach ---- */

static int init_in_place(struct gm_region *r, const struct gm_region_init *in)
{
    memset(r, 0, sizeof(*r));
    r->version = GM_REGION_VERSION;
    r->size = sizeof(*r);
    r->flags = in->flags;
    copy_str(r->workload, sizeof(r->workload), in->workload);
    copy_str(r->gpu_uuid, sizeof(r->gpu_uuid), in->gpu_uuid);
    r->memory_limit = in->memory_limit;
    r->compute_pct = in->compute_pct;
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc != 0)
        return rc;
    if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
        (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0)
        rc = pthread_mutex_init(&r->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (rc == 0)
        /* Last: until now an attacher sees no region at all. */
        __atomic_store_n(&r->magic, GM_REGION_MAGIC, __ATOMIC_RELEASE);
    return rc;
}

int gm_region_create(const char *path, const struct gm_region_init *in, struct gm_region **out,
                     struct gm_error *err)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return gm_err(err, GM_EINVAL, "region %s: path too long", path);
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);
        if (fd < 0 && errno == EEXIST && attempt == 0)
            unlink(tmp); /* left by a creator that died: never written through */
        else if (fd < 0)
            break;
    }
    if (fd < 0) {
        int e = errno;
        return gm_err_errno(err, code_of(e), e, "creating region %s", tmp);
    }
    int rc = 0, e;
    struct gm_region *r = MAP_FAILED;
    /* The workload maps it read-write under its own identity: 0660 whatever the umask. */
    if (fchmod(fd, 0660) < 0 || (geteuid() == 0 && fchown(fd, in->uid, in->gid) < 0)) {
        e = errno;
        rc = gm_err_errno(err, GM_EIO, e, "region %s: owner and mode", tmp);
    } else if (ftruncate(fd, sizeof(struct gm_region)) < 0) {
        e = errno;
        rc = gm_err_errno(err, GM_EIO, e, "region %s", tmp);
    } else if ((r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
               MAP_FAILED) {
        e = errno;
        rc = gm_err_errno(err, GM_EIO, e, "mapping region %s", tmp);
    } else if ((e = init_in_place(r, in)) != 0) {
        rc = gm_err_errno(err, GM_EIO, e, "region %s: lock", tmp);
    } else if (rename(tmp, path) < 0) {
        e = errno;
        rc = gm_err_errno(err, GM_EIO, e, "region %s", path);
    }
    close(fd);
    if (rc < 0) {
        if (r != MAP_FAILED)
            munmap(r, sizeof(*r));
        unlink(tmp);
        return rc;
    }
    if (out != NULL)
        *out = r;
    else
        munmap(r, sizeof(*r));
    return 0;
}

int gm_region_attach(const char *path, struct gm_region **out, struct gm_error *err)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return gm_err(err, GM_EPERM, "%s: a symbolic link, not followed", path);
        return gm_err_errno(err, code_of(e), e, "%s", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return gm_err(err, GM_EINVAL, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size < sizeof(struct gm_region)) {
        /* Mapping past its end would fault on the first access. */
        close(fd);
        return gm_err(err, GM_EINVAL, "%s: %lld bytes, a region has %zu", path,
                      (long long)st.st_size, sizeof(struct gm_region));
    }
    void *m = mmap(NULL, sizeof(struct gm_region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);
    if (m == MAP_FAILED)
        return gm_err_errno(err, GM_EIO, map_errno, "%s: mmap", path);
    struct gm_region *r = m;
    uint32_t magic = __atomic_load_n(&r->magic, __ATOMIC_ACQUIRE);
    int rc = 0;
    if (magic != GM_REGION_MAGIC)
        rc = gm_err(err, GM_EINVAL, "%s: bad magic 0x%08x", path, magic);
    else if (r->version != GM_REGION_VERSION)
        rc = gm_err(err, GM_EINVAL, "%s: layout version %u, this library reads version %u", path,
                    r->version, GM_REGION_VERSION);
    else if (r->size != sizeof(struct gm_region))
        rc = gm_err(err, GM_EINVAL, "%s: header says %u bytes, this library's region has %zu", path,
                    r->size, sizeof(struct gm_region));
    if (rc == 0) {
        *out = r;
        return 0;
    }
    munmap(m, sizeof(struct gm_region));
    return rc;
}

void gm_region_detach(struct gm_region *r)
{
    if (r != NULL)
        munmap(r, sizeof(*r));
}

/* ---- the lock ---- */

int gm_region_lock(struct gm_region *r, uint64_t timeout_ns)
{
    int rc;
    if (timeout_ns == GM_REGION_WAIT) {
        rc = pthread_mutex_lock(&r->lock);
    } else {
        /* Polling trylock on CLOCK_MONOTONIC: pthread_mutex_timedlock counts on the wall
         * clock, which may jump. The lock is held for microseconds by a healthy workload. */
        uint64_t deadline = gm_mono_ns() + timeout_ns;
        for (;;) {
            rc = pthread_mutex_trylock(&r->lock);
            if (rc != EBUSY)
                break;
            uint64_t now = gm_mono_ns();
            if (now >= deadline)
                return -GM_EBUSY;
            uint64_t step = deadline - now < 1000000u ? deadline - now : 1000000u;
            struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step};
            nanosleep(&ts, NULL);
        }
    }
    if (rc == EOWNERDEAD) {
        /* Its holder died mid-update. */
        gm_region_repair_locked(r);
        pthread_mutex_consistent(&r->lock);
        rc = 0;
    }
    return rc == 0 ? 0 : -GM_EIO; /* ENOTRECOVERABLE and the like: not held */
}

void gm_region_unlock(struct gm_region *r)
{
    pthread_mutex_unlock(&r->lock);
}

/* ---- slots ---- */

int gm_region_slot_gone(const struct gm_region_proc *p)
{
    uint32_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
    if (pid == 0 || pid > (uint32_t)INT_MAX)
        return pid != 0;
    return gm_proc_gone((pid_t)pid, __atomic_load_n(&p->start_time, __ATOMIC_RELAXED));
}

/* The total and the peak are written under the lock and read without it (cuMemGetInfo): they
 * are stored atomically, as are a slot's pid and start time (gm_region_slot_holds). */
static void set_total(struct gm_region *r, uint64_t v)
{
    __atomic_store_n(&r->mem_used, v, __ATOMIC_RELAXED);
    if (v > __atomic_load_n(&r->mem_peak, __ATOMIC_RELAXED))
        __atomic_store_n(&r->mem_peak, v, __ATOMIC_RELAXED);
}

static uint64_t total(const struct gm_region *r)
{
    return __atomic_load_n(&r->mem_used, __ATOMIC_RELAXED);
}

static void clear_slot(struct gm_region_proc *p)
{
    __atomic_store_n(&p->pid, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&p->start_time, 0, __ATOMIC_RELAXED);
    p->mem_used = 0;
    __atomic_store_n(&p->launches, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->busy_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->throttle_ns, 0, __ATOMIC_RELAXED);
}

int gm_region_repair_locked(struct gm_region *r)
{
    int freed = 0;
    uint64_t sum = 0;
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++) {
        struct gm_region_proc *p = &r->procs[i];
        if (__atomic_load_n(&p->pid, __ATOMIC_RELAXED) == 0)
            continue;
        if (gm_region_slot_gone(p)) {
            clear_slot(p);
            freed++;
            continue;
        }
        sum += p->mem_used;
    }
    __atomic_store_n(&r->mem_used, sum, __ATOMIC_RELAXED);
    return freed;
}

int gm_region_reap(struct gm_region *r, uint64_t timeout_ns)
{
    int rc = gm_region_lock(r, timeout_ns);
    if (rc < 0)
        return rc;
    int n = gm_region_repair_locked(r);
    gm_region_unlock(r);
    return n;
}

static int find_slot_locked(struct gm_region *r, uint32_t pid, uint64_t start)
{
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
        if (r->procs[i].pid == pid && r->procs[i].start_time == start)
            return i;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
            if (r->procs[i].pid == 0)
                return i;
        if (pass == 0 && gm_region_repair_locked(r) == 0)
            break;
    }
    return -1;
}

int gm_region_slot_claim_locked(struct gm_region *r, uint32_t pid, uint64_t start,
                                uint64_t mem_used)
{
    int i = find_slot_locked(r, pid, start);
    if (i >= 0) {
        struct gm_region_proc *p = &r->procs[i];
        if (p->pid != 0)
            gm_region_slot_release_locked(r, i);
        __atomic_store_n(&p->start_time, start, __ATOMIC_RELAXED);
        p->mem_used = mem_used;
        __atomic_store_n(&p->pid, pid, __ATOMIC_RELEASE);
    }
    set_total(r, total(r) + mem_used);
    return i;
}

void gm_region_slot_release_locked(struct gm_region *r, int i)
{
    if (i < 0 || i >= GM_REGION_MAX_PROCS)
        return;
    struct gm_region_proc *p = &r->procs[i];
    uint64_t t = total(r);
    set_total(r, t - (p->mem_used < t ? p->mem_used : t));
    clear_slot(p);
}

int gm_region_slot_holds(const struct gm_region *r, int i, uint32_t pid, uint64_t start)
{
    if (i < 0 || i >= GM_REGION_MAX_PROCS)
        return 0;
    const struct gm_region_proc *p = &r->procs[i];
    return __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE) == pid &&
           __atomic_load_n(&p->start_time, __ATOMIC_RELAXED) == start;
}

void gm_region_charge_locked(struct gm_region *r, int i, uint64_t size)
{
    set_total(r, total(r) + size);
    if (i >= 0 && i < GM_REGION_MAX_PROCS)
        r->procs[i].mem_used += size;
}

void gm_region_uncharge_locked(struct gm_region *r, int i, uint64_t size)
{
    uint64_t t = total(r);
    set_total(r, t - (size < t ? size : t));
    if (i >= 0 && i < GM_REGION_MAX_PROCS) {
        struct gm_region_proc *p = &r->procs[i];
        p->mem_used -= size < p->mem_used ? size : p->mem_used;
    }
}

/* ---- limits and the schedule: the seqlock ---- */

static void write_begin(struct gm_region *r)
{
    uint64_t g = __atomic_load_n(&r->generation, __ATOMIC_RELAXED);
    /* Odd while writing; a writer that died mid-write left it odd: carry on from there. The
     * read-modify-write orders the stores that follow after it (no fence: ThreadSanitizer does
     * not model fences). One writer at a time: the daemon serialises its writes. */
    __atomic_fetch_add(&r->generation, (g & 1) ? 0 : 1, __ATOMIC_ACQ_REL);
}

static void write_end(struct gm_region *r)
{
    __atomic_add_fetch(&r->generation, 1, __ATOMIC_RELEASE);
}

void gm_region_set_limits(struct gm_region *r, uint64_t memory_limit, uint32_t compute_pct,
                          int by_mps)
{
    write_begin(r);
    uint32_t flags = __atomic_load_n(&r->flags, __ATOMIC_RELAXED);
    flags = by_mps ? flags | GM_REGION_COMPUTE_BY_MPS : flags & ~(uint32_t)GM_REGION_COMPUTE_BY_MPS;
    __atomic_store_n(&r->flags, flags, __ATOMIC_RELEASE);
    __atomic_store_n(&r->memory_limit, memory_limit, __ATOMIC_RELEASE);
    __atomic_store_n(&r->compute_pct, compute_pct, __ATOMIC_RELEASE);
    write_end(r);
}

int gm_region_set_window(struct gm_region *r, uint64_t period_ns, uint64_t offset_ns,
                         uint64_t len_ns, uint64_t epoch_ns)
{
    if ((__atomic_load_n(&r->generation, __ATOMIC_ACQUIRE) & 1) == 0 &&
        __atomic_load_n(&r->period_ns, __ATOMIC_RELAXED) == period_ns &&
        __atomic_load_n(&r->window_offset_ns, __ATOMIC_RELAXED) == offset_ns &&
        __atomic_load_n(&r->window_len_ns, __ATOMIC_RELAXED) == len_ns &&
        __atomic_load_n(&r->epoch_ns, __ATOMIC_RELAXED) == epoch_ns)
        return 0;
    write_begin(r);
    /* Length 0 first, so even a reader that does not check the generation never pairs the new
     * offset with the old length. */
    __atomic_store_n(&r->window_len_ns, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&r->period_ns, period_ns, __ATOMIC_RELEASE);
    __atomic_store_n(&r->window_offset_ns, offset_ns, __ATOMIC_RELEASE);
    __atomic_store_n(&r->epoch_ns, epoch_ns, __ATOMIC_RELEASE);
    __atomic_store_n(&r->window_len_ns, len_ns, __ATOMIC_RELEASE);
    write_end(r);
    return 1;
}

uint64_t gm_region_read_schedule(const struct gm_region *r, struct gm_region_schedule *s)
{
    for (int tries = 0;; tries++) {
        uint64_t gen = __atomic_load_n(&r->generation, __ATOMIC_ACQUIRE);
        /* Acquire loads keep the second read of the generation after them. */
        s->flags = __atomic_load_n(&r->flags, __ATOMIC_ACQUIRE);
        s->compute_pct = __atomic_load_n(&r->compute_pct, __ATOMIC_ACQUIRE);
        s->period_ns = __atomic_load_n(&r->period_ns, __ATOMIC_ACQUIRE);
        s->offset_ns = __atomic_load_n(&r->window_offset_ns, __ATOMIC_ACQUIRE);
        s->len_ns = __atomic_load_n(&r->window_len_ns, __ATOMIC_ACQUIRE);
        s->epoch_ns = __atomic_load_n(&r->epoch_ns, __ATOMIC_ACQUIRE);
        uint64_t again = __atomic_load_n(&r->generation, __ATOMIC_RELAXED);
        if (again == gen && ((gen & 1) == 0 || tries >= READ_RETRIES))
            return gen;
    }
}
