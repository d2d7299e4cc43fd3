/* gpusimctl: look at and drive gpusim's simulated device from tests and demos.
 * Exit status: 0 done, 1 the state refused or failed, 2 bad usage. */
#include "gpusim/ctl/gpusimctl.h"

#include "common/parse.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

struct cmd {
    const char *name;
    const char *usage;
    int (*run)(int argc, char **argv);
};

static const struct cmd *current;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gpusimctl %s: ", current->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: gpusimctl %s\n", current->usage);
    return EXIT_USAGE;
}

static int fail(const struct gm_error *err)
{
    fprintf(stderr, "gpusimctl %s: %s\n", current->name, err->msg);
    return 1;
}

/* Options shared by the commands; -1 or NULL when not given. */
struct opts {
    long long gpu, pid, util, mem_util, temp;
    uint64_t memory;
    int have_memory;
    const char *type, *name;
};

enum { OPT_GPU = 256, OPT_PID, OPT_MEMORY, OPT_TYPE, OPT_NAME, OPT_UTIL, OPT_MEM_UTIL, OPT_TEMP };

static int parse_opts(int argc, char **argv, const char *allowed, struct opts *o,
                      struct gm_error *err)
{
    static const struct option longopts[] = {
        {"gpu", required_argument, NULL, OPT_GPU},
        {"pid", required_argument, NULL, OPT_PID},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"type", required_argument, NULL, OPT_TYPE},
        {"name", required_argument, NULL, OPT_NAME},
        {"util", required_argument, NULL, OPT_UTIL},
        {"mem-util", required_argument, NULL, OPT_MEM_UTIL},
        {"temp", required_argument, NULL, OPT_TEMP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->gpu = o->pid = o->util = o->mem_util = o->temp = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: gpusimctl %s\n", current->usage);
            exit(0);
        }
        if (c == '?') {
            return gm_err(err, GM_EINVAL, "unknown option or missing value: %s", argv[optind - 1]);
        }
        const char *name = NULL;
        for (const struct option *lo = longopts; lo->name != NULL; lo++)
            if (lo->val == c)
                name = lo->name;
        if (strstr(allowed, name) == NULL)
            return gm_err(err, GM_EINVAL, "--%s is not an option of this command", name);
        int rc = 0;
        switch (c) {
        case OPT_GPU:
            rc = gm_parse_int(optarg, 0, GM_SIM_MAX_GPUS - 1, &o->gpu, "--gpu", err);
            break;
        case OPT_PID:
            rc = gm_parse_int(optarg, 1, 4194304, &o->pid, "--pid", err);
            break;
        case OPT_MEMORY: {
            long long mib;
            /* A bare number is MiB, as nvidia-smi counts; a unit makes it a size. */
            if (gm_parse_int(optarg, 0, 1 << 20, &mib, "--memory", NULL) == 0)
                o->memory = (uint64_t)mib * GM_MIB;
            else
                rc = gm_parse_size(optarg, &o->memory, "--memory", err);
            o->have_memory = 1;
            break;
        }
        case OPT_TYPE:
            o->type = optarg;
            break;
        case OPT_NAME:
            o->name = optarg;
            break;
        case OPT_UTIL:
            rc = gm_parse_int(optarg, 0, 100, &o->util, "--util", err);
            break;
        case OPT_MEM_UTIL:
            rc = gm_parse_int(optarg, 0, 100, &o->mem_util, "--mem-util", err);
            break;
        case OPT_TEMP:
            if (strcmp(optarg, "auto") == 0)
                o->temp = -2;
            else
                rc = gm_parse_int(optarg, 0, 120, &o->temp, "--temp", err);
            break;
        }
        if (rc < 0)
            return rc;
    }
    if (optind < argc)
        return gm_err(err, GM_EINVAL, "unexpected argument '%s'", argv[optind]);
    return 0;
}

static int need(long long v, const char *what, struct gm_error *err)
{
    return v < 0 ? gm_err(err, GM_EINVAL, "%s is required", what) : 0;
}

static int parse_type(const char *s, uint32_t *flags)
{
    static const struct {
        const char *name;
        uint32_t flags;
    } types[] = {
        {"C", GM_SIM_PROC_COMPUTE},
        {"M+C", GM_SIM_PROC_COMPUTE | GM_SIM_PROC_MPS_CLIENT},
        {"M", GM_SIM_PROC_MPS_CLIENT},
        {"G", GM_SIM_PROC_GRAPHICS},
        {"C+G", GM_SIM_PROC_COMPUTE | GM_SIM_PROC_GRAPHICS},
        {"S", GM_SIM_PROC_MPS_SERVER},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(types[i].name, s) == 0) {
            *flags = types[i].flags;
            return 0;
        }
    return -1;
}

static int cmd_show(int argc, char **argv)
{
    struct opts o;
    struct gm_error err;
    struct gm_sim_state *st;
    if (parse_opts(argc, argv, "", &o, &err) < 0)
        return usage_error("%s", err.msg);
    if (gm_sim_attach(&st, &err) < 0)
        return fail(&err);
    int rc = gm_sim_show(st, gm_sim_state_path(), &err);
    gm_sim_detach(st);
    return rc < 0 ? fail(&err) : 0;
}

static int cmd_add(int argc, char **argv)
{
    struct opts o;
    struct gm_error err;
    struct gm_sim_state *st;
    uint32_t flags = GM_SIM_PROC_COMPUTE;
    if (parse_opts(argc, argv, "gpu pid memory type name", &o, &err) < 0 ||
        need(o.gpu, "--gpu", &err) < 0 || need(o.pid, "--pid", &err) < 0 ||
        need(o.have_memory ? 0 : -1, "--memory", &err) < 0)
        return usage_error("%s", err.msg);
    if (o.type != NULL && parse_type(o.type, &flags) < 0)
        return usage_error("--type %s: not C, M+C, M, G, C+G or S (MPS server)", o.type);
    if (gm_sim_attach(&st, &err) < 0)
        return fail(&err);
    int rc = gm_sim_proc_register(st, (int)o.gpu, (uint32_t)o.pid, flags, o.memory, o.name, &err);
    gm_sim_detach(st);
    return rc < 0 ? fail(&err) : 0;
}

static int cmd_remove(int argc, char **argv)
{
    struct opts o;
    struct gm_error err;
    struct gm_sim_state *st;
    if (parse_opts(argc, argv, "gpu pid", &o, &err) < 0 || need(o.gpu, "--gpu", &err) < 0 ||
        need(o.pid, "--pid", &err) < 0)
        return usage_error("%s", err.msg);
    if (gm_sim_attach(&st, &err) < 0)
        return fail(&err);
    int rc = gm_sim_proc_unregister(st, (int)o.gpu, (uint32_t)o.pid, &err);
    gm_sim_detach(st);
    return rc < 0 ? fail(&err) : 0;
}

static int cmd_set(int argc, char **argv)
{
    struct opts o;
    struct gm_error err;
    struct gm_sim_state *st;
    if (parse_opts(argc, argv, "gpu util mem-util temp", &o, &err) < 0 ||
        need(o.gpu, "--gpu", &err) < 0)
        return usage_error("%s", err.msg);
    if (o.util < 0 && o.mem_util < 0 && o.temp == -1)
        return usage_error("%s", "nothing to set: give --util, --mem-util or --temp");
    if (gm_sim_attach(&st, &err) < 0)
        return fail(&err);
    int rc = 0;
    if (o.util >= 0 || o.mem_util >= 0)
        rc = gm_sim_set_util(st, (int)o.gpu, (int)o.util, (int)o.mem_util, &err);
    if (rc == 0 && o.temp != -1)
        rc = gm_sim_set_temp(st, (int)o.gpu, o.temp == -2 ? -1 : (int)o.temp, &err);
    gm_sim_detach(st);
    return rc < 0 ? fail(&err) : 0;
}

static int cmd_reset(int argc, char **argv)
{
    struct opts o;
    struct gm_error err;
    if (parse_opts(argc, argv, "", &o, &err) < 0)
        return usage_error("%s", err.msg);
    if (gm_sim_reset(gm_sim_state_path(), gm_sim_config_path(), &err) < 0)
        return fail(&err);
    return 0;
}

static const struct cmd cmds[] = {
    {"show", "show", cmd_show},
    {"add-process",
     "add-process --gpu N --pid PID --memory MIB [--type C|M+C|M|G|C+G|S] [--name NAME]", cmd_add},
    {"remove-process", "remove-process --gpu N --pid PID", cmd_remove},
    {"set", "set --gpu N [--util PCT] [--mem-util PCT] [--temp C|auto]", cmd_set},
    {"reset", "reset", cmd_reset},
    {"sysfs",
     "sysfs create ROOT [--no-iommu] [--no-vfio-pci] [--foreign-in-group INDEX]\n"
     "  gpusimctl sysfs kernel ROOT [--exit-after-idle-ms N]",
     gm_sim_sysfs_main},
};

static void help(FILE *f)
{
    fprintf(f,
            "usage: gpusimctl COMMAND [OPTIONS]   (each command takes --help)\n\n"
            "Looks at and drives the simulated GPUs in $GPUSIM_STATE (default %s).\n\n",
            GM_SIM_DEFAULT_STATE);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(f, "  gpusimctl %s\n", cmds[i].usage);
    fprintf(f, "\nreset re-creates the state from $GPUSIM_CONFIG (or the two-T4 defaults).\n"
               "sysfs create lays out a simulated sysfs (and /dev/vfio) for VM passthrough of\n"
               "these GPUs under ROOT; sysfs kernel honours writes to it as Linux does.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        help(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(cmds[i].name, argv[1]) == 0) {
            current = &cmds[i];
            return cmds[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "gpusimctl: unknown command '%s'\n", argv[1]);
    help(stderr);
    return EXIT_USAGE;
}
