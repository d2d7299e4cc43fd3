/* This process's side of the workload's region: attaching it, its slot, and the lock. The
 * layout, the lock's repair, the slots and the liveness rule are src/region's. */
#include "interpose/interpose.h"
#include "common/proc.h"
#include "region/region.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct gm_region *gm_ip_region;
char gm_ip_region_path[PATH_MAX];
/* The slot this process claimed (-1: none), and what it must still hold to be ours: the
 * daemon's reaper may have freed it and another process claimed it since. */
static int slot_index = -1;
static uint32_t my_pid;
static uint64_t my_start;
/* Bytes this process has charged, so that a slot claimed again carries them. Guarded by the
 * region lock. */
static uint64_t my_held;
static int lock_broken_said;

int gm_ip_region_attach(const char *path, struct gm_error *err)
{
    struct gm_region *r;
    int rc = gm_region_attach(path, &r, err);
    if (rc < 0)
        return rc;
    snprintf(gm_ip_region_path, sizeof(gm_ip_region_path), "%s", path);
    gm_ip_region = r;
    return 0;
}

int gm_ip_region_lock(void)
{
    struct gm_region *r = gm_ip_region;
    if (r == NULL)
        return -GM_ENOTFOUND;
    int rc = gm_region_lock(r, GM_REGION_WAIT);
    if (rc != 0) {
        if (!__atomic_exchange_n(&lock_broken_said, 1, __ATOMIC_RELAXED))
            gm_ip_say("limits region %s: its lock is unusable: memory is not counted", r->workload);
        return rc;
    }
    return 0;
}

void gm_ip_region_unlock(void)
{
    gm_region_unlock(gm_ip_region);
}

void gm_ip_region_sweep_locked(void)
{
    gm_region_repair_locked(gm_ip_region);
}

int gm_ip_slot_locked(void)
{
    struct gm_region *r = gm_ip_region;
    int i = __atomic_load_n(&slot_index, __ATOMIC_ACQUIRE);
    if (i < 0 || gm_region_slot_holds(r, i, my_pid, my_start))
        return i;
    /* Not ours any more (freed, perhaps claimed by another process): what the slot counted
     * for us left the total with it, so a new slot takes our holdings back. */
    i = gm_region_slot_claim_locked(r, my_pid, my_start, my_held);
    __atomic_store_n(&slot_index, i, __ATOMIC_RELEASE);
    return i;
}

struct gm_region_proc *gm_ip_slot(void)
{
    struct gm_region *r = gm_ip_region;
    int i = __atomic_load_n(&slot_index, __ATOMIC_ACQUIRE);
    if (r == NULL || i < 0)
        return NULL;
    if (!gm_region_slot_holds(r, i, my_pid, my_start)) {
        if (gm_ip_region_lock() != 0)
            return NULL;
        i = gm_ip_slot_locked();
        gm_ip_region_unlock();
        if (i < 0)
            return NULL;
    }
    return &r->procs[i];
}

void gm_ip_charge_locked(uint64_t size)
{
    int i = gm_ip_slot_locked();
    gm_region_charge_locked(gm_ip_region, i, size);
    my_held += size;
}

void gm_ip_uncharge_locked(uint64_t size)
{
    int i = gm_ip_slot_locked();
    gm_region_uncharge_locked(gm_ip_region, i, size);
    my_held -= size < my_held ? size : my_held;
}

void gm_ip_region_claim(void)
{
    struct gm_region *r = gm_ip_region;
    __atomic_store_n(&slot_index, -1, __ATOMIC_RELEASE);
    if (r == NULL)
        return;
    /* Also the first thing a forked child does: it holds none of its parent's memory. */
    my_pid = (uint32_t)getpid();
    my_start = gm_proc_start_time((pid_t)my_pid);
    my_held = 0;
    if (gm_ip_region_lock() != 0)
        return;
    int i = gm_region_slot_claim_locked(r, my_pid, my_start, 0);
    gm_ip_region_unlock();
    if (i < 0)
        gm_ip_say("limits region %s: all %d process slots are taken: this process's memory is "
                  "counted in the workload's total only",
                  r->workload, GM_REGION_MAX_PROCS);
    __atomic_store_n(&slot_index, i, __ATOMIC_RELEASE);
}

void gm_ip_region_release(void)
{
    struct gm_region *r = gm_ip_region;
    int i = __atomic_load_n(&slot_index, __ATOMIC_ACQUIRE);
    if (r == NULL || i < 0 || (uint32_t)getpid() != my_pid)
        return;
    if (gm_ip_region_lock() != 0)
        return;
    /* Only a slot that is still ours: another process's is none of our business. */
    if (gm_region_slot_holds(r, i, my_pid, my_start))
        gm_region_slot_release_locked(r, i);
    __atomic_store_n(&slot_index, -1, __ATOMIC_RELEASE);
    gm_ip_region_unlock();
}
