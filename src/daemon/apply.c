/* Applying a manifest, decided purely (apply.h): objects -> desired records -> a plan matched
 * against what runs and admitted as one. */
#include "daemon/apply.h"
#include "common/parse.h"
#include "common/strv.h"
#include "daemon/daemon.h"
#include "daemon/sched.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gm_apply_dep_name(const struct gm_mf_object *o, char *buf, size_t len)
{
    const char *kind = gm_mf_kind_name(o->kind);
    char low[32];
    size_t i = 0;
    for (; kind[i] != '\0' && i + 1 < sizeof(low); i++)
        low[i] = (char)tolower((unsigned char)kind[i]);
    low[i] = '\0';
    snprintf(buf, len, "%s/%s", low, o->name);
}

static void item_free(struct gm_apply_item *it)
{
    gm_workload_rec_free(&it->rec);
    free(it->gpu);
}

void gm_apply_set_free(struct gm_apply_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        item_free(&s->v[i]);
    free(s->v);
    free(s->dep);
    memset(s, 0, sizeof(*s));
}

static enum gm_restart restart_of(const struct gm_mf_object *o, int *max)
{
    *max = 0;
    enum gm_mf_restart r = o->restart;
    if (r == GM_MF_RESTART_UNSET)
        r = o->kind == GM_MF_JOB ? GM_MF_RESTART_NEVER : GM_MF_RESTART_ALWAYS;
    if (o->kind == GM_MF_JOB) {
        /* A Job retries a failed pod up to backoffLimit times, whichever its restartPolicy
         * (Kubernetes makes a new pod for Never, restarts the container for OnFailure). */
        if (o->backoff_limit <= 0)
            return GM_RESTART_NEVER;
        *max = o->backoff_limit;
        return GM_RESTART_ON_FAILURE;
    }
    switch (r) {
    case GM_MF_RESTART_NEVER:
        return GM_RESTART_NEVER;
    case GM_MF_RESTART_ON_FAILURE:
    case GM_MF_RESTART_ON_UNHEALTHY:
        /* native on-failure:N carries its N there */
        *max = o->backoff_limit > 0 ? o->backoff_limit : 0;
        return GM_RESTART_ON_FAILURE;
    default:
        return GM_RESTART_ALWAYS;
    }
}

/* The argv of a container: command, then args. */
static int argv_of(const struct gm_mf_container *c, struct gm_strv *argv)
{
    for (char **a = c->command; a != NULL && *a != NULL; a++)
        if (gm_strv_add(argv, *a) < 0)
            return -GM_ENOMEM;
    for (char **a = c->args; a != NULL && *a != NULL; a++)
        if (gm_strv_add(argv, *a) < 0)
            return -GM_ENOMEM;
    return 0;
}

static int add_item(struct gm_apply_set *s, size_t *cap, const char *file,
                    const struct gm_mf_object *o, const struct gm_mf_container *c, const char *name,
                    const char *dep, int uid, int gid, struct gm_error *err)
{
    if (c->image != NULL)
        return gm_err(err, GM_EINVAL,
                      "%s: %s: container%s%s: image %s: container workloads run through podman, "
                      "which this gpumuxd does not drive yet; give the command without an image "
                      "to run it as a process",
                      file, o->label, c->name[0] ? " " : "", c->name, c->image);
    if (c->gpus > 1 && c->gpu == NULL)
        return gm_err(err, GM_EINVAL,
                      "%s: %s: nvidia.com/gpu: %d: more than one GPU must be named "
                      "(NVIDIA_VISIBLE_DEVICES=0,1)",
                      file, o->label, c->gpus);
    if (s->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct gm_apply_item *v = realloc(s->v, ncap * sizeof(*v));
        if (v == NULL)
            return gm_err(err, GM_ENOMEM, "out of memory");
        s->v = v;
        *cap = ncap;
    }
    struct gm_strv argv = {0}, keys = {0}, vals = {0};
    int rc = argv_of(c, &argv);
    for (size_t i = 0; rc == 0 && i < c->nenv; i++)
        if (gm_strv_add(&keys, c->env[i].name) < 0 || gm_strv_add(&vals, c->env[i].value) < 0)
            rc = -GM_ENOMEM;
    const char *gpu = c->gpu;
    int has_nvd = 0;
    for (size_t i = 0; i < c->nenv; i++)
        has_nvd |= strcmp(c->env[i].name, "NVIDIA_VISIBLE_DEVICES") == 0;
    /* No GPU asked for at all: none, as Kubernetes and IoT Edge give. */
    if (gpu == NULL && !has_nvd && c->gpus <= 0 && o->kind != GM_MF_WORKLOAD)
        gpu = "none";
    struct gm_run_request r = {
        .name = name,
        .argv = argv.v,
        .env = {.keys = (const char *const *)keys.v,
                .vals = (const char *const *)vals.v,
                .n = keys.n},
        .gpu = gpu,
        .compute_pct = c->compute_pct,
        .memory_limit = c->memory,
        .uid = uid,
        .gid = gid,
    };
    r.restart = restart_of(o, &r.restart_max);
    struct gm_apply_item *it = &s->v[s->n];
    memset(it, 0, sizeof(*it));
    const char *asked = NULL;
    if (rc == 0 && (rc = gm_workload_from_request(&r, &it->rec, &asked, err)) < 0)
        gm_err_wrap(err, "%s: %s", file, o->label);
    if (rc == 0) {
        snprintf(it->rec.deployment, sizeof(it->rec.deployment), "%s", dep);
        it->gpu = asked != NULL ? strdup(asked) : NULL;
        it->running = o->running;
        it->gpus_asked = c->gpus > 0 && c->gpu == NULL && !has_nvd ? c->gpus : 0;
        it->obj = o;
        if (asked != NULL && it->gpu == NULL)
            rc = gm_err(err, GM_ENOMEM, "out of memory");
        if (rc == 0)
            s->n++;
        else
            item_free(it);
    } else if (rc == -GM_ENOMEM && err != NULL && err->msg[0] == '\0') {
        gm_err(err, GM_ENOMEM, "out of memory");
    }
    gm_strv_free(&argv);
    gm_strv_free(&keys);
    gm_strv_free(&vals);
    return rc;
}

int gm_apply_expand(const struct gm_manifest *m, const char *file, int uid, int gid,
                    struct gm_apply_set *out, struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    out->format = m->format;
    out->dep = calloc(m->n ? m->n : 1, sizeof(*out->dep));
    if (out->dep == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < m->n; i++) {
        const struct gm_mf_object *o = &m->o[i];
        struct gm_apply_dep *d = &out->dep[out->ndep++];
        gm_apply_dep_name(o, d->name, sizeof(d->name));
        d->obj = o;
        /* A Deployment scaled to 0 has no workload; a Job runs at least once. */
        int copies = o->kind == GM_MF_JOB ? o->completions : o->replicas;
        if (copies < 1 && o->kind == GM_MF_JOB)
            copies = 1;
        for (int k = 0; rc == 0 && k < copies; k++)
            for (size_t j = 0; rc == 0 && j < o->nc; j++) {
                char name[160];
                int n;
                /* A Deployment's replicas are numbered whatever their count, so that scaling
                 * it renames none of them. */
                int numbered = copies > 1 || o->kind == GM_MF_DEPLOYMENT;
                if (!numbered && o->nc == 1)
                    n = snprintf(name, sizeof(name), "%s", o->name);
                else if (!numbered)
                    n = snprintf(name, sizeof(name), "%s-%s", o->name, o->c[j].name);
                else if (o->nc == 1)
                    n = snprintf(name, sizeof(name), "%s-%d", o->name, k);
                else
                    n = snprintf(name, sizeof(name), "%s-%d-%s", o->name, k, o->c[j].name);
                if (n < 0 || (size_t)n >= 64)
                    rc = gm_err(err, GM_EINVAL,
                                "%s: %s: workload name %s is longer than 63 characters", file,
                                o->label, name);
                else
                    rc = add_item(out, &cap, file, o, &o->c[j], name, d->name, uid, gid, err);
            }
    }
    if (rc < 0)
        gm_apply_set_free(out);
    return rc;
}

void gm_apply_plan_free(struct gm_apply_plan *p)
{
    free(p->a);
    free(p->dep_write);
    free(p->dep_remove);
    memset(p, 0, sizeof(*p));
}

static int in_file(const struct gm_apply_set *set, const char *dep)
{
    for (size_t i = 0; i < set->ndep; i++)
        if (strcmp(set->dep[i].name, dep) == 0)
            return 1;
    return 0;
}

static int push(struct gm_apply_plan *p, size_t *cap, struct gm_apply_action a,
                struct gm_error *err)
{
    if (p->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct gm_apply_action *v = realloc(p->a, ncap * sizeof(*v));
        if (v == NULL)
            return gm_err(err, GM_ENOMEM, "out of memory");
        p->a = v;
        *cap = ncap;
    }
    p->a[p->n++] = a;
    p->count[a.op]++;
    return 0;
}

int gm_apply_plan(const struct gm_apply_set *set, const struct gm_gpu_rec *gpus, size_t ngpus,
                  const struct gm_workload_rec *ws, size_t nws, const char *const *deps,
                  const char *const *dep_formats, size_t ndeps, uint64_t reserve, int spread,
                  struct gm_apply_plan *out, struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 0;
    /* What the workloads will be: the records, less those deleted, plus those created. */
    struct gm_workload_rec *work = calloc(nws + set->n + 1, sizeof(*work));
    char *gone = calloc(nws + 1, 1);
    out->dep_write = calloc(set->ndep + 1, sizeof(*out->dep_write));
    out->dep_remove = calloc(ndeps + 1, sizeof(*out->dep_remove));
    int rc = 0;
    if (work == NULL || gone == NULL || out->dep_write == NULL || out->dep_remove == NULL)
        rc = gm_err(err, GM_ENOMEM, "out of memory");
    /* Deployments that go: an IoT Edge file replaces every module of the ones before. */
    for (size_t i = 0; rc == 0 && i < ndeps; i++)
        if (set->format == GM_MF_IOTEDGE && strcmp(dep_formats[i], "iotedge") == 0 &&
            !in_file(set, deps[i]))
            snprintf(out->dep_remove[out->ndep_remove++], 64, "%s", deps[i]);
    for (size_t i = 0; rc == 0 && i < set->ndep; i++)
        out->dep_write[out->ndep_write++] = i;
    /* Desired against every record (gm_plan_diff), placements left out of the comparison:
     * the items have none yet, and what they asked for is in their spec. */
    struct gm_workload_rec *want = calloc(set->n + 1, sizeof(*want));
    struct gm_workload_rec *have = calloc(nws + 1, sizeof(*have));
    struct gm_diff diff = {0};
    if (rc == 0 && (want == NULL || have == NULL))
        rc = gm_err(err, GM_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        want[i] = set->v[i].rec;
        want[i].ngpus = 0;
    }
    for (size_t j = 0; rc == 0 && j < nws; j++) {
        have[j] = ws[j];
        have[j].ngpus = 0;
    }
    if (rc == 0 && (rc = gm_plan_diff(want, set->n, have, nws, &diff, err)) < 0)
        gm_err_wrap(err, "two objects of the file make one workload name");
    for (size_t k = 0; rc == 0 && k < diff.n; k++) {
        const struct gm_diff_item *d = &diff.items[k];
        const struct gm_apply_item *it = d->desired >= 0 ? &set->v[d->desired] : NULL;
        const struct gm_workload_rec *w = d->actual >= 0 ? &ws[d->actual] : NULL;
        enum gm_apply_op op = GM_APPLY_KEEP;
        if (d->op == GM_DIFF_CREATE) {
            op = GM_APPLY_CREATE;
        } else if (d->op == GM_DIFF_DELETE) {
            /* Only records of the file's objects that it no longer asks for, and of the
             * deployments that go; every other workload is left alone. */
            int removed = 0;
            for (size_t r = 0; r < out->ndep_remove; r++)
                removed |= strcmp(out->dep_remove[r], w->deployment) == 0;
            if (w->deployment[0] == '\0' || (!removed && !in_file(set, w->deployment)))
                continue;
            gone[d->actual] = 1;
            op = GM_APPLY_DELETE;
        } else if (strcmp(w->deployment, it->rec.deployment) != 0) {
            rc = gm_err(err, GM_ECONFLICT,
                        "%s: workload %s already exists%s%s; delete it or choose another name",
                        it->obj->label, it->rec.name,
                        w->deployment[0] ? " in deployment " : " (made by gpumux run)",
                        w->deployment);
            break;
        } else if (d->op == GM_DIFF_UPDATE) {
            rc = gm_err(err, GM_ECONFLICT,
                        "%s: workload %s asks for something else than what runs; changing a "
                        "running object is not done yet: delete -f the file, then apply it",
                        it->obj->label, it->rec.name);
            break;
        }
        rc = push(out, &cap,
                  (struct gm_apply_action){.op = op, .item = d->desired, .actual = d->actual}, err);
    }
    gm_diff_free(&diff);
    free(want);
    free(have);
    /* Admission: in the order of the file, each against what will be. */
    size_t nwork = 0;
    for (size_t j = 0; rc == 0 && j < nws; j++)
        if (!gone[j])
            work[nwork++] = ws[j];
    for (size_t k = 0; rc == 0 && k < out->n; k++) {
        struct gm_apply_action *a = &out->a[k];
        if (a->op != GM_APPLY_CREATE)
            continue;
        const struct gm_apply_item *it = &set->v[a->item];
        struct gm_sched_req req = {
            .name = it->rec.name,
            .gpu = it->gpu,
            .compute_pct = it->rec.compute_pct,
            .memory = it->rec.memory_limit,
            .reserve = reserve,
            .spread = spread,
        };
        struct gm_sched_result res;
        if ((rc = gm_sched_admit(gpus, ngpus, work, nwork, &req, &res, err)) < 0) {
            /* Asked as Kubernetes asks, it is refused in Kubernetes' words too. */
            if (it->gpus_asked > 0)
                gm_err_wrap(err, "%s: Insufficient nvidia.com/gpu: %s asks %d, 0 free",
                            it->obj->label, it->rec.name, it->gpus_asked);
            else
                gm_err_wrap(err, "%s: workload %s", it->obj->label, it->rec.name);
            break;
        }
        a->ngpus = res.ngpus;
        for (int g = 0; g < res.ngpus; g++)
            snprintf(a->gpus[g], sizeof(a->gpus[g]), "%s", gpus[res.gpu[g]].uuid);
        /* Counted from now on, as it will run. */
        struct gm_workload_rec *w = &work[nwork++];
        *w = it->rec;
        w->spec_json = NULL;
        w->desired_running = it->running;
        w->state = it->running ? GM_W_STARTING : GM_W_STOPPED;
        w->ngpus = a->ngpus;
        memcpy(w->gpus, a->gpus, sizeof(w->gpus));
    }
    free(work);
    free(gone);
    if (rc < 0)
        gm_apply_plan_free(out);
    return rc;
}
