#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char gm_cli_help_vm[] =
    "NAME\n"
    "    gpumux vm - give a GPU to a virtual machine, take it back, list VMs\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux vm attach VM --gpu ID [-o table|json]\n"
    "    gpumux vm detach VM [--force] [-o table|json]\n"
    "    gpumux vm ls [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    A GPU given to a VM (PCI passthrough) is not shared: it belongs to that one VM and is\n"
    "    invisible to workloads. The first claimant wins: attach fails with \"no GPU resources\n"
    "    available\" when workloads hold the GPU, and a GPU held by a VM is never handed to\n"
    "    workloads.\n"
    "\n"
    "    attach  gives GPU ID (index, UUID or PCI bus id) to VM: checks the claim rules and\n"
    "            that nothing of the host uses the GPU (workloads, its MPS daemon, processes\n"
    "            NVML lists), moves every PCI function of its IOMMU group (the GPU and its\n"
    "            audio function) from its driver to vfio-pci through sysfs (driver_override,\n"
    "            unbind, drivers_probe), checks the group is viable and DEV/vfio/GROUP\n"
    "            appeared, records the claim, and prints the QEMU arguments and the libvirt\n"
    "            <hostdev> XML for the VM. A step that fails is rolled back: every function\n"
    "            back on its driver, no claim recorded, and the error names the step and the\n"
    "            function. Refused with the reason when the IOMMU is off, vfio-pci is not\n"
    "            loaded (gpumuxd tries modprobe vfio-pci) or the group holds a device that is\n"
    "            not the GPU's. While the GPU is on vfio-pci gpumuxd does not ask NVML about\n"
    "            it: gpu ls and smi say passthrough, and smi's nvidia-smi table leaves it out,\n"
    "            as containers do not see it. After a reboot gpumuxd binds it to vfio-pci\n"
    "            again before it places any workload. On gpusim the functions move only in a\n"
    "            simulated sysfs (gpusimctl sysfs, gpumuxd --sysfs-root/--dev-root); without\n"
    "            one the claim is recorded and the answer says so.\n"
    "    detach  gives the VM's GPU back: every function to the driver it had before the\n"
    "            attach, and the GPU to shared. Refused while a running VM holds the group's\n"
    "            vfio node open (named, with its pid), unless --force.\n"
    "    ls      lists VMs with their GPU and since when they hold it.\n"
    "\n"
    "OPTIONS\n"
    "    --gpu ID\n"
    "        The GPU to attach (required by attach).\n"
    "    --force\n"
    "        detach: take the GPU back even while a VM holds it open (the kernel then asks\n"
    "        the VMM to release the device before the unbind completes).\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the daemon refused (GPU in use, no such VM, not permitted); 2 usage\n"
    "    error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux vm attach vm1 --gpu 0\n"
    "    gpumux vm ls\n"
    "    gpumux vm detach vm1\n";

static void describe_gpu(const json_t *vm, char *buf, size_t len)
{
    const json_t *g = json_object_get(vm, "gpu");
    char idx[16];
    snprintf(buf, len, "GPU %s (%s)", gm_cli_jint(g, "index", "?", idx, sizeof(idx)),
             gm_cli_jstr(g, "uuid", "?"));
}

static void report(struct gm_cli_ctx *ctx, const json_t *answer, const char *what)
{
    char g[160];
    describe_gpu(answer, g, sizeof(g));
    fprintf(ctx->out, "VM %s: %s %s\n", gm_cli_jstr(answer, "name", "?"), what, g);
}

static void attached(struct gm_cli_ctx *ctx, const json_t *answer)
{
    report(ctx, answer, "attached");
    const json_t *pt = json_object_get(answer, "passthrough"), *f, *line;
    size_t i;
    if (!json_is_object(pt)) {
        const char *note = gm_cli_jstr(answer, "note", NULL);
        if (note != NULL)
            fprintf(ctx->out, "Note: %s.\n", note);
        return;
    }
    char grp[16];
    fprintf(ctx->out,
            "IOMMU group %s on vfio-pci:", gm_cli_jint(pt, "iommu_group", "?", grp, sizeof(grp)));
    json_array_foreach(json_object_get(pt, "functions"), i, f)
        fprintf(ctx->out, " %s", gm_cli_jstr(f, "bdf", "?"));
    fprintf(ctx->out, "\n\nQEMU:\n");
    json_array_foreach(json_object_get(pt, "qemu"), i, line)
        fprintf(ctx->out, "  %s\n", json_string_value(line) ? json_string_value(line) : "");
    fprintf(ctx->out, "\nlibvirt (virsh edit VM, inside <devices>):\n%s",
            gm_cli_jstr(pt, "libvirt", ""));
}

static void detached(struct gm_cli_ctx *ctx, const json_t *answer)
{
    report(ctx, answer, "detached");
    const json_t *f;
    size_t i;
    json_array_foreach(json_object_get(answer, "returned"), i, f)
        fprintf(ctx->out, "%s is on %s again\n", gm_cli_jstr(f, "bdf", "?"),
                gm_cli_jstr(f, "driver", "?")[0] ? gm_cli_jstr(f, "driver", "?") : "no driver");
}

static int vm_attach(struct gm_cli_ctx *ctx, const char *name, const char *gpu)
{
    json_t *body = json_pack("{ssss}", "name", name, "gpu", gpu);
    int rc = gm_cli_call_show(ctx, "POST", "/v1/vms", body, attached);
    json_decref(body);
    return rc;
}

static int vm_detach(struct gm_cli_ctx *ctx, const char *name, int force)
{
    char *path = gm_cli_path("/v1/vms/", name, force ? "?force=true" : NULL);
    int rc = path ? gm_cli_call_show(ctx, "DELETE", path, NULL, detached) : GM_CLI_EXIT_FAIL;
    free(path);
    return rc;
}

static int vm_ls(struct gm_cli_ctx *ctx)
{
    json_t *answer = NULL;
    int rc = gm_cli_call(ctx, "GET", "/v1/vms", NULL, &answer);
    if (rc != 0)
        return rc;
    if (ctx->output == GM_CLI_OUT_JSON) {
        gm_cli_print_json(ctx, answer);
        json_decref(answer);
        return GM_CLI_EXIT_OK;
    }
    const json_t *vms = json_object_get(answer, "vms");
    if (!json_is_array(vms)) {
        json_decref(answer);
        fprintf(ctx->err, "gpumux: malformed answer from gpumuxd: no VM list (\"vms\")\n");
        return GM_CLI_EXIT_FAIL;
    }
    static const char *const head[] = {"NAME", "GPU", "UUID", "BUS-ID", "SINCE"};
    struct gm_cli_table *t = gm_cli_table_new(5, head);
    size_t i;
    const json_t *vm;
    json_array_foreach(vms, i, vm)
    {
        const json_t *g = json_object_get(vm, "gpu");
        char idx[16];
        const char *row[] = {gm_cli_jstr(vm, "name", "?"),
                             gm_cli_jint(g, "index", "-", idx, sizeof(idx)),
                             gm_cli_jstr(g, "uuid", "-"), gm_cli_jstr(g, "pci_bus_id", "-"),
                             gm_cli_jstr(vm, "since", "-")};
        gm_cli_table_add(t, row);
    }
    gm_cli_table_print(t, ctx->out);
    gm_cli_table_free(t);
    json_decref(answer);
    return GM_CLI_EXIT_OK;
}

int gm_cli_vm(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"gpu", required_argument, NULL, 'g'},
        {"force", no_argument, NULL, 'F'},
        GM_CLI_COMMON_LONG,
        {0, 0, 0, 0},
    };
    const char *gpu = NULL;
    int c, rc, force = 0;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        if (c == 'g')
            gpu = optarg;
        else if (c == 'F')
            force = 1;
        else if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_vm)) >= 0)
            return rc;
    }
    int n = argc - optind;
    char **arg = argv + optind;
    if (n == 0)
        return gm_cli_usage(ctx, "missing subcommand: attach, detach or ls");
    const char *sub = arg[0];
    if (strcmp(sub, "attach") != 0 && strcmp(sub, "detach") != 0 && strcmp(sub, "ls") != 0) {
        static const char *const subs[] = {"attach", "detach", "ls"};
        return gm_cli_not_a_subcommand(ctx, "a vm", sub, subs, 3);
    }
    if (gpu != NULL && strcmp(sub, "attach") != 0)
        return gm_cli_usage(ctx, "--gpu belongs to 'vm attach'");
    if (force && strcmp(sub, "detach") != 0)
        return gm_cli_usage(ctx, "--force belongs to 'vm detach'");
    if (strcmp(sub, "ls") == 0) {
        if (n > 1)
            return gm_cli_usage(ctx, "unexpected argument '%s'", arg[1]);
        return vm_ls(ctx);
    }
    if (n < 2)
        return gm_cli_usage(ctx, "missing VM name");
    if (n > 2)
        return gm_cli_usage(ctx, "unexpected argument '%s'", arg[2]);
    if (strcmp(sub, "detach") == 0)
        return vm_detach(ctx, arg[1], force);
    if (gpu == NULL)
        return gm_cli_usage(ctx, "missing --gpu ID: which GPU should VM '%s' get?", arg[1]);
    return vm_attach(ctx, arg[1], gpu);
}
