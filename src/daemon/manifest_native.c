/* gpumux's own manifest: one workload per YAML (or JSON) document, with the options of
 * `gpumux run` (docs/manifests.md):
 *   apiVersion: gpumux.dev/v1
 *   kind: Workload
 *   metadata: {name: train}
 *   spec: {command: [python3, train.py], gpu: "0", compute: 50, memory: 4G, restart: always}
 * Every field is gpumux's, so none is accepted without being acted on: an unknown one is
 * refused. Scalars are taken as written (command: [sleep, 10] is "sleep" "10"), and sizes have
 * the units of `gpumux run --memory` (K, M, G, T: powers of 1024). */
#include "daemon/manifest_internal.h"
#include "common/parse.h"
#include "daemon/model.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A GPU as NVIDIA_VISIBLE_DEVICES names them: "all", "none", or a comma-separated list of
 * indexes, UUIDs (or prefixes of them) and PCI bus ids. Which GPUs they are is the plan's to
 * find: the parser looks nothing up. */
static int gpu_ok(const char *s)
{
    if (strcmp(s, "all") == 0 || strcmp(s, "none") == 0)
        return 1;
    if (*s == '\0')
        return 0;
    for (const char *item = s;;) {
        size_t n = strcspn(item, ",");
        if (n == 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)item[i]) && strchr(":.-_", item[i]) == NULL)
                return 0;
        if (item[n] == '\0')
            return 1;
        item += n + 1;
    }
}

static int env(struct gm_mf_parse *p, struct fy_node *n, const char *path,
               struct gm_mf_container *c)
{
    int line, col, rc = 0;
    char kp[GM_MF_PATH];
    if (fy_node_is_mapping(n)) {
        void *it = NULL;
        struct fy_node_pair *pair;
        while (rc == 0 && (pair = fy_node_mapping_iterate(n, &it)) != NULL) {
            struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
            const char *key = k != NULL && fy_node_is_scalar(k) ? gm_mf_ytext(k) : NULL;
            gm_mf_ypos(k, &line, &col);
            if (key == NULL || !gm_mf_env_name_ok(key))
                return gm_mf_fail(p, line, col, path,
                                  "'%s' is not a variable name (empty, or with '=')",
                                  key ? key : "");
            gm_mf_path_key(kp, sizeof(kp), path, key);
            char *value = NULL;
            if (gm_mf_ytype(v) != GM_MF_YNULL)
                rc = gm_mf_ystr(p, v, kp, 0, &value);
            if (rc == 0)
                rc = gm_mf_env_set(p, c, key, value ? value : "", 1);
            free(value);
        }
        return rc;
    }
    gm_mf_ypos(n, &line, &col);
    if (!fy_node_is_sequence(n))
        return gm_mf_fail(p, line, col, path,
                          "expected a mapping (KEY: value) or a list of {name, value}, not %s",
                          gm_mf_ytype_name(gm_mf_ytype(n)));
    void *it = NULL;
    struct fy_node *e;
    for (size_t i = 0; rc == 0 && (e = fy_node_sequence_iterate(n, &it)) != NULL; i++) {
        char ep[GM_MF_PATH];
        gm_mf_path_index(ep, sizeof(ep), path, i);
        if ((rc = gm_mf_ymap(p, e, ep, "an environment variable", L("name", "value"), NULL)) < 0)
            return rc;
        rc = gm_mf_env_entry(p, e, ep, 0, c);
    }
    return rc;
}

/* restart: never, on-failure, on-failure:N (N restarts at most, kept in backoff_limit),
 * always; as `gpumux run --restart`. */
static int restart(struct gm_mf_parse *p, struct fy_node *v, struct gm_mf_object *o)
{
    char *s = NULL;
    int rc = gm_mf_ystr(p, v, "spec.restart", 0, &s);
    if (rc < 0)
        return rc;
    int line, col;
    gm_mf_ypos(v, &line, &col);
    if (strcmp(s, "never") == 0)
        o->restart = GM_MF_RESTART_NEVER;
    else if (strcmp(s, "always") == 0)
        o->restart = GM_MF_RESTART_ALWAYS;
    else if (strcmp(s, "on-failure") == 0)
        o->restart = GM_MF_RESTART_ON_FAILURE;
    else if (strncmp(s, "on-failure:", 11) == 0) {
        char what[GM_MF_PATH + GM_MF_LABEL + 256];
        gm_mf_prefix(p, line, col, "spec.restart on-failure:N", what, sizeof(what));
        long long n;
        rc = gm_parse_int(s + 11, 1, GM_RESTART_MAX_BOUND, &n, what, p->err);
        o->restart = GM_MF_RESTART_ON_FAILURE;
        o->backoff_limit = (int)n;
    } else {
        rc = gm_mf_fail(p, line, col, "spec.restart",
                        "'%s': give never, on-failure, on-failure:N or always", s);
    }
    free(s);
    return rc;
}

static int spec(struct gm_mf_parse *p, struct fy_node *n)
{
    struct gm_mf_object *o = p->o;
    int rc = gm_mf_ymap(p, n, "spec", "a Workload's spec",
                        L("command", "image", "env", "workingDir", "gpu", "gpus", "compute",
                          "memory", "restart", "replicas", "running", "hostIPC", "hostPID"),
                        NULL);
    if (rc < 0 || (rc = gm_mf_containers(p, 1)) < 0 ||
        (rc = gm_mf_strdup(p, "", &o->c[0].name)) < 0)
        return rc;
    struct gm_mf_container *c = &o->c[0];
    c->line = o->line;
    c->col = o->col;
    struct fy_node *v;
    int line, col;
    if ((v = gm_mf_yget(n, "command")) != NULL &&
        (rc = gm_mf_ystrv(p, v, "spec.command", 0, &c->command)) < 0)
        return rc;
    if ((v = gm_mf_yget(n, "image")) != NULL &&
        (rc = gm_mf_ystr(p, v, "spec.image", 0, &c->image)) < 0)
        return rc;
    if (c->image == NULL && (c->command == NULL || c->command[0] == NULL)) {
        v = gm_mf_yget(n, "command");
        gm_mf_ypos(v != NULL ? v : n, &line, &col);
        return gm_mf_fail(p, line, col, "spec.command",
                          "required (a list: the program and its arguments), unless an image "
                          "is given");
    }
    if ((v = gm_mf_yget(n, "env")) != NULL && (rc = env(p, v, "spec.env", c)) < 0)
        return rc;
    if ((v = gm_mf_yget(n, "workingDir")) != NULL &&
        (rc = gm_mf_ystr(p, v, "spec.workingDir", 0, &c->workdir)) < 0)
        return rc;
    struct fy_node *gpu = gm_mf_yget(n, "gpu"), *gpus = gm_mf_yget(n, "gpus");
    if (gpu != NULL && gpus != NULL) {
        gm_mf_ypos(gpus, &line, &col);
        return gm_mf_fail(p, line, col, "spec.gpus",
                          "give gpu (which GPUs) or gpus (how many), not both");
    }
    if (gpu != NULL) {
        if ((rc = gm_mf_ystr(p, gpu, "spec.gpu", 0, &c->gpu)) < 0)
            return rc;
        if (!gpu_ok(c->gpu)) {
            gm_mf_ypos(gpu, &line, &col);
            return gm_mf_fail(p, line, col, "spec.gpu",
                              "'%s': give an index (0), a list (0,1), a GPU UUID, all or none",
                              c->gpu);
        }
    }
    if (gpus != NULL && (rc = gm_mf_yint(p, gpus, "spec.gpus", 0, GM_MF_MAX_GPUS, &c->gpus)) < 0)
        return rc;
    if ((v = gm_mf_yget(n, "compute")) != NULL &&
        (rc = gm_mf_yint(p, v, "spec.compute", 1, 100, &c->compute_pct)) < 0)
        return rc;
    if ((v = gm_mf_yget(n, "memory")) != NULL) {
        char *s = NULL;
        if ((rc = gm_mf_ystr(p, v, "spec.memory", 0, &s)) < 0)
            return rc;
        char what[GM_MF_PATH + GM_MF_LABEL + 256];
        gm_mf_ypos(v, &line, &col);
        gm_mf_prefix(p, line, col, "spec.memory", what, sizeof(what));
        rc = gm_parse_size(s, &c->memory, what, p->err);
        free(s);
        if (rc < 0)
            return rc;
    }
    o->restart = GM_MF_RESTART_NEVER;
    if ((v = gm_mf_yget(n, "restart")) != NULL && (rc = restart(p, v, o)) < 0)
        return rc;
    if ((v = gm_mf_yget(n, "replicas")) != NULL &&
        (rc = gm_mf_yint(p, v, "spec.replicas", 0, GM_MANIFEST_MAX_REPLICAS, &o->replicas)) < 0)
        return rc;
    if ((v = gm_mf_yget(n, "running")) != NULL &&
        (rc = gm_mf_ybool(p, v, "spec.running", &o->running)) < 0)
        return rc;
    if ((v = gm_mf_yget(n, "hostIPC")) != NULL &&
        (rc = gm_mf_ybool(p, v, "spec.hostIPC", &o->host_ipc)) < 0)
        return rc;
    if ((v = gm_mf_yget(n, "hostPID")) != NULL &&
        (rc = gm_mf_ybool(p, v, "spec.hostPID", &o->host_pid)) < 0)
        return rc;
    return 0;
}

int gm_mf_native_document(struct gm_mf_parse *p, struct fy_node *root, int docno)
{
    int line, col, rc;
    gm_mf_ypos(root, &line, &col);
    struct fy_node *kv = gm_mf_yget(root, "kind"), *meta, *nv, *sv;
    char *kind = NULL;
    if (kv == NULL)
        return gm_mf_fail(p, line, col, "kind", "required (Workload)");
    if ((rc = gm_mf_ystr(p, kv, "kind", 0, &kind)) < 0)
        return rc;
    if (strcmp(kind, "Workload") != 0) {
        gm_mf_ypos(kv, &line, &col);
        rc = gm_mf_fail(p, line, col, "kind", "'%s': gpumux.dev/v1 has the kind Workload only",
                        kind);
    }
    free(kind);
    if (rc < 0 || (rc = gm_mf_object_add(p, GM_MF_WORKLOAD, line, col, docno)) < 0)
        return rc;
    /* The name first, so that every later refusal names the object. */
    if ((meta = gm_mf_yget(root, "metadata")) == NULL)
        return gm_mf_fail(p, line, col, "metadata.name", "required");
    if ((rc = gm_mf_yexpect(p, meta, "metadata", GM_MF_YMAP)) < 0)
        return rc;
    if ((nv = gm_mf_yget(meta, "name")) == NULL) {
        gm_mf_ypos(meta, &line, &col);
        return gm_mf_fail(p, line, col, "metadata.name", "required");
    }
    char *name = NULL;
    if ((rc = gm_mf_ystr(p, nv, "metadata.name", 0, &name)) < 0)
        return rc;
    gm_mf_ypos(nv, &line, &col);
    rc = gm_mf_object_name(p, name, line, col, "metadata.name");
    free(name);
    if (rc < 0)
        return rc;
    if ((rc = gm_mf_ymap(p, root, "", "a Workload", L("apiVersion", "kind", "metadata", "spec"),
                         NULL)) < 0 ||
        (rc = gm_mf_ymap(p, meta, "metadata", "a Workload's metadata", L("name"), NULL)) < 0)
        return rc;
    if ((sv = gm_mf_yget(root, "spec")) == NULL) {
        gm_mf_ypos(root, &line, &col);
        return gm_mf_fail(p, line, col, "spec", "required (at least spec.command)");
    }
    return spec(p, sv);
}
