/* Deployment manifests as users write them, parsed into one model: Kubernetes YAML (v1 Pod,
 * batch/v1 Job, apps/v1 Deployment, several documents in one file), IoT Edge deployment JSON
 * (modulesContent -> $edgeAgent -> "properties.desired" -> modules) and gpumux's own format
 * (docs/manifests.md). Parsing is pure: text in, objects out, nothing looked up on the machine;
 * what the objects mean for the GPUs (placement, limits, restarts, what runs under which name)
 * is the apply plan's (daemon/apply.c).
 *
 * YAML goes through libfyaml and JSON through jansson. Every refusal names the file, the
 * object and the field, with the line and column where the parser gives them:
 *   "jobs.yaml:14:19: Job/cuda-sample1: spec.template.spec.containers[0].resources.limits
 *    nvidia.com/gpu: 0.5 is not a whole number of GPUs"
 * and nothing is returned (the whole file is refused). */
#ifndef GM_DAEMON_MANIFEST_H
#define GM_DAEMON_MANIFEST_H

#include "common/error.h"

#include <stddef.h>
#include <stdint.h>

/* The largest manifest accepted (bytes); a larger one is refused before it is parsed. */
#define GM_MANIFEST_MAX_BYTES (512u << 10)
/* At most this many objects (documents, modules, workloads) in one file, and containers in one
 * object; replicas, completions and parallelism at most GM_MANIFEST_MAX_REPLICAS. */
#define GM_MANIFEST_MAX_OBJECTS    2048
#define GM_MANIFEST_MAX_CONTAINERS 16
#define GM_MANIFEST_MAX_REPLICAS   1000

enum gm_mf_format { GM_MF_KUBERNETES, GM_MF_IOTEDGE, GM_MF_NATIVE };

enum gm_mf_kind {
    GM_MF_POD,        /* v1 Pod */
    GM_MF_JOB,        /* batch/v1 Job */
    GM_MF_DEPLOYMENT, /* apps/v1 Deployment */
    GM_MF_MODULE,     /* an IoT Edge module */
    GM_MF_WORKLOAD,   /* a native workload */
};

/* How a workload is restarted, as its format says it (the plan maps it to the daemon's). */
enum gm_mf_restart {
    GM_MF_RESTART_UNSET,        /* not given: the kind's default */
    GM_MF_RESTART_NEVER,        /* Never, never */
    GM_MF_RESTART_ON_FAILURE,   /* OnFailure, on-failure */
    GM_MF_RESTART_ON_UNHEALTHY, /* IoT Edge on-unhealthy (no health probes here: as on-failure) */
    GM_MF_RESTART_ALWAYS,       /* Always, always */
};

struct gm_mf_env {
    char *name;
    char *value;
};

/* One container of a Pod (or of a Job's or a Deployment's pod template), one module, or one
 * native workload. */
struct gm_mf_container {
    char *name;            /* the container's name ("" when the format has none: module, native) */
    char *image;           /* NULL: no image, the command runs as a process on the host */
    char **command;        /* NULL-terminated, NULL when not given: Kubernetes command, IoT Edge
                            * createOptions Entrypoint, native command */
    char **args;           /* NULL-terminated, NULL when not given: Kubernetes args, IoT Edge Cmd */
    struct gm_mf_env *env; /* in the order given; NVIDIA_VISIBLE_DEVICES and
                            * CUDA_MPS_ACTIVE_THREAD_PERCENTAGE are left here, as written */
    size_t nenv;
    char *workdir;   /* NULL when not given */
    int gpus;        /* whole GPUs asked (nvidia.com/gpu in limits, else requests); -1 not given */
    char *gpu;       /* native only: "0", "0,1", a UUID, "all", "none"; NULL not given */
    int compute_pct; /* gpumux.dev/compute (1..100); 0 not given */
    uint64_t memory; /* gpumux.dev/memory in bytes ("4Gi", "512Mi", "1G"); 0 not given */
    /* Container options that would give a caller root on the host, as given (IoT Edge
     * createOptions HostConfig; Kubernetes securityContext.privileged, hostPath volumes): the
     * plan refuses them for callers who are not root, naming the field. */
    int privileged;
    int host_binds; /* host paths mounted (Binds, Mounts of type bind, hostPath volumes) */
    int cap_add;    /* capabilities added */
    int devices;    /* host devices passed in */
    int line, col;  /* where it starts in the file (1-based; 0 when unknown) */
};

/* One object of the file: a Kubernetes document, an IoT Edge module, a native workload. */
struct gm_mf_object {
    enum gm_mf_kind kind;
    char *name;  /* metadata.name, the module's key, the native name */
    char *label; /* "Job/cuda-sample1", "module/sample1", "workload/train": for messages */
    struct gm_mf_container *c;
    size_t nc;
    enum gm_mf_restart restart;
    int host_ipc, host_pid; /* hostIPC/hostPID; IoT Edge HostConfig IpcMode/PidMode "host" */
    int running;            /* 1, or 0 for an IoT Edge module with status "stopped" */
    int replicas;           /* Deployment spec.replicas (default 1); 1 for the others */
    int completions;        /* Job spec.completions (default 1); 1 for the others */
    int parallelism;        /* Job spec.parallelism (default 1); 1 for the others */
    int backoff_limit;      /* Job spec.backoffLimit (default 6); native restart on-failure:N's N;
                             * -1 for the others */
    /* Fields accepted and not acted on, as paths inside the object
     * ("metadata.labels", "spec.template.spec.containers[0].resources.limits.cpu",
     * "spec.selector"): describe shows them as not enforced. */
    char **not_enforced; /* NULL-terminated, NULL when none */
    int line, col;
};

struct gm_manifest {
    enum gm_mf_format format;
    struct gm_mf_object *o;
    size_t n;
};

/* Parses text (len bytes, need not be NUL-terminated) read from file (a name for messages
 * only: "jobs.yaml", "-" for standard input). The format is told from the text: JSON whose top
 * level has "modulesContent" is IoT Edge; YAML or JSON whose documents have "apiVersion" and
 * "kind" is Kubernetes, unless apiVersion is "gpumux.dev/v1", which is native. Object names
 * must be unique within the file and be valid workload names ([a-z0-9][a-z0-9_.-]*, at most
 * 63 characters). Returns 0 with *out filled (free with gm_manifest_free), or -GM_EINVAL
 * (refused: err names file, object and field), -GM_ENOMEM. */
int gm_manifest_parse(const char *file, const char *text, size_t len, struct gm_manifest *out,
                      struct gm_error *err);
/* The same, for one format only (what the fuzz targets drive): text in another format is
 * refused as not being that format. */
int gm_manifest_parse_as(enum gm_mf_format format, const char *file, const char *text, size_t len,
                         struct gm_manifest *out, struct gm_error *err);
void gm_manifest_free(struct gm_manifest *m);

const char *gm_mf_format_name(enum gm_mf_format f); /* "kubernetes", "iotedge", "native" */
const char *gm_mf_kind_name(enum gm_mf_kind k);     /* "Pod", "Job", "Deployment", "module",
                                                       "workload" */

#endif
