#include "cli/cli.h"
#include "common/parse.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char gm_cli_help_ps[] =
    "NAME\n"
    "    gpumux ps - list workloads\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux ps [NAME..] [-a] [-q] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Lists every workload the daemon knows, running or not: a workload that ended stays\n"
    "    until it is deleted (gpumux delete), and seeing why it ended is the point of the list.\n"
    "    With NAMEs, only those (a NAME the daemon does not know is reported and makes the\n"
    "    exit status 1).\n"
    "\n"
    "    NAME      the workload's name\n"
    "    GPU       the GPUs it runs on (\"0\", \"0,1\"), or - for none\n"
    "    MODE      the sharing mode it runs under (its last launch's: shared or mps), which\n"
    "              stays what it was when its GPU's mode changes after it ended; before its\n"
    "              first launch, its GPU's mode\n"
    "    COMPUTE   its compute share, or - when not limited\n"
    "    MEMORY    its GPU memory limit, or - when not limited. For a running workload,\n"
    "              the limit it runs with; one set since that it cannot take while it runs\n"
    "              (an MPS client's compute share, any limit of a workload started\n"
    "              without one) follows: 20% (40% at next start)\n"
    "    STATE     starting, running, stopping, exited or stopped\n"
    "    PID       the process id while it runs\n"
    "    RESTARTS  how often the daemon restarted it\n"
    "    STATUS    as docker ps: \"Up 5 minutes\", \"Exited (1) 3 minutes ago\"\n"
    "\n"
    "OPTIONS\n"
    "    -a, --all\n"
    "        Accepted for docker's sake: all workloads are always listed, since an ended\n"
    "        one and why it ended is what one looks for (docker needs -a to show it).\n"
    "    -q, --quiet\n"
    "        Only the names, one a line (for scripts: gpumux stop $(gpumux ps -q)).\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer to GET /v1/workloads.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the daemon failed the request; 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux ps\n"
    "    gpumux ps -o json\n";

static long long since(const json_t *w, const char *key, time_t now)
{
    time_t t;
    if (gm_cli_parse_time(gm_cli_jstr(w, key, NULL), &t) < 0)
        return -1;
    return (long long)(now - t);
}

static void status(const json_t *w, time_t now, char *buf, size_t len)
{
    const char *state = gm_cli_jstr(w, "state", "?"), *reason = gm_cli_jstr(w, "reason", "");
    char dur[64], code[24];
    long long up = since(w, "started_at", now), down = since(w, "finished_at", now);
    if (strcmp(state, "running") == 0 && up >= 0) {
        gm_cli_format_duration(up, dur, sizeof(dur));
        snprintf(buf, len, "Up %s", dur);
    } else if (strcmp(state, "starting") == 0 || strcmp(state, "stopping") == 0) {
        snprintf(buf, len, "%c%s", state[0] - 'a' + 'A', state + 1);
    } else if (strcmp(state, "exited") == 0 || strcmp(state, "stopped") == 0) {
        char what[64];
        if (gm_cli_jint(w, "exit_code", NULL, code, sizeof(code)) != NULL)
            snprintf(what, sizeof(what), "Exited (%s)", code);
        else if (gm_cli_jint(w, "exit_signal", NULL, code, sizeof(code)) != NULL)
            snprintf(what, sizeof(what), "Killed (signal %s)", code);
        else if (strcmp(state, "stopped") == 0)
            snprintf(what, sizeof(what), "Stopped");
        else
            snprintf(what, sizeof(what), "%s", reason[0] ? reason : "Exited");
        if (down >= 0) {
            gm_cli_format_duration(down, dur, sizeof(dur));
            snprintf(buf, len, "%s %s ago", what, dur);
        } else {
            snprintf(buf, len, "%s", what);
        }
    } else {
        snprintf(buf, len, "%s", reason[0] ? reason : state);
    }
    /* The driver sees it hold more than its limit (the daemon's memory check). */
    const json_t *over = json_object_get(w, "over_memory_limit");
    size_t n = strlen(buf);
    if (json_is_true(over) && n < len)
        snprintf(buf + n, len - n, " (over memory limit)");
}

/* "40%", "1GiB" or "-"; from the workload object or its in_force. */
static void limit_value(const json_t *obj, const char *key, char *buf, size_t len)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        snprintf(buf, len, "-");
    else if (strcmp(key, "compute_pct") == 0)
        snprintf(buf, len, "%lld%%", (long long)json_integer_value(v));
    else
        gm_format_size((uint64_t)json_integer_value(v), buf, len);
}

/* The limit the workload runs with; one recorded that waits for its next start follows:
 * "20% (40% at next start)". */
static void limit_cell(const json_t *w, const char *key, char *buf, size_t len)
{
    const json_t *pending = json_object_get(w, "pending"), *p;
    const json_t *in_force = json_object_get(w, "in_force");
    size_t i;
    int waits = 0;
    json_array_foreach(pending, i, p) waits |=
        json_is_string(p) && strcmp(json_string_value(p), key) == 0;
    if (!waits || !json_is_object(in_force)) {
        limit_value(w, key, buf, len);
        return;
    }
    char now[24], next[24];
    limit_value(in_force, key, now, sizeof(now));
    limit_value(w, key, next, sizeof(next));
    snprintf(buf, len, "%s (%s at next start)", now, next);
}

int gm_cli_ps(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"all", no_argument, NULL, 'a'},
        {"quiet", no_argument, NULL, 'q'},
        GM_CLI_COMMON_LONG,
        {0, 0, 0, 0},
    };
    int c, rc, quiet = 0;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT "aq", longopts, NULL)) != -1) {
        if (c == 'q')
            quiet = 1;
        else if (c != 'a' && (rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_ps)) >= 0)
            return rc;
    }
    json_t *answer = NULL;
    if ((rc = gm_cli_call(ctx, "GET", "/v1/workloads", NULL, &answer)) != 0)
        return rc;
    json_t *list = json_object_get(answer, "workloads");
    if (!json_is_array(list)) {
        json_decref(answer);
        fprintf(ctx->err, "gpumux: malformed answer from gpumuxd: no workload list\n");
        return GM_CLI_EXIT_FAIL;
    }
    /* Names asked for: those only, in the daemon's order; one it does not know is said. */
    int exit_status = GM_CLI_EXIT_OK;
    if (optind < argc) {
        json_t *keep = json_array();
        size_t k;
        json_t *w;
        json_array_foreach(list, k, w)
        {
            for (int a = optind; a < argc; a++)
                if (strcmp(gm_cli_jstr(w, "name", ""), argv[a]) == 0) {
                    json_array_append(keep, w);
                    break;
                }
        }
        for (int a = optind; a < argc; a++) {
            int found = 0;
            json_array_foreach(keep, k, w) found |=
                strcmp(gm_cli_jstr(w, "name", ""), argv[a]) == 0;
            if (!found) {
                fprintf(ctx->err, "gpumux: no workload named %s\n", argv[a]);
                exit_status = GM_CLI_EXIT_FAIL;
            }
        }
        json_object_set_new(answer, "workloads", keep);
        list = keep;
    }
    if (ctx->output == GM_CLI_OUT_JSON) {
        gm_cli_print_json(ctx, answer);
        json_decref(answer);
        return exit_status;
    }
    if (quiet) {
        size_t k;
        json_t *w;
        json_array_foreach(list, k, w) fprintf(ctx->out, "%s\n", gm_cli_jstr(w, "name", "?"));
        json_decref(answer);
        return exit_status;
    }
    static const char *const head[] = {"NAME",  "GPU", "MODE",     "COMPUTE", "MEMORY",
                                       "STATE", "PID", "RESTARTS", "STATUS"};
    struct gm_cli_table *t = gm_cli_table_new(9, head);
    time_t now = time(NULL);
    size_t i;
    const json_t *w;
    json_array_foreach(list, i, w)
    {
        char gpu[64], pct[80], mem[80], pid[24], restarts[24], st[160];
        gm_cli_gpu_list(json_object_get(w, "gpus"), gpu, sizeof(gpu));
        limit_cell(w, "compute_pct", pct, sizeof(pct));
        limit_cell(w, "memory_limit", mem, sizeof(mem));
        status(w, now, st, sizeof(st));
        /* A pid left over from an ended run would point at some unrelated process. */
        const char *state = gm_cli_jstr(w, "state", "?");
        int live = gm_cli_state_live(state);
        /* Ended, and to be started again after the back-off: as docker shows it, with the
         * exit status (128 + the signal for a killed one). */
        char shown[48];
        if (json_is_true(json_object_get(w, "restarting"))) {
            const json_t *ec = json_object_get(w, "exit_code"),
                         *es = json_object_get(w, "exit_signal");
            if (json_is_integer(ec))
                snprintf(shown, sizeof(shown), "restarting (%lld)",
                         (long long)json_integer_value(ec));
            else if (json_is_integer(es))
                snprintf(shown, sizeof(shown), "restarting (%lld)",
                         128 + (long long)json_integer_value(es));
            else
                snprintf(shown, sizeof(shown), "restarting");
            state = shown;
        }
        const char *row[] = {gm_cli_jstr(w, "name", "?"),
                             gpu,
                             gm_cli_jstr(w, "gpu_mode", "-"),
                             pct,
                             mem,
                             state,
                             live ? gm_cli_jint(w, "pid", "-", pid, sizeof(pid)) : "-",
                             gm_cli_jint(w, "restart_count", "0", restarts, sizeof(restarts)),
                             st};
        gm_cli_table_add(t, row);
    }
    gm_cli_table_print(t, ctx->out);
    gm_cli_table_free(t);
    json_decref(answer);
    return exit_status;
}
