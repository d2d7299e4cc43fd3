#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>

int gm_cli_each_name(struct gm_cli_ctx *ctx, int first, int argc, char **argv,
                     int (*act)(struct gm_cli_ctx *ctx, const char *name, void *arg,
                                json_t **answer),
                     void *arg, void (*report)(struct gm_cli_ctx *ctx, const json_t *answer))
{
    if (first >= argc)
        return gm_cli_usage(ctx, "missing workload NAME");
    int several = argc - first > 1, status = GM_CLI_EXIT_OK;
    /* Several answers print as one JSON array, so that the output stays one document. */
    json_t *all = several && ctx->output == GM_CLI_OUT_JSON ? json_array() : NULL;
    for (int i = first; i < argc; i++) {
        json_t *answer = NULL;
        int rc = act(ctx, argv[i], arg, &answer);
        if (rc == GM_CLI_EXIT_USAGE || rc == GM_CLI_EXIT_TIMEOUT) {
            json_decref(answer);
            status = rc; /* unreachable or not answering: the others would fail the same way */
            break;
        }
        if (rc != 0) {
            json_decref(answer);
            status = rc;
            continue;
        }
        if (all != NULL)
            json_array_append(all, answer);
        else if (ctx->output == GM_CLI_OUT_JSON)
            gm_cli_print_json(ctx, answer);
        else
            report(ctx, answer);
        json_decref(answer);
    }
    if (all != NULL && json_array_size(all) > 0)
        gm_cli_print_json(ctx, all);
    json_decref(all);
    return status;
}

void gm_cli_report_launched(struct gm_cli_ctx *ctx, const json_t *w, const char *what)
{
    char pid[24];
    const char *name = gm_cli_jstr(w, "name", "?");
    if (gm_cli_jint(w, "pid", NULL, pid, sizeof(pid)) != NULL)
        fprintf(ctx->out, "%s %s as pid %s\n", name, what, pid);
    else
        fprintf(ctx->out, "%s %s\n", name, gm_cli_jstr(w, "state", "starting"));
}

struct call_arg {
    const char *method, *suffix;
};

static int call_one(struct gm_cli_ctx *ctx, const char *name, void *arg, json_t **answer)
{
    const struct call_arg *a = arg;
    char *path = gm_cli_path("/v1/workloads/", name, a->suffix);
    int rc = gm_cli_call(ctx, a->method, path, NULL, answer);
    free(path);
    return rc;
}

int gm_cli_each_workload(struct gm_cli_ctx *ctx, int argc, char **argv, const char *help,
                         const char *method, const char *suffix,
                         void (*report)(struct gm_cli_ctx *ctx, const json_t *answer))
{
    static const struct option longopts[] = {GM_CLI_COMMON_LONG, {0, 0, 0, 0}};
    int c, rc;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT, longopts, NULL)) != -1)
        if ((rc = gm_cli_common_option(ctx, c, argv, help)) >= 0)
            return rc;
    struct call_arg a = {method, suffix};
    return gm_cli_each_name(ctx, optind, argc, argv, call_one, &a, report);
}
