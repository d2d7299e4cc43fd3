/* Deployment manifests (manifest.h): the checks every file gets before any parser sees it, the
 * format told from the text, the YAML documents read one by one, and what the three parsers
 * share (manifest_internal.h). The formats themselves are in manifest_k8s.c,
 * manifest_iotedge.c and manifest_native.c. */
#include "daemon/manifest_internal.h"
#include "common/parse.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *gm_mf_format_name(enum gm_mf_format f)
{
    switch (f) {
    case GM_MF_KUBERNETES:
        return "kubernetes";
    case GM_MF_IOTEDGE:
        return "iotedge";
    case GM_MF_NATIVE:
        return "native";
    }
    return "?";
}

const char *gm_mf_kind_name(enum gm_mf_kind k)
{
    switch (k) {
    case GM_MF_POD:
        return "Pod";
    case GM_MF_JOB:
        return "Job";
    case GM_MF_DEPLOYMENT:
        return "Deployment";
    case GM_MF_MODULE:
        return "module";
    case GM_MF_WORKLOAD:
        return "workload";
    }
    return "?";
}

static void strv_free(char **v)
{
    for (char **s = v; s != NULL && *s != NULL; s++)
        free(*s);
    free(v);
}

static void container_free(struct gm_mf_container *c)
{
    free(c->name);
    free(c->image);
    strv_free(c->command);
    strv_free(c->args);
    for (size_t i = 0; i < c->nenv; i++) {
        free(c->env[i].name);
        free(c->env[i].value);
    }
    free(c->env);
    free(c->workdir);
    free(c->gpu);
}

void gm_manifest_free(struct gm_manifest *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        struct gm_mf_object *o = &m->o[i];
        free(o->name);
        free(o->label);
        for (size_t j = 0; j < o->nc; j++)
            container_free(&o->c[j]);
        free(o->c);
        strv_free(o->not_enforced);
    }
    free(m->o);
    memset(m, 0, sizeof(*m));
}

/* Refusals. */

void gm_mf_prefix(const struct gm_mf_parse *p, int line, int col, const char *path, char *buf,
                  size_t len)
{
    int n;
    if (line > 0)
        n = snprintf(buf, len, "%s:%d:%d", p->file, line, col);
    else
        n = snprintf(buf, len, "%s", p->file);
    if (n < 0 || (size_t)n >= len)
        return;
    if (p->label[0] != '\0') {
        int k = snprintf(buf + n, len - (size_t)n, ": %s", p->label);
        if (k < 0 || (size_t)k >= len - (size_t)n)
            return;
        n += k;
    }
    if (path != NULL && path[0] != '\0')
        snprintf(buf + n, len - (size_t)n, ": %s", path);
}

int gm_mf_fail(struct gm_mf_parse *p, int line, int col, const char *path, const char *fmt, ...)
{
    char prefix[GM_MF_PATH + GM_MF_LABEL + 256], reason[768];
    gm_mf_prefix(p, line, col, path, prefix, sizeof(prefix));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return gm_err(p->err, GM_EINVAL, "%s: %s", prefix, reason);
}

int gm_mf_nomem(struct gm_mf_parse *p)
{
    return gm_err(p->err, GM_ENOMEM, "%s: out of memory", p->file);
}

void gm_mf_path_key(char *buf, size_t len, const char *path, const char *key)
{
    if (path == NULL || path[0] == '\0')
        snprintf(buf, len, "%s", key);
    else
        snprintf(buf, len, "%s%c%s", path, strchr(key, '/') != NULL ? ' ' : '.', key);
}

void gm_mf_path_index(char *buf, size_t len, const char *path, size_t i)
{
    snprintf(buf, len, "%s[%zu]", path, i);
}

/* Objects. */

int gm_mf_object_add(struct gm_mf_parse *p, enum gm_mf_kind kind, int line, int col, int docno)
{
    struct gm_manifest *m = p->m;
    if (m->n == GM_MANIFEST_MAX_OBJECTS)
        return gm_mf_fail(p, line, col, NULL, "more than %d objects in one file",
                          GM_MANIFEST_MAX_OBJECTS);
    if (m->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 8;
        struct gm_mf_object *v = realloc(m->o, ncap * sizeof(*v));
        if (v == NULL)
            return gm_mf_nomem(p);
        m->o = v;
        p->cap = ncap;
    }
    struct gm_mf_object *o = &m->o[m->n++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->running = 1;
    o->replicas = 1;
    o->completions = 1;
    o->parallelism = 1;
    o->backoff_limit = -1;
    o->line = line;
    o->col = col;
    p->o = o;
    /* The list starts afresh: its array belongs to the object before. */
    memset(&p->ne, 0, sizeof(p->ne));
    if (docno <= 0)
        snprintf(p->label, sizeof(p->label), "%s", gm_mf_kind_name(kind));
    else
        snprintf(p->label, sizeof(p->label), "%s in document %d", gm_mf_kind_name(kind), docno);
    return 0;
}

/* The workload name rule: the daemon's names are these, lower case, so that a manifest's
 * names can become workload and deployment names unchanged. */
const char *gm_mf_name_problem(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return "a name is required";
    if (n > 63)
        return "longer than 63 characters";
    if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return "must start with a lower-case letter or a digit";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!islower(c) && !isdigit(c) && c != '.' && c != '_' && c != '-')
            return "only lower-case letters, digits, '.', '_' and '-' are allowed";
    }
    return NULL;
}

int gm_mf_object_name(struct gm_mf_parse *p, const char *name, int line, int col, const char *path)
{
    const char *why = gm_mf_name_problem(name);
    if (why != NULL)
        return gm_mf_fail(p, line, col, path, "'%s': %s", name, why);
    struct gm_mf_object *o = p->o;
    for (struct gm_mf_object *q = p->m->o; q < o; q++)
        if (q->name != NULL && strcmp(q->name, name) == 0) {
            if (q->line > 0)
                return gm_mf_fail(p, line, col, path,
                                  "'%s' is already the name of %s at line %d: names must be "
                                  "unique in a file",
                                  name, q->label, q->line);
            return gm_mf_fail(p, line, col, path,
                              "'%s' is already the name of %s: names must be unique in a file",
                              name, q->label);
        }
    char label[GM_MF_LABEL];
    snprintf(label, sizeof(label), "%s/%s", gm_mf_kind_name(o->kind), name);
    if (gm_mf_strdup(p, name, &o->name) < 0 || gm_mf_strdup(p, label, &o->label) < 0)
        return -GM_ENOMEM;
    snprintf(p->label, sizeof(p->label), "%s", label);
    return 0;
}

int gm_mf_note(struct gm_mf_parse *p, const char *path)
{
    if (gm_strv_add(&p->ne, path) < 0) {
        p->o->not_enforced = p->ne.v;
        return gm_mf_nomem(p);
    }
    p->o->not_enforced = p->ne.v;
    return 0;
}

int gm_mf_containers(struct gm_mf_parse *p, size_t nc)
{
    struct gm_mf_object *o = p->o;
    o->c = calloc(nc, sizeof(*o->c));
    if (o->c == NULL)
        return gm_mf_nomem(p);
    o->nc = nc;
    for (size_t i = 0; i < nc; i++)
        o->c[i].gpus = -1;
    return 0;
}

int gm_mf_strdup(struct gm_mf_parse *p, const char *s, char **out)
{
    char *d = strdup(s);
    if (d == NULL)
        return gm_mf_nomem(p);
    free(*out);
    *out = d;
    return 0;
}

int gm_mf_env_name_ok(const char *name)
{
    return name[0] != '\0' && strchr(name, '=') == NULL;
}

int gm_mf_env_entry(struct gm_mf_parse *p, struct fy_node *e, const char *ep, int strict,
                    struct gm_mf_container *c)
{
    int line, col, rc;
    char kp[GM_MF_PATH];
    struct fy_node *nv = gm_mf_yget(e, "name"), *vv = gm_mf_yget(e, "value");
    gm_mf_path_key(kp, sizeof(kp), ep, "name");
    if (nv == NULL) {
        gm_mf_ypos(e, &line, &col);
        return gm_mf_fail(p, line, col, kp, "required");
    }
    char *name = NULL, *value = NULL;
    rc = gm_mf_ystr(p, nv, kp, strict, &name);
    if (rc == 0 && !gm_mf_env_name_ok(name)) {
        gm_mf_ypos(nv, &line, &col);
        rc = gm_mf_fail(p, line, col, kp, "'%s' is not a variable name (empty, or with '=')", name);
    }
    gm_mf_path_key(kp, sizeof(kp), ep, "value");
    if (rc == 0 && vv != NULL)
        rc = gm_mf_ystr(p, vv, kp, strict, &value);
    if (rc == 0)
        rc = gm_mf_env_set(p, c, name, value != NULL ? value : "", 1);
    free(name);
    free(value);
    return rc;
}

int gm_mf_env_set(struct gm_mf_parse *p, struct gm_mf_container *c, const char *name,
                  const char *value, int replace)
{
    for (size_t i = 0; i < c->nenv; i++)
        if (strcmp(c->env[i].name, name) == 0)
            return replace ? gm_mf_strdup(p, value, &c->env[i].value) : 0;
    /* Grown by powers of two: nenv alone tells the capacity. */
    if ((c->nenv & (c->nenv - 1)) == 0) {
        size_t ncap = c->nenv ? c->nenv * 2 : 4;
        struct gm_mf_env *v = realloc(c->env, ncap * sizeof(*v));
        if (v == NULL)
            return gm_mf_nomem(p);
        c->env = v;
    }
    struct gm_mf_env *e = &c->env[c->nenv];
    e->name = strdup(name);
    e->value = strdup(value);
    if (e->name == NULL || e->value == NULL) {
        free(e->name);
        free(e->value);
        return gm_mf_nomem(p);
    }
    c->nenv++;
    return 0;
}

int gm_mf_quantity(const char *s, uint64_t *out, const char **why)
{
    /* Kubernetes' quantity grammar, less what makes no whole number of bytes: a sign, the
     * milli suffix "m". Exact arithmetic: 1.5Gi is 1610612736, not a rounding of it. */
    static const struct {
        const char *suffix;
        unsigned base, exp;
    } units[] = {{"Ki", 2, 10}, {"Mi", 2, 20}, {"Gi", 2, 30}, {"Ti", 2, 40}, {"Pi", 2, 50},
                 {"Ei", 2, 60}, {"k", 10, 3},  {"M", 10, 6},  {"G", 10, 9},  {"T", 10, 12},
                 {"P", 10, 15}, {"E", 10, 18}, {"", 10, 0}};
    *why = "not a quantity (a whole number of bytes, or with a unit: 512Mi, 4Gi, 1G)";
    if (s[0] == '-') {
        *why = "negative";
        return -1;
    }
    size_t ni = strspn(s, "0123456789"), nf = 0;
    const char *frac = NULL;
    if (s[ni] == '.') {
        frac = s + ni + 1;
        nf = strspn(frac, "0123456789");
    }
    if (ni + nf == 0 || ni > 19 || nf > 9)
        return -1;
    const char *u = frac != NULL ? frac + nf : s + ni;
    unsigned base = 10, exp = 0;
    if ((u[0] == 'e' || u[0] == 'E') && isdigit((unsigned char)u[1])) {
        size_t ne = strspn(u + 1, "0123456789");
        if (u[1 + ne] != '\0' || ne > 2)
            return -1;
        exp = (unsigned)atoi(u + 1);
    } else {
        size_t k = 0;
        while (strcmp(units[k].suffix, u) != 0 && units[k].suffix[0] != '\0')
            k++;
        if (strcmp(units[k].suffix, u) != 0)
            return -1;
        base = units[k].base;
        exp = units[k].exp;
    }
    unsigned __int128 mult = 1, ip = 0, fp = 0, den = 1;
    for (unsigned i = 0; i < exp; i++) {
        mult *= base;
        if (mult > ((unsigned __int128)1 << 80))
            goto big;
    }
    for (size_t i = 0; i < ni; i++)
        ip = ip * 10 + (unsigned)(s[i] - '0');
    for (size_t i = 0; i < nf; i++) {
        fp = fp * 10 + (unsigned)(frac[i] - '0');
        den *= 10;
    }
    /* A fraction of a byte is rounded up, as Kubernetes rounds memory. */
    unsigned __int128 bytes = ip * mult + (fp * mult + den - 1) / den;
    if (bytes == 0) {
        *why = "zero";
        return -1;
    }
    if (bytes > (unsigned __int128)1 << 50)
        goto big;
    *out = (uint64_t)bytes;
    return 0;
big:
    *why = "larger than 1 PiB";
    return -1;
}

/* The YAML side. */

void gm_mf_ypos(struct fy_node *n, int *line, int *col)
{
    /* libfyaml marks scalars only: a mapping or a list is where its first scalar is, which is
     * where it starts in block style (and one past the bracket in flow style). */
    while (n != NULL && !fy_node_is_scalar(n)) {
        void *it = NULL;
        if (fy_node_is_mapping(n)) {
            struct fy_node_pair *pair = fy_node_mapping_iterate(n, &it);
            n = pair != NULL ? fy_node_pair_key(pair) : NULL;
        } else {
            n = fy_node_sequence_iterate(n, &it);
        }
    }
    struct fy_token *t = n != NULL ? fy_node_get_scalar_token(n) : NULL;
    const struct fy_mark *m = t != NULL ? fy_token_start_mark(t) : NULL;
    *line = m != NULL ? m->line + 1 : 0;
    *col = m != NULL ? m->column + 1 : 0;
}

static int word_in(const char *s, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

static int is_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (s[0] == '0' && s[1] == 'o')
        return s[2] != '\0' && strspn(s + 2, "01234567") == strlen(s + 2);
    if (s[0] == '0' && s[1] == 'x')
        return s[2] != '\0' && strspn(s + 2, "0123456789abcdefABCDEF") == strlen(s + 2);
    return s[0] != '\0' && strspn(s, "0123456789") == strlen(s);
}

static int is_float(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    static const char *const special[] = {".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN", NULL};
    if (word_in(s, special))
        return 1;
    size_t ni = strspn(s, "0123456789"), nf = 0;
    const char *p = s + ni;
    if (*p == '.') {
        nf = strspn(p + 1, "0123456789");
        p += 1 + nf;
    }
    if (ni + nf == 0)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        size_t ne = strspn(p, "0123456789");
        if (ne == 0)
            return 0;
        p += ne;
    }
    return *p == '\0';
}

enum gm_mf_ytype gm_mf_ytype(struct fy_node *n)
{
    if (n == NULL)
        return GM_MF_YNULL;
    if (fy_node_is_mapping(n))
        return GM_MF_YMAP;
    if (fy_node_is_sequence(n))
        return GM_MF_YSEQ;
    if (fy_node_get_style(n) != FYNS_PLAIN)
        return GM_MF_YSTR;
    const char *s = fy_node_get_scalar0(n);
    if (s == NULL)
        return GM_MF_YSTR;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE", "yes",
                                        "Yes",  "YES",  "no",   "No",    "NO",    "on",    "On",
                                        "ON",   "off",  "Off",  "OFF",   NULL};
    if (word_in(s, nulls))
        return GM_MF_YNULL;
    if (word_in(s, bools))
        return GM_MF_YBOOL;
    if (is_int(s))
        return GM_MF_YINT;
    if (is_float(s))
        return GM_MF_YFLOAT;
    return GM_MF_YSTR;
}

const char *gm_mf_ytype_name(enum gm_mf_ytype t)
{
    switch (t) {
    case GM_MF_YNULL:
        return "null";
    case GM_MF_YBOOL:
        return "a boolean";
    case GM_MF_YINT:
        return "an integer";
    case GM_MF_YFLOAT:
        return "a number";
    case GM_MF_YSTR:
        return "a string";
    case GM_MF_YSEQ:
        return "a list";
    case GM_MF_YMAP:
        return "a mapping";
    }
    return "?";
}

const char *gm_mf_ytext(struct fy_node *n)
{
    size_t len;
    const char *raw = fy_node_get_scalar(n, &len);
    const char *s = fy_node_get_scalar0(n);
    if (raw == NULL || s == NULL || strlen(s) != len)
        return NULL;
    return s;
}

struct fy_node *gm_mf_yget(struct fy_node *map, const char *key)
{
    struct fy_node *v = fy_node_mapping_lookup_by_string(map, key, FY_NT);
    return gm_mf_ytype(v) == GM_MF_YNULL ? NULL : v;
}

int gm_mf_yexpect(struct gm_mf_parse *p, struct fy_node *n, const char *path, enum gm_mf_ytype want)
{
    enum gm_mf_ytype t = gm_mf_ytype(n);
    if (t == want)
        return 0;
    int line, col;
    gm_mf_ypos(n, &line, &col);
    return gm_mf_fail(p, line, col, path, "expected %s, not %s", gm_mf_ytype_name(want),
                      gm_mf_ytype_name(t));
}

int gm_mf_ystr(struct gm_mf_parse *p, struct fy_node *n, const char *path, int strict, char **out)
{
    enum gm_mf_ytype t = gm_mf_ytype(n);
    int line, col;
    gm_mf_ypos(n, &line, &col);
    if (t == GM_MF_YSEQ || t == GM_MF_YMAP || t == GM_MF_YNULL || (strict && t != GM_MF_YSTR)) {
        const char *s = t == GM_MF_YSEQ || t == GM_MF_YMAP ? NULL : gm_mf_ytext(n);
        if (s != NULL && t != GM_MF_YNULL)
            return gm_mf_fail(p, line, col, path,
                              "expected a string, not %s (%s): quote it (\"%s\") to give it as "
                              "text",
                              gm_mf_ytype_name(t), s, s);
        return gm_mf_fail(p, line, col, path, "expected a string, not %s", gm_mf_ytype_name(t));
    }
    const char *s = gm_mf_ytext(n);
    if (s == NULL)
        return gm_mf_fail(p, line, col, path, "a string with a NUL character in it");
    return gm_mf_strdup(p, s, out);
}

int gm_mf_ybool(struct gm_mf_parse *p, struct fy_node *n, const char *path, int *out)
{
    int line, col;
    gm_mf_ypos(n, &line, &col);
    if (gm_mf_ytype(n) != GM_MF_YBOOL) {
        const char *s = fy_node_is_scalar(n) ? gm_mf_ytext(n) : NULL;
        return gm_mf_fail(p, line, col, path, "%s%s%sis not a boolean: give true or false",
                          s ? "'" : "", s ? s : "", s ? "' " : "");
    }
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON",  NULL};
    *out = word_in(gm_mf_ytext(n), yes);
    return 0;
}

int gm_mf_yint(struct gm_mf_parse *p, struct fy_node *n, const char *path, long long min,
               long long max, int *out)
{
    int line, col;
    gm_mf_ypos(n, &line, &col);
    enum gm_mf_ytype t = gm_mf_ytype(n);
    if (t != GM_MF_YINT && t != GM_MF_YFLOAT && t != GM_MF_YSTR)
        return gm_mf_fail(p, line, col, path, "expected an integer, not %s", gm_mf_ytype_name(t));
    const char *s = gm_mf_ytext(n);
    if (t == GM_MF_YSTR)
        return gm_mf_fail(p, line, col, path, "expected an integer, not the string '%s'",
                          s ? s : "");
    char what[GM_MF_PATH + GM_MF_LABEL + 256];
    gm_mf_prefix(p, line, col, path, what, sizeof(what));
    long long v;
    int rc = gm_parse_int(s, min, max, &v, what, p->err);
    if (rc < 0)
        return rc;
    *out = (int)v;
    return 0;
}

int gm_mf_ystrv(struct gm_mf_parse *p, struct fy_node *n, const char *path, int strict, char ***out)
{
    int line, col;
    gm_mf_ypos(n, &line, &col);
    if (!fy_node_is_sequence(n))
        return gm_mf_fail(p, line, col, path, "expected a list of strings, not %s",
                          gm_mf_ytype_name(gm_mf_ytype(n)));
    struct gm_strv v = {0};
    void *it = NULL;
    struct fy_node *e;
    size_t i = 0;
    int rc = 0;
    while (rc == 0 && (e = fy_node_sequence_iterate(n, &it)) != NULL) {
        char ep[GM_MF_PATH];
        gm_mf_path_index(ep, sizeof(ep), path, i++);
        char *s = NULL;
        rc = gm_mf_ystr(p, e, ep, strict, &s);
        if (rc == 0 && gm_strv_add_owned(&v, s) < 0)
            rc = gm_mf_nomem(p);
    }
    if (rc == 0 && gm_strv_array(&v) == NULL)
        rc = gm_mf_nomem(p);
    if (rc < 0) {
        gm_strv_free(&v);
        return rc;
    }
    strv_free(*out);
    *out = v.v;
    return 0;
}

int gm_mf_ymap(struct gm_mf_parse *p, struct fy_node *n, const char *path, const char *what,
               const char *const *handled, const char *const *ignored)
{
    int rc = gm_mf_yexpect(p, n, path, GM_MF_YMAP);
    if (rc < 0)
        return rc;
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(n, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(pair);
        int line, col;
        gm_mf_ypos(k, &line, &col);
        const char *key = k != NULL && fy_node_is_scalar(k) ? gm_mf_ytext(k) : NULL;
        if (key == NULL)
            return gm_mf_fail(p, line, col, path, "a key that is not a string");
        char kp[GM_MF_PATH];
        gm_mf_path_key(kp, sizeof(kp), path, key);
        if (handled != NULL && word_in(key, handled))
            continue;
        if (ignored != NULL && word_in(key, ignored)) {
            if ((rc = gm_mf_note(p, kp)) < 0)
                return rc;
            continue;
        }
        return gm_mf_fail(p, line, col, kp, "unknown field (%s has no field \"%s\")", what, key);
    }
    return 0;
}

/* Reading the file. */

/* libfyaml's first error, caught from its diagnostic output: "SOURCE:LINE:COL: error: MSG". */
struct ydiag {
    int seen, line, col;
    char msg[256];
};

static void ydiag_out(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag;
    struct ydiag *d = user;
    if (d->seen)
        return;
    static const char tag[] = ": error: ";
    const char *e = NULL;
    for (size_t i = 0; i + sizeof(tag) - 1 <= len && e == NULL; i++)
        if (memcmp(buf + i, tag, sizeof(tag) - 1) == 0)
            e = buf + i;
    if (e == NULL)
        return;
    d->seen = 1;
    const char *m = e + sizeof(tag) - 1, *end = memchr(m, '\n', (size_t)(buf + len - m));
    size_t n = end != NULL ? (size_t)(end - m) : (size_t)(buf + len - m);
    snprintf(d->msg, sizeof(d->msg), "%.*s", (int)n, m);
    /* Back over ":COL" and ":LINE". */
    const char *q = e;
    int nums[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const char *digits = q;
        while (digits > buf && isdigit((unsigned char)digits[-1]))
            digits--;
        if (digits == q || digits == buf || digits[-1] != ':')
            return;
        nums[k] = atoi(digits);
        q = digits - 1;
    }
    d->line = nums[1];
    d->col = nums[0];
}

/* Refuses aliases wherever they are: an alias expanded is how a few lines become a billion
 * nodes, and manifests have no need of them. The walk is bounded by the document's nodes as
 * written, and its depth by libfyaml's nesting limit. */
static int no_aliases(struct gm_mf_parse *p, struct fy_node *n)
{
    if (n == NULL)
        return 0;
    if (fy_node_is_alias(n)) {
        int line, col;
        gm_mf_ypos(n, &line, &col);
        return gm_mf_fail(p, line, col, NULL,
                          "YAML alias '*%s': aliases (and merge keys) are not supported in a "
                          "manifest: write the value out",
                          gm_mf_ytext(n) ? gm_mf_ytext(n) : "");
    }
    void *it = NULL;
    int rc = 0;
    if (fy_node_is_sequence(n)) {
        struct fy_node *e;
        while (rc == 0 && (e = fy_node_sequence_iterate(n, &it)) != NULL)
            rc = no_aliases(p, e);
    } else if (fy_node_is_mapping(n)) {
        struct fy_node_pair *pair;
        while (rc == 0 && (pair = fy_node_mapping_iterate(n, &it)) != NULL) {
            rc = no_aliases(p, fy_node_pair_key(pair));
            if (rc == 0)
                rc = no_aliases(p, fy_node_pair_value(pair));
        }
    }
    return rc;
}

/* One document, to the parser of its format. */
static int yaml_document(struct gm_mf_parse *p, struct fy_node *root, int docno)
{
    int line, col;
    gm_mf_ypos(root, &line, &col);
    snprintf(p->label, sizeof(p->label), "document %d", docno);
    if (!fy_node_is_mapping(root))
        return gm_mf_fail(p, line, col, NULL, "expected a mapping with apiVersion and kind, not %s",
                          gm_mf_ytype_name(gm_mf_ytype(root)));
    struct fy_node *av = gm_mf_yget(root, "apiVersion");
    const char *api = av != NULL && gm_mf_ytype(av) == GM_MF_YSTR ? gm_mf_ytext(av) : NULL;
    enum gm_mf_format f =
        api != NULL && strcmp(api, "gpumux.dev/v1") == 0 ? GM_MF_NATIVE : GM_MF_KUBERNETES;
    if (av == NULL && fy_node_mapping_lookup_by_string(root, "modulesContent", FY_NT) != NULL)
        return gm_mf_fail(p, line, col, NULL,
                          "an IoT Edge deployment, not %s: give it as JSON (its text starts "
                          "with '{')",
                          p->fixed ? gm_mf_format_name(p->format) : "a YAML manifest");
    if (!p->fixed) {
        p->fixed = 1;
        p->format = f;
    } else if (f != p->format) {
        const char *want = p->format == GM_MF_NATIVE ? "gpumux.dev/v1" : "Kubernetes";
        gm_mf_ypos(av, &line, &col);
        return gm_mf_fail(p, line, col, "apiVersion",
                          "'%s' in a %s file: every document of a file must be %s (one file, "
                          "one format)",
                          api ? api : "", p->format == GM_MF_NATIVE ? "native" : "Kubernetes",
                          want);
    }
    p->m->format = p->format;
    return p->format == GM_MF_NATIVE ? gm_mf_native_document(p, root, docno)
                                     : gm_mf_k8s_document(p, root, docno);
}

static int is_empty_document(struct fy_node *root)
{
    return root == NULL || gm_mf_ytype(root) == GM_MF_YNULL;
}

static int parse_yaml(struct gm_mf_parse *p, const char *text, size_t len)
{
    struct ydiag yd = {0};
    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;
    dc.output_fn = ydiag_out;
    dc.user = &yd;
    dc.colorize = false;
    dc.show_source = true;
    dc.show_position = true;
    dc.show_type = true;
    struct fy_diag *diag = fy_diag_create(&dc);
    if (diag == NULL)
        return gm_mf_nomem(p);
    /* No resolution: aliases stay nodes of their own (refused below), never copies. */
    struct fy_parse_cfg pc = {.flags = FYPCF_DEFAULT_PARSE, .diag = diag};
    struct fy_parser *fyp = fy_parser_create(&pc);
    if (fyp == NULL) {
        fy_diag_destroy(diag);
        return gm_mf_nomem(p);
    }
    int rc = fy_parser_set_string(fyp, text, len) == 0 ? 0 : gm_mf_nomem(p);
    int docno = 0;
    struct fy_document *doc;
    while (rc == 0 && (doc = fy_parse_load_document(fyp)) != NULL) {
        docno++;
        struct fy_node *root = fy_document_root(doc);
        if (!is_empty_document(root)) {
            p->label[0] = '\0';
            snprintf(p->label, sizeof(p->label), "document %d", docno);
            rc = no_aliases(p, root);
            if (rc == 0)
                rc = yaml_document(p, root, docno);
        }
        fy_parse_document_destroy(fyp, doc);
    }
    if (rc == 0 && fy_parser_get_stream_error(fyp)) {
        p->label[0] = '\0';
        if (yd.seen && yd.line > 0)
            rc = gm_mf_fail(p, yd.line, yd.col, NULL, "not valid YAML: %s", yd.msg);
        else
            rc = gm_mf_fail(p, 0, 0, NULL, "not valid YAML%s%s", yd.seen ? ": " : "", yd.msg);
    }
    fy_parser_destroy(fyp);
    fy_diag_destroy(diag);
    return rc;
}

/* Refuses what is not UTF-8 text before a parser sees it: libfyaml 0.7 never returns from some
 * invalid bytes, and a NUL byte would end the text early for the C string functions. */
static int check_text(struct gm_mf_parse *p, const char *text, size_t len)
{
    int line = 1, col = 1;
    for (size_t i = 0; i < len;) {
        if (text[i] == '\0')
            return gm_mf_fail(p, line, col, NULL, "not text: a NUL byte");
        size_t n = gm_utf8_len(text + i);
        if (n == 0 || i + n > len)
            return gm_mf_fail(p, line, col, NULL, "not UTF-8 text (byte 0x%02x)",
                              (unsigned char)text[i]);
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
        i += n;
    }
    return 0;
}

/* Whether the text holds nothing but blanks and YAML comments. */
static int blank_text(const char *s)
{
    while (*s != '\0') {
        s += strspn(s, " \t\r\n");
        if (*s == '#')
            s += strcspn(s, "\n");
        else if (*s != '\0')
            return 0;
    }
    return 1;
}

/* Whether the text is JSON whose top level is an object with modulesContent: 1 yes, 0 no,
 * -1 when it does not parse as JSON but names modulesContent (an IoT Edge file with an error,
 * which the IoT Edge parser then reports as JSON). */
static int looks_iotedge(const char *text, size_t len)
{
    const char *s = text + strspn(text, " \t\r\n");
    if (s[0] == '\xef' && s[1] == '\xbb' && s[2] == '\xbf')
        s += 3 + strspn(s + 3, " \t\r\n");
    if (*s != '{')
        return 0;
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return strstr(text, "\"modulesContent\"") != NULL ? -1 : 0;
    int yes = json_is_object(j) && json_object_get(j, "modulesContent") != NULL;
    json_decref(j);
    return yes;
}

static int parse(int fixed, enum gm_mf_format format, const char *file, const char *text,
                 size_t len, struct gm_manifest *out, struct gm_error *err)
{
    memset(out, 0, sizeof(*out));
    struct gm_mf_parse p = {.file = file ? file : "-", .m = out, .err = err};
    if (len > GM_MANIFEST_MAX_BYTES)
        return gm_mf_fail(&p, 0, 0, NULL,
                          "%zu bytes: larger than the %u bytes a manifest may have; split it "
                          "into several files",
                          len, GM_MANIFEST_MAX_BYTES);
    char *buf = malloc(len + 1);
    if (buf == NULL)
        return gm_mf_nomem(&p);
    memcpy(buf, text, len);
    buf[len] = '\0';
    int rc = check_text(&p, buf, len);
    if (rc == 0 && blank_text(buf))
        rc = gm_mf_fail(&p, 0, 0, NULL, "%s: no objects in it",
                        len == 0 ? "an empty file" : "only blanks and comments");
    if (rc == 0) {
        int iot = fixed ? format == GM_MF_IOTEDGE : looks_iotedge(buf, len) != 0;
        if (iot) {
            out->format = GM_MF_IOTEDGE;
            rc = gm_mf_iotedge_parse(&p, buf, len);
        } else {
            p.fixed = fixed;
            p.format = format;
            out->format = fixed ? format : GM_MF_KUBERNETES;
            rc = parse_yaml(&p, buf, len);
        }
    }
    if (rc == 0 && out->n == 0) {
        p.label[0] = '\0';
        rc = gm_mf_fail(&p, 0, 0, NULL, "no objects in it (only empty documents)");
    }
    free(buf);
    if (rc < 0)
        gm_manifest_free(out);
    return rc;
}

int gm_manifest_parse(const char *file, const char *text, size_t len, struct gm_manifest *out,
                      struct gm_error *err)
{
    return parse(0, GM_MF_KUBERNETES, file, text, len, out, err);
}

int gm_manifest_parse_as(enum gm_mf_format format, const char *file, const char *text, size_t len,
                         struct gm_manifest *out, struct gm_error *err)
{
    if (format != GM_MF_KUBERNETES && format != GM_MF_IOTEDGE && format != GM_MF_NATIVE)
        return gm_err(err, GM_EINVAL, "%s: no such manifest format", file ? file : "-");
    return parse(1, format, file, text, len, out, err);
}
