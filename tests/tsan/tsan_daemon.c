/* The daemon's core under concurrent callers, as the API's connection threads and the poll loop
 * call it: creates, stops, starts, deletes, limit changes and mode changes race each other and
 * the reconciler for a few seconds on an in-process daemon over gpusim. Built into every build
 * and run under ThreadSanitizer by `make test` (label tsan), where a data race or a lock-order
 * inversion fails it; in every build it checks that the records end consistent. */
#include "tsan.h"
#include "common/log.h"
#include "common/parse.h"
#include "daemon/daemon.h"
#include "daemon/mps.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_MS 3000

static struct gm_daemon d;
static atomic_int done, poll_done;
static atomic_int operations;

/* Errors the races may legitimately produce: a name taken, a GPU changing mode, a workload
 * still stopping. Anything else is a failure. */
static int expected(const struct gm_error *e)
{
    return e->code == GM_ECONFLICT || e->code == GM_EBUSY || e->code == GM_ENOTFOUND ||
           e->code == GM_ENOSPACE;
}

static void *lifecycle(void *arg)
{
    int id = (int)(intptr_t)arg;
    char *argv[] = {"/bin/sleep", "30", NULL};
    for (int round = 0; !atomic_load(&done); round++) {
        char name[64];
        snprintf(name, sizeof(name), "t%d-w%d", id, round % 4);
        struct gm_run_request r = {
            .name = name,
            .argv = argv,
            .gpu = id % 2 ? "1" : "0",
            .memory_limit = (round % 3 == 0) ? 64 * GM_MIB : 0,
            .compute_pct = (round % 2 == 0) ? 30 : 0,
            .uid = (int)getuid(),
            .gid = (int)getgid(),
        };
        struct gm_workload_rec w;
        struct gm_error e;
        if (gm_workload_create(&d, &r, &w, &e) == 0)
            gm_workload_rec_free(&w);
        else
            CHECK(expected(&e), "create %s: %s", name, e.msg);
        struct gm_limits_outcome lo;
        if (gm_workload_set_limits(&d, name, 20, UINT64_MAX, NULL, &lo, &e) < 0)
            CHECK(expected(&e) || e.code == GM_EINVAL, "set %s: %s", name, e.msg);
        if (gm_workload_stop(&d, name, -1, NULL, &e) < 0)
            CHECK(expected(&e), "stop %s: %s", name, e.msg);
        if (round % 2 && gm_workload_start(&d, name, NULL, &e) < 0)
            CHECK(expected(&e), "start %s: %s", name, e.msg);
        if (round % 3 == 2 && gm_workload_delete(&d, name, NULL, &e) < 0)
            CHECK(expected(&e), "delete %s: %s", name, e.msg);
        atomic_fetch_add(&operations, 1);
    }
    return NULL;
}

static void *modes(void *arg)
{
    (void)arg;
    for (int round = 0; !atomic_load(&done); round++) {
        struct gm_mode_outcome o;
        struct gm_error e;
        enum gm_mode m = round % 2 ? GM_MODE_SHARED : GM_MODE_MPS;
        if (gm_gpu_set_mode(&d, "1", m, GM_ON_BUSY_RESTART, &o, &e) == 0)
            gm_mode_outcome_free(&o);
        else
            CHECK(expected(&e), "mode: %s", e.msg);
        atomic_fetch_add(&operations, 1);
    }
    return NULL;
}

/* What `gpumux ps` does: read every record under the lock. */
static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&done)) {
        struct gm_workload_rec *ws = NULL;
        size_t n = 0;
        pthread_mutex_lock(&d.lock);
        int rc = gm_store_workload_list(d.store, &ws, &n, NULL);
        pthread_mutex_unlock(&d.lock);
        CHECK(rc == 0, "list failed");
        gm_workload_list_free(ws, n);
        usleep(1000);
    }
    return NULL;
}

static void *poller(void *arg)
{
    (void)arg;
    gm_reconcile(&d, 1);
    while (!atomic_load(&poll_done)) {
        gm_reconcile(&d, 0);
        usleep(20000);
    }
    return NULL;
}

int main(void)
{
    const char *build = getenv("GM_BUILD_DIR");
    if (build == NULL) {
        fprintf(stderr, "GM_BUILD_DIR must name the build directory\n");
        return 2;
    }
    char tmp[] = "/tmp/gm-tsan-XXXXXX";
    if (mkdtemp(tmp) == NULL)
        return 2;
    gm_log_set_level(GM_LOG_ERROR);
    gm_config_defaults(&d.cfg);
    struct gm_error err;
    char v[PATH_MAX], bin[PATH_MAX];
    snprintf(v, sizeof(v), "%s/state", tmp);
    gm_config_set(&d.cfg, "state_dir", v, "test", &err);
    snprintf(v, sizeof(v), "%s/run", tmp);
    gm_config_set(&d.cfg, "run_dir", v, "test", &err);
    snprintf(v, sizeof(v), "%s/logs", tmp);
    gm_config_set(&d.cfg, "log_dir", v, "test", &err);
    snprintf(v, sizeof(v), "%s/gpusim.state", tmp);
    gm_config_set(&d.cfg, "gpusim_state", v, "test", &err);
    gm_config_set(&d.cfg, "driver", "sim", "test", &err);
    gm_config_set(&d.cfg, "stop_timeout", "1", "test", &err);
    /* Workload names repeat between test programs run at once: no shared cgroup parent. */
    gm_config_set(&d.cfg, "cgroup_root", "none", "test", &err);
    snprintf(bin, sizeof(bin), "%s/bin", build);
    /* Workloads run without the interposer: it would be loaded into uninstrumented programs. */
    gm_config_set(&d.cfg, "interposer", "/nonexistent/libgpumux.so", "test", &err);
    if (gm_config_finish(&d.cfg, bin, &err) < 0 || gm_daemon_open(&d, bin, &err) < 0) {
        fprintf(stderr, "cannot open the daemon: %s\n", err.msg);
        return 1;
    }

    pthread_t th[5];
    pthread_create(&th[0], NULL, lifecycle, (void *)(intptr_t)0);
    pthread_create(&th[1], NULL, lifecycle, (void *)(intptr_t)1);
    pthread_create(&th[2], NULL, modes, NULL);
    pthread_create(&th[3], NULL, reader, NULL);
    pthread_create(&th[4], NULL, poller, NULL);
    usleep(RUN_MS * 1000);
    atomic_store(&done, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);

    /* Everything is deleted again, the poller still running as in the daemon; the records must
     * then be empty and no launch in flight. */
    struct gm_workload_rec *ws = NULL;
    size_t n = 0;
    pthread_mutex_lock(&d.lock);
    int lrc = gm_store_workload_list(d.store, &ws, &n, &err);
    pthread_mutex_unlock(&d.lock);
    CHECK(lrc == 0, "final list: %s", err.msg);
    for (size_t i = 0; i < n; i++) {
        struct gm_error e;
        if (getenv("GM_TSAN_DEBUG"))
            fprintf(stderr, "deleting %s (%s)\n", ws[i].name, gm_wstate_name(ws[i].state));
        CHECK(gm_workload_delete(&d, ws[i].name, NULL, &e) == 0, "final delete %s: %s", ws[i].name,
              e.msg);
    }
    gm_workload_list_free(ws, n);
    size_t left = 99;
    pthread_mutex_lock(&d.lock);
    gm_store_workload_count(d.store, &left, NULL);
    for (size_t i = 0; i < d.nwmem; i++)
        CHECK(!d.wmem[i].launching, "%s still marked launching", d.wmem[i].name);
    pthread_mutex_unlock(&d.lock);
    if (left != 0) {
        pthread_mutex_lock(&d.lock);
        gm_store_workload_list(d.store, &ws, &n, NULL);
        pthread_mutex_unlock(&d.lock);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "left: %s state %s launch %lld\n", ws[i].name,
                    gm_wstate_name(ws[i].state), (long long)ws[i].launch_id);
        gm_workload_list_free(ws, n);
    }
    CHECK(left == 0, "%zu workloads left after deleting all", left);
    atomic_store(&poll_done, 1);
    pthread_join(th[4], NULL);
    CHECK(atomic_load(&operations) > 10, "only %d operations ran", atomic_load(&operations));

    struct gm_gpu_rec g;
    pthread_mutex_lock(&d.lock);
    struct gm_gpu_rec *gpus = NULL;
    size_t ng = 0;
    gm_store_gpu_list(d.store, &gpus, &ng, NULL);
    pthread_mutex_unlock(&d.lock);
    for (size_t i = 0; i < ng; i++) {
        /* Whatever the records say: no control daemon outlives the test. */
        g = gpus[i];
        struct gm_mps_outcome o;
        gm_mps_stop(&d, &g, &o);
    }
    free(gpus);
    gm_daemon_close(&d);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    printf("%d operations\n", atomic_load(&operations));
    return tsan_finish();
}
