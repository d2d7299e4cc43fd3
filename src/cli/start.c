#include "cli/cli.h"

const char gm_cli_help_start[] =
    "NAME\n"
    "    gpumux start - start stopped workloads again\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux start NAME [NAME..] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Starts each stopped or exited workload again with its original command, GPU and\n"
    "    limits. Every NAME is tried even when an earlier one fails.\n"
    "\n"
    "OPTIONS\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer: the workload, or an array for several names.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 all started; 1 the daemon refused at least one (no such workload, already running,\n"
    "    GPU no longer available); 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux start nbody1\n";

static void report(struct gm_cli_ctx *ctx, const json_t *w)
{
    gm_cli_report_launched(ctx, w, "started");
}

int gm_cli_start(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    return gm_cli_each_workload(ctx, argc, argv, gm_cli_help_start, "POST", "/start", report);
}
