/* The workload's shared region: attach, the process slot, and the robust lock. */
#include "interpose/interpose.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct gm_region *gm_ip_region;
static int slot_index = -1;
static uint32_t my_pid;
static int lock_broken_said;

uint64_t gm_ip_proc_start_time(uint32_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%u/stat", pid);
    /* open/read, not stdio: this also runs in a forked child of a threaded program. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    p++;
    /* Field 3 follows; field 22 is 19 further. */
    for (int field = 2; field < 21 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL)
        return 0;
    unsigned long long v = 0;
    if (sscanf(p + 1, "%llu", &v) != 1)
        return 0;
    return v;
}

/* A pid whose start time cannot be read (hidepid, another namespace) is assumed alive: freeing
 * the slot of a live process would let the workload past its limit. */
static int proc_alive(uint32_t pid, uint64_t start_time)
{
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    uint64_t st = gm_ip_proc_start_time(pid);
    return st == 0 || start_time == 0 || st == start_time;
}

int gm_ip_region_attach(const char *path, char *why, size_t whylen)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size < sizeof(struct gm_region)) {
        snprintf(why, whylen, "%s: %lld bytes, a region has %zu", path, (long long)st.st_size,
                 sizeof(struct gm_region));
        close(fd);
        return -1;
    }
    void *m = mmap(NULL, sizeof(struct gm_region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(why, whylen, "%s: mmap: %s", path, strerror(map_errno));
        return -1;
    }
    struct gm_region *r = m;
    uint32_t magic = __atomic_load_n(&r->magic, __ATOMIC_ACQUIRE);
    if (magic != GM_REGION_MAGIC)
        snprintf(why, whylen, "%s: bad magic 0x%08x", path, magic);
    else if (r->version != GM_REGION_VERSION)
        snprintf(why, whylen, "%s: layout version %u, this library reads version %u", path,
                 r->version, GM_REGION_VERSION);
    else if (r->size != sizeof(struct gm_region))
        snprintf(why, whylen, "%s: header says %u bytes, this library's region has %zu", path,
                 r->size, sizeof(struct gm_region));
    else {
        gm_ip_region = r;
        return 0;
    }
    munmap(m, sizeof(struct gm_region));
    return -1;
}

/* Caller holds the lock. Drops the slots of dead processes and makes mem_used the sum of the
 * live slots again: whatever a dead holder left half-done, the slots are the truth. */
static void repair_locked(struct gm_region *r)
{
    uint64_t sum = 0;
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++) {
        struct gm_region_proc *p = &r->procs[i];
        uint32_t pid = __atomic_load_n(&p->pid, __ATOMIC_RELAXED);
        if (pid == 0)
            continue;
        if (pid != my_pid && !proc_alive(pid, p->start_time)) {
            memset(p, 0, sizeof(*p));
            continue;
        }
        sum += p->mem_used;
    }
    r->mem_used = sum;
}

void gm_ip_region_sweep_locked(void)
{
    repair_locked(gm_ip_region);
}

int gm_ip_region_lock(void)
{
    struct gm_region *r = gm_ip_region;
    if (r == NULL)
        return -1;
    int rc = pthread_mutex_lock(&r->lock);
    if (rc == EOWNERDEAD) {
        repair_locked(r);
        pthread_mutex_consistent(&r->lock);
        rc = 0;
    }
    if (rc != 0) {
        if (!__atomic_exchange_n(&lock_broken_said, 1, __ATOMIC_RELAXED))
            gm_ip_say("limits region lock unusable (%s): memory is not counted", strerror(rc));
        return -1;
    }
    return 0;
}

void gm_ip_region_unlock(void)
{
    pthread_mutex_unlock(&gm_ip_region->lock);
}

struct gm_region_proc *gm_ip_slot(void)
{
    int i = __atomic_load_n(&slot_index, __ATOMIC_ACQUIRE);
    return i >= 0 && gm_ip_region != NULL ? &gm_ip_region->procs[i] : NULL;
}

static int find_slot_locked(struct gm_region *r, uint32_t pid, uint64_t start)
{
    /* Our own pid and start time: the image before an exec, whose memory the driver freed. */
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
        if (r->procs[i].pid == pid && r->procs[i].start_time == start)
            return i;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < GM_REGION_MAX_PROCS; i++)
            if (r->procs[i].pid == 0)
                return i;
        if (pass == 0)
            repair_locked(r);
    }
    return -1;
}

void gm_ip_region_claim(void)
{
    struct gm_region *r = gm_ip_region;
    __atomic_store_n(&slot_index, -1, __ATOMIC_RELEASE);
    if (r == NULL)
        return;
    my_pid = (uint32_t)getpid();
    uint64_t start = gm_ip_proc_start_time(my_pid);
    if (gm_ip_region_lock() != 0)
        return;
    int i = find_slot_locked(r, my_pid, start);
    if (i >= 0) {
        struct gm_region_proc *p = &r->procs[i];
        r->mem_used -= p->mem_used < r->mem_used ? p->mem_used : r->mem_used;
        memset(p, 0, sizeof(*p));
        p->start_time = start;
        __atomic_store_n(&p->pid, my_pid, __ATOMIC_RELEASE);
    }
    gm_ip_region_unlock();
    if (i < 0)
        gm_ip_say("limits region %s: all %d process slots are taken: this process's memory is "
                  "counted in the workload's total only",
                  r->workload, GM_REGION_MAX_PROCS);
    __atomic_store_n(&slot_index, i, __ATOMIC_RELEASE);
}

void gm_ip_region_release(void)
{
    struct gm_region_proc *p = gm_ip_slot();
    if (p == NULL || (uint32_t)getpid() != my_pid)
        return;
    if (gm_ip_region_lock() != 0)
        return;
    struct gm_region *r = gm_ip_region;
    r->mem_used -= p->mem_used < r->mem_used ? p->mem_used : r->mem_used;
    memset(p, 0, sizeof(*p));
    __atomic_store_n(&slot_index, -1, __ATOMIC_RELEASE);
    gm_ip_region_unlock();
}
