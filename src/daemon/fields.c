/* The generic body parser of fields.h: one pass validates a body against its spec and fills the
 * typed request struct. */
#include "daemon/fields.h"
#include "common/parse.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gm_fields_mem_free(struct gm_fields_mem *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->p[i]);
    free(m->p);
    m->p = NULL;
    m->n = m->cap = 0;
}

/* Keeps p until the request is done; on failure frees it at once and returns NULL. */
static void *keep(struct gm_fields_mem *m, void *p)
{
    if (p == NULL)
        return NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        void **np = realloc(m->p, cap * sizeof(*np));
        if (np == NULL) {
            free(p);
            return NULL;
        }
        m->p = np;
        m->cap = cap;
    }
    m->p[m->n++] = p;
    return p;
}

static const char *label(const struct gm_field *f, char *buf, size_t len)
{
    if (f->what != NULL)
        return f->what;
    snprintf(buf, len, "field '%s'", f->name);
    return buf;
}

static void names_text(const char *const *names, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; names != NULL && names[i] != NULL; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
    }
}

static void store_int(const struct gm_field *f, void *out, long long v)
{
    char *dst = (char *)out + f->off;
    if (f->size == sizeof(int)) {
        int i = (int)v;
        memcpy(dst, &i, sizeof(i));
    } else {
        memcpy(dst, &v, sizeof(v));
    }
}

static void store_ptr(const struct gm_field *f, void *out, const void *p)
{
    memcpy((char *)out + f->off, &p, sizeof(p));
}

static void store_default(const struct gm_field *f, void *out)
{
    switch (f->type) {
    case GM_FIELD_INT:
    case GM_FIELD_BOOL:
    case GM_FIELD_PERCENT:
    case GM_FIELD_ENUM:
        store_int(f, out, f->dflt);
        break;
    case GM_FIELD_SIZE:
        memcpy((char *)out + f->off, &f->dflt_size, sizeof(f->dflt_size));
        break;
    case GM_FIELD_STRING:
    case GM_FIELD_TEXT:
    case GM_FIELD_STRINGS:
        store_ptr(f, out, NULL);
        break;
    case GM_FIELD_STRMAP: {
        struct gm_strmap empty = {0};
        memcpy((char *)out + f->off, &empty, sizeof(empty));
        break;
    }
    }
}

static int out_of_memory(struct gm_error *err)
{
    return gm_err(err, GM_ENOMEM, "out of memory parsing the request");
}

/* A size written without a unit is refused, with the unit it most likely lacks: "4096" and
 * "4" mean 4096 MiB and 4 GiB far more often than bytes. */
static int check_unit(const char *s, const char *what, struct gm_error *err)
{
    size_t n = strspn(s, "0123456789.");
    if (n == 0 || s[n] != '\0')
        return 0; /* a unit, or not a number at all (gm_parse_size says which) */
    double v = strtod(s, NULL);
    return gm_err(err, GM_EINVAL,
                  "%s '%s': a size needs a unit: did you mean %s%s? (K, M, G or T, also KiB, "
                  "Mi, GB...; B for bytes)",
                  what, s, s, v >= 64 ? "M" : "G");
}

/* A value given as text (a string member, an integer member as its digits, or a parameter). */
static int parse_text_value(const struct gm_field *f, const char *s, void *out,
                            struct gm_fields_mem *mem, struct gm_error *err)
{
    char lb[96];
    const char *what = label(f, lb, sizeof(lb));
    long long v;
    int rc;
    switch (f->type) {
    case GM_FIELD_STRING:
    case GM_FIELD_TEXT:
        store_ptr(f, out, s);
        return 0;
    case GM_FIELD_INT:
        rc = gm_parse_int(s, f->min || f->max ? f->min : LLONG_MIN,
                          f->min || f->max ? f->max : LLONG_MAX, &v, what, err);
        if (rc == 0)
            store_int(f, out, v);
        return rc;
    case GM_FIELD_BOOL:
        if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
            return gm_err(err, GM_EINVAL, "%s '%s': must be true or false", what, s);
        store_int(f, out, strcmp(s, "true") == 0);
        return 0;
    case GM_FIELD_PERCENT: {
        int pct = 0;
        if (!(f->none && strcmp(s, "none") == 0) && (rc = gm_parse_percent(s, &pct, what, err)) < 0)
            return rc;
        store_int(f, out, pct);
        return 0;
    }
    case GM_FIELD_SIZE: {
        uint64_t bytes = 0;
        int none = f->none && strcmp(s, "none") == 0;
        if (!none && f->unit && (rc = check_unit(s, what, err)) < 0)
            return rc;
        if (!none && (rc = gm_parse_size(s, &bytes, what, err)) < 0)
            return rc;
        if (!none && bytes < f->min_size) {
            char min[32];
            gm_format_size(f->min_size, min, sizeof(min));
            return gm_err(err, GM_EINVAL,
                          "%s '%s': too small; the least is %s, which a CUDA program needs for "
                          "its context's data and its libraries' first allocations",
                          what, s, min);
        }
        memcpy((char *)out + f->off, &bytes, sizeof(bytes));
        return 0;
    }
    case GM_FIELD_ENUM:
        for (size_t i = 0; f->names[i] != NULL; i++) {
            if (strcmp(f->names[i], s) == 0) {
                store_int(f, out, (long long)i);
                return 0;
            }
        }
        {
            char names[256];
            names_text(f->names, names, sizeof(names));
            return gm_err(err, GM_EINVAL, "%s '%s': must be one of %s", f->what ? f->what : f->name,
                          s, names);
        }
    case GM_FIELD_STRINGS:
    case GM_FIELD_STRMAP:
        break;
    }
    (void)mem;
    return gm_err(err, GM_EINTERNAL, "field '%s' cannot be given as text", f->name);
}

static int parse_strings(const struct gm_field *f, const json_t *v, void *out,
                         struct gm_fields_mem *mem, struct gm_error *err)
{
    if (!json_is_array(v) || json_array_size(v) < (size_t)f->min)
        return gm_err(err, GM_EINVAL, "field '%s' must be a%s array of strings", f->name,
                      f->min > 0 ? " non-empty" : "n");
    size_t n = json_array_size(v);
    char **argv = keep(mem, calloc(n + 1, sizeof(*argv)));
    if (argv == NULL)
        return out_of_memory(err);
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_array_get(v, i);
        if (!json_is_string(a))
            return gm_err(err, GM_EINVAL, "field '%s': element %zu is not a string", f->name, i);
        argv[i] = (char *)json_string_value(a);
    }
    store_ptr(f, out, argv);
    return 0;
}

static int parse_strmap(const struct gm_field *f, const json_t *v, void *out,
                        struct gm_fields_mem *mem, struct gm_error *err)
{
    if (!json_is_object(v))
        return gm_err(err, GM_EINVAL, "field '%s' must be an object of strings", f->name);
    size_t n = json_object_size(v), k = 0;
    const char **keys = keep(mem, calloc(n + 1, sizeof(*keys)));
    const char **vals = keep(mem, calloc(n + 1, sizeof(*vals)));
    if (keys == NULL || vals == NULL)
        return out_of_memory(err);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        if (!json_is_string(val))
            return gm_err(err, GM_EINVAL, "field '%s': %s is not a string", f->name, key);
        keys[k] = key;
        vals[k++] = json_string_value(val);
    }
    struct gm_strmap m = {.keys = keys, .vals = vals, .n = k};
    memcpy((char *)out + f->off, &m, sizeof(m));
    return 0;
}

static int parse_value(const struct gm_field *f, const json_t *v, void *out,
                       struct gm_fields_mem *mem, struct gm_error *err)
{
    char names[256];
    switch (f->type) {
    case GM_FIELD_STRING:
        if (!json_is_string(v))
            return gm_err(err, GM_EINVAL, "field '%s' must be a string", f->name);
        return parse_text_value(f, json_string_value(v), out, mem, err);
    case GM_FIELD_INT:
        if (!json_is_integer(v))
            return gm_err(err, GM_EINVAL, "field '%s' must be an integer", f->name);
        if ((f->min || f->max) &&
            (json_integer_value(v) < f->min || json_integer_value(v) > f->max)) {
            char lb[96];
            return gm_err(err, GM_EINVAL, "%s: %lld is out of range (%lld..%lld)",
                          label(f, lb, sizeof(lb)), (long long)json_integer_value(v), f->min,
                          f->max);
        }
        store_int(f, out, json_integer_value(v));
        return 0;
    case GM_FIELD_BOOL:
        if (!json_is_boolean(v))
            return gm_err(err, GM_EINVAL, "field '%s' must be true or false", f->name);
        store_int(f, out, json_is_true(v));
        return 0;
    case GM_FIELD_TEXT:
    case GM_FIELD_PERCENT:
    case GM_FIELD_SIZE:
        if (json_is_string(v))
            return parse_text_value(f, json_string_value(v), out, mem, err);
        if (json_is_integer(v)) {
            /* An integer size is bytes: a program that writes JSON means what it writes. */
            char *s = NULL;
            if (asprintf(&s, "%lld%s", (long long)json_integer_value(v),
                         f->type == GM_FIELD_SIZE ? "B" : "") < 0 ||
                keep(mem, s) == NULL)
                return out_of_memory(err);
            return parse_text_value(f, s, out, mem, err);
        }
        return gm_err(err, GM_EINVAL, "field '%s' must be a string or an integer", f->name);
    case GM_FIELD_ENUM:
        if (!json_is_string(v)) {
            names_text(f->names, names, sizeof(names));
            return gm_err(err, GM_EINVAL, "field '%s' must be one of %s", f->name, names);
        }
        return parse_text_value(f, json_string_value(v), out, mem, err);
    case GM_FIELD_STRINGS:
        return parse_strings(f, v, out, mem, err);
    case GM_FIELD_STRMAP:
        return parse_strmap(f, v, out, mem, err);
    }
    return gm_err(err, GM_EINTERNAL, "field '%s' has an unknown type", f->name);
}

static int missing(const struct gm_field *f, struct gm_error *err)
{
    char type[160];
    gm_field_type_text(f, type, sizeof(type));
    return gm_err(err, GM_EINVAL, "field '%s' (%s) is required", f->name, type);
}

int gm_fields_parse(const struct gm_fields *spec, const json_t *body, void *out,
                    struct gm_fields_mem *mem, struct gm_error *err)
{
    if (body != NULL && !json_is_object(body))
        return gm_err(err, GM_EINVAL, "request body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        size_t i = 0;
        while (i < spec->n && strcmp(spec->v[i].name, key) != 0)
            i++;
        if (i < spec->n)
            continue;
        if (spec->n == 0)
            return gm_err(err, GM_EINVAL, "unknown field '%s' (this request takes no fields)", key);
        char list[512] = "";
        for (i = 0; i < spec->n; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", spec->v[i].name);
        }
        return gm_err(err, GM_EINVAL, "unknown field '%s' (known fields: %s)", key, list);
    }
    for (size_t i = 0; i < spec->n; i++) {
        const struct gm_field *f = &spec->v[i];
        json_t *val = body ? json_object_get(body, f->name) : NULL;
        int rc;
        if (val == NULL || json_is_null(val)) {
            if (f->required)
                return missing(f, err);
            store_default(f, out);
        } else if ((rc = parse_value(f, val, out, mem, err)) < 0) {
            return rc;
        }
    }
    return 0;
}

int gm_fields_parse_text(const struct gm_fields *spec,
                         const char *(*get)(void *ctx, const char *name), void *ctx, void *out,
                         struct gm_fields_mem *mem, struct gm_error *err)
{
    for (size_t i = 0; i < spec->n; i++) {
        const struct gm_field *f = &spec->v[i];
        const char *s = get(ctx, f->name);
        int rc;
        if (s == NULL) {
            if (f->required)
                return missing(f, err);
            store_default(f, out);
        } else if ((rc = parse_text_value(f, s, out, mem, err)) < 0) {
            return rc;
        }
    }
    return 0;
}

int gm_fields_check(const struct gm_fields *spec, struct gm_error *err)
{
    for (size_t i = 0; i < spec->n; i++) {
        const struct gm_field *f = &spec->v[i];
        size_t want = 0;
        switch (f->type) {
        case GM_FIELD_INT:
            want = f->size == sizeof(long long) ? sizeof(long long) : sizeof(int);
            break;
        case GM_FIELD_BOOL:
        case GM_FIELD_PERCENT:
        case GM_FIELD_ENUM:
            want = sizeof(int);
            break;
        case GM_FIELD_SIZE:
            want = sizeof(uint64_t);
            break;
        case GM_FIELD_STRING:
        case GM_FIELD_TEXT:
            want = sizeof(const char *);
            break;
        case GM_FIELD_STRINGS:
            want = sizeof(char **);
            break;
        case GM_FIELD_STRMAP:
            want = sizeof(struct gm_strmap);
            break;
        }
        if (f->name == NULL || f->doc == NULL)
            return gm_err(err, GM_EINTERNAL, "field %zu: no name or no doc", i);
        if (f->size != want)
            return gm_err(err, GM_EINTERNAL, "field '%s': destination of %zu bytes, type needs %zu",
                          f->name, f->size, want);
        if (f->type == GM_FIELD_ENUM && (f->names == NULL || f->names[0] == NULL))
            return gm_err(err, GM_EINTERNAL, "field '%s': an enum without names", f->name);
        if (f->type == GM_FIELD_INT && f->min > f->max)
            return gm_err(err, GM_EINTERNAL, "field '%s': min above max", f->name);
        for (size_t k = 0; k < i; k++)
            if (strcmp(spec->v[k].name, f->name) == 0)
                return gm_err(err, GM_EINTERNAL, "field '%s' given twice", f->name);
    }
    return 0;
}

void gm_field_type_text(const struct gm_field *f, char *buf, size_t len)
{
    char names[256];
    const char *none = f->none ? ", or \"none\"" : "";
    switch (f->type) {
    case GM_FIELD_STRING:
        snprintf(buf, len, "string");
        break;
    case GM_FIELD_INT:
        if (f->max == LLONG_MAX)
            snprintf(buf, len, "integer, at least %lld", f->min);
        else if (f->min || f->max)
            snprintf(buf, len, "integer %lld..%lld", f->min, f->max);
        else
            snprintf(buf, len, "integer");
        break;
    case GM_FIELD_BOOL:
        snprintf(buf, len, "boolean");
        break;
    case GM_FIELD_TEXT:
        snprintf(buf, len, "string or integer");
        break;
    case GM_FIELD_PERCENT:
        snprintf(buf, len, "percent 1..100, string or integer%s", none);
        break;
    case GM_FIELD_SIZE:
        snprintf(buf, len, "size: bytes, or a string such as \"512M\"%s", none);
        break;
    case GM_FIELD_ENUM:
        names_text(f->names, names, sizeof(names));
        snprintf(buf, len, "one of %s", names);
        break;
    case GM_FIELD_STRINGS:
        snprintf(buf, len, "%sarray of strings", f->min > 0 ? "non-empty " : "");
        break;
    case GM_FIELD_STRMAP:
        snprintf(buf, len, "object of strings");
        break;
    }
}
