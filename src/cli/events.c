#include "cli/cli.h"
#include "common/parse.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char gm_cli_help_events[] =
    "NAME\n"
    "    gpumux events - show the daemon's event log\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux events [-f] [--since ID|DURATION|TIME] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints what the daemon did and saw, oldest first: workloads started and ended, GPU\n"
    "    modes changed, VMs attached, driver faults. Columns: TIME (UTC), LEVEL, OBJECT\n"
    "    (\"workload/a\", \"gpu/0\", \"vm/vm1\") and MESSAGE.\n"
    "\n"
    "OPTIONS\n"
    "    -f, --follow\n"
    "        Keep printing new events (checking every 0.5 s) until interrupted (Ctrl-C ends\n"
    "        with status 0). With -o json each event is printed as one JSON line.\n"
    "    --since ID|DURATION|TIME\n"
    "        Only events with an id greater than ID (see -o json for ids), or, as docker\n"
    "        events takes it, those of the last DURATION (10m, 2h, 1h30m, 45s, 1d) or since\n"
    "        TIME (2026-12-03T09:00:00Z, UTC).\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer: {\"events\": [...]}.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the daemon failed the request; 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux events\n"
    "    gpumux events -f --since 120\n"
    "    gpumux events --since 10m\n";

#define FOLLOW_FMT "%-24s  %-5s  %-20s  %s\n"

/* Drops the events older than cutoff (their "time"). */
static void drop_before(json_t *events, time_t cutoff)
{
    for (size_t i = json_array_size(events); i-- > 0;) {
        time_t t;
        if (gm_cli_parse_time(gm_cli_jstr(json_array_get(events, i), "time", NULL), &t) == 0 &&
            t < cutoff)
            json_array_remove(events, i);
    }
}

/* Fetch the events after *since, append them to `into` and move *since to the last id. */
static int fetch(struct gm_cli_ctx *ctx, long long *since, json_t *into, size_t *count)
{
    char path[64];
    json_t *answer = NULL;
    snprintf(path, sizeof(path), "/v1/events?since=%lld", *since);
    int rc = gm_cli_call(ctx, "GET", path, NULL, &answer);
    if (rc != 0)
        return rc;
    const json_t *events = json_object_get(answer, "events"), *e;
    if (!json_is_array(events)) {
        json_decref(answer);
        fprintf(ctx->err, "gpumux: malformed answer from gpumuxd: no event list (\"events\")\n");
        return GM_CLI_EXIT_FAIL;
    }
    size_t i;
    *count = 0;
    json_array_foreach(events, i, e)
    {
        const json_t *id = json_object_get(e, "id");
        /* An id that does not move forward would make -f print the same events forever. */
        if (!json_is_integer(id) || json_integer_value(id) <= *since)
            continue;
        *since = json_integer_value(id);
        json_array_append(into, (json_t *)e);
        (*count)++;
    }
    json_decref(answer);
    return GM_CLI_EXIT_OK;
}

static void print_follow(struct gm_cli_ctx *ctx, const json_t *events)
{
    size_t i;
    const json_t *e;
    json_array_foreach(events, i, e)
    {
        if (ctx->output == GM_CLI_OUT_JSON) {
            json_dumpf(e, ctx->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
            fputc('\n', ctx->out);
        } else {
            fprintf(ctx->out, FOLLOW_FMT, gm_cli_jstr(e, "time", "-"), gm_cli_jstr(e, "level", "-"),
                    gm_cli_jstr(e, "object", "-"), gm_cli_jstr(e, "message", ""));
        }
    }
    fflush(ctx->out);
}

int gm_cli_events(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"since", required_argument, NULL, 's'},
        GM_CLI_COMMON_LONG,
        {0, 0, 0, 0},
    };
    int c, rc, follow = 0;
    long long since = 0;
    time_t cutoff = 0;
    struct gm_error err = {0};
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT "f", longopts, NULL)) != -1) {
        if (c == 'f') {
            follow = 1;
        } else if (c == 's') {
            if (optarg[0] != '\0' && strspn(optarg, "0123456789") == strlen(optarg)) {
                if (gm_parse_int(optarg, 0, (long long)1 << 53, &since, "--since", &err) < 0)
                    return gm_cli_usage(ctx, "%s", err.msg);
            } else if (gm_cli_parse_since(optarg, &cutoff) < 0) {
                return gm_cli_usage(ctx,
                                    "--since '%s': expected an event id, a duration (10m, 1h30m) "
                                    "or a UTC time (2026-12-03T09:00:00Z)",
                                    optarg);
            }
        } else if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_events)) >= 0) {
            return rc;
        }
    }
    if (optind < argc)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind]);

    json_t *all = json_array();
    size_t n;
    /* The daemon may answer a page at a time; ask until an answer brings nothing new. */
    do {
        if ((rc = fetch(ctx, &since, all, &n)) != 0)
            goto out;
    } while (n > 0);
    if (cutoff > 0)
        drop_before(all, cutoff);

    if (follow) {
        static const char *const head[] = {"TIME", "LEVEL", "OBJECT", "MESSAGE"};
        gm_cli_catch_sigint();
        if (ctx->output == GM_CLI_OUT_TABLE)
            fprintf(ctx->out, FOLLOW_FMT, head[0], head[1], head[2], head[3]);
        print_follow(ctx, all);
        while (!gm_cli_sleep_ms(500)) {
            json_t *fresh = json_array();
            rc = fetch(ctx, &since, fresh, &n);
            if (rc == 0)
                print_follow(ctx, fresh);
            json_decref(fresh);
            if (rc != 0)
                goto out;
        }
        rc = GM_CLI_EXIT_OK;
    } else if (ctx->output == GM_CLI_OUT_JSON) {
        json_t *answer = json_pack("{sO}", "events", all);
        gm_cli_print_json(ctx, answer);
        json_decref(answer);
    } else {
        static const char *const head[] = {"TIME", "LEVEL", "OBJECT", "MESSAGE"};
        struct gm_cli_table *t = gm_cli_table_new(4, head);
        size_t i;
        const json_t *e;
        json_array_foreach(all, i, e)
        {
            const char *row[] = {gm_cli_jstr(e, "time", "-"), gm_cli_jstr(e, "level", "-"),
                                 gm_cli_jstr(e, "object", "-"), gm_cli_jstr(e, "message", "")};
            gm_cli_table_add(t, row);
        }
        gm_cli_table_print(t, ctx->out);
        gm_cli_table_free(t);
    }
out:
    json_decref(all);
    return rc;
}
