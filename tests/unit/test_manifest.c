/* Deployment manifests (src/daemon/manifest.h): Kubernetes YAML, IoT Edge deployment JSON and
 * gpumux's own format parsed into one model, the values checked field by field; and the bad
 * input users (or mistakes) give, each refusal checked for the file, the object, the field and
 * the line and column where the parser has them. Files under tests/unit/data/manifests/ are
 * the seed's examples and a few real-looking manifests; docs/manifests.md shows the same. */
#include "daemon/manifest.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct gm_manifest m;
static struct gm_error err;

static void cleanup(void)
{
    gm_manifest_free(&m);
}

TestSuite(manifest, .fini = cleanup);

/* GM_SOURCE_DIR/tests/unit/data/manifests/name, whole (static; *len its size). */
static const char *data(const char *name, size_t *len)
{
    static char text[1 << 16];
    const char *src = getenv("GM_SOURCE_DIR");
    cr_assert_not_null(src, "GM_SOURCE_DIR is not set");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/tests/unit/data/manifests/%s", src, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    *len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[*len] = '\0';
    return text;
}

static void ok_len(const char *file, const char *text, size_t len)
{
    gm_manifest_free(&m);
    int rc = gm_manifest_parse(file, text, len, &m, &err);
    cr_assert_eq(rc, 0, "%s refused: %s", file, err.msg);
}

static void ok(const char *file, const char *text)
{
    ok_len(file, text, strlen(text));
}

static void ok_file(const char *name)
{
    size_t len;
    const char *text = data(name, &len);
    ok_len(name, text, len);
}

/* The message must start with "file:" and hold every string of want. */
static void expect_msg(int rc, const char *file, const char *const *want)
{
    cr_assert_eq(rc, -GM_EINVAL, "%s: rc %d, message '%s'", file, rc, err.msg);
    size_t n = strlen(file);
    cr_expect(strncmp(err.msg, file, n) == 0 && err.msg[n] == ':', "'%s' does not start with '%s:'",
              err.msg, file);
    for (; *want != NULL; want++)
        cr_expect(strstr(err.msg, *want) != NULL, "'%s' lacks '%s'", err.msg, *want);
    cr_expect_eq(m.n, 0);
    cr_expect_null(m.o);
}

static void refused_len(const char *file, const char *text, size_t len, const char *const *want)
{
    gm_manifest_free(&m);
    expect_msg(gm_manifest_parse(file, text, len, &m, &err), file, want);
}

#define REFUSED(file, text, ...)                                                                   \
    refused_len(file, text, strlen(text), (const char *const[]){__VA_ARGS__, NULL})
#define REFUSED_AS(fmt, file, text, ...)                                                           \
    do {                                                                                           \
        gm_manifest_free(&m);                                                                      \
        expect_msg(gm_manifest_parse_as(fmt, file, text, strlen(text), &m, &err), file,            \
                   (const char *const[]){__VA_ARGS__, NULL});                                      \
    } while (0)

static int has(char *const *v, const char *s)
{
    for (; v != NULL && *v != NULL; v++)
        if (strcmp(*v, s) == 0)
            return 1;
    return 0;
}

static size_t count(char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

static const char *env(const struct gm_mf_container *c, const char *name)
{
    for (size_t i = 0; i < c->nenv; i++)
        if (strcmp(c->env[i].name, name) == 0)
            return c->env[i].value;
    return NULL;
}

/* A Pod whose one container's fields follow (at indentation 6, from line 8). */
#define POD "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n"
/* A Job whose pod spec's fields follow (at indentation 6, from line 8). */
#define JOB "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  template:\n    spec:\n"
/* A module of an IoT Edge deployment, its JSON in the middle. */
#define IOT(mod)                                                                                   \
    "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {\"modules\": {\"m\": " mod    \
    "}}}}}"
#define NATIVE(spec) "apiVersion: gpumux.dev/v1\nkind: Workload\nmetadata:\n  name: w\nspec:\n" spec

/* Good input. */

Test(manifest, seed_jobs)
{
    ok_file("seed-jobs.yaml");
    cr_assert_eq(m.format, GM_MF_KUBERNETES);
    cr_assert_eq(m.n, 2);
    const char *names[] = {"cuda-sample1", "cuda-sample2"};
    for (size_t i = 0; i < 2; i++) {
        const struct gm_mf_object *o = &m.o[i];
        cr_expect_eq(o->kind, GM_MF_JOB);
        cr_expect_str_eq(o->name, names[i]);
        cr_expect_eq(o->restart, GM_MF_RESTART_NEVER);
        cr_expect_eq(o->backoff_limit, 1);
        cr_expect_eq(o->completions, 1);
        cr_expect_eq(o->parallelism, 1);
        cr_expect_eq(o->replicas, 1);
        cr_expect_eq(o->host_ipc, 1);
        cr_expect_eq(o->host_pid, 1);
        cr_expect_eq(o->running, 1);
        cr_expect_null(o->not_enforced);
        cr_assert_eq(o->nc, 1);
        const struct gm_mf_container *c = &o->c[0];
        cr_expect_str_eq(c->name, names[i]);
        cr_expect_str_eq(c->image, "nvidia/samples:nbody");
        cr_assert_eq(count(c->command), 1);
        cr_expect_str_eq(c->command[0], "/tmp/nbody");
        cr_assert_eq(count(c->args), 2);
        cr_expect_str_eq(c->args[0], "-benchmark");
        cr_expect_str_eq(c->args[1], "-i=1000");
        cr_assert_eq(c->nenv, 1);
        cr_expect_str_eq(c->env[0].name, "NVIDIA_VISIBLE_DEVICES");
        cr_expect_str_eq(c->env[0].value, "0");
        cr_expect_eq(c->gpus, -1);
        cr_expect_eq(c->compute_pct, 0);
        cr_expect_eq(c->memory, 0);
        cr_expect_null(c->workdir);
        cr_expect_eq(c->privileged + c->host_binds + c->cap_add + c->devices, 0);
    }
    cr_expect_str_eq(m.o[0].label, "Job/cuda-sample1");
    cr_expect_eq(m.o[0].line, 2);
    cr_expect_eq(m.o[1].line, 22);
    cr_expect_eq(m.o[0].c[0].line, 14);
}

Test(manifest, pod_with_gpu_limits)
{
    ok_file("pod-gpu.yaml");
    cr_assert_eq(m.n, 1);
    const struct gm_mf_object *o = &m.o[0];
    cr_expect_eq(o->kind, GM_MF_POD);
    cr_expect_str_eq(o->label, "Pod/gpu-pod");
    cr_expect_eq(o->restart, GM_MF_RESTART_ALWAYS);
    cr_expect_eq(o->backoff_limit, -1);
    const struct gm_mf_container *c = &o->c[0];
    /* limits win over requests (nvidia.com/gpu: 2 there). */
    cr_expect_eq(c->gpus, 1);
    cr_expect_eq(c->compute_pct, 30);
    cr_expect_eq(c->memory, 4ull << 30);
    cr_expect_str_eq(c->workdir, "/work");
    cr_expect_eq(c->privileged, 1);
    cr_expect_eq(c->cap_add, 2);
    cr_expect_eq(c->host_binds, 1);
    cr_expect_eq(c->devices, 0);
    cr_expect(has(o->not_enforced, "metadata.namespace"));
    cr_expect(has(o->not_enforced, "spec.containers[0].resources.requests.cpu"));
    cr_expect(has(o->not_enforced, "spec.containers[0].resources.limits.memory"));
    cr_expect(has(o->not_enforced, "spec.containers[0].securityContext.capabilities.drop"));
    cr_expect(has(o->not_enforced, "spec.volumes[1].emptyDir"));
}

Test(manifest, pod_minimal_gpu)
{
    ok("pod.yaml", POD "      command: [nvidia-smi]\n"
                       "      resources:\n"
                       "        limits:\n"
                       "          nvidia.com/gpu: 1\n");
    cr_expect_eq(m.o[0].c[0].gpus, 1);
    cr_expect_null(m.o[0].c[0].image);
    cr_expect_null(m.o[0].not_enforced);
}

Test(manifest, deployment_not_enforced)
{
    ok_file("deployment.yaml");
    const struct gm_mf_object *o = &m.o[0];
    cr_expect_eq(o->kind, GM_MF_DEPLOYMENT);
    cr_expect_eq(o->replicas, 3);
    cr_expect_eq(o->restart, GM_MF_RESTART_ALWAYS);
    const char *ne[] = {"metadata.labels",
                        "spec.selector",
                        "spec.strategy",
                        "spec.template.metadata",
                        "spec.template.spec.containers[0].ports",
                        "spec.template.spec.containers[0].livenessProbe",
                        "spec.template.spec.containers[0].readinessProbe"};
    for (size_t i = 0; i < sizeof(ne) / sizeof(ne[0]); i++)
        cr_expect(has(o->not_enforced, ne[i]), "%s is not listed", ne[i]);
    cr_expect_eq(count(o->not_enforced), sizeof(ne) / sizeof(ne[0]));
    cr_expect_eq(o->c[0].gpus, 1);
    cr_expect_eq(o->c[0].compute_pct, 25);
    cr_expect_null(o->c[0].command);
    cr_expect_str_eq(o->c[0].args[1], "8080");
}

Test(manifest, job_defaults_and_json)
{
    ok("job.json", "{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": {\"name\": "
                   "\"j\"}, \"spec\": {\"completions\": 4, \"parallelism\": 2, \"template\": "
                   "{\"spec\": {\"restartPolicy\": \"OnFailure\", \"containers\": [{\"name\": "
                   "\"c\", \"command\": [\"true\"]}]}}}}");
    cr_expect_eq(m.format, GM_MF_KUBERNETES);
    cr_expect_eq(m.o[0].backoff_limit, 6);
    cr_expect_eq(m.o[0].completions, 4);
    cr_expect_eq(m.o[0].parallelism, 2);
    cr_expect_eq(m.o[0].restart, GM_MF_RESTART_ON_FAILURE);
}

Test(manifest, empty_documents_skipped)
{
    ok("a.yaml", "---\n# nothing here\n---\n" POD "      command: [a]\n---\n");
    cr_expect_eq(m.n, 1);
}

Test(manifest, seed_iotedge)
{
    ok_file("seed-iotedge.json");
    cr_assert_eq(m.format, GM_MF_IOTEDGE);
    /* The system modules and $edgeHub are not run: two modules, in the file's order. */
    cr_assert_eq(m.n, 2);
    cr_expect_str_eq(m.o[0].name, "cuda-sample1");
    cr_expect_str_eq(m.o[1].name, "cuda-sample2");
    for (size_t i = 0; i < 2; i++) {
        const struct gm_mf_object *o = &m.o[i];
        cr_expect_eq(o->kind, GM_MF_MODULE);
        cr_expect_eq(o->restart, GM_MF_RESTART_NEVER);
        cr_expect_eq(o->running, 1);
        cr_expect_eq(o->host_ipc, 1);
        cr_expect_eq(o->host_pid, 1);
        cr_expect(has(o->not_enforced, "version"));
        const struct gm_mf_container *c = &o->c[0];
        cr_expect_str_eq(c->name, "");
        cr_expect_str_eq(c->image, "nvidia/samples:nbody");
        cr_assert_eq(count(c->command), 1);
        cr_expect_str_eq(c->command[0], "/tmp/nbody");
        cr_assert_eq(count(c->args), 2);
        cr_expect_str_eq(c->args[1], "-i=1000");
        cr_expect_str_eq(env(c, "NVIDIA_VISIBLE_DEVICES"), "0");
        cr_expect_str_eq(env(c, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "20");
        cr_expect_eq(c->gpus, -1);
    }
    cr_expect_str_eq(m.o[0].label, "module/cuda-sample1");
}

Test(manifest, iotedge_create_options_split_and_host)
{
    ok_file("create-options-split.json");
    const struct gm_mf_object *o = &m.o[0];
    cr_expect_eq(o->running, 0);
    cr_expect_eq(o->restart, GM_MF_RESTART_ON_UNHEALTHY);
    cr_expect_eq(o->host_ipc, 0);
    const struct gm_mf_container *c = &o->c[0];
    cr_expect_str_eq(c->command[0], "/bin/run");
    cr_expect_eq(count(c->command), 1);
    cr_expect_str_eq(c->args[0], "go");
    cr_expect_str_eq(c->workdir, "/w");
    /* The module's env wins over createOptions' Env. */
    cr_expect_str_eq(env(c, "A"), "module");
    cr_expect_str_eq(env(c, "B"), "2");
    cr_expect_eq(c->nenv, 2);
    cr_expect_eq(c->host_binds, 2);
    cr_expect_eq(c->privileged, 1);
    cr_expect_eq(c->cap_add, 1);
    cr_expect_eq(c->devices, 2);
    cr_expect(has(o->not_enforced, "settings.createOptions.HostConfig.Mounts[1]"));
    cr_expect(has(o->not_enforced, "settings.createOptions.HostConfig.PortBindings"));
    cr_expect(has(o->not_enforced, "settings.createOptions.Labels"));
}

Test(manifest, iotedge_defaults)
{
    ok("d.json", IOT("{\"type\": \"docker\", \"settings\": {\"image\": \"i\"}}"));
    cr_expect_eq(m.o[0].running, 1);
    cr_expect_eq(m.o[0].restart, GM_MF_RESTART_ALWAYS);
    cr_expect_null(m.o[0].c[0].command);
    cr_expect_null(m.o[0].c[0].args);
}

Test(manifest, native_file)
{
    ok_file("native.yaml");
    cr_assert_eq(m.format, GM_MF_NATIVE);
    cr_assert_eq(m.n, 2);
    const struct gm_mf_object *t = &m.o[0], *n = &m.o[1];
    cr_expect_eq(t->kind, GM_MF_WORKLOAD);
    cr_expect_str_eq(t->label, "workload/train");
    cr_assert_eq(count(t->c[0].command), 4);
    cr_expect_str_eq(t->c[0].command[3], "10");
    cr_expect_str_eq(t->c[0].workdir, "/srv/train");
    cr_expect_str_eq(env(&t->c[0], "OMP_NUM_THREADS"), "4");
    cr_expect_str_eq(t->c[0].gpu, "0");
    cr_expect_eq(t->c[0].gpus, -1);
    cr_expect_eq(t->c[0].compute_pct, 50);
    cr_expect_eq(t->c[0].memory, 4ull << 30);
    cr_expect_eq(t->restart, GM_MF_RESTART_ON_FAILURE);
    cr_expect_eq(t->backoff_limit, 3);
    cr_expect_eq(t->running, 1);
    cr_expect_eq(n->c[0].gpus, 1);
    cr_expect_null(n->c[0].gpu);
    cr_expect_eq(n->replicas, 2);
    cr_expect_eq(n->running, 0);
    cr_expect_eq(n->restart, GM_MF_RESTART_ALWAYS);
    cr_expect_eq(n->host_ipc, 1);
    cr_expect_str_eq(env(&n->c[0], "JUPYTER_PORT"), "8888");
}

Test(manifest, native_defaults_and_image)
{
    ok("n.yaml", NATIVE("  image: nvidia/cuda:12\n  gpu: all\n"));
    cr_expect_eq(m.o[0].restart, GM_MF_RESTART_NEVER);
    cr_expect_eq(m.o[0].replicas, 1);
    cr_expect_null(m.o[0].c[0].command);
    cr_expect_str_eq(m.o[0].c[0].gpu, "all");
}

Test(manifest, names_of_formats_and_kinds)
{
    cr_expect_str_eq(gm_mf_format_name(GM_MF_KUBERNETES), "kubernetes");
    cr_expect_str_eq(gm_mf_format_name(GM_MF_IOTEDGE), "iotedge");
    cr_expect_str_eq(gm_mf_format_name(GM_MF_NATIVE), "native");
    cr_expect_str_eq(gm_mf_kind_name(GM_MF_POD), "Pod");
    cr_expect_str_eq(gm_mf_kind_name(GM_MF_JOB), "Job");
    cr_expect_str_eq(gm_mf_kind_name(GM_MF_DEPLOYMENT), "Deployment");
    cr_expect_str_eq(gm_mf_kind_name(GM_MF_MODULE), "module");
    cr_expect_str_eq(gm_mf_kind_name(GM_MF_WORKLOAD), "workload");
}

Test(manifest, memory_quantities)
{
    static const struct {
        const char *q;
        unsigned long long bytes;
    } cases[] = {{"4Gi", 4ull << 30},  {"512Mi", 512ull << 20},   {"1G", 1000000000ull},
                 {"1000000", 1000000}, {"1.5Gi", 1610612736ull},  {"1e9", 1000000000ull},
                 {"2k", 2000},         {"\"100M\"", 100000000ull}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), POD "      resources: {limits: {gpumux.dev/memory: %s}}\n",
                 cases[i].q);
        ok("q.yaml", text);
        cr_expect_eq(m.o[0].c[0].memory, cases[i].bytes, "%s: %llu", cases[i].q,
                     (unsigned long long)m.o[0].c[0].memory);
    }
}

Test(manifest, parse_as_one_format)
{
    size_t len;
    const char *text = data("seed-jobs.yaml", &len);
    gm_manifest_free(&m);
    cr_assert_eq(gm_manifest_parse_as(GM_MF_KUBERNETES, "j.yaml", text, len, &m, &err), 0, "%s",
                 err.msg);
    REFUSED_AS(GM_MF_NATIVE, "j.yaml", text, "j.yaml:2:13: document 1: apiVersion: 'batch/v1'",
               "native");
    REFUSED_AS(GM_MF_IOTEDGE, "j.yaml", text, "j.yaml:1:1: not valid JSON");
    REFUSED_AS(GM_MF_KUBERNETES, "w.yaml", NATIVE("  command: [a]\n"),
               "w.yaml:1:13: document 1: apiVersion: 'gpumux.dev/v1' in a Kubernetes file");
    REFUSED_AS(GM_MF_KUBERNETES, "e.json", IOT("{}"), "e.json:1:3", "an IoT Edge deployment");
    REFUSED_AS(GM_MF_IOTEDGE, "p.json", "{\"apiVersion\": \"v1\"}",
               "p.json: not an IoT Edge deployment");
}

/* Bad input: each refusal names the file, the object, the field and, for YAML, the line and
 * column. */

Test(manifest, broken_yaml)
{
    REFUSED("b.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x\nspec: {}\n",
            "b.yaml:4:5: not valid YAML: missing comma in flow mapping");
}

Test(manifest, broken_json)
{
    REFUSED("b.json", "{\"modulesContent\": {\"$edgeAgent\": }\n",
            "b.json:1:35: not valid JSON: unexpected token");
}

Test(manifest, duplicate_yaml_key)
{
    REFUSED("k.yaml", POD "      image: a\n      image: b\n", "k.yaml:9:7: not valid YAML",
            "duplicate key");
}

Test(manifest, command_is_a_string)
{
    REFUSED("c.yaml", POD "      command: /bin/true\n",
            "c.yaml:8:16: Pod/p: spec.containers[0].command: expected a list of strings, not a "
            "string");
}

Test(manifest, command_is_a_map)
{
    REFUSED("c.yaml", POD "      command: {run: true}\n",
            "c.yaml:8:17: Pod/p: spec.containers[0].command: expected a list of strings, not a "
            "mapping");
    REFUSED("n.yaml", NATIVE("  command: {run: true}\n"),
            "n.yaml:6:13: workload/w: spec.command: expected a list of strings, not a mapping");
}

Test(manifest, number_where_a_string_is_expected)
{
    REFUSED("e.yaml", POD "      env:\n        - name: A\n          value: 0\n",
            "e.yaml:10:18: Pod/p: spec.containers[0].env[0].value: expected a string",
            "quote it (\"0\")");
}

Test(manifest, unknown_kind)
{
    REFUSED("s.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {}\n",
            "s.yaml:2:7: document 1: kind: Service (apiVersion v1) is not a kind gpumux runs");
    REFUSED("c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {}\n",
            "c.yaml:2:7: document 1: kind: ConfigMap");
}

Test(manifest, unknown_api_version_for_kind)
{
    REFUSED("a.yaml", "apiVersion: apps/v1\nkind: Job\nmetadata: {name: j}\nspec: {}\n",
            "a.yaml:1:13: document 1: apiVersion: apps/v1 has no kind Job", "Job is batch/v1");
}

Test(manifest, unknown_fields)
{
    REFUSED("u.yaml", POD "      imagePullSecret: x\n",
            "u.yaml:8:7: Pod/p: spec.containers[0].imagePullSecret: unknown field");
    REFUSED("u.yaml",
            JOB "      restartPolicy: Never\n      containers: [{name: c}]\n"
                "  retries: 3\n",
            "u.yaml:10:3: Job/j: spec.retries: unknown field (JobSpec has no field \"retries\")");
    REFUSED("u.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  colour: red\nspec: {}\n",
            "u.yaml:5:3: Pod/p: metadata.colour: unknown field");
}

Test(manifest, replicas_out_of_range)
{
    static const char head[] = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
                               "spec:\n  template: {spec: {containers: [{name: c}]}}\n";
    char text[512];
    snprintf(text, sizeof(text), "%s  replicas: -1\n", head);
    REFUSED("d.yaml", text,
            "d.yaml:6:13: Deployment/d: spec.replicas: -1 is out of range (0..1000)");
    snprintf(text, sizeof(text), "%s  replicas: 1001\n", head);
    REFUSED("d.yaml", text, "d.yaml:6:13: Deployment/d: spec.replicas: 1001 is out of range");
    snprintf(text, sizeof(text), "%s  replicas: two\n", head);
    REFUSED("d.yaml", text, "d.yaml:6:13: Deployment/d: spec.replicas: expected an integer");
}

Test(manifest, fractional_gpu)
{
    REFUSED("g.yaml", POD "      resources:\n        limits:\n          nvidia.com/gpu: 0.5\n",
            "g.yaml:10:27: Pod/p: spec.containers[0].resources.limits nvidia.com/gpu: 0.5 is not a "
            "whole number of GPUs");
    REFUSED("g.yaml", POD "      resources: {requests: {nvidia.com/gpu: -1}}\n",
            "g.yaml:8:46: Pod/p: spec.containers[0].resources.requests nvidia.com/gpu: -1 is not");
    REFUSED("g.yaml", POD "      resources: {limits: {nvidia.com/gpu: \"abc\"}}\n",
            "resources.limits nvidia.com/gpu: abc is not a whole number of GPUs");
}

Test(manifest, compute_out_of_range)
{
    REFUSED("c.yaml", POD "      resources: {limits: {gpumux.dev/compute: 150}}\n",
            "c.yaml:8:48: Pod/p: spec.containers[0].resources.limits gpumux.dev/compute: 150 is "
            "out of range (1..100)");
    REFUSED("c.yaml", POD "      resources: {limits: {gpumux.dev/compute: 0}}\n",
            "gpumux.dev/compute: 0 is out of range");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  compute: 150\n"),
            "n.yaml:7:12: workload/w: spec.compute: 150 is out of range (1..100)");
}

Test(manifest, bad_memory_quantity)
{
    REFUSED("m.yaml", POD "      resources: {limits: {gpumux.dev/memory: -4Gi}}\n",
            "m.yaml:8:47: Pod/p: spec.containers[0].resources.limits gpumux.dev/memory: '-4Gi': "
            "negative");
    REFUSED("m.yaml", POD "      resources: {limits: {gpumux.dev/memory: lots}}\n",
            "gpumux.dev/memory: 'lots': not a quantity");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  memory: lots\n"),
            "n.yaml:7:11: workload/w: spec.memory: 'lots' is not a size");
}

Test(manifest, create_options_not_json)
{
    REFUSED("c.json",
            IOT("{\"type\": \"docker\", \"settings\": {\"image\": \"i\", \"createOptions\": "
                "\"{HostConfig: 1}\"}}"),
            "c.json: module/m: settings.createOptions: not JSON",
            "(line 1, column 11 of the string)");
    REFUSED("c.json",
            IOT("{\"type\": \"docker\", \"settings\": {\"image\": \"i\", \"createOptions\": "
                "{\"HostConfig\": {}}}}"),
            "c.json: module/m: settings.createOptions: expected a string holding JSON");
}

Test(manifest, entrypoint_of_the_wrong_type)
{
    REFUSED("e.json",
            IOT("{\"type\": \"docker\", \"settings\": {\"image\": \"i\", \"createOptions\": "
                "\"{\\\"Entrypoint\\\": 7}\"}}"),
            "e.json: module/m: settings.createOptions.Entrypoint: expected a string or an array "
            "of strings, not a number");
    REFUSED("e.json",
            IOT("{\"type\": \"docker\", \"settings\": {\"image\": \"i\", \"createOptions\": "
                "\"{\\\"Cmd\\\": [1]}\"}}"),
            "e.json: module/m: settings.createOptions.Cmd[0]: expected a string");
    REFUSED("e.json",
            IOT("{\"type\": \"docker\", \"settings\": {\"image\": \"i\", \"createOptions\": "
                "\"{\\\"Env\\\": [\\\"NOEQUALS\\\"]}\"}}"),
            "e.json: module/m: settings.createOptions.Env[0]: 'NOEQUALS' is not KEY=VALUE");
}

Test(manifest, create_options_parts_out_of_order)
{
    REFUSED("c.json",
            IOT("{\"type\": \"docker\", \"settings\": {\"image\": \"i\", \"createOptions\": "
                "\"{\", \"createOptions02\": \"}\"}}"),
            "c.json: module/m: settings.createOptions01: missing");
}

Test(manifest, duplicate_names_across_documents)
{
    REFUSED("d.yaml", POD "      command: [a]\n---\n" POD "      command: [b]\n",
            "d.yaml:13:9: Pod in document 2: metadata.name: 'p' is already the name of Pod/p at "
            "line 1");
    REFUSED("d.yaml", NATIVE("  command: [a]\n") "---\n" NATIVE("  command: [a]\n"),
            "d.yaml:11:9: workload in document 2: metadata.name: 'w' is already the name of "
            "workload/w at line 1");
}

Test(manifest, bad_names)
{
    REFUSED("n.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: MyPod\nspec: {}\n",
            "n.yaml:4:9: Pod in document 1: metadata.name: 'MyPod': must start with a lower-case",
            "lower-case");
    REFUSED("n.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: team/pod\nspec: {}\n",
            "n.yaml:4:9: Pod in document 1: metadata.name: 'team/pod': only lower-case letters");
    char text[256];
    snprintf(text, sizeof(text), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %.64s\nspec: {}\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    REFUSED("n.yaml", text, "n.yaml:4:9: Pod in document 1: metadata.name", "longer than 63");
    REFUSED("n.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {labels: {}}\nspec: {}\n",
            "n.yaml:3:12: Pod in document 1: metadata.name: required");
    REFUSED("m.json", IOT("{\"type\": \"docker\"}") /* name m is fine: see the next one */,
            "m.json: module/m: settings: required");
    REFUSED("m.json",
            "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {\"modules\": "
            "{\"TempSensor\": {}}}}}}",
            "m.json: module: modules.TempSensor: 'TempSensor': must start with a lower-case");
}

Test(manifest, file_too_large)
{
    size_t len = GM_MANIFEST_MAX_BYTES + 1;
    char *text = malloc(len);
    cr_assert_not_null(text);
    memset(text, '#', len);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    char want[128];
    snprintf(want, sizeof(want), "big.yaml: %zu bytes: larger than the %u bytes", len,
             GM_MANIFEST_MAX_BYTES);
    refused_len("big.yaml", text, len, (const char *const[]){want, NULL});
    clock_gettime(CLOCK_MONOTONIC, &b);
    free(text);
    cr_expect_lt((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 50);
}

Test(manifest, alias_bomb)
{
    static const char bomb[] = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                               "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                               "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                               "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                               "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                               "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                               "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                               "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                               "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    REFUSED("bomb.yaml", bomb, "bomb.yaml:2:9: document 1: YAML alias '*a'",
            "aliases (and merge keys) are not supported");
    /* Also where gpumux would not look: inside labels, and as a merge key. */
    REFUSED("l.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: &l {a: b}\n"
            "  annotations: *l\nspec: {}\n",
            "l.yaml:6:17: document 1: YAML alias '*l'");
    REFUSED("n.yaml", "x: &x {command: [a]}\n" NATIVE("  <<: *x\n"), "n.yaml:7:8", "alias '*x'");
}

Test(manifest, nesting_bombs)
{
    size_t n = 100000;
    char *text = malloc(2 * n + 64);
    cr_assert_not_null(text);
    memset(text, '[', n);
    memset(text + n, ']', n);
    text[2 * n] = '\0';
    REFUSED("deep.yaml", text, "deep.yaml:1:", "not valid YAML: Max depth");
    int k = snprintf(text, 64, "{\"modulesContent\": ");
    memset(text + k, '[', n);
    memset(text + k + n, ']', n);
    strcpy(text + k + 2 * n, "}");
    REFUSED("deep.json", text, "deep.json:1:", "not valid JSON: maximum parsing depth reached");
    free(text);
}

Test(manifest, env_value_from)
{
    REFUSED("v.yaml",
            POD "      env:\n        - name: NODE\n          valueFrom:\n            fieldRef: "
                "{fieldPath: spec.nodeName}\n",
            "v.yaml:11:13: Pod/p: spec.containers[0].env[0].valueFrom: not supported: only "
            "literal values");
    REFUSED("v.yaml", POD "      envFrom: [{configMapRef: {name: x}}]\n",
            "v.yaml:8:18: Pod/p: spec.containers[0].envFrom: not supported");
}

Test(manifest, job_restart_policy)
{
    REFUSED("j.yaml", JOB "      restartPolicy: Always\n      containers: [{name: c}]\n",
            "j.yaml:8:22: Job/j: spec.template.spec.restartPolicy: Always is not allowed for a "
            "Job");
    REFUSED("j.yaml", JOB "      containers: [{name: c}]\n",
            "j.yaml:8:7: Job/j: spec.template.spec.restartPolicy: required for a Job");
    REFUSED("j.yaml", JOB "      restartPolicy: Sometimes\n      containers: [{name: c}]\n",
            "j.yaml:8:22: Job/j: spec.template.spec.restartPolicy: 'Sometimes': give Always");
}

Test(manifest, deployment_restart_policy)
{
    REFUSED("d.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n"
            "    spec:\n      restartPolicy: Never\n      containers: [{name: c}]\n",
            "d.yaml:7:22: Deployment/d: spec.template.spec.restartPolicy: Never is not allowed for "
            "a Deployment");
}

Test(manifest, module_not_docker)
{
    REFUSED("t.json", IOT("{\"type\": \"podman\", \"settings\": {\"image\": \"i\"}}"),
            "t.json: module/m: type: 'podman': only docker modules are supported");
    REFUSED("t.json", IOT("{\"settings\": {\"image\": \"i\"}}"),
            "t.json: module/m: type: required");
}

Test(manifest, module_without_image)
{
    REFUSED("i.json", IOT("{\"type\": \"docker\", \"settings\": {\"createOptions\": \"{}\"}}"),
            "i.json: module/m: settings.image: required");
}

Test(manifest, module_bad_fields)
{
    REFUSED("s.json", IOT("{\"type\": \"docker\", \"status\": \"paused\", \"settings\": {}}"),
            "s.json: module/m: status: 'paused': give running or stopped");
    REFUSED("s.json",
            IOT("{\"type\": \"docker\", \"restartPolicy\": \"sometimes\", \"settings\": {}}"),
            "s.json: module/m: restartPolicy: 'sometimes'");
    REFUSED("s.json", IOT("{\"type\": \"docker\", \"colour\": 1, \"settings\": {}}"),
            "s.json: module/m: colour: unknown field");
    REFUSED("s.json", IOT("{\"type\": \"docker\", \"env\": {\"A\": \"1\"}, \"settings\": {}}"),
            "s.json: module/m: env.A: expected an object");
    REFUSED("s.json",
            IOT("{\"type\": \"docker\", \"settings\": {\"image\": \"i\", \"createOptions\": "
                "\"{\\\"HostConfig\\\": {\\\"Privileged\\\": \\\"yes\\\"}}\"}}"),
            "s.json: module/m: settings.createOptions.HostConfig.Privileged: expected true or "
            "false");
}

Test(manifest, iotedge_structure)
{
    REFUSED("p.json", "{\"modulesContent\": {\"$edgeAgent\": {\"properties\": {\"desired\": {}}}}}",
            "p.json: modulesContent.$edgeAgent.properties: write \"properties.desired\" as one "
            "key");
    REFUSED("p.json",
            "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": "
            "{\"modules\": {}}}}}",
            "p.json: modulesContent.$edgeAgent[\"properties.desired\"].modules: no modules");
    REFUSED("p.json", "{\"modulesContent\": {\"$edgeHub\": {}}}",
            "p.json: modulesContent.$edgeAgent: required");
    REFUSED("p.json",
            "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {}}}, "
            "\"modulesContent\": {}}",
            "p.json:1:", "not valid JSON: duplicate object key");
}

Test(manifest, no_objects)
{
    REFUSED("n.yaml", "---\n---\n# nothing\n", "n.yaml: no objects in it");
    REFUSED("n.yaml", "# a comment\n\n", "n.yaml: only blanks and comments: no objects");
}

Test(manifest, empty_file)
{
    refused_len("e.yaml", "", 0, (const char *const[]){"e.yaml: an empty file: no objects", NULL});
}

Test(manifest, binary_junk)
{
    static const char junk[] = "\x7f"
                               "ELF\x02\x01\x01\x00\x00\x00\xff\xfe";
    refused_len("a.out", junk, sizeof(junk) - 1,
                (const char *const[]){"a.out:1:8: not text: a NUL byte", NULL});
    REFUSED("l.yaml", "apiVersion: v1\nkind: \xc3\x28\n", "l.yaml:2:7: not UTF-8 text (byte 0xc3)");
}

Test(manifest, too_many_containers)
{
    char text[4096];
    int n = snprintf(text, sizeof(text),
                     "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                     "spec:\n  containers:\n");
    for (int i = 0; i <= GM_MANIFEST_MAX_CONTAINERS; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "    - {name: c%d}\n", i);
    REFUSED("c.yaml", text, "c.yaml:6:8: Pod/p: spec.containers: 17 containers: at most 16");
    REFUSED("c.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: []\n",
            "Pod/p: spec.containers: at least one container");
    REFUSED("c.yaml", POD "    - name: c\n",
            "c.yaml:8:7: Pod/p: spec.containers[1]: name 'c' is already the name of containers[0]");
}

Test(manifest, init_containers_refused)
{
    REFUSED("i.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: "
            "i}]\n  containers: [{name: c}]\n",
            "i.yaml:5:21: Pod/p: spec.initContainers: not supported");
}

Test(manifest, document_not_a_mapping)
{
    REFUSED("l.yaml", POD "---\n- a\n- b\n", "l.yaml:9:3: document 2: expected a mapping");
}

Test(manifest, mixed_formats)
{
    REFUSED("x.yaml", POD "---\n" NATIVE("  command: [a]\n"),
            "x.yaml:9:13: document 2: apiVersion: 'gpumux.dev/v1' in a Kubernetes file");
}

Test(manifest, native_refusals)
{
    REFUSED("n.yaml", NATIVE("  command: [a]\n  colour: red\n"),
            "n.yaml:7:3: workload/w: spec.colour: unknown field");
    REFUSED("n.yaml", NATIVE("  env: {A: 1}\n"), "n.yaml:6:3: workload/w: spec.command: required");
    REFUSED("n.yaml", NATIVE("  command: \"sleep 1\"\n"),
            "n.yaml:6:13: workload/w: spec.command: expected a list of strings, not a string");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  restart: sometimes\n"),
            "n.yaml:7:12: workload/w: spec.restart: 'sometimes'");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  restart: on-failure:0\n"),
            "n.yaml:7:12: workload/w: spec.restart on-failure:N: 0 is out of range");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  gpu: \"0\"\n  gpus: 1\n"),
            "n.yaml:8:9: workload/w: spec.gpus: give gpu (which GPUs) or gpus (how many), not "
            "both");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  gpu: \"0, 1\"\n"),
            "n.yaml:7:9: workload/w: spec.gpu: '0, 1'");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  replicas: -2\n"),
            "n.yaml:7:13: workload/w: spec.replicas: -2 is out of range (0..1000)");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  running: maybe\n"),
            "n.yaml:7:12: workload/w: spec.running: 'maybe' is not a boolean");
    REFUSED("n.yaml", "apiVersion: gpumux.dev/v1\nkind: Job\nmetadata: {name: w}\n",
            "n.yaml:2:7: document 1: kind: 'Job'");
    REFUSED("n.yaml", NATIVE("  command: [a]\n  env: [A=1]\n"),
            "n.yaml:7:9: workload/w: spec.env[0]: expected a mapping");
}

Test(manifest, fast)
{
    /* The whole suite's worst input, many documents, well within the time a test may take. */
    size_t cap = 2048 * 120, n = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (int i = 0; i < GM_MANIFEST_MAX_OBJECTS; i++)
        n += (size_t)snprintf(text + n, cap - n,
                              "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\n"
                              "spec: {containers: [{name: c}]}\n",
                              i);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ok_len("many.yaml", text, n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_expect_eq(m.n, GM_MANIFEST_MAX_OBJECTS);
    n += (size_t)snprintf(text + n, cap - n,
                          "---\napiVersion: v1\nkind: Pod\nmetadata: {name: last}\n"
                          "spec: {containers: [{name: c}]}\n");
    refused_len("many.yaml", text, n,
                (const char *const[]){"many.yaml:", "more than 2048 objects in one file", NULL});
    free(text);
    cr_expect_lt((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 500);
}
