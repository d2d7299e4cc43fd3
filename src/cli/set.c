#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char gm_cli_help_set[] =
    "NAME\n"
    "    gpumux set - change a workload's compute and memory limits while it runs\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux set NAME [--compute PCT|none] [--memory SIZE|none] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Records new limits for the workload NAME and, when it runs with the gpumux\n"
    "    interposer (it was started with a limit), applies them through its limits region\n"
    "    within a second, without a restart: the next allocation sees the new memory limit,\n"
    "    the next kernel launch the new compute share. On a GPU in mode mps the compute share\n"
    "    is MPS's active thread percentage, which applies when the workload starts next. A\n"
    "    memory limit must fit beside the limits of the GPU's other workloads. 'none' removes\n"
    "    a limit. A limit that cannot reach the running workload (an MPS client's compute\n"
    "    share, any limit of a workload started without one) is recorded as pending: ps\n"
    "    shows the limit in force and the pending one, \"20% (40% at next start)\", and a\n"
    "    restart puts it in force.\n"
    "\n"
    "OPTIONS\n"
    "    --compute PCT|none\n"
    "        The share of the GPU's compute, 1..100 (percent): 40 or 40%.\n"
    "    --memory SIZE|none\n"
    "        The GPU memory the workload may hold across all its processes, with its unit\n"
    "        (512M, 2G, 2GiB; B for bytes), at least 64MiB.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer: the workload.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 the limits were changed; 1 the daemon refused (no such workload, value out of\n"
    "    range, not enough memory on the GPU); 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux set trainer --compute 40\n"
    "    gpumux set trainer --memory 6G\n"
    "    gpumux set notebook --compute none\n";

int gm_cli_set(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {GM_CLI_COMMON_LONG,
                                             {"compute", required_argument, NULL, 'c'},
                                             {"memory", required_argument, NULL, 'm'},
                                             {0, 0, 0, 0}};
    const char *compute = NULL, *memory = NULL;
    int c, rc;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        if (c == 'c') {
            compute = optarg;
            continue;
        }
        if (c == 'm') {
            memory = optarg;
            continue;
        }
        if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_set)) >= 0)
            return rc;
    }
    if (argc - optind < 1)
        return gm_cli_usage(ctx, "missing workload NAME");
    if (argc - optind > 1)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind + 1]);
    if (compute == NULL && memory == NULL)
        return gm_cli_usage(ctx, "give --compute, --memory or both");
    json_t *body = json_object();
    if (compute)
        json_object_set_new(body, "compute", json_string(compute));
    if (memory)
        json_object_set_new(body, "memory", json_string(memory));
    char *path = gm_cli_path("/v1/workloads/", argv[optind], "/limits");
    rc = path ? gm_cli_call_show(ctx, "POST", path, body, NULL) : GM_CLI_EXIT_FAIL;
    free(path);
    json_decref(body);
    return rc;
}
