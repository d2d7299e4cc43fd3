/* Writes the bash and zsh completions of gpumux from the CLI itself: the verbs and their
 * summaries from GM_CLI_VERBS (src/cli/cli.h), each verb's options, their values and its
 * arguments from the verb's help text (gm_cli_help_VERB, what `gpumux VERB --help` prints), the
 * options every verb takes from GM_CLI_COMMON_LONG and the global ones from `gpumux --help`. A
 * new verb, option or value list in a help text shows up in the completions with the next build.
 *
 * usage: gm-gen-completion bash|zsh [OUTPUT]
 *
 * What the help texts are read for:
 *   OPTIONS   lines "    -x, --long ARG" or "    --long=ARG": the option, whether it takes a
 *             value and, when ARG lists lowercase words (table|json), those values; a value
 *             named PATH, FILE or DIR completes file names. The first line below is the
 *             description (zsh).
 *   SYNOPSIS  lines "    gpumux VERB WORDS": a lowercase first word is a subcommand (gpu ls);
 *             the words after it, outside [-option] groups, are the positional arguments:
 *             NAME is a workload (completed with `gpumux ps -q -a`) except for the verbs that
 *             create one, lowercase alternatives (shared|mps|vm) complete to themselves, a
 *             trailing ".." repeats the last, and "--" starts a command line.
 */
#include "cli/cli.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Verbs whose NAME argument is a new workload, not one to complete. */
static const char *const creates_name[] = {"run"};

enum { MAX_OPTS = 64, MAX_POS = 16, MAX_KEYS = 16, MAX_SUBS = 16 };

struct opt {
    char shrt[4];     /* "-o" or "" */
    char lng[64];     /* "--output" or "" */
    int takes_value;  /* 1 when the option needs a value */
    char values[128]; /* "table json", "@file", or "" */
    char desc[160];   /* first line of its description */
};

struct args {
    char key[64];            /* "gpu mode", "stop" */
    char spec[MAX_POS][128]; /* per position: "@name", "a|b", "-" (any); ".." suffix repeats */
    int n;
    int command; /* a "--" COMMAND follows */
};

struct scope {
    char name[32]; /* a verb, or "gpumux" for the options before the verb */
    char summary[160];
    struct opt opts[MAX_OPTS];
    int nopts;
    char subs[MAX_SUBS][32];
    int nsubs;
    struct args args[MAX_KEYS];
    int nargs;
};

static void die(const char *what)
{
    fprintf(stderr, "gm-gen-completion: %s\n", what);
    exit(1);
}

/* The body of section NAME of a help text (the lines after "NAME\n" up to the next heading),
 * copied into a malloc'd string; NULL when absent. */
static char *section(const char *help, const char *name)
{
    size_t nl = strlen(name);
    const char *p = help;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, nl) == 0 && p[nl] == '\n') {
            const char *start = p + nl + 1, *end = start;
            while (*end != '\0') {
                if (end[0] != ' ' && end[0] != '\n')
                    break; /* a heading starts at the left margin */
                const char *next = strchr(end, '\n');
                end = next != NULL ? next + 1 : end + strlen(end);
            }
            return strndup(start, (size_t)(end - start));
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

static int is_lower_word(const char *s, size_t n)
{
    if (n == 0 || !islower((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
            return 0;
    return 1;
}

/* The lowercase words of "a|b|PLACEHOLDER" as "a b", or "@file" for PATH, FILE and DIR. */
static void value_words(const char *arg, char *out, size_t len)
{
    out[0] = '\0';
    if (strcmp(arg, "PATH") == 0 || strcmp(arg, "FILE") == 0 || strcmp(arg, "DIR") == 0) {
        snprintf(out, len, "@file");
        return;
    }
    const char *p = arg;
    while (*p != '\0') {
        size_t n = strcspn(p, "|");
        if (is_lower_word(p, n))
            snprintf(out + strlen(out), len - strlen(out), "%s%.*s", out[0] ? " " : "", (int)n, p);
        p += n;
        if (*p == '|')
            p++;
    }
}

static struct opt *find_opt(struct scope *s, const char *word)
{
    for (int i = 0; i < s->nopts; i++)
        if ((s->opts[i].shrt[0] && strcmp(s->opts[i].shrt, word) == 0) ||
            (s->opts[i].lng[0] && strcmp(s->opts[i].lng, word) == 0))
            return &s->opts[i];
    return NULL;
}

/* The OPTIONS section of help into s->opts. */
static void parse_options(struct scope *s, const char *help)
{
    char *body = section(help, "OPTIONS");
    if (body == NULL)
        return;
    char *save = NULL;
    struct opt *last = NULL;
    int want_desc = 0;
    for (char *line = strtok_r(body, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "    -", 5) != 0) {
            if (want_desc && last != NULL && strncmp(line, "        ", 8) == 0) {
                const char *d = line + 8;
                size_t n = strlen(d);
                const char *stop = strstr(d, ". ");
                if (stop != NULL)
                    n = (size_t)(stop - d);
                while (n > 0 && (d[n - 1] == '.' || d[n - 1] == ' '))
                    n--;
                snprintf(last->desc, sizeof(last->desc), "%.*s", (int)n, d);
            }
            want_desc = 0;
            continue;
        }
        if (s->nopts >= MAX_OPTS)
            die("too many options");
        struct opt o = {0};
        const char *p = line + 4;
        while (*p == '-') {
            size_t n =
                1 +
                strspn(p + 1, "-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
            if (n == 2 && p[1] != '-')
                snprintf(o.shrt, sizeof(o.shrt), "%.*s", (int)n, p);
            else
                snprintf(o.lng, sizeof(o.lng), "%.*s", (int)n, p);
            p += n;
            if (strncmp(p, ", ", 2) == 0 && p[2] == '-') {
                p += 2;
                continue;
            }
            break;
        }
        if (*p == '=' || *p == ' ') {
            p++;
            o.takes_value = *p != '\0';
            value_words(p, o.values, sizeof(o.values));
        }
        if (o.lng[0] == '\0' && o.shrt[0] == '\0')
            continue;
        struct opt *known = find_opt(s, o.lng[0] ? o.lng : o.shrt);
        if (known != NULL)
            continue; /* listed twice: keep the first */
        s->opts[s->nopts] = o;
        last = &s->opts[s->nopts++];
        want_desc = 1;
    }
    free(body);
}

static int creates(const char *verb)
{
    for (size_t i = 0; i < sizeof(creates_name) / sizeof(creates_name[0]); i++)
        if (strcmp(creates_name[i], verb) == 0)
            return 1;
    return 0;
}

/* One positional word of a synopsis ("NAME..", "shared|mps|vm", "ID") as its spec. */
static void positional(const char *verb, const char *word, char *out, size_t len)
{
    size_t n = strlen(word);
    int repeat = n > 2 && strcmp(word + n - 2, "..") == 0;
    if (repeat)
        n -= 2;
    char w[128];
    snprintf(w, sizeof(w), "%.*s", (int)n, word);
    char values[128];
    value_words(w, values, sizeof(values));
    if (strcmp(w, "NAME") == 0 && !creates(verb))
        snprintf(values, sizeof(values), "@name");
    for (char *p = values; *p; p++)
        if (*p == ' ')
            *p = '|';
    snprintf(out, len, "%.120s%s", values[0] ? values : "-", repeat ? ".." : "");
}

static struct args *args_for(struct scope *s, const char *key)
{
    for (int i = 0; i < s->nargs; i++)
        if (strcmp(s->args[i].key, key) == 0)
            return &s->args[i];
    if (s->nargs >= MAX_KEYS)
        die("too many synopsis lines");
    struct args *a = &s->args[s->nargs++];
    memset(a, 0, sizeof(*a));
    snprintf(a->key, sizeof(a->key), "%s", key);
    return a;
}

/* The SYNOPSIS section of help: subcommands and positional arguments. */
static void parse_synopsis(struct scope *s, const char *help)
{
    char *body = section(help, "SYNOPSIS");
    if (body == NULL)
        return;
    /* Continuation lines (deeper indentation, or after a trailing backslash) join their line. */
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "    gpumux %s", s->name);
    size_t pl = strlen(prefix);
    char *lines[32];
    int nlines = 0;
    char *save = NULL;
    for (char *line = strtok_r(body, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, prefix, pl) == 0 && (line[pl] == ' ' || line[pl] == '\0')) {
            if (nlines == 32)
                die("synopsis too long");
            lines[nlines++] = strdup(line + pl);
        } else if (nlines > 0 && strncmp(line, "     ", 5) == 0) {
            char *joined;
            if (asprintf(&joined, "%s %s", lines[nlines - 1], line) < 0)
                die("out of memory");
            free(lines[nlines - 1]);
            lines[nlines - 1] = joined;
        }
    }
    free(body);
    for (int l = 0; l < nlines; l++) {
        char specs[MAX_POS][128], sub[32] = "";
        int n = 0, depth = 0, group_is_option = 0, command = 0, skip_value = 0;
        char *tsave = NULL;
        for (char *t = strtok_r(lines[l], " \t", &tsave); t != NULL;
             t = strtok_r(NULL, " \t", &tsave)) {
            if (strcmp(t, "\\") == 0 || strcmp(t, "|") == 0)
                continue;
            if (skip_value) {
                skip_value = 0;
                continue;
            }
            if (depth == 0 && strcmp(t, "--") == 0) {
                command = 1;
                break;
            }
            /* Brackets group optional words: an option group ("[-o table|json]",
             * "[--env KEY=VALUE]..") is skipped, an argument group ("[NAME..]") counts. */
            int before = depth, opens = 0, closes = 0;
            char word[128];
            size_t wl = 0;
            for (const char *c = t; *c; c++) {
                if (*c == '[')
                    opens++;
                else if (*c == ']')
                    closes++;
                else if (wl + 1 < sizeof(word))
                    word[wl++] = *c;
            }
            word[wl] = '\0';
            if (before == 0 && t[0] == '[')
                group_is_option = word[0] == '-';
            depth = before + opens - closes;
            if (depth < 0)
                depth = 0;
            if ((before > 0 || t[0] == '[') && group_is_option)
                continue;
            if (word[0] == '-') {
                struct opt *o = find_opt(s, word);
                if (strchr(word, '=') == NULL && o != NULL && o->takes_value)
                    skip_value = 1;
                continue;
            }
            if (word[0] == '\0')
                continue;
            if (n == 0 && sub[0] == '\0' && is_lower_word(word, strlen(word))) {
                snprintf(sub, sizeof(sub), "%.31s", word);
                continue;
            }
            if (n < MAX_POS)
                positional(s->name, word, specs[n++], sizeof(specs[0]));
        }
        if (sub[0] != '\0') {
            int seen = 0;
            for (int i = 0; i < s->nsubs; i++)
                seen |= strcmp(s->subs[i], sub) == 0;
            if (!seen && s->nsubs < MAX_SUBS)
                snprintf(s->subs[s->nsubs++], sizeof(s->subs[0]), "%s", sub);
        }
        char key[64];
        if (sub[0] != '\0')
            snprintf(key, sizeof(key), "%s %s", s->name, sub);
        else
            snprintf(key, sizeof(key), "%s", s->name);
        struct args *a = args_for(s, key);
        if (n > a->n) {
            memcpy(a->spec, specs, sizeof(specs[0]) * (size_t)n);
            a->n = n;
        }
        a->command |= command;
        free(lines[l]);
    }
}

/* Options every verb takes (GM_CLI_COMMON_LONG), with the descriptions of the global help. */
static void add_common(struct scope *s, const struct scope *global)
{
    static const struct option common[] = {GM_CLI_COMMON_LONG};
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
        char lng[64];
        snprintf(lng, sizeof(lng), "--%s", common[i].name);
        if (find_opt(s, lng) != NULL || s->nopts >= MAX_OPTS)
            continue;
        const struct opt *g = find_opt((struct scope *)global, lng);
        struct opt o = {0};
        if (g != NULL)
            o = *g;
        snprintf(o.lng, sizeof(o.lng), "%s", lng);
        o.takes_value = common[i].has_arg == required_argument;
        s->opts[s->nopts++] = o;
    }
}

static struct scope scopes[64];
static int nscopes;

static void load(void)
{
    /* The global options, from `gpumux --help`. */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char a0[] = "gpumux", a1[] = "--help";
    char *argv[] = {a0, a1, NULL};
    if (mem == NULL || gm_cli_main(2, argv, mem, stderr) != 0)
        die("gpumux --help failed");
    fclose(mem);
    struct scope *g = &scopes[nscopes++];
    snprintf(g->name, sizeof(g->name), "gpumux");
    parse_options(g, text);
    free(text);
#define GM_CLI_X(verb, sum)                                                                        \
    do {                                                                                           \
        struct scope *s = &scopes[nscopes++];                                                      \
        snprintf(s->name, sizeof(s->name), "%s", #verb);                                           \
        snprintf(s->summary, sizeof(s->summary), "%s", sum);                                       \
        parse_options(s, gm_cli_help_##verb);                                                      \
        add_common(s, g);                                                                          \
        parse_synopsis(s, gm_cli_help_##verb);                                                     \
    } while (0);
    GM_CLI_VERBS(GM_CLI_X)
#undef GM_CLI_X
}

/* s in single quotes, for both shells. */
static void q(FILE *out, const char *s)
{
    fputc('\'', out);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", out);
        else
            fputc(*s, out);
    }
    fputc('\'', out);
}

/* The space-separated list of a scope's long options (and short ones with all). */
static void opt_list(FILE *out, const struct scope *s, int values_only)
{
    char buf[4096] = "";
    for (int i = 0; i < s->nopts; i++) {
        const struct opt *o = &s->opts[i];
        if (values_only && !o->takes_value)
            continue;
        if (values_only && o->shrt[0])
            snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", buf[0] ? " " : "",
                     o->shrt);
        if (o->lng[0])
            snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", buf[0] ? " " : "",
                     o->lng);
        else if (!values_only)
            snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", buf[0] ? " " : "",
                     o->shrt);
    }
    q(out, buf);
}

/* The tables both shells read, as NAME[KEY]=VALUE assignments (bash) or KEY VALUE pairs (zsh). */
static void tables(FILE *out, int zsh)
{
    const char *open = zsh ? "" : "[", *close = zsh ? " " : "]=";
    fprintf(out, "_gpumux_verbs=");
    char buf[1024] = "";
    for (int i = 1; i < nscopes; i++)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", buf[0] ? " " : "",
                 scopes[i].name);
    q(out, buf);
    fputc('\n', out);
    /* long options (and short ones without a long name), per scope */
    fprintf(out, "_gpumux_opts=(\n");
    for (int i = 0; i < nscopes; i++) {
        fprintf(out, "    %s%s%s", open, scopes[i].name, close);
        opt_list(out, &scopes[i], 0);
        fputc('\n', out);
    }
    fprintf(out, ")\n# options that take a value, short and long\n_gpumux_argopts=(\n");
    for (int i = 0; i < nscopes; i++) {
        fprintf(out, "    %s%s%s", open, scopes[i].name, close);
        opt_list(out, &scopes[i], 1);
        fputc('\n', out);
    }
    fprintf(out, ")\n# the values of an option: words, or @file\n_gpumux_values=(\n");
    for (int i = 0; i < nscopes; i++)
        for (int j = 0; j < scopes[i].nopts; j++) {
            const struct opt *o = &scopes[i].opts[j];
            if (!o->takes_value || o->values[0] == '\0')
                continue;
            const char *names[] = {o->shrt, o->lng};
            for (int k = 0; k < 2; k++) {
                if (names[k][0] == '\0')
                    continue;
                char key[128];
                snprintf(key, sizeof(key), "%s %s", scopes[i].name, names[k]);
                fprintf(out, "    %s", open);
                q(out, key);
                fputs(close, out);
                q(out, o->values);
                fputc('\n', out);
            }
        }
    fprintf(out, ")\n# subcommands\n_gpumux_subs=(\n");
    for (int i = 1; i < nscopes; i++) {
        if (scopes[i].nsubs == 0)
            continue;
        char subs[512] = "";
        for (int j = 0; j < scopes[i].nsubs; j++)
            snprintf(subs + strlen(subs), sizeof(subs) - strlen(subs), "%s%s", subs[0] ? " " : "",
                     scopes[i].subs[j]);
        fprintf(out, "    %s%s%s", open, scopes[i].name, close);
        q(out, subs);
        fputc('\n', out);
    }
    fprintf(out, ")\n# positional arguments, per verb or \"verb subcommand\": @name (a workload), "
                 "a|b (words),\n# - (anything); \"..\" repeats; \"--\" starts a command\n"
                 "_gpumux_args=(\n");
    for (int i = 1; i < nscopes; i++)
        for (int j = 0; j < scopes[i].nargs; j++) {
            const struct args *a = &scopes[i].args[j];
            char spec[1024] = "";
            for (int k = 0; k < a->n; k++)
                snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%s%s",
                         spec[0] ? " " : "", a->spec[k]);
            if (a->command)
                snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%s--",
                         spec[0] ? " " : "");
            fprintf(out, "    %s", open);
            q(out, a->key);
            fputs(close, out);
            q(out, spec);
            fputc('\n', out);
        }
    fprintf(out, ")\n");
}

static const char bash_engine[] =
    "# The word after \"--opt=\" is the option's value: bash splits at '='.\n"
    "_gpumux_takes_value() { [[ \" ${_gpumux_argopts[$1]} \" == *\" $2 \"* ]]; }\n"
    "\n"
    "_gpumux_workloads() {\n"
    "    local -a g=()\n"
    "    local i\n"
    "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
    "        if [[ ${COMP_WORDS[i]} == --socket ]]; then\n"
    "            if [[ ${COMP_WORDS[i + 1]} == = ]]; then\n"
    "                g=(--socket \"${COMP_WORDS[i + 2]}\")\n"
    "            else\n"
    "                g=(--socket \"${COMP_WORDS[i + 1]}\")\n"
    "            fi\n"
    "        fi\n"
    "    done\n"
    "    \"${COMP_WORDS[0]}\" \"${g[@]}\" --timeout 2 ps -q -a 2>/dev/null\n"
    "}\n"
    "\n"
    "_gpumux_value() {\n"
    "    local v=${_gpumux_values[\"$1 $2\"]}\n"
    "    if [[ $v == @file ]]; then\n"
    "        compopt -o filenames 2>/dev/null\n"
    "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
    "    elif [[ -n $v ]]; then\n"
    "        COMPREPLY=($(compgen -W \"$v\" -- \"$cur\"))\n"
    "    fi\n"
    "}\n"
    "\n"
    "_gpumux() {\n"
    "    local cur=${COMP_WORDS[COMP_CWORD]} prev= verb= vi=0 i w\n"
    "    COMPREPLY=()\n"
    "    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
    "    if [[ $cur == = ]]; then\n"
    "        cur=\n"
    "    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then\n"
    "        prev=${COMP_WORDS[COMP_CWORD - 2]}\n"
    "    fi\n"
    "    # The verb: the first word that is neither an option nor an option's value.\n"
    "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
    "        w=${COMP_WORDS[i]}\n"
    "        if _gpumux_takes_value gpumux \"$w\"; then\n"
    "            [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))\n"
    "            ((i++))\n"
    "        elif [[ $w == = ]]; then\n"
    "            ((i++))\n"
    "        elif [[ $w != -* ]]; then\n"
    "            verb=$w vi=$i\n"
    "            break\n"
    "        fi\n"
    "    done\n"
    "    local scope=${verb:-gpumux}\n"
    "    if [[ $verb == help ]]; then\n"
    "        ((COMP_CWORD == vi + 1)) && COMPREPLY=($(compgen -W \"$_gpumux_verbs\" -- \"$cur\"))\n"
    "        return 0\n"
    "    fi\n"
    "    [[ -n ${_gpumux_opts[$scope]+set} ]] || return 0\n"
    "    local -a pos=()\n"
    "    local dd=0\n"
    "    for ((i = vi + 1; vi && i < COMP_CWORD; i++)); do\n"
    "        w=${COMP_WORDS[i]}\n"
    "        if [[ $w == -- ]]; then\n"
    "            dd=$i\n"
    "            break\n"
    "        elif [[ $w == = ]]; then\n"
    "            ((i++))\n"
    "        elif _gpumux_takes_value \"$verb\" \"$w\"; then\n"
    "            [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))\n"
    "            ((i++))\n"
    "        elif [[ $w != -* ]]; then\n"
    "            pos+=(\"$w\")\n"
    "        fi\n"
    "    done\n"
    "    if ((dd)); then\n"
    "        # The command after \"--\", then its arguments.\n"
    "        if ((dd == COMP_CWORD - 1)); then\n"
    "            COMPREPLY=($(compgen -c -- \"$cur\"))\n"
    "        else\n"
    "            compopt -o filenames 2>/dev/null\n"
    "            COMPREPLY=($(compgen -f -- \"$cur\"))\n"
    "        fi\n"
    "        return 0\n"
    "    fi\n"
    "    if _gpumux_takes_value \"$scope\" \"$prev\"; then\n"
    "        _gpumux_value \"$scope\" \"$prev\"\n"
    "        return 0\n"
    "    fi\n"
    "    if [[ $cur == -* ]]; then\n"
    "        COMPREPLY=($(compgen -W \"${_gpumux_opts[$scope]}\" -- \"$cur\"))\n"
    "        return 0\n"
    "    fi\n"
    "    if [[ -z $verb ]]; then\n"
    "        COMPREPLY=($(compgen -W \"$_gpumux_verbs help\" -- \"$cur\"))\n"
    "        return 0\n"
    "    fi\n"
    "    local key=$verb\n"
    "    if [[ -n ${_gpumux_subs[$verb]+set} ]]; then\n"
    "        if ((${#pos[@]} == 0)); then\n"
    "            COMPREPLY=($(compgen -W \"${_gpumux_subs[$verb]}\" -- \"$cur\"))\n"
    "            return 0\n"
    "        fi\n"
    "        key=\"$verb ${pos[0]}\"\n"
    "        pos=(\"${pos[@]:1}\")\n"
    "    fi\n"
    "    local -a spec=(${_gpumux_args[$key]})\n"
    "    local k=\n"
    "    [[ ${spec[*]: -1} == -- ]] && unset 'spec[-1]'\n"
    "    if ((${#pos[@]} < ${#spec[@]})); then\n"
    "        k=${spec[${#pos[@]}]}\n"
    "    elif ((${#spec[@]})) && [[ ${spec[-1]} == *.. ]]; then\n"
    "        k=${spec[-1]}\n"
    "    fi\n"
    "    k=${k%..}\n"
    "    case $k in\n"
    "    @name) COMPREPLY=($(compgen -W \"$(_gpumux_workloads)\" -- \"$cur\")) ;;\n"
    "    - | '') ;;\n"
    "    *) COMPREPLY=($(compgen -W \"${k//|/ }\" -- \"$cur\")) ;;\n"
    "    esac\n"
    "    return 0\n"
    "}\n"
    "complete -F _gpumux gpumux\n";

static void bash(FILE *out)
{
    fprintf(out, "# bash completion for gpumux(1): verbs, their options and values, subcommands "
                 "and workload\n# names. Generated by tools/gen_completion.c from the CLI's "
                 "verb table and help texts.\n"
                 "# shellcheck shell=bash disable=SC2207\n"
                 "declare -gA _gpumux_opts _gpumux_argopts _gpumux_values _gpumux_subs "
                 "_gpumux_args\n");
    tables(out, 0);
    fputc('\n', out);
    fputs(bash_engine, out);
}

static const char zsh_engine[] =
    "_gpumux_takes_value() { [[ \" ${_gpumux_argopts[$1]} \" == *\" $2 \"* ]] }\n"
    "\n"
    "_gpumux_workloads() {\n"
    "    local -a g names\n"
    "    local i\n"
    "    for (( i = 2; i < CURRENT; i++ )); do\n"
    "        case $words[i] in\n"
    "        --socket) g=(--socket $words[i+1]) ;;\n"
    "        --socket=*) g=($words[i]) ;;\n"
    "        esac\n"
    "    done\n"
    "    names=(${(f)\"$(${~words[1]} $g --timeout 2 ps -q -a 2>/dev/null)\"})\n"
    "    _wanted workloads expl workload compadd -a names\n"
    "}\n"
    "\n"
    "# _gpumux_value SCOPE OPTION: the option's values.\n"
    "_gpumux_value() {\n"
    "    local v=${_gpumux_values[$1 $2]}\n"
    "    case $v in\n"
    "    @file) _files ;;\n"
    "    '') _message -e values value ;;\n"
    "    *) _wanted values expl value compadd -- ${=v} ;;\n"
    "    esac\n"
    "}\n"
    "\n"
    "# _gpumux_options SCOPE: its options, described.\n"
    "_gpumux_options() {\n"
    "    local -a d\n"
    "    d=(\"${(@P)${:-_gpumux_desc_$1}}\")\n"
    "    _describe -t options option d\n"
    "}\n"
    "\n"
    "_gpumux() {\n"
    "    local cur=$words[CURRENT] prev=$words[CURRENT-1] verb= vi=0 i w\n"
    "    for (( i = 2; i < CURRENT; i++ )); do\n"
    "        w=$words[i]\n"
    "        if _gpumux_takes_value gpumux $w; then\n"
    "            (( i++ ))\n"
    "        elif [[ $w != -* ]]; then\n"
    "            verb=$w vi=$i\n"
    "            break\n"
    "        fi\n"
    "    done\n"
    "    local scope=${verb:-gpumux}\n"
    "    if [[ $verb == help ]]; then\n"
    "        (( CURRENT == vi + 1 )) && _describe -t verbs verb _gpumux_verb_desc\n"
    "        return\n"
    "    fi\n"
    "    (( ${+_gpumux_opts[$scope]} )) || return 1\n"
    "    local -a pos\n"
    "    local dd=0\n"
    "    for (( i = vi + 1; vi && i < CURRENT; i++ )); do\n"
    "        w=$words[i]\n"
    "        if [[ $w == -- ]]; then\n"
    "            dd=$i\n"
    "            break\n"
    "        elif _gpumux_takes_value $verb $w; then\n"
    "            (( i++ ))\n"
    "        elif [[ $w != -* ]]; then\n"
    "            pos+=($w)\n"
    "        fi\n"
    "    done\n"
    "    if (( dd )); then\n"
    "        # The command after \"--\" completes as a command line of its own.\n"
    "        shift $dd words\n"
    "        (( CURRENT -= dd ))\n"
    "        _normal\n"
    "        return\n"
    "    fi\n"
    "    if [[ $cur == --*=* ]] && _gpumux_takes_value $scope ${cur%%=*}; then\n"
    "        local opt=${cur%%=*}\n"
    "        compset -P '*='\n"
    "        _gpumux_value $scope $opt\n"
    "        return\n"
    "    fi\n"
    "    if _gpumux_takes_value $scope $prev; then\n"
    "        _gpumux_value $scope $prev\n"
    "        return\n"
    "    fi\n"
    "    if [[ $cur == -* ]]; then\n"
    "        _gpumux_options $scope\n"
    "        return\n"
    "    fi\n"
    "    if [[ -z $verb ]]; then\n"
    "        _describe -t verbs verb _gpumux_verb_desc\n"
    "        return\n"
    "    fi\n"
    "    local key=$verb\n"
    "    if (( ${+_gpumux_subs[$verb]} )); then\n"
    "        if (( ${#pos} == 0 )); then\n"
    "            local -a subs\n"
    "            subs=(${=_gpumux_subs[$verb]})\n"
    "            _wanted subcommands expl subcommand compadd -a subs\n"
    "            return\n"
    "        fi\n"
    "        key=\"$verb $pos[1]\"\n"
    "        shift pos\n"
    "    fi\n"
    "    local -a spec\n"
    "    spec=(${=_gpumux_args[$key]})\n"
    "    [[ $spec[-1] == -- ]] && spec[-1]=()\n"
    "    local k=\n"
    "    if (( ${#pos} < ${#spec} )); then\n"
    "        k=$spec[${#pos}+1]\n"
    "    elif (( ${#spec} )) && [[ $spec[-1] == *.. ]]; then\n"
    "        k=$spec[-1]\n"
    "    fi\n"
    "    k=${k%..}\n"
    "    case $k in\n"
    "    @name) _gpumux_workloads ;;\n"
    "    -|'') _message -e arguments argument ;;\n"
    "    *) _wanted values expl value compadd -- ${(s:|:)k} ;;\n"
    "    esac\n"
    "}\n"
    "\n"
    "_gpumux \"$@\"\n";

static void zsh(FILE *out)
{
    fprintf(out, "#compdef gpumux\n# zsh completion for gpumux(1): verbs, their options and "
                 "values, subcommands and workload\n# names. Generated by "
                 "tools/gen_completion.c from the CLI's verb table and help texts.\n"
                 "typeset -gA _gpumux_opts _gpumux_argopts _gpumux_values _gpumux_subs "
                 "_gpumux_args\ntypeset -g _gpumux_verbs\n");
    tables(out, 1);
    fprintf(out, "typeset -ga _gpumux_verb_desc\n_gpumux_verb_desc=(\n");
    for (int i = 1; i < nscopes; i++) {
        char d[256];
        snprintf(d, sizeof(d), "%s:%s", scopes[i].name, scopes[i].summary);
        fputs("    ", out);
        q(out, d);
        fputc('\n', out);
    }
    fprintf(out, "    'help:print the help of a verb'\n)\n");
    for (int i = 0; i < nscopes; i++) {
        fprintf(out, "typeset -ga _gpumux_desc_%s\n_gpumux_desc_%s=(\n", scopes[i].name,
                scopes[i].name);
        for (int j = 0; j < scopes[i].nopts; j++) {
            const struct opt *o = &scopes[i].opts[j];
            const char *names[] = {o->lng, o->shrt};
            for (int k = 0; k < 2; k++) {
                if (names[k][0] == '\0')
                    continue;
                char d[256];
                snprintf(d, sizeof(d), "%s:%s", names[k], o->desc);
                fputs("    ", out);
                q(out, d);
                fputc('\n', out);
            }
        }
        fprintf(out, ")\n");
    }
    fputc('\n', out);
    fputs(zsh_engine, out);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (strcmp(argv[1], "bash") != 0 && strcmp(argv[1], "zsh") != 0)) {
        fprintf(stderr, "usage: gm-gen-completion bash|zsh [OUTPUT]\n");
        return 2;
    }
    load();
    FILE *out = stdout;
    if (argc == 3 && (out = fopen(argv[2], "w")) == NULL) {
        perror(argv[2]);
        return 1;
    }
    if (strcmp(argv[1], "bash") == 0)
        bash(out);
    else
        zsh(out);
    if (ferror(out) || (out != stdout && fclose(out) != 0)) {
        perror("gm-gen-completion");
        return 1;
    }
    return 0;
}
