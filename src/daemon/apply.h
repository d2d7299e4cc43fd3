/* What applying a manifest means, decided purely: the objects of a parsed manifest
 * (daemon/manifest.h) become desired workload records (gm_apply_expand), and those are matched
 * against what runs and admitted as one (gm_apply_plan): every workload to create is placed
 * against the GPUs as they will be once the whole file is applied, and when one cannot be,
 * nothing is, and the error names it. The daemon's executor (gm_workload_apply) records the
 * plan in one transaction and launches what it creates. */
#ifndef GM_DAEMON_APPLY_H
#define GM_DAEMON_APPLY_H

#include "common/error.h"
#include "daemon/manifest.h"
#include "daemon/model.h"
#include "daemon/plan.h"

#include <stddef.h>
#include <stdint.h>

/* One desired workload: its record (name, deployment, kind, limits, restart, spec: no placement
 * and no run-time fields) and the GPU it asks for. */
struct gm_apply_item {
    struct gm_workload_rec rec;
    char *gpu;      /* NULL: placed by policy; "none", "0", "0,1", a UUID, "all" */
    int running;    /* 0: recorded stopped (an IoT Edge module with status stopped) */
    int gpus_asked; /* nvidia.com/gpu (whole GPUs) when that is how it asked, else 0 */
    const struct gm_mf_object *obj;
};

/* A deployment record per object of the file ("job/cuda-sample1", "module/sample1"). */
struct gm_apply_dep {
    char name[64];
    const struct gm_mf_object *obj;
};

struct gm_apply_set {
    enum gm_mf_format format;
    struct gm_apply_item *v;
    size_t n;
    struct gm_apply_dep *dep;
    size_t ndep;
};

/* The desired workloads of m, run as uid/gid. Names: an object of one container and one
 * replica is one workload of the object's name; a Deployment's replicas are NAME-0 ..
 * NAME-(N-1) whatever N (so that scaling renames none), as are a Job's N > 1 completions; a Pod of
 * several containers NAME-CONTAINER (and NAME-I-CONTAINER with replicas). Restarts: Never -> never,
 * OnFailure/on-failure -> on-failure (a Job's at most backoffLimit times), Always -> always; a Job
 * that fails past its backoffLimit is not restarted. A container asks for a GPU with
 * NVIDIA_VISIBLE_DEVICES (as on the appliance), nvidia.com/gpu: 1 (placed by policy), or native
 * gpu; with none of them it gets no GPU. Refused (err names file and object): an image (containers
 * run through podman, which this daemon does not drive yet), no command, nvidia.com/gpu past 1
 * without naming the GPUs, a generated name that is not a valid workload name. Returns 0 (free with
 * gm_apply_set_free), -GM_EINVAL, -GM_ENOMEM. */
int gm_apply_expand(const struct gm_manifest *m, const char *file, int uid, int gid,
                    struct gm_apply_set *out, struct gm_error *err);
void gm_apply_set_free(struct gm_apply_set *s);

enum gm_apply_op { GM_APPLY_CREATE, GM_APPLY_KEEP, GM_APPLY_DELETE };

struct gm_apply_action {
    enum gm_apply_op op;
    long item;   /* index into the set (CREATE, KEEP), -1 for DELETE */
    long actual; /* index into the records given (KEEP, DELETE), -1 for CREATE */
    /* CREATE: where admission placed it */
    int ngpus;
    char gpus[GM_MAX_WORKLOAD_GPUS][96];
};

struct gm_apply_plan {
    struct gm_apply_action *a;
    size_t n;
    size_t count[3]; /* per gm_apply_op */
    /* Deployment records to write (index into set->dep) and to remove (names). */
    size_t *dep_write;
    size_t ndep_write;
    char (*dep_remove)[64];
    size_t ndep_remove;
};

/* The plan for applying set against the recorded GPUs and workloads (all of them) and the
 * recorded deployments (names, formats): objects in the file are created or kept; a workload
 * of one of the file's objects that the file no longer asks for (a Deployment scaled down) is
 * deleted; an IoT Edge file is the device's whole module set, so a module recorded from an
 * earlier IoT Edge file and absent from this one is deleted with its deployment. A desired
 * workload whose name belongs to a workload of another deployment, or of none, is refused; so
 * is one whose spec changed (changing a running object is not done yet: delete it, then apply).
 * Every workload to create is admitted (gm_sched_admit) against the records as they will be:
 * the deleted ones left out, the ones created before it in the file counted in. Returns 0
 * (free with gm_apply_plan_free), or a negative error naming the object. */
int gm_apply_plan(const struct gm_apply_set *set, const struct gm_gpu_rec *gpus, size_t ngpus,
                  const struct gm_workload_rec *ws, size_t nws, const char *const *deps,
                  const char *const *dep_formats, size_t ndeps, uint64_t reserve, int spread,
                  struct gm_apply_plan *out, struct gm_error *err);
void gm_apply_plan_free(struct gm_apply_plan *p);

/* The deployment name of an object: its kind, lower case, a slash, its name. */
void gm_apply_dep_name(const struct gm_mf_object *o, char *buf, size_t len);

#endif
