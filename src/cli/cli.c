#include "cli/cli.h"
#include "cli/client.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static const char help_head[] =
    "NAME\n"
    "    gpumux - share the NVIDIA GPUs of one machine between workloads\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux [--socket PATH] [--timeout SECONDS] [-o table|json] VERB [OPTIONS] [ARGS]\n"
    "    gpumux help VERB\n"
    "    gpumux --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    gpumux is the command line of gpumuxd, the daemon that shares this node's GPUs between\n"
    "    time-sliced and MPS workloads and hands whole GPUs to virtual machines. Every verb is\n"
    "    one or a few requests to gpumuxd over its unix socket. Anyone may look, but only root\n"
    "    and a workload's owner see its environment values and its log. Running workloads needs\n"
    "    root or membership of the gpumux group; a workload runs as the user who created it, and\n"
    "    only its owner or root may stop, start, change or delete it. GPU modes, MPS and VM\n"
    "    claims need root or the daemon's admin_group.\n"
    "\n"
    "VERBS\n";

static const char help_tail[] =
    "\n"
    "    Run 'gpumux help VERB' or 'gpumux VERB --help' for a verb's options.\n"
    "\n"
    "OPTIONS\n"
    "    --socket PATH\n"
    "        The daemon's socket. Default: $GPUMUX_SOCKET if set and not empty, else\n"
    "        " GM_CLI_DEFAULT_SOCKET ".\n"
    "    --timeout SECONDS\n"
    "        How long one request to gpumuxd may take, connecting included (decimals allowed;\n"
    "        0: no limit). Default: $GPUMUX_TIMEOUT if set and not empty, else 30. A delete\n"
    "        waits for the workload to stop, up to the daemon's stop_timeout.\n"
    "    -o, --output table|json\n"
    "        table (the default) prints for people; json prints the daemon's answer, indented.\n"
    "        Every verb also takes -o and --socket after its name.\n"
    "    -h, --help\n"
    "        Print this help and exit.\n"
    "    -V, --version\n"
    "        Print the client's version and exit.\n"
    "\n"
    "ENVIRONMENT\n"
    "    GPUMUX_SOCKET   the daemon's socket when --socket is not given.\n"
    "    GPUMUX_TIMEOUT  seconds, when --timeout is not given.\n"
    "\n"
    "EXIT STATUS\n"
    "    0   success.\n"
    "    1   gpumuxd refused the request or the operation failed; the reason is printed as\n"
    "        'gpumux: MESSAGE' on standard error.\n"
    "    2   usage error (unknown verb, option or field, missing argument), or gpumuxd cannot\n"
    "        be reached: 'gpumux: cannot reach gpumuxd at PATH: REASON', where REASON says\n"
    "        whether there is no socket, a socket nobody listens on (a stopped daemon), a\n"
    "        directory or a file in its place, or a socket closed to your user, and what to\n"
    "        do about it.\n"
    "    3   gpumuxd did not answer within the timeout: 'gpumux: the daemon at PATH did not\n"
    "        answer within 30 s (stopped or overloaded?)'; for a change, a request it read\n"
    "        may still be carried out when it resumes: check with 'gpumux ps'.\n"
    "    6   smi only: no GPU to show ('No devices were found'), nvidia-smi's status.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux smi\n"
    "    gpumux gpu mode 0 mps\n"
    "    gpumux run nbody1 --gpu 0 --compute 50 --memory 2G -- /tmp/nbody -benchmark\n"
    "    gpumux ps\n"
    "    gpumux --socket /tmp/gm/gpumux.sock -o json gpu ls\n";

struct verb {
    const char *name;
    int (*run)(struct gm_cli_ctx *ctx, int argc, char **argv);
    const char *summary;
    const char *help;
};

static const struct verb verbs[] = {
#define GM_CLI_X(n, summary) {#n, gm_cli_##n, summary, gm_cli_help_##n},
    GM_CLI_VERBS(GM_CLI_X)
#undef GM_CLI_X
};

/* Optimal string alignment distance (an adjacent transposition counts one), case-blind; words
 * longer than 63 bytes are never close. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

const char *gm_cli_suggest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word), best = SIZE_MAX, limit = len <= 3 ? 1 : len <= 7 ? 2 : 3;
    const char *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t dd = distance(word, cands[i]);
        /* A start of the word ("--mem" for "--memory") is as good as one typo. */
        if (len >= 3 && strncasecmp(cands[i], word, len) == 0 && dd > 1)
            dd = 1;
        if (dd < best) {
            best = dd;
            pick = cands[i];
        }
    }
    return best <= limit ? pick : NULL;
}

/* The long option of help's text closest to word ("--memroy"), in buf; NULL when none is. */
static const char *suggest_option(const char *word, const char *help, char *buf, size_t len)
{
    const char *opts[64];
    char store[64][32];
    size_t n = 0;
    for (const char *p = help; p != NULL && (p = strstr(p, "--")) != NULL && n < 64; p += 2) {
        if (p > help && p[-1] != ' ' && p[-1] != '[' && p[-1] != '(' && p[-1] != '\'')
            continue;
        size_t l = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");
        if (l <= 3 || l >= sizeof(store[0]))
            continue;
        memcpy(store[n], p, l);
        store[n][l] = '\0';
        opts[n] = store[n];
        n++;
    }
    const char *s = gm_cli_suggest(word, opts, n);
    if (s == NULL || strcmp(s, word) == 0)
        return NULL;
    snprintf(buf, len, "%s", s);
    return buf;
}

int gm_cli_not_a_subcommand(struct gm_cli_ctx *ctx, const char *what, const char *word,
                            const char *const *subs, size_t n)
{
    char list[128] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", subs[i]);
    const char *s = gm_cli_suggest(word, subs, n);
    if (s != NULL)
        return gm_cli_usage(ctx, "'%s' is not %s subcommand (%s); did you mean '%s'?", word, what,
                            list, s);
    return gm_cli_usage(ctx, "'%s' is not %s subcommand (%s)", word, what, list);
}

/* "'stpo' is not a gpumux verb", and the verb it is most likely meant to be. */
static int not_a_verb(struct gm_cli_ctx *ctx, const char *name)
{
    const char *names[sizeof(verbs) / sizeof(verbs[0]) + 1];
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        names[i] = verbs[i].name;
    names[sizeof(verbs) / sizeof(verbs[0])] = "help";
    const char *s = gm_cli_suggest(name, names, sizeof(names) / sizeof(names[0]));
    if (s != NULL)
        return gm_cli_usage(ctx, "'%s' is not a gpumux verb; did you mean '%s'?", name, s);
    return gm_cli_usage(ctx, "'%s' is not a gpumux verb", name);
}

static const struct verb *find_verb(const char *name)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
    return NULL;
}

static void print_help(FILE *f)
{
    fputs(help_head, f);
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(f, "    %-9s %s\n", verbs[i].name, verbs[i].summary);
    fputs(help_tail, f);
}

/* --timeout SECONDS (or $GPUMUX_TIMEOUT, named by what): 0..86400, decimals allowed. Returns -1
 * when parsing goes on, else the exit status. */
static int parse_timeout(struct gm_cli_ctx *ctx, const char *what, const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n > 0 && s[n] == '.')
        n += 1 + strspn(s + n + 1, "0123456789");
    char *end;
    double v = n > 0 && s[n] == '\0' && n < 32 ? strtod(s, &end) : -1;
    if (v < 0 || v > 86400)
        return gm_cli_usage(ctx, "%s '%s': expected seconds from 0 (no limit) to 86400", what, s);
    long ms = (long)(v * 1000 + 0.5);
    gm_cli_set_timeout(v > 0 && ms == 0 ? 1 : ms);
    return -1;
}

static int parse_output(struct gm_cli_ctx *ctx, const char *s)
{
    if (strcmp(s, "table") == 0)
        ctx->output = GM_CLI_OUT_TABLE;
    else if (strcmp(s, "json") == 0)
        ctx->output = GM_CLI_OUT_JSON;
    else
        return gm_cli_usage(ctx, "-o '%s': expected table or json", s);
    return -1;
}

/* `gpumux help [VERB]` */
static int help_verb(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2) {
        print_help(ctx->out);
        return GM_CLI_EXIT_OK;
    }
    const struct verb *v = find_verb(argv[1]);
    if (v == NULL)
        return not_a_verb(ctx, argv[1]);
    fputs(v->help, ctx->out);
    return GM_CLI_EXIT_OK;
}

int gm_cli_main(int argc, char **argv, FILE *out, FILE *err)
{
    struct gm_cli_ctx ctx = {.output = GM_CLI_OUT_TABLE, .out = out, .err = err};
    const char *socket = NULL;
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 'S'}, {"timeout", required_argument, NULL, 'T'},
        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {0, 0, 0, 0},
    };
    int c, rc;
    const char *tenv = getenv(GM_CLI_TIMEOUT_ENV);
    gm_cli_set_timeout(GM_CLI_DEFAULT_TIMEOUT_MS);
    if (tenv != NULL && tenv[0] != '\0' &&
        (rc = parse_timeout(&ctx, "$" GM_CLI_TIMEOUT_ENV, tenv)) >= 0)
        return rc;
    optind = 0; /* GNU getopt: start over, so that tests can call this more than once */
    opterr = 0;
    /* "+": stop at the verb; what follows belongs to it. */
    while ((c = getopt_long(argc, argv, "+:o:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'S':
            if (optarg[0] == '\0')
                return gm_cli_usage(&ctx, "--socket: the path is empty");
            socket = optarg;
            break;
        case 'T':
            if ((rc = parse_timeout(&ctx, "--timeout", optarg)) >= 0)
                return rc;
            break;
        case 'V':
            fprintf(out, "gpumux version %s\n", GM_VERSION);
            return GM_CLI_EXIT_OK;
        case 'o':
            if ((rc = parse_output(&ctx, optarg)) >= 0)
                return rc;
            break;
        case 'h':
            print_help(out);
            return GM_CLI_EXIT_OK;
        default:
            if ((rc = gm_cli_common_option(&ctx, c, argv, NULL)) >= 0)
                return rc;
        }
    }
    if (socket == NULL) {
        const char *env = getenv(GM_CLI_SOCKET_ENV);
        socket = env != NULL && env[0] != '\0' ? env : GM_CLI_DEFAULT_SOCKET;
    }
    ctx.socket = socket;
    if (optind >= argc) {
        print_help(err);
        return GM_CLI_EXIT_USAGE;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0)
        return help_verb(&ctx, argc - optind, argv + optind);
    const struct verb *v = find_verb(name);
    if (v == NULL)
        return not_a_verb(&ctx, name);
    ctx.verb = v->name;
    int first = optind;
    optind = 0; /* the verb parses its own options from its argv[1] on */
    return v->run(&ctx, argc - first, argv + first);
}

int gm_cli_common_option(struct gm_cli_ctx *ctx, int c, char **argv, const char *help)
{
    /* With opterr off getopt leaves the offending word in argv[optind - 1]; a long option is
     * named from there, a short one (perhaps inside a cluster such as -ax) from optopt. */
    const char *word = optind > 0 ? argv[optind - 1] : "";
    char name[64];
    if (word != NULL && strncmp(word, "--", 2) == 0)
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(word, "="), word);
    else
        snprintf(name, sizeof(name), "-%c", optopt ? optopt : '?');
    switch (c) {
    case 'o':
        return parse_output(ctx, optarg);
    case 'S':
        if (optarg[0] == '\0')
            return gm_cli_usage(ctx, "--socket: the path is empty");
        ctx->socket = optarg;
        return -1;
    case 'T':
        return parse_timeout(ctx, "--timeout", optarg);
    case 'h':
        if (help != NULL)
            fputs(help, ctx->out);
        return GM_CLI_EXIT_OK;
    case ':':
        return gm_cli_usage(ctx, "option '%s' needs a value", name);
    case '?':
        if (word != NULL && strncmp(word, "--", 2) == 0 && strchr(word, '=') != NULL && optopt != 0)
            return gm_cli_usage(ctx, "option '%s' takes no value", name);
        if (strncmp(name, "--", 2) == 0) {
            char buf[32];
            const char *s = suggest_option(name, help != NULL ? help : help_head, buf, sizeof(buf));
            if (s != NULL)
                return gm_cli_usage(ctx, "unknown option '%s'; did you mean '%s'?", name, s);
        }
        return gm_cli_usage(ctx, "unknown option '%s'", name);
    default:
        return gm_cli_usage(ctx, "unhandled option '%s'", name);
    }
}

int gm_cli_usage(struct gm_cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gpumux: ", ctx->err);
    vfprintf(ctx->err, fmt, ap);
    va_end(ap);
    if (ctx->verb != NULL)
        fprintf(ctx->err, "\nTry 'gpumux %s --help' for more information.\n", ctx->verb);
    else
        fputs("\nTry 'gpumux --help' for more information.\n", ctx->err);
    return GM_CLI_EXIT_USAGE;
}

int gm_cli_fail(struct gm_cli_ctx *ctx, const struct gm_error *err)
{
    fprintf(ctx->err, "gpumux: %s\n", err->msg);
    if (err->code == GM_ETIMEDOUT)
        return GM_CLI_EXIT_TIMEOUT;
    return err->code == GM_EUNREACHABLE ? GM_CLI_EXIT_USAGE : GM_CLI_EXIT_FAIL;
}

int gm_cli_call(struct gm_cli_ctx *ctx, const char *method, const char *path, const json_t *body,
                json_t **answer)
{
    struct gm_cli_response resp;
    struct gm_error err = {0};
    if (answer != NULL)
        *answer = NULL;
    if (path == NULL) {
        gm_err(&err, GM_ENOMEM, "out of memory");
        return gm_cli_fail(ctx, &err);
    }
    int rc = gm_cli_request(ctx->socket, method, path, body, 0, &resp, &err);
    if (rc < 0) {
        gm_cli_response_free(&resp);
        return gm_cli_fail(ctx, &err);
    }
    if (answer != NULL) {
        *answer = resp.json;
        resp.json = NULL;
    }
    gm_cli_response_free(&resp);
    return GM_CLI_EXIT_OK;
}

char *gm_cli_path(const char *prefix, const char *name, const char *suffix)
{
    char *enc = gm_cli_urlencode(name), *p = NULL;
    if (enc != NULL && asprintf(&p, "%s%s%s", prefix, enc, suffix ? suffix : "") < 0)
        p = NULL;
    free(enc);
    return p;
}

void gm_cli_print_json(struct gm_cli_ctx *ctx, const json_t *json)
{
    if (json == NULL)
        return;
    json_dumpf(json, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    fputc('\n', ctx->out);
    fflush(ctx->out);
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

void gm_cli_catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a sleeping nanosleep() must wake up at once. */
    sigaction(SIGINT, &sa, NULL);
}

int gm_cli_interrupted(void)
{
    return interrupted;
}

int gm_cli_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return interrupted;
}
