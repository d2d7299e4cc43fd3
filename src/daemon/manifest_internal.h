/* What the three manifest parsers share (manifest.c): the object being built, refusals in one
 * form ("FILE:LINE:COL: LABEL: PATH: reason"), names, strings, environment lists, Kubernetes
 * quantities, and the YAML side (documents, node positions, typed scalars, mappings checked
 * against the fields a kind has). Not part of the daemon's interface. */
#ifndef GM_DAEMON_MANIFEST_INTERNAL_H
#define GM_DAEMON_MANIFEST_INTERNAL_H

#include "common/strv.h"
#include "daemon/manifest.h"

#include <libfyaml.h>
#include <stdarg.h>

/* The most GPUs one container may ask for by count (nvidia.com/gpu, native gpus). */
#define GM_MF_MAX_GPUS 1024
/* Room for a field's path inside its object, and for an object's label. */
#define GM_MF_PATH  320
#define GM_MF_LABEL 128

/* One parse: the file's name for messages, the manifest being filled, where refusals go. */
struct gm_mf_parse {
    const char *file;
    struct gm_manifest *m;
    size_t cap;
    struct gm_error *err;
    /* The object being filled (m->o[m->n - 1] once added) and its not_enforced list, whose
     * array the object owns from the first entry on. */
    struct gm_mf_object *o;
    struct gm_strv ne;
    char label[GM_MF_LABEL]; /* the current object's label, or "document 2" before its name */
    /* How the YAML documents are read: 0 until the first object decides (auto detection),
     * else the format every document must have. */
    int fixed;
    enum gm_mf_format format;
};

/* Refusals. line 0 leaves the position out; label or path NULL or "" leave those out. */
int gm_mf_fail(struct gm_mf_parse *p, int line, int col, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* "FILE:LINE:COL: LABEL: PATH" (the same parts), for the helpers of common/parse.h that put
 * their `what` in front of the reason. */
void gm_mf_prefix(const struct gm_mf_parse *p, int line, int col, const char *path, char *buf,
                  size_t len);
int gm_mf_nomem(struct gm_mf_parse *p);

/* path + "." + key, or path + " " + key when the key has a '/' (a resource or label name:
 * "resources.limits nvidia.com/gpu"); path "" gives the key alone. */
void gm_mf_path_key(char *buf, size_t len, const char *path, const char *key);
/* path + "[i]". */
void gm_mf_path_index(char *buf, size_t len, const char *path, size_t i);

/* Appends an object of kind with its defaults (running, one replica, one completion, one in
 * parallel, no backoff limit, restart unset) and makes it the current one. */
int gm_mf_object_add(struct gm_mf_parse *p, enum gm_mf_kind kind, int line, int col, int docno);
/* Checks name (the workload name rule and uniqueness in the file), then names the current
 * object and labels it "KIND/NAME". path names the field in messages ("metadata.name"). */
int gm_mf_object_name(struct gm_mf_parse *p, const char *name, int line, int col, const char *path);
/* Why s is not a valid workload name ([a-z0-9][a-z0-9_.-]*, at most 63 characters), or NULL
 * when it is one. */
const char *gm_mf_name_problem(const char *s);
/* Records path as accepted and not enforced. */
int gm_mf_note(struct gm_mf_parse *p, const char *path);
/* Gives the current object nc containers with their defaults (no GPU count asked). */
int gm_mf_containers(struct gm_mf_parse *p, size_t nc);

int gm_mf_strdup(struct gm_mf_parse *p, const char *s, char **out);
/* Sets name=value in c's environment; an existing name keeps its value unless replace. */
int gm_mf_env_set(struct gm_mf_parse *p, struct gm_mf_container *c, const char *name,
                  const char *value, int replace);
/* An environment variable's name: not empty, no '='. */
int gm_mf_env_name_ok(const char *name);
/* One {name, value} entry e of an env list, at path ep (its keys already checked): name
 * required and a variable name, value absent meaning "", set in c (a later entry of the same
 * name wins, as the kubelet sets them in order). strict: scalars must be strings, as
 * gm_mf_ystr takes it. */
int gm_mf_env_entry(struct gm_mf_parse *p, struct fy_node *e, const char *ep, int strict,
                    struct gm_mf_container *c);

/* A Kubernetes quantity as a whole number of bytes, for gpumux.dev/memory: "4Gi", "512Mi",
 * "1G" (10^9), "1000000", "1.5Gi", "1e9". Refused: zero, negative, junk, more than 1 PiB.
 * Returns 0, or -1 with a reason in why. */
int gm_mf_quantity(const char *s, uint64_t *out, const char **why);

/* The YAML side. */

/* What a scalar is, as YAML's core schema (with YAML 1.1's yes/no/on/off, as Kubernetes reads
 * them) resolves it; quoted and block scalars are strings. */
enum gm_mf_ytype {
    GM_MF_YNULL,
    GM_MF_YBOOL,
    GM_MF_YINT,
    GM_MF_YFLOAT,
    GM_MF_YSTR,
    GM_MF_YSEQ,
    GM_MF_YMAP
};

void gm_mf_ypos(struct fy_node *n, int *line, int *col);
enum gm_mf_ytype gm_mf_ytype(struct fy_node *n);
const char *gm_mf_ytype_name(enum gm_mf_ytype t); /* "a number", "a list", ... */
/* A node's text (scalars only; NULL for a scalar with a NUL character in it). */
const char *gm_mf_ytext(struct fy_node *n);
/* The value of key in map, NULL when absent or null (YAML's null means not given, as it does
 * to Kubernetes). */
struct fy_node *gm_mf_yget(struct fy_node *map, const char *key);

/* Typed values. strict: the value must be a string (Kubernetes: a number where a string is
 * expected is refused, with a hint to quote it); otherwise any scalar is taken as written. */
int gm_mf_ystr(struct gm_mf_parse *p, struct fy_node *n, const char *path, int strict, char **out);
int gm_mf_ybool(struct gm_mf_parse *p, struct fy_node *n, const char *path, int *out);
int gm_mf_yint(struct gm_mf_parse *p, struct fy_node *n, const char *path, long long min,
               long long max, int *out);
/* A list of strings, NULL-terminated (empty list: an array holding only NULL). */
int gm_mf_ystrv(struct gm_mf_parse *p, struct fy_node *n, const char *path, int strict,
                char ***out);
/* Checks that n is a mapping whose keys are strings, each one of handled (read by the caller)
 * or ignored (recorded as not enforced); any other key is refused as an unknown field of
 * what ("PodSpec"). Both lists end with NULL. */
int gm_mf_ymap(struct gm_mf_parse *p, struct fy_node *n, const char *path, const char *what,
               const char *const *handled, const char *const *ignored);
int gm_mf_yexpect(struct gm_mf_parse *p, struct fy_node *n, const char *path,
                  enum gm_mf_ytype want);

/* The per-document parsers: root is a mapping, docno counts from 1. */
int gm_mf_k8s_document(struct gm_mf_parse *p, struct fy_node *root, int docno);
int gm_mf_native_document(struct gm_mf_parse *p, struct fy_node *root, int docno);
/* The IoT Edge parser: the whole text (NUL-terminated, len bytes). */
int gm_mf_iotedge_parse(struct gm_mf_parse *p, const char *text, size_t len);

#endif
