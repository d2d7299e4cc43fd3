/* Workload life cycle: create, start, stop, delete, limits. Each operation decides under
 * d->lock on the records (admission is sched.c's pure function), commits the record with its
 * event, and leaves the effects (the launch, signals, waits) to the executor outside the lock.
 * A launch that cannot be made is undone, so that nothing is half-applied. */
#include "common/log.h"
#include "common/parse.h"
#include "common/path.h"
#include "daemon/apply.h"
#include "daemon/daemon.h"
#include "daemon/region.h"
#include "daemon/sched.h"
#include "daemon/supervise.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int gm_workload_launch_dir(const struct gm_daemon *d, const char *name, int64_t launch_id,
                           char *buf, size_t len)
{
    return gm_path(NULL, buf, len, "%s/workloads/%s/%lld", d->cfg.run_dir, name,
                   (long long)launch_id);
}

int gm_workload_log_path(const struct gm_daemon *d, const char *name, char *buf, size_t len)
{
    return gm_path(NULL, buf, len, "%s/%s.log", d->cfg.log_dir, name);
}

int gm_workload_log_file(const struct gm_daemon *d, const char *name, int k, char *buf, size_t len)
{
    if (k == 0)
        return gm_workload_log_path(d, name, buf, len);
    return gm_path(NULL, buf, len, "%s/%s.log.%d", d->cfg.log_dir, name, k);
}

/* Looks cmd up the way execvp will, so that a missing command is refused before anything is
 * recorded. */
static int check_command(const char *cmd, const char *path, struct gm_error *err)
{
    if (cmd == NULL || cmd[0] == '\0')
        return gm_err(err, GM_EINVAL, "a command is required");
    if (strchr(cmd, '/') != NULL) {
        struct stat st;
        if (cmd[0] != '/')
            return gm_err(err, GM_EINVAL,
                          "command '%s' is a relative path; give an absolute one (workloads do "
                          "not run in the caller's directory)",
                          cmd);
        if (stat(cmd, &st) < 0)
            return gm_err_errno(err, GM_EINVAL, errno, "command '%s'", cmd);
        if (!S_ISREG(st.st_mode) || access(cmd, X_OK) < 0)
            return gm_err(err, GM_EINVAL, "command '%s' is not an executable file", cmd);
        return 0;
    }
    char buf[8192];
    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
    char *save = NULL;
    for (char *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char full[PATH_MAX];
        struct stat st;
        snprintf(full, sizeof(full), "%s/%s", dir, cmd);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
            return 0;
    }
    return gm_err(err, GM_EINVAL, "command '%s' not found in PATH (%s)", cmd,
                  path ? path : "/usr/local/bin:/usr/bin:/bin");
}

/* Environment names the daemon sets itself; a user's value would break placement. */
static int reserved_env(const char *k)
{
    return strcmp(k, "CUDA_VISIBLE_DEVICES") == 0 || strncmp(k, "GPUMUX_", 7) == 0 ||
           strcmp(k, "GPUSIM_STATE") == 0 || strcmp(k, "GPUSIM_CONFIG") == 0;
}

/* What execve takes: one string (NAME=value, or an argument) of at most 128 KiB with its NUL
 * (the kernel's MAX_ARG_STRLEN), and all of them within ARG_MAX, which the daemon's own variables
 * and the supervisor's share. A request past these would fail only at launch ("Argument list too
 * long"); it is refused up front, naming the limit. */
#define GM_EXEC_STRING_MAX (128 * 1024 - 1)
#define GM_EXEC_TOTAL_MAX  (256 * 1024)

static int check_exec_sizes(const struct gm_run_request *r, struct gm_error *err)
{
    size_t total = 0;
    for (size_t i = 0; r->argv != NULL && r->argv[i] != NULL; i++) {
        size_t n = strlen(r->argv[i]);
        if (n > GM_EXEC_STRING_MAX)
            return gm_err(err, GM_EINVAL,
                          "workload %s: command argument %zu is %zu bytes; one argument may be at "
                          "most %d bytes",
                          r->name, i, n, GM_EXEC_STRING_MAX);
        total += n + 1;
    }
    for (size_t i = 0; i < r->env.n; i++) {
        size_t n = strlen(r->env.keys[i]) + 1 + strlen(r->env.vals[i]);
        if (n > GM_EXEC_STRING_MAX)
            return gm_err(err, GM_EINVAL,
                          "workload %s: --env %s is %zu bytes; one variable (NAME=value) may be at "
                          "most %d bytes",
                          r->name, r->env.keys[i], n, GM_EXEC_STRING_MAX);
        total += n + 1;
    }
    if (total > GM_EXEC_TOTAL_MAX)
        return gm_err(err, GM_EINVAL,
                      "workload %s: the command and environment are %zu bytes; at most %d bytes "
                      "in all",
                      r->name, total, GM_EXEC_TOTAL_MAX);
    return 0;
}

static char *spec_build(const struct gm_run_request *r)
{
    json_t *spec = json_object(), *cmd = json_array(), *env = json_object();
    for (char **a = r->argv; a && *a; a++)
        json_array_append_new(cmd, json_string(*a));
    for (size_t i = 0; i < r->env.n; i++)
        json_object_set_new(env, r->env.keys[i], json_string(r->env.vals[i]));
    json_object_set_new(spec, "command", cmd);
    json_object_set_new(spec, "env", env);
    if (r->enforce == GM_ENFORCE_STRICT)
        json_object_set_new(spec, "enforce", json_string(gm_enforce_name(r->enforce)));
    if (r->restart == GM_RESTART_ON_FAILURE && r->restart_max > 0)
        json_object_set_new(spec, "restart_max", json_integer(r->restart_max));
    if (r->auto_remove)
        json_object_set_new(spec, "auto_remove", json_true());
    char *s = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    return s;
}

static int parse_request(const struct gm_run_request *r, struct gm_workload_rec *w,
                         const char **gpu, struct gm_error *err)
{
    int rc = gm_check_name(r->name, "workload", err);
    if (rc < 0)
        return rc;
    if ((rc = check_exec_sizes(r, err)) < 0)
        return rc;
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", r->name);
    snprintf(w->kind, sizeof(w->kind), "process");
    if (r->compute_pct < 0 || r->compute_pct > 100)
        return gm_err(err, GM_EINVAL, "--compute %d: must be between 1 and 100", r->compute_pct);
    w->compute_pct = r->compute_pct;
    w->memory_limit = r->memory_limit;
    w->restart = r->restart;
    w->restart_max = r->restart == GM_RESTART_ON_FAILURE ? r->restart_max : 0;
    /* As docker: a workload that is deleted when it ends is not also restarted then. */
    if (r->auto_remove && r->restart != GM_RESTART_NEVER)
        return gm_err(err, GM_EINVAL,
                      "--rm and --restart %s conflict: a workload deleted when it ends is not "
                      "restarted",
                      gm_restart_name(r->restart));
    w->auto_remove = r->auto_remove;
    *gpu = r->gpu;
    const char *path = getenv("PATH");
    for (size_t i = 0; i < r->env.n; i++) {
        const char *k = r->env.keys[i];
        if (k[0] == '\0' || strchr(k, '=') != NULL)
            return gm_err(err, GM_EINVAL, "--env '%s': not a valid variable name", k);
        if (reserved_env(k))
            return gm_err(err, GM_EINVAL, "--env %s: set by gpumux itself and cannot be given", k);
        if (strcmp(k, "PATH") == 0)
            path = r->env.vals[i];
        /* The seed's way of asking for a share of an MPS GPU. */
        if (strcmp(k, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE") == 0) {
            int pct;
            if ((rc = gm_parse_percent(r->env.vals[i], &pct, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
                                       err)) < 0)
                return rc;
            if (w->compute_pct && w->compute_pct != pct)
                return gm_err(err, GM_EINVAL,
                              "--compute %d and CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=%d disagree; "
                              "give one of them",
                              w->compute_pct, pct);
            w->compute_pct = pct;
        }
        /* The seed's way of choosing a GPU: NVIDIA_VISIBLE_DEVICES in the environment. */
        if (strcmp(k, "NVIDIA_VISIBLE_DEVICES") == 0) {
            if (r->gpu != NULL && strcmp(r->gpu, r->env.vals[i]) != 0)
                return gm_err(err, GM_EINVAL,
                              "--gpu %s and NVIDIA_VISIBLE_DEVICES=%s disagree; give one of them",
                              r->gpu, r->env.vals[i]);
            *gpu = r->env.vals[i];
        }
    }
    rc = check_command(r->argv ? r->argv[0] : NULL, path, err);
    if (rc < 0)
        return gm_err_wrap(err, "workload %s", r->name);
    w->uid = r->uid;
    w->gid = r->gid;
    return 0;
}

/* Admission for w against everything recorded. Caller holds d->lock. */
static int admit(struct gm_daemon *d, struct gm_workload_rec *w, const char *gpu,
                 struct gm_error *err)
{
    struct gm_gpu_rec *gpus = NULL;
    struct gm_workload_rec *ws = NULL;
    size_t ngpus = 0, nws = 0;
    int rc = gm_store_gpu_list(d->store, &gpus, &ngpus, err);
    if (rc == 0)
        rc = gm_store_workload_list(d->store, &ws, &nws, err);
    if (rc == 0) {
        struct gm_sched_req req = {
            .name = w->name,
            .gpu = gpu,
            .compute_pct = w->compute_pct,
            .memory = w->memory_limit,
            .reserve = d->cfg.memory_reserve,
            .spread = d->cfg.spread,
        };
        struct gm_sched_result res;
        rc = gm_sched_admit(gpus, ngpus, ws, nws, &req, &res, err);
        for (int i = 0; rc == 0 && i < res.ngpus; i++) {
            const struct gm_gpu_rec *g = &gpus[res.gpu[i]];
            if (gm_strv_find(&d->changing, g->uuid) >= 0)
                rc = gm_err(err, GM_EBUSY,
                            "GPU %d (%s) is changing its sharing mode; try again when that is "
                            "done",
                            g->idx, g->uuid);
        }
        if (rc == 0) {
            w->ngpus = res.ngpus;
            for (int i = 0; i < res.ngpus; i++)
                snprintf(w->gpus[i], sizeof(w->gpus[i]), "%s", gpus[res.gpu[i]].uuid);
        }
    }
    free(gpus);
    gm_workload_list_free(ws, nws);
    return rc < 0 ? gm_err_wrap(err, "workload %s", w->name) : 0;
}

/* Records launch w->launch_id (insert or update) with its event and marks it launching, so
 * that the reconciler leaves it to the executor. Caller holds d->lock. */
static int record_launch(struct gm_daemon *d, struct gm_workload_rec *w, int insert,
                         struct gm_error *err)
{
    struct gm_wmem *m = gm_wmem_get(d, w->name);
    if (m == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    char where[GM_MAX_WORKLOAD_GPUS * 100], event[GM_MAX_WORKLOAD_GPUS * 100 + 64];
    gm_workload_where(w, where, sizeof(where));
    snprintf(event, sizeof(event), "%s on %s (launch %lld)", insert ? "created" : "starting", where,
             (long long)w->launch_id);
    int rc = gm_store_workload_save(d->store, w, insert, GM_LEVEL_INFO, event, err);
    if (rc == 0) {
        m->launching = 1;
        m->timers = (struct gm_timers){0};
    }
    return rc;
}

/* Gives w to the caller when the operation succeeded and it asked, else frees it. */
static int hand_over(struct gm_workload_rec *w, struct gm_workload_rec *out, int rc)
{
    if (rc == 0 && out != NULL)
        *out = *w;
    else
        gm_workload_rec_free(w);
    return rc;
}

/* Has the current launch a process that may still run? */
static int launched(const struct gm_workload_rec *w)
{
    return w->state == GM_W_STARTING || w->state == GM_W_RUNNING || w->state == GM_W_STOPPING;
}

int gm_workload_from_request(const struct gm_run_request *r, struct gm_workload_rec *w,
                             const char **gpu, struct gm_error *err)
{
    int rc = parse_request(r, w, gpu, err);
    if (rc < 0)
        return rc;
    w->spec_json = spec_build(r);
    if (w->spec_json == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    return 0;
}

int gm_workload_create(struct gm_daemon *d, const struct gm_run_request *r,
                       struct gm_workload_rec *out, struct gm_error *err)
{
    struct gm_workload_rec w;
    const char *gpu = NULL;
    int rc = parse_request(r, &w, &gpu, err);
    if (rc < 0)
        return rc;
    w.spec_json = spec_build(r);
    pthread_mutex_lock(&d->lock);
    struct gm_workload_rec old;
    const struct gm_wmem *m = gm_wmem_find(d, w.name);
    if (gm_store_workload_get(d->store, w.name, &old, NULL) == 0) {
        gm_workload_rec_free(&old);
        rc = gm_err(err, GM_ECONFLICT, "workload %s already exists", w.name);
    } else if (m != NULL && m->launching) {
        rc = gm_err(err, GM_EBUSY, "workload %s is being deleted; try again", w.name);
    } else {
        rc = admit(d, &w, gpu, err);
    }
    if (rc == 0) {
        w.desired_running = 1;
        w.state = GM_W_STARTING;
        w.launch_id = 1;
        w.created_at = w.started_at = gm_now_ms();
        rc = record_launch(d, &w, 1, err);
    }
    pthread_mutex_unlock(&d->lock);
    if (rc == 0) {
        int64_t id = w.launch_id;
        gm_workload_rec_free(&w);
        return gm_exec_launch(d, r->name, id, GM_UNDO_DELETE, out, err);
    }
    return hand_over(&w, out, rc);
}

int gm_workload_start(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                      struct gm_error *err)
{
    struct gm_workload_rec w = {0};
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, err);
    const struct gm_wmem *m = rc == 0 ? gm_wmem_find(d, name) : NULL;
    if (rc < 0)
        goto out;
    if (w.state == GM_W_STARTING || w.state == GM_W_RUNNING || (m != NULL && m->launching)) {
        rc = gm_err(err, GM_ECONFLICT, "workload %s is already running (pid %d)", name, w.pid);
        goto out;
    }
    if (w.state == GM_W_STOPPING || (m != NULL && (m->stop_pending || m->delete_pending))) {
        rc = gm_err(err, GM_EBUSY, "workload %s is still stopping; try again when it has stopped",
                    name);
        goto out;
    }
    /* Admission again: its GPU may have been given to a VM, or its memory to others. */
    struct gm_strv ids = {0};
    for (int i = 0; i < w.ngpus; i++)
        gm_strv_add(&ids, w.gpus[i]);
    char *spec = w.ngpus ? gm_strv_join(&ids, ",") : NULL;
    gm_strv_free(&ids);
    w.desired_running = 0; /* not counted against itself */
    rc = admit(d, &w, spec ? spec : "none", err);
    free(spec);
    if (rc < 0)
        goto out;
    w.desired_running = 1;
    w.state = GM_W_STARTING;
    w.launch_id++;
    w.pid = w.monitor_pid = 0;
    w.pid_start = w.monitor_start = 0;
    w.has_exit = 0;
    w.reason[0] = '\0';
    /* A start by hand begins the count again, as docker start does: on-failure:N gets N
     * restarts anew. */
    w.restart_count = 0;
    w.started_at = gm_now_ms();
    w.finished_at = 0;
    rc = record_launch(d, &w, 0, err);
out:
    pthread_mutex_unlock(&d->lock);
    if (rc == 0) {
        int64_t id = w.launch_id;
        gm_workload_rec_free(&w);
        return gm_exec_launch(d, name, id, GM_UNDO_STOP, out, err);
    }
    return hand_over(&w, out, rc);
}

/* Records w as stopping (or a pending restart as cancelled). Caller holds d->lock. Returns 1
 * when the launch must get SIGTERM, 0 when nothing runs, or a negative error. When the store
 * cannot write (a full disk, an I/O error) the stop is still made: it is kept in memory as
 * pending, the reconciler records it once the store takes it, and it returns as if recorded. */
static int record_stop(struct gm_daemon *d, struct gm_workload_rec *w, const char *why, int grace_s,
                       struct gm_error *err)
{
    if (grace_s < 0)
        grace_s = d->cfg.stop_timeout_s;
    struct gm_workload_rec next;
    int was_alive = gm_plan_stop(w, why, &next);
    struct gm_wmem *m = gm_wmem_get(d, w->name);
    struct gm_error serr = {0};
    int rc = gm_store_workload_save(d->store, &next, 0, GM_LEVEL_INFO, why, &serr);
    if (rc < 0 && (serr.code != GM_EIO || m == NULL)) {
        if (err != NULL)
            *err = serr;
        return rc;
    }
    *w = next;
    if (m != NULL) {
        m->timers.restart_at_ms = 0;
        m->timers.kill_at_ms = was_alive ? gm_now_ms() + (int64_t)grace_s * 1000 : 0;
        if (rc < 0) {
            if (!m->stop_pending)
                gm_warn("workload %s: %s; it is recorded when the state disk takes it (%s)",
                        w->name, why, serr.msg);
            m->stop_pending = 1;
            snprintf(m->stop_why, sizeof(m->stop_why), "%s", why);
            snprintf(m->pending_err, sizeof(m->pending_err), "%.250s", serr.msg);
        }
    }
    return was_alive;
}

int gm_workload_stop(struct gm_daemon *d, const char *name, int grace_s,
                     struct gm_workload_rec *out, struct gm_error *err)
{
    struct gm_workload_rec w = {0};
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, err);
    const struct gm_wmem *m = rc == 0 ? gm_wmem_find(d, name) : NULL;
    if (m != NULL && m->stop_pending)
        rc = gm_plan_stop(&w, m->stop_why, &w); /* the answer shows what is being recorded */
    else if (rc == 0 && (w.desired_running || w.state == GM_W_STARTING || w.state == GM_W_RUNNING))
        rc = record_stop(d, &w, "stopped by request", grace_s, err);
    pthread_mutex_unlock(&d->lock);
    if (rc == 1)
        gm_exec_signal(d, name, w.launch_id, SIGTERM);
    return hand_over(&w, out, rc < 0 ? rc : 0);
}

int gm_workload_stop_for(struct gm_daemon *d, const char *name, int64_t launch_id, const char *why,
                         struct gm_error *err)
{
    struct gm_workload_rec w = {0};
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, err);
    if (rc == 0 && w.launch_id == launch_id && w.desired_running && launched(&w))
        rc = record_stop(d, &w, why, -1, err);
    else if (rc == 0)
        rc = 0; /* moved on, or already being stopped */
    pthread_mutex_unlock(&d->lock);
    if (rc == 1)
        gm_exec_signal(d, name, w.launch_id, SIGTERM);
    gm_workload_rec_free(&w);
    return rc < 0 ? rc : 0;
}

/* Deletes the record of name, whose launch launch_id is gone, with its event. Caller holds
 * d->lock and has begun no transaction. */
static int delete_record(struct gm_daemon *d, const char *name, struct gm_error *err)
{
    int rc = gm_store_begin(d->store, err);
    if (rc == 0) {
        rc = gm_store_workload_delete(d->store, name, err);
        if (rc == 0) {
            char object[96];
            snprintf(object, sizeof(object), "workload/%s", name);
            gm_store_event(d->store, GM_LEVEL_INFO, object, "deleted");
            rc = gm_store_commit(d->store, err);
        } else {
            gm_store_rollback(d->store);
        }
    }
    return rc;
}

int gm_workload_delete(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                       struct gm_error *err)
{
    struct gm_error local;
    if (err == NULL)
        err = &local;
    struct gm_workload_rec w = {0};
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, err);
    const struct gm_wmem *m = rc == 0 ? gm_wmem_find(d, name) : NULL;
    if (m != NULL && m->stop_pending)
        rc = gm_plan_stop(&w, m->stop_why, &w);
    else if (rc == 0 && (w.desired_running || launched(&w)))
        rc = record_stop(d, &w, "deleted by request", -1, err);
    m = gm_wmem_find(d, name);
    int pending = m != NULL && m->stop_pending;
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) {
        gm_workload_rec_free(&w);
        return rc;
    }
    if (rc == 1)
        gm_exec_signal(d, name, w.launch_id, SIGTERM);
    /* Wait, without holding the lock, until nothing of the launch runs: the record goes only
     * once its process is gone, so a crash in between leaves a record, never an orphan. A stop
     * not recorded yet leaves the record as it was: then the launch's lock tells (the
     * reconciler sends SIGKILL after stop_timeout either way). */
    struct gm_strv one = {0};
    gm_strv_add(&one, name);
    rc = pending ? 0 : gm_exec_wait_stopped(d, &one, err);
    gm_strv_free(&one);
    if (rc < 0) {
        gm_workload_rec_free(&w);
        return gm_err_wrap(err, "workload %s", name);
    }
    /* The record may say stopped while a process the workload left behind holds the lock. */
    int64_t grace = pending ? (int64_t)d->cfg.stop_timeout_s * 1000 + 5000 : 5000;
    if ((rc = gm_exec_wait_launch_gone(d, name, w.launch_id, grace, err)) < 0) {
        gm_workload_rec_free(&w);
        return rc;
    }
    pthread_mutex_lock(&d->lock);
    struct gm_workload_rec now = {0};
    rc = gm_store_workload_get(d->store, name, &now, err);
    if (rc == -GM_ENOTFOUND && w.auto_remove) {
        /* run --rm: its end, which the delete's stop brought, deleted it already. */
        gm_wmem_forget(d, name);
        pthread_mutex_unlock(&d->lock);
        return hand_over(&w, out, 0);
    }
    if (rc == 0 && now.launch_id != w.launch_id)
        rc = gm_err(err, GM_ECONFLICT, "workload %s was started again while it was being deleted",
                    name);
    gm_workload_rec_free(&now);
    m = gm_wmem_find(d, name);
    pending = m != NULL && m->stop_pending;
    /* With its stop still pending the record says it runs: the reconciler records the end and
     * the delete together, exits and all, once the store takes them. */
    if (rc == 0 && !pending)
        rc = delete_record(d, name, err);
    if (rc == 0 && !pending) {
        gm_wmem_forget(d, name);
    } else if ((rc < 0 && err->code == GM_EIO) || (rc == 0 && pending)) {
        struct gm_wmem *mm = gm_wmem_get(d, name);
        if (mm != NULL) {
            if (!mm->delete_pending)
                gm_warn("workload %s: its processes are gone; its record is deleted when the "
                        "state disk takes it (%s)",
                        name, rc < 0 ? err->msg : mm->pending_err);
            if (rc < 0)
                snprintf(mm->pending_err, sizeof(mm->pending_err), "%.250s", err->msg);
            mm->delete_pending = 1;
            rc = 0;
            pending = 1;
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (rc == 0)
        gm_exec_remove_files(d, name, w.launch_id, pending);
    return hand_over(&w, out, rc);
}

/* A limit that reached a running workload is in force: noted with its record, unless the
 * workload was launched anew meanwhile (that launch noted its own). */
static void note_live_limits(struct gm_daemon *d, const char *name, int64_t launch_id,
                             int compute_pct, long long memory_limit)
{
    struct gm_workload_rec w;
    struct gm_error err = {0};
    pthread_mutex_lock(&d->lock);
    if (gm_store_workload_get(d->store, name, &w, &err) == 0) {
        if (w.launch_id == launch_id) {
            gm_plan_note_in_force(&w, NULL, compute_pct, memory_limit);
            if (gm_store_workload_save(d->store, &w, 0, GM_LEVEL_INFO, "", &err) < 0)
                gm_warn("workload %s: recording the limits in force: %s", name, err.msg);
        }
        gm_workload_rec_free(&w);
    }
    pthread_mutex_unlock(&d->lock);
}

int gm_workload_set_limits(struct gm_daemon *d, const char *name, int compute_pct, uint64_t memory,
                           struct gm_workload_rec *out, struct gm_limits_outcome *what,
                           struct gm_error *err)
{
    struct gm_workload_rec w = {0};
    struct gm_limits_outcome o = {0};
    if (compute_pct < 0 && memory == UINT64_MAX)
        return gm_err(err, GM_EINVAL, "workload %s: give --compute, --memory or both", name);
    if (compute_pct > 100)
        return gm_err(err, GM_EINVAL, "--compute %d: must be between 1 and 100", compute_pct);
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, err);
    if (rc < 0)
        goto out;
    if (w.ngpus != 1 && (compute_pct > 0 || (memory != UINT64_MAX && memory > 0))) {
        rc = gm_err(err, GM_EINVAL,
                    "workload %s: a fractional share applies to exactly one GPU, and it has %d",
                    name, w.ngpus);
        goto out;
    }
    struct gm_workload_rec next = w;
    if (compute_pct >= 0)
        next.compute_pct = compute_pct;
    if (memory != UINT64_MAX)
        next.memory_limit = memory;
    if (gm_workload_active(&w)) {
        /* The new memory limit must fit beside the others on the GPU. */
        rc = admit(d, &next, next.gpus[0], err);
        if (rc < 0)
            goto out;
    }
    char a[32] = "none", b[32] = "none", event[128];
    if (next.memory_limit)
        gm_format_size(next.memory_limit, a, sizeof(a));
    if (next.compute_pct)
        snprintf(b, sizeof(b), "%d%%", next.compute_pct);
    snprintf(event, sizeof(event), "limits set: compute %s, memory %s", b, a);
    if ((rc = gm_store_workload_save(d->store, &next, 0, GM_LEVEL_INFO, event, err)) < 0)
        goto out;
    w = next;
    struct gm_gpu_rec g;
    int by_mps = w.ngpus == 1 && gm_store_gpu_get(d->store, w.gpus[0], &g, NULL) == 0 &&
                 g.mode == GM_MODE_MPS;
    pthread_mutex_unlock(&d->lock);

    if (gm_workload_active(&w) && gm_exec_region_limits(d, &w, by_mps)) {
        o.live = 1;
        o.compute_next_run = by_mps && compute_pct >= 0;
        /* What now holds: the memory limit, and a compute share outside MPS. */
        note_live_limits(d, name, w.launch_id, o.compute_next_run ? -1 : w.compute_pct,
                         memory != UINT64_MAX ? (long long)w.memory_limit : -1);
    } else {
        o.not_interposed = gm_workload_active(&w);
    }
    if (what != NULL)
        *what = o;
    return hand_over(&w, out, 0);
out:
    pthread_mutex_unlock(&d->lock);
    return hand_over(&w, out, rc);
}

/* ---- apply -f, delete -f ---------------------------------------------------------------- */

/* Is a launch of name being made? Caller holds d->lock. */
static int launching(const struct gm_daemon *d, const char *name)
{
    const struct gm_wmem *m = gm_wmem_find(d, name);
    return m != NULL && m->launching;
}

/* Removes the deployment records of names that no workload names any more. */
static void drop_empty_deployments(struct gm_daemon *d, const struct gm_strv *names)
{
    struct gm_workload_rec *ws = NULL;
    size_t n = 0;
    pthread_mutex_lock(&d->lock);
    if (gm_store_workload_list(d->store, &ws, &n, NULL) == 0)
        for (size_t i = 0; i < names->n; i++) {
            int used = 0;
            for (size_t j = 0; j < n && !used; j++)
                used = strcmp(ws[j].deployment, names->v[i]) == 0;
            struct gm_error err = {0};
            if (!used && gm_store_deployment_delete(d->store, names->v[i], &err) == 0)
                gm_store_event(d->store, GM_LEVEL_INFO, "daemon", "deployment %s deleted",
                               names->v[i]);
        }
    pthread_mutex_unlock(&d->lock);
    gm_workload_list_free(ws, n);
}

/* Records the plan in one transaction: the file's deployments (as given, generation + 1; one
 * applied again from the same text is left as it is) and every workload it creates, as
 * starting (or stopped). Caller holds d->lock. */
static int record_apply(struct gm_daemon *d, const struct gm_apply_req *req,
                        const struct gm_apply_set *set, const struct gm_apply_plan *p,
                        const struct gm_deployment_rec *deps, size_t ndeps, struct gm_error *err)
{
    int rc = gm_store_begin(d->store, err);
    if (rc < 0)
        return rc;
    int64_t now = gm_now_ms();
    for (size_t k = 0; rc == 0 && k < p->ndep_write; k++) {
        const struct gm_apply_dep *ad = &set->dep[p->dep_write[k]];
        struct gm_deployment_rec rec = {0};
        snprintf(rec.name, sizeof(rec.name), "%s", ad->name);
        snprintf(rec.format, sizeof(rec.format), "%s", gm_mf_format_name(set->format));
        rec.manifest = (char *)req->manifest;
        rec.created_at = rec.updated_at = now;
        const struct gm_deployment_rec *old = NULL;
        for (size_t i = 0; i < ndeps; i++)
            if (strcmp(deps[i].name, rec.name) == 0)
                old = &deps[i];
        if (old != NULL && old->manifest != NULL && strcmp(old->manifest, req->manifest) == 0)
            continue; /* the same file again: the record stands, its generation too */
        if (old != NULL) {
            rec.generation = old->generation + 1;
            rec.created_at = old->created_at;
            rc = gm_store_deployment_update(d->store, &rec, err);
        } else {
            rec.generation = 1;
            rc = gm_store_deployment_insert(d->store, &rec, err);
        }
    }
    for (size_t k = 0; rc == 0 && k < p->n; k++) {
        const struct gm_apply_action *a = &p->a[k];
        if (a->op != GM_APPLY_CREATE)
            continue;
        const struct gm_apply_item *it = &set->v[a->item];
        struct gm_workload_rec w = it->rec;
        w.spec_json = it->rec.spec_json;
        w.ngpus = a->ngpus;
        memcpy(w.gpus, a->gpus, sizeof(w.gpus));
        w.desired_running = it->running;
        w.state = it->running ? GM_W_STARTING : GM_W_STOPPED;
        w.launch_id = it->running ? 1 : 0;
        w.created_at = now;
        w.started_at = it->running ? now : 0;
        if ((rc = gm_store_workload_insert(d->store, &w, err)) < 0)
            break;
        struct gm_wmem *m = it->running ? gm_wmem_get(d, w.name) : NULL;
        if (it->running && m == NULL)
            rc = gm_err(err, GM_ENOMEM, "out of memory");
    }
    if (rc == 0)
        rc = gm_store_commit(d->store, err);
    else
        gm_store_rollback(d->store);
    if (rc < 0)
        return rc;
    /* Committed: the launches are the executor's from here, and the reconciler leaves them. */
    for (size_t k = 0; k < p->n; k++) {
        const struct gm_apply_action *a = &p->a[k];
        if (a->op != GM_APPLY_CREATE)
            continue;
        const struct gm_apply_item *it = &set->v[a->item];
        char where[GM_MAX_WORKLOAD_GPUS * 100];
        struct gm_workload_rec w = it->rec;
        w.ngpus = a->ngpus;
        memcpy(w.gpus, a->gpus, sizeof(w.gpus));
        gm_workload_where(&w, where, sizeof(where));
        char object[96];
        snprintf(object, sizeof(object), "workload/%s", w.name);
        gm_store_event(d->store, GM_LEVEL_INFO, object, "created by %s on %s%s", req->file, where,
                       it->running ? " (launch 1)" : " (stopped)");
        if (it->running) {
            struct gm_wmem *m = gm_wmem_get(d, w.name);
            if (m != NULL) {
                m->launching = 1;
                m->timers = (struct gm_timers){0};
            }
        }
    }
    return 0;
}

int gm_workload_apply(struct gm_daemon *d, const struct gm_apply_req *req, struct gm_strv *lines,
                      struct gm_error *err)
{
    struct gm_manifest m;
    int rc = gm_manifest_parse(req->file, req->manifest, strlen(req->manifest), &m, err);
    if (rc < 0)
        return rc;
    struct gm_apply_set set = {0};
    struct gm_apply_plan p = {0};
    struct gm_gpu_rec *gpus = NULL;
    struct gm_workload_rec *ws = NULL;
    struct gm_deployment_rec *deps = NULL;
    size_t ngpus = 0, nws = 0, ndeps = 0;
    const char **dn = NULL, **df = NULL;
    struct gm_strv del = {0}, dropped = {0};
    int64_t t0 = gm_mono_ns();
    if ((rc = gm_apply_expand(&m, req->file, req->uid, req->gid, &set, err)) < 0)
        goto out;
    pthread_mutex_lock(&d->lock);
    if ((rc = gm_store_gpu_list(d->store, &gpus, &ngpus, err)) == 0 &&
        (rc = gm_store_workload_list(d->store, &ws, &nws, err)) == 0)
        rc = gm_store_deployment_list(d->store, &deps, &ndeps, err);
    if (rc == 0) {
        dn = calloc(ndeps + 1, sizeof(*dn));
        df = calloc(ndeps + 1, sizeof(*df));
        if (dn == NULL || df == NULL)
            rc = gm_err(err, GM_ENOMEM, "out of memory");
        for (size_t i = 0; rc == 0 && i < ndeps; i++) {
            dn[i] = deps[i].name;
            df[i] = deps[i].format;
        }
    }
    if (rc == 0)
        rc = gm_apply_plan(&set, gpus, ngpus, ws, nws, dn, df, ndeps, d->cfg.memory_reserve,
                           d->cfg.spread, &p, err);
    /* What it deletes or keeps must be the caller's; what it creates runs as the caller. */
    for (size_t k = 0; rc == 0 && k < p.n; k++) {
        const struct gm_apply_action *a = &p.a[k];
        if (a->op == GM_APPLY_CREATE) {
            for (int g = 0; g < a->ngpus && rc == 0; g++)
                if (gm_strv_find(&d->changing, a->gpus[g]) >= 0)
                    rc = gm_err(err, GM_EBUSY,
                                "%s: %s is changing its sharing mode; try again when that is done",
                                set.v[a->item].obj->label, a->gpus[g]);
            continue;
        }
        const struct gm_workload_rec *w = &ws[a->actual];
        if (req->uid != 0 && w->uid != req->uid)
            rc = gm_err(err, GM_EPERM, "workload %s (deployment %s) is not yours to %s", w->name,
                        w->deployment, a->op == GM_APPLY_DELETE ? "delete" : "keep");
        else if (a->op == GM_APPLY_DELETE && launching(d, w->name))
            rc = gm_err(err, GM_EBUSY, "workload %s is being started; try again", w->name);
    }
    if (rc == 0 && !req->dry_run)
        rc = record_apply(d, req, &set, &p, deps, ndeps, err);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0)
        goto out;
    int64_t decided_us = (int64_t)(gm_mono_ns() - t0) / 1000;
    const char *dry = req->dry_run ? " (dry run)" : "";
    for (size_t k = 0; k < p.n; k++) {
        const struct gm_apply_action *a = &p.a[k];
        if (a->op == GM_APPLY_KEEP) {
            gm_strv_addf(lines, "workload/%s unchanged%s", set.v[a->item].rec.name, dry);
        } else if (a->op == GM_APPLY_DELETE) {
            gm_strv_add(&del, ws[a->actual].name);
        } else {
            const struct gm_apply_item *it = &set.v[a->item];
            struct gm_workload_rec w = it->rec;
            char where[GM_MAX_WORKLOAD_GPUS * 100];
            w.ngpus = a->ngpus;
            memcpy(w.gpus, a->gpus, sizeof(w.gpus));
            gm_workload_where(&w, where, sizeof(where));
            struct gm_error lerr = {0};
            if (req->dry_run || !it->running ||
                gm_exec_launch(d, w.name, 1, GM_UNDO_DELETE, NULL, &lerr) == 0)
                gm_strv_addf(lines, "workload/%s created on %s%s%s", w.name, where,
                             it->running ? "" : " (stopped)", dry);
            else
                gm_strv_addf(lines, "workload/%s could not start: %s", w.name, lerr.msg);
        }
    }
    for (size_t i = 0; i < del.n; i++) {
        struct gm_error derr = {0};
        if (req->dry_run || gm_workload_delete(d, del.v[i], NULL, &derr) == 0)
            gm_strv_addf(lines, "workload/%s deleted%s", del.v[i], dry);
        else
            gm_strv_addf(lines, "workload/%s not deleted: %s", del.v[i], derr.msg);
    }
    gm_strv_addf(lines, "%zu created, %zu unchanged, %zu deleted%s (decided%s in %lld.%03lld ms)",
                 p.count[GM_APPLY_CREATE], p.count[GM_APPLY_KEEP], p.count[GM_APPLY_DELETE], dry,
                 req->dry_run ? "" : " and recorded in one transaction",
                 (long long)(decided_us / 1000), (long long)(decided_us % 1000));
    for (size_t k = 0; k < p.ndep_remove; k++)
        gm_strv_add(&dropped, p.dep_remove[k]);
    if (!req->dry_run)
        drop_empty_deployments(d, &dropped);
out:
    gm_strv_free(&del);
    gm_strv_free(&dropped);
    free(dn);
    free(df);
    gm_apply_plan_free(&p);
    gm_apply_set_free(&set);
    free(gpus);
    gm_workload_list_free(ws, nws);
    gm_store_deployment_list_free(deps, ndeps);
    gm_manifest_free(&m);
    return rc;
}

int gm_workload_unapply(struct gm_daemon *d, const struct gm_apply_req *req, struct gm_strv *lines,
                        struct gm_error *err)
{
    struct gm_manifest m;
    int rc = gm_manifest_parse(req->file, req->manifest, strlen(req->manifest), &m, err);
    if (rc < 0)
        return rc;
    struct gm_strv deps = {0}, names = {0};
    for (size_t i = 0; i < m.n; i++) {
        char dn[64];
        gm_apply_dep_name(&m.o[i], dn, sizeof(dn));
        gm_strv_add(&deps, dn);
    }
    struct gm_workload_rec *ws = NULL;
    size_t nws = 0;
    pthread_mutex_lock(&d->lock);
    rc = gm_store_workload_list(d->store, &ws, &nws, err);
    for (size_t j = 0; rc == 0 && j < nws; j++) {
        if (ws[j].deployment[0] == '\0' || gm_strv_find(&deps, ws[j].deployment) < 0)
            continue;
        if (req->uid != 0 && ws[j].uid != req->uid)
            rc = gm_err(err, GM_EPERM, "workload %s (deployment %s) is not yours to delete",
                        ws[j].name, ws[j].deployment);
        else
            gm_strv_add(&names, ws[j].name);
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; rc == 0 && i < names.n; i++) {
        struct gm_error derr = {0};
        if (req->dry_run || gm_workload_delete(d, names.v[i], NULL, &derr) == 0)
            gm_strv_addf(lines, "workload/%s deleted%s", names.v[i],
                         req->dry_run ? " (dry run)" : "");
        else
            gm_strv_addf(lines, "workload/%s not deleted: %s", names.v[i], derr.msg);
    }
    if (rc == 0 && !req->dry_run)
        drop_empty_deployments(d, &deps);
    if (rc == 0 && names.n == 0)
        gm_strv_addf(lines, "nothing of %s runs", req->file);
    gm_workload_list_free(ws, nws);
    gm_strv_free(&deps);
    gm_strv_free(&names);
    gm_manifest_free(&m);
    return rc;
}
