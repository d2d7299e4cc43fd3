/* What the three manifest fuzz targets share: each defines FORMAT (its enum gm_mf_format) and
 * FILE_NAME, then includes this, which is their LLVMFuzzerTestOneInput.
 *
 * Contract checked: a refusal has a message that starts with the file's name; an accepted
 * manifest has 1..GM_MANIFEST_MAX_OBJECTS objects with unique valid names, each with
 * 1..GM_MANIFEST_MAX_CONTAINERS containers and every field within its documented range;
 * gm_manifest_free frees it all (the sanitizer builds check that). */
#ifndef GM_TESTS_FUZZ_MANIFEST_H
#define GM_TESTS_FUZZ_MANIFEST_H

#include "fuzz.h"

#include "daemon/manifest.h"

#include <string.h>

static int name_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 63 || strchr("abcdefghijklmnopqrstuvwxyz0123456789", s[0]) == NULL)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static void check_container(const struct gm_mf_object *o, const struct gm_mf_container *c)
{
    FUZZ_CHECK(c->name != NULL, "%s: a container without a name string", o->label);
    FUZZ_CHECK(c->gpus >= -1 && c->gpus <= 1024, "%s: %d GPUs", o->label, c->gpus);
    FUZZ_CHECK(c->compute_pct >= 0 && c->compute_pct <= 100, "%s: compute %d", o->label,
               c->compute_pct);
    FUZZ_CHECK(c->memory <= (1ull << 50), "%s: memory %llu", o->label,
               (unsigned long long)c->memory);
    FUZZ_CHECK(c->privileged == 0 || c->privileged == 1, "%s: privileged %d", o->label,
               c->privileged);
    FUZZ_CHECK(c->host_binds >= 0 && c->cap_add >= 0 && c->devices >= 0, "%s: counts", o->label);
    FUZZ_CHECK(c->nenv == 0 || c->env != NULL, "%s: env", o->label);
    for (size_t k = 0; k < c->nenv; k++)
        FUZZ_CHECK(c->env[k].name != NULL && c->env[k].name[0] != '\0' &&
                       strchr(c->env[k].name, '=') == NULL && c->env[k].value != NULL,
                   "%s: env %zu", o->label, k);
    /* Read every string, so that the sanitizers see a dangling or unterminated one. */
    for (char **a = c->command; a != NULL && *a != NULL; a++)
        (void)strlen(*a);
    for (char **a = c->args; a != NULL && *a != NULL; a++)
        (void)strlen(*a);
}

static void check(const struct gm_manifest *m)
{
    FUZZ_CHECK(m->format == FORMAT, "format %d", (int)m->format);
    FUZZ_CHECK(m->n >= 1 && m->n <= GM_MANIFEST_MAX_OBJECTS, "%zu objects", m->n);
    for (size_t i = 0; i < m->n; i++) {
        const struct gm_mf_object *o = &m->o[i];
        FUZZ_CHECK(name_ok(o->name), "object %zu: name '%s'", i, o->name ? o->name : "(null)");
        FUZZ_CHECK(o->label != NULL && strstr(o->label, o->name) != NULL, "object %zu: label", i);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(m->o[j].name, o->name) != 0, "objects %zu and %zu: one name", j, i);
        FUZZ_CHECK(o->nc >= 1 && o->nc <= GM_MANIFEST_MAX_CONTAINERS, "%s: %zu containers",
                   o->label, o->nc);
        FUZZ_CHECK(o->restart >= GM_MF_RESTART_UNSET && o->restart <= GM_MF_RESTART_ALWAYS,
                   "%s: restart %d", o->label, (int)o->restart);
        FUZZ_CHECK(o->running == 0 || o->running == 1, "%s: running %d", o->label, o->running);
        FUZZ_CHECK(o->host_ipc == 0 || o->host_ipc == 1, "%s: hostIPC", o->label);
        FUZZ_CHECK(o->host_pid == 0 || o->host_pid == 1, "%s: hostPID", o->label);
        FUZZ_CHECK(o->replicas >= 0 && o->replicas <= GM_MANIFEST_MAX_REPLICAS, "%s: %d replicas",
                   o->label, o->replicas);
        FUZZ_CHECK(o->completions >= 1 && o->completions <= GM_MANIFEST_MAX_REPLICAS &&
                       o->parallelism >= 1 && o->parallelism <= GM_MANIFEST_MAX_REPLICAS,
                   "%s: completions %d, parallelism %d", o->label, o->completions, o->parallelism);
        FUZZ_CHECK(o->backoff_limit >= -1 && o->backoff_limit <= 1000000, "%s: backoff %d",
                   o->label, o->backoff_limit);
        for (size_t j = 0; j < o->nc; j++)
            check_container(o, &o->c[j]);
        for (char **s = o->not_enforced; s != NULL && *s != NULL; s++)
            FUZZ_CHECK((*s)[0] != '\0', "%s: an empty not-enforced path", o->label);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gm_manifest m;
    struct gm_error err = {0};
    int rc = gm_manifest_parse_as(FORMAT, FILE_NAME, (const char *)data, size, &m, &err);
    if (rc < 0) {
        FUZZ_CHECK(rc == -GM_EINVAL || rc == -GM_ENOMEM, "rc %d", rc);
        FUZZ_CHECK(strncmp(err.msg, FILE_NAME ":", sizeof(FILE_NAME)) == 0,
                   "a refusal that does not start with the file's name: '%s'", err.msg);
        FUZZ_CHECK(m.n == 0 && m.o == NULL, "a refusal that returns objects");
        return 0;
    }
    check(&m);
    gm_manifest_free(&m);
    return 0;
}

#endif
