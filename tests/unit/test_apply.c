/* Applying a manifest, decided purely (daemon/apply.c): objects become desired workloads with
 * the names, restarts and GPU requests their kind gives; the plan creates, keeps and deletes by
 * name against what runs, and admits the whole file as one. The objects are built here by hand,
 * as the parsers (tested in test_manifest.c) would fill them. */
#include "daemon/apply.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024ull * 1024 * 1024)

static char *cmd_sleep[] = {"/bin/sleep", NULL};
static char *args_100[] = {"100", NULL};

static struct gm_mf_container container(const char *name)
{
    struct gm_mf_container c = {0};
    c.name = (char *)name;
    c.command = cmd_sleep;
    c.args = args_100;
    c.gpus = -1;
    return c;
}

static struct gm_mf_object object(enum gm_mf_kind kind, const char *name, const char *label,
                                  struct gm_mf_container *c, size_t nc)
{
    struct gm_mf_object o = {0};
    o.kind = kind;
    o.name = (char *)name;
    o.label = (char *)label;
    o.c = c;
    o.nc = nc;
    o.running = 1;
    o.replicas = o.completions = o.parallelism = 1;
    o.backoff_limit = kind == GM_MF_JOB ? 6 : -1;
    return o;
}

static struct gm_gpu_rec gpu(int idx, uint64_t mem)
{
    struct gm_gpu_rec g = {0};
    snprintf(g.uuid, sizeof(g.uuid), "GPU-%d", idx);
    g.idx = idx;
    g.memory_total = mem;
    g.mode = GM_MODE_SHARED;
    g.present = 1;
    return g;
}

/* The records a plan's creations become, as the daemon records them (running). */
static struct gm_workload_rec *recorded(const struct gm_apply_set *s, const struct gm_apply_plan *p,
                                        size_t *n)
{
    struct gm_workload_rec *v = calloc(p->n + 1, sizeof(*v));
    *n = 0;
    for (size_t k = 0; k < p->n; k++) {
        if (p->a[k].op != GM_APPLY_CREATE)
            continue;
        struct gm_workload_rec *w = &v[(*n)++];
        *w = s->v[p->a[k].item].rec;
        w->spec_json = strdup(s->v[p->a[k].item].rec.spec_json);
        w->ngpus = p->a[k].ngpus;
        memcpy(w->gpus, p->a[k].gpus, sizeof(w->gpus));
        w->desired_running = 1;
        w->state = GM_W_RUNNING;
    }
    return v;
}

static int plan(const struct gm_apply_set *s, const struct gm_gpu_rec *g, size_t ng,
                const struct gm_workload_rec *ws, size_t nws, struct gm_apply_plan *p,
                struct gm_error *err)
{
    return gm_apply_plan(s, g, ng, ws, nws, NULL, NULL, 0, 0, 0, p, err);
}

Test(apply, names_restarts_and_gpu_requests_follow_the_kind)
{
    struct gm_mf_container dc = container(""), jc = container(""),
                           pc[2] = {container("a"), container("b")};
    struct gm_mf_env nvd = {"NVIDIA_VISIBLE_DEVICES", "0"};
    jc.env = &nvd;
    jc.nenv = 1;
    struct gm_mf_object o[3] = {object(GM_MF_DEPLOYMENT, "web", "Deployment/web", &dc, 1),
                                object(GM_MF_JOB, "sample", "Job/sample", &jc, 1),
                                object(GM_MF_POD, "pair", "Pod/pair", pc, 2)};
    o[0].replicas = 3;
    o[1].backoff_limit = 1;
    struct gm_manifest m = {.format = GM_MF_KUBERNETES, .o = o, .n = 3};
    struct gm_apply_set s;
    struct gm_error err = {0};
    cr_assert_eq(gm_apply_expand(&m, "f.yaml", 1000, 1000, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(s.n, 6u);
    static const char *const names[] = {"web-0", "web-1", "web-2", "sample", "pair-a", "pair-b"};
    for (size_t i = 0; i < 6; i++)
        cr_expect_str_eq(s.v[i].rec.name, names[i]);
    cr_expect_str_eq(s.v[0].rec.deployment, "deployment/web");
    cr_expect_str_eq(s.v[3].rec.deployment, "job/sample");
    cr_expect_eq(s.v[0].rec.restart, GM_RESTART_ALWAYS, "a Deployment's pods always restart");
    cr_expect_eq(s.v[3].rec.restart, GM_RESTART_ON_FAILURE, "a Job retries up to backoffLimit");
    cr_expect_eq(s.v[3].rec.restart_max, 1);
    cr_expect_str_eq(s.v[3].gpu, "0", "NVIDIA_VISIBLE_DEVICES names the GPU");
    cr_expect_str_eq(s.v[0].gpu, "none", "no GPU asked for: none");
    cr_expect_eq(s.v[4].rec.uid, 1000);
    cr_expect(strstr(s.v[0].rec.spec_json, "/bin/sleep") != NULL, "%s", s.v[0].rec.spec_json);
    gm_apply_set_free(&s);

    /* backoffLimit 0: a failed Job is not retried. A Pod of restartPolicy Never is not. */
    o[1].backoff_limit = 0;
    o[2].restart = GM_MF_RESTART_NEVER;
    cr_assert_eq(gm_apply_expand(&m, "f.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(s.v[3].rec.restart, GM_RESTART_NEVER);
    cr_expect_eq(s.v[4].rec.restart, GM_RESTART_NEVER);
    gm_apply_set_free(&s);

    /* A Deployment scaled to 0 has no workload at all. */
    o[0].replicas = 0;
    cr_assert_eq(gm_apply_expand(&m, "f.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(s.n, 3u);
    cr_expect_str_eq(s.v[0].rec.name, "sample");
    cr_expect_eq(s.ndep, 3u, "its deployment record stays");
    gm_apply_set_free(&s);
}

Test(apply, containers_with_images_and_unnamed_gpus_are_refused)
{
    struct gm_mf_container c = container("nbody");
    c.image = "nvidia/samples:nbody";
    struct gm_mf_object o = object(GM_MF_JOB, "cuda-sample1", "Job/cuda-sample1", &c, 1);
    struct gm_manifest m = {.format = GM_MF_KUBERNETES, .o = &o, .n = 1};
    struct gm_apply_set s;
    struct gm_error err = {0};
    cr_expect_eq(gm_apply_expand(&m, "jobs.yaml", 0, 0, &s, &err), -GM_EINVAL);
    cr_expect(strstr(err.msg, "jobs.yaml: Job/cuda-sample1") != NULL &&
                  strstr(err.msg, "nvidia/samples:nbody") != NULL && strstr(err.msg, "podman"),
              "%s", err.msg);
    c.image = NULL;
    c.gpus = 2;
    cr_expect_eq(gm_apply_expand(&m, "jobs.yaml", 0, 0, &s, &err), -GM_EINVAL);
    cr_expect(strstr(err.msg, "nvidia.com/gpu: 2") != NULL, "%s", err.msg);
    c.gpus = -1;
    char *missing[] = {"/no/such/program", NULL};
    c.command = missing;
    cr_expect_eq(gm_apply_expand(&m, "jobs.yaml", 0, 0, &s, &err), -GM_EINVAL);
    cr_expect(strstr(err.msg, "Job/cuda-sample1") && strstr(err.msg, "/no/such/program"), "%s",
              err.msg);
}

/* Applied again unchanged: everything kept, nothing created. Scaled up: one more created, the
 * others kept. Scaled down: the extra one deleted. */
Test(apply, reapplying_keeps_and_scaling_creates_or_deletes_only_the_difference)
{
    struct gm_mf_container c = container("");
    struct gm_mf_object o = object(GM_MF_DEPLOYMENT, "web", "Deployment/web", &c, 1);
    o.replicas = 2;
    struct gm_manifest m = {.format = GM_MF_KUBERNETES, .o = &o, .n = 1};
    struct gm_gpu_rec g[1] = {gpu(0, 16 * GIB)};
    struct gm_apply_set s;
    struct gm_apply_plan p;
    struct gm_error err = {0};
    cr_assert_eq(gm_apply_expand(&m, "d.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(plan(&s, g, 1, NULL, 0, &p, &err), 0, "%s", err.msg);
    cr_expect_eq(p.count[GM_APPLY_CREATE], 2u);
    cr_expect_eq(p.ndep_write, 1u);
    size_t nrec;
    struct gm_workload_rec *rec = recorded(&s, &p, &nrec);
    gm_apply_plan_free(&p);
    cr_assert_eq(plan(&s, g, 1, rec, nrec, &p, &err), 0, "%s", err.msg);
    cr_expect_eq(p.count[GM_APPLY_KEEP], 2u, "unchanged: kept");
    cr_expect_eq(p.count[GM_APPLY_CREATE] + p.count[GM_APPLY_DELETE], 0u);
    gm_apply_plan_free(&p);
    gm_apply_set_free(&s);

    o.replicas = 3;
    cr_assert_eq(gm_apply_expand(&m, "d.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(plan(&s, g, 1, rec, nrec, &p, &err), 0, "%s", err.msg);
    cr_expect_eq(p.count[GM_APPLY_KEEP], 2u);
    cr_expect_eq(p.count[GM_APPLY_CREATE], 1u);
    for (size_t k = 0; k < p.n; k++)
        if (p.a[k].op == GM_APPLY_CREATE)
            cr_expect_str_eq(s.v[p.a[k].item].rec.name, "web-2");
    gm_apply_plan_free(&p);
    gm_apply_set_free(&s);

    o.replicas = 1;
    cr_assert_eq(gm_apply_expand(&m, "d.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(plan(&s, g, 1, rec, nrec, &p, &err), 0, "%s", err.msg);
    cr_expect_eq(p.count[GM_APPLY_KEEP], 1u);
    cr_expect_eq(p.count[GM_APPLY_DELETE], 1u);
    for (size_t k = 0; k < p.n; k++)
        if (p.a[k].op == GM_APPLY_DELETE)
            cr_expect_str_eq(rec[p.a[k].actual].name, "web-1");
    gm_apply_plan_free(&p);
    gm_apply_set_free(&s);
    gm_workload_list_free(rec, nrec);
}

/* Three workloads of 6 GiB each on one 16 GiB GPU: the third does not fit, so the plan for
 * the whole file fails and names it, even though the first two alone would fit. */
Test(apply, the_whole_file_is_admitted_or_nothing)
{
    struct gm_mf_container c[3] = {container(""), container(""), container("")};
    struct gm_mf_env nvd = {"NVIDIA_VISIBLE_DEVICES", "0"};
    for (int i = 0; i < 3; i++) {
        c[i].memory = 6 * GIB;
        c[i].env = &nvd;
        c[i].nenv = 1;
    }
    struct gm_mf_object o[3] = {object(GM_MF_POD, "a", "Pod/a", &c[0], 1),
                                object(GM_MF_POD, "b", "Pod/b", &c[1], 1),
                                object(GM_MF_POD, "cuda-sample3", "Pod/cuda-sample3", &c[2], 1)};
    struct gm_manifest m = {.format = GM_MF_KUBERNETES, .o = o, .n = 3};
    struct gm_gpu_rec g[1] = {gpu(0, 16 * GIB)};
    struct gm_apply_set s;
    struct gm_apply_plan p;
    struct gm_error err = {0};
    cr_assert_eq(gm_apply_expand(&m, "pods.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    cr_expect_lt(plan(&s, g, 1, NULL, 0, &p, &err), 0);
    cr_expect(strstr(err.msg, "Pod/cuda-sample3") != NULL, "%s", err.msg);
    cr_expect_eq(p.n, 0u, "a failed plan holds nothing");
    /* Two of them fit. */
    m.n = 2;
    gm_apply_set_free(&s);
    cr_assert_eq(gm_apply_expand(&m, "pods.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(plan(&s, g, 1, NULL, 0, &p, &err), 0, "%s", err.msg);
    cr_expect_eq(p.count[GM_APPLY_CREATE], 2u);
    cr_expect_str_eq(p.a[0].gpus[0], "GPU-0");
    gm_apply_plan_free(&p);
    gm_apply_set_free(&s);
}

Test(apply, names_of_other_workloads_and_changed_specs_are_refused)
{
    struct gm_mf_container c = container("");
    struct gm_mf_object o = object(GM_MF_POD, "train", "Pod/train", &c, 1);
    struct gm_manifest m = {.format = GM_MF_KUBERNETES, .o = &o, .n = 1};
    struct gm_gpu_rec g[1] = {gpu(0, 16 * GIB)};
    struct gm_apply_set s;
    struct gm_apply_plan p;
    struct gm_error err = {0};
    cr_assert_eq(gm_apply_expand(&m, "p.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    struct gm_workload_rec run = s.v[0].rec;
    run.deployment[0] = '\0'; /* made by gpumux run */
    cr_expect_eq(plan(&s, g, 1, &run, 1, &p, &err), -GM_ECONFLICT);
    cr_expect(strstr(err.msg, "workload train already exists (made by gpumux run)") != NULL, "%s",
              err.msg);
    struct gm_workload_rec changed = s.v[0].rec;
    changed.spec_json = "{\"command\":[\"/bin/sleep\",\"200\"],\"env\":{}}";
    cr_expect_eq(plan(&s, g, 1, &changed, 1, &p, &err), -GM_ECONFLICT);
    cr_expect(strstr(err.msg, "Pod/train") && strstr(err.msg, "delete -f"), "%s", err.msg);
    gm_apply_set_free(&s);
}

/* An IoT Edge manifest is the device's whole module set: a module an earlier one made and this
 * one does not list goes, with its deployment record. */
Test(apply, an_iot_edge_manifest_replaces_the_module_set)
{
    struct gm_mf_container c = container("");
    struct gm_mf_object o = object(GM_MF_MODULE, "sample2", "module/sample2", &c, 1);
    struct gm_manifest m = {.format = GM_MF_IOTEDGE, .o = &o, .n = 1};
    struct gm_gpu_rec g[1] = {gpu(0, 16 * GIB)};
    struct gm_apply_set s;
    struct gm_apply_plan p;
    struct gm_error err = {0};
    cr_assert_eq(gm_apply_expand(&m, "dep.json", 0, 0, &s, &err), 0, "%s", err.msg);
    struct gm_workload_rec old = s.v[0].rec;
    snprintf(old.name, sizeof(old.name), "sample1");
    snprintf(old.deployment, sizeof(old.deployment), "module/sample1");
    const char *deps[] = {"module/sample1", "job/other"}, *formats[] = {"iotedge", "kubernetes"};
    cr_assert_eq(gm_apply_plan(&s, g, 1, &old, 1, deps, formats, 2, 0, 0, &p, &err), 0, "%s",
                 err.msg);
    cr_expect_eq(p.count[GM_APPLY_CREATE], 1u);
    cr_expect_eq(p.count[GM_APPLY_DELETE], 1u);
    cr_expect_eq(p.ndep_remove, 1u, "the Kubernetes object stays");
    cr_expect_str_eq(p.dep_remove[0], "module/sample1");
    gm_apply_plan_free(&p);
    gm_apply_set_free(&s);
}

/* Asked for as Kubernetes asks (nvidia.com/gpu: 1) while every GPU is a VM's: refused in
 * Kubernetes' words, naming the workload. */
Test(apply, no_free_gpu_is_insufficient_nvidia_com_gpu)
{
    struct gm_mf_container c = container("nbody");
    c.gpus = 1;
    struct gm_mf_object o = object(GM_MF_JOB, "cuda-sample3", "Job/cuda-sample3", &c, 1);
    struct gm_manifest m = {.format = GM_MF_KUBERNETES, .o = &o, .n = 1};
    struct gm_gpu_rec g[1] = {gpu(0, 16 * GIB)};
    g[0].mode = GM_MODE_VM;
    snprintf(g[0].holder, sizeof(g[0].holder), "vm1");
    struct gm_apply_set s;
    struct gm_apply_plan p;
    struct gm_error err = {0};
    cr_assert_eq(gm_apply_expand(&m, "jobs.yaml", 0, 0, &s, &err), 0, "%s", err.msg);
    cr_expect_lt(plan(&s, g, 1, NULL, 0, &p, &err), 0);
    cr_expect(strstr(err.msg, "Job/cuda-sample3: Insufficient nvidia.com/gpu: cuda-sample3 asks 1, "
                              "0 free") != NULL,
              "%s", err.msg);
    gm_apply_set_free(&s);
}
