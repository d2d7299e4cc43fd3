#include "daemon/mps.h"
#include "common/log.h"
#include "common/clock.h"
#include "common/parse.h"
#include "common/path.h"
#include "daemon/spawn.h"
#include "daemon/supervise.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define MPS_TIMEOUT_MS 10000

/* What the manager remembers per GPU, keyed by UUID, for any number of GPUs. Guarded by its own
 * mutex, held only for lookups: the control programs run without any lock. */
struct gm_mps_gpu {
    char uuid[96];
    int pid;             /* last known control daemon, 0 = none */
    int set_exclusive;   /* gpumux changed the compute mode for MPS */
    int64_t retry_at_ms; /* after a failed restart, when to try again (monotonic ms) */
};

struct gm_mps {
    pthread_mutex_t lock;
    struct gm_mps_gpu *v;
    size_t n;
};

int gm_mps_new(struct gm_mps **out)
{
    struct gm_mps *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -GM_ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
}

void gm_mps_free(struct gm_mps *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->v);
    free(m);
}

/* A copy of the GPU's entry (zeroed when there is none). */
static struct gm_mps_gpu entry_get(struct gm_mps *m, const char *uuid)
{
    struct gm_mps_gpu e = {0};
    snprintf(e.uuid, sizeof(e.uuid), "%s", uuid);
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].uuid, uuid) == 0)
            e = m->v[i];
    pthread_mutex_unlock(&m->lock);
    return e;
}

static void entry_put(struct gm_mps *m, const struct gm_mps_gpu *e)
{
    pthread_mutex_lock(&m->lock);
    size_t i = 0;
    while (i < m->n && strcmp(m->v[i].uuid, e->uuid) != 0)
        i++;
    if (i == m->n) {
        struct gm_mps_gpu *nv = realloc(m->v, (m->n + 1) * sizeof(*nv));
        if (nv == NULL) {
            pthread_mutex_unlock(&m->lock);
            return;
        }
        m->v = nv;
        m->n++;
    }
    m->v[i] = *e;
    pthread_mutex_unlock(&m->lock);
}

int gm_mps_dirs(const struct gm_daemon *d, const struct gm_gpu_rec *g, char *pipe, char *log,
                size_t len)
{
    if (gm_path(NULL, pipe, len, "%s/mps/%s/pipe", d->cfg.run_dir, g->uuid) < 0)
        return -GM_EINVAL;
    return gm_path(NULL, log, len, "%s/mps/%s/log", d->cfg.run_dir, g->uuid) < 0 ? -GM_EINVAL : 0;
}

static int control_binary(const struct gm_daemon *d, char *path, size_t len, struct gm_error *err)
{
    if (d->cfg.mps_control[0]) {
        if (gm_path(err, path, len, "%s", d->cfg.mps_control) < 0)
            return -GM_EINVAL;
    } else if (d->driver.kind == GM_DRIVER_SIM) {
        if (gm_path(err, path, len, "%s/nvidia-cuda-mps-control", d->driver.sim_dir) < 0)
            return -GM_EINVAL;
    } else if (gm_spawn_which("nvidia-cuda-mps-control", path, len) < 0)
        return gm_err(err, GM_EDRIVER,
                      "the MPS control daemon nvidia-cuda-mps-control is not installed (not in "
                      "PATH); install NVIDIA's MPS, or set mps_control in the configuration");
    if (access(path, X_OK) < 0)
        return gm_err_errno(err, GM_EDRIVER, errno, "the MPS control daemon %s", path);
    return 0;
}

/* The environment of the control client and daemon: the daemon's own plus the GPU's MPS
 * directories. Returns a NULL-terminated array to free with free_env. */
static char **mps_env(const struct gm_daemon *d, const struct gm_gpu_rec *g)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 4, sizeof(*env));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CUDA_VISIBLE_DEVICES=", 21) != 0 &&
            strncmp(environ[i], "CUDA_MPS_", 9) != 0)
            env[k++] = strdup(environ[i]);
    char pipe[PATH_MAX], log[PATH_MAX];
    gm_mps_dirs(d, g, pipe, log, sizeof(pipe));
    if (asprintf(&env[k++], "CUDA_VISIBLE_DEVICES=%s", g->uuid) < 0 ||
        asprintf(&env[k++], "CUDA_MPS_PIPE_DIRECTORY=%s", pipe) < 0 ||
        asprintf(&env[k++], "CUDA_MPS_LOG_DIRECTORY=%s", log) < 0)
        env[k - 1] = NULL;
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

static int read_pid(const char *pipe)
{
    char path[PATH_MAX];
    if (gm_path(NULL, path, sizeof(path), "%s/nvidia-cuda-mps-control.pid", pipe) < 0)
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid > 0 && gm_proc_alive(pid, gm_proc_start_time(pid)) ? pid : 0;
}

int gm_mps_command(struct gm_daemon *d, const struct gm_gpu_rec *g, const char *cmd, char *out,
                   size_t len, struct gm_error *err)
{
    char bin[PATH_MAX];
    int rc = control_binary(d, bin, sizeof(bin), err);
    if (rc < 0)
        return rc;
    char **env = mps_env(d, g);
    char line[512];
    snprintf(line, sizeof(line), "%s\n", cmd);
    char *argv[] = {bin, NULL};
    int status = 0;
    rc = gm_spawn_capture(argv, env, line, out, len, MPS_TIMEOUT_MS, &status, err);
    free_env(env);
    if (rc < 0)
        return rc;
    /* Trailing newlines are the protocol's, not the answer's. */
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    if (status != 0)
        return gm_err(err, GM_EDRIVER, "GPU %d: MPS command '%s' failed (status %d): %s", g->idx,
                      cmd, status, out);
    return 0;
}

int gm_mps_status(struct gm_daemon *d, const struct gm_gpu_rec *g, struct gm_mps_status *st)
{
    memset(st, 0, sizeof(*st));
    gm_mps_dirs(d, g, st->pipe_dir, st->log_dir, sizeof(st->pipe_dir));
    st->control_pid = read_pid(st->pipe_dir);
    st->running = st->control_pid > 0;
    if (!st->running)
        return 0;
    char out[1024];
    if (gm_mps_command(d, g, "get_server_list", out, sizeof(out), NULL) == 0) {
        for (char *p = out; *p; p++)
            if (*p == '\n')
                *p = ' ';
        if (snprintf(st->servers, sizeof(st->servers), "%s", out) >= (int)sizeof(st->servers))
            snprintf(st->servers + sizeof(st->servers) - 4, 4, "...");
    }
    if (gm_mps_command(d, g, "get_default_active_thread_percentage", out, sizeof(out), NULL) == 0)
        if (snprintf(st->default_pct, sizeof(st->default_pct), "%s", out) >=
            (int)sizeof(st->default_pct))
            st->default_pct[0] = '\0'; /* not a percentage */
    return 0;
}

/* nvidia-cuda-mps-control's limit answer ("2G", "512M", "0") in MiB. */
static unsigned long long mib_of_limit(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    switch (*end) {
    case 'T':
        return v << 20;
    case 'G':
        return v << 10;
    case 'M':
        return v;
    case 'K':
        return v >> 10;
    default:
        return v >> 20;
    }
}

/* The GPU's MPS defaults given to its control daemon. On one that ran already, only what
 * differs from what it has, so that a repeated start changes and says nothing. */
static int apply_defaults(struct gm_daemon *d, const struct gm_gpu_rec *g, int running,
                          struct gm_mps_outcome *o, struct gm_error *err)
{
    char cmd[128], ans[512];
    int rc;
    if (g->mps_default_pct > 0) {
        double now = -1;
        if (running && gm_mps_command(d, g, "get_default_active_thread_percentage", ans,
                                      sizeof(ans), NULL) == 0)
            now = strtod(ans, NULL);
        if (!running || (int)(now + 0.5) != g->mps_default_pct) {
            snprintf(cmd, sizeof(cmd), "set_default_active_thread_percentage %d",
                     g->mps_default_pct);
            if ((rc = gm_mps_command(d, g, cmd, ans, sizeof(ans), err)) < 0)
                return gm_err_wrap(err, "GPU %d", g->idx);
            o->pct_set = g->mps_default_pct;
            o->pct_was = running ? now : -1;
        }
    }
    if (g->mps_default_mem > 0) {
        unsigned long long want = (unsigned long long)(g->mps_default_mem / GM_MIB), now = 0;
        if (running && gm_mps_command(d, g, "get_default_device_pinned_mem_limit 0", ans,
                                      sizeof(ans), NULL) == 0)
            now = mib_of_limit(ans);
        if (!running || now != want) {
            snprintf(cmd, sizeof(cmd), "set_default_device_pinned_mem_limit 0 %lluM", want);
            if ((rc = gm_mps_command(d, g, cmd, ans, sizeof(ans), err)) < 0)
                return gm_err_wrap(err, "GPU %d", g->idx);
            o->mem_set = g->mps_default_mem;
        }
    }
    o->defaults_to_running = running && (o->pct_set || o->mem_set);
    return 0;
}

int gm_mps_start(struct gm_daemon *d, const struct gm_gpu_rec *g, struct gm_mps_outcome *o,
                 struct gm_error *err)
{
    char bin[PATH_MAX], pipe[PATH_MAX], log[PATH_MAX];
    memset(o, 0, sizeof(*o));
    o->gpu_idx = g->idx;
    snprintf(o->pci_bus_id, sizeof(o->pci_bus_id), "%s", g->pci_bus_id);
    int rc = control_binary(d, bin, sizeof(bin), err);
    if (rc < 0)
        return gm_err_wrap(err, "GPU %d (%s): cannot start MPS", g->idx, g->uuid);
    if (gm_mps_dirs(d, g, pipe, log, sizeof(pipe)) < 0)
        return gm_err(err, GM_EINVAL, "GPU %d: the MPS directories' paths are too long", g->idx);
    snprintf(o->pipe_dir, sizeof(o->pipe_dir), "%s", pipe);
    struct gm_mps_gpu e = entry_get(d->mps, g->uuid);
    int pid = read_pid(pipe);
    if (pid > 0) {
        e.pid = pid;
        entry_put(d->mps, &e);
        o->already_ran = 1;
        o->pid = pid;
        /* A running control daemon takes new defaults for the clients that start from now
         * on, as nvidia-cuda-mps-control's set_default_* do; running clients keep theirs. */
        return apply_defaults(d, g, 1, o, err);
    }
    if ((rc = gm_mkdir_p(pipe, 0755, err)) < 0 || (rc = gm_mkdir_p(log, 0755, err)) < 0)
        return gm_err_wrap(err, "GPU %d", g->idx);
    if (d->cfg.mps_exclusive) {
        struct gm_gpu_live *live = calloc(1, sizeof(*live));
        if (live != NULL && gm_gpu_query(g->idx, live, NULL) == 0 && live->compute_mode != 3) {
            if ((rc = gm_gpu_set_compute_mode(g->idx, 3, err)) < 0) {
                free(live);
                return gm_err_wrap(err, "GPU %d (%s): cannot set EXCLUSIVE_PROCESS", g->idx,
                                   g->uuid);
            }
            e.set_exclusive = 1;
            o->exclusive_set = 1;
        }
        free(live);
    }
    char **env = mps_env(d, g);
    char *argv[] = {bin, (char *)"-d", NULL};
    char out[2048];
    int status = 0;
    rc = gm_spawn_capture(argv, env, NULL, out, sizeof(out), MPS_TIMEOUT_MS, &status, err);
    free_env(env);
    if (rc == 0 && status != 0)
        rc = gm_err(err, GM_EDRIVER, "%s -d exited with status %d: %s", bin, status, out);
    /* The daemon forks away at once and writes its pid file when it is ready. */
    for (int64_t until = gm_mono_ms() + MPS_TIMEOUT_MS;
         rc == 0 && (pid = read_pid(pipe)) == 0 && gm_mono_ms() < until;)
        usleep(10000);
    if (rc == 0 && pid == 0)
        rc = gm_err(err, GM_EDRIVER, "%s -d started but wrote no pid file in %s within %d s", bin,
                    pipe, MPS_TIMEOUT_MS / 1000);
    if (rc < 0) {
        entry_put(d->mps, &e);
        return gm_err_wrap(err, "GPU %d (%s): cannot start MPS", g->idx, g->uuid);
    }
    e.pid = pid;
    entry_put(d->mps, &e);
    o->started = 1;
    o->pid = pid;

    if ((rc = apply_defaults(d, g, 0, o, err)) < 0)
        return rc;
    gm_info("GPU %d: MPS control daemon started (pid %d)", g->idx, pid);
    return 0;
}

int gm_mps_stop(struct gm_daemon *d, const struct gm_gpu_rec *g, struct gm_mps_outcome *o)
{
    char pipe[PATH_MAX], log[PATH_MAX], ans[512];
    memset(o, 0, sizeof(*o));
    o->gpu_idx = g->idx;
    snprintf(o->pci_bus_id, sizeof(o->pci_bus_id), "%s", g->pci_bus_id);
    struct gm_mps_gpu e = entry_get(d->mps, g->uuid);
    int pid = gm_mps_dirs(d, g, pipe, log, sizeof(pipe)) == 0 ? read_pid(pipe) : 0;
    e.pid = 0;
    struct gm_error err;
    if (pid > 0) {
        if (gm_mps_command(d, g, "quit", ans, sizeof(ans), &err) < 0)
            gm_warn("GPU %d: MPS quit: %s", g->idx, err.msg);
        for (int64_t until = gm_mono_ms() + 5000;
             gm_proc_alive(pid, gm_proc_start_time(pid)) && gm_mono_ms() < until;)
            usleep(10000);
        if (gm_proc_alive(pid, gm_proc_start_time(pid))) {
            kill(pid, SIGKILL);
            o->killed = 1;
        }
        o->stopped = 1;
        o->pid = pid;
    } else {
        o->was_not_running = 1;
    }
    if (e.set_exclusive) {
        if (gm_gpu_set_compute_mode(g->idx, 0, &err) == 0)
            o->exclusive_reset = 1;
        e.set_exclusive = 0;
    }
    entry_put(d->mps, &e);
    return 0;
}

void gm_mps_check(struct gm_daemon *d, int at_start)
{
    struct gm_gpu_rec *gpus = NULL;
    size_t n = 0;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_gpu_list(d->store, &gpus, &n, &err);
    /* A GPU whose mode is changing is its mode change's business. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (gm_strv_find(&d->changing, gpus[i].uuid) >= 0)
            gpus[i].present = 0;
    pthread_mutex_unlock(&d->lock);
    if (rc < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct gm_gpu_rec *g = &gpus[i];
        if (g->mode != GM_MODE_MPS || !g->present)
            continue;
        char pipe[PATH_MAX], log[PATH_MAX];
        if (gm_mps_dirs(d, g, pipe, log, sizeof(pipe)) < 0 || read_pid(pipe) > 0)
            continue;
        struct gm_mps_gpu e = entry_get(d->mps, g->uuid);
        int64_t now = gm_mono_ms();
        if (e.retry_at_ms != 0 && now < e.retry_at_ms)
            continue;
        char object[32], msg[1200];
        snprintf(object, sizeof(object), "gpu/%d", g->idx);
        struct gm_mps_outcome o;
        enum gm_level level = GM_LEVEL_INFO;
        int was = e.pid;
        if (gm_mps_start(d, g, &o, &err) < 0) {
            /* Said once per outage, tried again every few seconds. */
            int first = e.retry_at_ms == 0;
            e = entry_get(d->mps, g->uuid);
            e.retry_at_ms = now + 5000;
            entry_put(d->mps, &e);
            if (!first)
                continue;
            gm_error("GPU %d: %s", g->idx, err.msg);
            level = GM_LEVEL_ERROR;
            snprintf(msg, sizeof(msg), "MPS control daemon is not running: %s", err.msg);
        } else {
            e = entry_get(d->mps, g->uuid);
            e.retry_at_ms = 0;
            entry_put(d->mps, &e);
            if (at_start && was == 0) {
                snprintf(msg, sizeof(msg), "MPS control daemon started (pid %d)", o.pid);
            } else {
                level = GM_LEVEL_WARNING;
                snprintf(msg, sizeof(msg),
                         "MPS control daemon (pid %d) died; restarted it (pid %d)", was, o.pid);
            }
        }
        pthread_mutex_lock(&d->lock);
        gm_store_event(d->store, level, object, "%s", msg);
        pthread_mutex_unlock(&d->lock);
    }
    free(gpus);
}
