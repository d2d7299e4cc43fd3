#include "gpusim/state/state.h"

#include "common/clock.h"
#include "gpusim/state/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The prefix of the state that is read before mapping, to refuse a foreign file clearly. */
struct header {
    char magic[8];
    uint32_t layout;
    uint32_t size;
};

const char *gm_sim_state_path(void)
{
    const char *p = getenv("GPUSIM_STATE");
    return p != NULL && p[0] != '\0' ? p : GM_SIM_DEFAULT_STATE;
}

const char *gm_sim_config_path(void)
{
    const char *p = getenv("GPUSIM_CONFIG");
    return p != NULL && p[0] != '\0' ? p : NULL;
}

static int init_mutex(pthread_mutex_t *m, struct gm_error *err)
{
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc == 0)
        rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc == 0 ? 0 : gm_err_errno(err, GM_EINTERNAL, rc, "gpusim state: mutex");
}

static void fill(struct gm_sim_state *st, const struct gm_sim_config *cfg, const char *config)
{
    st->layout = GM_SIM_LAYOUT;
    st->size = sizeof(*st);
    memcpy(st->driver_version, cfg->driver_version, sizeof(st->driver_version));
    memcpy(st->cuda_version, cfg->cuda_version, sizeof(st->cuda_version));
    st->cuda_version_int = cfg->cuda_version_int;
    snprintf(st->config, sizeof(st->config), "%s", config != NULL ? config : "");
    st->ngpus = (uint32_t)cfg->ngpus;
    for (int i = 0; i < cfg->ngpus; i++) {
        struct gm_sim_gpu *g = &st->gpus[i];
        g->info = cfg->gpus[i];
        g->compute_mode = 0;
        g->persistence = 1; /* the appliance runs the persistence daemon */
        g->temp_pinned = -1;
        g->temp_ts_ns = 0;
        struct gm_sim_reading r;
        gm_sim_model_update_locked(g, &r); /* starts the thermal model at its idle temperature */
    }
}

/* Map the whole state file. */
static int map(int fd, const char *path, struct gm_sim_state **out, struct gm_error *err)
{
    void *p = mmap(NULL, sizeof(struct gm_sim_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return gm_err_errno(err, GM_EIO, errno, "gpusim state %s: mmap", path);
    *out = p;
    return 0;
}

/* Caller holds the flock. The file is empty or a half-initialised leftover. The state is built
 * in private memory and written with pwrite, so that creating it needs no mapping (the private
 * view creates it too). out: mapped afterwards when not NULL. */
static int initialise(int fd, const char *path, const char *config, struct gm_sim_state **out,
                      struct gm_error *err)
{
    struct gm_sim_config *cfg = malloc(sizeof(*cfg));
    struct gm_sim_state *st = calloc(1, sizeof(*st));
    int rc = 0;
    if (cfg == NULL || st == NULL)
        rc = gm_err(err, GM_ENOMEM, "gpusim state %s: out of memory", path);
    else if (config != NULL)
        rc = gm_sim_config_load(config, cfg, err);
    else
        gm_sim_config_defaults(cfg);
    if (rc == 0)
        rc = init_mutex(&st->lock, err);
    if (rc < 0)
        goto out;
    fill(st, cfg, config);
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, sizeof(*st)) < 0 ||
        pwrite(fd, st, sizeof(*st), 0) != (ssize_t)sizeof(*st)) {
        rc = gm_err_errno(err, GM_EIO, errno, "gpusim state %s: writing", path);
        goto fail;
    }
    /* Processes of other users (workloads) use the device too, as they do /dev/nvidia*. */
    (void)fchmod(fd, 0666);
    /* The magic goes last: whoever sees it sees the whole state. */
    if (pwrite(fd, GM_SIM_MAGIC, sizeof(st->magic), 0) != (ssize_t)sizeof(st->magic)) {
        rc = gm_err_errno(err, GM_EIO, errno, "gpusim state %s: writing", path);
        goto fail;
    }
    if (out != NULL)
        rc = map(fd, path, out, err);
    goto out;
fail:
    (void)ftruncate(fd, 0); /* the next user starts over */
out:
    free(st);
    free(cfg);
    return rc;
}

/* Caller holds the flock; the file is not empty. 1 when it was never fully initialised. */
static int check_header(int fd, const char *path, off_t size, struct gm_error *err)
{
    struct header h;
    memset(&h, 0, sizeof(h));
    if (size >= (off_t)sizeof(h) && pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return gm_err_errno(err, GM_EIO, errno, "gpusim state %s: reading", path);
    static const char zero[8];
    if (size == (off_t)sizeof(struct gm_sim_state) && memcmp(h.magic, zero, 8) == 0)
        return 1;
    if (memcmp(h.magic, GM_SIM_MAGIC, 8) != 0)
        return gm_err(err, GM_EINVAL,
                      "gpusim state %s: not a gpusim state file; remove it or point "
                      "GPUSIM_STATE elsewhere",
                      path);
    if (h.layout != GM_SIM_LAYOUT || h.size != sizeof(struct gm_sim_state) ||
        size != (off_t)sizeof(struct gm_sim_state))
        return gm_err(err, GM_EINVAL,
                      "gpusim state %s: layout %u of %u bytes, this gpusim uses layout %u of "
                      "%zu bytes; run `gpusimctl reset` to re-create it",
                      path, h.layout, h.size, GM_SIM_LAYOUT, sizeof(struct gm_sim_state));
    return 0;
}

/* out NULL: the file is checked (and created) but not mapped. */
static int attach_locked(int fd, const char *path, const char *config, struct gm_sim_state **out,
                         struct gm_error *err)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return gm_err_errno(err, GM_EIO, errno, "gpusim state %s", path);
    int fresh = sb.st_size == 0;
    if (!fresh) {
        int rc = check_header(fd, path, sb.st_size, err);
        if (rc < 0)
            return rc;
        fresh = rc == 1;
    }
    if (fresh)
        return initialise(fd, path, config, out, err);
    return out != NULL ? map(fd, path, out, err) : 0;
}

/* Open path, creating it from config when needed; *fd_out: the open file when not NULL (the
 * private view keeps it), else closed. out: as attach_locked. */
int gm_sim_open_state(const char *path, const char *config, struct gm_sim_state **out, int *fd_out,
                      struct gm_error *err)
{
    /* A reset may unlink the file between our open and our flock: then the inode we locked is
     * no longer the one at path, and we open again. */
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0)
            return gm_err_errno(err, GM_EIO, errno, "gpusim state %s", path);
        if (flock(fd, LOCK_EX) < 0) {
            int e = errno;
            close(fd);
            return gm_err_errno(err, GM_EIO, e, "gpusim state %s: flock", path);
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            int rc = attach_locked(fd, path, config, out, err);
            /* Explicitly: the mapping keeps the open file, and with it the flock, alive. */
            flock(fd, LOCK_UN);
            if (rc == 0 && fd_out != NULL)
                *fd_out = fd;
            else
                close(fd);
            return rc;
        }
        close(fd);
    }
    return gm_err(err, GM_EBUSY, "gpusim state %s: keeps being replaced", path);
}

int gm_sim_attach_path(const char *path, const char *config, struct gm_sim_state **out,
                       struct gm_error *err)
{
    return gm_sim_open_state(path, config, out, NULL, err);
}

int gm_sim_attach(struct gm_sim_state **out, struct gm_error *err)
{
    return gm_sim_attach_path(gm_sim_state_path(), gm_sim_config_path(), out, err);
}

void gm_sim_detach(struct gm_sim_state *st)
{
    if (st != NULL)
        munmap(st, sizeof(*st));
}

int gm_sim_reset(const char *path, const char *config, struct gm_error *err)
{
    /* Validate first, so that a bad config does not cost the user the device they had. */
    struct gm_sim_config *cfg = malloc(sizeof(*cfg));
    if (cfg == NULL)
        return gm_err(err, GM_ENOMEM, "gpusim config: out of memory");
    int rc = config != NULL ? gm_sim_config_load(config, cfg, err) : 0;
    free(cfg);
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        (void)flock(fd, LOCK_EX); /* wait out a creator still initialising */
    if (unlink(path) < 0 && errno != ENOENT)
        rc = gm_err_errno(err, GM_EIO, errno, "gpusim state %s: removing", path);
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
    if (rc < 0)
        return rc;
    struct gm_sim_state *st;
    rc = gm_sim_attach_path(path, config, &st, err);
    if (rc == 0)
        gm_sim_detach(st);
    return rc;
}

int gm_sim_lock(struct gm_sim_state *st, struct gm_error *err)
{
    int rc = pthread_mutex_lock(&st->lock);
    if (rc == EOWNERDEAD) {
        /* The owner died mid-update. Every update leaves the table usable at each store except
         * for the count, so clamping it is enough to make the state consistent again. */
        for (uint32_t i = 0; i < st->ngpus && i < GM_SIM_MAX_GPUS; i++)
            if (st->gpus[i].nprocs > GM_SIM_MAX_PROCS)
                st->gpus[i].nprocs = GM_SIM_MAX_PROCS;
        if (st->ngpus > GM_SIM_MAX_GPUS)
            st->ngpus = GM_SIM_MAX_GPUS;
        rc = pthread_mutex_consistent(&st->lock);
    }
    if (rc != 0)
        return gm_err_errno(err, GM_EBUSY, rc, "gpusim state: lock");
    /* Odd from now on, and another number than before even when a dead owner left it odd. */
    /* A read-modify-write with acquire: no store of the update that follows can come before
     * it (a fence would do the same, but ThreadSanitizer does not support fences). */
    uint64_t seq = __atomic_load_n(&st->seq, __ATOMIC_RELAXED);
    __atomic_fetch_add(&st->seq, 1 + (seq & 1), __ATOMIC_ACQ_REL);
    return 0;
}

void gm_sim_unlock(struct gm_sim_state *st)
{
    __atomic_store_n(&st->seq, __atomic_load_n(&st->seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&st->lock);
}

int gm_sim_check_gpu(const struct gm_sim_state *st, int gpu, struct gm_error *err)
{
    if (gpu < 0 || (uint32_t)gpu >= st->ngpus)
        return gm_err(err, GM_ENOTFOUND, "GPU %d: no such GPU (gpusim has %u)", gpu, st->ngpus);
    return 0;
}

void gm_sim_timeline_advance_locked(struct gm_sim_timeline *t, uint64_t now_ns)
{
    uint64_t now_slot = now_ns / GM_SIM_SLOT_NS;
    uint64_t first = now_slot > GM_SIM_SLOT_HISTORY ? now_slot - GM_SIM_SLOT_HISTORY : 0;
    if (first <= t->first_slot)
        return;
    /* The slots that leave the past come back as the far future: empty. */
    uint64_t drop = first - t->first_slot;
    if (drop >= GM_SIM_SLOTS) {
        memset(t->used, 0, sizeof(t->used));
        memset(t->busy, 0, sizeof(t->busy));
    } else {
        for (uint64_t k = t->first_slot; k < first; k++) {
            t->used[k % GM_SIM_SLOTS] = 0;
            t->busy[k % GM_SIM_SLOTS] = 0;
        }
    }
    t->first_slot = first;
}

int gm_sim_timeline_util_locked(struct gm_sim_timeline *t, uint64_t now_ns)
{
    gm_sim_timeline_advance_locked(t, now_ns);
    uint64_t now_slot = now_ns / GM_SIM_SLOT_NS;
    const uint64_t window = 1000000000ull / GM_SIM_SLOT_NS;
    double busy = 0;
    for (uint64_t k = now_slot > window ? now_slot - window : 0; k < now_slot; k++) {
        float b = k >= t->first_slot ? t->busy[k % GM_SIM_SLOTS] : 0;
        if (b > 0 && b <= 1) /* what another writer left there need not be a fraction */
            busy += b;
    }
    int pct = (int)(busy * 100.0 / (double)window + 0.5);
    return pct > 100 ? 100 : pct;
}

/* While kernels run, and for the second after, utilisation is what the timeline measured, as
 * NVML's is; then it goes back to 0 and to whatever gpusimctl sets. */
void gm_sim_timeline_to_util_locked(struct gm_sim_gpu *g, struct gm_sim_timeline *t)
{
    if (t->last_end_ns == 0)
        return;
    uint64_t now = gm_mono_ns();
    g->util_gpu = gm_sim_timeline_util_locked(t, now);
    if (now > t->last_end_ns + 1000000000ull + GM_SIM_SLOT_NS) {
        g->util_gpu = 0;
        t->last_end_ns = 0;
    }
}

int gm_sim_gpu_snapshot(struct gm_sim_state *st, int gpu, struct gm_sim_gpu *out,
                        struct gm_sim_reading *reading, struct gm_error *err)
{
    int rc = gm_sim_check_gpu(st, gpu, err);
    if (rc == 0)
        rc = gm_sim_lock(st, err);
    if (rc < 0)
        return rc;
    struct gm_sim_gpu *g = &st->gpus[gpu];
    gm_sim_prune_locked(g);
    gm_sim_timeline_to_util_locked(g, &st->timelines[gpu]);
    struct gm_sim_reading r;
    gm_sim_model_update_locked(g, &r);
    if (out != NULL)
        memcpy(out, g, sizeof(*g));
    gm_sim_unlock(st);
    if (reading != NULL)
        *reading = r;
    return 0;
}
