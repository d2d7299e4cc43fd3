/* gpumux stop and gpumux restart: both stop a workload and wait until its processes are gone,
 * as docker stop does, so that a start right after them finds it stopped. */
#include "cli/cli.h"
#include "cli/client.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char gm_cli_help_stop[] =
    "NAME\n"
    "    gpumux stop - stop workloads\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux stop NAME [NAME..] [-t SECONDS] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks the daemon to stop each workload, then waits until it has stopped: its\n"
    "    processes get SIGTERM, then SIGKILL after the grace period (-t, else the daemon's\n"
    "    stop_timeout). A stopped workload keeps its settings and log and is not restarted,\n"
    "    whatever its restart policy, until 'gpumux start NAME'. Every NAME is tried even when\n"
    "    an earlier one fails.\n"
    "\n"
    "OPTIONS\n"
    "    -t, --time SECONDS\n"
    "        Seconds from SIGTERM to SIGKILL, 0..3600 (0: SIGKILL at once).\n"
    "    -o, --output table|json\n"
    "        json prints the workload once stopped, or an array for several names.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 all stopped; 1 the daemon refused at least one (no such workload, not permitted)\n"
    "    or one was still stopping when the wait ended; 2 usage error or gpumuxd\n"
    "    unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux stop nbody1\n"
    "    gpumux stop -t 30 nbody1 nbody2\n";

const char gm_cli_help_restart[] =
    "NAME\n"
    "    gpumux restart - stop workloads and start them again\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux restart NAME [NAME..] [-t SECONDS] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Stops each running workload as 'gpumux stop' does (waiting until it has stopped),\n"
    "    then starts it again with its command, GPU and limits; a workload that is not\n"
    "    running is just started. Every NAME is tried even when an earlier one fails.\n"
    "\n"
    "OPTIONS\n"
    "    -t, --time SECONDS\n"
    "        Seconds from SIGTERM to SIGKILL when stopping, 0..3600.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer to the start, or an array for several names.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 all restarted; 1 the daemon refused at least one (no such workload, not\n"
    "    permitted, its GPU no longer available); 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux restart nbody1\n";

/* How long past the grace period a stop may take before the wait gives up: the daemon's poll,
 * the monitor's report. */
#define STOP_WAIT_EXTRA_MS 10000
/* The grace period assumed when -t is not given (the daemon's stop_timeout is its own). */
#define STOP_WAIT_DEFAULT_MS 60000
#define STOP_POLL_MS         100

static int still_up(const json_t *w)
{
    return gm_cli_state_live(gm_cli_jstr(w, "state", ""));
}

/* Stops name and waits until it has. *answer: the workload as last seen. Returns the exit
 * status. */
static int stop_one(struct gm_cli_ctx *ctx, const char *name, long time_s, json_t **answer)
{
    json_t *body = json_object();
    if (time_s >= 0)
        json_object_set_new(body, "time", json_integer(time_s));
    char *path = gm_cli_path("/v1/workloads/", name, "/stop");
    int rc = gm_cli_call(ctx, "POST", path, body, answer);
    free(path);
    json_decref(body);
    if (rc != 0)
        return rc;
    /* A stop the daemon could not record yet (its state disk is full) is acted on but not
     * waited for: the record, and so the state, changes only once the disk takes it. */
    if (json_is_string(json_object_get(*answer, "pending")))
        return 0;
    long waited = 0,
         limit = (time_s >= 0 ? time_s * 1000 : STOP_WAIT_DEFAULT_MS) + STOP_WAIT_EXTRA_MS;
    path = gm_cli_path("/v1/workloads/", name, "");
    while (still_up(*answer) && waited < limit) {
        if (gm_cli_sleep_ms(STOP_POLL_MS) != 0)
            break;
        waited += STOP_POLL_MS;
        struct gm_cli_response resp;
        struct gm_error err = {0};
        int got = gm_cli_request(ctx->socket, "GET", path, NULL, 0, &resp, &err);
        if (got < 0 && resp.status == 404 &&
            json_is_true(json_object_get(*answer, "auto_remove"))) {
            /* run --rm: its end deleted it. */
            json_object_set_new(*answer, "state", json_string("deleted"));
            gm_cli_response_free(&resp);
            break;
        }
        if (got < 0) {
            gm_cli_response_free(&resp);
            rc = gm_cli_fail(ctx, &err);
            break;
        }
        json_decref(*answer);
        *answer = resp.json;
        resp.json = NULL;
        gm_cli_response_free(&resp);
    }
    free(path);
    if (rc == 0 && still_up(*answer)) {
        fprintf(ctx->err, "gpumux: workload %s is still %s after %.1f s\n", name,
                gm_cli_jstr(*answer, "state", "stopping"), (double)waited / 1000.0);
        rc = GM_CLI_EXIT_FAIL;
    }
    return rc;
}

static void print_stopped(struct gm_cli_ctx *ctx, const json_t *w)
{
    const char *state = gm_cli_jstr(w, "state", "stopping");
    int done = strcmp(state, "stopped") == 0 || strcmp(state, "exited") == 0;
    if (strcmp(state, "deleted") == 0)
        state = "stopped and deleted (it was started with --rm)";
    fprintf(ctx->out, "%s %s\n", gm_cli_jstr(w, "name", "?"), done ? "stopped" : state);
    /* A stop made while the state disk is full says that its record is still to come. */
    fputs(gm_cli_jstr(w, "messages", ""), ctx->out);
}

static void print_restarted(struct gm_cli_ctx *ctx, const json_t *w)
{
    gm_cli_report_launched(ctx, w, "restarted");
}

struct stop_arg {
    long time_s;
    int restart;
};

static int act(struct gm_cli_ctx *ctx, const char *name, void *arg, json_t **answer)
{
    const struct stop_arg *a = arg;
    if (a->restart) {
        /* Its stop would delete it: refused before anything is done. */
        char *path = gm_cli_path("/v1/workloads/", name, "");
        int rc = gm_cli_call(ctx, "GET", path, NULL, answer);
        free(path);
        if (rc != 0)
            return rc;
        if (json_is_true(json_object_get(*answer, "auto_remove"))) {
            fprintf(ctx->err,
                    "gpumux: workload %s was started with --rm: stopping it deletes it, so it "
                    "cannot be restarted (start a new one with gpumux run)\n",
                    name);
            return GM_CLI_EXIT_FAIL;
        }
        json_decref(*answer);
        *answer = NULL;
    }
    int rc = stop_one(ctx, name, a->time_s, answer);
    if (rc == 0 && a->restart) {
        json_decref(*answer);
        *answer = NULL;
        char *path = gm_cli_path("/v1/workloads/", name, "/start");
        rc = gm_cli_call(ctx, "POST", path, NULL, answer);
        free(path);
    }
    return rc;
}

static int stop_or_restart(struct gm_cli_ctx *ctx, int argc, char **argv, const char *help,
                           int restart)
{
    static const struct option longopts[] = {
        {"time", required_argument, NULL, 't'}, GM_CLI_COMMON_LONG, {0, 0, 0, 0}};
    struct stop_arg a = {-1, restart};
    int c, rc;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT "t:", longopts, NULL)) != -1) {
        if (c == 't') {
            char *end;
            a.time_s = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || a.time_s < 0 || a.time_s > 3600)
                return gm_cli_usage(ctx, "--time: '%s' is not a number of seconds 0..3600", optarg);
            continue;
        }
        if ((rc = gm_cli_common_option(ctx, c, argv, help)) >= 0)
            return rc;
    }
    return gm_cli_each_name(ctx, optind, argc, argv, act, &a,
                            restart ? print_restarted : print_stopped);
}

int gm_cli_stop(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    return stop_or_restart(ctx, argc, argv, gm_cli_help_stop, 0);
}

int gm_cli_restart(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    return stop_or_restart(ctx, argc, argv, gm_cli_help_restart, 1);
}
