/* The limits region under concurrent use, as it is used: the daemon's writer changes limits and
 * windows and sweeps slots (bounded lock), readers take the schedule through the seqlock, and
 * the threads of a workload claim slots and charge and uncharge memory under the robust lock.
 * Checks that every schedule read is one a writer wrote (never a mix of two), that the total
 * is the sum of the slots, and that nothing is left charged at the end. Run under
 * ThreadSanitizer by `make test` (label tsan) and in every build. */
#include "tsan.h"
#include "common/clock.h"
#include "region/region.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_NS  (2000ull * 1000 * 1000)
#define WORKERS 4
#define PERIOD  (100ull * 1000 * 1000)
#define ROUNDS  5 /* schedules the writer cycles through */

static struct gm_region *r;
static atomic_int done;
static atomic_long reads, charges;

/* Schedule k: offset and length tie to the cap, so a read mixing two writes is seen. */
static uint32_t cap_of(int k)
{
    return (uint32_t)(10 + 20 * k);
}

static void *writer(void *arg)
{
    (void)arg;
    for (int k = 0; !atomic_load(&done); k = (k + 1) % ROUNDS) {
        uint32_t cap = cap_of(k);
        gm_region_set_limits(r, 64ull << 20, cap, 0);
        gm_region_set_window(r, PERIOD, cap * 1000ull, PERIOD * cap / 100, 0);
        int n = gm_region_reap(r, GM_REGION_DAEMON_LOCK_NS);
        CHECK(n >= 0 || n == -GM_EBUSY, "reap: %d", n);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&done)) {
        struct gm_region_schedule s;
        uint64_t gen = gm_region_read_schedule(r, &s);
        if ((gen & 1) == 0 && s.len_ns != 0) {
            /* Each field must come from the same write. */
            CHECK(s.offset_ns == s.len_ns * 100 / PERIOD * 1000ull,
                  "torn window: offset %llu, length %llu", (unsigned long long)s.offset_ns,
                  (unsigned long long)s.len_ns);
        }
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

/* A workload thread: its own slot (a made-up pid and start time of this process), memory
 * charged and uncharged under the lock. */
static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint32_t pid = (uint32_t)getpid();
    uint64_t start = 1000 + (uint64_t)id; /* distinct pairs: distinct slots */
    int slot = -1;
    uint64_t held = 0;
    while (!atomic_load(&done)) {
        CHECK(gm_region_lock(r, GM_REGION_WAIT) == 0, "lock");
        if (!gm_region_slot_holds(r, slot, pid, start))
            slot = gm_region_slot_claim_locked(r, pid, start, held);
        gm_region_charge_locked(r, slot, 4096);
        held += 4096;
        gm_region_unlock(r);
        atomic_fetch_add(&charges, 1);

        CHECK(gm_region_lock(r, GM_REGION_WAIT) == 0, "lock");
        gm_region_uncharge_locked(r, slot, 4096);
        held -= 4096;
        gm_region_unlock(r);
    }
    CHECK(gm_region_lock(r, GM_REGION_WAIT) == 0, "lock");
    if (gm_region_slot_holds(r, slot, pid, start))
        gm_region_slot_release_locked(r, slot);
    gm_region_unlock(r);
    return NULL;
}

int main(void)
{
    char dir[] = "/tmp/gm-tsan-region-XXXXXX", path[64];
    struct gm_error err = {0};
    if (mkdtemp(dir) == NULL)
        return 2;
    snprintf(path, sizeof(path), "%s/w.region", dir);
    struct gm_region_init init = {.workload = "w",
                                  .gpu_uuid = "GPU-x",
                                  .memory_limit = 64ull << 20,
                                  .compute_pct = 10,
                                  .uid = (uid_t)-1,
                                  .gid = (gid_t)-1};
    if (gm_region_create(path, &init, &r, &err) < 0) {
        fprintf(stderr, "create: %s\n", err.msg);
        return 1;
    }
    pthread_t w, rd[2], wk[WORKERS];
    pthread_create(&w, NULL, writer, NULL);
    for (int i = 0; i < 2; i++)
        pthread_create(&rd[i], NULL, reader, NULL);
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&wk[i], NULL, worker, (void *)(intptr_t)i);
    gm_sleep_until_ns(gm_mono_ns() + RUN_NS);
    atomic_store(&done, 1);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(wk[i], NULL);

    CHECK(gm_region_lock(r, GM_REGION_WAIT) == 0, "lock");
    uint64_t sum = 0;
    int used = 0;
    for (int i = 0; i < GM_REGION_MAX_PROCS; i++) {
        sum += r->procs[i].mem_used;
        used += r->procs[i].pid != 0;
    }
    CHECK(r->mem_used == sum, "total %llu, slots %llu", (unsigned long long)r->mem_used,
          (unsigned long long)sum);
    CHECK(r->mem_used == 0, "%llu bytes left charged", (unsigned long long)r->mem_used);
    CHECK(used == 0, "%d slots left taken", used);
    gm_region_unlock(r);
    CHECK(atomic_load(&reads) > 100 && atomic_load(&charges) > 100, "%ld reads, %ld charges",
          atomic_load(&reads), atomic_load(&charges));
    gm_region_detach(r);
    unlink(path);
    rmdir(dir);
    printf("%ld schedule reads, %ld charges\n", atomic_load(&reads), atomic_load(&charges));
    return tsan_finish();
}
