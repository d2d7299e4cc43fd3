#include "region/region.h"
#include "common/clock.h"
#include "common/proc.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_RETRIES 1000

_Static_assert(offsetof(struct gm_region, usage_magic) == GM_REGION_LIMITS_SIZE,
               "the usage part starts right after the limits page");

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

int gm_region_limits_path(const char *path, char *buf, size_t len, struct gm_error *err)
{
    size_t n = strlen(path), sl = strlen(GM_REGION_SUFFIX);
    if (n >= sl && strcmp(path + n - sl, GM_REGION_SUFFIX) == 0)
        n -= sl;
    int k = snprintf(buf, len, "%.*s%s", (int)n, path, GM_REGION_LIMITS_SUFFIX);
    if (k < 0 || (size_t)k >= len) {
        if (len > 0)
            buf[0] = '\0';
        return gm_err(err, GM_EINVAL, "region %s: path too long", path);
    }
    return 0;
}

static void init_limits(struct gm_region *r, const struct gm_region_init *in)
{
    memset(r->limits_page, 0, sizeof(r->limits_page));
    r->version = GM_REGION_VERSION;
    r->size = sizeof(*r);
    r->flags = in->flags;
    copy_str(r->workload, sizeof(r->workload), in->workload);
    copy_str(r->gpu_uuid, sizeof(r->gpu_uuid), in->gpu_uuid);
    r->memory_limit = in->memory_limit;
    r->compute_pct = in->compute_pct;
    /* Last: until now an attacher sees no region at all. */
    __atomic_store_n(&r->magic, GM_REGION_LIMITS_MAGIC, __ATOMIC_RELEASE);
}

/* u points at the usage part's first byte (struct offset GM_REGION_LIMITS_SIZE). */
static int init_usage(unsigned char *u)
{
    struct gm_region *r = (struct gm_region *)(void *)(u - GM_REGION_LIMITS_SIZE);
    memset(u, 0, GM_REGION_USAGE_SIZE);
    r->usage_version = GM_REGION_VERSION;
    r->usage_size = (uint32_t)GM_REGION_USAGE_SIZE;
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc != 0)
        return rc;
    if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
        (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0)
        rc = pthread_mutex_init(&r->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (rc == 0)
        __atomic_store_n(&r->usage_magic, GM_REGION_MAGIC, __ATOMIC_RELEASE);
    return rc;
}

/* Makes one part as the temporary file tmp (PATH_MAX bytes) beside final: mode, size, contents
 * written through a mapping of its own, unmapped, then the owner (when chown_it). The caller
 * renames it over final, or removes it. */
static int make_part(const char *final, char *tmp, mode_t mode, size_t size, int chown_it,
                     const struct gm_region_init *in, int usage, struct gm_error *err)
{
    int n = snprintf(tmp, PATH_MAX, "%s.%ld.tmp", final, (long)getpid());
    if (n < 0 || n >= PATH_MAX)
        return gm_err(err, GM_EINVAL, "region %s: path too long", final);
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
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
    void *m = MAP_FAILED;
    if (fchmod(fd, mode) < 0) {
        e = errno;
        rc = gm_err_errno(err, GM_EIO, e, "region %s: mode", tmp);
    } else if (ftruncate(fd, (off_t)size) < 0) {
        e = errno;
        rc = gm_err_errno(err, GM_EIO, e, "region %s", tmp);
    } else if ((m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        e = errno;
        rc = gm_err_errno(err, GM_EIO, e, "mapping region %s", tmp);
    } else if (usage && (e = init_usage(m)) != 0) {
        rc = gm_err_errno(err, GM_EIO, e, "region %s: lock", tmp);
    } else if (!usage) {
        init_limits(m, in);
    }
    if (m != MAP_FAILED)
        munmap(m, size);
    /* The owner last: from here on its new owner could shrink it, and nothing of ours maps it. */
    if (rc == 0 && chown_it && geteuid() == 0 && fchown(fd, in->uid, in->gid) < 0) {
        e = errno;
        rc = gm_err_errno(err, GM_EIO, e, "region %s: owner", tmp);
    }
    close(fd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static int map_region(const char *path, int limits_writable, int with_usage, struct gm_region **out,
                      struct gm_error *err);

int gm_region_create(const char *path, const struct gm_region_init *in, struct gm_region **out,
                     struct gm_error *err)
{
    char lpath[PATH_MAX], ltmp[PATH_MAX], utmp[PATH_MAX];
    int rc = gm_region_limits_path(path, lpath, sizeof(lpath), err);
    if (rc == 0 && (rc = make_part(lpath, ltmp, 0644, GM_REGION_LIMITS_SIZE, 0, in, 0, err)) == 0 &&
        (rc = make_part(path, utmp, 0644, GM_REGION_USAGE_SIZE, 1, in, 1, err)) < 0)
        unlink(ltmp);
    /* Both parts are made before either name is replaced. */
    if (rc == 0 && rename(ltmp, lpath) < 0) {
        int e = errno;
        unlink(ltmp);
        unlink(utmp);
        rc = gm_err_errno(err, GM_EIO, e, "region %s", lpath);
    } else if (rc == 0 && rename(utmp, path) < 0) {
        int e = errno;
        unlink(utmp);
        rc = gm_err_errno(err, GM_EIO, e, "region %s", path);
    }
    if (rc == 0 && out != NULL)
        rc = map_region(path, 1, 1, out, err); /* the creator's: both parts writable */
    return rc;
}

/* Opens one part: O_NOFOLLOW, a regular file of at least size bytes. Returns the fd or a
 * negative GM_E* code; st receives its status. */
static int open_part(const char *path, int flags, size_t size, struct stat *st,
                     struct gm_error *err)
{
    int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return gm_err(err, GM_EPERM, "%s: a symbolic link, not followed", path);
        return gm_err_errno(err, code_of(e), e, "%s", path);
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return gm_err(err, GM_EINVAL, "%s: not a regular file", path);
    }
    if ((uint64_t)st->st_size < size) {
        /* Mapping past its end would fault on the first access. */
        close(fd);
        return gm_err(err, GM_EINVAL, "%s: %lld bytes, a region part has %zu", path,
                      (long long)st->st_size, size);
    }
    return fd;
}

static int check_header(const char *path, uint32_t magic, uint32_t want_magic, uint32_t version,
                        uint32_t size, size_t want_size, struct gm_error *err)
{
    if (magic != want_magic)
        return gm_err(err, GM_EINVAL, "%s: bad magic 0x%08x", path, magic);
    if (version != GM_REGION_VERSION)
        return gm_err(err, GM_EINVAL, "%s: layout version %u, this library reads version %u", path,
                      version, GM_REGION_VERSION);
    if (size != want_size)
        return gm_err(err, GM_EINVAL, "%s: header says %u bytes, this library's region has %zu",
                      path, size, want_size);
    return 0;
}

/* Maps the limits part (writable or not) and, when with_usage, the usage part after it, into
 * one reserved range of sizeof(struct gm_region). */
static int map_region(const char *path, int limits_writable, int with_usage, struct gm_region **out,
                      struct gm_error *err)
{
    char lpath[PATH_MAX];
    int rc = gm_region_limits_path(path, lpath, sizeof(lpath), err);
    if (rc < 0)
        return rc;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || GM_REGION_LIMITS_SIZE % (unsigned long)page != 0)
        return gm_err(err, GM_EINVAL,
                      "%s: the limits part (%u bytes) is not a whole number of "
                      "pages of %ld bytes",
                      path, GM_REGION_LIMITS_SIZE, page);
    struct stat lst, ust;
    int ufd = -1;
    if (with_usage && (ufd = open_part(path, O_RDWR, GM_REGION_USAGE_SIZE, &ust, err)) < 0)
        return ufd;
    int lfd =
        open_part(lpath, limits_writable ? O_RDWR : O_RDONLY, GM_REGION_LIMITS_SIZE, &lst, err);
    if (lfd < 0) {
        if (ufd >= 0)
            close(ufd);
        return lfd;
    }
    if (limits_writable && lst.st_uid != geteuid()) {
        close(lfd);
        if (ufd >= 0)
            close(ufd);
        return gm_err(err, GM_EPERM, "%s: owned by uid %u, not by this daemon's uid %u", lpath,
                      (unsigned)lst.st_uid, (unsigned)geteuid());
    }
    unsigned char *base = mmap(NULL, sizeof(struct gm_region), PROT_NONE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    int e = errno;
    if (base != MAP_FAILED &&
        mmap(base, GM_REGION_LIMITS_SIZE, PROT_READ | (limits_writable ? PROT_WRITE : 0),
             MAP_SHARED | MAP_FIXED, lfd, 0) == MAP_FAILED)
        e = errno, rc = -1;
    if (base != MAP_FAILED && rc == 0 && ufd >= 0 &&
        mmap(base + GM_REGION_LIMITS_SIZE, GM_REGION_USAGE_SIZE, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_FIXED, ufd, 0) == MAP_FAILED)
        e = errno, rc = -1;
    close(lfd);
    if (ufd >= 0)
        close(ufd);
    if (base == MAP_FAILED || rc < 0) {
        if (base != MAP_FAILED)
            munmap(base, sizeof(struct gm_region));
        return gm_err_errno(err, GM_EIO, e, "%s: mmap", path);
    }
    struct gm_region *r = (struct gm_region *)(void *)base;
    rc = check_header(lpath, __atomic_load_n(&r->magic, __ATOMIC_ACQUIRE), GM_REGION_LIMITS_MAGIC,
                      r->version, r->size, sizeof(struct gm_region), err);
    if (rc == 0 && with_usage)
        rc = check_header(path, __atomic_load_n(&r->usage_magic, __ATOMIC_ACQUIRE), GM_REGION_MAGIC,
                          r->usage_version, r->usage_size, GM_REGION_USAGE_SIZE, err);
    if (rc == 0) {
        *out = r;
        return 0;
    }
    munmap(base, sizeof(struct gm_region));
    return rc;
}

int gm_region_attach(const char *path, struct gm_region **out, struct gm_error *err)
{
    return map_region(path, 0, 1, out, err);
}

int gm_region_open_limits(const char *path, struct gm_region **out, struct gm_error *err)
{
    return map_region(path, 1, 0, out, err);
}

int gm_region_check_usage(const char *path, struct gm_error *err)
{
    struct stat st;
    int fd = open_part(path, O_RDONLY, GM_REGION_USAGE_SIZE, &st, err);
    if (fd < 0)
        return fd;
    uint32_t h[3];
    ssize_t n = pread(fd, h, sizeof(h), 0);
    int e = errno;
    close(fd);
    if (n != (ssize_t)sizeof(h))
        return gm_err_errno(err, GM_EIO, n < 0 ? e : EIO, "%s: reading its header", path);
    return check_header(path, h[0], GM_REGION_MAGIC, h[1], h[2], GM_REGION_USAGE_SIZE, err);
}

int gm_region_peer_open(const char *path, const char *name, struct gm_error *err)
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash != NULL ? (size_t)(slash - path) + 1 : 0;
    char peer[PATH_MAX];
    if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, "..") == 0)
        return gm_err(err, GM_EINVAL, "region peer '%s': not a workload name", name);
    int k = snprintf(peer, sizeof(peer), "%.*s%s%s", (int)dl, path, name, GM_REGION_SUFFIX);
    if (k < 0 || (size_t)k >= sizeof(peer))
        return gm_err(err, GM_EINVAL, "region peer %s: path too long", name);
    struct stat st;
    return open_part(peer, O_RDONLY, GM_REGION_USAGE_SIZE, &st, err);
}

int gm_region_peer_pace(int fd, struct gm_region_pace *out)
{
    uint32_t h[3];
    if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return -GM_EIO;
    if (check_header("", h[0], GM_REGION_MAGIC, h[1], h[2], GM_REGION_USAGE_SIZE, NULL) < 0)
        return -GM_EINVAL;
    off_t at = (off_t)(offsetof(struct gm_region, pace) - GM_REGION_LIMITS_SIZE);
    if (pread(fd, out, sizeof(*out), at) != (ssize_t)sizeof(*out))
        return -GM_EIO;
    return 0;
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
        /* Its holder died mid-update: the slots are repaired, and the pacing state, which
         * only the interposer's own decisions need, starts over with the next window. */
        gm_region_repair_locked(r);
        memset(&r->pace, 0, sizeof(r->pace));
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

int gm_region_set_peers(struct gm_region *r, const char *const *names, size_t n)
{
    union gm_region_name want[GM_REGION_MAX_PEERS];
    memset(want, 0, sizeof(want));
    if (n > GM_REGION_MAX_PEERS)
        n = GM_REGION_MAX_PEERS;
    for (size_t i = 0; i < n; i++)
        copy_str(want[i].s, sizeof(want[i].s), names[i]);
    int same = (__atomic_load_n(&r->generation, __ATOMIC_ACQUIRE) & 1) == 0 &&
               __atomic_load_n(&r->npeers, __ATOMIC_RELAXED) == n;
    for (size_t i = 0; same && i < GM_REGION_MAX_PEERS; i++)
        for (size_t j = 0; same && j < GM_REGION_NAME_MAX / 8; j++)
            same = __atomic_load_n(&r->peers[i].w[j], __ATOMIC_RELAXED) == want[i].w[j];
    if (same)
        return 0;
    write_begin(r);
    __atomic_store_n(&r->npeers, 0, __ATOMIC_RELEASE);
    for (size_t i = 0; i < GM_REGION_MAX_PEERS; i++)
        for (size_t j = 0; j < GM_REGION_NAME_MAX / 8; j++)
            __atomic_store_n(&r->peers[i].w[j], want[i].w[j], __ATOMIC_RELEASE);
    __atomic_store_n(&r->npeers, (uint32_t)n, __ATOMIC_RELEASE);
    write_end(r);
    return 1;
}

size_t gm_region_read_peers(const struct gm_region *r, union gm_region_name *names)
{
    for (int tries = 0;; tries++) {
        uint64_t gen = __atomic_load_n(&r->generation, __ATOMIC_ACQUIRE);
        uint32_t n = __atomic_load_n(&r->npeers, __ATOMIC_ACQUIRE);
        if (n > GM_REGION_MAX_PEERS)
            n = GM_REGION_MAX_PEERS;
        for (uint32_t i = 0; i < n; i++)
            for (size_t j = 0; j < GM_REGION_NAME_MAX / 8; j++)
                names[i].w[j] = __atomic_load_n(&r->peers[i].w[j], __ATOMIC_ACQUIRE);
        uint64_t again = __atomic_load_n(&r->generation, __ATOMIC_RELAXED);
        if (again == gen && ((gen & 1) == 0 || tries >= READ_RETRIES)) {
            for (uint32_t i = 0; i < n; i++)
                names[i].s[GM_REGION_NAME_MAX - 1] = '\0';
            return n;
        }
    }
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
