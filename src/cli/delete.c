#include "cli/cli.h"

const char gm_cli_help_delete[] =
    "NAME\n"
    "    gpumux delete - delete workloads\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux delete NAME [NAME..] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Deletes each workload: a running one is stopped first, then its record, limits and\n"
    "    GPU reservation are released. Its log file stays on disk. Every NAME is tried even\n"
    "    when an earlier one fails.\n"
    "\n"
    "OPTIONS\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer: each workload as it was before deletion (an\n"
    "        array for several names).\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 all deleted; 1 the daemon refused at least one (no such workload, not permitted);\n"
    "    2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux delete nbody1 nbody2\n";

static void report(struct gm_cli_ctx *ctx, const json_t *w)
{
    /* A delete made while the state disk is full says what is still to be recorded. */
    const char *pending = gm_cli_jstr(w, "pending", "");
    fprintf(ctx->out, "%s deleted%s\n", gm_cli_jstr(w, "name", "?"),
            pending[0] ? " (its record goes when the state database can be written)" : "");
    fputs(gm_cli_jstr(w, "messages", ""), ctx->out);
}

int gm_cli_delete(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    return gm_cli_each_workload(ctx, argc, argv, gm_cli_help_delete, "DELETE", NULL, report);
}
