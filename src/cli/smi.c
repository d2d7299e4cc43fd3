#include "cli/cli.h"
#include "cli/smi_format.h"
#include "common/parse.h"
#include "common/proc.h"

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
    "    gpumux smi -L [-i ID]\n"
    "    gpumux smi -q [-d TYPE[,TYPE..]] [-i ID] [-l SEC]\n"
    "    gpumux smi --help-query-gpu | --help-query-compute-apps\n"
    "    gpumux smi dmon [-i ID] [-c COUNT] [-d SEC]\n"
    "    gpumux smi pmon [-i ID] [-c COUNT] [-d SEC]\n"
    "\n"
    "DESCRIPTION\n"
    "    Without a query, prints the node's hostname, a blank line, the nvidia-smi table (GPUs,\n"
    "    then Processes) and then gpumux's section: each GPU's sharing mode, the VM holding it,\n"
    "    the memory its workloads reserve, and each workload, running ones first, with its GPU,\n"
    "    mode, compute share, memory limit and state. The table has the layout that the\n"
    "    nvidia-smi of the node's driver version prints: 79 columns up to driver 525, 89 for\n"
    "    530 to 545, 91 from 550 (with a wider PID column from 580). gpusim reports driver\n"
    "    535.104.05.\n"
    "\n"
    "    With --query-gpu or --query-compute-apps, prints CSV exactly as nvidia-smi does, so\n"
    "    scripts written for nvidia-smi work unchanged. Values the driver does not report are\n"
    "    [N/A]. Header names are nvidia-smi's canonical ones (gpu_name prints as name,\n"
    "    clocks.sm as clocks.current.sm). Under nounits the header keeps its unit in brackets,\n"
    "    as nvidia-smi's does. --help-query-gpu and --help-query-compute-apps list every field\n"
    "    with its aliases and meaning, among them serial, vbios_version, clocks.sm,\n"
    "    clocks.mem, clocks.max.sm, pcie.link.gen.current, pcie.link.width.current,\n"
    "    enforced.power.limit, utilization.encoder, utilization.decoder, memory.reserved,\n"
    "    ecc.mode.current, clocks_throttle_reasons.active, and from NVML's field values\n"
    "    temperature.memory and power.draw.average ([N/A] on boards without them, as a T4).\n"
    "\n"
    "    -L lists the GPUs as nvidia-smi -L does. -q prints nvidia-smi's detailed view, each\n"
    "    GPU by bus id, and a gpumux part per GPU (sharing mode, holder, reserved memory,\n"
    "    workloads); each process shows the workload it belongs to. dmon prints one line per GPU\n"
    "    and sample (power, temperatures, SM and memory utilisation, encoder, decoder, clocks);\n"
    "    pmon one line per GPU process (SM and memory utilisation, memory, command) with the\n"
    "    name of its workload, a column nvidia-smi does not have. Both sample every second until\n"
    "    interrupted, or COUNT times.\n"
    "\n"
    "OPTIONS\n"
    "    --query-gpu=FIELDS\n"
    "        One CSV row per GPU with these fields.\n"
    "    --query-compute-apps=FIELDS\n"
    "        One CSV row per compute process; only a header when none runs.\n"
    "    --format=csv[,noheader][,nounits]\n"
    "        noheader leaves out the header line; nounits prints bare numbers (\"15109\"\n"
    "        instead of \"15109 MiB\"). Default: csv.\n"
    "    -L, --list-gpus\n"
    "        One line per GPU: GPU 0: Tesla T4 (UUID: GPU-...).\n"
    "    -q, --query\n"
    "        The detailed view.\n"
    "    -d, --display=TYPES\n"
    "        With -q, only these sections: MEMORY, UTILIZATION, ECC, TEMPERATURE, POWER, CLOCK,\n"
    "        COMPUTE, PIDS, PERFORMANCE (any case). With dmon and pmon: seconds between samples.\n"
    "    --help-query-gpu, --help-query-compute-apps\n"
    "        List the fields of the query, their aliases and what they mean.\n"
    "    -i, --id=ID[,ID..]\n"
    "        Only these GPUs: index, UUID or its unique prefix, or PCI bus id (short or long);\n"
    "        the gpumux section then lists only the workloads on them.\n"
    "    -l, --loop=SEC\n"
    "        Print again every SEC seconds until interrupted (Ctrl-C ends with status 0). In\n"
    "        CSV mode the header is printed once.\n"
    "    -c, --count=COUNT\n"
    "        dmon and pmon: stop after COUNT samples.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer to GET /v1/gpus (filtered by -i).\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the daemon failed the request; 2 usage error, unknown query field\n"
    "    (Field \"foo\" is not a valid field to query.), or gpumuxd unreachable; 6 no GPU to\n"
    "    show (\"No devices were found\"), also when -i names none, as nvidia-smi.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux smi\n"
    "    gpumux smi -L\n"
    "    gpumux smi -q -d MEMORY,UTILIZATION -i 0\n"
    "    gpumux smi --query-gpu=index,name,memory.used,utilization.gpu --format=csv\n"
    "    gpumux smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -l 5\n"
    "    gpumux smi --query-compute-apps=pid,process_name,used_memory --format=csv\n"
    "    gpumux smi pmon -c 1\n";

enum smi_view { VIEW_TABLE, VIEW_QUERY, VIEW_LIST, VIEW_DETAIL, VIEW_DMON, VIEW_PMON };

struct smi_opts {
    enum smi_view view;
    const char *query;
    enum gm_cli_query kind;
    unsigned flags;
    unsigned sections; /* -q -d */
    const char *ids;
    long long loop;  /* -l SEC, or dmon/pmon's -d SEC */
    long long count; /* dmon/pmon -c: samples to print, 0 for no end */
};

/* The workload a GPU process belongs to: the workload whose main process is it or one of its
 * ancestors (a CUDA program a workload's shell started), found through /proc. */
static const char *workload_of(pid_t pid, const json_t *wl)
{
    for (int depth = 0; pid > 1 && depth < 32; depth++) {
        size_t i;
        const json_t *w;
        json_array_foreach(wl, i, w)
        {
            const json_t *wp = json_object_get(w, "pid");
            if (json_is_integer(wp) && json_integer_value(wp) == pid)
                return json_string_value(json_object_get(w, "name"));
        }
        struct gm_proc_ids ids;
        if (gm_proc_ids(pid, &ids) < 0)
            return NULL;
        pid = ids.ppid;
    }
    return NULL;
}

static void annotate_processes(json_t *gpus, const json_t *workloads)
{
    const json_t *wl = json_object_get(workloads, "workloads");
    size_t i, k;
    json_t *g, *p;
    json_array_foreach(json_object_get(gpus, "gpus"), i, g)
    {
        json_array_foreach(json_object_get(g, "processes"), k, p)
        {
            const json_t *pid = json_object_get(p, "pid");
            const char *name =
                json_is_integer(pid) ? workload_of((pid_t)json_integer_value(pid), wl) : NULL;
            if (name != NULL)
                json_object_set_new(p, "workload", json_string(name));
        }
    }
}

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
    if (o->ids != NULL && gm_cli_smi_select(gpus, o->ids, &err) < 0) {
        /* nvidia-smi's words and status, then which ids there are. */
        fprintf(ctx->err, "No devices were found\ngpumux: %s\n", err.msg);
        rc = GM_CLI_EXIT_NO_GPU;
        goto out;
    }
    if (ctx->output == GM_CLI_OUT_JSON) {
        gm_cli_print_json(ctx, gpus);
        goto out;
    }
    if (json_array_size(json_object_get(gpus, "gpus")) == 0) {
        fputs("No devices were found\n", ctx->out);
        rc = GM_CLI_EXIT_NO_GPU;
        goto out;
    }
    if (o->view == VIEW_TABLE || o->view == VIEW_DETAIL || o->view == VIEW_PMON) {
        rc = gm_cli_call(ctx, "GET", "/v1/workloads", NULL, &workloads);
        if (rc != 0)
            goto out;
        if (o->ids != NULL)
            gm_cli_smi_select_workloads(gpus, workloads);
        annotate_processes(gpus, workloads);
    }
    switch (o->view) {
    case VIEW_QUERY:
        rc = gm_cli_smi_query(o->kind, gpus, o->query, o->flags | (first ? 0 : GM_CLI_CSV_NOHEADER),
                              &text, &err);
        break;
    case VIEW_LIST:
        rc = gm_cli_smi_list(gpus, &text, &err);
        break;
    case VIEW_DETAIL:
        rc = gm_cli_smi_detail(gpus, o->sections, &text, &err);
        break;
    case VIEW_DMON:
        rc = gm_cli_smi_dmon(gpus, first, &text, &err);
        break;
    case VIEW_PMON:
        rc = gm_cli_smi_pmon(gpus, first, &text, &err);
        break;
    case VIEW_TABLE:
        rc = gm_cli_smi_view(gpus, workloads, &text, &err);
        if (rc == 0 && !first)
            fputc('\n', ctx->out); /* -l: keep successive pictures apart */
        break;
    }
    if (rc < 0)
        goto fail;
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

static int run_views(struct gm_cli_ctx *ctx, const struct smi_opts *o)
{
    if (o->loop > 0)
        gm_cli_catch_sigint();
    for (long long n = 1;; n++) {
        int rc = show_once(ctx, o, n == 1);
        if (rc != 0 || o->loop == 0 || (o->count > 0 && n >= o->count))
            return rc;
        if (gm_cli_sleep_ms((long)o->loop * 1000))
            return GM_CLI_EXIT_OK;
    }
}

/* `gpumux smi dmon|pmon [-i ID] [-c COUNT] [-d SEC]`, as nvidia-smi's monitors take them. */
static int monitor(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"id", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'c'},
        {"delay", required_argument, NULL, 'd'},
        GM_CLI_COMMON_LONG,
        {0, 0, 0, 0},
    };
    struct smi_opts o = {.view = strcmp(argv[0], "dmon") == 0 ? VIEW_DMON : VIEW_PMON, .loop = 1};
    struct gm_error err = {0};
    int c, rc;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT "i:c:d:", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            o.ids = optarg;
            break;
        case 'c':
            if (gm_parse_int(optarg, 1, 1000000000, &o.count, "-c", &err) < 0)
                return gm_cli_usage(ctx, "%s", err.msg);
            break;
        case 'd':
            if (gm_parse_int(optarg, 1, 86400, &o.loop, "-d", &err) < 0)
                return gm_cli_usage(ctx, "%s", err.msg);
            break;
        default:
            if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_smi)) >= 0)
                return rc;
        }
    }
    if (optind < argc)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind]);
    if (ctx->output == GM_CLI_OUT_JSON)
        return gm_cli_usage(ctx, "%s prints text; for JSON use gpumux smi -o json", argv[0]);
    return run_views(ctx, &o);
}

int gm_cli_smi(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "dmon") == 0 || strcmp(argv[1], "pmon") == 0))
        return monitor(ctx, argc - 1, argv + 1);
    static const struct option longopts[] = {
        {"query-gpu", required_argument, NULL, 'Q'},
        {"query-compute-apps", required_argument, NULL, 'A'},
        {"help-query-gpu", no_argument, NULL, 'G'},
        {"help-query-compute-apps", no_argument, NULL, 'P'},
        {"format", required_argument, NULL, 'F'},
        {"id", required_argument, NULL, 'i'},
        {"loop", required_argument, NULL, 'l'},
        {"list-gpus", no_argument, NULL, 'L'},
        {"query", no_argument, NULL, 'q'},
        {"display", required_argument, NULL, 'd'},
        GM_CLI_COMMON_LONG,
        {0, 0, 0, 0},
    };
    struct smi_opts o = {.view = VIEW_TABLE};
    const char *gpu_q = NULL, *app_q = NULL, *format = NULL, *loop = NULL, *display = NULL;
    int help_query = -1, list = 0, detail = 0;
    struct gm_error err = {0};
    int c, rc;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT "i:l:Lqd:", longopts, NULL)) != -1) {
        switch (c) {
        case 'Q':
            gpu_q = optarg;
            break;
        case 'A':
            app_q = optarg;
            break;
        case 'G':
            help_query = GM_CLI_QUERY_GPU;
            break;
        case 'P':
            help_query = GM_CLI_QUERY_APPS;
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
        case 'L':
            list = 1;
            break;
        case 'q':
            detail = 1;
            break;
        case 'd':
            display = optarg;
            break;
        default:
            if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_smi)) >= 0)
                return rc;
        }
    }
    if (optind < argc)
        return gm_cli_usage(ctx,
                            "unexpected argument '%s' (the monitors are 'smi dmon' and "
                            "'smi pmon')",
                            argv[optind]);
    if (help_query >= 0) {
        char *text = NULL;
        if (gm_cli_smi_help_query((enum gm_cli_query)help_query, &text, &err) < 0)
            return gm_cli_fail(ctx, &err);
        fputs(text, ctx->out);
        free(text);
        return GM_CLI_EXIT_OK;
    }
    if ((gpu_q != NULL) + (app_q != NULL) + list + detail > 1)
        return gm_cli_usage(ctx, "use one of --query-gpu, --query-compute-apps, -L and -q");
    if (display != NULL && !detail)
        return gm_cli_usage(ctx, "-d (--display) selects sections of -q; add -q");
    o.query = gpu_q != NULL ? gpu_q : app_q;
    o.kind = gpu_q != NULL ? GM_CLI_QUERY_GPU : GM_CLI_QUERY_APPS;
    if (o.query != NULL) {
        o.view = VIEW_QUERY;
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
    if (list)
        o.view = VIEW_LIST;
    if (detail) {
        o.view = VIEW_DETAIL;
        if (display != NULL && gm_cli_smi_parse_display(display, &o.sections, &err) < 0)
            return gm_cli_usage(ctx, "%s", err.msg);
    }
    if (loop != NULL && gm_parse_int(loop, 1, 86400, &o.loop, "-l", &err) < 0)
        return gm_cli_usage(ctx, "%s", err.msg);
    return run_views(ctx, &o);
}
