#include "common/strv.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct gm_strv *s)
{
    if (s->n + 2 <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 16;
    char **nv = realloc(s->v, cap * sizeof(*nv));
    if (nv == NULL)
        return -GM_ENOMEM;
    s->v = nv;
    s->cap = cap;
    return 0;
}

int gm_strv_add_owned(struct gm_strv *s, char *owned)
{
    if (owned == NULL || reserve(s) < 0) {
        free(owned);
        return -GM_ENOMEM;
    }
    s->v[s->n++] = owned;
    s->v[s->n] = NULL;
    return 0;
}

int gm_strv_add(struct gm_strv *s, const char *str)
{
    return gm_strv_add_owned(s, strdup(str));
}

int gm_strv_addf(struct gm_strv *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    return gm_strv_add_owned(s, n < 0 ? NULL : p);
}

long gm_strv_find(const struct gm_strv *s, const char *str)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], str) == 0)
            return (long)i;
    return -1;
}

static long env_index(const struct gm_strv *s, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(s->v[i], key, kl) == 0 && s->v[i][kl] == '=')
            return (long)i;
    return -1;
}

int gm_strv_setenv(struct gm_strv *s, const char *key, const char *val)
{
    char *e = NULL;
    if (asprintf(&e, "%s=%s", key, val) < 0)
        return -GM_ENOMEM;
    long i = env_index(s, key);
    if (i < 0)
        return gm_strv_add_owned(s, e);
    free(s->v[i]);
    s->v[i] = e;
    return 0;
}

const char *gm_strv_getenv(const struct gm_strv *s, const char *key)
{
    long i = env_index(s, key);
    return i < 0 ? NULL : s->v[i] + strlen(key) + 1;
}

void gm_strv_filter(struct gm_strv *s, int (*drop)(const char *entry))
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (drop(s->v[i]))
            free(s->v[i]);
        else
            s->v[k++] = s->v[i];
    }
    s->n = k;
    if (s->v != NULL)
        s->v[k] = NULL;
}

char *gm_strv_join(const struct gm_strv *s, const char *sep)
{
    size_t len = 1, sl = strlen(sep);
    for (size_t i = 0; i < s->n; i++)
        len += strlen(s->v[i]) + (i ? sl : 0);
    char *out = malloc(len), *p = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < s->n; i++) {
        if (i) {
            memcpy(p, sep, sl);
            p += sl;
        }
        size_t l = strlen(s->v[i]);
        memcpy(p, s->v[i], l);
        p += l;
    }
    *p = '\0';
    return out;
}

char *const *gm_strv_array(struct gm_strv *s)
{
    if (reserve(s) < 0)
        return NULL;
    s->v[s->n] = NULL;
    return s->v;
}

void gm_strv_free(struct gm_strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}
