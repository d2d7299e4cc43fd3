/* Pure decisions of the daemon: see plan.h. Nothing here touches the store, the clock, the
 * environment or the file system. */
#include "daemon/plan.h"
#include "common/parse.h"
#include "daemon/sched.h"

#include <gpumux/region.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the launch environment ----------------------------------------------------------------- */

int gm_plan_needs_region(const struct gm_workload_rec *w)
{
    return w->ngpus == 1 && (w->memory_limit > 0 || w->compute_pct > 0);
}

/* Variables of the daemon's own environment a workload does not inherit: gpumux sets them. */
static int not_inherited(const char *e)
{
    return strncmp(e, "GPUMUX_", 7) == 0 || strncmp(e, "NVIDIA_VISIBLE_DEVICES=", 23) == 0 ||
           strncmp(e, "CUDA_VISIBLE_DEVICES=", 21) == 0 || strncmp(e, "NOTIFY_SOCKET=", 14) == 0;
}

static int prepend_path(struct gm_strv *env, const char *key, const char *first)
{
    const char *old = gm_strv_getenv(env, key);
    char *v = NULL;
    if (asprintf(&v, "%s%s%s", first, old && *old ? ":" : "", old && *old ? old : "") < 0)
        return -GM_ENOMEM;
    int rc = gm_strv_setenv(env, key, v);
    free(v);
    return rc;
}

static int set_num(struct gm_strv *env, const char *key, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    return gm_strv_setenv(env, key, num);
}

int gm_plan_launch(const struct gm_launch_inputs *in, const struct gm_workload_rec *w,
                   const struct gm_gpu_rec *g, struct gm_strv *argv, struct gm_strv *env,
                   struct gm_error *err)
{
    json_error_t jerr;
    json_t *spec = json_loads(w->spec_json ? w->spec_json : "{}", 0, &jerr);
    if (spec == NULL)
        return gm_err(err, GM_EINTERNAL, "workload %s: its recorded spec is not JSON: %s", w->name,
                      jerr.text);
    int rc = 0;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(spec, "command"), i, a)
    {
        if (rc == 0 && json_is_string(a))
            rc = gm_strv_add(argv, json_string_value(a));
    }
    if (rc == 0 && argv->n == 0)
        rc = gm_err(err, GM_EINTERNAL, "workload %s has no command", w->name);

    for (char *const *e = in->base_env; rc == 0 && e && *e; e++)
        if (!not_inherited(*e))
            rc = gm_strv_add(env, *e);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(spec, "env"), k, v)
    {
        if (rc == 0 && json_is_string(v))
            rc = gm_strv_setenv(env, k, json_string_value(v));
    }
    json_t *enforce = json_object_get(spec, "enforce");
    if (rc == 0 && json_is_string(enforce))
        rc = gm_strv_setenv(env, GM_REGION_STRICT_ENV, json_string_value(enforce));
    json_decref(spec);
    if (rc < 0)
        return rc == -GM_ENOMEM ? gm_err(err, GM_ENOMEM, "out of memory") : rc;

    struct gm_strv devs = {0};
    for (int d = 0; d < w->ngpus; d++)
        gm_strv_add(&devs, w->gpus[d]);
    char *list = gm_strv_join(&devs, ",");
    gm_strv_free(&devs);
    if (list == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    gm_strv_setenv(env, "NVIDIA_VISIBLE_DEVICES", w->ngpus ? list : "void");
    gm_strv_setenv(env, "CUDA_VISIBLE_DEVICES", list);
    free(list);
    gm_strv_setenv(env, "GPUMUX_WORKLOAD", w->name);
    if (w->compute_pct > 0)
        set_num(env, "GPUMUX_COMPUTE_PCT", (uint64_t)w->compute_pct);
    if (w->memory_limit > 0)
        set_num(env, "GPUMUX_MEMORY_LIMIT", w->memory_limit);
    if (g != NULL) {
        gm_strv_setenv(env, "GPUMUX_GPU_MODE", gm_mode_name(g->mode));
        /* Limits are kept inside the workload by the interposer, through its region. */
        if (gm_plan_needs_region(w) && in->interposer != NULL && in->region_path != NULL) {
            const char *old = gm_strv_getenv(env, "LD_PRELOAD");
            char *pre = NULL;
            if (asprintf(&pre, "%s%s%s", in->interposer, old && *old ? ":" : "", old ? old : "") >=
                0) {
                gm_strv_setenv(env, GM_MONITOR_PRELOAD_ENV, pre);
                free(pre);
            }
            gm_strv_setenv(env, GM_REGION_ENV, in->region_path);
        }
        /* On an MPS GPU the workload reaches that GPU's control daemon, with its share. */
        if (g->mode == GM_MODE_MPS && in->mps_pipe != NULL && in->mps_log != NULL) {
            gm_strv_setenv(env, "CUDA_MPS_PIPE_DIRECTORY", in->mps_pipe);
            gm_strv_setenv(env, "CUDA_MPS_LOG_DIRECTORY", in->mps_log);
            if (w->compute_pct > 0)
                set_num(env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", (uint64_t)w->compute_pct);
            if (w->memory_limit > 0) {
                /* Device 0: CUDA_VISIBLE_DEVICES leaves the workload this one GPU. */
                char lim[48];
                snprintf(lim, sizeof(lim), "0=%" PRIu64 "M",
                         (w->memory_limit + GM_MIB - 1) / GM_MIB);
                gm_strv_setenv(env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", lim);
            }
        }
    }
    if (in->sim) {
        /* Workloads reach the simulated driver the way they reach a real one: by soname. */
        prepend_path(env, "LD_LIBRARY_PATH", in->sim_dir);
        gm_strv_setenv(env, "GPUSIM_STATE", in->gpusim_state);
        if (in->gpusim_config != NULL && in->gpusim_config[0])
            gm_strv_setenv(env, "GPUSIM_CONFIG", in->gpusim_config);
    }
    return gm_strv_array(env) != NULL && gm_strv_array(argv) != NULL
               ? 0
               : gm_err(err, GM_ENOMEM, "out of memory");
}

/* ---- reconciliation ------------------------------------------------------------------------ */

int gm_plan_stop(const struct gm_workload_rec *w, const char *why, struct gm_workload_rec *next)
{
    int alive = w->state == GM_W_STARTING || w->state == GM_W_RUNNING || w->state == GM_W_STOPPING;
    if (next != w)
        *next = *w;
    next->desired_running = 0;
    if (alive)
        next->state = GM_W_STOPPING;
    else if (next->state == GM_W_EXITED)
        next->state = GM_W_STOPPED; /* a pending restart is cancelled */
    snprintf(next->reason, sizeof(next->reason), "%s", why);
    return alive;
}

int64_t gm_plan_backoff_ms(int restarts)
{
    int64_t ms = 100;
    for (int i = 0; i < restarts && ms < 10000; i++)
        ms *= 2;
    return ms < 10000 ? ms : 10000;
}

static int wants_restart(const struct gm_workload_rec *w)
{
    if (!w->desired_running)
        return 0;
    switch (w->restart) {
    case GM_RESTART_ALWAYS:
        return 1;
    case GM_RESTART_ON_FAILURE:
        /* on-failure:N: N restarts, then it stays exited. */
        if (w->restart_max > 0 && w->restart_count >= w->restart_max)
            return 0;
        return !w->has_exit || w->exit_code != 0;
    default:
        return 0;
    }
}

static void event(struct gm_rc_plan *p, enum gm_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void event(struct gm_rc_plan *p, enum gm_level level, const char *fmt, ...)
{
    p->level = level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->event, sizeof(p->event), fmt, ap);
    va_end(ap);
}

/* The next launch of w: a new launch number, nothing of the old one kept. */
static void next_launch(struct gm_workload_rec *n, int64_t now_ms)
{
    n->launch_id++;
    n->state = GM_W_STARTING;
    n->pid = n->monitor_pid = 0;
    n->pid_start = n->monitor_start = 0;
    n->has_exit = 0;
    n->started_at = now_ms;
    n->finished_at = 0;
    n->reason[0] = '\0';
}

static void ended(const struct gm_sup_status *st, int64_t now_ms, struct gm_rc_plan *p)
{
    struct gm_workload_rec *n = &p->next;
    p->action = GM_RC_ENDED;
    p->save = 1;
    p->remove_dir = 1;
    n->pid = n->monitor_pid = 0;
    n->pid_start = n->monitor_start = 0;
    if (st->state == GM_SUP_EXITED) {
        n->has_exit = 1;
        n->exit_code = st->exit_code;
        n->exit_signal = st->exit_signal;
        n->finished_at = st->finished_ms ? st->finished_ms : now_ms;
        if (st->exit_code >= 0)
            snprintf(n->reason, sizeof(n->reason), "exited with status %d", st->exit_code);
        else
            snprintf(n->reason, sizeof(n->reason), "killed by signal %d (%s)", st->exit_signal,
                     strsignal(st->exit_signal));
    } else {
        n->has_exit = 0;
        n->finished_at = now_ms;
        snprintf(n->reason, sizeof(n->reason),
                 "lost: its processes ended while their monitor was gone; exit status unknown");
    }
    if (n->state == GM_W_STOPPING || !n->desired_running) {
        n->desired_running = 0;
        n->state = GM_W_STOPPED;
    } else {
        n->state = GM_W_EXITED;
        if (!wants_restart(n))
            n->desired_running = 0;
    }
    /* An ending that was asked for is no cause for a warning. */
    int expected = n->state == GM_W_STOPPED || (n->has_exit && n->exit_code == 0);
    event(p, expected ? GM_LEVEL_INFO : GM_LEVEL_WARNING, "%s", n->reason);
    p->set_timers = 1;
    p->timers.kill_at_ms = 0;
    p->timers.restart_at_ms =
        n->desired_running ? now_ms + gm_plan_backoff_ms(n->restart_count) : 0;
}

static void reconcile_one(const struct gm_workload_rec *w, const struct gm_sup_status *st,
                          int poll_failed, const struct gm_timers *t, int64_t now_ms, int at_start,
                          int stop_timeout_s, struct gm_rc_plan *p)
{
    p->next = *w;
    struct gm_workload_rec *n = &p->next;
    struct gm_timers none = {0};
    if (t == NULL)
        t = &none;

    if (w->state == GM_W_EXITED || w->state == GM_W_STOPPED) {
        if (w->state == GM_W_EXITED && w->desired_running && now_ms >= t->restart_at_ms) {
            p->action = GM_RC_RESTART;
            next_launch(n, now_ms);
            n->restart_count++;
            p->save = 1;
            p->launch = 1;
            event(p, GM_LEVEL_INFO, "restarting (launch %lld)", (long long)n->launch_id);
            p->set_timers = 1;
        }
        return;
    }
    if (poll_failed || st == NULL) {
        p->action = GM_RC_POLL_FAILED;
        return;
    }
    if (st->state == GM_SUP_ALIVE) {
        if (st->pid > 0 && (st->pid != w->pid || st->pid_start != w->pid_start)) {
            p->action = GM_RC_PID;
            n->pid = st->pid;
            n->pid_start = st->pid_start;
            n->monitor_pid = st->monitor_pid;
            n->monitor_start = st->monitor_start;
            if (n->state == GM_W_STARTING)
                n->state = GM_W_RUNNING;
            p->save = 1;
            event(p, GM_LEVEL_INFO, "running (pid %d)", n->pid);
        } else if (at_start) {
            p->action = GM_RC_READOPTED;
            event(p, GM_LEVEL_INFO, "re-adopted (pid %d)", w->pid);
        }
        if (w->state == GM_W_STOPPING) {
            /* After a daemon restart the stop is asked for again: the timer was in memory. */
            if (at_start || t->kill_at_ms == 0) {
                p->signal = SIGTERM;
                p->set_timers = 1;
                p->timers = *t;
                p->timers.kill_at_ms = now_ms + (int64_t)stop_timeout_s * 1000;
            } else if (now_ms >= t->kill_at_ms) {
                p->signal = SIGKILL;
            }
            if (p->signal && p->action == GM_RC_NONE)
                p->action = GM_RC_SIGNAL;
        }
        return;
    }
    if (st->state == GM_SUP_GONE && w->state == GM_W_STARTING && w->pid == 0) {
        /* The daemon stopped between recording the launch and making it: nothing of it ever
         * ran, so making it now makes it once. */
        p->remove_dir = 1;
        if (w->desired_running) {
            p->action = GM_RC_LAUNCH;
            n->launch_id--; /* the same launch number: it was never made */
            next_launch(n, now_ms);
            p->save = 1;
            p->launch = 1;
            event(p, GM_LEVEL_INFO, "starting (launch %lld)", (long long)n->launch_id);
        } else {
            p->action = GM_RC_NEVER_RAN;
            n->state = GM_W_STOPPED;
            p->save = 1;
            event(p, GM_LEVEL_INFO, "stopped before it started");
        }
        return;
    }
    ended(st, now_ms, p);
}

void gm_plan_reconcile(const struct gm_workload_rec *w, const struct gm_sup_status *st,
                       int poll_failed, const struct gm_timers *t, int64_t now_ms, int at_start,
                       int stop_timeout_s, struct gm_rc_plan *p)
{
    memset(p, 0, sizeof(*p));
    reconcile_one(w, st, poll_failed, t, now_ms, at_start, stop_timeout_s, p);
    /* run --rm: once it has ended for good (exited or stopped, no restart to come), its record
     * goes, in the same transaction as its end. */
    const struct gm_workload_rec *n = &p->next;
    p->remove_record = w->auto_remove && (n->state == GM_W_EXITED || n->state == GM_W_STOPPED) &&
                       !n->desired_running;
}

/* ---- a GPU's mode change ------------------------------------------------------------------ */

static int on_gpu(const struct gm_workload_rec *w, const char *uuid)
{
    for (int k = 0; k < w->ngpus; k++)
        if (strcmp(w->gpus[k], uuid) == 0)
            return 1;
    return 0;
}

int gm_plan_users(const struct gm_workload_rec *ws, size_t nws, const char *uuid,
                  struct gm_strv *out)
{
    for (size_t i = 0; i < nws; i++)
        if (gm_workload_active(&ws[i]) && on_gpu(&ws[i], uuid) && gm_strv_add(out, ws[i].name) < 0)
            return -GM_ENOMEM;
    return (int)out->n;
}

void gm_plan_name_list(const struct gm_strv *names, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < names->n; i++) {
        size_t used = strlen(buf);
        if (i == 8) {
            snprintf(buf + used, len - used, " and %zu others", names->n - 8);
            break;
        }
        snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names->v[i]);
    }
}

void gm_mode_plan_free(struct gm_mode_plan *p)
{
    gm_strv_free(&p->users);
}

int gm_plan_mode(const struct gm_gpu_rec *gpus, size_t ngpus, const struct gm_workload_rec *ws,
                 size_t nws, const char *id, enum gm_mode to, enum gm_on_busy on_busy,
                 const struct gm_strv *changing, struct gm_mode_plan *out, struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    size_t i;
    int rc = gm_gpu_resolve(gpus, ngpus, id, &i, err);
    if (rc < 0)
        return rc;
    const struct gm_gpu_rec *g = &gpus[i];
    out->gpu = i;
    out->from = g->mode;
    out->to = to;
    if (changing != NULL && gm_strv_find(changing, g->uuid) >= 0)
        return gm_err(err, GM_EBUSY,
                      "GPU %d (%s) is changing its mode now; try again when that is done", g->idx,
                      g->uuid);
    if (g->mode == to) {
        /* Nothing changes; an mps GPU's control daemon is made sure of, as `mps start` is. */
        out->start_mps = to == GM_MODE_MPS;
        return 0;
    }
    if (g->mode == GM_MODE_VM && g->holder[0])
        return gm_err(err, GM_ECONFLICT,
                      "GPU %d (%s) is held by VM %s; detach it first (gpumux vm detach %s)", g->idx,
                      g->uuid, g->holder, g->holder);
    if (gm_plan_users(ws, nws, g->uuid, &out->users) < 0)
        return gm_err(err, GM_ENOMEM, "out of memory");
    if (out->users.n > 0) {
        if (on_busy == GM_ON_BUSY_REFUSE) {
            char names[1024];
            gm_plan_name_list(&out->users, names, sizeof(names));
            gm_mode_plan_free(out);
            return gm_err(err, GM_EBUSY,
                          "GPU %d (%s): changing the mode from %s to %s would break the workloads "
                          "running on it: %s (stop or delete them first; gpumux mps stop --force "
                          "or gpu mode --stop-workloads stops them, gpu mode "
                          "--restart-workloads restarts them)",
                          g->idx, g->uuid, gm_mode_name(g->mode), gm_mode_name(to), names);
        }
        out->stop_users = 1;
        out->restart_users = on_busy == GM_ON_BUSY_RESTART;
    }
    out->change = 1;
    /* MPS goes first: when it cannot start, the GPU stays as it was. */
    out->start_mps = to == GM_MODE_MPS;
    out->stop_mps = g->mode == GM_MODE_MPS;
    return 0;
}

/* ---- desired against actual ------------------------------------------------------------- */

void gm_plan_note_in_force(struct gm_workload_rec *w, const char *mode, int compute_pct,
                           long long memory_limit)
{
    json_t *spec = json_loads(w->spec_json != NULL ? w->spec_json : "{}", 0, NULL);
    if (!json_is_object(spec)) {
        json_decref(spec);
        return;
    }
    json_t *f = json_object_get(spec, "in_force");
    if (!json_is_object(f)) {
        f = json_object();
        json_object_set_new(spec, "in_force", f);
    }
    if (mode != NULL && mode[0] != '\0')
        json_object_set_new(f, "mode", json_string(mode));
    else if (mode != NULL)
        json_object_del(f, "mode");
    if (compute_pct >= 0)
        json_object_set_new(f, "compute_pct", json_integer(compute_pct));
    if (memory_limit >= 0)
        json_object_set_new(f, "memory_limit", json_integer(memory_limit));
    char *text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    if (text != NULL) {
        free(w->spec_json);
        w->spec_json = text;
    }
}

int gm_plan_in_force(const struct gm_workload_rec *w, struct gm_in_force *out)
{
    memset(out, 0, sizeof(*out));
    json_t *spec = json_loads(w->spec_json != NULL ? w->spec_json : "{}", 0, NULL);
    const json_t *f = json_object_get(spec, "in_force");
    int rc = json_is_object(f) ? 0 : -1;
    if (rc == 0) {
        const char *mode = json_string_value(json_object_get(f, "mode"));
        snprintf(out->mode, sizeof(out->mode), "%s", mode != NULL ? mode : "");
        out->compute_pct = (int)json_integer_value(json_object_get(f, "compute_pct"));
        out->memory_limit = (long long)json_integer_value(json_object_get(f, "memory_limit"));
    }
    json_decref(spec);
    return rc;
}

static int same_json(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
    /* What a launch noted (gm_plan_note_in_force) is not part of what was asked for. */
    json_object_del(ja, "in_force");
    json_object_del(jb, "in_force");
    int same = ja != NULL && jb != NULL ? json_equal(ja, jb) : strcmp(a, b) == 0;
    json_decref(ja);
    json_decref(jb);
    return same;
}

int gm_plan_same_spec(const struct gm_workload_rec *a, const struct gm_workload_rec *b)
{
    if (strcmp(a->kind, b->kind) != 0 || strcmp(a->deployment, b->deployment) != 0 ||
        a->compute_pct != b->compute_pct || a->memory_limit != b->memory_limit ||
        a->restart != b->restart || a->ngpus != b->ngpus || !same_json(a->spec_json, b->spec_json))
        return 0;
    for (int i = 0; i < a->ngpus; i++)
        if (strcmp(a->gpus[i], b->gpus[i]) != 0)
            return 0;
    return 1;
}

static long find(const struct gm_workload_rec *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return (long)i;
    return -1;
}

void gm_diff_free(struct gm_diff *d)
{
    free(d->items);
    memset(d, 0, sizeof(*d));
}

int gm_plan_diff(const struct gm_workload_rec *desired, size_t nd,
                 const struct gm_workload_rec *actual, size_t na, struct gm_diff *out,
                 struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    out->items = calloc(nd + na + 1, sizeof(*out->items));
    if (out->items == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    for (size_t i = 0; i < nd; i++) {
        if (find(desired, i, desired[i].name) >= 0) {
            gm_diff_free(out);
            return gm_err(err, GM_EINVAL, "workload %s is given twice", desired[i].name);
        }
        long a = find(actual, na, desired[i].name);
        enum gm_diff_op op = a < 0                                        ? GM_DIFF_CREATE
                             : gm_plan_same_spec(&desired[i], &actual[a]) ? GM_DIFF_KEEP
                                                                          : GM_DIFF_UPDATE;
        out->items[out->n++] = (struct gm_diff_item){.op = op, .desired = (long)i, .actual = a};
        out->count[op]++;
    }
    for (size_t a = 0; a < na; a++) {
        if (find(desired, nd, actual[a].name) >= 0)
            continue;
        out->items[out->n++] =
            (struct gm_diff_item){.op = GM_DIFF_DELETE, .desired = -1, .actual = (long)a};
        out->count[GM_DIFF_DELETE]++;
    }
    return 0;
}
