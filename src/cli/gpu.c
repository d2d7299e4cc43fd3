#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char gm_cli_help_gpu[] =
    "NAME\n"
    "    gpumux gpu - list GPUs and set their sharing mode\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux gpu ls [-o table|json]\n"
    "    gpumux gpu mode ID shared|mps|vm [--stop-workloads | --restart-workloads]\n"
    "\n"
    "DESCRIPTION\n"
    "    ls lists the node's GPUs: index, UUID, name, PCI bus id, total memory, sharing mode,\n"
    "    the VM holding the GPU (or -) and the workloads placed on it.\n"
    "\n"
    "    mode sets how a GPU is shared. ID is an index, a UUID or a PCI bus id.\n"
    "      shared  workloads are time-sliced by the driver (no fractional limits).\n"
    "      mps     NVIDIA MPS: workloads run side by side with compute and memory limits.\n"
    "      vm      reserved for a virtual machine (see gpumux vm); no workload may use it.\n"
    "    The daemon refuses a change while workloads that need the current mode run on the\n"
    "    GPU, and names them, unless --stop-workloads (stop them first) or\n"
    "    --restart-workloads (stop them, change the mode, start them again under it) is\n"
    "    given. The mode survives daemon restarts, reboots and driver updates.\n"
    "\n"
    "OPTIONS\n"
    "    --stop-workloads\n"
    "        Stop the workloads on the GPU before changing its mode.\n"
    "    --restart-workloads\n"
    "        Stop them, change the mode, and start them again under the new mode.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer (GET /v1/gpus, or the GPU after the change).\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the daemon refused (no such GPU, GPU busy, not permitted); 2 usage\n"
    "    error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux gpu ls\n"
    "    gpumux gpu mode 0 mps\n"
    "    gpumux gpu mode GPU-8f6b2c1e-... shared\n";

static int gpu_ls(struct gm_cli_ctx *ctx)
{
    json_t *answer = NULL;
    int rc = gm_cli_call(ctx, "GET", "/v1/gpus", NULL, &answer);
    if (rc != 0)
        return rc;
    if (ctx->output == GM_CLI_OUT_JSON) {
        gm_cli_print_json(ctx, answer);
        json_decref(answer);
        return GM_CLI_EXIT_OK;
    }
    const json_t *gpus = json_object_get(answer, "gpus");
    if (!json_is_array(gpus)) {
        json_decref(answer);
        fprintf(ctx->err, "gpumux: malformed answer from gpumuxd: no GPU list (\"gpus\")\n");
        return GM_CLI_EXIT_FAIL;
    }
    static const char *const head[] = {"INDEX",  "UUID", "NAME",   "BUS-ID",
                                       "MEMORY", "MODE", "HOLDER", "WORKLOADS"};
    struct gm_cli_table *t = gm_cli_table_new(8, head);
    size_t i, j;
    const json_t *g, *w;
    json_array_foreach(gpus, i, g)
    {
        char idx[16], mem[32], names[512];
        size_t used = 0;
        names[0] = '\0';
        json_array_foreach(json_object_get(g, "workloads"), j, w)
        {
            int n = snprintf(names + used, sizeof(names) - used, "%s%s", used ? "," : "",
                             json_string_value(w) ? json_string_value(w) : "?");
            if (n < 0 || (size_t)n >= sizeof(names) - used)
                break;
            used += (size_t)n;
        }
        const json_t *total = json_object_get(g, "memory_total");
        if (json_is_number(total))
            snprintf(mem, sizeof(mem), "%lldMiB",
                     (long long)(json_number_value(total) / (1024.0 * 1024.0)));
        else
            snprintf(mem, sizeof(mem), "-");
        /* A VM's GPU on vfio-pci: the host's driver does not have it. */
        char mode[48];
        snprintf(mode, sizeof(mode), "%s%s", gm_cli_jstr(g, "mode", "-"),
                 json_is_string(json_object_get(g, "passthrough")) ? " (vfio-pci)" : "");
        const char *row[] = {gm_cli_jint(g, "index", "?", idx, sizeof(idx)),
                             gm_cli_jstr(g, "uuid", "-"),
                             gm_cli_jstr(g, "name", "-"),
                             gm_cli_jstr(g, "pci_bus_id", "-"),
                             mem,
                             mode,
                             gm_cli_jstr(g, "holder", "-"),
                             names};
        gm_cli_table_add(t, row);
    }
    gm_cli_table_print(t, ctx->out);
    gm_cli_table_free(t);
    json_decref(answer);
    return GM_CLI_EXIT_OK;
}

static int gpu_mode(struct gm_cli_ctx *ctx, const char *id, const char *mode, const char *on_busy)
{
    if (strcmp(mode, "shared") != 0 && strcmp(mode, "mps") != 0 && strcmp(mode, "vm") != 0)
        return gm_cli_usage(ctx, "mode '%s': expected shared, mps or vm", mode);
    json_t *body = json_pack("{ssss}", "mode", mode, "on_busy", on_busy), *answer = NULL;
    char *path = gm_cli_path("/v1/gpus/", id, "/mode");
    int rc = gm_cli_call(ctx, "POST", path, body, &answer);
    free(path);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (ctx->output == GM_CLI_OUT_JSON) {
        gm_cli_print_json(ctx, answer);
    } else {
        char idx[16];
        fputs(gm_cli_jstr(answer, "messages", ""), ctx->out);
        fprintf(ctx->out, "GPU %s (%s): mode %s\n",
                gm_cli_jint(answer, "index", id, idx, sizeof(idx)),
                gm_cli_jstr(answer, "uuid", "?"), gm_cli_jstr(answer, "mode", mode));
    }
    json_decref(answer);
    return GM_CLI_EXIT_OK;
}

int gm_cli_gpu(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {GM_CLI_COMMON_LONG,
                                             {"stop-workloads", no_argument, NULL, 's'},
                                             {"restart-workloads", no_argument, NULL, 'r'},
                                             {0, 0, 0, 0}};
    int c, rc;
    const char *on_busy = "refuse";
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        if (c == 's' || c == 'r') {
            on_busy = c == 's' ? "stop" : "restart";
            continue;
        }
        if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_gpu)) >= 0)
            return rc;
    }
    int n = argc - optind;
    char **arg = argv + optind;
    if (n == 0)
        return gm_cli_usage(ctx, "missing subcommand: ls or mode");
    if (strcmp(arg[0], "ls") == 0) {
        if (n > 1)
            return gm_cli_usage(ctx, "unexpected argument '%s'", arg[1]);
        return gpu_ls(ctx);
    }
    if (strcmp(arg[0], "mode") == 0) {
        if (n < 3)
            return gm_cli_usage(ctx, "usage: gpumux gpu mode ID shared|mps|vm");
        if (n > 3)
            return gm_cli_usage(ctx, "unexpected argument '%s'", arg[3]);
        return gpu_mode(ctx, arg[1], arg[2], on_busy);
    }
    static const char *const subs[] = {"ls", "mode"};
    return gm_cli_not_a_subcommand(ctx, "a gpu", arg[0], subs, 2);
}
