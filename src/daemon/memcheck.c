/* The driver's word on memory (daemon/memcheck.h): the pure decision, the mapping of a GPU
 * process to its workload, and the pass the poll runs. */
#include "daemon/memcheck.h"
#include "common/cgroup.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/path.h"
#include "common/proc.h"
#include "daemon/daemon.h"
#include "daemon/gpu.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the decisions (pure) ----------------------------------------------------------------- */

static int owns_processes(const struct gm_workload_rec *w)
{
    return w->pid > 0 &&
           (w->state == GM_W_STARTING || w->state == GM_W_RUNNING || w->state == GM_W_STOPPING);
}

int gm_memcheck_owner(const struct gm_mc_proc *p, const struct gm_workload_rec *ws, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct gm_workload_rec *w = &ws[i];
        if (!owns_processes(w))
            continue;
        pid_t lead = (pid_t)w->pid;
        if (p->pid == lead || p->pgrp == lead || p->session == lead)
            return (int)i;
        for (int k = 0; k < p->nancestors; k++)
            if (p->ancestors[k] == lead)
                return (int)i;
        if (p->lock_workload[0] != '\0' && p->lock_launch == w->launch_id &&
            strcmp(p->lock_workload, w->name) == 0)
            return (int)i;
    }
    return -1;
}

static int strict(const struct gm_workload_rec *w)
{
    json_t *spec = json_loads(w->spec_json ? w->spec_json : "{}", 0, NULL);
    enum gm_enforce e = GM_ENFORCE_BEST_EFFORT;
    if (spec != NULL)
        gm_enforce_parse(json_string_value(json_object_get(spec, "enforce")), &e);
    json_decref(spec);
    return e == GM_ENFORCE_STRICT;
}

void gm_memcheck_decide(const struct gm_workload_rec *w, uint64_t used, int nprocs, uint64_t slack,
                        int was_over, struct gm_mc_plan *p)
{
    memset(p, 0, sizeof(*p));
    if (w->memory_limit == 0)
        return;
    /* Used rounded up, the limit down: "uses 64 MiB of 64 MiB" is never printed for a workload
     * that is over. */
    unsigned long long um = (unsigned long long)((used + GM_MIB - 1) / GM_MIB);
    unsigned long long lm = (unsigned long long)(w->memory_limit / GM_MIB);
    uint64_t allowed = w->memory_limit, extra = (uint64_t)(nprocs > 0 ? nprocs : 0) * slack;
    allowed = extra > UINT64_MAX - allowed ? UINT64_MAX : allowed + extra;
    p->over = used > allowed;
    if (p->over != (was_over != 0)) {
        p->event = 1;
        p->level = p->over ? GM_LEVEL_WARNING : GM_LEVEL_INFO;
        snprintf(p->message, sizeof(p->message),
                 "%s memory limit: uses %llu MiB of %llu MiB (seen "
                 "by the driver)",
                 p->over ? "over" : "back under", um, lm);
    }
    if (p->over && strict(w)) {
        p->stop = 1;
        snprintf(p->reason, sizeof(p->reason),
                 "stopped (--enforce strict): over memory limit: uses %llu MiB of %llu MiB (seen "
                 "by the driver)",
                 um, lm);
    }
}

/* ---- what the passes saw ------------------------------------------------------------------ */

struct mc_entry {
    char name[64];
    int64_t launch_id;
    uint64_t used;
    int over;
};

struct gm_memcheck {
    pthread_mutex_t mu;
    struct mc_entry *v;
    size_t n;
};

int gm_memcheck_new(struct gm_memcheck **out)
{
    struct gm_memcheck *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -GM_ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return 0;
}

void gm_memcheck_free(struct gm_memcheck *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->v);
    free(m);
}

/* Caller holds m->mu. */
static const struct mc_entry *find(const struct gm_memcheck *m, const struct gm_workload_rec *w)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].launch_id == w->launch_id && strcmp(m->v[i].name, w->name) == 0)
            return &m->v[i];
    return NULL;
}

int gm_memcheck_seen(const struct gm_daemon *d, const struct gm_workload_rec *w, uint64_t *used,
                     int *over)
{
    struct gm_memcheck *m = d->memcheck;
    if (m == NULL || w->memory_limit == 0 || !owns_processes(w))
        return 0;
    pthread_mutex_lock(&m->mu);
    const struct mc_entry *e = find(m, w);
    if (e != NULL) {
        *used = e->used;
        *over = e->over;
    }
    pthread_mutex_unlock(&m->mu);
    return e != NULL;
}

/* ---- the pass ----------------------------------------------------------------------------- */

/* Which launch lock (RUN_DIR/workloads/NAME/LAUNCH/lock) pid holds open, if any. */
static void lock_held(const struct gm_daemon *d, pid_t pid, struct gm_mc_proc *p)
{
    char dir[64], prefix[PATH_MAX], real[PATH_MAX];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    /* The links name the file as the kernel resolved it. */
    const char *run = realpath(d->cfg.run_dir, real) != NULL ? real : d->cfg.run_dir;
    int n = snprintf(prefix, sizeof(prefix), "%s/workloads/", run);
    DIR *fds = opendir(dir);
    if (fds == NULL || n < 0 || (size_t)n >= sizeof(prefix)) {
        if (fds != NULL)
            closedir(fds);
        return;
    }
    struct dirent *e;
    while ((e = readdir(fds)) != NULL && p->lock_workload[0] == '\0') {
        char link[PATH_MAX], target[PATH_MAX];
        if (e->d_name[0] == '.' || snprintf(link, sizeof(link), "%s/%s", dir, e->d_name) < 0)
            continue;
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len <= n || strncmp(target, prefix, (size_t)n) != 0)
            continue;
        target[len] = '\0';
        /* NAME/LAUNCH/lock: names hold no '/' (gm_parse_name). */
        char *name = target + n, *slash = strchr(name, '/');
        char *end = NULL;
        if (slash == NULL || (size_t)(slash - name) >= sizeof(p->lock_workload))
            continue;
        long long launch = strtoll(slash + 1, &end, 10);
        /* The monitor's lock, or (without cgroups) the workload's own wlock. */
        if (end == slash + 1 || (strcmp(end, "/lock") != 0 && strcmp(end, "/wlock") != 0))
            continue;
        *slash = '\0';
        snprintf(p->lock_workload, sizeof(p->lock_workload), "%s", name);
        p->lock_launch = launch;
    }
    closedir(fds);
}

/* With cgroups, the launch whose cgroup holds pid: exact, whatever the process did to its
 * session, group, parent or descriptors. */
static void cgroup_member(const struct gm_daemon *d, const struct gm_workload_rec *ws, size_t n,
                          pid_t pid, struct gm_mc_proc *p)
{
    for (size_t i = 0; i < n && d->cgroup_root[0] != '\0' && p->lock_workload[0] == '\0'; i++) {
        char cg[PATH_MAX];
        pid_t *pids = NULL;
        size_t np = 0;
        if (!owns_processes(&ws[i]) ||
            gm_path(NULL, cg, sizeof(cg), "%s/%s/%lld", d->cgroup_root, ws[i].name,
                    (long long)ws[i].launch_id) < 0 ||
            gm_cgroup_pids(cg, &pids, &np, NULL) < 0)
            continue;
        for (size_t k = 0; k < np; k++) {
            if (pids[k] == pid) {
                snprintf(p->lock_workload, sizeof(p->lock_workload), "%s", ws[i].name);
                p->lock_launch = ws[i].launch_id;
                break;
            }
        }
        free(pids);
    }
}

/* Whose process pid is, as far as /proc and the cgroups tell (gm_memcheck_owner's facts). */
static void facts(const struct gm_daemon *d, const struct gm_workload_rec *ws, size_t n, pid_t pid,
                  struct gm_mc_proc *p)
{
    struct gm_proc_ids ids;
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    if (gm_proc_ids(pid, &ids) < 0)
        return; /* gone meanwhile, or hidden: owned by nobody we know */
    p->pgrp = ids.pgrp;
    p->session = ids.session;
    for (pid_t up = ids.ppid; up > 1 && p->nancestors < GM_MEMCHECK_MAX_ANCESTORS;) {
        p->ancestors[p->nancestors++] = up;
        if (gm_proc_ids(up, &ids) < 0)
            break;
        up = ids.ppid;
    }
    cgroup_member(d, ws, n, pid, p);
    if (p->lock_workload[0] == '\0')
        lock_held(d, pid, p);
}

static int limited(const struct gm_workload_rec *w)
{
    return w->memory_limit > 0 && owns_processes(w);
}

/* Sums what the driver says each workload's processes hold, over every GPU. 0, or -1 when a GPU
 * could not be asked (then nothing is decided this time). */
static int measure(const struct gm_daemon *d, const struct gm_workload_rec *ws, size_t n,
                   uint64_t *used, int *nprocs)
{
    struct gm_gpu_live *live = malloc(sizeof(*live));
    if (live == NULL)
        return -1;
    int rc = 0, ngpus = gm_gpu_count();
    for (int g = 0; g < ngpus && rc == 0; g++) {
        struct gm_error err;
        if (gm_vfio_bound(d, g))
            continue; /* on vfio-pci for a VM: not the host's to ask */
        if (gm_gpu_query(g, live, &err) < 0) {
            gm_debug("memory check: %s", err.msg);
            rc = -1;
            break;
        }
        for (int i = 0; i < live->nprocs; i++) {
            const struct gm_gpu_proc *gp = &live->procs[i];
            if (gp->used_memory == UINT64_MAX)
                continue;
            struct gm_mc_proc p;
            facts(d, ws, n, (pid_t)gp->pid, &p);
            int k = gm_memcheck_owner(&p, ws, n);
            if (k >= 0) {
                used[k] += gp->used_memory;
                nprocs[k]++; /* per GPU: a context on each */
            }
        }
    }
    free(live);
    return rc;
}

struct mc_stop {
    char name[64];
    int64_t launch_id;
    char reason[256];
};

void gm_memcheck(struct gm_daemon *d)
{
    struct gm_memcheck *m = d->memcheck;
    struct gm_workload_rec *ws = NULL;
    size_t n = 0, nlimited = 0;
    if (m == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_list(d->store, &ws, &n, NULL);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0)
        return;
    for (size_t i = 0; i < n; i++)
        nlimited += limited(&ws[i]) != 0;
    uint64_t *used = calloc(n + 1, sizeof(*used));
    int *nprocs = calloc(n + 1, sizeof(*nprocs));
    struct mc_entry *next = calloc(nlimited + 1, sizeof(*next));
    struct mc_stop *stops = calloc(nlimited + 1, sizeof(*stops));
    size_t nnext = 0, nstops = 0;
    /* The driver is asked only when a limited workload runs, and without d->lock. */
    if (used == NULL || nprocs == NULL || next == NULL || stops == NULL)
        goto out;
    if (nlimited == 0) {
        pthread_mutex_lock(&m->mu);
        m->n = 0; /* nothing limited runs: nothing to show */
        pthread_mutex_unlock(&m->mu);
        goto out;
    }
    if (measure(d, ws, n, used, nprocs) < 0)
        goto out;

    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        const struct gm_workload_rec *w = &ws[i];
        if (!limited(w))
            continue;
        /* A record that moved on since the snapshot (stopped, started anew) waits for the next
         * poll: what was measured belongs to its old launch. */
        struct gm_workload_rec now;
        if (gm_store_workload_get(d->store, w->name, &now, NULL) < 0)
            continue;
        int same = now.launch_id == w->launch_id && now.pid == w->pid && limited(&now) &&
                   now.memory_limit == w->memory_limit;
        gm_workload_rec_free(&now);
        if (!same)
            continue;
        pthread_mutex_lock(&m->mu);
        const struct mc_entry *old = find(m, w);
        int was_over = old != NULL && old->over;
        pthread_mutex_unlock(&m->mu);
        struct gm_mc_plan p;
        gm_memcheck_decide(w, used[i], nprocs[i], d->cfg.memory_check_slack, was_over, &p);
        struct mc_entry *e = &next[nnext++];
        snprintf(e->name, sizeof(e->name), "%s", w->name);
        e->launch_id = w->launch_id;
        e->used = used[i];
        e->over = p.over;
        if (p.event) {
            char object[96];
            snprintf(object, sizeof(object), "workload/%s", w->name);
            gm_store_event(d->store, p.level, object, "%s", p.message);
            gm_log(p.over ? GM_LOG_WARN : GM_LOG_INFO, "workload %s: %s", w->name, p.message);
        }
        if (p.stop && w->state != GM_W_STOPPING) {
            struct mc_stop *s = &stops[nstops++];
            snprintf(s->name, sizeof(s->name), "%s", w->name);
            s->launch_id = w->launch_id;
            snprintf(s->reason, sizeof(s->reason), "%s", p.reason);
        }
    }
    pthread_mutex_lock(&m->mu);
    free(m->v);
    m->v = next;
    m->n = nnext;
    next = NULL;
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_unlock(&d->lock);

    for (size_t i = 0; i < nstops; i++) {
        struct gm_error err;
        if (gm_workload_stop_for(d, stops[i].name, stops[i].launch_id, stops[i].reason, &err) < 0)
            gm_error("workload %s: cannot stop it: %s", stops[i].name, err.msg);
    }
out:
    free(used);
    free(nprocs);
    free(next);
    free(stops);
    gm_workload_list_free(ws, n);
}
