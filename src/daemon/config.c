#include "daemon/config.h"
#include "common/path.h"
#include "common/parse.h"
#include "gpusim/state/state.h"

#include <errno.h>
#include <libfyaml.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { T_S, T_P, T_E, T_Z, T_I, T_B };
/* A row's type as the table writes it: E carries its words, E(auto | nvml | sim). */
#define TYPE_S         T_S
#define TYPE_P         T_P
#define TYPE_E(...)    T_E
#define TYPE_Z         T_Z
#define TYPE_I         T_I
#define TYPE_B         T_B
#define CHOICES_S      NULL
#define CHOICES_P      NULL
#define CHOICES_E(...) #__VA_ARGS__
#define CHOICES_Z      NULL
#define CHOICES_I      NULL
#define CHOICES_B      NULL

/* Each row's field has the C type its setting type is stored in. */
#define FIELD(f)        (((struct gm_config *)0)->f)
#define IS_TEXT(f)      _Generic(&FIELD(f), char(*)[sizeof(FIELD(f))] : 1, default : 0)
#define FIELD_OK_S(f)   IS_TEXT(f)
#define FIELD_OK_P(f)   IS_TEXT(f)
#define FIELD_OK_E(...) IS_TEXT
#define FIELD_OK_Z(f)   _Generic(FIELD(f), uint64_t : 1, default : 0)
#define FIELD_OK_I(f)   _Generic(FIELD(f), long long : 1, default : 0)
#define FIELD_OK_B(f)   _Generic(FIELD(f), bool : 1, default : 0)
#define GM_X(k, t, f, d, lo, hi, h)                                                                \
    _Static_assert(FIELD_OK_##t(f), "setting " k ": its field is not stored as its type");
GM_CONFIG_KEYS(GM_X)
#undef GM_X

struct key {
    const char *name;
    int type;
    size_t off, size;
    const char *def;
    long long min, max;
    const char *choices; /* E: "auto | nvml | sim" */
    const char *help;
};

static const struct key keys[] = {
#define GM_X(k, t, f, d, lo, hi, h)                                                                \
    {k, TYPE_##t, offsetof(struct gm_config, f), sizeof(FIELD(f)), d, lo, hi, CHOICES_##t, h},
    GM_CONFIG_KEYS(GM_X)
#undef GM_X
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char bool_spellings[] = "true or false (also yes/no, on/off, 1/0)";

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

/* YAML's spellings of a boolean: YAML 1.2's true and false, YAML 1.1's yes, no, on and off,
 * each all lowercase, Capitalised or UPPERCASE (not tRuE), and 1 and 0. */
static int parse_bool(const char *s, bool *out)
{
    static const struct {
        const char *word;
        bool value;
    } words[] = {{"true", true}, {"false", false}, {"yes", true}, {"no", false},
                 {"on", true},   {"off", false},   {"1", true},   {"0", false}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        const char *w = words[i].word;
        size_t n = strlen(w);
        if (strlen(s) != n)
            continue;
        int lower = 1, upper = 1, capital = 1;
        for (size_t j = 0; j < n; j++) {
            char up = (char)(w[j] >= 'a' && w[j] <= 'z' ? w[j] - 'a' + 'A' : w[j]);
            lower &= s[j] == w[j];
            upper &= s[j] == up;
            capital &= s[j] == (j == 0 ? up : w[j]);
        }
        if (lower || upper || capital) {
            *out = words[i].value;
            return 0;
        }
    }
    return -1;
}

/* The next word of choices ("auto | nvml | sim") at *p: 1 with word and len set, 0 at the end. */
static int next_choice(const char **p, const char **word, int *len)
{
    const char *s = *p + strspn(*p, " |");
    if (*s == '\0')
        return 0;
    *word = s;
    *len = (int)strcspn(s, " |");
    *p = s + *len;
    return 1;
}

static int is_choice(const char *choices, const char *s)
{
    const char *w;
    int len;
    for (const char *p = choices; next_choice(&p, &w, &len);)
        if ((size_t)len == strlen(s) && strncmp(w, s, (size_t)len) == 0)
            return 1;
    return 0;
}

/* choices as "a, b, c", each word between quote and quote, or with sep "|": "a|b|c". */
static void print_choices(FILE *out, const char *choices, const char *quote, const char *sep)
{
    const char *w, *between = "";
    int len;
    for (const char *p = choices; next_choice(&p, &w, &len); between = sep)
        fprintf(out, "%s%s%.*s%s", between, quote, len, w, quote);
}

/* A size as it is written in the file: in the largest unit that divides it exactly. */
static void format_size(uint64_t v, char *buf, size_t len)
{
    static const char units[] = "TGMK";
    for (int i = 0; i < 4; i++) {
        uint64_t unit = 1ull << (10 * (4 - i));
        if (v != 0 && v % unit == 0) {
            snprintf(buf, len, "%llu%c", (unsigned long long)(v / unit), units[i]);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* The absolute, normalised form of path into out: a relative path is taken from base (NULL: the
 * working directory); empty components, "." and trailing slashes go, and ".." takes away the
 * component before it, as text (a symbolic link before it is not followed). */
static int absolute_path(const char *path, const char *base, char *out, size_t len,
                         const char *what, struct gm_error *err)
{
    char full[2 * PATH_MAX], cwd[PATH_MAX];
    if (path[0] != '/') {
        if (base == NULL) {
            if (getcwd(cwd, sizeof(cwd)) == NULL)
                return gm_err_errno(err, GM_EINVAL, errno,
                                    "%s: '%s' is relative, and the working directory is unknown",
                                    what, path);
            base = cwd;
        }
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", base, path) >= sizeof(full))
            return gm_err(err, GM_EINVAL, "%s: path '%.40s...' is too long", what, path);
    } else if ((size_t)snprintf(full, sizeof(full), "%s", path) >= sizeof(full)) {
        return gm_err(err, GM_EINVAL, "%s: path '%.40s...' is too long", what, path);
    }
    size_t n = 0;
    for (char *save = NULL, *c = strtok_r(full, "/", &save); c != NULL;
         c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            continue;
        }
        size_t cl = strlen(c);
        if (n + 1 + cl >= len)
            return gm_err(err, GM_EINVAL, "%s: path '%.40s...' is too long (at most %zu bytes)",
                          what, path, len - 1);
        out[n++] = '/';
        memcpy(out + n, c, cl);
        n += cl;
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    return 0;
}

/* Sets k from text; a relative path is taken from base (NULL: the working directory). */
static int set_key(struct gm_config *c, const struct key *k, const char *value, const char *source,
                   const char *base, struct gm_error *err)
{
    char what[160];
    snprintf(what, sizeof(what), "%s: %s", source, k->name);
    char *field = (char *)c + k->off;
    switch (k->type) {
    case T_S:
        if (strlen(value) >= k->size)
            return gm_err(err, GM_EINVAL, "%s: '%.40s...' is too long (at most %zu bytes)", what,
                          value, k->size - 1);
        strcpy(field, value);
        return 0;
    case T_P: {
        char path[PATH_MAX];
        if (value[0] == '\0') {
            if (k->min > 0)
                return gm_err(err, GM_EINVAL, "%s: may not be empty: give a directory", what);
            field[0] = '\0';
            return 0;
        }
        if (value[0] == '~')
            return gm_err(err, GM_EINVAL,
                          "%s: '%s': gpumuxd does not expand ~; give the path in full", what,
                          value);
        int rc = absolute_path(value, base, path, sizeof(path) < k->size ? sizeof(path) : k->size,
                               what, err);
        if (rc < 0)
            return rc;
        strcpy(field, path);
        return 0;
    }
    case T_E:
        if (!is_choice(k->choices, value)) {
            char *list = NULL;
            size_t len;
            FILE *f = open_memstream(&list, &len);
            if (f != NULL) {
                print_choices(f, k->choices, "", ", ");
                fclose(f);
            }
            int rc = gm_err(err, GM_EINVAL, "%s: '%s' is not one of %s", what, value,
                            list != NULL ? list : k->choices);
            free(list);
            return rc;
        }
        if (strlen(value) >= k->size)
            return gm_err(err, GM_EINVAL, "%s: '%s' is too long", what, value);
        strcpy(field, value);
        return 0;
    case T_Z: {
        uint64_t v = 0;
        if (strcmp(value, "0") != 0) {
            int rc = gm_parse_size(value, &v, what, err);
            if (rc < 0)
                return rc;
        }
        if (k->max > 0 && (v < (uint64_t)k->min || v > (uint64_t)k->max)) {
            char lo[32], hi[32];
            format_size((uint64_t)k->min, lo, sizeof(lo));
            format_size((uint64_t)k->max, hi, sizeof(hi));
            return gm_err(err, GM_EINVAL, "%s: '%s' is out of range (%s to %s)", what, value, lo,
                          hi);
        }
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
    case T_B: {
        bool v;
        if (parse_bool(value, &v) < 0)
            return gm_err(err, GM_EINVAL, "%s: '%s' is not a boolean: give %s", what, value,
                          bool_spellings);
        memcpy(field, &v, sizeof(v));
        return 0;
    }
    }
    return gm_err(err, GM_EINTERNAL, "%s: bad key type", what);
}

int gm_config_set(struct gm_config *c, const char *key, const char *value, const char *source,
                  struct gm_error *err)
{
    const struct key *k = find(key);
    if (k == NULL)
        return gm_err(err, GM_EINVAL, "%s: unknown setting '%s'", source, key);
    return set_key(c, k, value, source, NULL, err);
}

void gm_config_defaults(struct gm_config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NKEYS; i++) {
        struct gm_error err;
        if (set_key(c, &keys[i], keys[i].def, "default", "/", &err) < 0)
            abort(); /* a broken default table is a programming error */
    }
}

/* Does the file hold nothing but blank lines and comments? */
static int only_comments(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int blank = 1;
    while (blank && getline(&line, &cap, f) >= 0) {
        const char *p = line + strspn(line, " \t\r\n");
        blank = *p == '\0' || *p == '#';
    }
    free(line);
    fclose(f);
    return blank;
}

int gm_config_load(struct gm_config *c, const char *path, struct gm_error *err)
{
    int rc = gm_check_utf8_file(path, "config ", err);
    if (rc < 0)
        return rc;
    /* The file's directory, for relative paths in it. */
    char base[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        rc = absolute_path(".", NULL, base, sizeof(base), "config", err);
    else if (slash == path)
        rc = absolute_path("/", NULL, base, sizeof(base), "config", err);
    else {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
        rc = absolute_path(dir, NULL, base, sizeof(base), "config", err);
    }
    if (rc < 0)
        return rc;
    /* libfyaml builds no document from a stream without one. */
    if (only_comments(path))
        return 0;
    struct fy_document *fyd = fy_document_build_from_file(NULL, path);
    if (fyd == NULL) {
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return gm_err_errno(err, GM_EINVAL, errno, "config %s", path);
        fclose(f);
        return gm_err(err, GM_EINVAL, "config %s: not valid YAML", path);
    }
    struct fy_node *root = fy_document_root(fyd);
    /* An empty document ("---" alone) keeps the defaults. */
    if (root == NULL || (fy_node_is_scalar(root) && fy_node_get_style(root) == FYNS_PLAIN &&
                         fy_node_get_scalar_length(root) == 0))
        goto out;
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
        const struct key *k = find(key);
        if (k == NULL) {
            rc = gm_err(err, GM_EINVAL,
                        "%s: unknown setting '%s' (gpumuxd --print-config lists them all)", source,
                        key);
            goto out;
        }
        const char *val = fy_node_get_scalar0(vn);
        /* YAML's null (key:, key: ~, key: null, unquoted) is the empty value. */
        if (val == NULL || (fy_node_get_style(vn) == FYNS_PLAIN &&
                            (strcmp(val, "~") == 0 || strcmp(val, "null") == 0 ||
                             strcmp(val, "Null") == 0 || strcmp(val, "NULL") == 0)))
            val = "";
        rc = set_key(c, k, val, source, base, err);
        if (rc < 0)
            goto out;
    }
out:
    fy_document_destroy(fyd);
    return rc;
}

/* A derived default path: exe_dir/rel, normalised. */
static int derived_path(char *field, size_t len, const char *exe_dir, const char *rel,
                        const char *what, struct gm_error *err)
{
    char path[PATH_MAX];
    int rc = gm_path(err, path, sizeof(path), "%s/%s", exe_dir, rel);
    if (rc < 0)
        return rc;
    return absolute_path(path, NULL, field, len, what, err);
}

int gm_config_finish(struct gm_config *c, const char *exe_dir, struct gm_error *err)
{
    c->spread = strcmp(c->placement, "spread") == 0;
    int rc = 0;
    if (c->gpusim_dir[0] == '\0' && exe_dir != NULL)
        rc = derived_path(c->gpusim_dir, sizeof(c->gpusim_dir), exe_dir, "../lib/gpusim",
                          "gpusim_dir", err);
    if (rc == 0 && c->interposer[0] == '\0' && exe_dir != NULL)
        rc = derived_path(c->interposer, sizeof(c->interposer), exe_dir, "../lib/libgpumux.so",
                          "interposer", err);
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

/* text as lines of at most width characters, each after prefix. */
static void print_wrapped(FILE *out, const char *prefix, const char *text, size_t width)
{
    const char *p = text;
    while (*p != '\0') {
        size_t n = strlen(p);
        if (n > width) {
            n = width;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0) /* one word longer than the line */
                for (n = width; p[n] != '\0' && p[n] != ' ';)
                    n++;
        }
        fprintf(out, "%s%.*s\n", prefix, (int)n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

static const char *type_name(int type)
{
    switch (type) {
    case T_S:
        return "text";
    case T_P:
        return "path";
    case T_E:
        return "choice";
    case T_Z:
        return "size";
    case T_I:
        return "integer";
    case T_B:
        return "boolean";
    }
    return "?";
}

/* What k takes, for people: "0 to 3600", "4K to 1T", ... (quote: around each literal). */
static void print_allowed(FILE *out, const struct key *k, const char *quote)
{
    char lo[32], hi[32];
    switch (k->type) {
    case T_S:
        fprintf(out, "text of up to %zu bytes", k->size - 1);
        return;
    case T_P:
        fprintf(out, k->min > 0 ? "a path" : "a path, or empty");
        return;
    case T_E:
        print_choices(out, k->choices, quote, ", ");
        return;
    case T_Z:
        if (k->max > 0) {
            format_size((uint64_t)k->min, lo, sizeof(lo));
            format_size((uint64_t)k->max, hi, sizeof(hi));
            fprintf(out, "%s%s%s to %s%s%s", quote, lo, quote, quote, hi, quote);
        } else {
            fprintf(out, "any size, %s0%s included", quote, quote);
        }
        return;
    case T_I:
        fprintf(out, "%s%lld%s to %s%lld%s", quote, k->min, quote, quote, k->max, quote);
        return;
    case T_B:
        fprintf(out, "%strue%s or %sfalse%s", quote, quote, quote, quote);
        return;
    }
}

/* Every setting with its help, what it allows and its default, then "key: value" from c; each
 * setting line starts with prefix ("#" to leave it commented out). */
static void print_settings(const struct gm_config *c, const char *prefix, FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *field = (const char *)c + k->off;
        fputc('\n', out);
        print_wrapped(out, "# ", k->help, 78);
        fprintf(out, "# Allowed: ");
        print_allowed(out, k, "");
        fprintf(out, ". Default: %s.\n%s%s: ", k->def[0] ? k->def : "empty", prefix, k->name);
        switch (k->type) {
        case T_S:
        case T_P:
        case T_E:
            print_quoted(out, field);
            break;
        case T_Z: {
            uint64_t v;
            char buf[32];
            memcpy(&v, field, sizeof(v));
            format_size(v, buf, sizeof(buf));
            fputs(buf, out);
            break;
        }
        case T_I: {
            long long v;
            memcpy(&v, field, sizeof(v));
            fprintf(out, "%lld", v);
            break;
        }
        case T_B: {
            bool v;
            memcpy(&v, field, sizeof(v));
            fputs(v ? "true" : "false", out);
            break;
        }
        }
        fputc('\n', out);
    }
}

void gm_config_print(const struct gm_config *c, FILE *out)
{
    fprintf(out,
            "# gpumuxd configuration (YAML): every setting once, with the value in effect.\n"
            "# Any of them may also be given on the command line as --key-with-dashes VALUE.\n");
    print_settings(c, "", out);
}

void gm_config_print_template(FILE *out)
{
    struct gm_config c;
    gm_config_defaults(&c);
    print_wrapped(out, "# ",
                  "gpumuxd configuration (YAML). gpumuxd reads it when started with --config "
                  "FILE, as the systemd unit gpumuxd.service does. Every setting is shown below "
                  "commented out, with its default: as shipped, this file changes nothing. To "
                  "change a setting, remove the '#' before its key and edit the value. Options "
                  "on gpumuxd's command line (--key-with-dashes VALUE) override this file; "
                  "'gpumuxd --config FILE --check' checks it and --print-config prints the "
                  "settings in effect. docs/config.md describes every setting.",
                  78);
    print_settings(&c, "#", out);
}

/* The value's place in the command-line spelling of k: "--stop-timeout N". */
static void print_option(FILE *out, const struct key *k)
{
    fputs("--", out);
    for (const char *p = k->name; *p; p++)
        fputc(*p == '_' ? '-' : *p, out);
    switch (k->type) {
    case T_S:
        fputs(" TEXT", out);
        return;
    case T_P:
        fputs(" PATH", out);
        return;
    case T_E:
        fputc(' ', out);
        print_choices(out, k->choices, "", "|");
        return;
    case T_Z:
        fputs(" SIZE", out);
        return;
    case T_I:
        fputs(" N", out);
        return;
    case T_B:
        fputs(" true|false", out);
        return;
    }
}

void gm_config_describe(FILE *out)
{
    fprintf(out, "| Setting | Type | Default | Allowed |\n"
                 "|---|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        fprintf(out, "| [`%s`](#%s) | %s | ", k->name, k->name, type_name(k->type));
        if (k->def[0] != '\0')
            fprintf(out, "`%s`", k->def);
        else
            fprintf(out, "empty");
        fprintf(out, " | ");
        print_allowed(out, k, "`");
        fprintf(out, " |\n");
    }
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        fprintf(out, "\n### `%s`\n\n%s\n\nType: %s. Allowed: ", k->name, k->help,
                type_name(k->type));
        print_allowed(out, k, "`");
        if (k->def[0] != '\0')
            fprintf(out, ". Default: `%s`. Command line: `", k->def);
        else
            fprintf(out, ". Default: empty. Command line: `");
        print_option(out, k);
        fprintf(out, "`.\n");
    }
}
