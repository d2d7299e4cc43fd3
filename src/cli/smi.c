#include "cli/cli.h"
#include "cli/smi_format.h"
#include "common/parse.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char gm_cli_help_smi[] =
    "NAME\n"
    "    gpumux smi - show the GPUs the way nvidia-smi does, plus gpumux's view\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux smi [-i ID[,ID..]] [-l SEC] [-o table|json]\n"
    "    gpumux smi --query-gpu=FIELD[,FIELD..] [--format=csv[,noheader][,nounits]]\n"
    "               [-i ID] [-l SEC]\n"
    "    gpumux smi --query-compute-apps=FIELD[,FIELD..] [--format=csv[,noheader][,nounits]]\n"
    "               [-i ID] [-l SEC]\n"
    "\n"
    "DESCRIPTION\n"
    "    Without a query, prints the node's hostname, a blank line, the nvidia-smi table (GPUs,\n"
    "    then Processes; 79 columns, the layout of nvidia-smi 460) and then gpumux's section:\n"
    "    each GPU's sharing mode, the VM holding it, the memory its workloads reserve, and each\n"
    "    workload with its GPU, mode, compute share, memory limit and state.\n"
    "\n"
    "    With --query-gpu or --query-compute-apps, prints CSV exactly as nvidia-smi does, so\n"
    "    scripts written for nvidia-smi work unchanged. Values the driver does not report are\n"
    "    [N/A]. Header names are nvidia-smi's canonical ones (gpu_name prints as name). Under\n"
    "    nounits the header keeps its unit in brackets, as nvidia-smi's does.\n"
    "\n"
    "    --query-gpu fields: timestamp, driver_version, count, index, name (gpu_name), uuid\n"
    "    (gpu_uuid), serial, pci.bus_id (gpu_bus_id), display_active, persistence_mode, pstate,\n"
    "    fan.speed, memory.total, memory.used, memory.free, compute_mode, compute_cap,\n"
    "    utilization.gpu, utilization.memory, ecc.errors.uncorrected.volatile.total,\n"
    "    temperature.gpu, power.draw, power.limit, mig.mode.current.\n"
    "\n"
    "    --query-compute-apps fields (one row per process): timestamp, gpu_name, gpu_bus_id,\n"
    "    gpu_serial, gpu_uuid, pid, process_name (name), used_gpu_memory (used_memory).\n"
    "\n"
    "OPTIONS\n"
    "    --query-gpu=FIELDS\n"
    "        One CSV row per GPU with these fields.\n"
    "    --query-compute-apps=FIELDS\n"
    "        One CSV row per compute process; only a header when none runs.\n"
    "    --format=csv[,noheader][,nounits]\n"
    "        noheader leaves out the header line; nounits prints bare numbers (\"15109\"\n"
    "        instead of \"15109 MiB\"). Default: csv.\n"
    "    -i, --id=ID[,ID..]\n"
    "        Only these GPUs: index, UUID or PCI bus id.\n"
    "    -l, --loop=SEC\n"
    "        Print again every SEC seconds until interrupted (Ctrl-C ends with status 0). In\n"
    "        CSV mode the header is printed once.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer to GET /v1/gpus (filtered by -i).\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the daemon failed the request or -i names no GPU; 2 usage error, unknown\n"
    "    query field (Field \"foo\" is not a valid field to query.), or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux smi\n"
    "    gpumux smi --query-gpu=index,name,memory.used,utilization.gpu --format=csv\n"
    "    gpumux smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -l 5\n"
    "    gpumux smi --query-compute-apps=pid,process_name,used_memory --format=csv\n";

struct smi_opts {
    const char *query;
    enum gm_cli_query kind;
    unsigned flags;
    const char *ids;
    long long loop;
};

/* One picture: fetch, filter, format, print. */
static int show_once(struct gm_cli_ctx *ctx, const struct smi_opts *o, int first)
{
    json_t *gpus = NULL, *workloads = NULL;
    struct gm_error err = {0};
    char *text = NULL;
    int rc = gm_cli_call(ctx, "GET", "/v1/gpus", NULL, &gpus);
    if (rc != 0)
        return rc;
    if (!json_is_array(json_object_get(gpus, "gpus"))) {
        gm_err(&err, GM_EIO, "malformed answer from gpumuxd: no GPU list (\"gpus\")");
        goto fail;
    }
    if (o->ids != NULL && gm_cli_smi_select(gpus, o->ids, &err) < 0)
        goto fail;
    if (ctx->output == GM_CLI_OUT_JSON) {
        gm_cli_print_json(ctx, gpus);
        goto out;
    }
    if (o->query != NULL) {
        unsigned flags = o->flags | (first ? 0 : GM_CLI_CSV_NOHEADER);
        if (gm_cli_smi_query(o->kind, gpus, o->query, flags, &text, &err) < 0)
            goto fail;
    } else {
        rc = gm_cli_call(ctx, "GET", "/v1/workloads", NULL, &workloads);
        if (rc != 0)
            goto out;
        if (gm_cli_smi_view(gpus, workloads, &text, &err) < 0)
            goto fail;
        if (!first)
            fputc('\n', ctx->out); /* -l: keep successive pictures apart */
    }
    fputs(text, ctx->out);
    fflush(ctx->out);
    goto out;
fail:
    rc = gm_cli_fail(ctx, &err);
out:
    free(text);
    json_decref(gpus);
    json_decref(workloads);
    return rc;
}

int gm_cli_smi(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"query-gpu", required_argument, NULL, 'Q'},
        {"query-compute-apps", required_argument, NULL, 'A'},
        {"format", required_argument, NULL, 'F'},
        {"id", required_argument, NULL, 'i'},
        {"loop", required_argument, NULL, 'l'},
        GM_CLI_COMMON_LONG,
        {0, 0, 0, 0},
    };
    struct smi_opts o = {0};
    const char *gpu_q = NULL, *app_q = NULL, *format = NULL, *loop = NULL;
    struct gm_error err = {0};
    int c, rc;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT "i:l:", longopts, NULL)) != -1) {
        switch (c) {
        case 'Q':
            gpu_q = optarg;
            break;
        case 'A':
            app_q = optarg;
            break;
        case 'F':
            format = optarg;
            break;
        case 'i':
            o.ids = optarg;
            break;
        case 'l':
            loop = optarg;
            break;
        default:
            if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_smi)) >= 0)
                return rc;
        }
    }
    if (optind < argc)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind]);
    if (gpu_q != NULL && app_q != NULL)
        return gm_cli_usage(ctx, "use one of --query-gpu and --query-compute-apps");
    o.query = gpu_q != NULL ? gpu_q : app_q;
    o.kind = gpu_q != NULL ? GM_CLI_QUERY_GPU : GM_CLI_QUERY_APPS;
    if (o.query != NULL) {
        if (gm_cli_smi_check_fields(o.kind, o.query, &err) < 0) {
            /* nvidia-smi's own words, so that scripts and people recognise them. */
            fprintf(ctx->err, "%s\n", err.msg);
            return GM_CLI_EXIT_USAGE;
        }
        if (ctx->output == GM_CLI_OUT_JSON)
            return gm_cli_usage(ctx, "-o json prints the whole answer; leave out the query");
        if (format != NULL && gm_cli_smi_parse_format(format, &o.flags, &err) < 0)
            return gm_cli_usage(ctx, "%s", err.msg);
    } else if (format != NULL) {
        return gm_cli_usage(ctx, "--format needs --query-gpu or --query-compute-apps");
    }
    if (loop != NULL && gm_parse_int(loop, 1, 86400, &o.loop, "-l", &err) < 0)
        return gm_cli_usage(ctx, "%s", err.msg);

    if (o.loop > 0)
        gm_cli_catch_sigint();
    for (int first = 1;; first = 0) {
        rc = show_once(ctx, &o, first);
        if (rc != 0 || o.loop == 0)
            return rc;
        if (gm_cli_sleep_ms((long)o.loop * 1000))
            return GM_CLI_EXIT_OK;
    }
}
