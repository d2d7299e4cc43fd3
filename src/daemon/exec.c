/* The executor: the effects the plans ask for, performed outside d->lock, and their outcomes
 * recorded under it. The records a plan changes are committed by its caller first (record
 * before act); here a launch is made, a signal sent, a wait done, and what came of it saved. */
#include "common/clock.h"
#include "common/logindex.h"
#include "common/log.h"
#include "common/path.h"
#include "daemon/daemon.h"
#include "daemon/mps.h"
#include "daemon/region.h"
#include "daemon/supervise.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* ---- memory-only state ------------------------------------------------------------------ */

const struct gm_wmem *gm_wmem_find(const struct gm_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nwmem; i++)
        if (strcmp(d->wmem[i].name, name) == 0)
            return &d->wmem[i];
    return NULL;
}

struct gm_wmem *gm_wmem_get(struct gm_daemon *d, const char *name)
{
    struct gm_wmem *m = (struct gm_wmem *)gm_wmem_find(d, name);
    if (m != NULL)
        return m;
    struct gm_wmem *nv = realloc(d->wmem, (d->nwmem + 1) * sizeof(*nv));
    if (nv == NULL)
        return NULL;
    d->wmem = nv;
    m = &d->wmem[d->nwmem++];
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", name);
    return m;
}

void gm_wmem_forget(struct gm_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nwmem; i++) {
        if (strcmp(d->wmem[i].name, name) == 0) {
            if (d->wmem[i].launching)
                return; /* its launch still records its outcome */
            d->wmem[i] = d->wmem[--d->nwmem];
            return;
        }
    }
}

static void set_launching(struct gm_daemon *d, const char *name, int on)
{
    struct gm_wmem *m = gm_wmem_get(d, name);
    if (m != NULL)
        m->launching = on;
}

/* ---- launches --------------------------------------------------------------------------- */

/* Everything a launch needs, read under the lock. */
struct launch_snapshot {
    struct gm_workload_rec w;
    struct gm_gpu_rec g;
    int have_gpu;
};

static int take_snapshot(struct gm_daemon *d, const char *name, int64_t launch_id,
                         struct launch_snapshot *s, struct gm_error *err)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &s->w, err);
    if (rc == 0 && (s->w.launch_id != launch_id || s->w.state != GM_W_STARTING))
        rc = gm_err(err, GM_ECONFLICT, "workload %s changed before launch %lld was made", name,
                    (long long)launch_id);
    if (rc == 0 && s->w.ngpus == 1)
        s->have_gpu = gm_store_gpu_get(d->store, s->w.gpus[0], &s->g, NULL) == 0;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* Prepares the region of a limited workload; returns its path in buf, or NULL when it runs
 * without one (said in the log). */
static const char *prepare_region(struct gm_daemon *d, const struct launch_snapshot *s, char *buf,
                                  size_t len)
{
    if (!s->have_gpu || !gm_plan_needs_region(&s->w))
        return NULL;
    if (access(d->cfg.interposer, R_OK) != 0) {
        gm_warn("workload %s: %s is missing: its limits are not enforced in-process", s->w.name,
                d->cfg.interposer);
        return NULL;
    }
    struct gm_error err = {0};
    pthread_mutex_lock(&d->region_lock);
    int rc = gm_region_path(d, s->w.name, buf, len);
    if (rc == 0)
        rc = gm_region_prepare(d, &s->w, s->g.mode == GM_MODE_MPS, &err);
    pthread_mutex_unlock(&d->region_lock);
    if (rc < 0) {
        gm_warn("workload %s: its limits region: %s", s->w.name,
                err.msg[0] ? err.msg : "its path is too long");
        return NULL;
    }
    /* Its compute window exists before its first launch, not a poll later. */
    if (s->w.compute_pct > 0)
        gm_exec_windows(d);
    return buf;
}

static int make_launch(struct gm_daemon *d, struct launch_snapshot *s, struct gm_error *err)
{
    struct gm_workload_rec *w = &s->w;
    char region[PATH_MAX], pipe[PATH_MAX], logd[PATH_MAX];
    struct gm_launch_inputs in = {
        .base_env = environ,
        .interposer = d->cfg.interposer,
        .region_path = prepare_region(d, s, region, sizeof(region)),
        .sim = d->driver.kind == GM_DRIVER_SIM,
        .sim_dir = d->driver.sim_dir,
        .gpusim_state = d->cfg.gpusim_state,
        .gpusim_config = d->cfg.gpusim_config,
    };
    if (s->have_gpu && s->g.mode == GM_MODE_MPS &&
        gm_mps_dirs(d, &s->g, pipe, logd, sizeof(pipe)) == 0) {
        in.mps_pipe = pipe;
        in.mps_log = logd;
    }
    struct gm_strv argv = {0}, env = {0};
    char dir[PATH_MAX], log[PATH_MAX], cg[PATH_MAX];
    int rc = gm_plan_launch(&in, w, s->have_gpu ? &s->g : NULL, &argv, &env, err);
    if (rc == 0 && d->cgroup_root[0] != '\0')
        rc = gm_path(err, cg, sizeof(cg), "%s/%s/%lld", d->cgroup_root, w->name,
                     (long long)w->launch_id);
    if (rc == 0)
        rc = gm_workload_launch_dir(d, w->name, w->launch_id, dir, sizeof(dir));
    if (rc == 0)
        rc = gm_workload_log_path(d, w->name, log, sizeof(log));
    if (rc == 0)
        rc = gm_mkdir_p(d->cfg.log_dir, 0750, err);
    pid_t mpid = 0;
    uint64_t mstart = 0;
    if (rc == 0) {
        struct gm_launch l = {
            .monitor_path = d->monitor_path,
            .dir = dir,
            .log_path = log,
            .log_max_size = d->cfg.log_max_size,
            .log_max_files = (int)d->cfg.log_max_files,
            .argv = argv.v,
            .envp = env.v,
            .uid = (uid_t)w->uid,
            .gid = (gid_t)w->gid,
            .cwd = NULL,
            .cgroup = d->cgroup_root[0] != '\0' ? cg : NULL,
        };
        rc = gm_sup_launch(&l, &mpid, &mstart, err);
    }
    gm_strv_free(&argv);
    gm_strv_free(&env);
    if (rc < 0)
        return rc;
    w->monitor_pid = mpid;
    w->monitor_start = mstart;
    /* The monitor writes the workload's pid at once; waiting briefly lets the answer carry it. */
    for (int tries = 0; tries < 50; tries++) {
        struct gm_sup_status st;
        if (gm_sup_poll(dir, &st, NULL) == 0 && st.pid > 0) {
            w->pid = st.pid;
            w->pid_start = st.pid_start;
            if (st.state != GM_SUP_EXITED)
                w->state = GM_W_RUNNING;
            break;
        }
        usleep(2000);
    }
    return 0;
}

/* Records what came of a launch. Caller holds d->lock. Returns the signal to send to the
 * launch afterwards (a launch whose record moved on meanwhile), or 0. */
static int record_outcome(struct gm_daemon *d, struct launch_snapshot *s, int launch_rc,
                          const struct gm_error *lerr, enum gm_undo undo,
                          struct gm_workload_rec *out, int *result, struct gm_error *err)
{
    *result = launch_rc;
    struct gm_workload_rec now;
    const char *name = s->w.name;
    int rc = gm_store_workload_get(d->store, name, &now, err);
    if (rc < 0 || now.launch_id != s->w.launch_id) {
        if (rc == 0 || *result == 0)
            *result =
                gm_err(err, GM_ECONFLICT,
                       "workload %s was deleted or started anew while it was being started", name);
        /* Deleted or started anew while it was being made: this launch is nobody's. */
        if (rc == 0)
            gm_workload_rec_free(&now);
        if (launch_rc == 0) {
            gm_warn("workload %s: launch %lld was made after its record moved on: killing it", name,
                    (long long)s->w.launch_id);
            return SIGKILL;
        }
        return 0;
    }
    int sig = 0;
    if (launch_rc < 0) {
        char msg[1200];
        snprintf(msg, sizeof(msg), "could not start: %s", lerr->msg);
        if (undo == GM_UNDO_DELETE) {
            gm_store_event(d->store, GM_LEVEL_ERROR, "daemon", "workload %s %s", name, msg);
            gm_store_workload_delete(d->store, name, NULL);
            gm_wmem_forget(d, name);
        } else {
            now.desired_running = 0;
            now.state = undo == GM_UNDO_STOP ? GM_W_STOPPED : GM_W_EXITED;
            snprintf(now.reason, sizeof(now.reason), "could not start: %.200s", lerr->msg);
            gm_store_workload_save(d->store, &now, 0, GM_LEVEL_ERROR, msg, NULL);
        }
        gm_workload_rec_free(&now);
        *err = *lerr;
        return 0;
    }
    /* What this launch runs with: ps shows it, and a limit changed since as pending. */
    gm_plan_note_in_force(&now, s->have_gpu ? gm_mode_name(s->g.mode) : "", s->w.compute_pct,
                          (long long)s->w.memory_limit);
    now.monitor_pid = s->w.monitor_pid;
    now.monitor_start = s->w.monitor_start;
    now.pid = s->w.pid;
    now.pid_start = s->w.pid_start;
    if (now.state == GM_W_STARTING && s->w.state == GM_W_RUNNING)
        now.state = GM_W_RUNNING;
    if (now.state == GM_W_STOPPING) {
        /* A stop came while it was being made: it gets its SIGTERM now. */
        struct gm_wmem *m = gm_wmem_get(d, name);
        if (m != NULL)
            m->timers.kill_at_ms = gm_now_ms() + d->cfg.stop_timeout_s * 1000;
        sig = SIGTERM;
    }
    char event[64] = "";
    if (now.pid > 0)
        snprintf(event, sizeof(event), "running (pid %d)", now.pid);
    rc = gm_store_workload_save(d->store, &now, 0, GM_LEVEL_INFO, event, err);
    if (rc < 0 && err->code == GM_EIO) {
        /* The launch is made and its start was recorded; the reconciler records its pid from
         * the launch directory once the store takes it. */
        gm_warn("workload %s: started, but its pid is recorded later: %s", name, err->msg);
        rc = 0;
    }
    *result = rc;
    char where[GM_MAX_WORKLOAD_GPUS * 100];
    gm_workload_where(&now, where, sizeof(where));
    gm_info("workload %s: started on %s (monitor %d, pid %d)", name, where, now.monitor_pid,
            now.pid);
    if (rc == 0 && out != NULL) {
        *out = now;
        now.spec_json = NULL;
    }
    gm_workload_rec_free(&now);
    return sig;
}

int gm_exec_launch(struct gm_daemon *d, const char *name, int64_t launch_id, enum gm_undo undo,
                   struct gm_workload_rec *out, struct gm_error *err)
{
    struct launch_snapshot s;
    struct gm_error lerr = {0};
    int rc = take_snapshot(d, name, launch_id, &s, &lerr);
    int launch_rc = rc;
    if (rc == 0)
        launch_rc = make_launch(d, &s, &lerr);
    pthread_mutex_lock(&d->lock);
    int sig = 0;
    if (rc == 0) {
        sig = record_outcome(d, &s, launch_rc, &lerr, undo, out, &rc, err);
    } else {
        *err = lerr;
    }
    set_launching(d, name, 0);
    pthread_mutex_unlock(&d->lock);
    if (sig != 0)
        gm_exec_signal(d, name, launch_id, sig);
    gm_workload_rec_free(&s.w);
    return rc;
}

void gm_exec_signal(struct gm_daemon *d, const char *name, int64_t launch_id, int sig)
{
    char dir[PATH_MAX];
    if (gm_workload_launch_dir(d, name, launch_id, dir, sizeof(dir)) == 0)
        gm_sup_signal(dir, sig, NULL);
}

void gm_exec_effects(struct gm_daemon *d, const struct gm_effect *fx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct gm_effect *e = &fx[i];
        char dir[PATH_MAX];
        if (e->signal)
            gm_exec_signal(d, e->name, e->launch_id, e->signal);
        if (e->old_launch_id &&
            gm_workload_launch_dir(d, e->name, e->old_launch_id, dir, sizeof(dir)) == 0)
            gm_sup_remove(dir, NULL);
        if (e->remove_files)
            gm_exec_remove_files(d, e->name, e->launch_id, 0);
        if (e->launch) {
            struct gm_error err;
            if (gm_exec_launch(d, e->name, e->launch_id, e->undo, NULL, &err) < 0)
                gm_warn("workload %s: %s", e->name, err.msg);
        }
    }
}

int gm_exec_wait_launch_gone(struct gm_daemon *d, const char *name, int64_t launch_id,
                             int64_t timeout_ms, struct gm_error *err)
{
    char dir[PATH_MAX];
    if (gm_workload_launch_dir(d, name, launch_id, dir, sizeof(dir)) < 0)
        return 0;
    for (int64_t deadline = gm_mono_ms() + timeout_ms;;) {
        struct gm_sup_status st;
        if (gm_sup_poll(dir, &st, NULL) < 0 || st.state != GM_SUP_ALIVE)
            return 0;
        if (gm_mono_ms() >= deadline)
            return gm_err(err, GM_EBUSY, "workload %s: its process did not end after SIGKILL",
                          name);
        usleep(20000);
    }
}

void gm_exec_remove_files(struct gm_daemon *d, const char *name, int64_t launch_id, int keep_launch)
{
    char path[PATH_MAX];
    if (!keep_launch && gm_workload_launch_dir(d, name, launch_id, path, sizeof(path)) == 0)
        gm_sup_remove(path, NULL);
    if (gm_path(NULL, path, sizeof(path), "%s/workloads/%s", d->cfg.run_dir, name) == 0)
        rmdir(path);
    /* The workload's cgroup directory, which held its launches' cgroups. */
    if (d->cgroup_root[0] != '\0' &&
        gm_path(NULL, path, sizeof(path), "%s/%s", d->cgroup_root, name) == 0)
        rmdir(path);
    /* The log and every rotated file, up to the most any setting keeps. */
    for (int k = 0; k <= GM_LOG_FILES_MAX; k++) {
        if (gm_workload_log_file(d, name, k, path, sizeof(path)) < 0)
            continue;
        unlink(path);
        char index[PATH_MAX];
        if (gm_logindex_name(path, index, sizeof(index)) == 0)
            unlink(index);
    }
    if (gm_region_path(d, name, path, sizeof(path)) == 0) {
        unlink(path);
        char lpath[PATH_MAX];
        if (gm_region_limits_path(path, lpath, sizeof(lpath), NULL) == 0)
            unlink(lpath);
    }
}

int gm_exec_region_limits(struct gm_daemon *d, const struct gm_workload_rec *w, int by_mps)
{
    char path[PATH_MAX];
    struct gm_region *r;
    int live = 0;
    pthread_mutex_lock(&d->region_lock);
    if (gm_region_path(d, w->name, path, sizeof(path)) == 0 && gm_region_map(path, &r, NULL) == 0) {
        gm_region_set_limits(r, w->memory_limit, (uint32_t)w->compute_pct, by_mps);
        gm_region_unmap(r);
        live = 1;
    }
    pthread_mutex_unlock(&d->region_lock);
    return live;
}

/* ---- waiting for stops ------------------------------------------------------------------ */

int gm_exec_wait_stopped(struct gm_daemon *d, const struct gm_strv *names, struct gm_error *err)
{
    /* The reconciler sends SIGKILL at stop_timeout; past that and five seconds more, give up. */
    int64_t deadline = gm_mono_ms() + (int64_t)d->cfg.stop_timeout_s * 1000 + 5000;
    for (;;) {
        struct gm_strv left = {0};
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < names->n; i++) {
            struct gm_workload_rec w;
            if (gm_store_workload_get(d->store, names->v[i], &w, NULL) != 0)
                continue;
            const struct gm_wmem *m = gm_wmem_find(d, w.name);
            if (gm_workload_active(&w) || (m != NULL && m->launching))
                gm_strv_add(&left, w.name);
            gm_workload_rec_free(&w);
        }
        pthread_mutex_unlock(&d->lock);
        if (left.n == 0) {
            gm_strv_free(&left);
            return 0;
        }
        int64_t now = gm_mono_ms();
        if (now >= deadline) {
            char *list = gm_strv_join(&left, ", ");
            int rc = gm_err(err, GM_EBUSY, "workloads %s did not stop in time",
                            list ? list : "(out of memory)");
            free(list);
            gm_strv_free(&left);
            return rc;
        }
        gm_strv_free(&left);
        usleep(20000);
    }
}

/* ---- compute windows -------------------------------------------------------------------- */

void gm_exec_windows(struct gm_daemon *d)
{
    struct gm_gpu_rec *gpus = NULL;
    struct gm_workload_rec *ws = NULL;
    size_t ngpus = 0, nws = 0;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_gpu_list(d->store, &gpus, &ngpus, NULL);
    if (rc == 0)
        rc = gm_store_workload_list(d->store, &ws, &nws, NULL);
    pthread_mutex_unlock(&d->lock);
    if (rc == 0) {
        pthread_mutex_lock(&d->region_lock);
        gm_region_control(d, gpus, ngpus, ws, nws);
        pthread_mutex_unlock(&d->region_lock);
    }
    free(gpus);
    gm_workload_list_free(ws, nws);
}
