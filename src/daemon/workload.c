/* Workload life cycle: create, start, stop, delete. Every change is committed before it is
 * acted on; a launch that cannot be made is rolled back so that nothing is half-applied. */
#include "common/log.h"
#include "common/parse.h"
#include "daemon/daemon.h"
#include "daemon/mps.h"
#include "daemon/region.h"
#include "daemon/sched.h"
#include "daemon/supervise.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

void gm_workload_launch_dir(const struct gm_daemon *d, const char *name, int64_t launch_id,
                            char *buf, size_t len)
{
    snprintf(buf, len, "%s/workloads/%s/%lld", d->cfg.run_dir, name, (long long)launch_id);
}

void gm_workload_log_path(const struct gm_daemon *d, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/logs/%s.log", d->cfg.state_dir, name);
}

struct gm_backoff *gm_backoff_get(struct gm_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nbackoff; i++)
        if (strcmp(d->backoff[i].name, name) == 0)
            return &d->backoff[i];
    struct gm_backoff *nb = realloc(d->backoff, (d->nbackoff + 1) * sizeof(*nb));
    if (nb == NULL)
        return NULL;
    d->backoff = nb;
    struct gm_backoff *b = &d->backoff[d->nbackoff++];
    memset(b, 0, sizeof(*b));
    snprintf(b->name, sizeof(b->name), "%s", name);
    return b;
}

void gm_backoff_forget(struct gm_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nbackoff; i++) {
        if (strcmp(d->backoff[i].name, name) == 0) {
            d->backoff[i] = d->backoff[--d->nbackoff];
            return;
        }
    }
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
    char *s = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    return s;
}

struct strv {
    char **v;
    size_t n, cap;
};

static int strv_push(struct strv *s, char *owned)
{
    if (owned == NULL)
        return -1;
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **nv = realloc(s->v, cap * sizeof(*nv));
        if (nv == NULL) {
            free(owned);
            return -1;
        }
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = owned;
    s->v[s->n] = NULL;
    return 0;
}

static void strv_free(struct strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static void strv_setenv(struct strv *s, const char *k, const char *v)
{
    size_t kl = strlen(k);
    for (size_t i = 0; i < s->n; i++) {
        if (strncmp(s->v[i], k, kl) == 0 && s->v[i][kl] == '=') {
            free(s->v[i]);
            if (asprintf(&s->v[i], "%s=%s", k, v) < 0)
                s->v[i] = strdup("GPUMUX_ENV_ERROR=1");
            return;
        }
    }
    char *e;
    if (asprintf(&e, "%s=%s", k, v) >= 0)
        strv_push(s, e);
}

static const char *strv_getenv(const struct strv *s, const char *k)
{
    size_t kl = strlen(k);
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(s->v[i], k, kl) == 0 && s->v[i][kl] == '=')
            return s->v[i] + kl + 1;
    return NULL;
}

/* The workload's environment: the daemon's own, the user's, then what gpumux decides. */
static int build_env(struct gm_daemon *d, const struct gm_workload_rec *w, json_t *spec,
                     struct strv *env)
{
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "GPUMUX_", 7) != 0 && strncmp(*e, "NVIDIA_VISIBLE_DEVICES=", 23) != 0 &&
            strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) != 0 && strncmp(*e, "NOTIFY_SOCKET=", 14) != 0)
            strv_push(env, strdup(*e));
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(spec, "env"), k, v)
        strv_setenv(env, k, json_string_value(v));
    if (json_is_string(json_object_get(spec, "enforce")))
        strv_setenv(env, GM_REGION_STRICT_ENV, json_string_value(json_object_get(spec, "enforce")));

    char devs[GM_MAX_WORKLOAD_GPUS * 100] = "";
    for (int i = 0; i < w->ngpus; i++) {
        size_t used = strlen(devs);
        snprintf(devs + used, sizeof(devs) - used, "%s%s", i ? "," : "", w->gpus[i]);
    }
    strv_setenv(env, "NVIDIA_VISIBLE_DEVICES", w->ngpus ? devs : "void");
    strv_setenv(env, "CUDA_VISIBLE_DEVICES", devs);
    strv_setenv(env, "GPUMUX_WORKLOAD", w->name);
    char num[32];
    if (w->compute_pct > 0) {
        snprintf(num, sizeof(num), "%d", w->compute_pct);
        strv_setenv(env, "GPUMUX_COMPUTE_PCT", num);
    }
    if (w->memory_limit > 0) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)w->memory_limit);
        strv_setenv(env, "GPUMUX_MEMORY_LIMIT", num);
    }
    /* On an MPS GPU the workload reaches that GPU's control daemon, with its share. */
    struct gm_gpu_rec g;
    if (w->ngpus == 1 && gm_store_gpu_get(d->store, w->gpus[0], &g, NULL) == 0) {
        strv_setenv(env, "GPUMUX_GPU_MODE", gm_mode_name(g.mode));
        /* Limits are kept inside the workload by the interposer, through its region. */
        if (w->memory_limit > 0 || w->compute_pct > 0) {
            struct gm_error rerr;
            char region[PATH_MAX];
            gm_region_path(d, w->name, region, sizeof(region));
            if (access(d->cfg.interposer, R_OK) != 0) {
                gm_warn("workload %s: %s is missing: its limits are not enforced in-process",
                        w->name, d->cfg.interposer);
            } else if (gm_region_prepare(d, w, g.mode == GM_MODE_MPS, &rerr) < 0) {
                gm_warn("workload %s: %s", w->name, rerr.msg);
            } else {
                /* Its compute window exists before its first launch, not a poll later. */
                struct gm_workload_rec *all = NULL;
                size_t nall = 0;
                if (w->compute_pct > 0 && gm_store_workload_list(d->store, &all, &nall, NULL) == 0)
                    gm_region_control(d, all, nall);
                gm_workload_list_free(all, nall);
                const char *old = strv_getenv(env, "LD_PRELOAD");
                char *pre;
                if (asprintf(&pre, "%s%s%s", d->cfg.interposer, old && *old ? ":" : "",
                             old ? old : "") >= 0) {
                    strv_setenv(env, GM_MONITOR_PRELOAD_ENV, pre);
                    free(pre);
                }
                strv_setenv(env, GM_REGION_ENV, region);
            }
        }
        if (g.mode == GM_MODE_MPS) {
            char pipe[PATH_MAX], logd[PATH_MAX];
            gm_mps_dirs(d, &g, pipe, logd, sizeof(pipe));
            strv_setenv(env, "CUDA_MPS_PIPE_DIRECTORY", pipe);
            strv_setenv(env, "CUDA_MPS_LOG_DIRECTORY", logd);
            if (w->compute_pct > 0) {
                snprintf(num, sizeof(num), "%d", w->compute_pct);
                strv_setenv(env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", num);
            }
            if (w->memory_limit > 0) {
                /* Device 0: CUDA_VISIBLE_DEVICES leaves the workload this one GPU. */
                snprintf(num, sizeof(num), "0=%lluM",
                         (unsigned long long)((w->memory_limit + GM_MIB - 1) / GM_MIB));
                strv_setenv(env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", num);
            }
        }
    }
    if (strcmp(d->driver.kind, "sim") == 0) {
        /* Workloads reach the simulated driver the way they reach a real one: by soname. */
        const char *old = strv_getenv(env, "LD_LIBRARY_PATH");
        char *lp;
        if (asprintf(&lp, "%s%s%s", d->driver.sim_dir, old && *old ? ":" : "", old ? old : "") >=
            0) {
            strv_setenv(env, "LD_LIBRARY_PATH", lp);
            free(lp);
        }
        strv_setenv(env, "GPUSIM_STATE", d->cfg.gpusim_state);
        if (d->cfg.gpusim_config[0])
            strv_setenv(env, "GPUSIM_CONFIG", d->cfg.gpusim_config);
    }
    return 0;
}

int gm_workload_launch(struct gm_daemon *d, struct gm_workload_rec *w, struct gm_error *err)
{
    json_error_t jerr;
    json_t *spec = json_loads(w->spec_json ? w->spec_json : "{}", 0, &jerr);
    if (spec == NULL)
        return gm_err(err, GM_EINTERNAL, "workload %s: its recorded spec is not JSON: %s", w->name,
                      jerr.text);
    struct strv argv = {0}, env = {0};
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(spec, "command"), i, a)
        strv_push(&argv, strdup(json_string_value(a)));
    build_env(d, w, spec, &env);
    json_decref(spec);

    char dir[PATH_MAX], log[PATH_MAX], logdir[PATH_MAX];
    gm_workload_launch_dir(d, w->name, w->launch_id, dir, sizeof(dir));
    gm_workload_log_path(d, w->name, log, sizeof(log));
    snprintf(logdir, sizeof(logdir), "%s/logs", d->cfg.state_dir);
    mkdir(logdir, 0750);
    struct gm_launch l = {
        .monitor_path = d->monitor_path,
        .dir = dir,
        .log_path = log,
        .argv = argv.v,
        .envp = env.v,
        .uid = (uid_t)w->uid,
        .gid = (gid_t)w->gid,
        .cwd = NULL,
    };
    pid_t mpid = 0;
    uint64_t mstart = 0;
    int rc = argv.n ? gm_sup_launch(&l, &mpid, &mstart, err)
                    : gm_err(err, GM_EINTERNAL, "workload %s has no command", w->name);
    strv_free(&argv);
    strv_free(&env);
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

static int parse_request(const struct gm_run_request *r, struct gm_workload_rec *w,
                         const char **gpu, struct gm_error *err)
{
    int rc = gm_check_name(r->name, "workload", err);
    if (rc < 0)
        return rc;
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", r->name);
    snprintf(w->kind, sizeof(w->kind), "process");
    /* The API parsed and checked the values (range, names); they are taken as they are. */
    w->compute_pct = r->compute_pct;
    w->memory_limit = r->memory_limit;
    w->restart = r->restart;
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
            .spread = strcmp(d->cfg.placement, "spread") == 0,
        };
        struct gm_sched_result res;
        rc = gm_sched_admit(gpus, ngpus, ws, nws, &req, &res, err);
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

static void describe_gpus(const struct gm_workload_rec *w, char *buf, size_t len)
{
    snprintf(buf, len, "%s", w->ngpus ? "" : "no GPU");
    for (int i = 0; i < w->ngpus; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", i ? ", " : "GPU ", w->gpus[i]);
    }
}

/* Commits w (already inserted or updated by the caller's statement), launches it, records the
 * monitor. On a launch failure the caller's undo runs. */
static int commit_and_launch(struct gm_daemon *d, struct gm_workload_rec *w, int inserted,
                             struct gm_error *err)
{
    char object[80], where[GM_MAX_WORKLOAD_GPUS * 100];
    snprintf(object, sizeof(object), "workload/%s", w->name);
    describe_gpus(w, where, sizeof(where));
    int rc = gm_store_begin(d->store, err);
    if (rc < 0)
        return rc;
    rc = inserted ? gm_store_workload_insert(d->store, w, err)
                  : gm_store_workload_update(d->store, w, err);
    if (rc < 0) {
        gm_store_rollback(d->store);
        return rc;
    }
    gm_store_event(d->store, "info", object, "%s on %s (launch %lld)",
                   inserted ? "created" : "starting", where, (long long)w->launch_id);
    if ((rc = gm_store_commit(d->store, err)) < 0)
        return rc;

    struct gm_error lerr;
    if (gm_workload_launch(d, w, &lerr) < 0) {
        gm_store_event(d->store, "error", object, "could not start: %s", lerr.msg);
        if (inserted) {
            gm_store_workload_delete(d->store, w->name, NULL);
        } else {
            w->desired_running = 0;
            w->state = GM_W_STOPPED;
            snprintf(w->reason, sizeof(w->reason), "could not start: %.200s", lerr.msg);
            gm_store_workload_update(d->store, w, NULL);
        }
        *err = lerr;
        return -lerr.code;
    }
    rc = gm_store_workload_update(d->store, w, err);
    if (rc == 0 && w->pid > 0)
        gm_store_event(d->store, "info", object, "running (pid %d)", w->pid);
    gm_info("workload %s: started on %s (monitor %d, pid %d)", w->name, where, w->monitor_pid,
            w->pid);
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
    if (gm_store_workload_get(d->store, w.name, &old, NULL) == 0) {
        gm_workload_rec_free(&old);
        rc = gm_err(err, GM_ECONFLICT, "workload %s already exists", w.name);
        goto out;
    }
    rc = admit(d, &w, gpu, err);
    if (rc < 0)
        goto out;
    w.desired_running = 1;
    w.state = GM_W_STARTING;
    w.launch_id = 1;
    w.created_at = w.started_at = gm_now_ms();
    rc = commit_and_launch(d, &w, 1, err);
out:
    pthread_mutex_unlock(&d->lock);
    return hand_over(&w, out, rc);
}

int gm_workload_start(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                      struct gm_error *err)
{
    struct gm_workload_rec w = {0};
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, err);
    if (rc < 0)
        goto out;
    if (w.state == GM_W_STARTING || w.state == GM_W_RUNNING) {
        rc = gm_err(err, GM_ECONFLICT, "workload %s is already running (pid %d)", name, w.pid);
        goto out;
    }
    if (w.state == GM_W_STOPPING) {
        rc = gm_err(err, GM_EBUSY, "workload %s is still stopping; try again when it has stopped",
                    name);
        goto out;
    }
    /* Admission again: its GPU may have been given to a VM, or its memory to others. */
    char spec[GM_MAX_WORKLOAD_GPUS * 100] = "none";
    for (int i = 0; i < w.ngpus; i++) {
        size_t used = i ? strlen(spec) : 0;
        snprintf(spec + used, sizeof(spec) - used, "%s%s", i ? "," : "", w.gpus[i]);
    }
    w.desired_running = 0; /* not counted against itself */
    rc = admit(d, &w, spec, err);
    if (rc < 0)
        goto out;
    gm_backoff_forget(d, name);
    w.desired_running = 1;
    w.state = GM_W_STARTING;
    w.launch_id++;
    w.pid = w.monitor_pid = 0;
    w.pid_start = w.monitor_start = 0;
    w.has_exit = 0;
    w.reason[0] = '\0';
    w.started_at = gm_now_ms();
    w.finished_at = 0;
    rc = commit_and_launch(d, &w, 0, err);
out:
    pthread_mutex_unlock(&d->lock);
    return hand_over(&w, out, rc);
}

/* Marks w stopping and sends SIGTERM. Caller holds d->lock. */
static int request_stop(struct gm_daemon *d, struct gm_workload_rec *w, const char *why,
                        struct gm_error *err)
{
    char object[80];
    snprintf(object, sizeof(object), "workload/%s", w->name);
    int was_alive =
        w->state == GM_W_STARTING || w->state == GM_W_RUNNING || w->state == GM_W_STOPPING;
    w->desired_running = 0;
    if (was_alive) {
        w->state = GM_W_STOPPING;
    } else if (w->state == GM_W_EXITED) {
        w->state = GM_W_STOPPED; /* a pending restart is cancelled */
    }
    snprintf(w->reason, sizeof(w->reason), "%s", why);
    int rc = gm_store_begin(d->store, err);
    if (rc < 0)
        return rc;
    rc = gm_store_workload_update(d->store, w, err);
    if (rc < 0) {
        gm_store_rollback(d->store);
        return rc;
    }
    gm_store_event(d->store, "info", object, "%s", why);
    if ((rc = gm_store_commit(d->store, err)) < 0)
        return rc;
    gm_backoff_forget(d, w->name);
    if (was_alive) {
        char dir[PATH_MAX];
        gm_workload_launch_dir(d, w->name, w->launch_id, dir, sizeof(dir));
        gm_sup_signal(dir, SIGTERM, NULL);
        struct gm_backoff *b = gm_backoff_get(d, w->name);
        if (b != NULL)
            b->kill_at_ms = gm_now_ms() + d->cfg.stop_timeout_s * 1000;
    }
    return 0;
}

int gm_workload_stop(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                     struct gm_error *err)
{
    struct gm_workload_rec w = {0};
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, err);
    if (rc == 0 && (w.desired_running || w.state == GM_W_STARTING || w.state == GM_W_RUNNING))
        rc = request_stop(d, &w, "stopped by request", err);
    pthread_mutex_unlock(&d->lock);
    return hand_over(&w, out, rc);
}

int gm_workload_delete(struct gm_daemon *d, const char *name, struct gm_workload_rec *out,
                       struct gm_error *err)
{
    struct gm_workload_rec w = {0};
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, err);
    if (rc == 0 && (w.desired_running || launched(&w)))
        rc = request_stop(d, &w, "deleted by request", err);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) {
        gm_workload_rec_free(&w);
        return rc;
    }
    /* Wait, without holding the lock, until nothing of the launch runs: the record goes only
     * once its process is gone, so a crash in between leaves a record, never an orphan. */
    char dir[PATH_MAX];
    gm_workload_launch_dir(d, name, w.launch_id, dir, sizeof(dir));
    int64_t deadline = gm_now_ms() + d->cfg.stop_timeout_s * 1000, hard = deadline + 5000;
    int killed = 0;
    for (;;) {
        struct gm_sup_status st;
        if (gm_sup_poll(dir, &st, NULL) < 0 || st.state != GM_SUP_ALIVE)
            break;
        int64_t now = gm_now_ms();
        if (now >= deadline && !killed) {
            gm_sup_signal(dir, SIGKILL, NULL);
            killed = 1;
        }
        if (now >= hard) {
            gm_workload_rec_free(&w);
            return gm_err(err, GM_EBUSY, "workload %s: its process did not end after SIGKILL",
                          name);
        }
        usleep(20000);
    }
    pthread_mutex_lock(&d->lock);
    struct gm_workload_rec now = {0};
    rc = gm_store_workload_get(d->store, name, &now, err);
    if (rc == 0 && now.launch_id != w.launch_id)
        rc = gm_err(err, GM_ECONFLICT, "workload %s was started again while it was being deleted",
                    name);
    gm_workload_rec_free(&now);
    if (rc == 0)
        rc = gm_store_begin(d->store, err);
    if (rc == 0) {
        rc = gm_store_workload_delete(d->store, name, err);
        if (rc == 0) {
            char object[80];
            snprintf(object, sizeof(object), "workload/%s", name);
            gm_store_event(d->store, "info", object, "deleted");
            rc = gm_store_commit(d->store, err);
        } else {
            gm_store_rollback(d->store);
        }
    }
    if (rc == 0) {
        gm_backoff_forget(d, name);
        gm_sup_remove(dir, NULL);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/workloads/%s", d->cfg.run_dir, name);
        rmdir(path);
        gm_workload_log_path(d, name, path, sizeof(path));
        unlink(path);
        gm_region_path(d, name, path, sizeof(path));
        unlink(path);
    }
    pthread_mutex_unlock(&d->lock);
    return hand_over(&w, out, rc);
}

int gm_workload_set_limits(struct gm_daemon *d, const char *name, int pct, uint64_t mem,
                           struct gm_workload_rec *out, char *msgs, size_t len,
                           struct gm_error *err)
{
    struct gm_workload_rec w = {0};
    int rc;
    if (pct < 0 && mem == UINT64_MAX)
        return gm_err(err, GM_EINVAL, "workload %s: give --compute, --memory or both", name);
    pthread_mutex_lock(&d->lock);
    rc = gm_store_workload_get(d->store, name, &w, err);
    if (rc < 0)
        goto out;
    if (w.ngpus != 1 && ((pct > 0) || (mem != UINT64_MAX && mem > 0))) {
        rc = gm_err(err, GM_EINVAL,
                    "workload %s: a fractional share applies to exactly one GPU, and it has %d",
                    name, w.ngpus);
        goto out;
    }
    struct gm_workload_rec next = w;
    if (pct >= 0)
        next.compute_pct = pct;
    if (mem != UINT64_MAX)
        next.memory_limit = mem;
    if (gm_workload_active(&w)) {
        /* The new memory limit must fit beside the others on the GPU. */
        rc = admit(d, &next, next.gpus[0], err);
        if (rc < 0)
            goto out;
    }
    char object[80];
    snprintf(object, sizeof(object), "workload/%s", name);
    if ((rc = gm_store_begin(d->store, err)) < 0)
        goto out;
    if ((rc = gm_store_workload_update(d->store, &next, err)) < 0) {
        gm_store_rollback(d->store);
        goto out;
    }
    char a[32] = "none", b[32] = "none";
    if (next.memory_limit)
        gm_format_size(next.memory_limit, a, sizeof(a));
    if (next.compute_pct)
        snprintf(b, sizeof(b), "%d%%", next.compute_pct);
    gm_store_event(d->store, "info", object, "limits set: compute %s, memory %s", b, a);
    if ((rc = gm_store_commit(d->store, err)) < 0)
        goto out;
    w = next;
    struct gm_gpu_rec g;
    int by_mps = w.ngpus == 1 && gm_store_gpu_get(d->store, w.gpus[0], &g, NULL) == 0 &&
                 g.mode == GM_MODE_MPS;
    char path[PATH_MAX];
    gm_region_path(d, name, path, sizeof(path));
    struct gm_region *r;
    int live = gm_workload_active(&w) && gm_region_map(path, &r, NULL) == 0;
    if (live) {
        gm_region_set_limits(r, w.memory_limit, w.compute_pct, by_mps);
        gm_region_unmap(r);
        snprintf(
            msgs, len, "Limits of %s changed while it runs: compute %s, memory %s.%s\n", name, b, a,
            by_mps && pct >= 0 ? " MPS applies the compute share when the workload starts next."
                               : "");
    } else {
        snprintf(msgs, len,
                 "Limits of %s recorded: compute %s, memory %s; they apply when it starts%s.\n",
                 name, b, a,
                 gm_workload_active(&w) ? " next (it runs without the interposer)" : "");
    }
out:
    pthread_mutex_unlock(&d->lock);
    return hand_over(&w, out, rc);
}
