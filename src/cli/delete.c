#include "cli/cli.h"

#include <string.h>

const char gm_cli_help_delete[] =
    "NAME\n"
    "    gpumux delete - delete workloads\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux delete NAME [NAME..] [-o table|json]\n"
    "    gpumux delete -f FILE|- [--dry-run] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Deletes each workload: a running one is stopped first, then its record, limits and\n"
    "    GPU reservation are released. Its log file stays on disk. Every NAME is tried even\n"
    "    when an earlier one fails.\n"
    "    With -f, deletes every workload that the objects of the manifest FILE made\n"
    "    (gpumux apply -f), and the objects' records; workloads of other files stay.\n"
    "\n"
    "OPTIONS\n"
    "    -f, --filename FILE\n"
    "        A manifest, as given to gpumux apply; - reads standard input.\n"
    "    --dry-run\n"
    "        With -f: say what would be deleted; delete nothing.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer: each workload as it was before deletion (an\n"
    "        array for several names); with -f {\"messages\": \"...\"}.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 all deleted; 1 the daemon refused at least one (no such workload, not permitted);\n"
    "    2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux delete nbody1 nbody2\n"
    "    gpumux delete -f jobs.yaml\n";

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
    /* -f FILE (or --filename): what a manifest made; else workloads by name. */
    const char *file = NULL;
    int dry = 0, names = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--filename") == 0) && i + 1 < argc)
            file = argv[++i];
        else if (strncmp(argv[i], "--filename=", 11) == 0)
            file = argv[i] + 11;
        else if (strcmp(argv[i], "--dry-run") == 0)
            dry = 1;
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            i++;
        else if (argv[i][0] != '-')
            names++;
    }
    if (file == NULL && !dry)
        return gm_cli_each_workload(ctx, argc, argv, gm_cli_help_delete, "DELETE", NULL, report);
    if (file == NULL)
        return gm_cli_usage(ctx, "--dry-run goes with -f FILE");
    if (names > 0)
        return gm_cli_usage(ctx, "give -f FILE or workload names, not both");
    /* -o and --socket still apply: let the common options have their say. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            if (strcmp(argv[i + 1], "json") == 0)
                ctx->output = GM_CLI_OUT_JSON;
            else if (strcmp(argv[i + 1], "table") != 0)
                return gm_cli_usage(ctx, "-o %s: table or json", argv[i + 1]);
        }
    return gm_cli_apply_file(ctx, file, dry, 1);
}
