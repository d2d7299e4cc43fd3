#include "daemon/mps.h"
#include "common/log.h"
#include "common/parse.h"
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

void gm_mps_dirs(const struct gm_daemon *d, const struct gm_gpu_rec *g, char *pipe, char *log,
                 size_t len)
{
    snprintf(pipe, len, "%s/mps/%s/pipe", d->cfg.run_dir, g->uuid);
    snprintf(log, len, "%s/mps/%s/log", d->cfg.run_dir, g->uuid);
}

static int control_binary(const struct gm_daemon *d, char *path, size_t len, struct gm_error *err)
{
    if (d->cfg.mps_control[0])
        snprintf(path, len, "%s", d->cfg.mps_control);
    else if (strcmp(d->driver.kind, "sim") == 0)
        snprintf(path, len, "%s/nvidia-cuda-mps-control", d->driver.sim_dir);
    else if (gm_spawn_which("nvidia-cuda-mps-control", path, len) < 0)
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

static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int read_pid(const char *pipe)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nvidia-cuda-mps-control.pid", pipe);
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

static void append(char *msgs, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *msgs, size_t len, const char *fmt, ...)
{
    if (msgs == NULL)
        return;
    size_t used = strlen(msgs);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msgs + used, len - used, fmt, ap);
    va_end(ap);
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
        snprintf(st->servers, sizeof(st->servers), "%s", out);
    }
    if (gm_mps_command(d, g, "get_default_active_thread_percentage", out, sizeof(out), NULL) == 0)
        snprintf(st->default_pct, sizeof(st->default_pct), "%s", out);
    return 0;
}

int gm_mps_start(struct gm_daemon *d, const struct gm_gpu_rec *g, char *msgs, size_t len,
                 struct gm_error *err)
{
    char bin[PATH_MAX], pipe[PATH_MAX], log[PATH_MAX];
    int rc = control_binary(d, bin, sizeof(bin), err);
    if (rc < 0)
        return gm_err_wrap(err, "GPU %d (%s): cannot start MPS", g->idx, g->uuid);
    gm_mps_dirs(d, g, pipe, log, sizeof(pipe));
    int pid = read_pid(pipe);
    if (pid > 0) {
        d->mps_pid[g->idx & 63] = pid;
        append(msgs, len, "MPS control daemon for GPU %d already runs (pid %d).\n", g->idx, pid);
        return 0;
    }
    if (mkdirs(pipe) < 0 || mkdirs(log) < 0)
        return gm_err_errno(err, GM_EIO, errno, "GPU %d: creating %s", g->idx, pipe);
    if (d->cfg.mps_exclusive) {
        struct gm_gpu_live *live = calloc(1, sizeof(*live));
        if (live != NULL && gm_gpu_query(g->idx, live, NULL) == 0 && live->compute_mode != 3) {
            if ((rc = gm_gpu_set_compute_mode(g->idx, 3, err)) < 0) {
                free(live);
                return gm_err_wrap(err, "GPU %d (%s): cannot set EXCLUSIVE_PROCESS", g->idx,
                                   g->uuid);
            }
            d->mps_set_exclusive[g->idx & 63] = 1;
            append(msgs, len, "Set compute mode to EXCLUSIVE_PROCESS for GPU %s.\n", g->pci_bus_id);
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
    for (int i = 0; rc == 0 && i < 200 && (pid = read_pid(pipe)) == 0; i++)
        usleep(10000);
    if (rc == 0 && pid == 0)
        rc = gm_err(err, GM_EDRIVER, "%s -d started but wrote no pid file in %s", bin, pipe);
    if (rc < 0)
        return gm_err_wrap(err, "GPU %d (%s): cannot start MPS", g->idx, g->uuid);
    d->mps_pid[g->idx & 63] = pid;
    append(msgs, len, "Started the MPS control daemon for GPU %d (pid %d, pipe directory %s).\n",
           g->idx, pid, pipe);

    char cmd[128], ans[512];
    if (g->mps_default_pct > 0) {
        snprintf(cmd, sizeof(cmd), "set_default_active_thread_percentage %d", g->mps_default_pct);
        if ((rc = gm_mps_command(d, g, cmd, ans, sizeof(ans), err)) < 0)
            return rc;
        append(msgs, len, "Set the default active thread percentage to %d.\n", g->mps_default_pct);
    }
    if (g->mps_default_mem > 0) {
        snprintf(cmd, sizeof(cmd), "set_default_device_pinned_mem_limit 0 %lluM",
                 (unsigned long long)(g->mps_default_mem / GM_MIB));
        if ((rc = gm_mps_command(d, g, cmd, ans, sizeof(ans), err)) < 0)
            return rc;
        append(msgs, len, "Set the default pinned device memory limit to %lluMiB.\n",
               (unsigned long long)(g->mps_default_mem / GM_MIB));
    }
    gm_info("GPU %d: MPS control daemon started (pid %d)", g->idx, pid);
    return 0;
}

int gm_mps_stop(struct gm_daemon *d, const struct gm_gpu_rec *g, char *msgs, size_t len,
                struct gm_error *err)
{
    char pipe[PATH_MAX], log[PATH_MAX], ans[512];
    gm_mps_dirs(d, g, pipe, log, sizeof(pipe));
    int pid = read_pid(pipe);
    d->mps_pid[g->idx & 63] = 0;
    if (pid > 0) {
        if (gm_mps_command(d, g, "quit", ans, sizeof(ans), err) < 0)
            gm_warn("GPU %d: MPS quit: %s", g->idx, err->msg);
        for (int i = 0; i < 500 && kill(pid, 0) == 0 && gm_proc_alive(pid, gm_proc_start_time(pid));
             i++)
            usleep(10000);
        if (gm_proc_alive(pid, gm_proc_start_time(pid))) {
            kill(pid, SIGKILL);
            append(msgs, len, "The MPS control daemon of GPU %d did not quit; killed it.\n",
                   g->idx);
        }
        append(msgs, len, "Stopped the MPS control daemon for GPU %d (pid %d).\n", g->idx, pid);
    } else {
        append(msgs, len, "No MPS control daemon ran for GPU %d.\n", g->idx);
    }
    if (d->mps_set_exclusive[g->idx & 63]) {
        if (gm_gpu_set_compute_mode(g->idx, 0, err) == 0)
            append(msgs, len, "Set compute mode to DEFAULT for GPU %s.\n", g->pci_bus_id);
        d->mps_set_exclusive[g->idx & 63] = 0;
    }
    gm_error_clear(err);
    return 0;
}

void gm_mps_check(struct gm_daemon *d, int at_start)
{
    struct gm_gpu_rec *gpus = NULL;
    size_t n = 0;
    struct gm_error err;
    if (gm_store_gpu_list(d->store, &gpus, &n, &err) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct gm_gpu_rec *g = &gpus[i];
        if (g->mode != GM_MODE_MPS || !g->present)
            continue;
        char pipe[PATH_MAX], log[PATH_MAX];
        gm_mps_dirs(d, g, pipe, log, sizeof(pipe));
        int was = d->mps_pid[g->idx & 63];
        if (read_pid(pipe) > 0)
            continue;
        char object[32];
        snprintf(object, sizeof(object), "gpu/%d", g->idx);
        int64_t now = gm_now_ms();
        if (now < d->mps_retry_at[g->idx & 63])
            continue;
        if (gm_mps_start(d, g, NULL, 0, &err) < 0) {
            /* Said once per outage, tried again every few seconds. */
            if (d->mps_retry_at[g->idx & 63] == 0) {
                gm_error("GPU %d: %s", g->idx, err.msg);
                gm_store_event(d->store, "error", object, "MPS control daemon is not running: %s",
                               err.msg);
            }
            d->mps_retry_at[g->idx & 63] = now + 5000;
            continue;
        }
        d->mps_retry_at[g->idx & 63] = 0;
        if (at_start && was == 0)
            gm_store_event(d->store, "info", object, "MPS control daemon started (pid %d)",
                           d->mps_pid[g->idx & 63]);
        else
            gm_store_event(d->store, "warning", object,
                           "MPS control daemon (pid %d) died; restarted it (pid %d)", was,
                           d->mps_pid[g->idx & 63]);
    }
    free(gpus);
}
