#include "cli/cli.h"
#include "cli/client.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char gm_cli_help_logs[] =
    "NAME\n"
    "    gpumux logs - print a workload's output\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux logs NAME [-f] [-n|--tail N] [--since DURATION|TIME]\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints what the workload wrote to standard output and standard error, byte for byte,\n"
    "    from the start of its log as kept: the daemon rotates a log at log_max_size and keeps\n"
    "    log_max_files older files, so the oldest output of a long run is gone. The log is text\n"
    "    as the program wrote it, so -o json changes nothing here.\n"
    "\n"
    "OPTIONS\n"
    "    -f, --follow\n"
    "        Keep printing new output (checking every 0.5 s) until the workload is no longer\n"
    "        starting, running or stopping and everything it wrote has been printed, or until\n"
    "        interrupted (Ctrl-C ends with status 0).\n"
    "    -n, --tail N\n"
    "        Only the last N lines of the output so far (then, with -f, what follows);\n"
    "        'all' (the default) prints everything.\n"
    "    --since DURATION|TIME\n"
    "        Only the output written in the last DURATION (10m, 1h30m, 45s, 2d) or since the\n"
    "        UTC TIME (2026-12-03T09:00:00Z), as docker logs --since; with --tail, the last N\n"
    "        lines of that. The log keeps a time mark a second, so up to a second of output\n"
    "        before the moment may come too.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 no such workload, or the daemon failed the request; 2 usage error or\n"
    "    gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux logs nbody1\n"
    "    gpumux logs -f train | grep loss\n"
    "    gpumux logs --tail 20 nbody1\n"
    "    gpumux logs --since 10m train\n";

/* Where the next answer starts: the offset in the kept log, and the file and the position in
 * it, which stay right when a rotation removes the oldest file. */
struct log_at {
    long long offset, file, pos;
    long long since_ms; /* --since: where the first answer starts, 0 for the beginning */
};

/* Fetch from *at on and write it to sink; *got says whether anything new came. */
static int fetch(struct gm_cli_ctx *ctx, const char *name, struct log_at *at, int *got, FILE *sink)
{
    char *enc = gm_cli_urlencode(name), *path = NULL;
    struct gm_cli_response resp;
    struct gm_error err = {0};
    int n = -1;
    if (enc != NULL && at->file > 0)
        n = asprintf(&path, "/v1/workloads/%s/logs?offset=%lld&file=%lld&pos=%lld", enc, at->offset,
                     at->file, at->pos);
    else if (enc != NULL && at->since_ms > 0 && at->offset == 0)
        n = asprintf(&path, "/v1/workloads/%s/logs?since=%lld", enc, at->since_ms);
    else if (enc != NULL)
        n = asprintf(&path, "/v1/workloads/%s/logs?offset=%lld", enc, at->offset);
    if (n < 0) {
        free(enc);
        gm_err(&err, GM_ENOMEM, "out of memory");
        return gm_cli_fail(ctx, &err);
    }
    free(enc);
    int rc = gm_cli_request(ctx->socket, "GET", path, NULL, GM_CLI_RAW, &resp, &err);
    free(path);
    if (rc < 0) {
        gm_cli_response_free(&resp);
        return gm_cli_fail(ctx, &err);
    }
    fwrite(resp.body, 1, resp.body_len, sink);
    fflush(sink);
    /* Without the header, the bytes received are what moved the offset. */
    long long next = resp.offset >= 0 ? resp.offset : at->offset + (long long)resp.body_len;
    *got = resp.body_len > 0 || (resp.log_file == 0 && next != at->offset);
    at->since_ms = 0; /* the answer says where that was; from there on, offsets */
    at->offset = next;
    at->file = resp.log_file;
    at->pos = resp.log_pos;
    gm_cli_response_free(&resp);
    return GM_CLI_EXIT_OK;
}

/* The output so far, of which only the last `lines` lines are printed. */
static int print_tail(struct gm_cli_ctx *ctx, const char *name, struct log_at *at, long lines)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL) {
        fprintf(ctx->err, "gpumux: out of memory\n");
        return GM_CLI_EXIT_FAIL;
    }
    int rc, got = 1;
    while (got && (rc = fetch(ctx, name, at, &got, mem)) == 0)
        ;
    fclose(mem);
    if (rc == 0 && len > 0) {
        /* From the end, past a final newline, back over `lines` line ends. */
        size_t start = len, seen = 0;
        size_t i = text[len - 1] == '\n' ? len - 1 : len;
        while (i > 0 && seen < (size_t)lines) {
            i--;
            if (text[i] == '\n' && ++seen == (size_t)lines) {
                start = i + 1;
                break;
            }
            start = i;
        }
        if (lines == 0)
            start = len;
        fwrite(text + start, 1, len - start, ctx->out);
        fflush(ctx->out);
    }
    free(text);
    return rc;
}

int gm_cli_logs(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"tail", required_argument, NULL, 'n'},
        {"since", required_argument, NULL, 's'},
        GM_CLI_COMMON_LONG,
        {0, 0, 0, 0},
    };
    int c, rc, follow = 0;
    long tail = -1;
    long long since = 0;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT "fn:", longopts, NULL)) != -1) {
        if (c == 'f') {
            follow = 1;
        } else if (c == 's') {
            if (gm_cli_parse_since_ms(optarg, &since) < 0 || since <= 0)
                return gm_cli_usage(ctx,
                                    "--since '%s': expected a duration (10m, 1h30m, 45s) or a "
                                    "UTC time (2026-12-03T09:00:00Z)",
                                    optarg);
        } else if (c == 'n') {
            char *end;
            if (strcmp(optarg, "all") == 0) {
                tail = -1;
                continue;
            }
            tail = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || tail < 0)
                return gm_cli_usage(ctx, "--tail: '%s' is not a number of lines (or all)", optarg);
        } else if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_logs)) >= 0) {
            return rc;
        }
    }
    if (optind >= argc)
        return gm_cli_usage(ctx, "missing workload NAME");
    if (optind + 1 < argc)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind + 1]);
    const char *name = argv[optind];
    struct log_at at = {0, 0, 0, since};
    int got = 0, ended = 0;
    if (follow)
        gm_cli_catch_sigint();
    if (tail >= 0) {
        if ((rc = print_tail(ctx, name, &at, tail)) != 0 || !follow)
            return rc;
    }
    for (;;) {
        if ((rc = fetch(ctx, name, &at, &got, ctx->out)) != 0)
            return rc;
        if (gm_cli_interrupted())
            return GM_CLI_EXIT_OK;
        if (!follow) {
            if (got)
                continue; /* an answer holds at most one file, and at most 1 MiB of it */
            return GM_CLI_EXIT_OK;
        }
        if (got)
            continue; /* drain before looking at the state */
        if (ended)
            return GM_CLI_EXIT_OK;
        json_t *w = NULL;
        char *path = gm_cli_path("/v1/workloads/", name, NULL);
        rc = gm_cli_call(ctx, "GET", path, NULL, &w);
        free(path);
        if (rc != 0)
            return rc;
        /* The workload may write its last words between our fetch and this look at its
         * state, so one more fetch follows before leaving. */
        ended = !gm_cli_state_live(gm_cli_jstr(w, "state", "exited"));
        json_decref(w);
        if (!ended && gm_cli_sleep_ms(500))
            return GM_CLI_EXIT_OK;
    }
}
