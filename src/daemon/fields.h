/* Request bodies declared once: a field spec lists the fields a body may carry, their types,
 * bounds and where each goes in a typed request struct. One function validates a body against
 * its spec and parses it into the struct, so what is accepted and what is read can never differ,
 * and one function describes a spec for docs/api.md. */
#ifndef GM_DAEMON_FIELDS_H
#define GM_DAEMON_FIELDS_H

#include "common/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum gm_field_type {
    GM_FIELD_STRING,  /* JSON string -> const char * (borrowed from the body) */
    GM_FIELD_INT,     /* JSON integer in [min, max] -> int or long long */
    GM_FIELD_BOOL,    /* true or false -> int 1 or 0 */
    GM_FIELD_TEXT,    /* string, or an integer taken as its decimal text -> const char * */
    GM_FIELD_PERCENT, /* "30" or 30, 1..100 (gm_parse_percent) -> int */
    GM_FIELD_SIZE,    /* "512M" or 536870912 (gm_parse_size) -> uint64_t bytes */
    GM_FIELD_ENUM,    /* one of names -> the name's index, stored in an enum (int-sized) */
    GM_FIELD_STRINGS, /* array of strings -> char ** NULL-terminated (at least min elements) */
    GM_FIELD_STRMAP,  /* object of strings -> struct gm_strmap */
};

/* An object of strings, as parsed: n pairs; the arrays are owned by the gm_fields_mem. */
struct gm_strmap {
    const char *const *keys, *const *vals;
    size_t n;
};

struct gm_field {
    const char *name; /* the JSON member */
    enum gm_field_type type;
    int required;
    size_t off, size; /* where the value goes in the request struct, and its size */
    /* INT: bounds (both 0: any); STRINGS: min is the least number of elements. */
    long long min, max;
    /* Stored when the field is absent or null: INT, BOOL, PERCENT, ENUM use dflt; SIZE uses
     * dflt_size. STRING, TEXT, STRINGS: NULL; STRMAP: empty. */
    long long dflt;
    uint64_t dflt_size;
    /* PERCENT, SIZE: the string "none" is accepted and stored as 0 (no limit). */
    int none;
    /* SIZE: a string must carry a unit ("4096" is refused with a hint, "4096M" or "4096B" is
     * taken; a JSON integer is bytes), and a value must be at least min_size (0: any). */
    int unit;
    uint64_t min_size;
    const char *const *names; /* ENUM: the values' names, indexed by value, NULL-terminated */
    /* What the value is called in messages about its value ("--compute: 0 is out of range");
     * NULL: "field 'NAME'". */
    const char *what;
    const char *doc; /* one line for docs/api.md */
};

/* A spec: n fields. A route without a body has a spec of no fields, so any field is refused. */
struct gm_fields {
    const struct gm_field *v;
    size_t n;
};

/* Fills a gm_field's destination from a struct type and member, with the member's size. */
#define GM_FIELD_AT(T, m) .off = offsetof(T, m), .size = sizeof(((T *)0)->m)

/* Memory a parse allocated (arrays, numbers given as text); freed after the request. */
struct gm_fields_mem {
    void **p;
    size_t n, cap;
};
void gm_fields_mem_free(struct gm_fields_mem *m);

/* Validates body (a JSON object, or NULL for none) against spec and parses it into out, which
 * must be the struct the spec describes; every field of the spec is written, absent ones with
 * their default. Refuses, with GM_EINVAL and a message naming the field: a field the spec does
 * not know ("unknown field 'x' (known fields: a, b)"), a missing required field, a wrong type, a
 * value out of range or not among the names. Strings point into body, which must outlive out;
 * allocations go to mem (free it in every case). */
int gm_fields_parse(const struct gm_fields *spec, const json_t *body, void *out,
                    struct gm_fields_mem *mem, struct gm_error *err);

/* The same for parameters given as text (a query string): get(ctx, name) returns a value or
 * NULL. Only STRING, TEXT, INT, BOOL, PERCENT, SIZE and ENUM fields can be parameters. */
int gm_fields_parse_text(const struct gm_fields *spec,
                         const char *(*get)(void *ctx, const char *name), void *ctx, void *out,
                         struct gm_fields_mem *mem, struct gm_error *err);

/* Checks that a spec is well formed: sizes fit the types, ENUM fields have names, no name
 * twice. Returns 0 or -GM_EINTERNAL with the reason. */
int gm_fields_check(const struct gm_fields *spec, struct gm_error *err);

/* The type of a field as docs/api.md shows it: "string", "integer 1..100", "one of a, b"... */
void gm_field_type_text(const struct gm_field *f, char *buf, size_t len);

#endif
