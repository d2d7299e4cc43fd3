/* A growable, NULL-terminated vector of owned strings: argv and envp arrays, lists of names. */
#ifndef GM_COMMON_STRV_H
#define GM_COMMON_STRV_H

#include <stddef.h>

struct gm_strv {
    char **v; /* NULL-terminated once anything was added; NULL while empty */
    size_t n, cap;
};

/* Appends a copy of s. Returns 0 or -GM_ENOMEM. */
int gm_strv_add(struct gm_strv *s, const char *s_);
/* Appends s, taking ownership (freed on failure). */
int gm_strv_add_owned(struct gm_strv *s, char *owned);
int gm_strv_addf(struct gm_strv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Index of s in the vector, or -1. */
long gm_strv_find(const struct gm_strv *s, const char *str);
/* Environment vectors: KEY=VALUE entries. */
int gm_strv_setenv(struct gm_strv *s, const char *key, const char *val);
const char *gm_strv_getenv(const struct gm_strv *s, const char *key);
/* Removes the entries for which drop(entry) is true. */
void gm_strv_filter(struct gm_strv *s, int (*drop)(const char *entry));
/* Joins with sep into a new string (caller frees); NULL on allocation failure. */
char *gm_strv_join(const struct gm_strv *s, const char *sep);
/* A NULL-terminated array even when empty (for execve); NULL on allocation failure. */
char *const *gm_strv_array(struct gm_strv *s);
void gm_strv_free(struct gm_strv *s);

#endif
