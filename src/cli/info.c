#include "cli/cli.h"

#include <getopt.h>

const char gm_cli_help_info[] =
    "NAME\n"
    "    gpumux info - show the daemon's version, driver and directories\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux info [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints the client's and daemon's versions, the daemon's pid, the node's hostname, the\n"
    "    GPU driver it uses (kind \"nvml\" for the NVIDIA driver, \"sim\" for the simulator),\n"
    "    its state and run directories and the socket this client talked to, and each GPU the\n"
    "    driver now fails (\"GPU N lost: ...\", e.g. a damaged simulated device). A quick way\n"
    "    to check that gpumuxd is up.\n"
    "\n"
    "    With the simulated driver it also prints gpusim's state file and library directory,\n"
    "    and the command line that points any NVML tool (nvidia-smi, nvtop, a DCGM-style\n"
    "    exporter, pynvml) at the same simulated GPUs and workloads: gpusim's directory on\n"
    "    LD_LIBRARY_PATH, plus GPUSIM_STATE when the daemon does not use gpusim's default\n"
    "    state file (/dev/shm/gpumux-gpusim).\n"
    "\n"
    "OPTIONS\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer to GET /v1/info.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the daemon failed the request; 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux info\n"
    "    gpumux --socket /tmp/gm/gpumux.sock info\n";

int gm_cli_info(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {GM_CLI_COMMON_LONG, {0, 0, 0, 0}};
    int c, rc;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT, longopts, NULL)) != -1)
        if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_info)) >= 0)
            return rc;
    if (optind < argc)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind]);
    json_t *answer = NULL;
    if ((rc = gm_cli_call(ctx, "GET", "/v1/info", NULL, &answer)) != 0)
        return rc;
    if (ctx->output == GM_CLI_OUT_JSON) {
        gm_cli_print_json(ctx, answer);
        json_decref(answer);
        return GM_CLI_EXIT_OK;
    }
    const json_t *drv = json_object_get(answer, "driver");
    char pid[24];
    FILE *f = ctx->out;
    fprintf(f, "Client version:  %s\n", GM_VERSION);
    fprintf(f, "Daemon version:  %s\n", gm_cli_jstr(answer, "version", "-"));
    fprintf(f, "Daemon pid:      %s\n", gm_cli_jint(answer, "pid", "-", pid, sizeof(pid)));
    fprintf(f, "Hostname:        %s\n", gm_cli_jstr(answer, "hostname", "-"));
    fprintf(f, "Driver:          %s %s (CUDA %s, NVML %s)\n", gm_cli_jstr(drv, "kind", "-"),
            gm_cli_jstr(drv, "driver_version", "-"), gm_cli_jstr(drv, "cuda_version", "-"),
            gm_cli_jstr(drv, "nvml_version", "-"));
    fprintf(f, "State directory: %s\n", gm_cli_jstr(answer, "state_dir", "-"));
    fprintf(f, "Run directory:   %s\n", gm_cli_jstr(answer, "run_dir", "-"));
    fprintf(f, "Socket:          %s\n", ctx->socket);
    const json_t *sim = json_object_get(answer, "gpusim");
    if (json_is_object(sim)) {
        const char *dir = gm_cli_jstr(sim, "library_dir", "-");
        const char *state = gm_cli_jstr(sim, "state_file", "-");
        fprintf(f, "gpusim state:    %s\n", state);
        fprintf(f, "gpusim library:  %s\n", dir);
        if (json_is_true(json_object_get(sim, "default_state")))
            fprintf(f, "NVML tools:      LD_LIBRARY_PATH=%s TOOL\n", dir);
        else
            fprintf(f, "NVML tools:      LD_LIBRARY_PATH=%s GPUSIM_STATE=%s TOOL\n", dir, state);
    }
    size_t i;
    const json_t *g;
    json_array_foreach(json_object_get(answer, "gpus_lost"), i, g)
    {
        char idx[16];
        fprintf(f, "GPU %s lost:      %s (%s)\n", gm_cli_jint(g, "index", "?", idx, sizeof(idx)),
                gm_cli_jstr(g, "error", "-"), gm_cli_jstr(g, "uuid", "-"));
    }
    json_decref(answer);
    return GM_CLI_EXIT_OK;
}
