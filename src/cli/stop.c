#include "cli/cli.h"

#include <string.h>

const char gm_cli_help_stop[] =
    "NAME\n"
    "    gpumux stop - stop workloads\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux stop NAME [NAME..] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks the daemon to stop each workload: its processes get SIGTERM, then SIGKILL after\n"
    "    the daemon's grace period. A stopped workload keeps its settings and log and is not\n"
    "    restarted, whatever its restart policy, until 'gpumux start NAME'. Every NAME is tried\n"
    "    even when an earlier one fails.\n"
    "\n"
    "OPTIONS\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer: the workload, or an array for several names.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 all stopped; 1 the daemon refused at least one (no such workload, not permitted);\n"
    "    2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux stop nbody1\n"
    "    gpumux stop nbody1 nbody2\n";

static void report(struct gm_cli_ctx *ctx, const json_t *w)
{
    const char *state = gm_cli_jstr(w, "state", "stopping");
    int done = strcmp(state, "stopped") == 0 || strcmp(state, "exited") == 0;
    fprintf(ctx->out, "%s %s\n", gm_cli_jstr(w, "name", "?"), done ? "stopped" : state);
    /* A stop made while the state disk is full says that its record is still to come. */
    fputs(gm_cli_jstr(w, "messages", ""), ctx->out);
}

int gm_cli_stop(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    return gm_cli_each_workload(ctx, argc, argv, gm_cli_help_stop, "POST", "/stop", report);
}
