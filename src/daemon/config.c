#include "daemon/config.h"
#include "common/path.h"
#include "common/log.h"
#include "common/parse.h"
#include "gpusim/state/state.h"

#include <errno.h>
#include <libfyaml.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_S, T_Z, T_I };
#define TYPE_S T_S
#define TYPE_Z T_Z
#define TYPE_I T_I

struct key {
    const char *name;
    int type;
    size_t off, size;
    const char *def;
    long long min, max;
    const char *help;
};

static const struct key keys[] = {
#define GM_X(k, t, f, d, lo, hi, h)                                                                \
    {k, TYPE_##t, offsetof(struct gm_config, f), sizeof(((struct gm_config *)0)->f), d, lo, hi, h},
    GM_CONFIG_KEYS(GM_X)
#undef GM_X
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key *find(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
        /* Command-line spelling: --state-dir for state_dir. */
        char alt[64];
        snprintf(alt, sizeof(alt), "%s", keys[i].name);
        for (char *p = alt; *p; p++)
            if (*p == '_')
                *p = '-';
        if (strcmp(alt, name) == 0)
            return &keys[i];
    }
    return NULL;
}

int gm_config_set(struct gm_config *c, const char *key, const char *value, const char *source,
                  struct gm_error *err)
{
    const struct key *k = find(key);
    if (k == NULL)
        return gm_err(err, GM_EINVAL, "%s: unknown setting '%s'", source, key);
    char what[160];
    snprintf(what, sizeof(what), "%s: %s", source, k->name);
    char *field = (char *)c + k->off;
    switch (k->type) {
    case T_S:
        if (strlen(value) >= k->size)
            return gm_err(err, GM_EINVAL, "%s: value is too long", what);
        strcpy(field, value);
        return 0;
    case T_Z: {
        uint64_t v = 0;
        if (strcmp(value, "0") != 0) {
            int rc = gm_parse_size(value, &v, what, err);
            if (rc < 0)
                return rc;
        }
        if (k->max > 0 && (v < (uint64_t)k->min || v > (uint64_t)k->max))
            return gm_err(err, GM_EINVAL, "%s: '%s' is out of range (%lld to %lld bytes)", what,
                          value, k->min, k->max);
        memcpy(field, &v, sizeof(v));
        return 0;
    }
    case T_I: {
        long long v;
        int rc = gm_parse_int(value, k->min, k->max, &v, what, err);
        if (rc < 0)
            return rc;
        memcpy(field, &v, sizeof(v));
        return 0;
    }
    }
    return gm_err(err, GM_EINTERNAL, "%s: bad key type", what);
}

void gm_config_defaults(struct gm_config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NKEYS; i++) {
        struct gm_error err;
        if (gm_config_set(c, keys[i].name, keys[i].def, "default", &err) < 0)
            abort(); /* a broken default table is a programming error */
    }
}

int gm_config_load(struct gm_config *c, const char *path, struct gm_error *err)
{
    int rc = gm_check_utf8_file(path, "config ", err);
    if (rc < 0)
        return rc;
    struct fy_document *fyd = fy_document_build_from_file(NULL, path);
    if (fyd == NULL) {
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return gm_err_errno(err, GM_EINVAL, errno, "config %s", path);
        fclose(f);
        return gm_err(err, GM_EINVAL, "config %s: not valid YAML", path);
    }
    struct fy_node *root = fy_document_root(fyd);
    if (root == NULL)
        goto out; /* an empty file keeps the defaults */
    if (!fy_node_is_mapping(root)) {
        rc = gm_err(err, GM_EINVAL, "config %s: expected a mapping of settings", path);
        goto out;
    }
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(root, &iter)) != NULL) {
        struct fy_node *kn = fy_node_pair_key(pair), *vn = fy_node_pair_value(pair);
        struct fy_token *kt = fy_node_get_scalar_token(kn);
        const struct fy_mark *m = kt ? fy_token_start_mark(kt) : NULL;
        char source[PATH_MAX + 32];
        snprintf(source, sizeof(source), "config %s:%d", path, m ? m->line + 1 : 0);
        const char *key = fy_node_get_scalar0(kn);
        if (key == NULL || vn == NULL || !fy_node_is_scalar(vn)) {
            rc = gm_err(err, GM_EINVAL, "%s: each setting must be a plain 'key: value'", source);
            goto out;
        }
        const char *val = fy_node_get_scalar0(vn);
        rc = gm_config_set(c, key, val ? val : "", source, err);
        if (rc < 0)
            goto out;
    }
out:
    fy_document_destroy(fyd);
    return rc;
}

int gm_config_finish(struct gm_config *c, const char *exe_dir, struct gm_error *err)
{
    if (strcmp(c->driver, "auto") != 0 && strcmp(c->driver, "nvml") != 0 &&
        strcmp(c->driver, "sim") != 0)
        return gm_err(err, GM_EINVAL, "driver: '%s' is not one of auto, nvml, sim", c->driver);
    c->spread = strcmp(c->placement, "spread") == 0;
    if (strcmp(c->placement, "binpack") != 0 && strcmp(c->placement, "spread") != 0)
        return gm_err(err, GM_EINVAL, "placement: '%s' is not one of binpack, spread",
                      c->placement);
    enum gm_log_level lvl;
    if (gm_log_parse_level(c->log_level, &lvl) < 0)
        return gm_err(err, GM_EINVAL, "log_level: '%s' is not one of debug, info, warning, error",
                      c->log_level);
    if (c->state_dir[0] != '/' || c->run_dir[0] != '/' || c->log_dir[0] != '/')
        return gm_err(err, GM_EINVAL, "state_dir, run_dir and log_dir must be absolute paths");
    int rc = 0;
    if (c->gpusim_dir[0] == '\0' && exe_dir != NULL)
        rc = gm_path(err, c->gpusim_dir, sizeof(c->gpusim_dir), "%s/../lib/gpusim", exe_dir);
    if (rc == 0 && c->interposer[0] == '\0' && exe_dir != NULL)
        rc = gm_path(err, c->interposer, sizeof(c->interposer), "%s/../lib/libgpumux.so", exe_dir);
    /* gpusim's own default, so that an NVML tool started by hand with gpusim's library on its
     * path watches the daemon's device. */
    if (rc == 0 && c->gpusim_state[0] == '\0')
        rc = gm_path(err, c->gpusim_state, sizeof(c->gpusim_state), "%s", GM_SIM_DEFAULT_STATE);
    return rc;
}

/* A YAML double-quoted scalar that loads back as s: quotes, backslashes and control characters
 * escaped. */
static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void gm_config_print(const struct gm_config *c, FILE *out)
{
    fprintf(out, "# gpumuxd configuration (YAML). Every key may also be given on the command\n"
                 "# line as --key-with-dashes VALUE.\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const char *field = (const char *)c + keys[i].off;
        fprintf(out, "\n# %s (default: %s)\n%s: ", keys[i].help,
                keys[i].def[0] ? keys[i].def : "empty", keys[i].name);
        if (keys[i].type == T_S) {
            print_quoted(out, field);
            fputc('\n', out);
        } else {
            long long v;
            memcpy(&v, field, sizeof(v));
            fprintf(out, "%lld\n", v);
        }
    }
}
