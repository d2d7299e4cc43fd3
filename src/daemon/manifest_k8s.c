/* Kubernetes manifests: v1 Pod, batch/v1 Job and apps/v1 Deployment, one per YAML document.
 * Every field of those kinds is known: what gpumux acts on is read, what it does not act on is
 * accepted and listed as not enforced, and a field the kind does not have is refused, as
 * kubectl's strict validation refuses it. Values are typed as Kubernetes types them: a number
 * where a string is expected is refused with a hint to quote it. */
#include "daemon/manifest_internal.h"
#include "common/parse.h"

#include <stdlib.h>
#include <string.h>

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct {
    const char *kind, *api;
    enum gm_mf_kind k;
} kinds[] = {
    {"Pod", "v1", GM_MF_POD},
    {"Job", "batch/v1", GM_MF_JOB},
    {"Deployment", "apps/v1", GM_MF_DEPLOYMENT},
};

static const char *const meta_ignored[] = {"namespace",
                                           "labels",
                                           "annotations",
                                           "generateName",
                                           "uid",
                                           "resourceVersion",
                                           "generation",
                                           "creationTimestamp",
                                           "deletionTimestamp",
                                           "deletionGracePeriodSeconds",
                                           "ownerReferences",
                                           "finalizers",
                                           "managedFields",
                                           "selfLink",
                                           NULL};

static const char *const podspec_ignored[] = {"activeDeadlineSeconds",
                                              "affinity",
                                              "automountServiceAccountToken",
                                              "dnsConfig",
                                              "dnsPolicy",
                                              "enableServiceLinks",
                                              "ephemeralContainers",
                                              "hostAliases",
                                              "hostNetwork",
                                              "hostUsers",
                                              "hostname",
                                              "imagePullSecrets",
                                              "nodeName",
                                              "nodeSelector",
                                              "os",
                                              "overhead",
                                              "preemptionPolicy",
                                              "priority",
                                              "priorityClassName",
                                              "readinessGates",
                                              "resourceClaims",
                                              "resources",
                                              "runtimeClassName",
                                              "schedulerName",
                                              "schedulingGates",
                                              "securityContext",
                                              "serviceAccount",
                                              "serviceAccountName",
                                              "setHostnameAsFQDN",
                                              "shareProcessNamespace",
                                              "subdomain",
                                              "terminationGracePeriodSeconds",
                                              "tolerations",
                                              "topologySpreadConstraints",
                                              NULL};

static const char *const container_ignored[] = {"ports",
                                                "imagePullPolicy",
                                                "livenessProbe",
                                                "readinessProbe",
                                                "startupProbe",
                                                "lifecycle",
                                                "volumeMounts",
                                                "volumeDevices",
                                                "stdin",
                                                "stdinOnce",
                                                "tty",
                                                "terminationMessagePath",
                                                "terminationMessagePolicy",
                                                "resizePolicy",
                                                "restartPolicy",
                                                NULL};

static const char *const security_ignored[] = {"allowPrivilegeEscalation",
                                               "appArmorProfile",
                                               "procMount",
                                               "readOnlyRootFilesystem",
                                               "runAsGroup",
                                               "runAsNonRoot",
                                               "runAsUser",
                                               "seLinuxOptions",
                                               "seccompProfile",
                                               "windowsOptions",
                                               NULL};

/* The volume sources other than hostPath: each mounts nothing of the host's. */
static const char *const volume_sources[] = {"emptyDir",
                                             "configMap",
                                             "secret",
                                             "persistentVolumeClaim",
                                             "projected",
                                             "downwardAPI",
                                             "nfs",
                                             "csi",
                                             "ephemeral",
                                             "image",
                                             "iscsi",
                                             "cephfs",
                                             "rbd",
                                             "glusterfs",
                                             "fc",
                                             "flexVolume",
                                             "awsElasticBlockStore",
                                             "gcePersistentDisk",
                                             "azureDisk",
                                             "azureFile",
                                             "cinder",
                                             "flocker",
                                             "gitRepo",
                                             "photonPersistentDisk",
                                             "portworxVolume",
                                             "quobyte",
                                             "scaleIO",
                                             "storageos",
                                             "vsphereVolume",
                                             NULL};

static const char *const job_ignored[] = {"activeDeadlineSeconds",
                                          "ttlSecondsAfterFinished",
                                          "selector",
                                          "manualSelector",
                                          "completionMode",
                                          "suspend",
                                          "podFailurePolicy",
                                          "backoffLimitPerIndex",
                                          "maxFailedIndexes",
                                          "podReplacementPolicy",
                                          "successPolicy",
                                          "managedBy",
                                          NULL};

static const char *const deployment_ignored[] = {
    "selector", "strategy", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds",
    "paused",   NULL};

/* A required field: its value, or a refusal at the mapping that lacks it. */
static int required(struct gm_mf_parse *p, struct fy_node *map, const char *key, const char *path,
                    struct fy_node **out)
{
    char kp[GM_MF_PATH];
    gm_mf_path_key(kp, sizeof(kp), path, key);
    *out = gm_mf_yget(map, key);
    if (*out != NULL)
        return 0;
    int line, col;
    gm_mf_ypos(map, &line, &col);
    return gm_mf_fail(p, line, col, kp, "required");
}

/* The text of a resource quantity: an integer or a string; a number with a fraction is
 * returned too (the caller says why it does not do). */
static const char *quantity_text(struct gm_mf_parse *p, struct fy_node *v, const char *path,
                                 int *rc)
{
    enum gm_mf_ytype t = gm_mf_ytype(v);
    const char *s = t == GM_MF_YINT || t == GM_MF_YFLOAT || t == GM_MF_YSTR ? gm_mf_ytext(v) : NULL;
    *rc = 0;
    if (s == NULL) {
        int line, col;
        gm_mf_ypos(v, &line, &col);
        *rc = gm_mf_fail(p, line, col, path, "expected a quantity, not %s", gm_mf_ytype_name(t));
    }
    return s;
}

/* resources.limits or resources.requests: the three resources gpumux knows, each other one
 * noted. Called for requests first, then limits, so that limits win. */
static int resource_list(struct gm_mf_parse *p, struct fy_node *n, const char *path,
                         struct gm_mf_container *c)
{
    int rc = gm_mf_yexpect(p, n, path, GM_MF_YMAP);
    void *it = NULL;
    struct fy_node_pair *pair;
    while (rc == 0 && (pair = fy_node_mapping_iterate(n, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
        const char *key = k != NULL && fy_node_is_scalar(k) ? gm_mf_ytext(k) : NULL;
        int line, col;
        gm_mf_ypos(k, &line, &col);
        if (key == NULL)
            return gm_mf_fail(p, line, col, path, "a resource name that is not a string");
        char kp[GM_MF_PATH];
        gm_mf_path_key(kp, sizeof(kp), path, key);
        int gpu = strcmp(key, "nvidia.com/gpu") == 0,
            compute = strcmp(key, "gpumux.dev/compute") == 0,
            memory = strcmp(key, "gpumux.dev/memory") == 0;
        if (!gpu && !compute && !memory) {
            rc = gm_mf_note(p, kp);
            continue;
        }
        const char *s = quantity_text(p, v, kp, &rc);
        if (s == NULL)
            return rc;
        gm_mf_ypos(v, &line, &col);
        if (gpu) {
            long long g = 0;
            size_t nd = strspn(s, "0123456789");
            if (nd == 0 || s[nd] != '\0' || nd > 6)
                return gm_mf_fail(p, line, col, kp, "%s is not a whole number of GPUs", s);
            g = atoll(s);
            if (g > GM_MF_MAX_GPUS)
                return gm_mf_fail(p, line, col, kp, "%lld GPUs: more than %d", g, GM_MF_MAX_GPUS);
            c->gpus = (int)g;
        } else if (compute) {
            char what[GM_MF_PATH + GM_MF_LABEL + 256];
            gm_mf_prefix(p, line, col, kp, what, sizeof(what));
            int pct;
            if ((rc = gm_parse_percent(s, &pct, what, p->err)) < 0)
                return rc;
            c->compute_pct = pct;
        } else {
            const char *why;
            uint64_t bytes;
            if (gm_mf_quantity(s, &bytes, &why) < 0)
                return gm_mf_fail(p, line, col, kp, "'%s': %s", s, why);
            c->memory = bytes;
        }
    }
    return rc;
}

static int resources(struct gm_mf_parse *p, struct fy_node *n, const char *path,
                     struct gm_mf_container *c)
{
    int rc = gm_mf_ymap(p, n, path, "ResourceRequirements", L("limits", "requests"), L("claims"));
    char kp[GM_MF_PATH];
    struct fy_node *v;
    if (rc == 0 && (v = gm_mf_yget(n, "requests")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "requests");
        rc = resource_list(p, v, kp, c);
    }
    if (rc == 0 && (v = gm_mf_yget(n, "limits")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "limits");
        rc = resource_list(p, v, kp, c);
    }
    return rc;
}

static int security(struct gm_mf_parse *p, struct fy_node *n, const char *path,
                    struct gm_mf_container *c)
{
    int rc = gm_mf_ymap(p, n, path, "SecurityContext", L("privileged", "capabilities"),
                        security_ignored);
    char kp[GM_MF_PATH];
    struct fy_node *v;
    if (rc == 0 && (v = gm_mf_yget(n, "privileged")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "privileged");
        rc = gm_mf_ybool(p, v, kp, &c->privileged);
    }
    if (rc == 0 && (v = gm_mf_yget(n, "capabilities")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "capabilities");
        rc = gm_mf_ymap(p, v, kp, "Capabilities", L("add"), L("drop"));
        struct fy_node *add = rc == 0 ? gm_mf_yget(v, "add") : NULL;
        if (add != NULL) {
            char ap[GM_MF_PATH];
            gm_mf_path_key(ap, sizeof(ap), kp, "add");
            char **caps = NULL;
            rc = gm_mf_ystrv(p, add, ap, 1, &caps);
            for (char **s = caps; s != NULL && *s != NULL; s++) {
                c->cap_add++;
                free(*s);
            }
            free(caps);
        }
    }
    return rc;
}

static int env_list(struct gm_mf_parse *p, struct fy_node *n, const char *path,
                    struct gm_mf_container *c)
{
    int line, col;
    gm_mf_ypos(n, &line, &col);
    if (!fy_node_is_sequence(n))
        return gm_mf_fail(p, line, col, path, "expected a list of {name, value}, not %s",
                          gm_mf_ytype_name(gm_mf_ytype(n)));
    void *it = NULL;
    struct fy_node *e;
    int rc = 0;
    for (size_t i = 0; rc == 0 && (e = fy_node_sequence_iterate(n, &it)) != NULL; i++) {
        char ep[GM_MF_PATH], kp[GM_MF_PATH];
        gm_mf_path_index(ep, sizeof(ep), path, i);
        if ((rc = gm_mf_ymap(p, e, ep, "EnvVar", L("name", "value", "valueFrom"), NULL)) < 0)
            return rc;
        struct fy_node *from = gm_mf_yget(e, "valueFrom");
        if (from != NULL) {
            gm_mf_ypos(from, &line, &col);
            gm_mf_path_key(kp, sizeof(kp), ep, "valueFrom");
            return gm_mf_fail(p, line, col, kp,
                              "not supported: only literal values (value: \"...\") are; gpumux "
                              "reads no ConfigMap, Secret or field of the pod");
        }
        rc = gm_mf_env_entry(p, e, ep, 1, c);
    }
    return rc;
}

static int container(struct gm_mf_parse *p, struct fy_node *n, const char *path,
                     struct gm_mf_container *c)
{
    int rc = gm_mf_ymap(p, n, path, "Container",
                        L("name", "image", "command", "args", "env", "envFrom", "workingDir",
                          "resources", "securityContext"),
                        container_ignored);
    if (rc < 0)
        return rc;
    gm_mf_ypos(n, &c->line, &c->col);
    char kp[GM_MF_PATH];
    struct fy_node *v;
    int line, col;
    if ((rc = required(p, n, "name", path, &v)) < 0)
        return rc;
    gm_mf_path_key(kp, sizeof(kp), path, "name");
    if ((rc = gm_mf_ystr(p, v, kp, 1, &c->name)) < 0)
        return rc;
    const char *why = gm_mf_name_problem(c->name);
    if (why != NULL) {
        gm_mf_ypos(v, &line, &col);
        return gm_mf_fail(p, line, col, kp, "'%s': %s", c->name, why);
    }
    if ((v = gm_mf_yget(n, "envFrom")) != NULL) {
        gm_mf_ypos(v, &line, &col);
        gm_mf_path_key(kp, sizeof(kp), path, "envFrom");
        return gm_mf_fail(p, line, col, kp,
                          "not supported: only literal values in env (value: \"...\") are");
    }
    if ((v = gm_mf_yget(n, "image")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "image");
        if ((rc = gm_mf_ystr(p, v, kp, 1, &c->image)) < 0)
            return rc;
    }
    if ((v = gm_mf_yget(n, "command")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "command");
        if ((rc = gm_mf_ystrv(p, v, kp, 1, &c->command)) < 0)
            return rc;
    }
    if ((v = gm_mf_yget(n, "args")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "args");
        if ((rc = gm_mf_ystrv(p, v, kp, 1, &c->args)) < 0)
            return rc;
    }
    if ((v = gm_mf_yget(n, "env")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "env");
        if ((rc = env_list(p, v, kp, c)) < 0)
            return rc;
    }
    if ((v = gm_mf_yget(n, "workingDir")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "workingDir");
        if ((rc = gm_mf_ystr(p, v, kp, 1, &c->workdir)) < 0)
            return rc;
    }
    if ((v = gm_mf_yget(n, "resources")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "resources");
        if ((rc = resources(p, v, kp, c)) < 0)
            return rc;
    }
    if ((v = gm_mf_yget(n, "securityContext")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "securityContext");
        if ((rc = security(p, v, kp, c)) < 0)
            return rc;
    }
    return 0;
}

/* spec.volumes: the hostPath volumes counted (each mounts a host path), the others noted. */
static int volumes(struct gm_mf_parse *p, struct fy_node *n, const char *path, int *host)
{
    int line, col;
    gm_mf_ypos(n, &line, &col);
    if (!fy_node_is_sequence(n))
        return gm_mf_fail(p, line, col, path, "expected a list of volumes, not %s",
                          gm_mf_ytype_name(gm_mf_ytype(n)));
    void *it = NULL;
    struct fy_node *e;
    int rc = 0;
    for (size_t i = 0; rc == 0 && (e = fy_node_sequence_iterate(n, &it)) != NULL; i++) {
        char ep[GM_MF_PATH], kp[GM_MF_PATH];
        gm_mf_path_index(ep, sizeof(ep), path, i);
        if ((rc = gm_mf_ymap(p, e, ep, "Volume", L("name", "hostPath"), volume_sources)) < 0)
            return rc;
        struct fy_node *v, *hp = gm_mf_yget(e, "hostPath");
        if ((rc = required(p, e, "name", ep, &v)) < 0)
            return rc;
        gm_mf_path_key(kp, sizeof(kp), ep, "name");
        char *name = NULL;
        rc = gm_mf_ystr(p, v, kp, 1, &name);
        free(name);
        if (rc == 0 && hp != NULL) {
            gm_mf_path_key(kp, sizeof(kp), ep, "hostPath");
            rc = gm_mf_ymap(p, hp, kp, "HostPathVolumeSource", L("path"), L("type"));
            char *hpath = NULL;
            if (rc == 0 && (rc = required(p, hp, "path", kp, &v)) == 0) {
                char pp[GM_MF_PATH];
                gm_mf_path_key(pp, sizeof(pp), kp, "path");
                rc = gm_mf_ystr(p, v, pp, 1, &hpath);
            }
            free(hpath);
            (*host)++;
        }
    }
    return rc;
}

static int pod_spec(struct gm_mf_parse *p, struct fy_node *n, const char *path)
{
    struct gm_mf_object *o = p->o;
    int rc = gm_mf_ymap(
        p, n, path, "PodSpec",
        L("containers", "initContainers", "restartPolicy", "hostIPC", "hostPID", "volumes"),
        podspec_ignored);
    if (rc < 0)
        return rc;
    char kp[GM_MF_PATH];
    struct fy_node *v;
    int line, col;
    if ((v = gm_mf_yget(n, "initContainers")) != NULL) {
        gm_mf_ypos(v, &line, &col);
        gm_mf_path_key(kp, sizeof(kp), path, "initContainers");
        return gm_mf_fail(p, line, col, kp,
                          "not supported: gpumux runs the containers only; run the step in the "
                          "container's command instead");
    }
    if ((v = gm_mf_yget(n, "hostIPC")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "hostIPC");
        if ((rc = gm_mf_ybool(p, v, kp, &o->host_ipc)) < 0)
            return rc;
    }
    if ((v = gm_mf_yget(n, "hostPID")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "hostPID");
        if ((rc = gm_mf_ybool(p, v, kp, &o->host_pid)) < 0)
            return rc;
    }
    gm_mf_path_key(kp, sizeof(kp), path, "restartPolicy");
    v = gm_mf_yget(n, "restartPolicy");
    gm_mf_ypos(v != NULL ? v : n, &line, &col);
    if (v != NULL) {
        char *rp = NULL;
        if ((rc = gm_mf_ystr(p, v, kp, 1, &rp)) < 0)
            return rc;
        o->restart = strcmp(rp, "Always") == 0      ? GM_MF_RESTART_ALWAYS
                     : strcmp(rp, "OnFailure") == 0 ? GM_MF_RESTART_ON_FAILURE
                     : strcmp(rp, "Never") == 0     ? GM_MF_RESTART_NEVER
                                                    : GM_MF_RESTART_UNSET;
        if (o->restart == GM_MF_RESTART_UNSET) {
            rc = gm_mf_fail(p, line, col, kp, "'%s': give Always, OnFailure or Never", rp);
            free(rp);
            return rc;
        }
        free(rp);
    }
    /* What the API server allows each kind, so that a manifest gpumux takes is one Kubernetes
     * takes too. */
    if (o->kind == GM_MF_JOB && o->restart == GM_MF_RESTART_UNSET)
        return gm_mf_fail(p, line, col, kp, "required for a Job: Never or OnFailure");
    if (o->kind == GM_MF_JOB && o->restart == GM_MF_RESTART_ALWAYS)
        return gm_mf_fail(p, line, col, kp,
                          "Always is not allowed for a Job: give Never or OnFailure");
    if (o->kind == GM_MF_DEPLOYMENT && o->restart != GM_MF_RESTART_UNSET &&
        o->restart != GM_MF_RESTART_ALWAYS)
        return gm_mf_fail(p, line, col, kp, "%s is not allowed for a Deployment: only Always is",
                          o->restart == GM_MF_RESTART_NEVER ? "Never" : "OnFailure");
    if (o->restart == GM_MF_RESTART_UNSET)
        o->restart = GM_MF_RESTART_ALWAYS;
    int host = 0;
    if ((v = gm_mf_yget(n, "volumes")) != NULL) {
        gm_mf_path_key(kp, sizeof(kp), path, "volumes");
        if ((rc = volumes(p, v, kp, &host)) < 0)
            return rc;
    }
    gm_mf_path_key(kp, sizeof(kp), path, "containers");
    if ((rc = required(p, n, "containers", path, &v)) < 0)
        return rc;
    gm_mf_ypos(v, &line, &col);
    if (!fy_node_is_sequence(v))
        return gm_mf_fail(p, line, col, kp, "expected a list of containers, not %s",
                          gm_mf_ytype_name(gm_mf_ytype(v)));
    int nc = fy_node_sequence_item_count(v);
    if (nc < 1)
        return gm_mf_fail(p, line, col, kp, "at least one container is required");
    if (nc > GM_MANIFEST_MAX_CONTAINERS)
        return gm_mf_fail(p, line, col, kp, "%d containers: at most %d", nc,
                          GM_MANIFEST_MAX_CONTAINERS);
    if ((rc = gm_mf_containers(p, (size_t)nc)) < 0)
        return rc;
    void *it = NULL;
    struct fy_node *e;
    for (size_t i = 0; (e = fy_node_sequence_iterate(v, &it)) != NULL; i++) {
        char cp[GM_MF_PATH];
        gm_mf_path_index(cp, sizeof(cp), kp, i);
        struct gm_mf_container *c = &o->c[i];
        if ((rc = container(p, e, cp, c)) < 0)
            return rc;
        /* A hostPath volume is the pod's: any of its containers may mount it. */
        c->host_binds += host;
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->c[j].name, c->name) == 0)
                return gm_mf_fail(p, c->line, c->col, cp,
                                  "name '%s' is already the name of containers[%zu]", c->name, j);
    }
    return 0;
}

/* A pod template: spec.template of a Job or a Deployment. */
static int pod_template(struct gm_mf_parse *p, struct fy_node *spec, const char *path)
{
    struct fy_node *t;
    int rc = required(p, spec, "template", path, &t);
    char tp[GM_MF_PATH], sp[GM_MF_PATH];
    gm_mf_path_key(tp, sizeof(tp), path, "template");
    if (rc == 0)
        rc = gm_mf_ymap(p, t, tp, "PodTemplateSpec", L("spec"), L("metadata"));
    struct fy_node *s = NULL;
    if (rc == 0)
        rc = required(p, t, "spec", tp, &s);
    gm_mf_path_key(sp, sizeof(sp), tp, "spec");
    return rc < 0 ? rc : pod_spec(p, s, sp);
}

static int count(struct gm_mf_parse *p, struct fy_node *spec, const char *key, long long min,
                 int *out)
{
    struct fy_node *v = gm_mf_yget(spec, key);
    char kp[GM_MF_PATH];
    gm_mf_path_key(kp, sizeof(kp), "spec", key);
    return v == NULL ? 0 : gm_mf_yint(p, v, kp, min, GM_MANIFEST_MAX_REPLICAS, out);
}

int gm_mf_k8s_document(struct gm_mf_parse *p, struct fy_node *root, int docno)
{
    int line, col, rc;
    gm_mf_ypos(root, &line, &col);
    struct fy_node *kv, *av, *meta, *spec, *nv;
    if ((rc = required(p, root, "apiVersion", "", &av)) < 0 ||
        (rc = required(p, root, "kind", "", &kv)) < 0)
        return rc;
    char *api = NULL, *kind = NULL;
    if ((rc = gm_mf_ystr(p, av, "apiVersion", 1, &api)) < 0)
        return rc;
    if ((rc = gm_mf_ystr(p, kv, "kind", 1, &kind)) < 0) {
        free(api);
        return rc;
    }
    size_t k = 0, nk = sizeof(kinds) / sizeof(kinds[0]);
    while (k < nk && strcmp(kinds[k].kind, kind) != 0)
        k++;
    int kline, kcol;
    gm_mf_ypos(kv, &kline, &kcol);
    if (k == nk)
        rc = gm_mf_fail(p, kline, kcol, "kind",
                        "%s (apiVersion %s) is not a kind gpumux runs: it runs Pod (v1), Job "
                        "(batch/v1) and Deployment (apps/v1)",
                        kind, api);
    else if (strcmp(kinds[k].api, api) != 0) {
        gm_mf_ypos(av, &kline, &kcol);
        rc =
            gm_mf_fail(p, kline, kcol, "apiVersion", "%s has no kind %s that gpumux runs: %s is %s",
                       api, kind, kind, kinds[k].api);
    }
    free(api);
    free(kind);
    if (rc < 0)
        return rc;
    if ((rc = gm_mf_object_add(p, kinds[k].k, line, col, docno)) < 0)
        return rc;
    struct gm_mf_object *o = p->o;
    /* The name first, so that every later refusal names the object. */
    if ((rc = required(p, root, "metadata", "", &meta)) < 0 ||
        (rc = gm_mf_yexpect(p, meta, "metadata", GM_MF_YMAP)) < 0 ||
        (rc = required(p, meta, "name", "metadata", &nv)) < 0)
        return rc;
    char *name = NULL;
    if ((rc = gm_mf_ystr(p, nv, "metadata.name", 1, &name)) < 0)
        return rc;
    int nline, ncol;
    gm_mf_ypos(nv, &nline, &ncol);
    rc = gm_mf_object_name(p, name, nline, ncol, "metadata.name");
    free(name);
    if (rc < 0)
        return rc;
    if ((rc = gm_mf_ymap(p, root, "", kinds[k].kind, L("apiVersion", "kind", "metadata", "spec"),
                         L("status"))) < 0 ||
        (rc = gm_mf_ymap(p, meta, "metadata", "ObjectMeta", L("name"), meta_ignored)) < 0)
        return rc;
    if ((rc = required(p, root, "spec", "", &spec)) < 0)
        return rc;
    switch (o->kind) {
    case GM_MF_POD:
        return pod_spec(p, spec, "spec");
    case GM_MF_JOB:
        o->backoff_limit = 6;
        if ((rc = gm_mf_ymap(p, spec, "spec", "JobSpec",
                             L("template", "backoffLimit", "completions", "parallelism"),
                             job_ignored)) < 0 ||
            (rc = count(p, spec, "backoffLimit", 0, &o->backoff_limit)) < 0 ||
            (rc = count(p, spec, "completions", 1, &o->completions)) < 0 ||
            (rc = count(p, spec, "parallelism", 1, &o->parallelism)) < 0)
            return rc;
        return pod_template(p, spec, "spec");
    case GM_MF_DEPLOYMENT:
        if ((rc = gm_mf_ymap(p, spec, "spec", "DeploymentSpec", L("replicas", "template"),
                             deployment_ignored)) < 0 ||
            (rc = count(p, spec, "replicas", 0, &o->replicas)) < 0)
            return rc;
        return pod_template(p, spec, "spec");
    default:
        return gm_mf_fail(p, line, col, NULL, "not a Kubernetes kind");
    }
}
