#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char gm_cli_help_mps[] =
    "NAME\n"
    "    gpumux mps - start, stop and show NVIDIA MPS per GPU\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux mps start [--gpu ID] [--active-thread-percentage P] [--pinned-mem-limit SIZE]\n"
    "    gpumux mps stop [--gpu ID] [--force]\n"
    "    gpumux mps status [--gpu ID] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    start switches GPUs to the mps sharing mode: gpumuxd starts one MPS control daemon\n"
    "    (nvidia-cuda-mps-control -d) per GPU, with its own pipe and log directories under the\n"
    "    daemon's run directory and CUDA_VISIBLE_DEVICES set to the GPU's UUID, and applies the\n"
    "    GPU's default active thread percentage and pinned memory limit. Workloads placed on an\n"
    "    mps GPU get CUDA_MPS_PIPE_DIRECTORY, CUDA_MPS_LOG_DIRECTORY and, from --compute and\n"
    "    --memory, CUDA_MPS_ACTIVE_THREAD_PERCENTAGE and CUDA_MPS_PINNED_DEVICE_MEM_LIMIT. At\n"
    "    most 48 workloads run on one mps GPU. The mode is recorded: MPS comes back after a\n"
    "    daemon restart or a reboot, and a control daemon that dies is restarted. On a GPU\n"
    "    whose control daemon runs already, start gives it the new defaults (as\n"
    "    nvidia-cuda-mps-control's set_default_active_thread_percentage does) and says so:\n"
    "    clients started from then on get them, running clients keep theirs.\n"
    "\n"
    "    stop switches GPUs back to shared and quits their control daemons. While workloads\n"
    "    run on a GPU it refuses and names them; --force stops them first.\n"
    "\n"
    "    status shows, per GPU, whether its control daemon runs, its pid, servers, default\n"
    "    active thread percentage, clients and directories.\n"
    "\n"
    "    Without --gpu, start and stop act on every GPU that no VM holds.\n"
    "\n"
    "OPTIONS\n"
    "    --gpu ID\n"
    "        One GPU: an index, a UUID or a PCI bus id.\n"
    "    --active-thread-percentage P\n"
    "        Default share of the SMs (1..100) for the GPU's MPS clients; a client can only\n"
    "        lower it.\n"
    "    --pinned-mem-limit SIZE\n"
    "        Default pinned device memory limit for the GPU's MPS clients, with its unit\n"
    "        (4G, 512Mi), at least 64MiB.\n"
    "    --force\n"
    "        stop: stop the GPU's workloads first instead of refusing.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the daemon refused (GPU held by a VM, clients running, MPS binary\n"
    "    missing); 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux mps start --gpu 0\n"
    "    gpumux mps start --gpu 0 --active-thread-percentage 50\n"
    "    gpumux mps status\n"
    "    gpumux mps stop --gpu 0 --force\n";

static void print_status(struct gm_cli_ctx *ctx, const json_t *answer)
{
    static const char *const head[] = {"GPU",     "MODE",      "MPS",     "CONTROL-PID",
                                       "SERVERS", "DEFAULT-%", "CLIENTS", "PIPE-DIR"};
    struct gm_cli_table *t = gm_cli_table_new(8, head);
    size_t i, j;
    const json_t *g, *c;
    json_array_foreach(json_object_get(answer, "gpus"), i, g)
    {
        char idx[16], pid[16], clients[512] = "";
        size_t used = 0;
        json_array_foreach(json_object_get(g, "clients"), j, c)
        {
            int n = snprintf(clients + used, sizeof(clients) - used, "%s%s", used ? "," : "",
                             json_string_value(c) ? json_string_value(c) : "?");
            if (n < 0 || (size_t)n >= sizeof(clients) - used)
                break;
            used += (size_t)n;
        }
        char servers[256] = "", pct[32] = "-";
        const json_t *sv;
        size_t k;
        json_array_foreach(json_object_get(g, "servers"), k, sv)
        {
            size_t l = strlen(servers);
            if (json_is_integer(sv))
                snprintf(servers + l, sizeof(servers) - l, "%s%lld", l ? "," : "",
                         (long long)json_integer_value(sv));
        }
        const json_t *pv = json_object_get(g, "default_active_thread_percentage");
        if (json_is_number(pv))
            snprintf(pct, sizeof(pct), "%g", json_number_value(pv));
        const char *row[] = {gm_cli_jint(g, "index", "?", idx, sizeof(idx)),
                             gm_cli_jstr(g, "mode", "-"),
                             json_is_true(json_object_get(g, "running")) ? "running" : "stopped",
                             gm_cli_jint(g, "control_pid", "-", pid, sizeof(pid)),
                             servers[0] ? servers : "-",
                             pct,
                             clients[0] ? clients : "-",
                             gm_cli_jstr(g, "pipe_dir", "-")};
        gm_cli_table_add(t, row);
    }
    gm_cli_table_print(t, ctx->out);
    gm_cli_table_free(t);
}

int gm_cli_mps(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        GM_CLI_COMMON_LONG,
        {"gpu", required_argument, NULL, 'g'},
        {"force", no_argument, NULL, 'f'},
        {"active-thread-percentage", required_argument, NULL, 'p'},
        {"pinned-mem-limit", required_argument, NULL, 'm'},
        {0, 0, 0, 0}};
    const char *gpu = NULL, *pct = NULL, *mem = NULL;
    int force = 0, c, rc;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        switch (c) {
        case 'g':
            gpu = optarg;
            continue;
        case 'f':
            force = 1;
            continue;
        case 'p':
            pct = optarg;
            continue;
        case 'm':
            mem = optarg;
            continue;
        }
        if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_mps)) >= 0)
            return rc;
    }
    int n = argc - optind;
    char **arg = argv + optind;
    if (n == 0)
        return gm_cli_usage(ctx, "missing subcommand: start, stop or status");
    if (n > 1)
        return gm_cli_usage(ctx, "unexpected argument '%s'", arg[1]);
    const char *sub = arg[0];
    if (strcmp(sub, "status") == 0) {
        json_t *answer = NULL;
        if (force || pct || mem)
            return gm_cli_usage(ctx, "status takes only --gpu");
        rc = gm_cli_call(ctx, "GET", "/v1/mps", NULL, &answer);
        if (rc != 0)
            return rc;
        if (gpu != NULL) {
            /* Keep the one GPU asked for; the daemon resolves ids on the write paths. */
            json_t *keep = json_array();
            size_t i;
            json_t *g;
            json_array_foreach(json_object_get(answer, "gpus"), i, g)
            {
                char idx[16];
                if (strcmp(gm_cli_jint(g, "index", "", idx, sizeof(idx)), gpu) == 0 ||
                    strcmp(gm_cli_jstr(g, "uuid", ""), gpu) == 0)
                    json_array_append(keep, g);
            }
            json_object_set_new(answer, "gpus", keep);
        }
        if (ctx->output == GM_CLI_OUT_JSON)
            gm_cli_print_json(ctx, answer);
        else
            print_status(ctx, answer);
        json_decref(answer);
        return GM_CLI_EXIT_OK;
    }
    if (strcmp(sub, "start") != 0 && strcmp(sub, "stop") != 0) {
        static const char *const subs[] = {"start", "stop", "status"};
        return gm_cli_not_a_subcommand(ctx, "an mps", sub, subs, 3);
    }
    if (strcmp(sub, "start") == 0 && force)
        return gm_cli_usage(ctx, "--force applies to stop");
    if (strcmp(sub, "stop") == 0 && (pct || mem))
        return gm_cli_usage(ctx,
                            "--active-thread-percentage and --pinned-mem-limit apply to start");
    json_t *body = json_object();
    if (gpu)
        json_object_set_new(body, "gpu", json_string(gpu));
    if (pct)
        json_object_set_new(body, "active_thread_percentage", json_string(pct));
    if (mem)
        json_object_set_new(body, "pinned_mem_limit", json_string(mem));
    if (force)
        json_object_set_new(body, "force", json_true());
    char path[32];
    snprintf(path, sizeof(path), "/v1/mps/%s", sub);
    rc = gm_cli_call_show(ctx, "POST", path, body, NULL);
    json_decref(body);
    return rc;
}
