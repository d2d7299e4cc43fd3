/* Reconciliation: the database says what should run, the launch directories say what does.
 * Run at start (re-adopting live workloads, recording those that died while the daemon was down)
 * and on every poll (exits, restarts, stop time-outs). */
#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/mps.h"
#include "daemon/region.h"
#include "daemon/supervise.h"

#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int wants_restart(const struct gm_workload_rec *w)
{
    if (!w->desired_running)
        return 0;
    switch (w->restart) {
    case GM_RESTART_ALWAYS:
        return 1;
    case GM_RESTART_ON_FAILURE:
        return !w->has_exit || w->exit_code != 0;
    default:
        return 0;
    }
}

static int64_t backoff_ms(int restarts)
{
    int64_t ms = 100;
    for (int i = 0; i < restarts && ms < 10000; i++)
        ms *= 2;
    return ms < 10000 ? ms : 10000;
}

static void save(struct gm_daemon *d, const struct gm_workload_rec *w, const char *level,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void save(struct gm_daemon *d, const struct gm_workload_rec *w, const char *level,
                 const char *fmt, ...)
{
    char msg[512], object[80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(object, sizeof(object), "workload/%s", w->name);
    struct gm_error err;
    if (gm_store_begin(d->store, &err) < 0 || gm_store_workload_update(d->store, w, &err) < 0) {
        gm_store_rollback(d->store);
        gm_error("workload %s: cannot record '%s': %s", w->name, msg, err.msg);
        return;
    }
    gm_store_event(d->store, level, object, "%s", msg);
    if (gm_store_commit(d->store, &err) < 0)
        gm_error("workload %s: cannot record '%s': %s", w->name, msg, err.msg);
    gm_log(strcmp(level, "info") == 0 ? GM_LOG_INFO : GM_LOG_WARN, "workload %s: %s", w->name, msg);
}

/* The launch ended; record how, then decide on a restart. */
static void ended(struct gm_daemon *d, struct gm_workload_rec *w, const struct gm_sup_status *st,
                  const char *dir)
{
    w->pid = 0;
    w->pid_start = 0;
    w->monitor_pid = 0;
    w->monitor_start = 0;
    if (st->state == GM_SUP_EXITED) {
        w->has_exit = 1;
        w->exit_code = st->exit_code;
        w->exit_signal = st->exit_signal;
        w->finished_at = st->finished_ms ? st->finished_ms : gm_now_ms();
        if (st->exit_code >= 0)
            snprintf(w->reason, sizeof(w->reason), "exited with status %d", st->exit_code);
        else
            snprintf(w->reason, sizeof(w->reason), "killed by signal %d (%s)", st->exit_signal,
                     strsignal(st->exit_signal));
    } else {
        w->has_exit = 0;
        w->finished_at = gm_now_ms();
        snprintf(w->reason, sizeof(w->reason),
                 "lost: its processes ended while their monitor was gone; exit status unknown");
    }
    if (w->state == GM_W_STOPPING || !w->desired_running) {
        w->desired_running = 0;
        w->state = GM_W_STOPPED;
    } else {
        w->state = GM_W_EXITED;
        if (!wants_restart(w))
            w->desired_running = 0;
    }
    /* An ending that was asked for is no cause for a warning. */
    int expected = w->state == GM_W_STOPPED || (w->has_exit && w->exit_code == 0);
    save(d, w, expected ? "info" : "warning", "%s", w->reason);
    gm_sup_remove(dir, NULL);
    if (w->desired_running) {
        struct gm_backoff *b = gm_backoff_get(d, w->name);
        if (b != NULL)
            b->restart_at_ms = gm_now_ms() + backoff_ms(w->restart_count);
    } else {
        gm_backoff_forget(d, w->name);
    }
}

static void relaunch(struct gm_daemon *d, struct gm_workload_rec *w, int counts_as_restart)
{
    w->launch_id++;
    w->state = GM_W_STARTING;
    w->pid = w->monitor_pid = 0;
    w->pid_start = w->monitor_start = 0;
    w->has_exit = 0;
    w->started_at = gm_now_ms();
    w->finished_at = 0;
    if (counts_as_restart)
        w->restart_count++;
    w->reason[0] = '\0';
    save(d, w, "info", "%s (launch %lld)", counts_as_restart ? "restarting" : "starting",
         (long long)w->launch_id);
    struct gm_error err;
    if (gm_workload_launch(d, w, &err) < 0) {
        w->state = GM_W_EXITED;
        w->desired_running = 0;
        snprintf(w->reason, sizeof(w->reason), "could not start: %.200s", err.msg);
        save(d, w, "error", "%s", w->reason);
        return;
    }
    save(d, w, "info", "running (pid %d)", w->pid);
}

static void check(struct gm_daemon *d, struct gm_workload_rec *w, int at_start)
{
    char dir[PATH_MAX];
    gm_workload_launch_dir(d, w->name, w->launch_id, dir, sizeof(dir));
    int64_t now = gm_now_ms();

    if (w->state == GM_W_EXITED || w->state == GM_W_STOPPED) {
        if (w->state == GM_W_EXITED && w->desired_running) {
            struct gm_backoff *b = gm_backoff_get(d, w->name);
            if (b == NULL || now >= b->restart_at_ms)
                relaunch(d, w, 1);
        }
        return;
    }

    struct gm_sup_status st;
    struct gm_error err;
    if (gm_sup_poll(dir, &st, &err) < 0) {
        gm_warn("workload %s: %s", w->name, err.msg);
        return;
    }
    if (st.state == GM_SUP_ALIVE) {
        if (st.pid > 0 && (st.pid != w->pid || st.pid_start != w->pid_start)) {
            w->pid = st.pid;
            w->pid_start = st.pid_start;
            w->monitor_pid = st.monitor_pid;
            w->monitor_start = st.monitor_start;
            if (w->state == GM_W_STARTING)
                w->state = GM_W_RUNNING;
            save(d, w, "info", "running (pid %d)", w->pid);
        } else if (at_start) {
            char object[80];
            snprintf(object, sizeof(object), "workload/%s", w->name);
            gm_store_event(d->store, "info", object, "re-adopted (pid %d)", w->pid);
            gm_info("workload %s: re-adopted (pid %d)", w->name, w->pid);
        }
        if (w->state == GM_W_STOPPING) {
            struct gm_backoff *b = gm_backoff_get(d, w->name);
            if (b != NULL && (at_start || b->kill_at_ms == 0)) {
                gm_sup_signal(dir, SIGTERM, NULL);
                b->kill_at_ms = now + d->cfg.stop_timeout_s * 1000;
            } else if (b != NULL && now >= b->kill_at_ms) {
                gm_sup_signal(dir, SIGKILL, NULL);
            }
        }
        return;
    }
    if (st.state == GM_SUP_GONE && w->state == GM_W_STARTING && w->pid == 0) {
        /* The daemon stopped between recording the launch and starting it: nothing of it ever
         * ran, so starting it now starts it once. */
        if (w->desired_running) {
            w->launch_id--; /* relaunch counts it up again */
            gm_sup_remove(dir, NULL);
            relaunch(d, w, 0);
        } else {
            w->state = GM_W_STOPPED;
            save(d, w, "info", "stopped before it started");
        }
        return;
    }
    ended(d, w, &st, dir);
}

/* Launch directories that belong to no current launch: remove them, and stop anything that
 * still runs from them (it would be a workload nobody tracks). */
static void sweep(struct gm_daemon *d, const struct gm_workload_rec *ws, size_t n)
{
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/workloads", d->cfg.run_dir);
    DIR *top = opendir(root);
    if (top == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(top)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        const struct gm_workload_rec *w = NULL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(ws[i].name, e->d_name) == 0)
                w = &ws[i];
        char wdir[PATH_MAX];
        snprintf(wdir, sizeof(wdir), "%s/%.200s", root, e->d_name);
        DIR *sub = opendir(wdir);
        if (sub == NULL)
            continue;
        struct dirent *l;
        while ((l = readdir(sub)) != NULL) {
            if (l->d_name[0] == '.')
                continue;
            if (w != NULL && atoll(l->d_name) == w->launch_id)
                continue;
            char dir[PATH_MAX];
            snprintf(dir, sizeof(dir), "%s/%.200s", wdir, l->d_name);
            struct gm_sup_status st;
            if (gm_sup_poll(dir, &st, NULL) == 0 && st.state == GM_SUP_ALIVE) {
                gm_warn("launch %s still runs but no record owns it: killing it", dir);
                gm_store_event(d->store, "warning", "daemon", "killed untracked launch %s (pid %d)",
                               dir, st.pid);
                gm_sup_signal(dir, SIGKILL, NULL);
                continue;
            }
            gm_sup_remove(dir, NULL);
        }
        closedir(sub);
        rmdir(wdir); /* only succeeds when empty */
    }
    closedir(top);
}

void gm_reconcile(struct gm_daemon *d, int at_start)
{
    struct gm_workload_rec *ws = NULL;
    size_t n = 0;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    if (gm_store_workload_list(d->store, &ws, &n, &err) < 0) {
        gm_error("reconcile: %s", err.msg);
        pthread_mutex_unlock(&d->lock);
        return;
    }
    /* MPS first: a workload restarted below needs its GPU's control daemon. */
    gm_mps_check(d, at_start);
    for (size_t i = 0; i < n && !d->stopping; i++)
        check(d, &ws[i], at_start);
    /* Finished launches whose directory could not be removed at once (processes the workload
     * left behind still held the lock) are swept now and then. */
    static unsigned polls;
    if (at_start || ++polls % 100 == 0)
        sweep(d, ws, n);
    /* Compute windows and dead slots: limits changed by `gpumux set` act within a second. */
    static int64_t last_control;
    int64_t now = gm_now_ms();
    if (at_start || now - last_control >= 500) {
        gm_region_control(d, ws, n);
        last_control = now;
    }
    pthread_mutex_unlock(&d->lock);
    gm_workload_list_free(ws, n);
}
