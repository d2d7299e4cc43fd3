/* Reconciliation: the database says what should run, the launch directories say what does.
 * Run at start (re-adopting live workloads, recording those that died while the daemon was down)
 * and on every poll (exits, restarts, stop time-outs).
 *
 * One pass: a snapshot of the records under d->lock; the launch directories read without it;
 * then, under the lock again, gm_plan_reconcile decides for each record that did not change
 * meanwhile and the plans' records are committed in one transaction; last, without the lock,
 * the executor sends the signals, removes ended launch directories and makes the launches. */
#include "common/clock.h"
#include "common/log.h"
#include "common/path.h"
#include "daemon/daemon.h"
#include "daemon/memcheck.h"
#include "daemon/mps.h"
#include "daemon/region.h"
#include "daemon/supervise.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What was seen of one record's launch outside the lock. */
struct seen {
    int polled;
    int poll_failed;
    struct gm_sup_status st;
};

/* Did the record change between the snapshot and now? Then its observation is stale. */
static int moved_on(const struct gm_workload_rec *a, const struct gm_workload_rec *b)
{
    return a->launch_id != b->launch_id || a->state != b->state ||
           a->desired_running != b->desired_running || a->pid != b->pid;
}

/* Finds name in v, looking at hint first (both lists come in the store's order). */
static const struct gm_workload_rec *match(const struct gm_workload_rec *v, size_t n, size_t hint,
                                           const char *name)
{
    if (hint < n && strcmp(v[hint].name, name) == 0)
        return &v[hint];
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static void observe(struct gm_daemon *d, const struct gm_workload_rec *ws, size_t n,
                    const int *skip, struct seen *seen)
{
    for (size_t i = 0; i < n && !d->stopping; i++) {
        const struct gm_workload_rec *w = &ws[i];
        if (skip[i] || w->state == GM_W_EXITED || w->state == GM_W_STOPPED)
            continue;
        char dir[PATH_MAX];
        struct gm_error err;
        seen[i].polled = 1;
        if (gm_workload_launch_dir(d, w->name, w->launch_id, dir, sizeof(dir)) < 0 ||
            gm_sup_poll(dir, &seen[i].st, &err) < 0) {
            seen[i].poll_failed = 1;
            gm_warn("workload %s: cannot read its launch directory %s", w->name, dir);
        }
    }
}

/* What a committed pass tells the log, once: nothing is logged of a pass that was not kept. */
struct note {
    char name[64];
    enum gm_level level;
    char text[512];
    int stop_recorded; /* the pass recorded its pending stop */
    int deleted;       /* and its pending delete */
    int set_timers;
    struct gm_timers timers;
};

/* Says once that the store refuses the reconciler's records, and once that it takes them again:
 * while the disk is full the same records are tried on every poll. */
static void store_state(const char *failure)
{
    static char last[512];
    if (failure != NULL && strcmp(failure, last) != 0) {
        gm_error("reconcile: %s; the records are kept and tried again on every poll", failure);
        snprintf(last, sizeof(last), "%.500s", failure);
    } else if (failure == NULL && last[0] != '\0') {
        gm_info("reconcile: the state database takes records again");
        last[0] = '\0';
    }
}

/* Decides for every record and commits the records of all plans. Caller holds d->lock. A stop
 * or delete that could not be recorded when it was made (struct gm_wmem.stop_pending) is
 * applied to the record first, so that the plan is taken on what was asked: a workload whose
 * stop is pending is never restarted. Nothing is acted on, and no evidence removed, unless the
 * transaction commits. */
static size_t decide(struct gm_daemon *d, const struct gm_workload_rec *snap, size_t n,
                     const int *skip, const struct seen *seen, int at_start, struct gm_effect *fx,
                     struct note *notes)
{
    struct gm_workload_rec *now = NULL;
    size_t nnow = 0, nfx = 0;
    struct gm_error err;
    if (gm_store_workload_list(d->store, &now, &nnow, &err) < 0) {
        gm_error("reconcile: %s", err.msg);
        return 0;
    }
    int64_t now_ms = gm_now_ms();
    int open = gm_store_begin(d->store, &err) == 0;
    if (!open)
        store_state(err.msg);
    int failed = 0;
    for (size_t i = 0; i < n && open; i++) {
        const struct gm_workload_rec *w = match(now, nnow, i, snap[i].name);
        const struct gm_wmem *m = w ? gm_wmem_find(d, w->name) : NULL;
        if (skip[i] || w == NULL || moved_on(w, &snap[i]) || (m != NULL && m->launching))
            continue;
        char object[96];
        snprintf(object, sizeof(object), "workload/%s", w->name);
        struct gm_workload_rec cur = *w; /* shallow: spec_json stays now's */
        int pending = m != NULL && (m->stop_pending || m->delete_pending);
        if (m != NULL && m->stop_pending) {
            gm_plan_stop(w, m->stop_why, &cur);
            if (gm_store_workload_update(d->store, &cur, &err) < 0) {
                if (err.code == GM_EIO) {
                    failed = 1;
                    break;
                }
                gm_error("workload %s: cannot record '%s': %s", w->name, m->stop_why, err.msg);
                continue;
            }
            gm_store_event(d->store, GM_LEVEL_INFO, object, "%s", m->stop_why);
        }
        struct gm_rc_plan p;
        gm_plan_reconcile(&cur, seen[i].polled && !seen[i].poll_failed ? &seen[i].st : NULL,
                          seen[i].poll_failed, m ? &m->timers : NULL, now_ms, at_start,
                          d->cfg.stop_timeout_s, &p);
        if ((p.action == GM_RC_NONE || p.action == GM_RC_POLL_FAILED) && !pending &&
            !p.remove_record)
            continue;
        if (p.save && gm_store_workload_update(d->store, &p.next, &err) < 0) {
            /* The disk or the file: the whole pass is tried again on the next poll. Anything
             * else concerns this record only. */
            if (err.code == GM_EIO) {
                failed = 1;
                break;
            }
            gm_error("workload %s: cannot record '%s': %s", w->name, p.event, err.msg);
            continue;
        }
        if (p.event[0] != '\0')
            gm_store_event(d->store, p.level, object, "%s", p.event);
        int deleted = 0;
        if (((m != NULL && m->delete_pending) || p.remove_record) && !gm_workload_active(&p.next)) {
            if (gm_store_workload_delete(d->store, w->name, &err) < 0) {
                failed = 1;
                break;
            }
            gm_store_event(d->store, GM_LEVEL_INFO, object,
                           p.remove_record ? "deleted: it ended and was started with --rm"
                                           : "deleted");
            deleted = 1;
        }
        struct note *no = &notes[nfx];
        memset(no, 0, sizeof(*no));
        snprintf(no->name, sizeof(no->name), "%s", w->name);
        no->level = p.level;
        snprintf(no->text, sizeof(no->text), "%s", p.event);
        no->stop_recorded = m != NULL && m->stop_pending;
        no->deleted = deleted;
        no->set_timers = p.set_timers;
        no->timers = p.timers;
        struct gm_effect *e = &fx[nfx++];
        memset(e, 0, sizeof(*e));
        snprintf(e->name, sizeof(e->name), "%s", w->name);
        e->launch_id = deleted ? w->launch_id : p.next.launch_id;
        e->signal = deleted ? 0 : p.signal;
        e->launch = p.launch && !deleted;
        e->undo = GM_UNDO_EXITED;
        e->remove_files = deleted;
        if (p.remove_dir && !deleted)
            e->old_launch_id = w->launch_id;
        /* Timers and the launching mark are set once the pass is committed, below. */
    }
    if (open && failed) {
        store_state(err.msg);
        gm_store_rollback(d->store);
        nfx = 0;
    } else if (open && gm_store_commit(d->store, &err) < 0) {
        store_state(err.msg);
        nfx = 0;
    } else if (open) {
        store_state(NULL);
    }
    /* Committed: the memory follows the records, the log tells, the effects may be made. */
    for (size_t i = 0; i < nfx; i++) {
        struct gm_wmem *mm = gm_wmem_get(d, fx[i].name);
        if (notes[i].text[0] != '\0')
            gm_log(notes[i].level == GM_LEVEL_INFO ? GM_LOG_INFO : GM_LOG_WARN, "workload %s: %s",
                   notes[i].name, notes[i].text);
        if (mm == NULL)
            continue;
        if (notes[i].set_timers)
            mm->timers = notes[i].timers;
        if (fx[i].launch)
            mm->launching = 1;
        if (notes[i].stop_recorded) {
            gm_info("workload %s: its stop (%s) is recorded now", notes[i].name, mm->stop_why);
            mm->stop_pending = 0;
        }
        if (notes[i].deleted) {
            gm_info("workload %s: its delete is recorded now", notes[i].name);
            mm->delete_pending = 0;
            gm_wmem_forget(d, notes[i].name);
        }
    }
    gm_workload_list_free(now, nnow);
    return nfx;
}

/* A stop not recorded yet whose grace period is over gets its SIGKILL even while no record can
 * be written: a user can always stop the workload that fills the disk. A signal is no evidence
 * and records nothing. Caller holds d->lock. */
static size_t overdue_kills(struct gm_daemon *d, const struct gm_workload_rec *ws, size_t n,
                            struct gm_effect *fx, size_t room)
{
    size_t k = 0;
    int64_t now_ms = gm_now_ms();
    for (size_t i = 0; i < n && k < room; i++) {
        const struct gm_wmem *m = gm_wmem_find(d, ws[i].name);
        if (m == NULL || !m->stop_pending || m->launching || m->timers.kill_at_ms == 0 ||
            now_ms < m->timers.kill_at_ms)
            continue;
        struct gm_effect *e = &fx[k++];
        memset(e, 0, sizeof(*e));
        snprintf(e->name, sizeof(e->name), "%s", ws[i].name);
        e->launch_id = ws[i].launch_id;
        e->signal = SIGKILL;
    }
    return k;
}

/* Launch directories that belong to no current launch: remove them, and stop anything that
 * still runs from them (it would be a workload nobody tracks). Called without d->lock; each
 * workload's record is read fresh, so a workload created meanwhile is not taken for a stray. */
static void sweep(struct gm_daemon *d)
{
    char root[PATH_MAX];
    if (gm_path(NULL, root, sizeof(root), "%s/workloads", d->cfg.run_dir) < 0)
        return;
    DIR *top = opendir(root);
    if (top == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(top)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        struct gm_workload_rec w;
        pthread_mutex_lock(&d->lock);
        int have = gm_store_workload_get(d->store, e->d_name, &w, NULL) == 0;
        const struct gm_wmem *m = gm_wmem_find(d, e->d_name);
        int busy = m != NULL && m->launching;
        int64_t current = have ? w.launch_id : 0;
        if (have)
            gm_workload_rec_free(&w);
        pthread_mutex_unlock(&d->lock);
        char wdir[PATH_MAX];
        if (busy || gm_path(NULL, wdir, sizeof(wdir), "%s/%s", root, e->d_name) < 0)
            continue;
        DIR *sub = opendir(wdir);
        if (sub == NULL)
            continue;
        struct dirent *l;
        while ((l = readdir(sub)) != NULL) {
            if (l->d_name[0] == '.')
                continue;
            if (have && atoll(l->d_name) >= current)
                continue; /* the current launch */
            char dir[PATH_MAX];
            if (gm_path(NULL, dir, sizeof(dir), "%s/%s", wdir, l->d_name) < 0)
                continue;
            struct gm_sup_status st;
            if (gm_sup_poll(dir, &st, NULL) == 0 && st.state == GM_SUP_ALIVE) {
                gm_warn("launch %s still runs but no record owns it: killing it", dir);
                pthread_mutex_lock(&d->lock);
                gm_store_event(d->store, GM_LEVEL_WARNING, "daemon",
                               "killed untracked launch %s (pid %d)", dir, st.pid);
                pthread_mutex_unlock(&d->lock);
                gm_sup_signal(dir, SIGKILL, NULL);
                continue;
            }
            gm_sup_remove(dir, NULL);
        }
        closedir(sub);
        rmdir(wdir); /* only succeeds when empty */
        /* The cgroup directory of a deleted workload, once its launches' cgroups are gone. */
        if (!have && d->cgroup_root[0] != '\0' &&
            gm_path(NULL, wdir, sizeof(wdir), "%s/%s", d->cgroup_root, e->d_name) == 0)
            rmdir(wdir);
    }
    closedir(top);
}

void gm_reconcile(struct gm_daemon *d, int at_start)
{
    struct gm_workload_rec *ws = NULL;
    size_t n = 0;
    struct gm_error err;
    /* MPS first: a workload restarted below needs its GPU's control daemon. */
    gm_mps_check(d, at_start);

    pthread_mutex_lock(&d->lock);
    if (gm_store_workload_list(d->store, &ws, &n, &err) < 0) {
        pthread_mutex_unlock(&d->lock);
        gm_error("reconcile: %s", err.msg);
        return;
    }
    int *skip = calloc(n + 1, sizeof(*skip));
    struct seen *seen = calloc(n + 1, sizeof(*seen));
    struct gm_effect *fx = calloc(n + 1, sizeof(*fx));
    struct note *notes = calloc(n + 1, sizeof(*notes));
    if (skip == NULL || seen == NULL || fx == NULL || notes == NULL) {
        pthread_mutex_unlock(&d->lock);
        gm_error("reconcile: out of memory");
        goto out;
    }
    /* A launch being made belongs to the executor until its outcome is recorded. */
    for (size_t i = 0; i < n; i++) {
        const struct gm_wmem *m = gm_wmem_find(d, ws[i].name);
        skip[i] = m != NULL && m->launching;
    }
    pthread_mutex_unlock(&d->lock);

    observe(d, ws, n, skip, seen);
    pthread_mutex_lock(&d->lock);
    size_t nfx = decide(d, ws, n, skip, seen, at_start, fx, notes);
    size_t nkill = overdue_kills(d, ws, n, fx + nfx, n + 1 - nfx);
    pthread_mutex_unlock(&d->lock);
    gm_exec_effects(d, fx, nfx + nkill);

    /* Finished launches whose directory could not be removed at once (the monitor in its last
     * moments; without a cgroup, processes the workload left behind holding its lock) are
     * swept now and then. */
    static unsigned polls;
    if (at_start || ++polls % 100 == 0)
        sweep(d);
    /* Compute windows and dead slots: limits changed by `gpumux set` act within a second. */
    static int64_t last_control;
    int64_t now = gm_mono_ms();
    if (at_start || now - last_control >= 500) {
        gm_exec_windows(d);
        last_control = now;
    }
    /* What the driver says limited workloads hold, against their limits (memcheck.c). */
    gm_memcheck(d);
out:
    free(skip);
    free(seen);
    free(fx);
    free(notes);
    gm_workload_list_free(ws, n);
}
